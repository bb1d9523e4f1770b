package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"
)

// The builder needs every command's source in go.mod; commands_tools.go
// is what keeps it there, so both lists must agree.
func TestCommandsMatchToolsFile(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "commands_tools.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, i := range f.Imports {
		p, _ := strconv.Unquote(i.Path.Value)
		imports = append(imports, p)
	}
	want := append([]string{}, commands...)
	sort.Strings(imports)
	sort.Strings(want)
	if strings.Join(imports, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands_tools.go imports\n%s\nbut commands lists\n%s", strings.Join(imports, "\n"), strings.Join(want, "\n"))
	}
}

// TestBaseIsDeterministicAndComplete builds the amd64 base twice (about a
// minute the first time, less once Go's build cache is warm) and checks
// the two are byte-identical, small, and laid out for u-root's init to
// run the agent.
func TestBaseIsDeterministicAndComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the u-root busybox twice (about a minute); skipped with -short")
	}
	dir := t.TempDir()
	var outs [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "base"+strconv.Itoa(i)+".cpio.zst")
		var stdout, stderr bytes.Buffer
		start := time.Now()
		if err := run([]string{"-arch", "amd64", "-o", out}, &stdout, &stderr); err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, stderr.String())
		}
		t.Logf("build %d: %s (%s)", i, strings.TrimSpace(stdout.String()), time.Since(start).Round(time.Second))
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatalf("two builds differ: %d and %d bytes", len(outs[0]), len(outs[1]))
	}
	const maxSize = 6 << 20
	if len(outs[0]) > maxSize {
		t.Errorf("base is %d bytes, over the %d budget: the rescue image must stay under 40 MiB", len(outs[0]), maxSize)
	}

	dec, _ := zstd.NewReader(nil)
	raw, err := dec.DecodeAll(outs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]cpio.Header{}
	bodies := map[string]string{}
	r := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = *h
		if h.Mode.IsRegular() && h.Size < 4096 {
			b, _ := io.ReadAll(r)
			bodies[h.Name] = string(b)
		}
	}
	links := map[string]string{
		"init":          "bbin/init",
		"bin/uinit":     "../nivis/nivis",
		"bin/sh":        "../bbin/gosh",
		"bin/defaultsh": "../bbin/gosh",
	}
	for name, target := range links {
		if got := entries[name].Linkname; got != target {
			t.Errorf("%s -> %q, want %q", name, got, target)
		}
	}
	if !strings.Contains(bodies["etc/uinit.flags"], `"agent"`) || !strings.Contains(bodies["etc/uinit.flags"], `"rescue-init"`) {
		t.Errorf("etc/uinit.flags = %q, want the agent's rescue-init verb", bodies["etc/uinit.flags"])
	}
	if bb := entries["bbin/bb"]; !bb.Mode.IsRegular() || bb.Size < 1<<20 {
		t.Errorf("bbin/bb: %v, %d bytes", bb.Mode, bb.Size)
	}
	for _, c := range commands {
		if got := entries["bbin/"+path.Base(c)].Linkname; got != "bb" {
			t.Errorf("bbin/%s -> %q, want bb", path.Base(c), got)
		}
	}
	if c := entries["dev/console"]; c.Mode&cpio.ModeType != cpio.TypeChar {
		t.Errorf("dev/console mode %v, want a character device (the kernel opens it for init's stdio)", c.Mode)
	}
}
