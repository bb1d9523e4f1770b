//go:build linux

package vmtests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds the nivis binary the VM tests drive guests with; it is built
// on first use (slow on a shared machine, and most runs skip VM tests).
var (
	binDir        string
	nivisOnce     sync.Once
	nivisBin      string
	nivisBuildErr error
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nivis-vmtests-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// requireNivis returns nivis built from this tree (CGO_ENABLED=0, as
// released), or fails t.
func requireNivis(t *testing.T) string {
	t.Helper()
	nivisOnce.Do(func() {
		bin := filepath.Join(binDir, "nivis")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/nivis/nivis/cmd/nivis")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nivisBuildErr = fmt.Errorf("go build ./cmd/nivis: %w\n%s", err, out)
			return
		}
		nivisBin = bin
	})
	if nivisBuildErr != nil {
		t.Fatal(nivisBuildErr)
	}
	return nivisBin
}
