package apply

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelCanMount reports whether the running kernel knows fstype or has
// a module for it (loaded on first mount).
func kernelCanMount(fstype string) bool {
	if fstype == "" {
		return false
	}
	if f, err := os.Open("/proc/filesystems"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 0 && fields[len(fields)-1] == fstype {
				return true
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	mod := fstype
	switch fstype {
	case "vfat", "msdos":
		mod = "fat"
	case "ext2", "ext3":
		mod = "ext4"
	}
	matches, _ := filepath.Glob(filepath.Join("/lib/modules", rel, "kernel/fs", mod, "*.ko*"))
	return len(matches) > 0
}
