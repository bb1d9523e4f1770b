//go:build linux

package rescue

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// moduleLoader loads kernel modules from a depmod'ed directory with
// init_module(2), dependencies first. It decompresses .ko.xz, .ko.zst and
// .ko.gz itself: a kernel without CONFIG_MODULE_DECOMPRESS cannot take
// them through finit_module, and there is no modprobe here.
type moduleLoader struct {
	dir       string // /lib/modules/<release>
	ix        *ModuleIndex
	sysModule string // /sys/module: a module there is loaded or builtin
	params    map[string]string
	blacklist map[string]bool
	// initModule is unix.InitModule; tests record calls instead.
	initModule func(image []byte, params string) error
	tried      map[string]error
}

func newModuleLoader(dir string, ix *ModuleIndex, cmdline string) *moduleLoader {
	params, blacklist := moduleCmdline(cmdline)
	return &moduleLoader{
		dir: dir, ix: ix, sysModule: "/sys/module",
		params: params, blacklist: blacklist,
		initModule: unix.InitModule,
		tried:      map[string]error{},
	}
}

// moduleCmdline collects "module.param=value" words of the kernel command
// line (what modprobe would pass) and modprobe.blacklist=.
func moduleCmdline(cmdline string) (params map[string]string, blacklist map[string]bool) {
	params, blacklist = map[string]string{}, map[string]bool{}
	for _, w := range strings.Fields(cmdline) {
		key, val, hasVal := strings.Cut(w, "=")
		if key == "modprobe.blacklist" || key == "module_blacklist" {
			for _, m := range strings.Split(val, ",") {
				if m != "" {
					blacklist[ModuleName(m)] = true
				}
			}
			continue
		}
		mod, param, ok := strings.Cut(key, ".")
		if !ok || mod == "" || param == "" || strings.ContainsAny(mod, "/") {
			continue
		}
		p := strings.ReplaceAll(param, "-", "_")
		if hasVal {
			p += "=" + val
		}
		name := ModuleName(mod)
		params[name] = strings.TrimSpace(params[name] + " " + p)
	}
	return params, blacklist
}

func (m *moduleLoader) present(name string) bool {
	_, err := os.Stat(filepath.Join(m.sysModule, name))
	return err == nil
}

// Load loads name and what it depends on. It returns the modules it
// actually inserted.
func (m *moduleLoader) Load(name string) ([]string, error) {
	name = ModuleName(name)
	if m.ix.Builtin(name) || m.present(name) {
		return nil, nil
	}
	if m.blacklist[name] {
		return nil, fmt.Errorf("module %s: blacklisted on the kernel command line", name)
	}
	order, err := m.ix.LoadOrder(name)
	if err != nil {
		return nil, err
	}
	var loaded []string
	for _, n := range order {
		if err, ok := m.tried[n]; ok {
			if err != nil {
				return loaded, err
			}
			continue
		}
		err := m.insert(n)
		m.tried[n] = err
		if err != nil {
			return loaded, err
		}
		loaded = append(loaded, n)
	}
	return loaded, nil
}

func (m *moduleLoader) insert(name string) error {
	if m.blacklist[name] {
		return fmt.Errorf("module %s: blacklisted on the kernel command line", name)
	}
	if m.present(name) {
		return nil
	}
	path := filepath.Join(m.dir, m.ix.Path(name))
	image, err := readModule(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	if err := m.initModule(image, m.params[name]); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: init_module: %w", name, err)
	}
	return nil
}

// readModule reads a module file and decompresses it by its suffix.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// readModaliases lists the distinct modalias values of the devices under
// root (/sys/devices). Symlinks are not followed: every device is there
// exactly once.
func readModaliases(root string) []string {
	seen := map[string]bool{}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != "modalias" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if a := strings.TrimSpace(string(b)); a != "" {
			seen[a] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// coldplugResult says what one coldplug did.
type coldplugResult struct {
	Loaded []string
	// Failed maps modules to why they could not be loaded: ENODEV from a
	// driver that matched an alias but found nothing to drive is normal.
	Failed map[string]error
}

// Coldplug loads the modules matching the present devices. Loading a bus
// driver (virtio_pci) makes new devices appear with new modaliases, so it
// repeats, pausing for the kernel to probe, until a round loads nothing
// new or rounds are used up.
func (m *moduleLoader) Coldplug(ctx context.Context, sysDevices string, rounds int, pause time.Duration) coldplugResult {
	res := coldplugResult{Failed: map[string]error{}}
	for round := 0; round < rounds; round++ {
		var loadedNow int
		for _, alias := range readModaliases(sysDevices) {
			for _, mod := range m.ix.Match(alias) {
				if _, done := m.tried[mod]; done {
					continue
				}
				loaded, err := m.Load(mod)
				res.Loaded = append(res.Loaded, loaded...)
				loadedNow += len(loaded)
				if err != nil {
					res.Failed[mod] = err
				}
				if _, done := m.tried[mod]; !done {
					m.tried[mod] = err // builtin or already present
				}
			}
		}
		if loadedNow == 0 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	return res
}

// presentMACs reads the MAC of every link in /sys/class/net.
func presentMACs(classNet string) map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(classNet)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(classNet, e.Name(), "address"))
		if err != nil {
			continue
		}
		out[strings.ToLower(strings.TrimSpace(string(b)))] = e.Name()
	}
	return out
}

// waitForMACs waits until links with all the given MACs exist, calling
// poll between looks (a coldplug round: USB NICs come late). It returns
// the MACs still missing at the deadline.
func waitForMACs(ctx context.Context, classNet string, macs []string, timeout time.Duration, poll func()) []string {
	deadline := time.Now().Add(timeout)
	for {
		have := presentMACs(classNet)
		var missing []string
		for _, m := range macs {
			if _, ok := have[strings.ToLower(m)]; !ok {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
		if poll != nil {
			poll()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
