//go:build linux

package sysmgr

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// tempName is a sibling of p for an atomic rename; the suffix marks
// leftovers of a killed run so gc can find them.
func tempName(p string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".nivis-tmp-"+hex.EncodeToString(b[:]))
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to p through a temp file, fsync and rename,
// with mode and owner set before the rename so p is never seen half-made.
// uid/gid -1 leave the owner alone.
func writeFileAtomic(p string, r io.Reader, mode os.FileMode, uid, gid int) error {
	tmp := tempName(p)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(p))
}

// writeBytesAtomic is writeFileAtomic for state files nivis owns.
func writeBytesAtomic(p string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(p, bytes.NewReader(data), mode, -1, -1)
}

// symlinkAtomic points p at target, replacing whatever file or link is
// there in one rename.
func symlinkAtomic(target, p string) error {
	tmp := tempName(p)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(p))
}

// hashFile returns the hex sha256 of a file's content.
func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFileAtomic copies src to dst atomically with the given mode and owner.
func copyFileAtomic(src, dst string, mode os.FileMode, uid, gid int) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeFileAtomic(dst, f, mode, uid, gid)
}

// onDisk is what lstat found at a path.
type onDisk struct {
	Kind   string // "", "file", "symlink", "dir", "other"
	Size   int64
	Mode   uint32 // permission bits incl. setuid/setgid/sticky
	UID    int
	GID    int
	Target string
	path   string
	sum    string
}

func inspect(p string) (*onDisk, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return &onDisk{path: p}, nil
	}
	if err != nil {
		return nil, err
	}
	d := &onDisk{path: p, Size: fi.Size(), Mode: uint32(fi.Mode().Perm())}
	if fi.Mode()&os.ModeSetuid != 0 {
		d.Mode |= 0o4000
	}
	if fi.Mode()&os.ModeSetgid != 0 {
		d.Mode |= 0o2000
	}
	if fi.Mode()&os.ModeSticky != 0 {
		d.Mode |= 0o1000
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		d.UID, d.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode().IsRegular():
		d.Kind = "file"
	case fi.Mode()&os.ModeSymlink != 0:
		d.Kind = "symlink"
		d.Target, err = os.Readlink(p)
		if err != nil {
			return nil, err
		}
	case fi.IsDir():
		d.Kind = "dir"
	default:
		d.Kind = "other"
	}
	return d, nil
}

// SHA256 hashes the file lazily (most checks stop at the size).
func (d *onDisk) SHA256() (string, error) {
	if d.sum == "" {
		s, err := hashFile(d.path)
		if err != nil {
			return "", err
		}
		d.sum = s
	}
	return d.sum, nil
}

func (d *onDisk) describe() string {
	switch d.Kind {
	case "":
		return "nothing"
	case "file":
		return fmt.Sprintf("a file (%d bytes, mode %04o)", d.Size, d.Mode)
	case "symlink":
		return "a symlink to " + d.Target
	case "dir":
		return "a directory"
	}
	return "a special file"
}

// fileMode turns permission bits (with setuid etc.) into an os.FileMode.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
