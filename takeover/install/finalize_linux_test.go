//go:build linux

package install

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/exitcode"
)

// capturedNetwork: a static port with an onlink v4 gateway and v6, a DHCP
// port, loopback and a link-local address that must not be configured.
func capturedNetwork() *carry.Network {
	return &carry.Network{
		Interfaces: []carry.Interface{
			{Name: "lo", MAC: "00:00:00:00:00:00", Up: true, Addrs: []carry.Addr{{CIDR: "127.0.0.1/8"}}},
			{Name: "eth0", MAC: "52:54:00:AA:BB:01", MTU: 1500, Up: true, Addrs: []carry.Addr{
				{CIDR: "203.0.113.10/32"}, {CIDR: "2001:db8::10/64"}, {CIDR: "fe80::1/64"}}},
			{Name: "eth1", MAC: "52:54:00:aa:bb:02", MTU: 9000, Up: true, Addrs: []carry.Addr{
				{CIDR: "10.0.0.5/24", Dynamic: true}, {CIDR: "2001:db8:1::5/64", Dynamic: true}}},
			{Name: "eth2", MAC: "52:54:00:aa:bb:03", Up: false},
		},
		Routes: []carry.Route{
			{Family: 4, Dst: "default", Gateway: "172.31.1.1", Dev: "eth0", OnLink: true, Proto: "static"},
			{Family: 6, Dst: "default", Gateway: "fe80::1", Dev: "eth0", Proto: "static"},
			{Family: 4, Dst: "192.168.50.0/24", Gateway: "172.31.1.2", Dev: "eth0", OnLink: true, Metric: 50},
			{Family: 4, Dst: "default", Gateway: "10.0.0.1", Dev: "eth1", Proto: "dhcp"},
			{Family: 4, Dst: "10.0.0.0/24", Dev: "eth1", Proto: "kernel"},
		},
		DNS: carry.DNS{Nameservers: []string{"185.12.64.1", "2a01:4ff:ff00::add:1"}, Search: []string{"example.com"}},
	}
}

const wantEth0 = `# Written by nivis from the network captured before the install.
# Interface eth0 before the install.
[Match]
MACAddress=52:54:00:aa:bb:01
Type=ether

[Network]
DHCP=no
Address=203.0.113.10/32
Address=2001:db8::10/64
DNS=185.12.64.1
DNS=2a01:4ff:ff00::add:1
Domains=example.com

[Route]
Gateway=172.31.1.1
GatewayOnLink=yes

[Route]
Gateway=fe80::1

[Route]
Destination=192.168.50.0/24
Gateway=172.31.1.2
GatewayOnLink=yes
Metric=50
`

const wantEth1 = `# Written by nivis from the network captured before the install.
# Interface eth1 before the install.
[Match]
MACAddress=52:54:00:aa:bb:02
Type=ether

[Link]
MTUBytes=9000

[Network]
DHCP=ipv4
IPv6AcceptRA=yes
DNS=185.12.64.1
DNS=2a01:4ff:ff00::add:1
Domains=example.com

[DHCPv4]
RequestAddress=10.0.0.5
`

const networkdUnit = `[Unit]
Description=Network Configuration

[Service]
ExecStart=!!/lib/systemd/systemd-networkd

[Install]
WantedBy=multi-user.target
Also=systemd-networkd.socket
Alias=dbus-org.freedesktop.network1.service
`

// fakeRoot is a minimal installed system.
func fakeRoot(t *testing.T) string {
	root := t.TempDir()
	for p, c := range map[string]string{
		"etc/passwd":              "root:x:0:0:root:/root:/bin/bash\n",
		"etc/hosts":               "127.0.0.1\tlocalhost\n127.0.1.1\told-name\n::1\tlocalhost ip6-localhost\n",
		"etc/hostname":            "old-name\n",
		"etc/machine-id":          "",
		"var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
		"lib/systemd/system/systemd-networkd.service":    networkdUnit,
		"lib/systemd/system/systemd-networkd.socket":     "[Socket]\n\n[Install]\nWantedBy=sockets.target\n",
		"root/.ssh/authorized_keys":                      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl old@key\n",
		"etc/systemd/network/10-nivis-stale.network":     "stale",
		"etc/systemd/network/20-user-kept.network":       "kept",
		"lib/systemd/system/systemd-resolved.service":    "[Install]\nWantedBy=multi-user.target\n",
		"lib/systemd/system/unrelated-template@.service": "",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newKey(t *testing.T) (ssh.PublicKey, []byte) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := ssh.NewPublicKey(pub)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pk, pem.EncodeToMemory(blk)
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, root, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestFinalizeNetworkd(t *testing.T) {
	root := fakeRoot(t)
	keyDir := t.TempDir()
	hostPub, hostPriv := newKey(t)
	os.WriteFile(filepath.Join(keyDir, "ssh_host_ed25519_key"), hostPriv, 0o600)
	userPub, _ := newKey(t)
	userLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(userPub))) + " user@laptop"
	res, err := Finalize(FinalizeOptions{
		Root:           root,
		Hostname:       "web1.example.com",
		Fstab:          "UUID=1234 / ext4 defaults 0 1",
		Crypttab:       "cryptroot UUID=abcd /etc/keys/root.key luks",
		AuthorizedKeys: []string{userLine, userLine, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl same-key-other-comment"},
		HostKeyDir:     keyDir,
		Network:        NetworkKeep,
		State:          capturedNetwork(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Renderer != "networkd" {
		t.Errorf("renderer %s", res.Renderer)
	}
	if got := read(t, root, "etc/systemd/network/10-nivis-eth0.network"); got != wantEth0 {
		t.Errorf("eth0:\n%s\nwant:\n%s", got, wantEth0)
	}
	if got := read(t, root, "etc/systemd/network/10-nivis-eth1.network"); got != wantEth1 {
		t.Errorf("eth1:\n%s\nwant:\n%s", got, wantEth1)
	}
	for _, p := range []string{"10-nivis-lo.network", "10-nivis-eth2.network", "10-nivis-stale.network"} {
		if _, err := os.Stat(filepath.Join(root, "etc/systemd/network", p)); err == nil {
			t.Errorf("%s written", p)
		}
	}
	if read(t, root, "etc/systemd/network/20-user-kept.network") != "kept" {
		t.Error("a file nivis did not write was touched")
	}
	if !strings.Contains(read(t, root, "etc/systemd/network/99-nivis-dhcp.network"), "DHCP=yes") {
		t.Error("no DHCP fallback")
	}
	// networkd enabled the way systemctl enable would.
	for link, target := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/lib/systemd/system/systemd-networkd.socket",
		"etc/systemd/system/dbus-org.freedesktop.network1.service":            "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/multi-user.target.wants/systemd-resolved.service": "/lib/systemd/system/systemd-resolved.service",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %s", link, got, err, target)
		}
	}
	// Tabs, hostname, hosts.
	if read(t, root, "etc/fstab") != "UUID=1234 / ext4 defaults 0 1\n" || mode(t, root, "etc/fstab") != 0o644 {
		t.Error("fstab")
	}
	if mode(t, root, "etc/crypttab") != 0o600 {
		t.Error("crypttab mode")
	}
	if read(t, root, "etc/hostname") != "web1\n" {
		t.Errorf("hostname %q", read(t, root, "etc/hostname"))
	}
	if want := "127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.com web1\n::1\tlocalhost ip6-localhost\n"; read(t, root, "etc/hosts") != want {
		t.Errorf("hosts:\n%s", read(t, root, "etc/hosts"))
	}
	// A fresh machine-id; D-Bus's copy follows it.
	id := strings.TrimSpace(read(t, root, "etc/machine-id"))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("machine-id %q", id)
	}
	if l, _ := os.Readlink(filepath.Join(root, "var/lib/dbus/machine-id")); l != "/etc/machine-id" {
		t.Errorf("dbus machine-id -> %q", l)
	}
	// authorized_keys merged by key, modes.
	ak := read(t, root, "root/.ssh/authorized_keys")
	if strings.Count(ak, "\n") != 2 || !strings.Contains(ak, "old@key") || !strings.Contains(ak, "user@laptop") {
		t.Errorf("authorized_keys:\n%s", ak)
	}
	if mode(t, root, "root/.ssh").Perm() != 0o700 || mode(t, root, "root/.ssh/authorized_keys") != 0o600 {
		t.Errorf("modes %v %v", mode(t, root, "root/.ssh"), mode(t, root, "root/.ssh/authorized_keys"))
	}
	// Host keys, the .pub derived.
	if read(t, root, "etc/ssh/ssh_host_ed25519_key") != string(hostPriv) || mode(t, root, "etc/ssh/ssh_host_ed25519_key") != 0o600 {
		t.Error("host private key")
	}
	if read(t, root, "etc/ssh/ssh_host_ed25519_key.pub") != string(ssh.MarshalAuthorizedKey(hostPub)) || mode(t, root, "etc/ssh/ssh_host_ed25519_key.pub") != 0o644 {
		t.Error("host public key")
	}
	// A second run: a different machine-id, nothing duplicated.
	if _, err := Finalize(FinalizeOptions{Root: root, AuthorizedKeys: []string{userLine}, Network: NetworkKeep, State: capturedNetwork()}); err != nil {
		t.Fatal(err)
	}
	if id2 := strings.TrimSpace(read(t, root, "etc/machine-id")); id2 == id {
		t.Error("machine-id not fresh")
	}
	if read(t, root, "root/.ssh/authorized_keys") != ak {
		t.Error("authorized_keys changed on a rerun")
	}
}

func TestFinalizeNetplanAndIfupdown(t *testing.T) {
	t.Run("netplan", func(t *testing.T) {
		root := fakeRoot(t)
		os.MkdirAll(filepath.Join(root, "etc/netplan"), 0o755)
		res, err := Finalize(FinalizeOptions{Root: root, Network: NetworkKeep, State: capturedNetwork()})
		if err != nil {
			t.Fatal(err)
		}
		if res.Renderer != "netplan" || mode(t, root, "etc/netplan/90-nivis.yaml") != 0o600 {
			t.Fatalf("renderer %s", res.Renderer)
		}
		var doc struct {
			Network npNetwork `yaml:"network"`
		}
		if err := yaml.Unmarshal([]byte(read(t, root, "etc/netplan/90-nivis.yaml")), &doc); err != nil {
			t.Fatal(err)
		}
		e0 := doc.Network.Ethernets["eth0"]
		if e0 == nil || e0.Match["macaddress"] != "52:54:00:aa:bb:01" || e0.DHCP4 || len(e0.Addresses) != 2 {
			t.Fatalf("eth0: %+v", e0)
		}
		if r := e0.Routes[0]; r.To != "default" || r.Via != "172.31.1.1" || !r.OnLink {
			t.Errorf("eth0 route %+v", r)
		}
		if e1 := doc.Network.Ethernets["eth1"]; e1 == nil || !e1.DHCP4 || e1.MTU != 9000 || e1.AcceptRA == nil || !*e1.AcceptRA {
			t.Errorf("eth1: %+v", e1)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/systemd/network/10-nivis-eth0.network")); err == nil {
			t.Error("networkd files written next to netplan")
		}
	})
	t.Run("ifupdown", func(t *testing.T) {
		root := fakeRoot(t)
		os.MkdirAll(filepath.Join(root, "etc/network"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/network/interfaces"), []byte("source /etc/network/interfaces.d/*\n"), 0o644)
		os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
		os.WriteFile(filepath.Join(root, "sbin/ifup"), nil, 0o755)
		os.Remove(filepath.Join(root, "lib/systemd/system/systemd-resolved.service"))
		res, err := Finalize(FinalizeOptions{Root: root, Network: NetworkKeep, State: capturedNetwork()})
		if err != nil {
			t.Fatal(err)
		}
		if res.Renderer != "ifupdown" {
			t.Fatalf("renderer %s", res.Renderer)
		}
		got := read(t, root, "etc/network/interfaces.d/90-nivis")
		for _, want := range []string{"iface eth0 inet static\n    address 203.0.113.10/32\n", "post-up ip -4 route replace default via 172.31.1.1 dev eth0 onlink", "iface eth0 inet6 static\n    address 2001:db8::10/64", "iface eth1 inet dhcp\n    mtu 9000", "iface eth1 inet6 auto"} {
			if !strings.Contains(got, want) {
				t.Errorf("missing %q in:\n%s", want, got)
			}
		}
		if !strings.Contains(read(t, root, "etc/systemd/network/10-nivis-eth0.link"), "Name=eth0") {
			t.Error("no .link pinning eth0's name")
		}
		if !strings.Contains(read(t, root, "etc/resolv.conf"), "nameserver 185.12.64.1") {
			t.Error("no static resolv.conf without resolved")
		}
	})
	t.Run("dhcp", func(t *testing.T) {
		root := fakeRoot(t)
		if _, err := Finalize(FinalizeOptions{Root: root, Network: NetworkDHCP, State: capturedNetwork()}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"eth0", "eth1", "eth2"} {
			got := read(t, root, "etc/systemd/network/10-nivis-"+n+".network")
			if !strings.Contains(got, "DHCP=yes") || strings.Contains(got, "\nAddress=") || strings.Contains(got, "[Route]") || strings.Contains(got, "DNS=") {
				t.Errorf("%s:\n%s", n, got)
			}
		}
	})
}

func TestFinalizeRefusesBadHostname(t *testing.T) {
	root := fakeRoot(t)
	_, err := Finalize(FinalizeOptions{Root: root, Hostname: "web1\n127.0.0.1 evil", Network: NetworkNone})
	if exitcode.Of(err) != exitcode.Usage {
		t.Fatalf("got %v", err)
	}
	if read(t, root, "etc/hostname") != "old-name\n" {
		t.Error("hostname written anyway")
	}
}

func TestFinalizeRefusesUnfinishedRoot(t *testing.T) {
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, StateFile), []byte(`{"state":"tainted"}`), 0o600)
	_, err := Finalize(FinalizeOptions{Root: root, Network: NetworkNone})
	if exitcode.Of(err) != exitcode.Precondition || !strings.Contains(fmt.Sprint(err), "tainted") {
		t.Fatalf("got %v", err)
	}
}

// TestFinalizeStaysInRoot: an installed tree whose /etc is a symlink to the
// host's /etc must not make Finalize write the host's files.
func TestFinalizeStaysInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(root, "etc"))
	_, err := Finalize(FinalizeOptions{Root: root, Hostname: "x", Network: NetworkNone})
	if err == nil {
		t.Error("Finalize wrote through an /etc symlink leaving the root")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the root: %v", ents)
	}
}

func TestFinalizeChown(t *testing.T) {
	requireRoot(t)
	root := fakeRoot(t)
	os.MkdirAll(filepath.Join(root, "srv/app/data"), 0o755)
	os.WriteFile(filepath.Join(root, "srv/app/data/f"), nil, 0o644)
	os.Symlink("/etc/passwd", filepath.Join(root, "srv/app/link"))
	c, err := ParseChown("/srv/app", "1001:1002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Finalize(FinalizeOptions{Root: root, Network: NetworkNone, Chown: []Chown{c}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"srv/app", "srv/app/data", "srv/app/data/f", "srv/app/link"} {
		if s := lstat(t, filepath.Join(root, p)); s.Uid != 1001 || s.Gid != 1002 {
			t.Errorf("%s owned by %d:%d", p, s.Uid, s.Gid)
		}
	}
	if s := lstat(t, "/etc/passwd"); s.Uid != 0 {
		t.Fatal("the host's /etc/passwd changed owner")
	}
	if _, err := ParseChown("/x", "www-data:www-data"); exitcode.Of(err) != exitcode.Usage {
		t.Error("names must be refused")
	}
}

func TestWriteSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys/root.key")
	f := SecretFile{Path: p, Data: []byte("hunter2")}
	if s := fmt.Sprintf("%v %+v %#v", f, f, f); strings.Contains(s, "hunter2") {
		t.Fatalf("secret printed: %s", s)
	}
	done, err := WriteSecrets([]SecretFile{f})
	if err != nil || len(done) != 1 {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hunter2" {
		t.Fatal("content")
	}
	if fi, _ := os.Stat(p); fi.Mode() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Dir(p)); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode())
	}
	if _, err := WriteSecrets([]SecretFile{{Path: "relative"}}); exitcode.Of(err) != exitcode.Usage {
		t.Error("relative path accepted")
	}
}
