//go:build linux

// One function per kind of tar entry: directory, file, link, device.

package install

import (
	"archive/tar"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/nivis/nivis/internal/exitcode"
	"golang.org/x/sys/unix"
)

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

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") || strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
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
