//go:build linux

package vmtests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// SSHTimeout is how long tests wait for a guest's SSH: boots take about a
// minute under TCG, several on a loaded two-core machine.
const SSHTimeout = 5 * time.Minute

// Tools are the host commands the VM tests need.
var Tools = []string{QEMU, "qemu-img", "ssh", "debootstrap"}

// Require skips t unless NIVIS_VMTESTS=1, and fails it when the variable is
// set but a tool is missing: a run that asked for VM tests must not pass by
// skipping them.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("NIVIS_VMTESTS") != "1" {
		t.Skip("set NIVIS_VMTESTS=1 to run VM tests")
	}
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("NIVIS_VMTESTS=1 but %s is missing (scripts/deps.sh installs qemu-system-x86 qemu-utils openssh-client debootstrap): %v", tool, err)
		}
	}
}

// TestImage returns spec's image for a test, building it when the cache
// lacks it, and logs whether it was a cache hit.
func TestImage(t testing.TB, spec ImageSpec) *Image {
	t.Helper()
	img, err := Build(context.Background(), spec, BuildOptions{Logf: t.Logf})
	if err != nil {
		t.Fatalf("guest image: %v", err)
	}
	if img.CacheHit {
		t.Logf("stage image: cache hit %s in %s", img.Key, img.Took.Round(time.Millisecond))
	} else {
		t.Logf("stage image: built %s in %s", img.Key, img.Took.Round(time.Second))
	}
	return img
}

// StartVM launches cfg for a test in a directory of its own. When the test
// ends QEMU is killed; when it failed, the serial console and the guest's
// journal are logged first (and saved under $NIVIS_VM_LOGDIR when set).
func StartVM(t testing.TB, cfg Config) *VM {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	if cfg.Name == "" {
		cfg.Name = "nivis-" + t.Name()
	}
	vm, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("launch VM: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs := vm.Logs(context.Background())
			t.Logf("VM %s logs (test failed):\n%s", cfg.Name, tail(logs, 64<<10))
			if q := vm.QEMULog(); q != "" {
				t.Logf("QEMU said:\n%s", q)
			}
			saveLogs(t, logs)
		}
		if err := vm.Close(); err != nil {
			t.Errorf("close VM: %v", err)
		}
	})
	return vm
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func saveLogs(t testing.TB, logs string) {
	dir := os.Getenv("NIVIS_VM_LOGDIR")
	if dir == "" {
		return
	}
	p := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name(), "_")+".log")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		if err := os.WriteFile(p, []byte(logs), 0o644); err == nil {
			t.Logf("VM logs saved to %s", p)
			return
		}
	}
	t.Logf("could not save VM logs to %s", p)
}

// Stage logs how long a named stage took, for the timings the tests report.
func Stage(t testing.TB, name string, start time.Time) {
	t.Helper()
	t.Logf("stage %s: %s", name, time.Since(start).Round(100*time.Millisecond))
}
