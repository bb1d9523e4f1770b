//go:build linux

package initramfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"

	"github.com/nivis/nivis/initramfs/base"
	"github.com/nivis/nivis/internal/carry"
)

// testBase is the embedded base when `make` built one, else a minimal
// stand-in with the base's directory layout (the assembly logic is the
// same; only the size figures need the real one).
func testBase(t *testing.T) ([]byte, bool) {
	t.Helper()
	if b, err := base.For(runtime.GOARCH); err == nil {
		return b, true
	}
	t.Logf("no embedded base for %s (run make): using a stand-in", runtime.GOARCH)
	return standInBase(t), false
}

// standInBase has the base's directory layout and nothing else.
func standInBase(t *testing.T) []byte {
	t.Helper()
	var raw bytes.Buffer
	w := cpio.NewWriter(&raw)
	for _, d := range []string{"bin", "dev", "etc", "lib64", "tmp", "usr", "usr/lib", "var"} {
		if err := w.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(&cpio.Header{Name: "init", Mode: cpio.TypeSymlink | 0o777, Size: 9}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "bbin/init")
	w.Close()
	enc, _ := zstd.NewWriter(nil)
	return enc.EncodeAll(raw.Bytes(), nil)
}

type walked struct {
	hdr  cpio.Header
	body []byte
	part int
}

func walkFile(t *testing.T, p string) (map[string]walked, []PartInfo, []walked) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]walked{}
	var order []walked
	parts, err := Walk(b, func(part int, h *cpio.Header, r io.Reader) error {
		body, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		w := walked{hdr: *h, body: body, part: part}
		files[h.Name] = w
		order = append(order, w)
		return nil
	})
	if err != nil {
		t.Fatalf("reading back %s: %v", p, err)
	}
	return files, parts, order
}

func testOptions(t *testing.T, out string, comp Compression) Options {
	t.Helper()
	b, _ := testBase(t)
	if comp == XZ {
		// Pure-Go xz runs at about 1 MB/s: keep its inputs small.
		b = standInBase(t)
	}
	agent, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\nCONFIG_RD_ZSTD=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var tools []string
	for _, tool := range []string{"mkfs.ext4", "mkfs.vfat", "lvm", "wipefs", "blkid"} {
		if _, err := FindTool(tool); err == nil {
			tools = append(tools, tool)
		}
	}
	if len(tools) < 3 {
		t.Skipf("need e2fsprogs, dosfstools, lvm2, util-linux on this host (./scripts/deps.sh); found %q", tools)
	}
	if comp == XZ {
		agent, _ = FindTool("wipefs")
		tools = []string{"wipefs"}
	}
	return Options{
		Output:        out,
		Base:          b,
		Agent:         agent,
		KernelRelease: "6.1.0-test",
		ModulesDir:    testModules,
		SysDevices:    "testdata/sys/devices",
		Modules:       []string{"btrfs", "fs-vfat"},
		Tools:         tools,
		State: carry.State{
			Hostname: "web1", MachineID: "0123", BootID: "b00t", SSHPorts: []int{2222},
			AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEnivisnivisnivisnivisnivisnivisnivisnivisniv test"},
			Network:        carry.Network{DNS: carry.DNS{Nameservers: []string{"192.0.2.53"}, Search: []string{"example.org"}}},
		},
		HostKeys: map[string][]byte{
			"ssh_host_ed25519_key":     []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n"),
			"ssh_host_ed25519_key.pub": []byte("ssh-ed25519 AAAA fake\n"),
		},
		Config:       []byte("apiVersion: nivis/v1alpha1\n"),
		Compression:  comp,
		KernelConfig: []string{cfg},
	}
}

// TestAssembleAndReadBack builds an initrd on this machine with each
// compression, reads it back the way the kernel does, and checks every
// part: the base, the agent as uinit, modules with their index, tools
// with their libraries, and the carry-over.
func TestAssembleAndReadBack(t *testing.T) {
	for _, comp := range []Compression{Zstd, XZ, Gzip, None} {
		t.Run(string(comp), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "initrd.img")
			o := testOptions(t, out, comp)
			o.CACerts = []byte("-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n")
			res, err := Assemble(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Compression != comp {
				t.Errorf("compression %s, want %s", res.Compression, comp)
			}
			files, parts, order := walkFile(t, out)

			// The parts Walk found are the ones Assemble reported.
			if len(parts) != 5 || len(res.Parts) != 5 {
				t.Fatalf("parts: walked %d, reported %d, want 5 (base agent modules tools carry)", len(parts), len(res.Parts))
			}
			for i, p := range parts {
				rp := res.Parts[i]
				if p.Offset != rp.Offset || p.Size != rp.Size {
					t.Errorf("part %d (%s): walked at %d+%d, reported %d+%d", i, rp.Name, p.Offset, p.Size, rp.Offset, rp.Size)
				}
				if p.Compression != comp {
					t.Errorf("part %d (%s) is %s, want %s", i, rp.Name, p.Compression, comp)
				}
				if p.Files != rp.Files {
					t.Errorf("part %s: %d files read, %d written", rp.Name, p.Files, rp.Files)
				}
			}
			st, _ := os.Stat(out)
			if st.Size() != res.Size {
				t.Errorf("file is %d bytes, result says %d", st.Size(), res.Size)
			}

			// The agent, byte for byte, executable, where /bin/uinit points.
			ag, ok := files[strings.TrimPrefix(carry.AgentPath, "/")]
			if !ok {
				t.Fatal("agent missing")
			}
			want, _ := os.ReadFile(o.Agent)
			if sha256.Sum256(ag.body) != sha256.Sum256(want) || ag.hdr.Mode.Perm() != 0o755 || !ag.hdr.Mode.IsRegular() {
				t.Errorf("agent: %d bytes mode %v, want %d bytes 0755", len(ag.body), ag.hdr.Mode, len(want))
			}
			if _, real := testBase(t); real && comp != XZ {
				if l := files["bin/uinit"]; l.hdr.Linkname != "../nivis/nivis" {
					t.Errorf("base bin/uinit -> %q, want ../nivis/nivis", l.hdr.Linkname)
				}
			}

			// Carry-over.
			var cs carry.State
			if err := json.Unmarshal(files["nivis/carry.json"].body, &cs); err != nil {
				t.Fatalf("carry.json: %v", err)
			}
			if cs.Hostname != "web1" || cs.KernelRelease != "6.1.0-test" || cs.Version != 1 ||
				len(cs.HostKeys) != 2 || cs.SSHPorts[0] != 2222 {
				t.Errorf("carry state %+v", cs)
			}
			if strings.Join(cs.EarlyModules, ",") != "virtio_pci,virtio_rng,btrfs,vfat" { // then the layout's (Modules)
				t.Errorf("early modules %q", cs.EarlyModules)
			}
			if k := files["nivis/hostkeys/ssh_host_ed25519_key"]; k.hdr.Mode.Perm() != 0o600 || !bytes.Contains(k.body, []byte("OPENSSH")) {
				t.Errorf("private host key: mode %v", k.hdr.Mode)
			}
			if d := files["nivis/hostkeys"]; d.hdr.Mode.Perm() != 0o700 || !d.hdr.Mode.IsDir() {
				t.Errorf("host key dir mode %v", d.hdr.Mode)
			}
			if string(files["nivis/config.yaml"].body) != string(o.Config) {
				t.Error("config not carried")
			}
			if rc := string(files["etc/resolv.conf"].body); !strings.Contains(rc, "nameserver 192.0.2.53") || !strings.Contains(rc, "search example.org") {
				t.Errorf("resolv.conf %q", rc)
			}
			if ca := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.Equal(ca.body, o.CACerts) || ca.hdr.Mode.Perm() != 0o644 {
				t.Errorf("CA bundle not carried: %q mode %v", ca.body, ca.hdr.Mode)
			}

			// Modules, compressed as found, with the filtered index.
			mroot := "lib/modules/6.1.0-test/"
			for _, m := range []string{"kernel/drivers/net/virtio_net.ko.xz", "kernel/fs/btrfs/btrfs.ko.zst", "kernel/fs/fat/vfat.ko",
				"kernel/crypto/crc32c_generic.ko.zst", "kernel/drivers/char/hw_random/virtio-rng.ko.xz", "modules.dep", "modules.alias", "modules.builtin", "modules.builtin.modinfo"} {
				if _, ok := files[mroot+m]; !ok {
					t.Errorf("%s%s missing", mroot, m)
				}
			}
			if _, ok := files[mroot+"kernel/drivers/gpu/drm/tiny/bochs.ko"]; ok {
				t.Error("a graphics driver was carried")
			}
			if !strings.Contains(string(files[mroot+"modules.dep"].body), "kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko") {
				t.Error("modules.dep lacks vfat")
			}

			// Tools at their real path, asked-for names as links, libraries.
			if contains(o.Tools, "mkfs.ext4") {
				if e := files["usr/sbin/mke2fs"]; !e.hdr.Mode.IsRegular() || e.hdr.Mode.Perm() != 0o755 {
					t.Errorf("usr/sbin/mke2fs: %v", e.hdr.Mode)
				}
				if l := files["usr/sbin/mkfs.ext4"]; l.hdr.Linkname != "mke2fs" {
					t.Errorf("usr/sbin/mkfs.ext4 -> %q, want mke2fs", l.hdr.Linkname)
				}
			}
			if contains(o.Tools, "lvm") {
				if l := files["usr/sbin/lvcreate"]; l.hdr.Linkname != "lvm" {
					t.Errorf("usr/sbin/lvcreate -> %q, want lvm", l.hdr.Linkname)
				}
			}
			if _, ok := files["etc/mke2fs.conf"]; !ok && contains(o.Tools, "mkfs.ext4") {
				t.Error("etc/mke2fs.conf missing")
			}
			for name := range files {
				if strings.HasSuffix(name, "/libc.so.6") {
					goto libcFound
				}
			}
			t.Error("libc.so.6 missing")
		libcFound:

			// The kernel creates no parent directories, and a directory
			// repeated in a later part would be chmod'ed: check both.
			seenDirs := map[string]int{}
			for _, w := range order {
				if parent := path.Dir(w.hdr.Name); parent != "." {
					if _, ok := seenDirs[parent]; !ok {
						t.Errorf("%s comes before its directory %s", w.hdr.Name, parent)
					}
				}
				if w.hdr.Mode.IsDir() {
					if p, dup := seenDirs[w.hdr.Name]; dup {
						t.Errorf("directory %s in part %d again in part %d", w.hdr.Name, p, w.part)
					}
					seenDirs[w.hdr.Name] = w.part
				}
			}

			// Estimate plans the same files without writing.
			est, err := Estimate(o)
			if err != nil {
				t.Fatal(err)
			}
			if est.Unpacked != res.Unpacked {
				t.Errorf("estimated unpacked %d, assembled %d", est.Unpacked, res.Unpacked)
			}
			t.Logf("%s: %.2f MiB, unpacked %.2f MiB, parts %+v", comp, mib(res.Size), mib(res.Unpacked), res.Parts)
		})
	}
}

// TestAssembledPartsReadBySystemTools checks each part with the zstd/xz/
// gzip and cpio programs, independently of our reader.
func TestAssembledPartsReadBySystemTools(t *testing.T) {
	for _, comp := range []Compression{Zstd, XZ, Gzip} {
		t.Run(string(comp), func(t *testing.T) {
			if _, err := exec.LookPath(string(comp)); err != nil {
				t.Skipf("%s not installed", comp)
			}
			if _, err := exec.LookPath("cpio"); err != nil {
				t.Skip("cpio not installed")
			}
			out := filepath.Join(t.TempDir(), "initrd.img")
			res, err := Assemble(testOptions(t, out, comp))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out)
			var all []string
			for _, p := range res.Parts {
				dec := exec.Command(string(comp), "-dc")
				dec.Stdin = bytes.NewReader(b[p.Offset : p.Offset+p.Size])
				raw, err := dec.Output()
				if err != nil {
					t.Fatalf("%s -dc of part %s: %v", comp, p.Name, err)
				}
				list := exec.Command("cpio", "-it", "--quiet")
				list.Stdin = bytes.NewReader(raw)
				names, err := list.Output()
				if err != nil {
					t.Fatalf("cpio -t of part %s: %v", p.Name, err)
				}
				all = append(all, strings.Fields(string(names))...)
			}
			for _, want := range []string{"nivis/nivis", "nivis/carry.json", "nivis/hostkeys/ssh_host_ed25519_key", "usr/sbin/wipefs", "lib/modules/6.1.0-test/modules.dep"} {
				if !contains(all, want) {
					t.Errorf("%s not listed by cpio", want)
				}
			}
		})
	}
}

// TestCarriedToolsRunInEmptyRoot unpacks the tools part alone into an
// empty directory and runs mkfs.ext4 and an lvm link there: the tools and
// their libraries are complete.
func TestCarriedToolsRunInEmptyRoot(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "initrd.img")
	o := testOptions(t, out, Zstd)
	if _, err := Assemble(o); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	files, _, order := walkFile(t, out)
	_ = files
	for _, w := range order {
		if w.part != 3 { // tools
			continue
		}
		p := filepath.Join(root, w.hdr.Name)
		os.MkdirAll(filepath.Dir(p), 0o755) // parents from the base
		switch {
		case w.hdr.Mode.IsDir():
			os.MkdirAll(p, os.FileMode(w.hdr.Mode.Perm()))
		case w.hdr.Linkname != "":
			os.Symlink(w.hdr.Linkname, p)
		default:
			if err := os.WriteFile(p, w.body, os.FileMode(w.hdr.Mode.Perm())); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(args ...string) string {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v in the carried root: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("/usr/sbin/mkfs.ext4", "-q", "-F", "/fs.img", "8M")
	if st, err := os.Stat(filepath.Join(root, "fs.img")); err != nil || st.Size() != 8<<20 {
		t.Errorf("mkfs.ext4 made no 8 MiB image: %v", err)
	}
	if contains(o.Tools, "lvm") {
		if out := run("/usr/sbin/lvcreate", "--version"); !strings.Contains(out, "LVM version") {
			t.Errorf("lvcreate --version: %s", out)
		}
	}
}

func TestAssembleMissingToolNamesPackage(t *testing.T) {
	o := testOptions(t, filepath.Join(t.TempDir(), "initrd"), Zstd)
	o.Tools = []string{"mkfs.nosuchfs", "mkfs.ext4"}
	if _, err := FindTool("mkfs.f2fs"); err != nil {
		o.Tools = append(o.Tools, "mkfs.f2fs")
	}
	_, err := Assemble(o)
	var mt *MissingToolError
	if !errors.As(err, &mt) {
		t.Fatalf("err = %v, want a MissingToolError", err)
	}
	if !strings.Contains(err.Error(), "mkfs.nosuchfs missing on the host: apt-get install") {
		t.Errorf("error %q does not say what to install", err)
	}
	if contains(o.Tools, "mkfs.f2fs") && !strings.Contains(err.Error(), "mkfs.f2fs missing on the host: apt-get install f2fs-tools") {
		t.Errorf("error %q does not name f2fs-tools", err)
	}
}

func TestAssembleWithoutModulesWarns(t *testing.T) {
	o := testOptions(t, filepath.Join(t.TempDir(), "initrd"), Gzip)
	o.ModulesDir = filepath.Join(t.TempDir(), "none")
	res, err := Assemble(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 4 || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "no kernel modules") {
		t.Errorf("parts %d, warnings %q: want 4 parts and a warning", len(res.Parts), res.Warnings)
	}
}

func TestMissingBaseSaysBuildWithMake(t *testing.T) {
	_, err := base.For("riscv64")
	if err == nil || err.Error() != "this nivis was built without the rescue base image for riscv64; build with `make`" {
		t.Errorf("err = %v", err)
	}
}

func TestKernelSupport(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, []byte("# CONFIG_RD_ZSTD is not set\nCONFIG_RD_XZ=y\nCONFIG_RD_GZIP=y\n"), 0o644)
	ks := ReadKernelSupport([]string{filepath.Join(dir, "missing"), cfg})
	if ks.Best() != Gzip || ks.Source != cfg || !ks.Supported[XZ] || ks.Supported[Zstd] {
		t.Errorf("best %s from %s (%v), want gzip from %s", ks.Best(), ks.Source, ks.Supported, cfg)
	}
	os.WriteFile(cfg, []byte("CONFIG_RD_XZ=y\n"), 0o644)
	if ks := ReadKernelSupport([]string{cfg}); ks.Best() != XZ {
		t.Errorf("xz-only kernel: %s", ks.Best())
	}
	if ks := ReadKernelSupport([]string{filepath.Join(dir, "missing")}); ks.Best() != Gzip {
		t.Errorf("without a config: %s, want gzip", ks.Best())
	}
	// This machine's /proc/config.gz, when it has one.
	if _, err := os.Stat("/proc/config.gz"); err == nil {
		ks := ReadKernelSupport([]string{"/proc/config.gz"})
		if ks.Source != "/proc/config.gz" || len(ks.Supported) < 2 {
			t.Errorf("/proc/config.gz: %+v", ks)
		}
	}
}
