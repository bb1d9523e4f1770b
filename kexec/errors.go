package kexec

import (
	"syscall"

	"github.com/nivis/nivis/internal/facts"
)

// Kind is the cause of a kexec refusal.
type Kind string

// The causes nivis tells apart.
const (
	KindDisabled    Kind = "kexec_load_disabled"
	KindLockdown    Kind = "lockdown"
	KindUnsupported Kind = "unsupported"
	KindPermission  Kind = "permission"
	KindSignature   Kind = "signature"
	KindBadImage    Kind = "bad_image"
	KindNoMemory    Kind = "no_memory"
	KindBusy        Kind = "busy"
	KindOther       Kind = "other"
)

// Error is a failed kexec load or boot, with its cause and the fix.
type Error struct {
	Kind Kind
	// Syscall is kexec_file_load, kexec_load or reboot ("" for a refusal
	// found before any call, e.g. kexec_load_disabled).
	Syscall string
	Errno   syscall.Errno
	// Detail says what was seen (the lockdown mode, the errno text).
	Detail string
	// Fix says what to do next.
	Fix string
	Err error
}

func (e *Error) Error() string {
	msg := "kexec"
	if e.Syscall != "" {
		msg += " (" + e.Syscall + ")"
	}
	msg += ": " + e.Detail
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// HostState is what decides whether and how kexec can work on a host.
type HostState struct {
	// Lockdown is the active mode in /sys/kernel/security/lockdown:
	// "none", "integrity", "confidentiality", or "" when unknown.
	Lockdown string `json:"lockdown"`
	// SecureBoot is the firmware's SecureBoot variable (false if unknown).
	SecureBoot bool `json:"secure_boot"`
	// LoadDisabled is kernel.kexec_load_disabled=1.
	LoadDisabled bool `json:"kexec_load_disabled"`
	// Container names the container type when nivis runs in one.
	Container string `json:"container,omitempty"`
}

// HostStateOf takes the host state from a facts snapshot, the one reader
// of /proc, /sys and efivars.
func HostStateOf(f *facts.Facts) HostState {
	return HostState{
		Lockdown:     f.Boot.Lockdown,
		SecureBoot:   f.Boot.SecureBoot == "enabled",
		LoadDisabled: f.Kexec.LoadDisabled != nil && *f.Kexec.LoadDisabled,
		Container:    f.Virtualization.Container,
	}
}

func (h HostState) lockedDown() bool {
	return h.Lockdown == "integrity" || h.Lockdown == "confidentiality"
}

// Fix texts, shared by errors and preflight checks.
const (
	fixDisabled = "kexec is disabled on this host until reboot: sysctl kernel.kexec_load_disabled=1 cannot be undone. " +
		"Remove it from /etc/sysctl.conf and /etc/sysctl.d/, reboot, and run nivis again"
	fixLockdown = "kernel lockdown (usually switched on by UEFI Secure Boot) refuses kexec_load and accepts only signed kernels " +
		"with kexec_file_load: use the distribution's signed kernel (the default /boot/vmlinuz-$(uname -r)), or disable Secure Boot " +
		"in the firmware (or `mokutil --disable-validation`) and run nivis again"
	fixUnsupported = "this kernel was built without kexec (CONFIG_KEXEC / CONFIG_KEXEC_FILE): boot the distribution's standard kernel " +
		"(e.g. linux-image-amd64 on Debian) and run nivis again"
	fixPermission = "kexec needs root with CAP_SYS_BOOT on the host itself: run the agent as root (--sudo), and not inside a " +
		"container (LXC, OpenVZ, Docker), where the kernel belongs to the provider"
	fixContainer = "this host is a container (%s): its kernel belongs to the provider, so it cannot be kexec'd; " +
		"install from the provider's rescue system or use a full VM"
	fixSignature = "the kernel refused the image's signature (Secure Boot / lockdown or CONFIG_KEXEC_SIG_FORCE): load the " +
		"distribution's signed kernel image (the default), or disable Secure Boot in the firmware"
	fixBadImage = "the kernel image is not in a format this kernel can kexec (x86: bzImage; arm64: Image, Image.gz or an EFI zboot image): " +
		"pass --kernel with the distribution's kernel"
	fixNoMemory = "the kernel found no room for the new kernel and initrd: free memory (stop services), or use a host with more RAM"
	fixBusy     = "another kexec operation is in progress: wait for it, or reboot the host"
)
