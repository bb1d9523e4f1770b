//go:build linux

package kexec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/kexec"
	"github.com/nivis/nivis/vmtests"
)

// realAgent is set (NIVIS_KEXEC_TEST_AGENT=nivis) to carry the real nivis
// binary instead of the test agent: the image then has its real size, and
// the test stops at u-root's banner (what the rescue agent does next is
// proven by the rescue tests).
var realAgent = os.Getenv("NIVIS_KEXEC_TEST_AGENT") == "nivis"

// buildTestAgent builds kexec/internal/testagent (or cmd/nivis) for the
// guest the way `make` builds nivis (static, stripped), with the embedded
// base.
func buildTestAgent(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../initramfs/base/base-amd64.cpio.zst"); err != nil {
		t.Fatalf("no rescue base image: run `make base` first (%v)", err)
	}
	out := filepath.Join(t.TempDir(), "nivis")
	pkg := "./internal/testagent"
	if realAgent {
		pkg = "../cmd/nivis"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testagent: %v\n%s", err, b)
	}
	return out
}

// call runs `/root/nivis agent VERB` in the guest and decodes the result.
func call(t *testing.T, vm *vmtests.VM, verb string, req, resp any) {
	t.Helper()
	in, _ := json.Marshal(req)
	var out, errb bytes.Buffer
	err := vm.RunIO(context.Background(), "/root/nivis agent "+verb, bytes.NewReader(in), &out, &errb)
	var result json.RawMessage
	for _, line := range strings.Split(out.String(), "\n") {
		var m struct {
			Type   string          `json:"type"`
			Result json.RawMessage `json:"result"`
			Error  string          `json:"error"`
			Event  *struct {
				Level, Message, Step string
			} `json:"event"`
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch m.Type {
		case "event":
			t.Logf("%s: %s %s %s", verb, m.Event.Step, m.Event.Level, m.Event.Message)
		case "error":
			t.Fatalf("%s: %s", verb, m.Error)
		case "result":
			result = m.Result
		}
	}
	if err != nil || result == nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", verb, err, out.String(), errb.String())
	}
	if resp != nil {
		if err := json.Unmarshal(result, resp); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKexecIntoRescueImage boots a Debian guest with 512 MiB of RAM, has
// the agent assemble the rescue image there and kexec into it, and watches
// the serial console: the second kernel gets nivis's command line, u-root's
// init starts, and the agent runs as uinit with the carry-over, modules and
// tools in place.
func TestKexecIntoRescueImage(t *testing.T) {
	vmtests.Require(t)
	ctx := context.Background()
	agent := buildTestAgent(t)
	img := vmtests.TestImage(t, vmtests.DefaultSpec())
	vm := vmtests.StartVM(t, vmtests.Config{Image: img, MemoryMiB: 512})
	start := time.Now()
	if _, err := vm.WaitSSH(ctx, vmtests.SSHTimeout); err != nil {
		t.Fatal(err)
	}
	vmtests.Stage(t, "boot", start)

	f, err := os.Open(agent)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := vm.RunIO(ctx, "cat > /root/nivis && chmod 755 /root/nivis", f, nil, os.Stderr); err != nil {
		t.Fatal(err)
	}

	req := kexec.PrepareRequest{Features: []string{"ext4", "vfat", "swap"}, KeepInitrd: true}
	var pf kexec.PreflightResult
	call(t, vm, kexec.VerbPreflight.Name, req, &pf)
	for _, c := range pf.Checks {
		t.Logf("preflight %-20s %-4s %s", c.Name, c.Status, c.Detail)
	}
	if !pf.OK {
		t.Fatalf("preflight failed on a stock Debian guest")
	}

	start = time.Now()
	var res kexec.PrepareResult
	call(t, vm, kexec.VerbPrepare.Name, req, &res)
	vmtests.Stage(t, "prepare", start)
	t.Logf("loaded %s with %s, cmdline %q", res.Kernel, res.Method, res.Cmdline)
	for _, p := range res.Image.Parts {
		t.Logf("part %-8s %7.2f MiB (unpacked %7.2f MiB, %d files)", p.Name, float64(p.Size)/(1<<20), float64(p.Unpacked)/(1<<20), p.Files)
	}
	t.Logf("rescue initrd for the Debian guest: %.2f MiB %s, %.2f MiB unpacked, %d modules, assembled in %.1fs",
		float64(res.Image.Size)/(1<<20), res.Image.Compression, float64(res.Image.Unpacked)/(1<<20), len(res.Image.Modules), res.AssembleSeconds)
	if res.Image.Size > 40<<20 {
		t.Errorf("rescue initrd is %.1f MiB, over the 40 MiB goal", float64(res.Image.Size)/(1<<20))
	}
	if res.Method != kexec.MethodFileLoad {
		t.Errorf("method %s, want kexec_file_load on a stock Debian kernel", res.Method)
	}
	for _, m := range []string{"virtio_net", "virtio_blk", "virtio_pci", "virtio_rng", "ext4", "vfat"} {
		found := false
		for _, n := range res.Image.Modules {
			found = found || n == m
		}
		if !found && !strings.Contains(strings.Join(res.Image.Modules, " "), m) {
			t.Logf("module %s not carried (built in?)", m)
		}
	}
	if out, _ := vm.Run(ctx, "cat /sys/kernel/kexec_loaded"); strings.TrimSpace(out) != "1" {
		t.Fatalf("kexec_loaded = %q after prepare", out)
	}
	if len(res.SSHPorts) != 1 || res.SSHPorts[0] != 22 {
		t.Errorf("ssh ports %v, want [22] from the guest's sshd", res.SSHPorts)
	}

	// The verb returns before the reboot: the SSH session ends cleanly.
	start = time.Now()
	var ex kexec.ExecResult
	call(t, vm, kexec.VerbExec.Name, kexec.ExecRequest{Delay: "2s"}, &ex)
	if time.Since(start) > 30*time.Second {
		t.Errorf("kexec-exec took %s to return", time.Since(start))
	}

	t.Logf("modules carried: %s", strings.Join(res.Image.Modules, " "))
	want := []string{"nivis.rescue=1", "Welcome to u-root!", "NIVIS-TESTAGENT rescue-init hostname=" + img.Spec.Hostname}
	if realAgent {
		want = want[:2]
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		serial, _ := os.ReadFile(vm.SerialLog)
		// Only what the second kernel printed.
		s := string(serial)
		if i := strings.LastIndex(s, "Linux version"); i >= 0 {
			s = s[i:]
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" && realAgent {
			vmtests.Stage(t, "kexec-to-u-root", start)
			t.Logf("serial console after kexec:\n%s", vm.SerialTail(40))
			return
		}
		if missing == "" && strings.Contains(s, "mkfs.ext4=true") {
			vmtests.Stage(t, "kexec-to-uinit", start)
			i := strings.Index(s, "NIVIS-TESTAGENT")
			t.Logf("console: %s", strings.SplitN(s[i:], "\n", 2)[0])
			if strings.Contains(s[i:], "modules=0 ") {
				t.Error("no kernel modules in the rescue system")
			}
			t.Logf("serial console after kexec:\n%s", vm.SerialTail(40))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial console lacks %q after kexec:\n%s", missing, vm.SerialTail(80))
		}
		time.Sleep(2 * time.Second)
	}
}

// TestPrepareRefusedWhenKexecDisabled: after sysctl
// kernel.kexec_load_disabled=1 the agent refuses with the fix, and the
// guest keeps running.
func TestPrepareRefusedWhenKexecDisabled(t *testing.T) {
	vmtests.Require(t)
	ctx := context.Background()
	agent := buildTestAgent(t)
	img := vmtests.TestImage(t, vmtests.DefaultSpec())
	vm := vmtests.StartVM(t, vmtests.Config{Image: img})
	if _, err := vm.WaitSSH(ctx, vmtests.SSHTimeout); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(agent)
	defer f.Close()
	if err := vm.RunIO(ctx, "cat > /root/nivis && chmod 755 /root/nivis && sysctl -q kernel.kexec_load_disabled=1", f, nil, os.Stderr); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	in, _ := json.Marshal(kexec.PrepareRequest{})
	err := vm.RunIO(ctx, "/root/nivis agent kexec-prepare", bytes.NewReader(in), &out, os.Stderr)
	if err == nil {
		t.Fatal("kexec-prepare succeeded with kexec_load_disabled=1")
	}
	if !strings.Contains(out.String(), "cannot be undone") || !strings.Contains(out.String(), `"code":4`) {
		t.Errorf("answer lacks the fix or the precondition code:\n%s", out.String())
	}
	if o, err := vm.Run(ctx, "cat /sys/kernel/kexec_loaded; ls /run/nivis/kexec 2>/dev/null | wc -l"); err != nil || strings.Fields(o)[0] != "0" {
		t.Errorf("after the refusal: %q %v (want nothing loaded)", o, err)
	}
}
