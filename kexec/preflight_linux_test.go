//go:build linux

package kexec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/facts"
)

// efiGlobalGUID is EFI_GLOBAL_VARIABLE, the vendor of SecureBoot.
const efiGlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// secureBootOn is an efivarfs file: 4 bytes of attributes, then 1.
const secureBootOn = "\x06\x00\x00\x00\x01"

// fakeHost writes files (paths relative to the root) into a fake tree.
func fakeHost(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// useFakeHost makes the verbs take their facts from the tree at root.
func useFakeHost(t *testing.T, root string) {
	old := gatherFacts
	gatherFacts = func(ctx context.Context) (*facts.Facts, error) { return facts.GatherRoot(ctx, root), nil }
	t.Cleanup(func() { gatherFacts = old })
}

// TestSecureBootCheck reads Secure Boot from a fake efivars tree: the
// variable of the EFI global GUID counts, one of another GUID (the one kexec
// used to read by mistake) does not.
func TestSecureBootCheck(t *testing.T) {
	ctx := context.Background()
	// An initrd of our own keeps Preflight from estimating the rescue image.
	initrd := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(initrd, []byte("070701"), 0o644)
	req := PrepareRequest{Initrd: initrd}
	check := func(t *testing.T, files map[string]string) (HostState, Check) {
		t.Helper()
		f := facts.GatherRoot(ctx, fakeHost(t, files))
		pf := Preflight(req, f)
		c, ok := checkNamed(pf.Checks, "lockdown")
		if !ok {
			t.Fatalf("no lockdown check: %+v", pf.Checks)
		}
		return pf.Host, c
	}

	t.Run("locked down", func(t *testing.T) {
		hs, c := check(t, map[string]string{
			"sys/firmware/efi/efivars/SecureBoot-" + efiGlobalGUID: secureBootOn,
			"sys/kernel/security/lockdown":                         "none [integrity] confidentiality\n",
		})
		if !hs.SecureBoot || hs.Lockdown != "integrity" {
			t.Errorf("host state %+v, want Secure Boot on, integrity lockdown", hs)
		}
		if c.Status != "warn" || c.Fix != fixLockdown || !strings.Contains(c.Detail, "Secure Boot: true") {
			t.Errorf("lockdown check %+v", c)
		}
	})
	t.Run("not locked down", func(t *testing.T) {
		hs, c := check(t, map[string]string{
			"sys/firmware/efi/efivars/SecureBoot-" + efiGlobalGUID: secureBootOn,
			"sys/kernel/security/lockdown":                         "[none] integrity confidentiality\n",
		})
		if !hs.SecureBoot || c.Status != "ok" || !strings.Contains(c.Detail, "Secure Boot is on") {
			t.Errorf("host state %+v, check %+v", hs, c)
		}
	})
	t.Run("wrong GUID", func(t *testing.T) {
		hs, c := check(t, map[string]string{
			"sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98032b8c39c": secureBootOn,
			"sys/firmware/efi/efivars/BootOrder-" + efiGlobalGUID:                      "\x07\x00\x00\x00\x01\x00",
		})
		if hs.SecureBoot || c.Status != "ok" || !strings.Contains(c.Detail, "Secure Boot off") {
			t.Errorf("a SecureBoot variable of another GUID counted: host state %+v, check %+v", hs, c)
		}
	})
}
