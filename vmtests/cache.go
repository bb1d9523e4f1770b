//go:build linux

package vmtests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CacheDir is where images, the debootstrap tarballs and the test SSH key
// live: $NIVIS_VM_CACHE, else os.UserCacheDir()/nivis/vm.
func CacheDir() (string, error) {
	if d := os.Getenv("NIVIS_VM_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set NIVIS_VM_CACHE): %w", err)
	}
	return filepath.Join(base, "nivis", "vm"), nil
}

// fileLock is an exclusive flock on a file, so that two test processes (or a
// test and the demo) never build the same thing at once.
type fileLock struct{ f *os.File }

// lockFile blocks until it holds path's lock or ctx ends.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s (another build running?): %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (l *fileLock) unlock() {
	if l != nil && l.f != nil {
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
	}
}

// DebianMirror is the Debian archive this machine's apt uses (the first
// "deb" source of /etc/apt/sources.list or sources.list.d whose path ends in
// /debian), $NIVIS_DEBIAN_MIRROR when set, else deb.debian.org.
func DebianMirror() string {
	if m := os.Getenv("NIVIS_DEBIAN_MIRROR"); m != "" {
		return m
	}
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, more...)
	more, _ = filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, more...)
	for _, name := range files {
		if m := mirrorFrom(name); m != "" {
			return m
		}
	}
	return "http://deb.debian.org/debian"
}

// mirrorFrom reads one apt source file in either the one-line or the deb822
// format and returns the first archive URI ending in /debian.
func mirrorFrom(name string) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uris []string
		switch {
		case strings.HasPrefix(line, "deb "):
			uris = strings.Fields(line)[1:] // options in [...] are filtered below
		case strings.HasPrefix(line, "URIs:"):
			uris = strings.Fields(strings.TrimPrefix(line, "URIs:"))
		}
		for _, u := range uris {
			u = strings.TrimSuffix(u, "/")
			if (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) && strings.HasSuffix(u, "/debian") {
				return u
			}
		}
	}
	return ""
}

// Prune deletes cached images other than keep (by Key), e.g. those left by
// an older configVersion. A running VM keeps its base image open, so it is
// not disturbed; an image being built is skipped by taking its lock.
func Prune(ctx context.Context, keep ...*Image) (removed []string, err error) {
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dirs, _ := filepath.Glob(filepath.Join(cache, "image-*"))
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() {
			continue
		}
		key := strings.TrimPrefix(filepath.Base(d), "image-")
		kept := false
		for _, k := range keep {
			kept = kept || (k != nil && k.Key == key)
		}
		if kept {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		lock, err := lockFile(lctx, d+".lock")
		cancel()
		if err != nil {
			continue // in use by a build
		}
		err = os.RemoveAll(d)
		os.Remove(d + ".lock")
		lock.unlock()
		if err != nil {
			return removed, err
		}
		removed = append(removed, d)
	}
	return removed, nil
}
