package disko

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/config"
)

// anyIDs answers every lookup, so Fstab and Crypttab run to the end.
type anyIDs struct{}

func (anyIDs) UUID(dev string) (string, error)     { return "0000-" + dev, nil }
func (anyIDs) PartUUID(dev string) (string, error) { return "part-" + dev, nil }

// FuzzParsePlan feeds arbitrary bytes through parse, validate, plan,
// render, JSON and fstab: none of it may panic or hang, ever.
func FuzzParsePlan(f *testing.F) {
	for _, file := range exampleFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "{}", "[]", "null", `{"disk": null}`, `{"disk": {"a": {"device": "/dev/x", "content": {"type": "gpt", "partitions": {"p": {"size": "99999999999999999999P"}}}}}}`,
		`{"disk": {"a": {"device": "/dev/x", "content": {"type": "gpt", "partitions": {"p": {"start": "-99999999999999T", "end": "+1s", "alignment": 4000000000}}}}}}`,
		`{"lvm_vg": {"v": {"lvs": {"l": {"size": "100%FREE", "content": {"type": "lvm_pv", "vg": "v"}}}}}}`,
		"apiVersion: nivis/v1alpha1\nkind: Disko\ndisko:\n  nodev:\n    /tmp: {fsType: tmpfs}\n",
		"a: &x [*x]", `{"mdadm": {"m": {"content": {"type": "luks", "name": "c", "content": {"type": "luks", "name": "c"}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("parse+plan took %s: too slow for %d bytes of input", d, len(data))
			}
		}()
		l, r := ParseBytes(data)
		if l == nil {
			return
		}
		l.Validate(&r, nil, Mode{Destroy: true, Format: true, Mount: true})
		for _, m := range []Mode{{Destroy: true, Format: true, Mount: true}, {Format: true}, {Unmount: true}} {
			var pr config.Report
			p, _ := NewPlan(l, m, testState(l), PlanOptions{}, &pr)
			if p != nil {
				_ = p.String()
				if _, err := json.Marshal(p); err != nil {
					t.Fatalf("plan does not marshal: %v", err)
				}
			}
		}
		_, _ = l.Fstab(anyIDs{})
		_, _ = l.Crypttab(anyIDs{})
		_ = l.ResumeDevice()
	})
}
