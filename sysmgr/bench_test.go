//go:build linux

package sysmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nivis/nivis/internal/agent"
)

// benchBundle declares files managed files and units units.
func benchBundle(files, units int, variant string) *Services {
	s := &Services{Files: map[string]*File{}, Units: map[string]*Unit{}}
	for i := 0; i < files; i++ {
		text := fmt.Sprintf("# file %d\nkey=value-%d\n", i, i)
		if i == 0 {
			text += variant
		}
		s.Files[fmt.Sprintf("/etc/bench/d%02d/f%04d.conf", i%20, i)] = &File{Text: text, Mode: "0644"}
	}
	for i := 0; i < units; i++ {
		s.Units[fmt.Sprintf("bench%02d.service", i)] = &Unit{Text: fmt.Sprintf("[Service]\nExecStart=/bin/sleep %d\n[Install]\nWantedBy=multi-user.target\n", 1000+i)}
	}
	return s
}

// BenchmarkApply measures a whole agent apply (JSON request in, plan,
// activation, JSON result out) on a tree with systemd recorded: a no-op
// re-apply and a one-file change, for 100, 500 and 2000 managed files
// plus 50 units. bench/sysmgr.sh runs it and prints the figures.
func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: activation sets file owners")
	}
	for _, n := range []int{100, 500, 2000} {
		for _, mode := range []string{"noop", "onefile"} {
			b.Run(fmt.Sprintf("files=%d/units=50/%s", n, mode), func(b *testing.B) {
				root := b.TempDir()
				if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755); err != nil {
					b.Fatal(err)
				}
				apply := func(variant string) *ApplyResult {
					raw, err := json.Marshal(&ApplyRequest{Root: root, Bundle: benchBundle(n, 50, variant)})
					if err != nil {
						b.Fatal(err)
					}
					var out bytes.Buffer
					if err := agent.NewTable(Handlers()).Serve(context.Background(), VerbApply.Name, bytes.NewReader(raw), &out); err != nil {
						b.Fatalf("apply: %v\n%s", err, out.String())
					}
					var m agent.Message
					lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
					if err := json.Unmarshal(lines[len(lines)-1], &m); err != nil || m.Type != "result" {
						b.Fatalf("no result: %s", out.String())
					}
					res := &ApplyResult{}
					if err := json.Unmarshal(m.Result, res); err != nil {
						b.Fatal(err)
					}
					return res
				}
				apply("") // the initial apply is not measured
				changes := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					variant := ""
					if mode == "onefile" {
						variant = fmt.Sprintf("changed=%d\n", i)
					}
					changes = apply(variant).Changes
				}
				b.StopTimer()
				b.ReportMetric(float64(changes), "changes/op")
			})
		}
	}
}
