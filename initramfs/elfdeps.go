package initramfs

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SharedObject is one file a dynamically linked program needs at run time.
type SharedObject struct {
	// ImagePath is where the dynamic loader will look for it in the image:
	// the program interpreter's PT_INTERP path, or the real directory it
	// was found in plus the DT_NEEDED name.
	ImagePath string
	// Source is the real file on the host (symlinks resolved).
	Source string
}

// LibResolver finds the shared libraries of host programs the way ld.so
// does: DT_RPATH/DT_RUNPATH, then the ld.so.conf directories, then the
// system directories of the program's architecture.
type LibResolver struct {
	// ConfDirs come from /etc/ld.so.conf and its includes.
	ConfDirs []string
}

// NewLibResolver reads /etc/ld.so.conf.
func NewLibResolver() *LibResolver {
	return &LibResolver{ConfDirs: readLdSoConf("/etc/ld.so.conf", 0)}
}

func readLdSoConf(file string, depth int) []string {
	b, err := os.ReadFile(file)
	if err != nil || depth > 8 {
		return nil
	}
	var dirs []string
	for _, l := range lines(b) {
		if rest, ok := strings.CutPrefix(l, "include "); ok {
			pat := strings.TrimSpace(rest)
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(filepath.Dir(file), pat)
			}
			matches, _ := filepath.Glob(pat)
			sort.Strings(matches)
			for _, m := range matches {
				dirs = append(dirs, readLdSoConf(m, depth+1)...)
			}
			continue
		}
		if strings.HasPrefix(l, "hwcap ") {
			continue
		}
		dirs = append(dirs, strings.Fields(l)[0])
	}
	return dirs
}

// systemDirs are ld.so's built-in search directories for a machine,
// covering Debian's multiarch and the lib64 layout of other distros.
func systemDirs(f *elf.File) []string {
	var triplet string
	switch f.Machine {
	case elf.EM_X86_64:
		triplet = "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		triplet = "aarch64-linux-gnu"
	case elf.EM_386:
		triplet = "i386-linux-gnu"
	case elf.EM_RISCV:
		triplet = "riscv64-linux-gnu"
	}
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	if f.Class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// Resolve returns every shared object program needs, transitively,
// including the program interpreter. A statically linked program needs
// none. A library that cannot be found is an error naming it.
func (r *LibResolver) Resolve(program string) ([]SharedObject, error) {
	f, err := elf.Open(program)
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF program: %w", program, err)
	}
	defer f.Close()
	var out []SharedObject
	seen := map[string]bool{}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("%s: reading PT_INTERP: %w", program, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		src, err := filepath.EvalSymlinks(interp)
		if err != nil {
			return nil, fmt.Errorf("%s: program interpreter %s: %w", program, interp, err)
		}
		out = append(out, SharedObject{ImagePath: interp, Source: src})
		seen[filepath.Base(interp)] = true
	}
	type item struct {
		file   string // host path of the object whose DT_NEEDED we read
		origin string
	}
	queue := []item{{file: program, origin: filepath.Dir(program)}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		needed, search, ef, err := dynamicInfo(it.file, it.origin)
		if err != nil {
			return nil, err
		}
		for _, n := range needed {
			if seen[n] {
				continue
			}
			seen[n] = true
			dir, src, err := r.find(n, search, ef)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", program, n, err)
			}
			out = append(out, SharedObject{ImagePath: filepath.Join(dir, n), Source: src})
			queue = append(queue, item{file: src, origin: dir})
		}
	}
	return out, nil
}

// dynamicInfo returns an object's DT_NEEDED names and its own search
// path (RPATH/RUNPATH with $ORIGIN expanded).
func dynamicInfo(file, origin string) (needed, search []string, ef *elf.File, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	needed, err = f.DynString(elf.DT_NEEDED)
	if err != nil {
		// No dynamic section: a static program.
		return nil, nil, f, nil
	}
	for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(d, "$ORIGIN", origin)
				d = strings.ReplaceAll(d, "${ORIGIN}", origin)
				if d != "" {
					search = append(search, d)
				}
			}
		}
	}
	return needed, search, f, nil
}

// find looks for a library in the object's own search path, the
// ld.so.conf directories and the system directories, skipping files of
// another architecture (i386 libraries next to amd64 ones). It returns the
// real directory (so /lib -> /usr/lib symlinks do not matter in the image)
// and the real file.
func (r *LibResolver) find(name string, search []string, want *elf.File) (dir, src string, err error) {
	dirs := append(append(append([]string{}, search...), r.ConfDirs...), systemDirs(want)...)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		if !sameArch(real, want) {
			continue
		}
		rd, err := filepath.EvalSymlinks(d)
		if err != nil {
			rd = d
		}
		return rd, real, nil
	}
	return "", "", fmt.Errorf("not found in %s", strings.Join(dirs, ":"))
}

func sameArch(p string, want *elf.File) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Machine == want.Machine && f.Class == want.Class
}
