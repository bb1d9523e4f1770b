package vmtests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// nivisBin is the nivis binary the VM tests drive guests with, built once by
// TestMain (only when VM tests run: the build is slow on a shared machine).
var (
	nivisBin      string
	nivisBuildErr error
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("NIVIS_VMTESTS") == "1" {
		dir, err := os.MkdirTemp("", "nivis-vmtests-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		nivisBin = filepath.Join(dir, "nivis")
		cmd := exec.Command("go", "build", "-o", nivisBin, "github.com/nivis/nivis/cmd/nivis")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nivisBuildErr = fmt.Errorf("go build ./cmd/nivis: %w\n%s", err, out)
		}
	}
	return m.Run()
}

// requireNivis returns the nivis binary built by TestMain or fails t.
func requireNivis(t *testing.T) string {
	t.Helper()
	if nivisBuildErr != nil {
		t.Fatal(nivisBuildErr)
	}
	if nivisBin == "" {
		t.Fatal("nivis was not built (TestMain builds it only with NIVIS_VMTESTS=1)")
	}
	return nivisBin
}
