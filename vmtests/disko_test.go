//go:build linux

package vmtests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/disko"
)

// TestDiskoExamples is suite (b) of the disko package: every example in
// disko/testdata/examples (disko's examples as JSON) runs inside a Debian guest whose kernel has
// device-mapper, md and vfat, on two extra virtio disks named by
// /dev/disk/by-id (udev runs there). Each example is destroyed, formatted
// and mounted with `nivis disko`, checked (partition labels and types,
// filesystem types, mountpoints, swap, LUKS headers, LVs, md arrays, and
// disko's own checks), then unmounted, mounted again and formatted again
// without losing a file written in between.
func TestDiskoExamples(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	vm := StartVM(t, Config{Image: img, MemoryMiB: 2048, CPUs: 2, Disks: []Disk{
		{SizeMiB: 3072, Serial: "nivis-disk0"}, {SizeMiB: 3072, Serial: "nivis-disk1"},
	}})
	start := time.Now()
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "boot", start)
	push(t, vm, nivis, "/usr/local/bin/nivis", 0o755)
	// The LUKS examples read their keys from /tmp, as disko's own tests do.
	guest(t, vm, "echo -n secretsecret > /tmp/secret.key && echo -n additionalSecret > /tmp/additionalSecret.key && mkdir -p /root/ex")
	// Every example starts from blank disks, as in disko's own tests: nivis
	// destroys whatever the previous one left (md arrays, VGs, LUKS).
	guest(t, vm, `cat > /root/ex/blank.json <<'EOF'
{"disk": {"a": {"device": "/dev/disk/by-id/virtio-nivis-disk0"}, "b": {"device": "/dev/disk/by-id/virtio-nivis-disk1"}}}
EOF`)

	files, _ := filepath.Glob(filepath.Join(examplesDir(t), "*.json"))
	if len(files) == 0 {
		t.Fatal("no disko examples found")
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			defer Stage(t, "example "+name, start)
			runExample(t, vm, f)
		})
	}
}

func examplesDir(t *testing.T) string {
	if d := os.Getenv("NIVIS_DISKO_EXAMPLES"); d != "" {
		return d
	}
	return filepath.Join("..", "disko", "testdata", "examples")
}

func push(t *testing.T, vm *VM, local, remote string, mode os.FileMode) {
	t.Helper()
	f, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errb bytes.Buffer
	cmd := fmt.Sprintf("cat > %s.tmp && chmod %o %s.tmp && mv %s.tmp %s", remote, mode, remote, remote, remote)
	if err := vm.RunIO(context.Background(), cmd, f, nil, &errb); err != nil {
		t.Fatalf("copy %s to the guest: %v %s", local, err, errb.String())
	}
}

func guest(t *testing.T, vm *VM, cmd string) string {
	t.Helper()
	out, err := vm.Run(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diskoRun is what `nivis disko --json` prints.
type diskoRun struct {
	Report []struct {
		Severity, Path, Message string
	} `json:"report"`
	Plan   *disko.Plan   `json:"plan"`
	Result *disko.Result `json:"result"`
	Fstab  string        `json:"fstab"`
	Error  string        `json:"error"`
}

func runExample(t *testing.T, vm *VM, file string) {
	name := strings.TrimSuffix(filepath.Base(file), ".json")
	l, rep, err := disko.ParseFile(file)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, rep.String())
	}
	push(t, vm, file, "/root/ex/"+name+".json", 0o644)
	if out, err := vm.Run(context.Background(), "nivis --yes disko --mode destroy --root /mnt /root/ex/blank.json 2>&1"); err != nil {
		t.Fatalf("blank the disks: %v\n%s", err, out)
	}
	guest(t, vm, "for d in /dev/vdb /dev/vdc; do test -z \"$(lsblk -nro FSTYPE,PARTLABEL $d | tr -d ' \\n')\" || { lsblk -f $d; exit 1; }; done")
	// The example's disks, in key order, become the guest's extra disks.
	var diskArgs []string
	guestDisk := map[string]string{}
	for i, k := range sortedDiskKeys(l) {
		dev := fmt.Sprintf("/dev/disk/by-id/virtio-nivis-disk%d", i)
		diskArgs = append(diskArgs, "--disk", k+"="+dev)
		guestDisk[k] = fmt.Sprintf("/dev/vd%c", 'b'+i)
		if err := l.SetDiskDevice(k, dev); err != nil {
			t.Fatal(err)
		}
	}
	run := func(mode string) diskoRun {
		t.Helper()
		cmd := "nivis --yes disko --json --root /mnt --mode " + mode + " " + strings.Join(diskArgs, " ") + " /root/ex/" + name + ".json"
		var out, errb bytes.Buffer
		runErr := vm.RunIO(context.Background(), cmd, nil, &out, &errb)
		var r diskoRun
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%s: no JSON (%v): %v\nstdout: %s\nstderr: %s", cmd, err, runErr, tail(out.String(), 4096), tail(errb.String(), 8192))
		}
		if runErr != nil || r.Error != "" {
			plan := ""
			if r.Plan != nil {
				plan = r.Plan.String()
			}
			t.Fatalf("%s: %v %s\nreport: %+v\nplan:\n%s\nlog:\n%s", cmd, runErr, r.Error, r.Report, plan, tail(errb.String(), 16384))
		}
		return r
	}
	if _, ok := hostHas(vm, l); !ok {
		// f2fs: the guest has no f2fs-tools; nivis must refuse it plainly.
		cmd := "nivis --yes disko --root /mnt " + strings.Join(diskArgs, " ") + " /root/ex/" + name + ".json"
		out, err := vm.Run(context.Background(), cmd)
		if err == nil || !strings.Contains(err.Error(), "not supported on this host: needs mkfs.") {
			t.Fatalf("an example the guest cannot run was not refused plainly: %v\n%s", err, out)
		}
		return
	}

	run("destroy,format,mount")
	checkGuest(t, vm, l, guestDisk)
	runDiskoChecks(t, vm, file, guestDisk)
	mounts := diskMountsOf(l)
	keep := ""
	if len(mounts) > 0 {
		keep = shq(filepath.Join("/mnt", mounts[len(mounts)-1], "nivis-keep"))
		guest(t, vm, "head -c 4096 /dev/urandom > "+keep+" && sha256sum "+keep+" > /root/keep.sum && sync")
	}
	run("unmount")
	if out := guest(t, vm, "findmnt -rn -o TARGET | grep -c '^/mnt' || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("%s mounts left under /mnt after unmount", strings.TrimSpace(out))
	}
	run("mount")
	checkGuest(t, vm, l, guestDisk)
	if r := run("mount"); len(r.Result.Changed) != 0 {
		t.Errorf("mount twice changed %v", r.Result.Changed)
	}
	if r := run("format,mount"); len(r.Result.Changed) != 0 {
		t.Errorf("format on a formatted layout changed %v", r.Result.Changed)
	}
	if keep != "" {
		guest(t, vm, "sha256sum -c /root/keep.sum")
	}
	run("unmount")
}

func sortedDiskKeys(l *disko.Layout) []string {
	var keys []string
	for k := range l.Disks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hostHas reports whether the guest has every mkfs the layout uses.
func hostHas(vm *VM, l *disko.Layout) (string, bool) {
	var rep bytes.Buffer
	_ = rep
	for _, k := range sortedDiskKeys(l) {
		if missing := missingMkfs(vm, l.Disks[k].Content); missing != "" {
			return missing, false
		}
	}
	return "", true
}

func missingMkfs(vm *VM, c disko.Content) string {
	switch x := c.(type) {
	case *disko.GPT:
		for _, p := range x.Sorted {
			if m := missingMkfs(vm, p.Content); m != "" {
				return m
			}
		}
	case *disko.LUKS:
		return missingMkfs(vm, x.Content)
	case *disko.Filesystem:
		if _, err := vm.Run(context.Background(), "command -v mkfs."+x.Format); err != nil {
			return "mkfs." + x.Format
		}
	}
	return ""
}

// diskMountsOf lists the mountpoints that are on disks (not tmpfs), where
// a file written survives an unmount.
func diskMountsOf(l *disko.Layout) []string {
	nodev := map[string]bool{}
	for _, n := range l.Nodevs {
		nodev[n.Mountpoint] = true
	}
	var out []string
	for _, m := range mountsOf(l) {
		covered := false
		for nd := range nodev {
			// A file under a tmpfs mountpoint lands in the tmpfs.
			if m == nd || strings.HasPrefix(m+"/", strings.TrimSuffix(nd, "/")+"/") && nd != "/" {
				covered = true
			}
		}
		if !covered {
			out = append(out, m)
		}
	}
	return out
}

// mountsOf lists the layout's mountpoints, parents first.
func mountsOf(l *disko.Layout) []string {
	var out []string
	var visit func(c disko.Content)
	visit = func(c disko.Content) {
		switch x := c.(type) {
		case *disko.GPT:
			for _, p := range x.Sorted {
				visit(p.Content)
			}
		case *disko.LUKS:
			visit(x.Content)
		case *disko.Filesystem:
			if x.Mountpoint != "" {
				out = append(out, x.Mountpoint)
			}
		case *disko.Btrfs:
			if x.Mountpoint != "" {
				out = append(out, x.Mountpoint)
			}
			for _, s := range x.SortedSubvolumes() {
				if s.Mountpoint != "" {
					out = append(out, s.Mountpoint)
				}
			}
		}
	}
	for _, k := range sortedDiskKeys(l) {
		visit(l.Disks[k].Content)
	}
	for _, m := range l.MDADM {
		visit(m.Content)
	}
	for _, vg := range l.LVMVGs {
		for _, lv := range vg.SortedLVs() {
			visit(lv.Content)
		}
	}
	for _, n := range l.Nodevs {
		if n.Mountpoint != "" {
			out = append(out, n.Mountpoint)
		}
	}
	sort.Strings(out)
	return out
}

type lsblkDev struct {
	Name       string     `json:"name"`
	PartLabel  *string    `json:"partlabel"`
	PartType   *string    `json:"parttype"`
	FSType     *string    `json:"fstype"`
	Mountpoint *string    `json:"mountpoint"`
	Children   []lsblkDev `json:"children"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkGuest asserts, with the guest's own tools, that the layout is on
// its disks and mounted.
func checkGuest(t *testing.T, vm *VM, l *disko.Layout, guestDisk map[string]string) {
	t.Helper()
	for _, k := range sortedDiskKeys(l) {
		g, ok := l.Disks[k].Content.(*disko.GPT)
		if !ok {
			continue
		}
		out := guest(t, vm, "udevadm settle -t 10; lsblk -J -o NAME,PARTLABEL,PARTTYPE,FSTYPE,MOUNTPOINT "+guestDisk[k])
		var ls struct {
			Blockdevices []lsblkDev `json:"blockdevices"`
		}
		if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls.Blockdevices) != 1 {
			t.Fatalf("lsblk: %v\n%s", err, out)
		}
		parts := map[string]lsblkDev{}
		for _, c := range ls.Blockdevices[0].Children {
			parts[c.Name] = c
		}
		base := strings.TrimPrefix(guestDisk[k], "/dev/")
		for _, p := range g.Sorted {
			got, ok := parts[fmt.Sprintf("%s%d", base, p.Index)]
			if !ok {
				t.Errorf("%s: partition %d (%s) missing: %s", k, p.Index, p.Key, out)
				continue
			}
			if str(got.PartLabel) != p.Label || !strings.EqualFold(str(got.PartType), p.TypeGUID) {
				t.Errorf("%s partition %d: label %q type %q; want %q %s", k, p.Index, str(got.PartLabel), str(got.PartType), p.Label, p.TypeGUID)
			}
			want := ""
			switch x := p.Content.(type) {
			case *disko.Filesystem:
				want = x.Format
			case *disko.Btrfs:
				want = "btrfs"
			case *disko.Swap:
				if !x.RandomEncryption {
					want = "swap"
				}
			case *disko.LUKS:
				want = "crypto_LUKS"
				guest(t, vm, "cryptsetup isLuks /dev/"+got.Name)
			case *disko.LVMPV:
				want = "LVM2_member"
			case *disko.MDRaid:
				want = "linux_raid_member"
			}
			if want != "" {
				// blkid -p reads the disk itself; lsblk's FSTYPE is udev's
				// view of it (the by-uuid links come from there).
				probed := strings.TrimSpace(guest(t, vm, "blkid -p -o value -s TYPE /dev/"+got.Name+" || true"))
				if probed != want || str(got.FSType) != want {
					t.Errorf("%s partition %d: blkid -p %q, udev %q; want %q", k, p.Index, probed, str(got.FSType), want)
				}
			}
		}
	}
	for _, mp := range mountsOf(l) {
		guest(t, vm, "mountpoint -q "+shq(filepath.Join("/mnt", mp)))
	}
	for _, vg := range l.LVMVGs {
		for _, lv := range vg.LVs {
			guest(t, vm, "lvm lvs "+vg.Name+"/"+lv.Name+" >/dev/null")
		}
	}
	for _, md := range l.MDADM {
		guest(t, vm, "test -b /dev/md/"+md.Name+" && grep -q active /proc/mdstat")
	}
}

// runDiskoChecks runs disko's own checks for the example, with paths moved
// under /mnt and /dev/vda (disko's test disk) mapped to the guest's disk.
func runDiskoChecks(t *testing.T, vm *VM, file string, guestDisk map[string]string) {
	t.Helper()
	b, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".checks")
	if err != nil {
		return
	}
	first := ""
	for _, k := range sortedKeysOf(guestDisk) {
		first = guestDisk[k]
		break
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		cmd := strings.ReplaceAll(line, "/dev/vda", first)
		f := strings.Fields(cmd)
		switch {
		case len(f) >= 2 && (f[0] == "mountpoint" || (f[0] == "test" && len(f) >= 3)) && !strings.HasPrefix(f[len(f)-1], "/dev/") && !strings.HasPrefix(f[len(f)-1], "/mnt"):
			f[len(f)-1] = filepath.Join("/mnt", f[len(f)-1])
			cmd = strings.Join(f, " ")
		case cmd == "btrfs subvolume list /" || strings.HasPrefix(cmd, "btrfs subvolume list / "):
			cmd = "btrfs subvolume list /mnt" + strings.TrimPrefix(cmd, "btrfs subvolume list /")
		case strings.HasPrefix(cmd, "findmnt / "):
			cmd = strings.Replace(cmd, "findmnt / ", "findmnt /mnt ", 1)
		}
		if _, err := vm.Run(context.Background(), cmd); err != nil {
			t.Errorf("disko check %q (run as %q): %v", line, cmd, err)
		}
	}
}

func sortedKeysOf(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shq quotes a path for the guest's shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
