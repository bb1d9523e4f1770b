package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules are carried whatever the hardware: the drivers a VM or a
// server needs to reach its disks and network, and the filesystems and
// block layers a layout may use. Names missing from the kernel (or built
// in) are skipped.
var DefaultModules = []string{
	// entropy first: without RDRAND, early getrandom blocks
	"virtio_rng",
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_console",
	"nvme", "ahci", "sd_mod", "sr_mod", "scsi_mod",
	"ext4", "xfs", "btrfs", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8",
	"dm_mod", "dm_crypt", "md_mod", "raid0", "raid1",
	"af_packet", "loop",
	"efivarfs", // GRUB and bootctl write the firmware's boot entries through it
}

// deniedHardwareDirs are module paths never pulled in by hardware
// matching: graphics, sound, cameras, radios and the hypervisor (KVM) are
// large and useless to a headless rescue system reached over SSH, and
// probing a floppy controller that is not there stalls the boot.
var deniedHardwareDirs = []string{
	"kernel/arch/x86/kvm/",
	"kernel/virt/",
	"kernel/drivers/block/floppy.ko",
	"kernel/drivers/gpu/",
	"kernel/sound/",
	"kernel/drivers/media/",
	"kernel/drivers/net/wireless/",
	"kernel/net/wireless/",
	"kernel/net/mac80211/",
	"kernel/drivers/bluetooth/",
	"kernel/net/bluetooth/",
	"kernel/drivers/staging/",
	"kernel/drivers/iio/",
	"kernel/drivers/input/joystick/",
	"kernel/drivers/input/touchscreen/",
}

// ModuleIndex is what depmod wrote for one kernel release.
type ModuleIndex struct {
	// Dir is /lib/modules/<release>.
	Dir string
	// Paths maps a module name (underscores) to its path relative to Dir.
	Paths map[string]string
	// Deps maps a module path to its dependencies' paths, in load order
	// as modules.dep lists them.
	Deps map[string][]string
	// Order is modules.dep's line order.
	Order []string
	// Aliases maps each alias pattern to the module names it names.
	Aliases []Alias
	// SoftDeps maps a module name to its pre: and post: names.
	SoftDeps map[string][]string
	// Builtin holds names of modules built into the kernel.
	Builtin map[string]bool
}

// Alias is one line of modules.alias.
type Alias struct {
	Pattern string
	Module  string
	// prefix is the literal part of Pattern before its first wildcard,
	// checked first: matching tens of thousands of globs is slow under TCG.
	prefix string
}

// ModuleName turns a module file path or a name with dashes into the
// kernel's name for it: "kernel/fs/fat/vfat.ko.xz" -> "vfat".
func ModuleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// LoadModuleIndex reads modules.dep, modules.alias, modules.softdep and
// modules.builtin from dir. Only modules.dep is required.
func LoadModuleIndex(dir string) (*ModuleIndex, error) {
	ix := &ModuleIndex{
		Dir:      dir,
		Paths:    map[string]string{},
		Deps:     map[string][]string{},
		SoftDeps: map[string][]string{},
		Builtin:  map[string]bool{},
	}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w (run depmod, or install the kernel's modules package)", err)
	}
	for _, line := range lines(dep) {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		mod = strings.TrimSpace(mod)
		ix.Paths[ModuleName(mod)] = mod
		ix.Deps[mod] = strings.Fields(deps)
		ix.Order = append(ix.Order, mod)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.alias")); err == nil {
		for _, line := range lines(b) {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "alias" {
				continue
			}
			a := Alias{Pattern: f[1], Module: ModuleName(f[2])}
			a.prefix = a.Pattern
			if i := strings.IndexAny(a.Pattern, "*?["); i >= 0 {
				a.prefix = a.Pattern[:i]
			}
			ix.Aliases = append(ix.Aliases, a)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.softdep")); err == nil {
		for _, line := range lines(b) {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "softdep" {
				continue
			}
			name := ModuleName(f[1])
			for _, w := range f[2:] {
				if w == "pre:" || w == "post:" {
					continue
				}
				ix.SoftDeps[name] = append(ix.SoftDeps[name], w)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, line := range lines(b) {
			ix.Builtin[ModuleName(line)] = true
		}
	}
	return ix, nil
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Lookup resolves a module name or alias ("crc32c", "fs-vfat",
// "virtio-rng") to module names, as modprobe would.
func (ix *ModuleIndex) Lookup(name string) []string {
	n := ModuleName(name)
	if _, ok := ix.Paths[n]; ok {
		return []string{n}
	}
	if ix.Builtin[n] {
		return nil
	}
	return ix.MatchAlias(name)
}

// MatchAlias returns the modules whose alias pattern matches s (a
// device's modalias or an alias name), without duplicates.
func (ix *ModuleIndex) MatchAlias(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range ix.Aliases {
		if !strings.HasPrefix(s, a.prefix) || seen[a.Module] {
			continue
		}
		if ok, _ := path.Match(a.Pattern, s); ok {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	return out
}

// ModuleSelection is the set of modules to carry, closed over
// dependencies and soft dependencies.
type ModuleSelection struct {
	// Paths relative to the index dir, in modules.dep order.
	Paths []string
	// Names of the carried modules, sorted.
	Names []string
	// Missing are requested names this kernel neither has nor builds in.
	Missing []string
	// Builtin are requested names built into the kernel (nothing to carry).
	Builtin []string
	// Hardware are the names matched from the present devices' modaliases.
	Hardware []string
}

// Select returns the closure of the named modules plus those matching the
// given modaliases (skipping deniedHardwareDirs for the latter).
func (ix *ModuleIndex) Select(names []string, modaliases []string) *ModuleSelection {
	sel := &ModuleSelection{}
	want := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		p, ok := ix.Paths[name]
		if !ok || want[p] {
			return
		}
		want[p] = true
		for _, d := range ix.Deps[p] {
			add(ModuleName(d))
		}
		for _, s := range ix.SoftDeps[name] {
			for _, n := range ix.Lookup(s) {
				add(n)
			}
		}
	}
	for _, orig := range names {
		n := ModuleName(orig)
		switch {
		case ix.Paths[n] != "":
			add(n)
		case ix.Builtin[n]:
			sel.Builtin = append(sel.Builtin, n)
		default:
			found := ix.MatchAlias(orig)
			if len(found) == 0 {
				sel.Missing = append(sel.Missing, n)
			}
			for _, m := range found {
				add(m)
			}
		}
	}
	hw := map[string]bool{}
	for _, ma := range modaliases {
		for _, m := range ix.MatchAlias(ma) {
			if denied(ix.Paths[m]) {
				continue
			}
			hw[m] = true
			add(m)
		}
	}
	for m := range hw {
		sel.Hardware = append(sel.Hardware, m)
	}
	sort.Strings(sel.Hardware)
	for _, p := range ix.Order {
		if want[p] {
			sel.Paths = append(sel.Paths, p)
			sel.Names = append(sel.Names, ModuleName(p))
		}
	}
	sort.Strings(sel.Names)
	return sel
}

func denied(p string) bool {
	for _, d := range deniedHardwareDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// EarlyModules are the carried modules the in-RAM agent loads before
// anything else: the virtio transport and hardware RNGs, so getrandom
// does not block on hosts without RDRAND.
func (sel *ModuleSelection) EarlyModules() []string {
	var out []string
	has := map[string]bool{}
	for _, n := range sel.Names {
		has[n] = true
	}
	for _, n := range []string{"virtio_pci", "virtio_rng"} {
		if has[n] {
			out = append(out, n)
		}
	}
	for _, p := range sel.Paths {
		n := ModuleName(p)
		if strings.Contains(p, "/char/hw_random/") && n != "virtio_rng" && n != "rng_core" {
			out = append(out, n)
		}
	}
	return out
}

// Modaliases reads every modalias file under sysDevices (/sys/devices):
// the hardware present, as the kernel describes it for module matching.
func Modaliases(sysDevices string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(sysDevices, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// sysfs has unreadable corners; skip them, keep walking.
			if d != nil && d.IsDir() && p != sysDevices {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != "modalias" || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		s := strings.TrimSpace(string(b))
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// filteredIndexFiles writes modules.dep, modules.alias, modules.softdep and
// modules.order restricted to the carried modules, so the in-RAM side
// never resolves a module that is not there.
func (ix *ModuleIndex) filteredIndexFiles(sel *ModuleSelection) map[string][]byte {
	carried := map[string]bool{}
	for _, p := range sel.Paths {
		carried[p] = true
	}
	names := map[string]bool{}
	for _, n := range sel.Names {
		names[n] = true
	}
	out := map[string][]byte{}
	var dep, order bytes.Buffer
	for _, p := range sel.Paths {
		fmt.Fprintf(&dep, "%s:", p)
		for _, d := range ix.Deps[p] {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteByte('\n')
		order.WriteString(p + "\n")
	}
	out["modules.dep"] = dep.Bytes()
	out["modules.order"] = order.Bytes()
	var alias bytes.Buffer
	for _, a := range ix.Aliases {
		if names[a.Module] {
			fmt.Fprintf(&alias, "alias %s %s\n", a.Pattern, a.Module)
		}
	}
	out["modules.alias"] = alias.Bytes()
	if b, err := os.ReadFile(filepath.Join(ix.Dir, "modules.softdep")); err == nil {
		var sd bytes.Buffer
		for _, line := range lines(b) {
			f := strings.Fields(line)
			if len(f) >= 2 && names[ModuleName(f[1])] {
				sd.WriteString(line + "\n")
			}
		}
		out["modules.softdep"] = sd.Bytes()
	}
	return out
}

// copiedIndexFiles are carried unchanged when present: they say which
// modules are built in, so loaders do not look for them.
var copiedIndexFiles = []string{"modules.builtin", "modules.builtin.modinfo"}
