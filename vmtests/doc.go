// Package vmtests proves nivis on real guests: it builds Debian guest images
// with debootstrap (cached by a hash of their inputs), boots them under QEMU
// and drives them over SSH.
//
// The pieces:
//   - Build turns an ImageSpec into a cached Image: a root ext4 filesystem
//     made with `mkfs.ext4 -d` (nothing is mounted), the guest's kernel and
//     initrd beside it, and on request (Image.BootDisk) a GPT disk with a
//     BIOS boot partition, an ESP and the root filesystem that SeaBIOS and
//     OVMF boot through GRUB. The downloaded packages are cached as a
//     debootstrap tarball, so variants build without the network.
//   - Launch starts QEMU on a copy-on-write overlay of an Image, so the cache
//     is never modified: TCG unless NIVIS_VM_ACCEL=kvm, -cpu max, a
//     virtio-rng device, extra blank disks, optional OVMF, user networking
//     with SSH forwarded to a free 127.0.0.1 port and a fixed MAC (or a
//     static address, Config.StaticNetwork), a QMP socket, and the serial
//     console in a file.
//   - VM.WaitSSH, Run, Reboot, BootFromDisk, Relaunch, Reset, Shutdown and
//     Logs drive the guest with the plain OpenSSH client and the cached key;
//     tests of nivis use nivis itself.
//   - Require gates tests on NIVIS_VMTESTS=1; StartVM kills QEMU when the
//     test ends and logs the serial console and journal when it failed
//     (also saved to $NIVIS_VM_LOGDIR when set).
//
// The cache lives in $NIVIS_VM_CACHE or os.UserCacheDir()/nivis/vm; the
// Debian archive is the one this machine's apt uses, or $NIVIS_DEBIAN_MIRROR.
// `go run ./vmtests/cmd/vmimage` builds an image by hand (-prune removes
// other cached images); vmtests/cmd/demo is `make demo`.
package vmtests
