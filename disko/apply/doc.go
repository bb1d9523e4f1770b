// Package apply executes disko plans on Linux: it reads the disks from
// sysfs, resolves /dev/disk/by-* names in Go so nothing waits on udev,
// writes GPTs with go-diskfs and tells the kernel with BLKPG, and runs
// mkfs, cryptsetup, lvm and mdadm through internal/command, one file per
// family of operations. It logs nothing on its own: callers pass an
// oplog.Log and an event callback in Options. It also serves the agent's
// disko verb (Handlers).
package apply
