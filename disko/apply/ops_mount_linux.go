package apply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// mounted returns the topmost mount at target, if any.
func mountedAt(target string) (*mountInfo, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var top *mountInfo
	for i := range mounts {
		if mounts[i].Mountpoint == target {
			top = &mounts[i]
		}
	}
	return top, nil
}

func subvolOption(opts []string) string {
	for _, o := range opts {
		for _, s := range strings.Split(o, ",") {
			if v, ok := strings.CutPrefix(s, "subvol="); ok {
				return "/" + strings.Trim(v, "/")
			}
		}
	}
	return ""
}

func (x *executor) mount(op *disko.Op) (string, error) {
	target := filepath.Join(x.o.Root, op.Mountpoint)
	source := op.Device
	var devnum uint64
	if strings.HasPrefix(op.Device, "/dev/") {
		n, err := x.dev(op)
		if err != nil {
			return "", err
		}
		source = n
		if devnum, err = devOf(n); err != nil {
			return "", err
		}
	}
	cur, err := mountedAt(target)
	if err != nil {
		return "", err
	}
	if cur != nil {
		same := cur.FSType == op.Format
		if devnum != 0 {
			d := unix.Mkdev(cur.Major, cur.Minor)
			if cur.Major == 0 && strings.HasPrefix(cur.Source, "/dev/") {
				d, _ = devOf(cur.Source)
			}
			same = same && d == devnum
		}
		if sv := subvolOption(op.Options); sv != "" {
			same = same && cur.Root == sv
		}
		if same {
			return "already mounted at " + target, nil
		}
		return "", fmt.Errorf("%s is already a mount of %s (%s): unmount it first (nivis disko --mode unmount)", target, cur.Source, cur.FSType)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("create mountpoint %s: %w", target, err)
	}
	flags, data := mountFlags(op.Options)
	if err := unix.Mount(source, target, op.Format, flags, data); err != nil {
		hint := ""
		switch {
		case errors.Is(err, syscall.ENODEV):
			hint = fmt.Sprintf(" (the kernel has no %s support)", op.Format)
		case errors.Is(err, syscall.EINVAL):
			hint = " (an option the kernel does not take, or a damaged filesystem: the kernel log, dmesg, says which)"
		}
		return "", fmt.Errorf("mount(%q, %q, %q, %#x, %q): %w%s", source, target, op.Format, flags, data, err, hint)
	}
	return "", nil
}

func (x *executor) umount(op *disko.Op) (string, error) {
	target := filepath.Join(x.o.Root, op.Mountpoint)
	cur, err := mountedAt(target)
	if err != nil {
		return "", err
	}
	if cur == nil {
		return "not mounted", nil
	}
	return "", x.unmountList([]string{target})
}

// swapTarget returns the path swapon uses and how /proc/swaps shows it.
func (x *executor) swapTarget(op *disko.Op) (string, func(activeSwap) bool, error) {
	if op.FilePath != "" {
		p := filepath.Join(x.o.Root, op.FilePath)
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return "", nil, fmt.Errorf("swap file %s: %w", p, err)
		}
		return p, func(s activeSwap) bool { return !s.IsDev && s.Dev == st.Dev && s.Ino == st.Ino }, nil
	}
	n, err := x.dev(op)
	if err != nil {
		return "", nil, err
	}
	d, err := devOf(n)
	if err != nil {
		return "", nil, err
	}
	return n, func(s activeSwap) bool { return s.IsDev && s.Dev == d }, nil
}

func (x *executor) swapActive(match func(activeSwap) bool) (bool, error) {
	swaps, err := readSwaps()
	if err != nil {
		return false, err
	}
	for _, s := range swaps {
		if match(s) {
			return true, nil
		}
	}
	return false, nil
}

func (x *executor) swapon(op *disko.Op) (string, error) {
	p, match, err := x.swapTarget(op)
	if err != nil {
		return "", err
	}
	if on, err := x.swapActive(match); err != nil || on {
		return p + " is active swap", err
	}
	if err := swapon(p, swapFlags(op.Priority, op.Discard)); err != nil {
		return "", fmt.Errorf("swapon %s: %w", p, err)
	}
	return "", nil
}

func (x *executor) swapoff(op *disko.Op) (string, error) {
	p, match, err := x.swapTarget(op)
	if err != nil {
		if os.IsNotExist(errors.Unwrap(err)) {
			return "not there", nil
		}
		return "", err
	}
	on, err := x.swapActive(match)
	if err != nil {
		return "", err
	}
	if !on {
		return "not active", nil
	}
	if err := swapoff(p); err != nil {
		return "", fmt.Errorf("swapoff %s: %w", p, err)
	}
	return "", nil
}
