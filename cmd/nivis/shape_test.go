package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/nivis/nivis"

// domains are the packages that do one job of nivis each; internal/ is
// the plumbing under them and the CLI is the top.
var domains = []string{"disko", "kexec", "initramfs", "rescue", "sysmgr", "takeover", "vmtests", "bench"}

type goFile struct {
	path    string // relative to the module root
	pkgDir  string
	test    bool
	imports []string
	lines   int
	funcs   map[string]int // name:line -> length in lines
}

// readTree parses every Go file of the module (imports and function
// extents only).
func readTree(t *testing.T) []goFile {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var files []goFile
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "bin" || n == "dist" || strings.HasPrefix(n, ".") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		g := goFile{path: rel, pkgDir: filepath.Dir(rel), test: strings.HasSuffix(p, "_test.go"), funcs: map[string]int{}}
		g.lines = fset.Position(f.End()).Line
		for _, im := range f.Imports {
			s, _ := strconv.Unquote(im.Path.Value)
			g.imports = append(g.imports, s)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var body *ast.BlockStmt
			name := "func literal"
			switch x := n.(type) {
			case *ast.FuncDecl:
				body, name = x.Body, x.Name.Name
			case *ast.FuncLit:
				body = x.Body
			}
			if body != nil {
				start := fset.Position(n.Pos()).Line
				g.funcs[name+":"+strconv.Itoa(start)] = fset.Position(body.End()).Line - start + 1
			}
			return true
		})
		files = append(files, g)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("read only %d Go files from %s", len(files), root)
	}
	return files
}

func isDomain(importPath string) bool {
	rest, ok := strings.CutPrefix(importPath, module+"/")
	if !ok {
		return false
	}
	top, _, _ := strings.Cut(rest, "/")
	for _, d := range domains {
		if top == d {
			return true
		}
	}
	return false
}

// TestLayers: the CLI is the top of the tree. Nothing under internal/
// imports a domain package or the CLI, and no domain package (tests
// included) imports the CLI.
func TestLayers(t *testing.T) {
	for _, f := range readTree(t) {
		internal := strings.HasPrefix(f.pkgDir, "internal"+string(filepath.Separator)) || f.pkgDir == "internal"
		domain := isDomain(module + "/" + filepath.ToSlash(f.pkgDir))
		for _, im := range f.imports {
			cli := strings.HasPrefix(im, module+"/cmd/")
			switch {
			case internal && (isDomain(im) || cli):
				t.Errorf("%s imports %s: packages under internal/ are plumbing and import no domain package or the CLI", f.path, im)
			case domain && cli:
				t.Errorf("%s imports %s: a domain package must not import the CLI", f.path, im)
			}
		}
	}
}

// TestSizeLimits: no source file over 800 lines, no function over 120
// (tests are exempt).
func TestSizeLimits(t *testing.T) {
	for _, f := range readTree(t) {
		if f.test {
			continue
		}
		if f.lines > 800 {
			t.Errorf("%s has %d lines (at most 800): split it by idea", f.path, f.lines)
		}
		for name, n := range f.funcs {
			if n > 120 {
				t.Errorf("%s: %s is %d lines (at most 120)", f.path, name, n)
			}
		}
	}
}

// The checks above must see a violation when there is one.
func TestLayersSeeAViolation(t *testing.T) {
	if !isDomain(module+"/disko") || !isDomain(module+"/takeover/install") || isDomain(module+"/internal/agent") || isDomain("github.com/other/disko") {
		t.Error("isDomain")
	}
}
