//go:build linux

package install

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/exitcode"
)

// Extract writes the archive tr into the directory root. No entry lands
// outside root: names with ".." or a leading "/" are refused, every parent
// path is resolved with openat2(RESOLVE_BENEATH) so a symlink in the
// archive (absolute, or climbing with "..") cannot carry a later entry out,
// and the entry itself is created relative to that parent without following
// a symlink at its name. Refused entries stop the extraction with an
// *EscapeError (exit category Usage).
//
// Ownership (numeric, when root), modes with setuid bits, times, xattrs
// (security.capability included, set last since chown clears it), hard
// links, device nodes, fifos and sparse files (holes are seeked over) are
// kept. Directory modes and times are applied at the end, once their
// children exist.
func Extract(ctx context.Context, tr *tar.Reader, root string, opts ExtractOptions) (Stats, error) {
	start := time.Now()
	x, err := newExtractor(root, opts)
	if err != nil {
		return Stats{}, err
	}
	defer x.close()
	err = x.run(ctx, tr)
	if err == nil {
		err = x.finishDirs()
	}
	x.stats.Duration = time.Since(start)
	return x.stats, err
}

type dirMeta struct {
	rel   string
	mode  uint32
	atime time.Time
	mtime time.Time
}

type extractor struct {
	root   string
	rootfd int
	osroot *os.Root // fallback resolver when the kernel has no openat2
	opts   ExtractOptions
	chown  bool
	stats  Stats
	buf    []byte

	cacheDir string
	cacheFd  int
	// pSetgid says the parent last returned by parent() has the setgid bit:
	// new entries there take its group, so chown cannot be skipped.
	pSetgid    bool
	rootSetgid bool
	uid, gid   int
	umask      uint32

	dirs    []dirMeta
	created map[string]bool // this layer's paths, for opaque whiteouts
	protect map[string]bool

	lastProgress time.Time
}

func newExtractor(root string, opts ExtractOptions) (*extractor, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("open target root %s: %w (is the target mounted?)", root, err))
	}
	x := &extractor{
		root:    root,
		rootfd:  fd,
		opts:    opts,
		chown:   os.Geteuid() == 0 && !opts.NoChown,
		buf:     make([]byte, 256<<10),
		cacheFd: -1,
		protect: map[string]bool{},
	}
	for _, p := range opts.Protect {
		x.protect[path.Clean(p)] = true
	}
	if opts.Whiteouts {
		x.created = map[string]bool{}
	}
	x.uid, x.gid, x.umask = os.Geteuid(), os.Getegid(), processUmask()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		x.rootSetgid = st.Mode&unix.S_ISGID != 0
	}
	return x, nil
}

// processUmask reads the umask without changing it (Linux >= 4.7); unknown
// counts as "everything masked", which only costs a chmod per file.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					return m
				}
			}
		}
	}
	return 0o777
}

// needChown says whether an entry created under the last parent needs an
// explicit chown to get uid:gid.
func (x *extractor) needChown(uid, gid int) bool {
	return x.chown && (uid != x.uid || gid != x.gid || x.pSetgid)
}

func (x *extractor) close() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
	}
	if x.osroot != nil {
		x.osroot.Close()
	}
	unix.Close(x.rootfd)
}

// dropCache forgets the cached parent path after a change that may alter
// path resolution. The fd stays open until the next parent() call, so an
// entry in progress keeps a valid parent.
func (x *extractor) dropCache() { x.cacheDir = "" }

func (x *extractor) progress() {
	if x.opts.OnProgress == nil {
		return
	}
	if now := time.Now(); now.Sub(x.lastProgress) >= 500*time.Millisecond {
		x.lastProgress = now
		x.opts.OnProgress(x.stats)
	}
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return exitcode.Wrap(exitcode.Usage, fmt.Errorf("reading the archive after %d entries: %w", x.stats.Entries, err))
		}
		x.stats.Entries++
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
		x.progress()
	}
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if x.opts.Whiteouts {
		if base := path.Base(rel); strings.HasPrefix(base, ".wh.") {
			return x.whiteout(rel, base)
		}
		x.created[rel] = true
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return refuse(hdr.Name, "the root itself as a non-directory")
		}
		return x.dir(hdr, ".", x.rootfd, ".")
	}
	pfd, err := x.parent(rel, true)
	if err != nil {
		return x.wrap(hdr.Name, err)
	}
	leaf := path.Base(rel)
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.dir(hdr, rel, pfd, leaf)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		err = x.file(hdr, r, pfd, leaf)
	case tar.TypeLink:
		err = x.hardlink(hdr, pfd, leaf)
	case tar.TypeSymlink:
		err = x.symlink(hdr, pfd, leaf)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = x.node(hdr, pfd, leaf)
	default:
		x.stats.Skipped++
		x.stats.warn("%s: unsupported entry type %q skipped", hdr.Name, hdr.Typeflag)
	}
	if err != nil {
		return x.wrap(hdr.Name, err)
	}
	return nil
}

// wrap turns a resolution that left the root into a refusal and tags other
// failures as a change to the host.
func (x *extractor) wrap(name string, err error) error {
	var esc *EscapeError
	if errors.As(err, &esc) {
		return err
	}
	if errors.Is(err, unix.EXDEV) || errors.Is(err, errRootEscape) {
		return refuse(name, "its path leads outside the root through a symlink")
	}
	if errors.Is(err, unix.ELOOP) {
		return refuse(name, "too many symlinks in its path")
	}
	return exitcode.Wrap(exitcode.Change, fmt.Errorf("extract %q into %s: %w", name, x.root, err))
}

func (x *extractor) wrapErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return x.wrap(name, err)
}
