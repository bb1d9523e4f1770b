package initramfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"

	"github.com/nivis/nivis/internal/carry"
)

// Options say what goes into the rescue initrd. Zero values take the
// running host's defaults (see Assemble).
type Options struct {
	// Output is the initrd file to write.
	Output string
	// Base is the zstd-compressed u-root base cpio (default: the one
	// embedded for the host's arch).
	Base []byte
	// Agent is the nivis binary to carry (default: os.Executable()).
	Agent string
	// KernelRelease whose modules are carried (default: uname -r).
	KernelRelease string
	// ModulesDir is /lib/modules/<release> (default from KernelRelease).
	ModulesDir string
	// SysDevices is where present hardware is read (default /sys/devices).
	SysDevices string
	// NoHardwareModules skips matching modaliases: only named modules.
	NoHardwareModules bool
	// Modules are carried on top of DefaultModules (names or aliases).
	Modules []string
	// Tools are host programs to carry with their libraries.
	Tools []string
	// State is the carry-over written to carry.File.
	State carry.State
	// HostKeys are the host's ssh_host_* files by base name.
	HostKeys map[string][]byte
	// Config is the nivis config the client sent (may be empty).
	Config []byte
	// CACerts is the host's CA bundle (PEM), installed as
	// /etc/ssl/certs/ca-certificates.crt so the rescue system can fetch
	// https sources.
	CACerts []byte
	// Compression of the parts we write; "" picks the best the kernel in
	// KernelConfig supports.
	Compression Compression
	// KernelConfig files to read CONFIG_RD_* from (default: the
	// release's /boot/config, /proc/config.gz when it is the running one).
	KernelConfig []string
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
}

// Part is one compressed cpio archive of the initrd.
type Part struct {
	Name string `json:"name"`
	// Offset and Size in the initrd file, in bytes.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// Unpacked is the size of the files it holds.
	Unpacked int64 `json:"unpacked"`
	Files    int   `json:"files"`
}

// Result describes a written (or, for Estimate, planned) initrd.
type Result struct {
	Path        string      `json:"path,omitempty"`
	Compression Compression `json:"compression"`
	// CompressionSource says why: the kernel config read.
	CompressionSource string `json:"compression_source"`
	Parts             []Part `json:"parts"`
	// Size is the initrd's size (estimated for Estimate).
	Size int64 `json:"size"`
	// Unpacked is what the files take in RAM once the kernel unpacked them.
	Unpacked       int64    `json:"unpacked"`
	Modules        []string `json:"modules,omitempty"`
	MissingModules []string `json:"missing_modules,omitempty"`
	Tools          []string `json:"tools,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
}

// RAMNeeded is the memory the rescue boot needs: the compressed initrd
// and its unpacked files coexist while the kernel unpacks, plus the
// kernel, the Go runtime of init and the agent, and headroom.
func (r *Result) RAMNeeded() int64 {
	const kernelAndRuntime = 160 << 20
	return r.Size + r.Unpacked + kernelAndRuntime
}

// plan is everything Assemble will write, decided before writing.
type plan struct {
	comp       Compression
	compSource string
	base       []byte // zstd as given
	baseRaw    []byte // uncompressed
	baseSize   int64  // bytes of the base's files
	baseFiles  int
	parts      []*part
	sel        *ModuleSelection
	// layoutMods are the carried modules Options.Modules resolved to
	// (the layout's filesystems and block layers), loaded at boot.
	layoutMods []string
	tools      []string
	warnings   []string
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// makePlan reads everything from the host and lays out the parts. All
// defaults in o must be filled.
func makePlan(o *Options, support KernelSupport) (*plan, error) {
	pl := &plan{comp: o.Compression, compSource: support.Source, base: o.Base}
	if pl.comp == "" {
		pl.comp = support.Best()
	} else if !support.Supported[pl.comp] {
		pl.warnings = append(pl.warnings, fmt.Sprintf("compression %s requested but the kernel config (%s) does not enable it", pl.comp, support.Source))
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	pl.baseRaw, err = dec.DecodeAll(o.Base, nil)
	if err != nil {
		return nil, fmt.Errorf("the embedded rescue base image is damaged: %w", err)
	}
	have, baseSize, baseFiles, err := baseDirs(pl.baseRaw)
	if err != nil {
		return nil, err
	}
	pl.baseSize, pl.baseFiles = baseSize, baseFiles

	// The agent: u-root's /bin/uinit points at it.
	agent := newPart("agent")
	if err := agent.file(carry.AgentPath, o.Agent, 0o755, have); err != nil {
		return nil, fmt.Errorf("the nivis agent binary: %w", err)
	}
	pl.parts = append(pl.parts, agent)
	markDirs(have, agent)

	mods, err := pl.planModules(o, have)
	if err != nil {
		return nil, err
	}
	if mods != nil {
		pl.parts = append(pl.parts, mods)
		markDirs(have, mods)
	}

	tools, err := pl.planTools(o, have)
	if err != nil {
		return nil, err
	}
	if tools != nil {
		pl.parts = append(pl.parts, tools)
		markDirs(have, tools)
	}

	c, err := pl.planCarry(o, have)
	if err != nil {
		return nil, err
	}
	pl.parts = append(pl.parts, c)
	return pl, nil
}

func markDirs(have map[string]bool, p *part) {
	for d := range p.dirs {
		have[d] = true
	}
}

func (pl *plan) planModules(o *Options, have map[string]bool) (*part, error) {
	if _, err := os.Stat(filepath.Join(o.ModulesDir, "modules.dep")); err != nil {
		pl.warnings = append(pl.warnings, fmt.Sprintf("no kernel modules at %s: the rescue system gets only what is built into the kernel", o.ModulesDir))
		return nil, nil
	}
	ix, err := LoadModuleIndex(o.ModulesDir)
	if err != nil {
		return nil, err
	}
	var aliases []string
	if !o.NoHardwareModules {
		aliases, err = Modaliases(o.SysDevices)
		if err != nil {
			pl.warnings = append(pl.warnings, fmt.Sprintf("reading present hardware from %s: %v", o.SysDevices, err))
		}
	}
	names := append(append([]string{}, DefaultModules...), o.Modules...)
	sel := ix.Select(names, aliases)
	pl.sel = sel
	for _, m := range o.Modules {
		pl.layoutMods = append(pl.layoutMods, ix.Lookup(m)...)
	}
	for _, m := range sel.Missing {
		if contains(o.Modules, m) {
			pl.warnings = append(pl.warnings, fmt.Sprintf("kernel module %s not found for %s: the layout may fail in the rescue system", m, o.KernelRelease))
		}
	}
	o.logf("modules: %d carried (%d matched present hardware)", len(sel.Paths), len(sel.Hardware))
	p := newPart("modules")
	root := path.Join(carry.ModulesDir, o.KernelRelease)
	p.dir(root, 0o755, have)
	for _, rel := range sel.Paths {
		if err := p.file(path.Join(root, rel), filepath.Join(o.ModulesDir, rel), 0o644, have); err != nil {
			return nil, fmt.Errorf("kernel module %s: %w", rel, err)
		}
	}
	idx := ix.filteredIndexFiles(sel)
	keys := make([]string, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.bytes(path.Join(root, k), idx[k], 0o644, have)
	}
	for _, f := range copiedIndexFiles {
		src := filepath.Join(o.ModulesDir, f)
		if _, err := os.Stat(src); err == nil {
			if err := p.file(path.Join(root, f), src, 0o644, have); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if ModuleName(x) == s || x == s {
			return true
		}
	}
	return false
}

// planTools carries each tool at its real path, with the names it was
// asked by as symlinks, its shared libraries and its config files.
func (pl *plan) planTools(o *Options, have map[string]bool) (*part, error) {
	if len(o.Tools) == 0 {
		return nil, nil
	}
	p := newPart("tools")
	res := NewLibResolver()
	var missing []error
	for _, t := range o.Tools {
		found, err := FindTool(t)
		if err != nil {
			missing = append(missing, err)
			continue
		}
		real, err := filepath.EvalSymlinks(found)
		if err != nil {
			return nil, err
		}
		if !p.has(real) {
			if err := p.file(real, real, 0o755, have); err != nil {
				return nil, err
			}
		}
		// The name the layout calls it by, in a directory on u-root's PATH.
		name := path.Join("/usr/sbin", path.Base(t))
		if strings.HasPrefix(real, "/usr/bin/") {
			name = path.Join("/usr/bin", path.Base(t))
		}
		if name != real && !p.has(name) {
			p.symlink(name, relLink(name, real), have)
		}
		if multiCall[path.Base(t)] {
			for _, l := range siblingLinks(real) {
				ln := path.Join(path.Dir(real), l)
				if !p.has(ln) {
					p.symlink(ln, path.Base(real), have)
				}
			}
		}
		libs, err := res.Resolve(real)
		if err != nil {
			return nil, fmt.Errorf("tool %s: %w", t, err)
		}
		for _, l := range libs {
			if !p.has(l.ImagePath) {
				if err := p.file(l.ImagePath, l.Source, 0o755, have); err != nil {
					return nil, err
				}
			}
		}
		for _, cf := range toolConfigFiles[path.Base(t)] {
			if _, err := os.Stat(cf); err == nil && !p.has(cf) {
				if err := p.file(cf, cf, 0o644, have); err != nil {
					return nil, err
				}
			}
		}
		pl.tools = append(pl.tools, t)
	}
	if len(missing) > 0 {
		var msgs []string
		for _, e := range missing {
			msgs = append(msgs, e.Error())
		}
		return nil, &ToolsMissingError{Errs: missing, msg: strings.Join(msgs, "; ")}
	}
	o.logf("tools: %s (%d files with libraries)", strings.Join(pl.tools, " "), len(p.entries))
	return p, nil
}

// ToolsMissingError lists every missing tool at once, each with its package.
type ToolsMissingError struct {
	Errs []error
	msg  string
}

func (e *ToolsMissingError) Error() string   { return e.msg }
func (e *ToolsMissingError) Unwrap() []error { return e.Errs }

// relLink is the symlink target from name to target, relative when they
// share a directory.
func relLink(name, target string) string {
	if path.Dir(name) == path.Dir(target) {
		return path.Base(target)
	}
	return target
}

// siblingLinks lists the symlinks next to real that point at it.
func siblingLinks(real string) []string {
	ents, err := os.ReadDir(path.Dir(real))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		t, err := os.Readlink(path.Join(path.Dir(real), e.Name()))
		if err == nil && (t == path.Base(real) || t == real) {
			out = append(out, e.Name())
		}
	}
	return out
}

// planCarry lays out the carry-over: state, host keys, config, DNS.
func (pl *plan) planCarry(o *Options, have map[string]bool) (*part, error) {
	st := o.State
	if st.Version == 0 {
		st.Version = 1
	}
	if st.KernelRelease == "" {
		st.KernelRelease = o.KernelRelease
	}
	if pl.sel != nil && len(st.EarlyModules) == 0 {
		st.EarlyModules = pl.sel.EarlyModules()
		// The rescue system has no modprobe for the kernel to call on
		// demand: mount(2) of an ext4 whose module is not loaded fails
		// with ENODEV. Load what the layout needs at boot.
		// efivarfs too: the bootloader step mounts it in the installed
		// system's chroot (it refuses to load where there is no EFI).
		mods := slices.Clone(pl.layoutMods)
		if slices.Contains(pl.sel.Names, "efivarfs") {
			mods = append(mods, "efivarfs")
		}
		for _, m := range mods {
			if !slices.Contains(st.EarlyModules, m) {
				st.EarlyModules = append(st.EarlyModules, m)
			}
		}
	}
	st.HostKeys = nil
	for name := range o.HostKeys {
		st.HostKeys = append(st.HostKeys, name)
	}
	sort.Strings(st.HostKeys)
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	p := newPart("carry")
	p.dir(path.Dir(carry.File), 0o755, have)
	p.bytes(carry.File, append(js, '\n'), 0o600, have)
	p.dir(carry.HostKeyDir, 0o700, have)
	for _, name := range st.HostKeys {
		if strings.Contains(name, "/") {
			return nil, fmt.Errorf("host key name %q: want a base name", name)
		}
		perm := cpio.FileMode(0o600)
		if strings.HasSuffix(name, ".pub") {
			perm = 0o644
		}
		p.bytes(path.Join(carry.HostKeyDir, name), o.HostKeys[name], perm, have)
	}
	if len(o.Config) > 0 {
		p.bytes(carry.ConfigFile, o.Config, 0o600, have)
	}
	if len(o.CACerts) > 0 {
		p.dir("/etc/ssl", 0o755, have)
		p.dir("/etc/ssl/certs", 0o755, have)
		p.bytes("/etc/ssl/certs/ca-certificates.crt", o.CACerts, 0o644, have)
	}
	if rc := resolvConf(st.Network.DNS); rc != nil {
		// The base's resolv.conf names a public resolver; the host's own
		// is what works on its network.
		p.bytes("/etc/resolv.conf", rc, 0o644, have)
	}
	return p, nil
}

func resolvConf(d carry.DNS) []byte {
	if len(d.Nameservers) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("# written by nivis from the host's resolv.conf before kexec\n")
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	return b.Bytes()
}

// estimate fills a Result without writing anything: compressed sizes are
// guessed from typical ratios (Go binaries and libraries halve, modules
// are usually compressed already).
func (pl *plan) estimate() *Result {
	r := pl.result()
	r.Parts = append(r.Parts, Part{Name: "base", Size: int64(len(pl.base)), Unpacked: pl.baseSize, Files: pl.baseFiles})
	r.Size += int64(len(pl.base))
	r.Unpacked += pl.baseSize
	for _, p := range pl.parts {
		u := p.dataSize()
		var sz int64
		for _, e := range p.entries {
			switch {
			case strings.HasSuffix(e.name, ".ko.xz"), strings.HasSuffix(e.name, ".ko.zst"), strings.HasSuffix(e.name, ".ko.gz"):
				sz += e.size
			default:
				sz += e.size / 2
			}
		}
		r.Parts = append(r.Parts, Part{Name: p.name, Size: sz, Unpacked: u, Files: len(p.entries)})
		r.Size += sz
		r.Unpacked += u
	}
	return r
}

func (pl *plan) result() *Result {
	r := &Result{Compression: pl.comp, CompressionSource: pl.compSource, Tools: pl.tools, Warnings: pl.warnings}
	if pl.sel != nil {
		r.Modules = pl.sel.Names
		r.MissingModules = pl.sel.Missing
	}
	return r
}

// write writes the initrd: the base (recompressed only if the kernel
// cannot unpack zstd), then each part compressed on its own, each
// starting on a 4-byte boundary as the kernel requires.
func (pl *plan) write(out string, log func(string, ...any)) (*Result, error) {
	r := pl.result()
	r.Path = out
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	cw := &countingWriter{w: f}

	basePart := Part{Name: "base", Offset: 0, Unpacked: pl.baseSize, Files: pl.baseFiles}
	if pl.comp == Zstd {
		if _, err := cw.Write(pl.base); err != nil {
			return nil, err
		}
	} else {
		if err := compressInto(cw, pl.comp, func(w io.Writer) error {
			_, err := w.Write(pl.baseRaw)
			return err
		}); err != nil {
			return nil, fmt.Errorf("recompressing the base as %s: %w", pl.comp, err)
		}
	}
	basePart.Size = cw.n
	r.Parts = append(r.Parts, basePart)
	if err := pad4(cw); err != nil {
		return nil, err
	}
	for _, p := range pl.parts {
		start := cw.n
		if err := compressInto(cw, pl.comp, p.writeCPIO); err != nil {
			return nil, fmt.Errorf("writing the %s part: %w", p.name, err)
		}
		r.Parts = append(r.Parts, Part{Name: p.name, Offset: start, Size: cw.n - start, Unpacked: p.dataSize(), Files: len(p.entries)})
		if err := pad4(cw); err != nil {
			return nil, err
		}
		if log != nil {
			log("initrd part %s: %d files, %.1f MiB unpacked, %.1f MiB %s", p.name, len(p.entries), mib(p.dataSize()), mib(cw.n-start), pl.comp)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	r.Size = cw.n
	for _, p := range r.Parts {
		r.Unpacked += p.Unpacked
	}
	return r, nil
}

func compressInto(w io.Writer, c Compression, body func(io.Writer) error) error {
	zw, err := compressor(c, w)
	if err != nil {
		return err
	}
	if err := body(zw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

func pad4(cw *countingWriter) error {
	if n := cw.n % 4; n != 0 {
		_, err := cw.Write(make([]byte, 4-n))
		return err
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
