package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

func TestMountFlags(t *testing.T) {
	flags, data := mountFlags([]string{"defaults", "noatime,ro", "compress=zstd", "subvol=/home", "X-mount.mkdir", "nofail", "rw", "umask=0077"})
	if flags != unix.MS_NOATIME {
		t.Errorf("flags %#x, want MS_NOATIME only (ro then rw)", flags)
	}
	if data != "compress=zstd,subvol=/home,umask=0077" {
		t.Errorf("data %q", data)
	}
}

func TestDMVolumeGroup(t *testing.T) {
	for in, want := range map[string]string{"pool-root": "pool", "my--vg-lv--1": "my-vg", "vg-a-b": "vg"} {
		if got := dmVG(in); got != want {
			t.Errorf("dmVG(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResolveDiskIDs resolves this machine's disks by the names udev
// would give them, from sysfs alone.
func TestResolveDiskIDs(t *testing.T) {
	devs, err := scanBlock()
	if err != nil {
		t.Skip(err)
	}
	r := &Resolver{Wait: 1}
	if err := r.refresh(); err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, b := range devs {
		if b.Disk != "" {
			continue
		}
		if b.DiskSeq != "" {
			tried++
			got, err := r.find("/dev/disk/by-diskseq/" + b.DiskSeq)
			if err != nil || got.Name != b.Name {
				t.Errorf("by-diskseq/%s: %v %v, want %s", b.DiskSeq, got, err, b.Name)
			}
		}
		for _, id := range r.ids(b) {
			tried++
			got, err := r.find("/dev/disk/by-id/" + id)
			if err != nil || got.Name != b.Name {
				t.Errorf("by-id/%s: %v %v, want %s", id, got, err, b.Name)
			}
		}
	}
	if tried == 0 {
		t.Skip("no disk here has a serial, wwid or diskseq")
	}
}

// TestResolveWithoutUdev formats two loop disks with the same labels and
// resolves every kind of name nivis supports, ambiguity included.
func TestResolveWithoutUdev(t *testing.T) {
	requireRoot(t)
	if udevRunning() {
		t.Log("udev runs here: the links may exist, resolution still goes through sysfs when they do not")
	}
	layout := `{"disk": {"main": {"device": "DEV", "content": {"type": "gpt", "partitions": {
	  "boot part": {"size": "16M", "content": {"type": "filesystem", "format": "ext4", "extraArgs": ["-L", "LABEL"]}},
	  "root": {"size": "100%", "uuid": "UUID", "content": {"type": "filesystem", "format": "xfs"}}}}}}}`
	var nodes []string
	uuids := []string{"4b1d9b3c-2a4e-4c1b-9d2e-6f7a8b9c0d1e", "5b1d9b3c-2a4e-4c1b-9d2e-6f7a8b9c0d1e"}
	for i, label := range []string{"first", "second"} {
		node, _ := newLoop(t, 400<<20)
		l, rep := disko.ParseBytes([]byte(strings.NewReplacer("DEV", node, "LABEL", label, "UUID", uuids[i]).Replace(layout)))
		if rep.HasErrors() {
			t.Fatal(rep.String())
		}
		apply(t, l, "destroy,format", filepath.Join(t.TempDir(), "mnt"))
		nodes = append(nodes, node)
	}
	r := &Resolver{Wait: 1}
	ctx := context.Background()
	sig, _ := probeNode(nodes[0] + "p2")
	if sig == nil {
		t.Fatal("no filesystem on the second partition")
	}
	for name, want := range map[string]string{
		"/dev/disk/by-partuuid/" + uuids[0]:                      nodes[0] + "p2",
		"/dev/disk/by-partuuid/" + strings.ToUpper(uuids[1]):     nodes[1] + "p2",
		"/dev/disk/by-uuid/" + sig.UUID:                          nodes[0] + "p2",
		"/dev/disk/by-label/first":                               nodes[0] + "p1",
		"/dev/disk/by-label/second":                              nodes[1] + "p1",
		nodes[1]:                                                 nodes[1],
		"/dev/disk/by-id/md-name-any:nosuch-part1":               "",
		"/dev/disk/by-partlabel/disk-main-boot\\x20part":         "ambiguous",
		"/dev/disk/by-partlabel/disk-main-root":                  "ambiguous",
		"/dev/disk/by-diskseq/" + diskseq(t, nodes[1]):           nodes[1],
		"/dev/disk/by-path/pci-0000:00:00.0":                     "",
		"/dev/mapper/nivis-test-nothing":                         "",
		"/dev/nivis-test-vg/nothing":                             "",
		"/dev/disk/by-partuuid/00000000-0000-0000-0000-00000000": "",
	} {
		got, err := r.Resolve(ctx, name)
		switch want {
		case "":
			if err == nil {
				t.Errorf("%s resolved to %s; want not found", name, got)
			}
		case "ambiguous":
			if err == nil || !strings.Contains(err.Error(), "ambiguous") {
				t.Errorf("%s: %s %v; want an ambiguity error naming both disks", name, got, err)
			}
		default:
			if err != nil || got != want {
				t.Errorf("%s = %s %v; want %s", name, got, err, want)
			}
		}
	}
	// By disk and number there is no ambiguity.
	if got, err := r.PartitionOf(ctx, nodes[1], 1); err != nil || got != nodes[1]+"p1" {
		t.Errorf("partition 1 of %s = %s %v", nodes[1], got, err)
	}
}

func diskseq(t *testing.T, node string) string {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(node), "diskseq"))
	if err != nil {
		t.Skip("no diskseq in sysfs")
	}
	return strings.TrimSpace(string(b))
}
