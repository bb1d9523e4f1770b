//go:build linux

package initramfs

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/internal/testsshd"
)

// inNetns runs fn on a thread moved into a new, empty network namespace,
// and moves the thread back afterwards (it may be the main thread, which
// Go never retires).
func inNetns(t *testing.T, fn func()) {
	t.Helper()
	requireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Errorf("%v", err)
			return // the thread stays locked and is retired
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare(CLONE_NEWNET): %v", err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("back to the original netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

// TestCaptureNetwork builds a host network in a namespace (a NIC with a
// static, a DHCP-like and an IPv6 address, an onlink default gateway, a
// static route with a metric, IPv6 default, a bridge with a port) and
// checks what the carry-over takes from the facts' reading of it.
func TestCaptureNetwork(t *testing.T) {
	var nw carry.Network
	var captureErr error
	inNetns(t, func() {
		mac, _ := net.ParseMAC("02:00:00:00:00:aa")
		steps := []func() error{
			func() error {
				return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0", HardwareAddr: mac, MTU: 1450}, PeerName: "v1"})
			},
			func() error { return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}) },
		}
		for _, s := range steps {
			if err := s(); err != nil {
				t.Errorf("setup: %v", err)
				return
			}
		}
		v0, _ := netlink.LinkByName("v0")
		v1, _ := netlink.LinkByName("v1")
		br, _ := netlink.LinkByName("br0")
		for _, err := range []error{
			netlink.LinkSetMaster(v1, br),
			netlink.LinkSetUp(v0), netlink.LinkSetUp(v1), netlink.LinkSetUp(br),
			netlink.AddrAdd(v0, &netlink.Addr{IPNet: mustCIDR(t, "192.0.2.10/24")}),
			netlink.AddrAdd(v0, &netlink.Addr{IPNet: mustCIDR(t, "198.51.100.5/24"), ValidLft: 300, PreferedLft: 300}),
			netlink.AddrAdd(v0, &netlink.Addr{IPNet: mustCIDR(t, "2001:db8::10/64"), Flags: unix.IFA_F_NODAD}),
			netlink.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Flags: int(netlink.FLAG_ONLINK)}),
			netlink.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Dst: mustCIDR(t, "203.0.113.0/24"), Gw: net.ParseIP("192.0.2.254"), Protocol: unix.RTPROT_STATIC, Priority: 50}),
			netlink.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Gw: net.ParseIP("2001:db8::1")}),
		} {
			if err != nil {
				t.Errorf("setup: %v", err)
				return
			}
		}
		f := facts.GatherRoot(context.Background(), t.TempDir())
		nw, _ = carryNetwork(f.Network)
		captureErr = f.NetworkError()
	})
	if t.Failed() {
		return
	}
	if captureErr != nil {
		t.Fatal(captureErr)
	}
	ifs := map[string]carry.Interface{}
	for _, i := range nw.Interfaces {
		ifs[i.Name] = i
	}
	if _, ok := ifs["lo"]; ok {
		t.Error("loopback carried")
	}
	v0 := ifs["v0"]
	if v0.MAC != "02:00:00:00:00:aa" || v0.MTU != 1450 || !v0.Up || v0.Kind != "veth" {
		t.Errorf("v0 = %+v", v0)
	}
	wantAddrs := []carry.Addr{{CIDR: "192.0.2.10/24"}, {CIDR: "198.51.100.5/24", Dynamic: true}, {CIDR: "2001:db8::10/64"}}
	if !reflect.DeepEqual(v0.Addrs, wantAddrs) {
		t.Errorf("v0 addresses %+v, want %+v (no link-local, DHCP-like one dynamic)", v0.Addrs, wantAddrs)
	}
	if br := ifs["br0"]; br.Kind != "bridge" || !reflect.DeepEqual(br.Slaves, []string{"v1"}) {
		t.Errorf("br0 = %+v", br)
	}
	want := []carry.Route{
		{Family: 4, Dst: "default", Gateway: "192.0.2.1", Dev: "v0", OnLink: true, Proto: "boot"},
		{Family: 4, Dst: "203.0.113.0/24", Gateway: "192.0.2.254", Dev: "v0", Metric: 50, Proto: "static"},
		{Family: 6, Dst: "default", Gateway: "2001:db8::1", Dev: "v0", Metric: 1024, Proto: "boot"},
	}
	if !reflect.DeepEqual(nw.Routes, want) {
		t.Errorf("routes\n  %+v\nwant\n  %+v", nw.Routes, want)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEo6Wl3bOtO6h1a6WQbvT8oALgUoVc0w7A1JgZb5W0ll alice"
	keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6yHvzI4m7cYb3m2sWwZ0sYhQ8wG6YVvKHRt0ZQ7vhm bob"
	keyC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK3Zy2Cz5mVQ4jP4Jk3s8mC5nYJ5P2rW8S1x0a9o3X1B client"
)

func TestCaptureIdentityKeysAndDNS(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"root/.ssh/authorized_keys":        "# comment\n" + keyA + "\nnot a key\n" + keyA + "\n",
		"etc/ssh/authorized_keys.d/deploy": `command="/bin/true" ` + keyB + "\n",
		"etc/ssh/ssh_host_ed25519_key":     "-----BEGIN OPENSSH PRIVATE KEY-----\n",
		"etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA host\n",
		"etc/ssh/ssh_host_rsa_key":         "-----BEGIN OPENSSH PRIVATE KEY-----\n",
		"etc/machine-id":                   "4c4c4544004b4a1080\n",
		"etc/resolv.conf":                  "nameserver 127.0.0.53\nsearch corp.example\n",
		"run/systemd/resolve/resolv.conf":  "nameserver 192.0.2.53\nnameserver 2001:db8::53\n",
		"proc/sys/kernel/random/boot_id":   "11111111-2222-3333-4444-555555555555\n",
	})
	ctx := context.Background()
	c, err := Capture(facts.GatherRoot(ctx, root), CaptureOptions{Root: root, LoginUser: "root", ExtraKeys: []string{keyC, keyB}, SSHPorts: []int{2222}})
	if err != nil {
		t.Fatal(err)
	}
	st := c.State
	// Duplicates (by key, whatever the options) and junk dropped; options kept.
	wantKeys := []string{keyA, `command="/bin/true" ` + keyB, keyC}
	if !reflect.DeepEqual(st.AuthorizedKeys, wantKeys) {
		t.Errorf("keys\n  %q\nwant\n  %q", st.AuthorizedKeys, wantKeys)
	}
	if len(c.Warnings) == 0 || !strings.Contains(strings.Join(c.Warnings, "\n"), "not an SSH public key") {
		t.Errorf("warnings %q: want one about the junk line", c.Warnings)
	}
	if len(c.HostKeys) != 3 || c.HostKeys["ssh_host_ed25519_key.pub"] == nil {
		t.Errorf("host keys %v", len(c.HostKeys))
	}
	if st.MachineID != "4c4c4544004b4a1080" || st.BootID == "" || st.KernelRelease == "" || st.Hostname == "" {
		t.Errorf("identity %+v", st)
	}
	if !reflect.DeepEqual(st.SSHPorts, []int{2222}) {
		t.Errorf("ports %v", st.SSHPorts)
	}
	// Behind systemd-resolved's stub, the real upstreams are carried.
	wantDNS := carry.DNS{Nameservers: []string{"192.0.2.53", "2001:db8::53"}, Search: []string{"corp.example"}}
	if !reflect.DeepEqual(st.Network.DNS, wantDNS) {
		t.Errorf("dns %+v, want %+v", st.Network.DNS, wantDNS)
	}

	// Nobody could log in: refuse.
	empty := t.TempDir()
	if _, err := Capture(facts.GatherRoot(ctx, empty), CaptureOptions{Root: empty, LoginUser: "root", SSHPorts: []int{22}}); err == nil || !strings.Contains(err.Error(), "nobody could log in") {
		t.Errorf("no keys: err = %v", err)
	}
}

// TestSSHPortsFromFacts finds a real sshd's listening port in the facts
// snapshot; without a listener the sshd_config ports (Port and
// ListenAddress lines) are carried.
func TestSSHPortsFromFacts(t *testing.T) {
	s := testsshd.Start(t)
	f, err := facts.Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ports := (&Captured{}).sshPorts(f.SSH)
	if !slices.Contains(ports, s.Port) {
		t.Errorf("sshd listens on %d, found %v", s.Port, ports)
	}

	t.Setenv("SSH_CONNECTION", "")
	c := &Captured{}
	got := c.sshPorts(facts.SSH{ConfigPorts: []int{22, 2222}, ListenAddresses: []string{"[::1]:2200", "0.0.0.0"}})
	if !reflect.DeepEqual(got, []int{22, 2200, 2222}) || len(c.Warnings) != 1 {
		t.Errorf("ports %v warnings %q, want [22 2200 2222] and one warning", got, c.Warnings)
	}
}
