//go:build linux

package kexec

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// classify turns a failed syscall's errno into an Error, using what the
// host state says about the cause.
func classify(call string, errno syscall.Errno, hs HostState) *Error {
	e := &Error{Syscall: call, Errno: errno, Err: errno}
	switch {
	case hs.LoadDisabled && (errno == syscall.EPERM || errno == syscall.EACCES):
		e.Kind, e.Detail, e.Fix = KindDisabled, "kernel.kexec_load_disabled is 1", fixDisabled
	case errno == syscall.ENOSYS:
		e.Kind, e.Detail, e.Fix = KindUnsupported, "the kernel has no "+call+" system call", fixUnsupported
	case isSignatureErrno(errno):
		e.Kind, e.Detail, e.Fix = KindSignature, "signature check failed: "+errno.Error(), fixSignature
		if hs.lockedDown() {
			e.Detail += fmt.Sprintf(" (kernel lockdown: %s, Secure Boot: %v)", hs.Lockdown, hs.SecureBoot)
		}
	case (errno == syscall.EPERM || errno == syscall.EACCES) && hs.lockedDown():
		e.Kind, e.Detail, e.Fix = KindLockdown, fmt.Sprintf("refused by kernel lockdown (%s mode, Secure Boot: %v)", hs.Lockdown, hs.SecureBoot), fixLockdown
	case (errno == syscall.EPERM || errno == syscall.EACCES) && hs.Container != "":
		e.Kind, e.Detail, e.Fix = KindPermission, fmt.Sprintf("%s in a %s container", errno.Error(), hs.Container), fmt.Sprintf(fixContainer, hs.Container)
	case errno == syscall.EPERM || errno == syscall.EACCES:
		e.Kind, e.Detail, e.Fix = KindPermission, "operation not permitted", fixPermission
	case errno == syscall.ENOEXEC || errno == syscall.EINVAL:
		e.Kind, e.Detail, e.Fix = KindBadImage, "the kernel rejected the image: "+errno.Error(), fixBadImage
	case errno == syscall.ENOMEM || errno == syscall.EADDRNOTAVAIL:
		e.Kind, e.Detail, e.Fix = KindNoMemory, errno.Error(), fixNoMemory
	case errno == syscall.EBUSY:
		e.Kind, e.Detail, e.Fix = KindBusy, errno.Error(), fixBusy
	default:
		e.Kind, e.Detail = KindOther, errno.Error()
	}
	return e
}

// isSignatureErrno: the errnos the kernel's signature verifier returns.
func isSignatureErrno(e syscall.Errno) bool {
	switch e {
	case unix.EKEYREJECTED, unix.EKEYREVOKED, unix.EKEYEXPIRED, unix.ENOKEY, unix.EBADMSG, unix.ENOPKG:
		return true
	}
	return false
}

// fallbackAllowed says whether kexec_load may succeed where
// kexec_file_load failed with errno: not under lockdown (it refuses
// kexec_load outright) nor when kexec is disabled.
func fallbackAllowed(errno syscall.Errno, hs HostState) bool {
	if hs.LoadDisabled || hs.lockedDown() {
		return false
	}
	switch errno {
	case syscall.ENOMEM, syscall.EBUSY:
		return false
	}
	return true
}
