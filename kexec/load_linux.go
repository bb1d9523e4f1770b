//go:build linux

package kexec

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/u-root/u-root/pkg/boot/linux"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/facts"
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
	// readHostState reads what Load and Reboot need when no facts
	// snapshot was passed to them.
	readHostState = func() HostState { return HostStateOf(facts.GatherBoot("/")) }
)

// Load loads kernel and initrd with cmdline as the kernel to boot on the
// next kexec reboot. It tries kexec_file_load, then kexec_load where that
// can help, and returns the method that worked. workDir holds a
// decompressed arm64 Image when one is needed. Failures are *Error.
func Load(kernel, initrd, cmdline, workDir string, log func(format string, args ...any)) (string, error) {
	return load(readHostState(), kernel, initrd, cmdline, workDir, log)
}

// load is Load with the host state taken from the caller's facts snapshot.
func load(hs HostState, kernel, initrd, cmdline, workDir string, log func(format string, args ...any)) (string, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
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
