//go:build linux

package install

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
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

var errRootEscape = errors.New("path escapes the root")

// noOpenat2 makes resolve take the os.Root path, as on kernels before 5.6
// (tests set it).
var noOpenat2 bool

// resolve opens dir (relative to the root) as an O_PATH directory fd without
// ever leaving the root.
func (x *extractor) resolve(dir string, flags uint64) (int, error) {
	if x.osroot == nil && !noOpenat2 {
		how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		for i := 0; ; i++ {
			fd, err := unix.Openat2(x.rootfd, dir, &how)
			if err == unix.EINTR || (err == unix.EAGAIN && i < 16) {
				continue
			}
			if err == unix.ENOSYS {
				break
			}
			return fd, err
		}
	}
	if x.osroot == nil {
		// Kernel < 5.6: os.Root walks component by component with the same
		// rule (symlinks may not leave the root).
		r, err := os.OpenRoot(x.root)
		if err != nil {
			return -1, err
		}
		x.osroot = r
	}
	oflags := os.O_RDONLY | unix.O_DIRECTORY
	if flags&unix.O_NOFOLLOW != 0 {
		oflags |= unix.O_NOFOLLOW
	}
	f, err := x.osroot.OpenFile(dir, oflags, 0)
	if err != nil {
		if strings.Contains(err.Error(), "escapes") {
			return -1, errRootEscape
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return -1, pe.Err
		}
		return -1, err
	}
	defer f.Close()
	return unix.Dup(int(f.Fd()))
}

// parent returns an fd for the directory holding rel, creating missing
// directories (0755, root-owned) when create is set. The fd belongs to the
// cache: callers must not close it.
func (x *extractor) parent(rel string, create bool) (int, error) {
	dir := path.Dir(rel)
	if dir == "." {
		x.pSetgid = x.rootSetgid
		return x.rootfd, nil
	}
	if dir == x.cacheDir {
		return x.cacheFd, nil
	}
	fd, err := x.resolve(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT && create {
		fd, err = x.mkdirAll(dir)
	}
	if err != nil {
		return -1, err
	}
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
	}
	x.cacheDir, x.cacheFd = dir, fd
	var st unix.Stat_t
	x.pSetgid = unix.Fstat(fd, &st) != nil || st.Mode&unix.S_ISGID != 0
	return fd, nil
}

func (x *extractor) mkdirAll(dir string) (int, error) {
	fd, err := x.resolve(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT {
		return fd, err
	}
	pdir := path.Dir(dir)
	pfd := x.rootfd
	if pdir != "." {
		pfd, err = x.mkdirAll(pdir)
		if err != nil {
			return -1, err
		}
		defer unix.Close(pfd)
	}
	if err := unix.Mkdirat(pfd, path.Base(dir), 0o755); err != nil && err != unix.EEXIST {
		return -1, err
	}
	// Resolve again from the root: a dangling symlink at that name made
	// mkdirat fail with EEXIST, and must not be followed anywhere.
	return x.resolve(dir, unix.O_PATH|unix.O_DIRECTORY)
}

// clear removes whatever is at leaf unless it is a directory and keepDir.
func (x *extractor) clear(pfd int, leaf string, keepDir bool) (existed bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, leaf, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		x.dropCache()
		return false, removeAllAt(pfd, leaf)
	}
	return false, unix.Unlinkat(pfd, leaf, 0)
}

// removeAllAt removes leaf under dirfd and everything below it, never
// following symlinks.
func removeAllAt(dirfd int, leaf string) error {
	err := unix.Unlinkat(dirfd, leaf, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := removeChildren(fd, nil); err != nil {
		unix.Close(fd)
		return err
	}
	unix.Close(fd)
	return unix.Unlinkat(dirfd, leaf, unix.AT_REMOVEDIR)
}

// removeChildren empties the directory fd (which it does not close), except
// for names keep says to keep.
func removeChildren(fd int, keep func(name string) bool) error {
	dfd, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dfd), "dir")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) whiteout(rel, base string) error {
	x.stats.Whiteouts++
	dir := path.Dir(rel)
	pfd, err := x.parent(rel, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing below to hide
	}
	if err != nil {
		return x.wrap(rel, err)
	}
	if base == ".wh..wh..opq" {
		fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return x.wrap(rel, err)
		}
		defer unix.Close(fd)
		x.dropCache()
		err = removeChildren(fd, func(name string) bool {
			child := path.Join(dir, name)
			return x.created[child] || x.protect[child]
		})
		return x.wrapErr(rel, err)
	}
	if strings.HasPrefix(base, ".wh..wh.") {
		return nil // other aufs metadata (.wh..wh.plnk...) carries nothing
	}
	name := strings.TrimPrefix(base, ".wh.")
	if name == "" || name == "." || name == ".." || x.protect[path.Join(dir, name)] {
		return nil
	}
	x.dropCache()
	return x.wrapErr(rel, removeAllAt(pfd, name))
}

func (x *extractor) wrapErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return x.wrap(name, err)
}

func times(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func (x *extractor) dir(hdr *tar.Header, rel string, pfd int, leaf string) error {
	x.stats.Dirs++
	if rel != "." {
		err := unix.Mkdirat(pfd, leaf, 0o700)
		if err == unix.EEXIST {
			var existed bool
			if existed, err = x.clear(pfd, leaf, true); err == nil && !existed {
				err = unix.Mkdirat(pfd, leaf, 0o700)
			}
		}
		if err != nil {
			return err
		}
	} else {
		x.pSetgid = true // the root may be anything: always chown it
	}
	if x.needChown(hdr.Uid, hdr.Gid) {
		// NOFOLLOW: leaf is a directory we just made or checked.
		if err := unix.Fchownat(pfd, leaf, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if hasXattrs(hdr) {
		fd, err := unix.Openat(pfd, leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		x.xattrs(hdr, func(name string, val []byte) error { return unix.Fsetxattr(fd, name, val, 0) })
		unix.Close(fd)
	}
	// Mode and times last: a read-only directory must still take children,
	// and every child created bumps the mtime.
	x.dirs = append(x.dirs, dirMeta{rel: rel, mode: perm(hdr), atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") || strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
			return true
		}
	}
	return false
}

func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.finishDir(d); err != nil {
			return exitcode.Wrap(exitcode.Change, fmt.Errorf("set mode and times of %s in %s: %w", d.rel, x.root, err))
		}
	}
	return nil
}

func (x *extractor) finishDir(d dirMeta) error {
	pfd, leaf := x.rootfd, "."
	if d.rel != "." {
		var err error
		if pfd, err = x.parent(d.rel, false); err != nil {
			return nil // replaced or whited out by a later entry
		}
		leaf = path.Base(d.rel)
	}
	fd, err := unix.Openat(pfd, leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // no longer a directory: a later entry replaced it
	}
	err = unix.Fchmod(fd, d.mode)
	unix.Close(fd)
	if err != nil {
		return err
	}
	at := d.atime
	if at.IsZero() {
		at = d.mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(d.mtime.UnixNano())}
	return unix.UtimesNanoAt(pfd, leaf, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (x *extractor) file(hdr *tar.Header, r io.Reader, pfd int, leaf string) error {
	x.stats.Files++
	p := perm(hdr)
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, leaf, flags, p&0o777)
	if err == unix.EEXIST {
		if _, err = x.clear(pfd, leaf, false); err == nil {
			fd, err = unix.Openat(pfd, leaf, flags, p&0o777)
		}
	}
	if err != nil {
		return err
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var n int64
	if isSparse(hdr) {
		n, err = x.copySparse(fd, r)
	} else {
		n, err = x.copyTo(fd, r)
	}
	x.stats.Bytes += n
	if err != nil {
		return fmt.Errorf("writing content: %w", err)
	}
	if n != hdr.Size {
		return fmt.Errorf("wrote %d bytes, the header says %d", n, hdr.Size)
	}
	chowned := x.needChown(hdr.Uid, hdr.Gid)
	if chowned {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	// chmod after chown (chown clears setuid bits) and only when the
	// umask took bits or there are setuid/setgid/sticky bits to set.
	if p&0o777&^x.umask != p || (chowned && p&0o6000 != 0) {
		if err := unix.Fchmod(fd, p); err != nil {
			return err
		}
	}
	// xattrs after chown, which clears security.capability.
	x.xattrs(hdr, func(name string, val []byte) error { return unix.Fsetxattr(fd, name, val, 0) })
	if err := unix.UtimesNanoAt(pfd, leaf, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	err = unix.Close(fd)
	fd = -1
	return err
}

// copyTo writes r to fd through the extractor's buffer, with plain write
// calls (an os.File per entry costs extra syscalls).
func (x *extractor) copyTo(fd int, r io.Reader) (int64, error) {
	var n int64
	for {
		m, err := r.Read(x.buf)
		if m > 0 {
			if werr := writeAll(fd, x.buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		p = p[n:]
	}
	return nil
}

// copySparse writes r into fd, seeking over all-zero 4 KiB blocks so the
// holes of a sparse archive member stay holes, then sets the size.
func (x *extractor) copySparse(fd int, r io.Reader) (int64, error) {
	var off int64
	for {
		m, err := io.ReadFull(r, x.buf)
		if m > 0 {
			if werr := writeNonZero(fd, x.buf[:m], off); werr != nil {
				return off, werr
			}
			off += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, unix.Ftruncate(fd, off)
}

var zeroBlock [4096]byte

// writeNonZero writes the runs of p that are not all-zero 4 KiB blocks at
// off, one write per run.
func writeNonZero(fd int, p []byte, off int64) error {
	const blk = len(zeroBlock)
	run := -1
	for i := 0; i < len(p); i += blk {
		end := min(i+blk, len(p))
		if bytes.Equal(p[i:end], zeroBlock[:end-i]) {
			if run >= 0 {
				if err := pwriteAll(fd, p[run:i], off+int64(run)); err != nil {
					return err
				}
				run = -1
			}
			continue
		}
		if run < 0 {
			run = i
		}
	}
	if run >= 0 {
		return pwriteAll(fd, p[run:], off+int64(run))
	}
	return nil
}

func (x *extractor) hardlink(hdr *tar.Header, pfd int, leaf string) error {
	x.stats.Hardlinks++
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return refuse(hdr.Name, "hard link to "+hdr.Linkname+" outside the root")
	}
	if target == "." {
		return refuse(hdr.Name, "hard link to the root directory")
	}
	tdir := path.Dir(target)
	tfd := x.rootfd
	if tdir != "." {
		tfd, err = x.resolve(tdir, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		defer unix.Close(tfd)
	}
	if _, err := x.clear(pfd, leaf, false); err != nil {
		return err
	}
	// flags 0: link the target entry itself, never what a symlink names.
	return unix.Linkat(tfd, path.Base(target), pfd, leaf, 0)
}

func (x *extractor) symlink(hdr *tar.Header, pfd int, leaf string) error {
	x.stats.Symlinks++
	// A symlink may name anything (absolute targets are normal in a
	// rootfs): it is only ever created, never followed, here.
	err := unix.Symlinkat(hdr.Linkname, pfd, leaf)
	if err == unix.EEXIST {
		if _, err = x.clear(pfd, leaf, false); err == nil {
			err = unix.Symlinkat(hdr.Linkname, pfd, leaf)
		}
	}
	if err != nil {
		return err
	}
	if x.needChown(hdr.Uid, hdr.Gid) {
		if err := unix.Fchownat(pfd, leaf, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(pfd, leaf, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) node(hdr *tar.Header, pfd int, leaf string) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if _, err := x.clear(pfd, leaf, false); err != nil {
		return err
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(pfd, leaf, typ|perm(hdr), int(dev)); err != nil {
		if err == unix.EPERM && os.Geteuid() != 0 {
			x.stats.Skipped++
			x.stats.warn("%s: device node skipped (not root)", hdr.Name)
			return nil
		}
		return err
	}
	x.stats.Nodes++
	if x.chown {
		if err := unix.Fchownat(pfd, leaf, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	// mknod applied the umask; the node was just created, so following is moot.
	if err := unix.Fchmodat(pfd, leaf, perm(hdr), 0); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, leaf, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

// xattrs applies SCHILY.xattr.* (GNU tar, Go) and LIBARCHIVE.xattr.*
// (bsdtar) records. A filesystem without xattrs only costs a warning.
func (x *extractor) xattrs(hdr *tar.Header, set func(name string, val []byte) error) {
	for k, v := range hdr.PAXRecords {
		var name string
		var val []byte
		switch {
		case strings.HasPrefix(k, "SCHILY.xattr."):
			name, val = strings.TrimPrefix(k, "SCHILY.xattr."), []byte(v)
		case strings.HasPrefix(k, "LIBARCHIVE.xattr."):
			n, err := url.QueryUnescape(strings.TrimPrefix(k, "LIBARCHIVE.xattr."))
			if err != nil {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				if b, err = base64.RawStdEncoding.DecodeString(v); err != nil {
					continue
				}
			}
			name, val = n, b
		default:
			continue
		}
		if !x.chown && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
			x.stats.warn("%s: xattr %s needs root, skipped", hdr.Name, name)
			continue
		}
		if err := set(name, val); err != nil {
			x.stats.warn("%s: xattr %s: %v", hdr.Name, name, err)
		}
	}
}
