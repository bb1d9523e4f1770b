//go:build linux

package rescue

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
)

const runChildEnv = "NIVIS_RESCUE_RUN_CHILD"

// TestRun boots the whole rescue sequence (Run) in fresh mount, network
// and UTS namespaces: carry-over in, network restored by MAC, SSH on the
// carried ports with the carried host key, marker, watchdog, reboot
// request. Only reboot(2), the disk release and the pseudo mounts are
// replaced; modules are absent (this kernel has none).
func TestRun(t *testing.T) {
	requireRoot(t)
	if os.Getenv(runChildEnv) != "" {
		t.Skip("this is the child")
	}
	for _, scenario := range []string{"login", "watchdog"} {
		t.Run(scenario, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRunChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), runChildEnv+"="+scenario)
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS}
			out, err := cmd.CombinedOutput()
			t.Logf("child:\n%s", out)
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if !strings.Contains(string(out), "--- PASS: TestRunChild") {
				t.Fatal("the child test did not pass")
			}
		})
	}
}

func writeHostKey(t *testing.T, path string, key any) ssh.Signer {
	t.Helper()
	blk, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunChild(t *testing.T) {
	scenario := os.Getenv(runChildEnv)
	if scenario == "" {
		t.Skip("runs inside the namespaces TestRun makes")
	}
	// Private mounts: a sysfs that shows this network namespace, and /run
	// and /tmp of our own.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	must(unix.Mount("sysfs", "/sys", "sysfs", 0, ""))
	must(unix.Mount("tmpfs", "/run", "tmpfs", 0, ""))
	must(unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	dir := t.TempDir()
	for _, d := range []string{"hostkeys", "etc"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}

	vethPair(t, "eth0", "02:00:00:00:00:01", "peer0", "192.0.2.2/24")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	hostEd := writeHostKey(t, filepath.Join(dir, "hostkeys", "ssh_host_ed25519_key"), edKey)
	writeHostKey(t, filepath.Join(dir, "hostkeys", "ssh_host_rsa_key"), rsaKey)
	client := newSigner(t)

	timeout := 120
	if scenario == "watchdog" {
		timeout = 2
	}
	st := carry.State{
		Version: 1, Hostname: "rescued-test", MachineID: "0123456789abcdef0123456789abcdef",
		KernelRelease: "0.0.0-not-this-one",
		SSHPorts:      []int{22, 2222},
		AuthorizedKeys: []string{
			`command="/bin/false" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newSigner(t).PublicKey()))),
			strings.TrimSpace(string(ssh.MarshalAuthorizedKey(client.PublicKey()))) + " operator@laptop",
		},
		HostKeys: []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"},
		Network: carry.Network{
			Interfaces: []carry.Interface{{Name: "ens3", MAC: "02:00:00:00:00:01", MTU: 1500, Up: true, Addrs: []carry.Addr{{CIDR: "192.0.2.10/24"}}}},
			Routes:     []carry.Route{{Family: 4, Dst: "default", Gateway: "192.0.2.1", Dev: "ens3", Proto: "static"}},
			DNS:        carry.DNS{Nameservers: []string{"9.9.9.9"}},
		},
		RescueTimeoutSeconds: timeout,
		EarlyModules:         []string{"virtio_rng"},
	}
	must(writeJSONAtomic(filepath.Join(dir, "carry.json"), st))

	reboots := make(chan int, 4)
	o := DefaultOptions()
	o.CarryFile = filepath.Join(dir, "carry.json")
	o.HostKeyDir = filepath.Join(dir, "hostkeys")
	o.ModulesRoot = filepath.Join(dir, "modules")
	o.MarkerPath = filepath.Join(dir, "run", "rescue.json")
	o.LogFile = filepath.Join(dir, "run", "rescue.log")
	o.RebootRequest = filepath.Join(dir, "run", "reboot.json")
	o.Shells = []string{"/bin/sh"}
	o.Reboot = func(cmd int) error { reboots <- cmd; return nil }
	o.FatalDelay = time.Second
	o.Console, o.Kmsg, o.EtcDir = "", "", filepath.Join(dir, "etc")
	o.ConsoleShell = false
	o.mount = func() ([]string, []string) { return nil, nil }
	o.releaseDisks = func() []string { return nil }
	start := time.Now()
	go Run(context.Background(), o)

	var m *Marker
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if m, err = ReadMarker(o.MarkerPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(o.LogFile)
			t.Fatalf("no marker after 60s; log:\n%s", log)
		}
	}
	t.Logf("marker after %s: %+v", time.Since(start).Round(time.Millisecond), m)
	if m.PID != os.Getpid() || m.Hostname != "rescued-test" || m.BootID == "" {
		t.Errorf("marker: pid %d hostname %q", m.PID, m.Hostname)
	}
	if len(m.SSHPorts) != 2 || m.SSHPorts[0] != 22 || m.SSHPorts[1] != 2222 {
		t.Errorf("marker ports %v", m.SSHPorts)
	}
	if len(m.HostKeys) != 2 || m.HostKeys[0] != ssh.FingerprintSHA256(hostEd.PublicKey()) || m.Ephemeral {
		t.Errorf("marker host keys %v ephemeral %v", m.HostKeys, m.Ephemeral)
	}
	if m.WatchdogDeadline.IsZero() {
		t.Error("marker: no watchdog deadline before any login")
	}
	var ens3 *MarkerLink
	for i := range m.Links {
		if m.Links[i].Name == "ens3" {
			ens3 = &m.Links[i]
		}
	}
	if ens3 == nil || ens3.OldName != "" || ens3.MAC != "02:00:00:00:00:01" || !strings.Contains(strings.Join(ens3.Addrs, " "), "192.0.2.10/24") {
		t.Errorf("marker links: %+v", m.Links)
	}
	wantFailures := []string{"modules: carried for kernel 0.0.0-not-this-one", "modules: module index"}
	if len(m.Failures) != len(wantFailures) {
		t.Errorf("marker failures: %q", m.Failures)
	}
	for i := range min(len(m.Failures), len(wantFailures)) {
		if !strings.HasPrefix(m.Failures[i], wantFailures[i]) {
			t.Errorf("failure %d: %q, want %q...", i, m.Failures[i], wantFailures[i])
		}
	}
	if len(m.Skipped) != 1 || !strings.Contains(m.Skipped[0], "option command") {
		t.Errorf("marker skipped: %q", m.Skipped)
	}
	if b, _ := os.ReadFile(filepath.Join(o.EtcDir, "resolv.conf")); !strings.Contains(string(b), "nameserver 9.9.9.9") {
		t.Errorf("resolv.conf: %q", b)
	}
	if h, _ := os.Hostname(); h != "rescued-test" {
		t.Errorf("hostname %q", h)
	}

	if scenario == "watchdog" {
		select {
		case cmd := <-reboots:
			if cmd != unix.LINUX_REBOOT_CMD_RESTART {
				t.Errorf("watchdog reboot cmd %#x", cmd)
			}
			t.Logf("watchdog rebooted %s after start", time.Since(start).Round(time.Millisecond))
		case <-time.After(15 * time.Second):
			t.Fatal("the watchdog did not reboot")
		}
		return
	}

	// Log in on both ports, over IPv4 and IPv6, with the carried host key.
	for _, addr := range []string{"127.0.0.1:22", "[::1]:2222", "192.0.2.10:22"} {
		c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: "debian", Auth: []ssh.AuthMethod{ssh.PublicKeys(client)},
			HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
			HostKeyCallback:   ssh.FixedHostKey(hostEd.PublicKey()),
			Timeout:           10 * time.Second,
		})
		if err != nil {
			t.Fatalf("ssh %s: %v", addr, err)
		}
		out, _, err := run(t, c, "cat /proc/sys/kernel/hostname; echo $HOME; echo $PATH", "")
		c.Close()
		if err != nil || !strings.HasPrefix(out, "rescued-test\n/root\n") || !strings.Contains(out, ":/nivis\n") {
			t.Errorf("ssh %s: %q %v", addr, out, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m, err := ReadMarker(o.MarkerPath); err == nil && m.WatchdogDeadline.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the marker still shows a watchdog deadline after a login")
		}
	}

	// The rescue-reboot verb's path: request file plus SIGUSR1.
	res, err := requestReboot(o.MarkerPath, o.RebootRequest, RebootRequest{DelaySeconds: 0, PowerOff: true})
	if err != nil || res.PID != os.Getpid() {
		t.Fatalf("requestReboot: %+v %v", res, err)
	}
	select {
	case cmd := <-reboots:
		if cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
			t.Errorf("reboot cmd %#x, want power off", cmd)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reboot request was not acted on")
	}
	log, _ := os.ReadFile(o.LogFile)
	for _, want := range []string{"rescue system ready", "watchdog: disarmed by the first login", "power off requested"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if l, err := netlink.LinkByName("ens3"); err != nil || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("ens3: %v", err)
	}
}

func TestRequestRebootOutsideRescue(t *testing.T) {
	_, err := requestReboot(filepath.Join(t.TempDir(), "none.json"), filepath.Join(t.TempDir(), "req.json"), RebootRequest{})
	if err == nil || !strings.Contains(err.Error(), "not running the nivis rescue system") {
		t.Fatalf("err = %v", err)
	}
}
