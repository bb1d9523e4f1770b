// Package vmtests proves nivis on real guests: it builds Debian guest images
// with debootstrap (cached by a hash of their inputs), boots them under QEMU
// and drives them over SSH.
//
// The pieces:
//   - Build turns an ImageSpec into a cached Image: a root ext4 filesystem
//     made with `mkfs.ext4 -d` (nothing is mounted), the guest's kernel and
//     initrd beside it, and on request a GPT disk (BIOS boot partition, ESP,
//     root) that SeaBIOS or OVMF boots through GRUB.
//   - Launch starts QEMU on a copy-on-write overlay of an Image, so the cache
//     is never modified, with user networking forwarded to a free 127.0.0.1
//     port, a QMP socket, and the serial console in a file.
//   - VM.WaitSSH, Run, Reboot, BootFromDisk, Shutdown and Logs drive the
//     guest with the plain OpenSSH client; tests of nivis use nivis itself.
//
// Tests run only with NIVIS_VMTESTS=1 (see Require). QEMU runs under TCG
// unless NIVIS_VM_ACCEL=kvm; the cache lives in $NIVIS_VM_CACHE or
// os.UserCacheDir()/nivis/vm.
package vmtests
