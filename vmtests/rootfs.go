//go:build linux

package vmtests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rootfsVersion names the revision of configureRootfs; bump it when that
// changes so cached tarballs are rebuilt.
const rootfsVersion = 1

// RootfsPackages are what the install tests' system gets on top of
// debootstrap's minbase: a kernel, GRUB for BIOS and UEFI, systemd with
// networkd (which nivis's finalize enables), sshd and the filesystem tools.
// No ifupdown: the network is nivis's to write.
var RootfsPackages = []string{
	"linux-image-amd64", "grub-pc-bin", "grub-efi-amd64-bin", "grub2-common",
	"systemd-sysv", "openssh-server", "udev", "kmod", "iproute2",
	"e2fsprogs", "dosfstools",
}

// Rootfs is a cached Debian root filesystem as a tarball (GNU tar with
// xattrs and numeric owners, zstd), the system `nivis install` installs.
// It holds no host keys, machine-id, hostname or authorized keys: the
// install's finalize step writes those.
type Rootfs struct {
	Suite    string   `json:"suite"`
	Packages []string `json:"packages"`
	// Key is the hash of the inputs; Path is rootfs-KEY.tar.zst.
	Key           string `json:"key"`
	Path          string `json:"-"`
	Size          int64  `json:"size"`
	KernelRelease string `json:"kernel_release"`
	// BuiltAt and BuildTime describe the build that made the tarball.
	BuiltAt   time.Time     `json:"built_at"`
	BuildTime time.Duration `json:"build_time"`

	CacheHit bool          `json:"-"`
	Took     time.Duration `json:"-"`
}

// BuildRootfs returns the cached install tarball, building it first when
// missing (root, debootstrap and the Debian archive are needed then; the
// .debs come from the same cached debootstrap tarball as the guest image's
// when the packages are a subset of the guest's).
func BuildRootfs(ctx context.Context, o BuildOptions) (*Rootfs, error) {
	return BuildRootfsWith(ctx, o)
}

// BuildRootfsWith is BuildRootfs with extra packages (a variant cached
// under its own key).
func BuildRootfsWith(ctx context.Context, o BuildOptions, extra ...string) (*Rootfs, error) {
	start := time.Now()
	r := commandRunner{logf: o.Logf}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	// The union with the guest's packages names the guest's own debs
	// tarball when ours are a subset: no second download.
	spec := DefaultSpec()
	want := append(slices.Clone(RootfsPackages), extra...)
	spec.Packages = append(slices.Clone(spec.Packages), want...)
	spec.Mirror = DebianMirror()
	pkgs := slices.Clone(want)
	slices.Sort(pkgs)
	key := hashJSON(struct {
		Suite    string
		Packages []string
		Debs     string
		Version  int
	}{spec.Suite, pkgs, spec.debsKey(), rootfsVersion})
	base := filepath.Join(cache, "rootfs-"+key)
	finish := func(rf *Rootfs, hit bool) *Rootfs {
		rf.Path = base + ".tar.zst"
		rf.CacheHit = hit
		rf.Took = time.Since(start)
		return rf
	}
	if rf, err := loadRootfs(base); err == nil {
		return finish(rf, true), nil
	}
	lock, err := lockFile(ctx, base+".lock")
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	if rf, err := loadRootfs(base); err == nil {
		return finish(rf, true), nil
	}
	if err := buildPreflight(); err != nil {
		return nil, err
	}
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := r.run(ctx, tool, "--version"); err != nil {
			return nil, fmt.Errorf("%s is needed to pack the install rootfs: %w", tool, err)
		}
	}
	r.log("building install rootfs %s (%s, %d packages) in %s", key, spec.Suite, len(pkgs), cache)
	debs, err := ensureDebs(ctx, r, cache, spec)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cache, ".build-rootfs-"+key+"-")
	if err != nil {
		return nil, err
	}
	defer removeTree(tmp)
	tree := filepath.Join(tmp, "tree")
	if _, err := r.run(ctx, "debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
		"--include="+strings.Join(pkgs, ","), "--unpack-tarball="+debs,
		spec.Suite, tree, spec.Mirror); err != nil {
		return nil, fmt.Errorf("debootstrap the install rootfs: %w", err)
	}
	release, err := kernelRelease(tree)
	if err != nil {
		return nil, err
	}
	if err := configureRootfs(ctx, r, tree); err != nil {
		return nil, fmt.Errorf("configure the install rootfs: %w", err)
	}
	out := filepath.Join(tmp, "rootfs.tar.zst")
	// GNU tar keeps xattrs (security.capability of ping and friends) and
	// numeric owners, so the tarball means the same on any machine.
	if _, err := r.run(ctx, "tar", "--create", "--file="+out, "--directory="+tree,
		"--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name",
		"--use-compress-program=zstd -T0 -6", "."); err != nil {
		return nil, fmt.Errorf("pack the install rootfs: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	rf := &Rootfs{
		Suite: spec.Suite, Packages: pkgs, Key: key, Size: st.Size(), KernelRelease: release,
		BuiltAt: time.Now().UTC(), BuildTime: time.Since(start),
	}
	m, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return nil, err
	}
	// The tarball first, the manifest last: its presence means complete.
	if err := os.Rename(out, base+".tar.zst"); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(base+".json", m, 0o644); err != nil {
		return nil, err
	}
	r.log("built install rootfs %s (%d MiB) in %s", key, st.Size()>>20, rf.BuildTime.Round(time.Second))
	return finish(rf, false), nil
}

func loadRootfs(base string) (*Rootfs, error) {
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var rf Rootfs
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("%s.json: %w", base, err)
	}
	st, err := os.Stat(base + ".tar.zst")
	if err != nil {
		return nil, err
	}
	if st.Size() != rf.Size {
		return nil, fmt.Errorf("%s.tar.zst: size %d, manifest says %d", base, st.Size(), rf.Size)
	}
	return &rf, nil
}

// configureRootfs makes the debootstrap tree a generic system image: GRUB
// talks on the serial console, sshd makes its host keys on first boot
// (none are shipped), and whatever identifies one machine is left empty for
// nivis to fill in.
func configureRootfs(ctx context.Context, r commandRunner, tree string) error {
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"etc/default/grub", 0o644, `GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="Debian"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
`},
		{"etc/hostname", 0o644, "localhost\n"},
		{"etc/hosts", 0o644, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		// Empty: systemd treats the first boot as such when finalize did
		// not write one.
		{"etc/machine-id", 0o444, ""},
		{"etc/fstab", 0o644, "# written by nivis install from the disk layout\n"},
		{"etc/ssh/sshd_config.d/nivis-rootfs.conf", 0o644, "PermitRootLogin prohibit-password\nUseDNS no\n"},
		{"etc/systemd/system/nivis-ssh-keygen.service", 0o644, sshKeygenUnit},
	}
	for _, f := range files {
		p := filepath.Join(tree, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		os.Remove(p)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	// openssh-server's postinst made keys in the tree: every machine
	// installed from this tarball would share them.
	keys, _ := filepath.Glob(filepath.Join(tree, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, argv := range [][]string{
		{"chroot", tree, "systemctl", "enable", "nivis-ssh-keygen.service"},
		{"chroot", tree, "systemctl", "mask", "e2scrub_reap.service", "e2scrub_all.timer",
			"apt-daily.timer", "apt-daily-upgrade.timer", "fstrim.timer"},
	} {
		if _, err := r.run(ctx, argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*", "var/log/*.log", "var/lib/dbus/machine-id"} {
		m, _ := filepath.Glob(filepath.Join(tree, glob))
		for _, p := range m {
			os.Remove(p)
		}
	}
	return nil
}

// sshKeygenUnit makes the host keys the tarball does not ship, unless
// nivis copied the old ones in (--copy-host-keys): ssh-keygen -A only adds
// missing types.
const sshKeygenUnit = `[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service
`

// TestRootfs returns the install tarball for a test, building it when the
// cache lacks it.
func TestRootfs(t testing.TB, extra ...string) *Rootfs {
	t.Helper()
	rf, err := BuildRootfsWith(context.Background(), BuildOptions{Logf: t.Logf}, extra...)
	if err != nil {
		t.Fatalf("install rootfs: %v", err)
	}
	how := "cache hit"
	if !rf.CacheHit {
		how = "built"
	}
	t.Logf("stage rootfs: %s %s (%d MiB, kernel %s) in %s", how, rf.Key, rf.Size>>20, rf.KernelRelease, rf.Took.Round(time.Millisecond))
	return rf
}
