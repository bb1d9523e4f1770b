//go:build linux

// Resolving entry paths: every open walks down from the root fd and
// never leaves it, whatever symlinks the archive planted.

package install

import (
	"errors"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

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
