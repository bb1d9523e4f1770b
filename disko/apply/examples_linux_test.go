package apply

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
)

// kernelHas reports whether /proc/devices lists a driver (device-mapper, md).
func kernelHas(driver string) bool {
	b, err := os.ReadFile("/proc/devices")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == driver {
			return true
		}
	}
	return false
}

// needs lists what an example needs from the kernel and tools beyond
// GPT, ext4, xfs, btrfs, swap and tmpfs.
func needs(l *disko.Layout) []string {
	var out []string
	if len(l.LVMVGs) > 0 && !kernelHas("device-mapper") {
		out = append(out, "device-mapper (LVM)")
	}
	if len(l.MDADM) > 0 && !kernelHas("md") {
		out = append(out, "md (mdadm)")
	}
	for _, k := range sortedKeys(l.Disks) {
		disko.WalkContent(l.Disks[k].Content, func(c disko.Content) {
			switch x := c.(type) {
			case *disko.LUKS:
				if !kernelHas("device-mapper") {
					out = append(out, "device-mapper (LUKS)")
				}
			case *disko.Filesystem:
				if _, ok := command.Find("mkfs." + x.Format); !ok {
					out = append(out, "mkfs."+x.Format)
				}
			}
		})
	}
	return out
}

// withoutVfat turns vfat into ext4 where the kernel cannot mount vfat
// (this machine), dropping vfat-only mount options.
func withoutVfat(l *disko.Layout) bool {
	if kernelCanMount("vfat") {
		return false
	}
	changed := false
	for _, k := range sortedKeys(l.Disks) {
		disko.WalkContent(l.Disks[k].Content, func(c disko.Content) {
			if f, ok := c.(*disko.Filesystem); ok && f.Format == "vfat" {
				f.Format = "ext4"
				var opts []string
				for _, o := range f.MountOptions {
					if !strings.HasPrefix(o, "umask=") && !strings.HasPrefix(o, "fmask=") && !strings.HasPrefix(o, "dmask=") {
						opts = append(opts, o)
					}
				}
				if len(opts) == 0 {
					opts = []string{"defaults"}
				}
				f.MountOptions = opts
				changed = true
			}
		})
	}
	return changed
}

// withoutXFSQuota drops xfs quota mount options where the kernel was
// built without XFS quota (this machine: mount fails with EINVAL).
func withoutXFSQuota(l *disko.Layout) bool {
	cfg, err := exec.Command("sh", "-c", "zcat /proc/config.gz 2>/dev/null").Output()
	if err != nil || !strings.Contains(string(cfg), "# CONFIG_XFS_QUOTA is not set") {
		return false
	}
	changed := false
	quota := map[string]bool{"quota": true, "usrquota": true, "uquota": true, "grpquota": true, "gquota": true, "prjquota": true, "pquota": true}
	for _, k := range sortedKeys(l.Disks) {
		disko.WalkContent(l.Disks[k].Content, func(c disko.Content) {
			if f, ok := c.(*disko.Filesystem); ok && f.Format == "xfs" {
				var opts []string
				for _, o := range f.MountOptions {
					if quota[o] {
						changed = true
						continue
					}
					opts = append(opts, o)
				}
				f.MountOptions = opts
			}
		})
	}
	return changed
}

// TestExamplesOnLoop runs every disko example this kernel can run on loop
// devices: destroy, format, mount, the example's own checks, unmount,
// mount again. The rest (LUKS, LVM, md, f2fs) runs in the guest suite.
func TestExamplesOnLoop(t *testing.T) {
	requireRoot(t)
	for _, f := range exampleFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			l, _, err := disko.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if n := needs(l); len(n) > 0 {
				t.Skipf("needs %s, which this machine lacks (the guest suite runs it)", strings.Join(n, ", "))
			}
			l, _ = loadOnLoop(t, f, 2<<30)
			if withoutVfat(l) {
				t.Logf("vfat mapped to ext4: this kernel cannot mount vfat")
			}
			if withoutXFSQuota(l) {
				t.Logf("xfs quota options dropped: this kernel has no CONFIG_XFS_QUOTA")
			}
			root := filepath.Join(t.TempDir(), "mnt")
			p, _ := apply(t, l, "destroy,format,mount", root)
			checkMounted(t, p, root)
			runChecks(t, strings.TrimSuffix(f, ".json")+".checks", root)
			apply(t, l, "unmount", root)
			if m := mountsUnder(t, root); len(m) != 0 {
				t.Fatalf("still mounted after unmount: %v", m)
			}
			p, _ = apply(t, l, "mount", root)
			checkMounted(t, p, root)
			apply(t, l, "unmount", root)
		})
	}
}

// checkMounted asserts every mount of the plan is mounted with its
// filesystem type, and every swap is on.
func checkMounted(t *testing.T, p *disko.Plan, root string) {
	t.Helper()
	got := mountsUnder(t, root)
	swaps := 0
	active := activeSwaps(t)
	for _, op := range p.Ops {
		switch op.Op {
		case disko.OpMount:
			mi, ok := got[strings.TrimSuffix(op.Mountpoint, "/")]
			if !ok {
				t.Errorf("%s not mounted at %s", op.Device, root+op.Mountpoint)
				continue
			}
			if mi.FSType != op.Format {
				t.Errorf("%s: mounted as %s, want %s", root+op.Mountpoint, mi.FSType, op.Format)
			}
		case disko.OpSwapon:
			swaps++
			if op.FilePath != "" && !strings.Contains(active, filepath.Join(root, op.FilePath)) {
				t.Errorf("swap file %s not active:\n%s", op.FilePath, active)
			}
		}
	}
	if n := strings.Count(active, "\n") - 1; n < swaps {
		t.Errorf("%d swaps active, the layout has %d:\n%s", n, swaps, active)
	}
}

// exampleFiles lists disko's examples (NIVIS_DISKO_EXAMPLES overrides).
func exampleFiles(t testing.TB) []string {
	dir := os.Getenv("NIVIS_DISKO_EXAMPLES")
	if dir == "" {
		dir = filepath.Join("..", "testdata", "examples")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	sort.Strings(files)
	return files
}

// runChecks runs the lines of disko's own VM test that make sense below a
// mount root instead of on a booted system.
func runChecks(t *testing.T, file, root string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return // not every example has checks
	}
	subvol := regexp.MustCompile(`^btrfs subvolume list / \| grep -qs 'path (.*)\$'$`)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "mountpoint":
			p := filepath.Join(root, strings.TrimPrefix(f[1], "/mnt"))
			if out, err := exec.Command("mountpoint", "-q", p).CombinedOutput(); err != nil {
				t.Errorf("check %q: %s is not a mountpoint %s", line, p, out)
			}
		case len(f) == 3 && f[0] == "test" && f[1] == "-e":
			if _, err := os.Stat(filepath.Join(root, f[2])); err != nil {
				t.Errorf("check %q: %v", line, err)
			}
		case len(f) == 4 && f[0] == "test" && f[1] == "!" && f[2] == "-e":
			if _, err := os.Stat(filepath.Join(root, f[3])); err == nil {
				t.Errorf("check %q: %s exists", line, f[3])
			}
		case subvol.MatchString(line):
			want := subvol.FindStringSubmatch(line)[1]
			out, err := exec.Command("btrfs", "subvolume", "list", root).CombinedOutput()
			if err != nil || !regexp.MustCompile(`(?m)path `+regexp.QuoteMeta(want)+`$`).Match(out) {
				t.Errorf("check %q: %v\n%s", line, err, out)
			}
		case strings.HasPrefix(line, "findmnt / --types "):
			if m := mountsUnder(t, root)[""]; m.FSType != f[3] {
				t.Errorf("check %q: / is %s", line, m.FSType)
			}
		default:
			t.Logf("check %q: not meaningful outside a booted guest; the guest suite runs it", line)
		}
	}
}
