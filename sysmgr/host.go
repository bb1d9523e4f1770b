//go:build linux

package sysmgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/exitcode"
)

// Host is the on-host side of sysmgr, working on the tree at Root ("/" for
// the running system).
type Host struct {
	Root    string
	Systemd Systemd
	Cmd     command.Runner
	// Settle is how long started units are watched for an early failure
	// (a Type=simple service that exits right after its start job).
	Settle time.Duration
	HTTP   *http.Client
	Now    func() time.Time
	Emit   func(agent.Event)
	// ProbeSystemd checks that systemd runs (off for recorded systemd).
	ProbeSystemd bool
	// StartWatcher starts the detached confirm-or-rollback watcher.
	StartWatcher func(ctx context.Context, p *Pending) error

	// hook runs before ("before") and after ("after") each op; tests panic
	// in it to simulate the agent being killed at that point.
	hook func(stage string, i int, op Op)
}

func (h *Host) path(p string) string { return filepath.Join(h.Root, p) }

// run runs one external program through the command seam.
func (h *Host) run(ctx context.Context, argv ...string) ([]byte, error) {
	return h.Cmd.Run(ctx, command.Command{Argv: argv})
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) logf(level, format string, args ...any) {
	if h.Emit != nil {
		h.Emit(agent.Event{Kind: "log", Level: level, Message: fmt.Sprintf(format, args...)})
	}
}

func (h *Host) step(name, format string, args ...any) {
	if h.Emit != nil {
		h.Emit(agent.Event{Kind: "step", Step: name, Message: fmt.Sprintf(format, args...)})
	}
}

// lock serialises every verb that reads or changes sysmgr state on a host.
func (h *Host) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(h.path(StateDir), 0o755); err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("create %s: %w", StateDir, err))
	}
	f, err := os.OpenFile(h.path(StateDir+"/lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("another nivis sysmgr run holds %s/lock: %w", StateDir, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() { f.Close() }, nil
}

// probe checks what sysmgr needs instead of a distro allowlist: systemd as
// the service manager and a writable /etc.
func (h *Host) probe() error {
	if h.ProbeSystemd {
		if fi, err := os.Stat(h.path("/run/systemd/system")); err != nil || !fi.IsDir() {
			return exitcode.Errorf(exitcode.Precondition, "systemd is not the service manager on this host (no /run/systemd/system); nivis sysmgr needs systemd")
		}
	}
	if err := os.MkdirAll(h.path("/etc"), 0o755); err != nil {
		return exitcode.Errorf(exitcode.Precondition, "/etc is not usable: %v", err)
	}
	f, err := os.CreateTemp(h.path("/etc"), ".nivis-probe-")
	if err != nil {
		return exitcode.Errorf(exitcode.Precondition, "/etc is not writable (%v); nivis sysmgr needs a writable /etc (read-only root or image-based OS?)", err)
	}
	f.Close()
	os.Remove(f.Name())
	for _, d := range []string{StoreDir, GenerationsDir, BackupDir} {
		if err := os.MkdirAll(h.path(d), 0o755); err != nil {
			return exitcode.Errorf(exitcode.Precondition, "create %s: %v", d, err)
		}
	}
	return os.Chmod(h.path(BackupDir), 0o700)
}

// --- generations ---

func (h *Host) genPath(n int) string {
	return h.path(filepath.Join(GenerationsDir, strconv.Itoa(n)+".json"))
}

func (h *Host) generationNumbers() ([]int, error) {
	ents, err := os.ReadDir(h.path(GenerationsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json")); err == nil && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

func (h *Host) loadGeneration(n int) (*Generation, error) {
	if n == 0 {
		return &Generation{}, nil
	}
	raw, err := os.ReadFile(h.genPath(n))
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", n, err)
	}
	g := &Generation{}
	if err := json.Unmarshal(raw, g); err != nil {
		return nil, fmt.Errorf("generation %d is corrupt: %w", n, err)
	}
	return g, nil
}

func (h *Host) writeGeneration(g *Generation) error {
	raw, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return writeBytesAtomic(h.genPath(g.Number), raw, 0o644)
}

// current returns the number `current` points at (0: none).
func (h *Host) current() (int, error) {
	t, err := os.Readlink(h.path(CurrentLink))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(t), ".json"))
	if err != nil {
		return 0, fmt.Errorf("%s points at %q, not a generation", CurrentLink, t)
	}
	return n, nil
}

// switchCurrent points `current` at generation n atomically (a symlink to a
// temp name renamed over the old one); 0 removes it.
func (h *Host) switchCurrent(n int) error {
	link := h.path(CurrentLink)
	if n == 0 {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return syncDir(filepath.Dir(link))
	}
	return symlinkAtomic(filepath.Join("generations", strconv.Itoa(n)+".json"), link)
}

// --- store ---

func (h *Host) objectPath(o string) string { return h.path(filepath.Join(StoreDir, o)) }

// ensureObjects puts every object the generation needs into the store:
// from the bundle, or fetched from its URL and checked against its sha256.
// Objects already there are not touched (they are immutable).
func (h *Host) ensureObjects(ctx context.Context, g *Generation, objects map[string][]byte) error {
	for _, e := range g.Entries {
		if e.Object == "" {
			continue
		}
		p := h.objectPath(e.Object)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if data, ok := objects[e.Object]; ok {
			if err := writeFileAtomic(p, bytes.NewReader(data), 0o444, -1, -1); err != nil {
				return fmt.Errorf("store %s: %w", e.Object, err)
			}
			continue
		}
		if e.URL == "" {
			return exitcode.Errorf(exitcode.Precondition, "store object %s for %s is missing (removed by gc?); apply the config again", e.Object, e.Path)
		}
		if err := h.fetch(ctx, e, p); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) fetch(ctx context.Context, e Entry, dst string) error {
	h.logf("info", "fetching %s for %s", e.URL, e.Path)
	client := h.HTTP
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return exitcode.Errorf(exitcode.Precondition, "fetch %s for %s: %v; the host must reach the URL (or use source: with a local file)", e.URL, e.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return exitcode.Errorf(exitcode.Precondition, "fetch %s for %s: HTTP %s", e.URL, e.Path, resp.Status)
	}
	tmp := tempName(dst)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	hs := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, hs), resp.Body); err != nil {
		f.Close()
		return exitcode.Errorf(exitcode.Precondition, "fetch %s: %v", e.URL, err)
	}
	if got := hex.EncodeToString(hs.Sum(nil)); got != e.SHA256 {
		f.Close()
		return exitcode.Errorf(exitcode.Usage, "%s for %s has sha256 %s, the config says %s; nothing was changed", e.URL, e.Path, got, e.SHA256)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}
