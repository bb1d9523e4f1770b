//go:build linux

package vmtests

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/facts"
)

// TestSmoke is the VM smoke test CI runs: boot the guest, run `nivis facts`
// through the forwarded port, check what it says against what QEMU was told
// (memory, disk, MAC), reboot and see a new boot_id.
func TestSmoke(t *testing.T) {
	Require(t)
	start := time.Now()
	nivis := requireNivis(t)
	Stage(t, "build-nivis", start)
	ctx := context.Background()
	const memMiB = 1024
	img := TestImage(t, DefaultSpec())

	start = time.Now()
	vm := StartVM(t, Config{Image: img, MemoryMiB: memMiB, CPUs: 2, MAC: DefaultMAC})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "boot", start)

	start = time.Now()
	f := nivisFacts(t, nivis, vm)
	Stage(t, "facts", start)

	if f.BootID == "" {
		t.Error("facts: empty boot_id")
	}
	given := uint64(memMiB) << 20
	if got := f.Memory.TotalBytes; got > given || got < given*9/10 {
		t.Errorf("facts: memory.total_bytes = %d, want within 10%% below the %d QEMU gave", got, given)
	}
	var disks []string
	for _, d := range f.Disks {
		disks = append(disks, d.Name)
	}
	if !contains(disks, "vda") {
		t.Errorf("facts: disks %v lack vda", disks)
	}
	var macs []string
	for _, i := range f.Network.Interfaces {
		macs = append(macs, i.MAC)
	}
	if !contains(macs, DefaultMAC) {
		t.Errorf("facts: interface MACs %v lack %s", macs, DefaultMAC)
	}
	if f.Hostname != img.Spec.Hostname {
		t.Errorf("facts: hostname %q, want %q", f.Hostname, img.Spec.Hostname)
	}

	start = time.Now()
	if err := vm.Reboot(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "reboot", start)
	start = time.Now()
	f2 := nivisFacts(t, nivis, vm)
	Stage(t, "facts-after-reboot", start)
	if f2.BootID == "" || f2.BootID == f.BootID {
		t.Errorf("boot_id after reboot %q, before %q: want a new one", f2.BootID, f.BootID)
	}
}

// nivisFacts runs `nivis facts --json` against the guest the way a user
// would: the guest's key, a known_hosts file that learns the host key on
// first use and checks it afterwards (also across the reboot).
func nivisFacts(t *testing.T, nivis string, vm *VM) *facts.Facts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"facts", "--json",
		"-p", strconv.Itoa(vm.Port), "-i", vm.KeyFile,
		"-o", "UserKnownHostsFile=" + vm.KnownHosts,
		"-o", "StrictHostKeyChecking=accept-new",
		SSHTarget}
	cmd := exec.CommandContext(ctx, nivis, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nivis %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var f facts.Facts
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		t.Fatalf("nivis facts --json printed no JSON facts: %v\n%s", err, tail(stdout.String(), 2048))
	}
	if f.SchemaVersion != facts.SchemaVersion {
		t.Fatalf("facts schema_version %d, want %d", f.SchemaVersion, facts.SchemaVersion)
	}
	return &f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
