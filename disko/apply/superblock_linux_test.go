package apply

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
)

// blkidExport runs blkid -p on path and returns its fields.
func blkidExport(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "export", path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return map[string]string{}
		}
		t.Fatalf("blkid -p %s: %v", path, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func probeFile(t *testing.T, path string) *disko.Signature {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	size := st.Size()
	if st.Mode()&os.ModeDevice != 0 {
		size, _, _ = blockSize(f)
	}
	s, err := disko.Probe(f, size)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// compareWithBlkid checks our probe against blkid on the same bytes.
func compareWithBlkid(t *testing.T, path, wantType, wantLabel string) {
	t.Helper()
	s := probeFile(t, path)
	b := blkidExport(t, path)
	if s == nil {
		t.Fatalf("%s: probe found nothing; blkid says %v", wantType, b)
	}
	if s.Type != wantType || b["TYPE"] != wantType {
		t.Errorf("type: probe %q, blkid %q, want %q", s.Type, b["TYPE"], wantType)
	}
	if !strings.EqualFold(s.UUID, b["UUID"]) {
		t.Errorf("%s uuid: probe %q, blkid %q", wantType, s.UUID, b["UUID"])
	}
	if s.Label != wantLabel || b["LABEL"] != wantLabel {
		t.Errorf("%s label: probe %q, blkid %q, want %q", wantType, s.Label, b["LABEL"], wantLabel)
	}
}

// TestProbeMatchesBlkid makes real filesystems in image files (no root
// needed) and reads them with both the Go probe and blkid.
func TestProbeMatchesBlkid(t *testing.T) {
	if _, ok := command.Find("blkid"); !ok {
		t.Skip("blkid (util-linux) is not installed")
	}
	cases := []struct {
		name, tool string
		args       []string
		size       int64
		typ, label string
	}{
		{"ext4", "mkfs.ext4", []string{"-q", "-F", "-L", "root"}, 64 << 20, "ext4", "root"},
		{"ext3", "mkfs.ext3", []string{"-q", "-F", "-L", "old"}, 64 << 20, "ext3", "old"},
		{"ext2", "mkfs.ext2", []string{"-q", "-F"}, 16 << 20, "ext2", ""},
		{"xfs", "mkfs.xfs", []string{"-q", "-f", "-L", "var"}, 320 << 20, "xfs", "var"},
		{"btrfs", "mkfs.btrfs", []string{"-q", "-f", "-L", "data"}, 256 << 20, "btrfs", "data"},
		{"fat32", "mkfs.vfat", []string{"-F", "32", "-n", "ESP"}, 64 << 20, "vfat", "ESP"},
		{"fat16", "mkfs.vfat", []string{"-F", "16"}, 16 << 20, "vfat", ""},
		{"swap", "mkswap", []string{"-L", "swp"}, 16 << 20, "swap", "swp"},
		{"f2fs", "mkfs.f2fs", []string{"-q", "-f", "-l", "fast"}, 128 << 20, "f2fs", "fast"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := command.Find(c.tool); !ok {
				t.Skipf("%s is not installed", c.tool)
			}
			img := filepath.Join(t.TempDir(), "fs.img")
			if err := os.WriteFile(img, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, c.size); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(c.tool, append(c.args, img)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.tool, err, out)
			}
			compareWithBlkid(t, img, c.typ, c.label)
		})
	}
	t.Run("empty", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "zero.img")
		if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if s := probeFile(t, img); s != nil {
			t.Errorf("zeros probed as %v", s)
		}
	})
}

// TestProbeLUKSAndLVM needs loop devices for cryptsetup and pvcreate.
func TestProbeLUKSAndLVM(t *testing.T) {
	requireRoot(t)
	if _, ok := command.Find("cryptsetup"); ok {
		for _, typ := range []string{"luks1", "luks2"} {
			t.Run(typ, func(t *testing.T) {
				node, _ := newLoop(t, 32<<20)
				args := []string{"-q", "luksFormat", "--type", typ, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", "-", node}
				if typ == "luks2" {
					args = append(args, "--label", "secret")
				}
				cmd := exec.Command("cryptsetup", args...)
				cmd.Stdin = strings.NewReader("disko")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("luksFormat: %v\n%s", err, out)
				}
				label := ""
				if typ == "luks2" {
					label = "secret"
				}
				compareWithBlkid(t, node, "crypto_LUKS", label)
			})
		}
	}
	if _, ok := command.Find("lvm"); ok {
		t.Run("lvm", func(t *testing.T) {
			node, _ := newLoop(t, 32<<20)
			if out, err := exec.Command("lvm", "pvcreate", "-ff", "-y", node).CombinedOutput(); err != nil {
				t.Skipf("pvcreate does not work here: %v %s", err, out)
			}
			compareWithBlkid(t, node, "LVM2_member", "")
		})
	}
}
