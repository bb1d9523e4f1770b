package apply

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/oplog"
)

// loadOnLoop parses a layout file and points its disks at fresh loop
// devices of size bytes each.
func loadOnLoop(t *testing.T, file string, size int64) (*disko.Layout, map[string]string) {
	t.Helper()
	l, rep, err := disko.ParseFile(file)
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", file, err, rep)
	}
	nodes := map[string]string{}
	for _, k := range sortedKeys(l.Disks) {
		node, _ := newLoop(t, size)
		if err := l.SetDiskDevice(k, node); err != nil {
			t.Fatal(err)
		}
		nodes[k] = node
	}
	return l, nodes
}

// teeRunner runs commands for real and records their argv.
type teeRunner struct {
	command.Recorder
	real command.Exec
}

func (r *teeRunner) Run(ctx context.Context, c command.Command) ([]byte, error) {
	r.Recorder.Run(ctx, c)
	return r.real.Run(ctx, c)
}

// apply runs mode on the layout and returns the plan and result.
func apply(t *testing.T, l *disko.Layout, mode, root string) (*disko.Plan, *disko.Result) {
	t.Helper()
	return applyWith(t, l, mode, root, nil)
}

func applyWith(t *testing.T, l *disko.Layout, mode, root string, runner command.Runner) (*disko.Plan, *disko.Result) {
	t.Helper()
	m, err := disko.ParseMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	var rep config.Report
	var log bytes.Buffer
	p, res, err := Run(context.Background(), l, RunOptions{Mode: m, Options: Options{Root: root, Runner: runner, Log: oplog.New(func(_, line string) {
		log.WriteString(strings.TrimRight(line, "\n") + "\n")
	})}}, &rep)
	if err != nil {
		plan := ""
		if p != nil {
			plan = p.String()
		}
		t.Fatalf("%s: %v\nreport:\n%s\nplan:\n%s\nlog:\n%s", mode, err, rep.String(), plan, log.String())
	}
	t.Logf("%s: %d done, %d skipped", mode, res.Done, res.Skipped)
	return p, res
}

func mountsUnder(t *testing.T, root string) map[string]mountInfo {
	t.Helper()
	ms, err := readMounts()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mountInfo{}
	for _, m := range ms {
		if m.Mountpoint == root || strings.HasPrefix(m.Mountpoint, root+"/") {
			out[strings.TrimPrefix(m.Mountpoint, root)] = m
		}
	}
	return out
}

func blkidType(t *testing.T, node string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", node).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return "" // nothing found
		}
		t.Fatalf("blkid %s: %v", node, err)
	}
	return strings.TrimSpace(string(out))
}

func activeSwaps(t *testing.T) string {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoopSuite(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat", "mkswap", "wipefs", "blkid", "btrfs"} {
		if _, ok := command.Find(tool); !ok {
			t.Fatalf("%s is missing: install e2fsprogs, xfsprogs, btrfs-progs, dosfstools, util-linux", tool)
		}
	}
	l, nodes := loadOnLoop(t, "../testdata/loop-suite.yaml", 1536<<20)
	node := nodes["main"]
	root := filepath.Join(t.TempDir(), "mnt")
	// Something old on the disk that destroy must take away, mounted.
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "previous", node).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}

	rec := &teeRunner{}
	p, _ := applyWith(t, l, "destroy,format,mount", root, rec)
	// Every tool ran with exactly the argv the plan printed, on the
	// resolved partition nodes, in plan order.
	got := strings.Join(rec.Argvs(), "\n")
	want := strings.Join([]string{
		"wipefs -a -f " + node,
		"mkfs.vfat " + node + "p2",
		"mkfs.ext4 -L nivisroot " + node + "p3",
		"mkswap " + node + "p4",
		"mkfs.xfs " + node + "p5",
		"mkfs.btrfs " + node + "p6 -f",
	}, "\n")
	if !strings.HasPrefix(got, want) {
		t.Errorf("commands run:\n%s\nwant them to start with:\n%s", got, want)
	}
	for _, sv := range []string{"/home", "/home/user", "/nix", "/swap"} {
		if !strings.Contains(got, "btrfs subvolume create ") || !strings.Contains(got, sv+"\n") && !strings.HasSuffix(got, sv) {
			t.Errorf("no btrfs subvolume create for %s in:\n%s", sv, got)
		}
	}
	if !strings.Contains(got, "btrfs filesystem mkswapfile --size 32M ") {
		t.Errorf("no mkswapfile in:\n%s", got)
	}
	if !strings.Contains(p.String(), "DESTROY") || !strings.Contains(p.String(), `whole-disk ext4 "previous"`) {
		t.Errorf("the plan does not show plainly what is destroyed:\n%s", p)
	}
	checkSuite(t, l, node, root)

	// A file written between runs must survive unmount, mount and format.
	secret := make([]byte, 4096)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"home/keep.bin", "var/keep.bin", "keep.bin"} {
		if err := os.WriteFile(filepath.Join(root, f), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	apply(t, l, "unmount", root)
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Fatalf("still mounted after unmount: %v", m)
	}
	if s := activeSwaps(t); strings.Contains(s, filepath.Base(node)) || strings.Contains(s, root) {
		t.Fatalf("swap still active after unmount:\n%s", s)
	}

	apply(t, l, "mount", root)
	checkSuite(t, l, node, root)
	_, res := apply(t, l, "mount", root)
	if len(res.Changed) != 0 {
		t.Errorf("mounting twice changed %v; want a no-op", res.Changed)
	}

	_, res = apply(t, l, "format,mount", root)
	if len(res.Changed) != 0 {
		t.Errorf("format on a formatted disk changed %v; want everything left alone", res.Changed)
	}
	apply(t, l, "unmount", root)
	apply(t, l, "format", root)
	apply(t, l, "mount", root)
	for _, f := range []string{"home/keep.bin", "var/keep.bin", "keep.bin"} {
		got, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s was lost by unmount/mount/format: %v", f, err)
		}
	}
	checkSuite(t, l, node, root)

	fstab, err := l.Fstab(HostIDs(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" / ext4 defaults 0 1", " /var xfs defaults,noatime 0 0", " /home btrfs compress=zstd,subvol=/home 0 0",
		"none /tmp tmpfs size=64M,mode=1777 0 0", " none swap defaults,pri=10 0 0", "/.swapvol/swapfile none swap defaults 0 0"} {
		if !strings.Contains(fstab, want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	sig, _ := probeNode(node + "p3")
	if sig == nil || !strings.Contains(fstab, "UUID="+sig.UUID+" / ext4") {
		t.Errorf("fstab does not name / by the UUID on disk (%v):\n%s", sig, fstab)
	}
	apply(t, l, "unmount", root)
}

// checkSuite asserts the loop-suite layout is on the disk and mounted.
func checkSuite(t *testing.T, l *disko.Layout, node, root string) {
	t.Helper()
	f, err := os.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatalf("read back GPT: %v", err)
	}
	type want struct {
		label, typ, fs string
		attrs          uint64
	}
	wants := map[int]want{
		1: {"disk-main-bios", "21686148-6449-6E6F-744E-656564454649", "", 1},
		2: {"disk-main-ESP", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "vfat", 0},
		3: {"disk-main-root", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "ext4", 0},
		4: {"disk-main-swap", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "swap", 0},
		5: {"disk-main-var", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "xfs", 0},
		6: {"disk-main-data", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "btrfs", 0},
	}
	if len(table.Partitions) != len(wants) {
		t.Errorf("GPT has %d partitions, want %d", len(table.Partitions), len(wants))
	}
	for _, p := range table.Partitions {
		w := wants[p.Index]
		if p.Name != w.label || string(p.Type) != w.typ || p.Attributes != w.attrs {
			t.Errorf("partition %d: %q %s attrs %#x; want %q %s attrs %#x", p.Index, p.Name, p.Type, p.Attributes, w.label, w.typ, w.attrs)
		}
		if p.Start%2048 != 0 {
			t.Errorf("partition %d starts at sector %d, not 1 MiB aligned", p.Index, p.Start)
		}
		pn := node + "p" + string(rune('0'+p.Index))
		sig, err := probeNode(pn)
		if err != nil {
			t.Fatalf("probe %s: %v", pn, err)
		}
		got := ""
		if sig != nil {
			got = sig.Type
		}
		if got != w.fs {
			t.Errorf("%s: our probe says %q, want %q", pn, got, w.fs)
		}
		if b := blkidType(t, pn); b != w.fs {
			t.Errorf("%s: blkid says %q, want %q", pn, b, w.fs)
		}
		if sig != nil && p.Index == 3 && sig.Label != "nivisroot" {
			t.Errorf("root label: %q, want nivisroot (extraArgs -L)", sig.Label)
		}
	}
	m := mountsUnder(t, root)
	for mp, fstype := range map[string]string{"": "ext4", "/var": "xfs", "/home": "btrfs", "/nix": "btrfs", "/.swapvol": "btrfs", "/tmp": "tmpfs"} {
		got, ok := m[mp]
		if !ok || got.FSType != fstype {
			t.Errorf("%s%s: mounted %v as %q, want %s", root, mp, ok, got.FSType, fstype)
		}
	}
	if m["/home"].Root != "/home" || m["/nix"].Root != "/nix" || m["/.swapvol"].Root != "/swap" {
		t.Errorf("btrfs subvolumes mounted from the wrong subvolume: /home %q, /nix %q, /.swapvol %q", m["/home"].Root, m["/nix"].Root, m["/.swapvol"].Root)
	}
	if _, err := os.Stat(filepath.Join(root, "home", "user")); err != nil {
		t.Errorf("nested subvolume /home/user missing: %v", err)
	}
	swaps := activeSwaps(t)
	if !strings.Contains(swaps, node+"p4") {
		t.Errorf("swap partition not active:\n%s", swaps)
	}
	if !strings.Contains(swaps, filepath.Join(root, ".swapvol", "swapfile")) {
		t.Errorf("btrfs swap file not active:\n%s", swaps)
	}
	if b, err := os.ReadFile(filepath.Join(root, "hooked")); err != nil || !strings.Contains(string(b), node+"p3 /") {
		t.Errorf("postMountHook did not run with device and mountpoint: %q %v", b, err)
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
