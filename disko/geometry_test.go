package disko

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/config"
)

// TestGeometryMatchesSgdisk runs the exact sgdisk commands disko runs for
// every example on an image file and checks that nivis puts every
// partition on the same sectors.
func TestGeometryMatchesSgdisk(t *testing.T) {
	sg, ok := command.Find("sgdisk")
	if !ok {
		t.Skip("sgdisk (package gdisk) is not installed: nothing to compare with")
	}
	for _, f := range exampleFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel() // sgdisk sleeps a second after every write
			compareWithSgdisk(t, sg, f)
		})
	}
}

func compareWithSgdisk(t *testing.T, sg, f string) {
	name := strings.TrimSuffix(filepath.Base(f), ".json")
	l, _, err := ParseFile(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	st := testState(l)
	for _, ds := range st.Disks {
		ds.Signature, ds.Partitions = nil, nil
	}
	p, err := NewPlan(l, Mode{Format: true}, st, PlanOptions{}, nil)
	if err != nil {
		t.Fatalf("%s: plan: %v", name, err)
	}
	for _, dv := range p.Disks {
		g, ok := l.Disks[dv.Key].Content.(*GPT)
		if !ok {
			continue
		}
		img := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, st.Disks[l.Disks[dv.Key].Device].Size); err != nil {
			t.Fatal(err)
		}
		// One sgdisk run creates the partitions in order, like disko's
		// one run per partition (options apply left to right).
		args := []string{"--align-end"}
		for _, pt := range g.Sorted {
			if pt.Alignment != 0 {
				t.Fatalf("%s: per-partition alignment needs one sgdisk run per partition", name)
			}
			args = append(args, fmt.Sprintf("--new=%d:%s:%s", pt.Index, pt.Start, pt.End),
				fmt.Sprintf("--change-name=%d:%s", pt.Index, pt.Label), fmt.Sprintf("--typecode=%d:%s", pt.Index, pt.Type))
		}
		args = append(args, img)
		if out, err := exec.Command(sg, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: sgdisk %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		fh, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		table, err := gpt.Read(fh, 512, 512)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: read sgdisk's table: %v", name, err)
		}
		for _, want := range table.Partitions {
			var got *PartPlan
			for i := range dv.Parts {
				if dv.Parts[i].Index == want.Index {
					got = &dv.Parts[i]
				}
			}
			if got == nil {
				t.Errorf("%s/%s: nivis has no partition %d", name, dv.Key, want.Index)
				continue
			}
			if got.StartSector != want.Start || got.EndSector != want.End {
				t.Errorf("%s/%s partition %d (%s): nivis %d..%d, sgdisk %d..%d", name, dv.Key, want.Index, got.Key, got.StartSector, got.EndSector, want.Start, want.End)
			}
			if want.Name != got.Label || !strings.EqualFold(string(want.Type), g.Partitions[got.Key].TypeGUID) {
				t.Errorf("%s/%s partition %d: sgdisk name %q type %s; nivis %q %s", name, dv.Key, want.Index, want.Name, want.Type, got.Label, got.Type)
			}
		}
		if len(table.Partitions) != len(dv.Parts) {
			t.Errorf("%s/%s: sgdisk made %d partitions, nivis %d", name, dv.Key, len(table.Partitions), len(dv.Parts))
		}
	}
}

func TestGeometryErrors(t *testing.T) {
	l, _ := ParseBytes([]byte(`{"disk": {"small": {"device": "/dev/sdx", "content": {"type": "gpt", "partitions": {
	  "a": {"size": "600M"}, "b": {"size": "600M"}}}}}}`))
	st := &State{Disks: map[string]*DiskState{"/dev/sdx": {Device: "/dev/sdx", Size: 1 << 30, SectorSize: 512}}}
	var r config.Report
	_, err := NewPlan(l, Mode{Format: true}, st, PlanOptions{}, &r)
	if err == nil {
		t.Fatal("two 600M partitions on a 1 GiB disk: no error")
	}
	wantEntry(t, r, config.SevError, "$.disk.small.content.partitions.b", 0, "partition b does not fit on /dev/sdx (1 GiB)")
}
