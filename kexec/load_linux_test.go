//go:build linux

package kexec

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/initramfs"
)

func TestClassify(t *testing.T) {
	none := HostState{Lockdown: "none"}
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
		hs    HostState
		kind  Kind
		says  string
	}{
		{"disabled", unix.EPERM, HostState{LoadDisabled: true}, KindDisabled, "cannot be undone"},
		{"no kexec in kernel", unix.ENOSYS, none, KindUnsupported, "CONFIG_KEXEC"},
		{"lockdown", unix.EPERM, HostState{Lockdown: "integrity", SecureBoot: true}, KindLockdown, "Secure Boot"},
		{"signature under lockdown", unix.EKEYREJECTED, HostState{Lockdown: "integrity", SecureBoot: true}, KindSignature, "signed kernel"},
		{"bad signature message", unix.EBADMSG, none, KindSignature, "signature"},
		{"no key", unix.ENOKEY, none, KindSignature, "signature"},
		{"plain EPERM", unix.EPERM, none, KindPermission, "CAP_SYS_BOOT"},
		{"EPERM in a container", unix.EPERM, HostState{Container: "lxc"}, KindPermission, "lxc"},
		{"bad image", unix.ENOEXEC, none, KindBadImage, "bzImage"},
		{"no memory", unix.ENOMEM, none, KindNoMemory, "RAM"},
		{"busy", unix.EBUSY, none, KindBusy, "in progress"},
		{"other", unix.EIO, none, KindOther, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := classify(MethodFileLoad, tc.errno, tc.hs)
			if e.Kind != tc.kind {
				t.Errorf("kind %s, want %s (%v)", e.Kind, tc.kind, e)
			}
			if !strings.Contains(e.Error(), tc.says) {
				t.Errorf("message %q does not say %q", e.Error(), tc.says)
			}
			if !errors.Is(e, tc.errno) {
				t.Errorf("%v does not unwrap to %v", e, tc.errno)
			}
		})
	}
}

// fakeLoaders replaces the two syscalls for one test.
func fakeLoaders(t *testing.T, hs HostState, file, seg error) *[]string {
	t.Helper()
	var calls []string
	of, os_, oh := fileLoad, segmentLoad, readHostState
	fileLoad = func(_, _ *os.File, _ string) error { calls = append(calls, MethodFileLoad); return file }
	segmentLoad = func(_, _ *os.File, _ string) error { calls = append(calls, MethodLoad); return seg }
	readHostState = func() HostState { return hs }
	t.Cleanup(func() { fileLoad, segmentLoad, readHostState = of, os_, oh })
	return &calls
}

func dummyFiles(t *testing.T) (string, string) {
	d := t.TempDir()
	k, i := filepath.Join(d, "vmlinuz"), filepath.Join(d, "initrd")
	os.WriteFile(k, []byte("not really a kernel"), 0o644)
	os.WriteFile(i, []byte("070701"), 0o644)
	return k, i
}

func TestLoadFallsBackAndExplains(t *testing.T) {
	k, i := dummyFiles(t)
	none := HostState{Lockdown: "none"}
	for _, tc := range []struct {
		name      string
		hs        HostState
		file, seg error
		calls     string
		method    string
		kind      Kind
		detailHas string
	}{
		{name: "file load works", hs: none, calls: "kexec_file_load", method: MethodFileLoad},
		{name: "no kexec_file_load: kexec_load works", hs: none, file: unix.ENOSYS, calls: "kexec_file_load,kexec_load", method: MethodLoad},
		{name: "both missing", hs: none, file: unix.ENOSYS, seg: fmt.Errorf("kexec Load: %w", unix.ENOSYS), calls: "kexec_file_load,kexec_load", kind: KindUnsupported},
		{name: "kexec_load parse error keeps the syscall's cause", hs: none, file: unix.ENOSYS, seg: errors.New("parsing bzImage: bad magic"),
			calls: "kexec_file_load,kexec_load", kind: KindUnsupported, detailHas: "parsing bzImage"},
		{name: "unsigned kernel without lockdown: kexec_load works", hs: none, file: unix.EKEYREJECTED, calls: "kexec_file_load,kexec_load", method: MethodLoad},
		{name: "lockdown: no pointless kexec_load", hs: HostState{Lockdown: "integrity", SecureBoot: true}, file: unix.EKEYREJECTED, calls: "kexec_file_load", kind: KindSignature},
		{name: "disabled: nothing is tried", hs: HostState{LoadDisabled: true}, calls: "", kind: KindDisabled},
		{name: "out of memory: kexec_load would not help", hs: none, file: unix.ENOMEM, calls: "kexec_file_load", kind: KindNoMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := fakeLoaders(t, tc.hs, tc.file, tc.seg)
			method, err := Load(k, i, "console=ttyS0", t.TempDir(), t.Logf)
			if got := strings.Join(*calls, ","); got != tc.calls {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			if tc.kind == "" {
				if err != nil || method != tc.method {
					t.Fatalf("method %q err %v, want %q", method, err, tc.method)
				}
				return
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Kind != tc.kind {
				t.Fatalf("err %v, want kind %s", err, tc.kind)
			}
			if ke.Fix == "" {
				t.Errorf("%v has no fix", ke)
			}
			if !strings.Contains(ke.Error(), tc.detailHas) {
				t.Errorf("%q lacks %q", ke.Error(), tc.detailHas)
			}
		})
	}
}

// TestLoadOnThisKernel calls the real syscalls. This machine's kernel is
// built without kexec, so the answer must be the "unsupported" error with
// its fix, not a raw errno.
func TestLoadOnThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
			t.Fatal("NIVIS_REQUIRE_ROOT=1 but not root")
		}
		t.Skip("needs root")
	}
	cfg, src := initramfs.ReadKernelConfig(initramfs.KernelConfigPaths(initramfs.RunningRelease(), true))
	if cfg == nil || cfg["CONFIG_KEXEC"] == "y" || cfg["CONFIG_KEXEC_FILE"] == "y" {
		t.Skipf("this kernel may have kexec (config %q); the real load is proven in the VM tests", src)
	}
	k, i := dummyFiles(t)
	_, err := Load(k, i, "", t.TempDir(), t.Logf)
	var ke *Error
	if !errors.As(err, &ke) || ke.Kind != KindUnsupported || ke.Errno != unix.ENOSYS {
		t.Fatalf("err %v, want KindUnsupported with ENOSYS", err)
	}
	t.Logf("%v", err)
}

func TestUnpackKernel(t *testing.T) {
	dir := t.TempDir()
	image := bytes.Repeat([]byte("ARM64 Image "), 1000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(image)
	zw.Close()

	// Image.gz, as Debian's arm64 vmlinuz.
	p := filepath.Join(dir, "vmlinuz.gz")
	os.WriteFile(p, gz.Bytes(), 0o644)
	out, ok, err := unpackKernel(p, dir)
	if err != nil || !ok {
		t.Fatalf("gzip: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, image) {
		t.Error("gzip: wrong content")
	}

	// EFI zboot: MZ, "zimg", payload offset and size, compression name.
	hdr := make([]byte, 128)
	copy(hdr, "MZ")
	copy(hdr[4:], "zimg")
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(hdr)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(gz.Len()))
	copy(hdr[24:], "gzip")
	p = filepath.Join(dir, "vmlinuz.efi")
	os.WriteFile(p, append(hdr, gz.Bytes()...), 0o644)
	sub := filepath.Join(dir, "z")
	os.Mkdir(sub, 0o755)
	out, ok, err = unpackKernel(p, sub)
	if err != nil || !ok {
		t.Fatalf("zboot: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, image) {
		t.Error("zboot: wrong content")
	}

	// A bzImage (or plain Image) is used as it is.
	p = filepath.Join(dir, "bzImage")
	os.WriteFile(p, append([]byte("MZ\x00\x00\x00\x00\x00\x00"), image...), 0o644)
	if out, ok, err := unpackKernel(p, dir); err != nil || ok || out != p {
		t.Errorf("bzImage: %q %v %v", out, ok, err)
	}
}

func TestScheduleRefusesWithoutLoadedKernel(t *testing.T) {
	if Loaded() {
		t.Skip("a kexec kernel is loaded on this machine")
	}
	_, err := Schedule("/bin/true", t.TempDir(), 0)
	if err == nil || !strings.Contains(err.Error(), "kexec-prepare") {
		t.Errorf("err = %v, want a pointer to kexec-prepare", err)
	}
}
