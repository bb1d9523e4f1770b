package apply

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mountFlags splits mount options into mount(2) flags and the data string
// the filesystem parses, the way mount(8) does. Options that only mean
// something to fstab or to mount(8) itself are dropped.
func mountFlags(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	set := map[string]uintptr{
		"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
		"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME,
		"relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME, "lazytime": unix.MS_LAZYTIME, "mand": unix.MS_MANDLOCK,
		"silent": unix.MS_SILENT, "bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC,
	}
	clear := map[string]uintptr{
		"rw": unix.MS_RDONLY, "suid": unix.MS_NOSUID, "dev": unix.MS_NODEV, "exec": unix.MS_NOEXEC, "async": unix.MS_SYNCHRONOUS,
		"atime": unix.MS_NOATIME, "diratime": unix.MS_NODIRATIME, "norelatime": unix.MS_RELATIME, "nostrictatime": unix.MS_STRICTATIME,
		"nolazytime": unix.MS_LAZYTIME, "nomand": unix.MS_MANDLOCK, "loud": unix.MS_SILENT,
	}
	for _, o := range opts {
		for _, opt := range strings.Split(o, ",") {
			opt = strings.TrimSpace(opt)
			switch {
			case opt == "" || opt == "defaults" || opt == "auto" || opt == "noauto" || opt == "user" || opt == "nouser" ||
				opt == "users" || opt == "owner" || opt == "group" || opt == "nofail" || opt == "_netdev" ||
				strings.HasPrefix(opt, "x-") || strings.HasPrefix(opt, "X-") || strings.HasPrefix(opt, "comment="):
			case set[opt] != 0:
				flags |= set[opt]
			case clear[opt] != 0:
				flags &^= clear[opt]
			default:
				data = append(data, opt)
			}
		}
	}
	return flags, strings.Join(data, ",")
}

// Swap flags from <linux/swap.h>.
const (
	swapFlagPrefer       = 0x8000
	swapFlagPrioMask     = 0x7fff
	swapFlagDiscard      = 0x10000
	swapFlagDiscardOnce  = 0x20000
	swapFlagDiscardPages = 0x40000
)

func swapFlags(priority *int, discard string) uintptr {
	var f uintptr
	if priority != nil {
		f |= swapFlagPrefer | uintptr(*priority&swapFlagPrioMask)
	}
	switch discard {
	case "both":
		f |= swapFlagDiscard
	case "once":
		f |= swapFlagDiscard | swapFlagDiscardOnce
	case "pages":
		f |= swapFlagDiscard | swapFlagDiscardPages
	}
	return f
}

func swapon(path string, flags uintptr) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), flags, 0); e != 0 {
		return e
	}
	return nil
}

func swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}
