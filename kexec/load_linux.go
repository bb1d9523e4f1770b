//go:build linux

package kexec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/u-root/u-root/pkg/boot/linux"
	"golang.org/x/sys/unix"
)

// Methods Load reports.
const (
	MethodFileLoad = "kexec_file_load"
	MethodLoad     = "kexec_load"
)

// The loaders, swapped by tests.
var (
	fileLoad = func(kernel, initrd *os.File, cmdline string) error {
		return unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), cmdline, 0)
	}
	segmentLoad = func(kernel, initrd *os.File, cmdline string) error {
		return linux.KexecLoad(kernel, initrd, cmdline, nil, nil)
	}
	readHostState = ReadHostState
)

// ReadHostState reads lockdown, Secure Boot, kexec_load_disabled and
// whether we run in a container.
func ReadHostState() HostState {
	var hs HostState
	if b, err := os.ReadFile("/sys/kernel/security/lockdown"); err == nil {
		hs.Lockdown = activeLockdown(string(b))
	}
	hs.SecureBoot = secureBoot()
	if b, err := os.ReadFile("/proc/sys/kernel/kexec_load_disabled"); err == nil {
		hs.LoadDisabled = strings.TrimSpace(string(b)) == "1"
	}
	hs.Container = container()
	return hs
}

// activeLockdown picks the bracketed mode of "none [integrity] confidentiality".
func activeLockdown(s string) string {
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]")
		}
	}
	return ""
}

func secureBoot() bool {
	// 4 bytes of attributes, then the value.
	b, err := os.ReadFile("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98032b8c39c")
	return err == nil && len(b) >= 5 && b[4] == 1
}

// container tells the container type the way systemd-detect-virt does,
// for the few kinds a VPS can be.
func container() string {
	if b, err := os.ReadFile("/proc/1/environ"); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("container=")); ok && len(v) > 0 {
				return string(v)
			}
		}
	}
	if _, err := os.Stat("/proc/vz"); err == nil {
		if _, err := os.Stat("/proc/bc"); err != nil {
			return "openvz"
		}
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		return "docker"
	}
	if _, err := os.Stat("/run/.containerenv"); err == nil {
		return "podman"
	}
	return ""
}

// Load loads kernel and initrd with cmdline as the kernel to boot on the
// next kexec reboot. It tries kexec_file_load, then kexec_load where that
// can help, and returns the method that worked. workDir holds a
// decompressed arm64 Image when one is needed. Failures are *Error.
func Load(kernel, initrd, cmdline, workDir string, log func(format string, args ...any)) (string, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	hs := readHostState()
	if hs.LoadDisabled {
		return "", &Error{Kind: KindDisabled, Detail: "kernel.kexec_load_disabled is 1", Fix: fixDisabled}
	}
	img, unpacked, err := unpackKernel(kernel, workDir)
	if err != nil {
		return "", &Error{Kind: KindBadImage, Detail: err.Error(), Fix: fixBadImage, Err: err}
	}
	if unpacked {
		defer os.Remove(img)
		log("kexec: decompressed %s to %s", kernel, img)
	}
	kf, err := os.Open(img)
	if err != nil {
		return "", fmt.Errorf("kernel image: %w", err)
	}
	defer kf.Close()
	rf, err := os.Open(initrd)
	if err != nil {
		return "", fmt.Errorf("initrd: %w", err)
	}
	defer rf.Close()

	ferr := fileLoad(kf, rf, cmdline)
	if ferr == nil {
		return MethodFileLoad, nil
	}
	fe := classifyErr(MethodFileLoad, ferr, hs)
	if !fallbackAllowed(fe.Errno, hs) {
		return "", fe
	}
	log("kexec: kexec_file_load failed (%s); trying kexec_load", fe.Detail)
	if _, err := kf.Seek(0, 0); err != nil {
		return "", err
	}
	if _, err := rf.Seek(0, 0); err != nil {
		return "", err
	}
	lerr := segmentLoad(kf, rf, cmdline)
	if lerr == nil {
		return MethodLoad, nil
	}
	le := classifyErr(MethodLoad, lerr, hs)
	return "", moreTelling(fe, le)
}

// moreTelling picks which of the two failures to report, mentioning the
// other: a refusal with a known cause from kexec_load says more than
// "no such syscall" or "bad image" from kexec_file_load, and an errno says
// more than a parse error of u-root's loader.
func moreTelling(fe, le *Error) *Error {
	if le.Kind != KindOther && (fe.Kind == KindUnsupported || fe.Kind == KindOther || fe.Kind == KindBadImage) {
		le.Detail = fmt.Sprintf("%s (kexec_file_load: %s)", le.Detail, fe.Detail)
		return le
	}
	fe.Detail = fmt.Sprintf("%s (kexec_load: %s)", fe.Detail, le.Detail)
	return fe
}

// classifyErr finds the errno inside err (u-root wraps it) and classifies.
func classifyErr(call string, err error, hs HostState) *Error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e := classify(call, errno, hs)
		e.Err = err
		return e
	}
	return &Error{Kind: KindOther, Syscall: call, Detail: err.Error(), Err: err}
}

// Loaded reports whether a kexec kernel is loaded (/sys/kernel/kexec_loaded).
func Loaded() bool {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Unload drops a loaded kexec kernel (kexec_file_load with the unload flag).
func Unload() error {
	return unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
}
