package rescue

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ModuleIndex is what depmod wrote for one kernel (modules.alias,
// modules.dep, modules.builtin, modules.softdep), read so that modules can
// be matched to device modaliases and loaded in dependency order without
// modprobe.
type ModuleIndex struct {
	// byBus holds aliases whose bus part ("pci", "virtio") is literal, so
	// a modalias is only matched against its own bus; wild holds the rest
	// ("acpi*:...").
	byBus   map[string][]moduleAlias
	wild    []moduleAlias
	paths   map[string]string   // module name -> path relative to the index dir
	deps    map[string][]string // module name -> dependency names, as depmod listed them
	pre     map[string][]string // softdep pre: modules
	builtin map[string]bool
}

type moduleAlias struct {
	pattern string
	module  string
}

// ModuleName turns a module path or file name into the kernel's name for
// it: no directory, no .ko[.xz|.zst|.gz], dashes as underscores.
func ModuleName(path string) string {
	b := filepath.Base(path)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// LoadModuleIndex reads the depmod files in dir (/lib/modules/<release>).
// modules.dep is required; the others are optional.
func LoadModuleIndex(dir string) (*ModuleIndex, error) {
	open := func(name string, required bool) (io.ReadCloser, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			if !required && os.IsNotExist(err) {
				return io.NopCloser(strings.NewReader("")), nil
			}
			return nil, err
		}
		return f, nil
	}
	var rs [4]io.ReadCloser
	for i, n := range []string{"modules.dep", "modules.alias", "modules.builtin", "modules.softdep"} {
		r, err := open(n, i == 0)
		if err != nil {
			for _, c := range rs[:i] {
				c.Close()
			}
			return nil, fmt.Errorf("module index %s: %w (was the image assembled with the target's modules and depmod files?)", dir, err)
		}
		rs[i] = r
	}
	defer func() {
		for _, c := range rs {
			c.Close()
		}
	}()
	return ParseModuleIndex(rs[0], rs[1], rs[2], rs[3])
}

// ParseModuleIndex parses the depmod files' contents.
func ParseModuleIndex(dep, alias, builtin, softdep io.Reader) (*ModuleIndex, error) {
	ix := &ModuleIndex{
		byBus:   map[string][]moduleAlias{},
		paths:   map[string]string{},
		deps:    map[string][]string{},
		pre:     map[string][]string{},
		builtin: map[string]bool{},
	}
	if err := eachLine(dep, func(line string) {
		path, rest, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		name := ModuleName(path)
		ix.paths[name] = strings.TrimPrefix(path, "/")
		for _, d := range strings.Fields(rest) {
			ix.deps[name] = append(ix.deps[name], ModuleName(d))
		}
	}); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	if err := eachLine(alias, func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return
		}
		a := moduleAlias{pattern: f[1], module: ModuleName(f[2])}
		if bus, _, ok := strings.Cut(a.pattern, ":"); ok && !strings.ContainsAny(bus, "*?[\\") {
			ix.byBus[bus] = append(ix.byBus[bus], a)
		} else {
			ix.wild = append(ix.wild, a)
		}
	}); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	if err := eachLine(builtin, func(line string) {
		ix.builtin[ModuleName(line)] = true
	}); err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	if err := eachLine(softdep, func(line string) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			return
		}
		name, pre := ModuleName(f[1]), false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					ix.pre[name] = append(ix.pre[name], ModuleName(w))
				}
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("modules.softdep: %w", err)
	}
	return ix, nil
}

func eachLine(r io.Reader, f func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f(line)
	}
	return sc.Err()
}

// Match returns the modules whose aliases match a device's modalias,
// sorted and without duplicates.
func (ix *ModuleIndex) Match(modalias string) []string {
	seen := map[string]bool{}
	try := func(as []moduleAlias) {
		for _, a := range as {
			if !seen[a.module] && fnmatch(a.pattern, modalias) {
				seen[a.module] = true
			}
		}
	}
	if bus, _, ok := strings.Cut(modalias, ":"); ok {
		try(ix.byBus[bus])
	}
	try(ix.wild)
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Known reports whether the module is loadable from this index.
func (ix *ModuleIndex) Known(name string) bool { _, ok := ix.paths[name]; return ok }

// Builtin reports whether the module is compiled into the kernel.
func (ix *ModuleIndex) Builtin(name string) bool { return ix.builtin[name] }

// Path is the module's file relative to the index directory.
func (ix *ModuleIndex) Path(name string) string { return ix.paths[name] }

// LoadOrder lists what must be loaded for name, dependencies first and
// name last. Builtin modules are left out; a module that is neither known
// nor builtin is an error.
func (ix *ModuleIndex) LoadOrder(name string) ([]string, error) {
	name = ModuleName(name)
	var (
		out   []string
		state = map[string]int{} // 1 visiting, 2 done
		visit func(n string, required bool) error
	)
	visit = func(n string, required bool) error {
		switch state[n] {
		case 1, 2:
			return nil // a cycle in depmod output cannot be honoured; load once
		}
		state[n] = 1
		defer func() { state[n] = 2 }()
		if ix.builtin[n] {
			return nil
		}
		if _, ok := ix.paths[n]; !ok {
			if !required {
				return nil // a softdep that is not there is not a failure
			}
			return fmt.Errorf("module %s is not in modules.dep", n)
		}
		for _, p := range ix.pre[n] {
			if err := visit(p, false); err != nil {
				return err
			}
		}
		for _, d := range ix.deps[n] {
			if err := visit(d, true); err != nil {
				return fmt.Errorf("%s needs %w", n, err)
			}
		}
		out = append(out, n)
		return nil
	}
	if err := visit(name, true); err != nil {
		return nil, err
	}
	return out, nil
}

// fnmatch is fnmatch(3) without flags, as kmod matches aliases: '*'
// matches any run (slashes too), '?' one byte, '[...]' a class ('!' or '^'
// negates, ranges allowed), and '\' quotes the next byte.
func fnmatch(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1 // where to resume after the last '*'
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			case '[':
				if sx < len(s) {
					if ok, width := matchClass(pattern[px:], s[sx]); width > 0 {
						if ok {
							px += width
							sx++
							continue
						}
					} else if s[sx] == '[' { // unterminated: a literal '['
						px++
						sx++
						continue
					}
				}
			case '\\':
				if px+1 < len(pattern) {
					if sx < len(s) && s[sx] == pattern[px+1] {
						px += 2
						sx++
						continue
					}
				} else if sx < len(s) && s[sx] == '\\' {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// matchClass matches c against the bracket expression at the start of p
// and returns the expression's width (0 when it is not terminated).
func matchClass(p string, c byte) (bool, int) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	matched := false
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return matched != negate, i + 1
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		i++
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi = p[i+1]
			if hi == '\\' && i+2 < len(p) {
				hi = p[i+2]
				i++
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0
}
