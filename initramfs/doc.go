// Package initramfs assembles the nivis rescue initrd on the target host:
// the u-root base embedded at build time (package initramfs/base), the
// nivis agent as u-root's uinit, the running kernel's modules for the
// present hardware and the disk layout, the layout's tools copied from
// the host with their shared libraries, and the carry-over (network, SSH
// keys, host keys, config; package internal/carry). Each of these is a
// cpio archive compressed on its own with what the kernel can unpack; the
// kernel unpacks them one after the other into the same rootfs.
//
// It also captures the host's state for the carry-over (Capture) and reads
// an initrd back (Walk), which tests use as the independent check.
package initramfs
