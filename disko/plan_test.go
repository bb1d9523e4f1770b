package disko

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// examplesDir is disko's examples as JSON: testdata/examples (a copy of
// ../shared/disko-examples), or $NIVIS_DISKO_EXAMPLES.
func examplesDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("NIVIS_DISKO_EXAMPLES"); d != "" {
		return d
	}
	return filepath.Join("testdata", "examples")
}

func exampleFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(examplesDir(t), "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	sort.Strings(files)
	return files
}

// testState pretends every disk of l is an empty 8 GiB disk, except that
// the first disk holds an old GPT so the plan shows what is destroyed.
func testState(l *Layout) *State {
	st := &State{Disks: map[string]*DiskState{}}
	for i, k := range sortedKeys(l.Disks) {
		d := l.Disks[k]
		ds := &DiskState{Device: d.Device, Resolved: "/dev/vd" + string(rune('b'+i)), Model: "QEMU HARDDISK", Serial: "NIVIS-" + k,
			Size: 8 << 30, SectorSize: 512}
		if i == 0 {
			ds.Signature = &Signature{Type: "gpt", UUID: "0b3c4a7e-5d1f-4c8e-9a3b-2f6d7e8c9a10"}
			ds.Partitions = []PartState{{Index: 1, Device: ds.Resolved + "1", Start: 2048, End: 16777182, Name: "old-root",
				TypeGUID: sgdiskTypes["8300"], Signature: &Signature{Type: "ext4", UUID: "5e0f2b1c-1111-4222-8333-944455556666", Label: "oldroot"}}}
		}
		st.Disks[d.Device] = ds
	}
	return st
}

func TestGoldenPlans(t *testing.T) {
	for _, f := range exampleFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			l, rep, err := ParseFile(f)
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, rep)
			}
			for _, e := range rep.Entries {
				t.Errorf("unexpected report entry: %s", e)
			}
			var vr config.Report
			l.Validate(&vr, nil, Mode{Destroy: true, Format: true, Mount: true})
			if vr.HasErrors() {
				t.Fatalf("validate: %s", vr.String())
			}
			m := Mode{Destroy: true, Format: true, Mount: true}
			p, err := NewPlan(l, m, testState(l), PlanOptions{Root: "/mnt"}, &vr)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, vr.String())
			}
			var js bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(p); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".plan.txt", []byte(p.String()))
			fstab, err := l.Fstab(fakeIDs{})
			if err != nil {
				t.Fatal(err)
			}
			crypttab, err := l.Crypttab(fakeIDs{})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".fstab.txt", []byte(fstab+"\n"+crypttab))
			golden(t, name+".plan.json", js.Bytes())
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./disko -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test ./disko -update and review the diff\n--- got ---\n%s", name, got)
	}
}

// fakeIDs derives stable UUIDs from device names for golden fstabs.
type fakeIDs struct{}

func (fakeIDs) UUID(dev string) (string, error) {
	h := sha256.Sum256([]byte(dev))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]), nil
}

func (fakeIDs) PartUUID(dev string) (string, error) {
	h := sha256.Sum256([]byte("part" + dev))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]), nil
}
