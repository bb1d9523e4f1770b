//go:build linux

package vmtests

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nivisRun runs the nivis CLI against the guest with the guest's key and a
// known_hosts file that learns the key on first use and checks it after.
func nivisRun(t *testing.T, nivis string, vm *VM, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, args[:1]...), "-p", strconv.Itoa(vm.Port), "-i", vm.KeyFile,
		"-o", "UserKnownHostsFile="+vm.KnownHosts, "-o", "StrictHostKeyChecking=accept-new")
	full = append(full, args[1:]...)
	full = append(full, SSHTarget)
	cmd := exec.CommandContext(ctx, nivis, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("nivis %v: %v", full, err)
	}
	return stdout.String(), stderr.String(), code
}

// strictSSH runs a command with plain OpenSSH, strict host key checking on,
// against the known_hosts nivis recorded before the kexec.
func strictSSH(t *testing.T, vm *VM, tty bool, command string) (string, error) {
	t.Helper()
	args := []string{"-p", strconv.Itoa(vm.Port), "-i", vm.KeyFile, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + vm.KnownHosts,
		"-o", "ConnectTimeout=20"}
	if tty {
		args = append(args, "-tt")
	}
	args = append(args, SSHTarget, command)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
	return string(out), err
}

// TestRescue: a Debian guest is kexec'd into the in-RAM rescue system and
// plain OpenSSH, with the known_hosts from before and strict checking,
// gets in on the same address and port.
func TestRescue(t *testing.T) {
	rescueAndCheck(t, Config{MemoryMiB: 1024, CPUs: 2, MAC: DefaultMAC}, "")
}

// TestRescueStaticNetwork: the guest has a static address and no DHCP
// client; the rescue system must set that address back itself (QEMU's
// DHCP would hand out another one, which the forwarded port never reaches).
func TestRescueStaticNetwork(t *testing.T) {
	rescueAndCheck(t, Config{MemoryMiB: 1024, CPUs: 2, MAC: DefaultMAC, StaticNetwork: true}, staticAddr+"/24")
}

// TestRescueSmallMemory: the whole takeover in a 512 MiB guest
// (nixos-anywhere asks for 1.5 GB).
func TestRescueSmallMemory(t *testing.T) {
	rescueAndCheck(t, Config{MemoryMiB: 512, CPUs: 1, MAC: DefaultMAC}, "")
}

func rescueAndCheck(t *testing.T, cfg Config, wantAddr string) {
	Require(t)
	nivis := requireNivis(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	start := time.Now()
	cfg.Image = img
	vm := StartVM(t, cfg)
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "boot", start)
	before, err := vm.BootID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	out, errOut, code := nivisRun(t, nivis, vm, 15*time.Minute, "rescue", "--rescue-timeout", "20m", "-v")
	Stage(t, "rescue", start)
	if code != 0 {
		t.Fatalf("nivis rescue exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("nivis rescue output:\n%s\n%s", out, tail(errOut, 4000))
	if !strings.Contains(out, "nivis rescue system") {
		t.Errorf("no login banner in output:\n%s", out)
	}

	checks := []struct{ cmd, want string }{
		{"cat /proc/cmdline", "console=ttyS0"},
		{"cat /run/nivis/rescue.json", before[:0]}, // exists
		{"cat /proc/modules", "virtio_net"},
		{"cat /proc/sys/kernel/hostname", img.Spec.Hostname},
	}
	for _, c := range checks {
		got, err := strictSSH(t, vm, false, c.cmd)
		if err != nil {
			t.Errorf("ssh %q: %v\n%s", c.cmd, err, got)
			continue
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("ssh %q = %q, want it to contain %q", c.cmd, got, c.want)
		}
	}
	if got, err := strictSSH(t, vm, false, "cat /proc/sys/kernel/random/boot_id"); err != nil || strings.TrimSpace(got) == before {
		t.Errorf("boot_id after rescue %q (err %v), before %q: want a new one", got, err, before)
	}
	if got, _ := strictSSH(t, vm, false, "cat /proc/mounts"); strings.Contains(got, "/dev/vda") {
		t.Errorf("the old root disk is mounted in the rescue system:\n%s", got)
	}
	if wantAddr != "" {
		if got, err := strictSSH(t, vm, false, "cat /run/nivis/rescue.json"); err != nil || !strings.Contains(got, wantAddr) {
			t.Errorf("rescue marker %q (err %v) lacks the static address %s", got, err, wantAddr)
		}
	}
	if got, err := strictSSH(t, vm, true, "echo pty-$((6*7))"); err != nil || !strings.Contains(got, "pty-42") {
		t.Errorf("PTY command: %q %v", got, err)
	}
	// nivis itself finds the rescue system and does not kexec again.
	out, errOut, code = nivisRun(t, nivis, vm, 5*time.Minute, "rescue")
	if code != 0 || !strings.Contains(errOut+out, "already runs the nivis rescue system") {
		t.Errorf("second rescue exited %d:\n%s\n%s", code, out, errOut)
	}
}

// TestRescuePreflightRefusal: a host with kexec_load_disabled=1 gets a
// clear error, exit 4, and keeps running as it was.
func TestRescuePreflightRefusal(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	vm := StartVM(t, Config{Image: img, MemoryMiB: 1024, CPUs: 2, MAC: DefaultMAC})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	before, _ := vm.BootID(ctx)
	if _, err := vm.Run(ctx, "sysctl -w kernel.kexec_load_disabled=1"); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := nivisRun(t, nivis, vm, 10*time.Minute, "rescue")
	if code != 4 {
		t.Fatalf("nivis rescue exited %d, want 4 (precondition)\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "kexec_load_disabled") {
		t.Errorf("error does not name kexec_load_disabled:\n%s", errOut)
	}
	after, err := vm.BootID(ctx)
	if err != nil || after != before {
		t.Errorf("guest changed: boot_id %q -> %q (%v)", before, after, err)
	}
}

// TestRescueWatchdog: kexec with nobody reconnecting; the rescue system
// reboots into the old system by itself, disks untouched.
func TestRescueWatchdog(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	vm := StartVM(t, Config{Image: img, MemoryMiB: 1024, CPUs: 2, MAC: DefaultMAC})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	before, _ := vm.BootID(ctx)
	out, errOut, code := nivisRun(t, nivis, vm, 10*time.Minute, "rescue", "--no-wait", "--rescue-timeout", "45s")
	if code != 0 {
		t.Fatalf("nivis rescue --no-wait exited %d\n%s\n%s", code, out, errOut)
	}
	// The guest goes rescue -> (45 s, nobody logs in) -> reboot into its
	// own system. Any SSH login would disarm the watchdog, so watch the
	// serial console for its message instead of probing.
	deadline := time.Now().Add(10 * time.Minute)
	fired := false
	for time.Now().Before(deadline) && !fired {
		time.Sleep(5 * time.Second)
		fired = strings.Contains(vm.SerialTail(1<<20), "watchdog: no client logged in")
	}
	if !fired {
		t.Fatalf("the rescue watchdog never fired\n%s", vm.SerialTail(1<<16))
	}
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	got, err := vm.Run(ctx, "cat /etc/os-release; cat /proc/sys/kernel/random/boot_id; test -e /run/nivis/rescue.json && echo IN-RESCUE; true")
	if err == nil && strings.Contains(got, "Debian") && !strings.Contains(got, "IN-RESCUE") && !strings.Contains(got, before) {
		return // back in the old system, a new boot
	}
	t.Fatalf("the guest did not come back into its own system after the watchdog (%v):\n%s\n%s", err, got, vm.Logs(ctx))
}
