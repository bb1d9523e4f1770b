package initramfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Needs are the kernel modules and host tools a disk layout requires in
// the rescue system.
type Needs struct {
	Modules []string `json:"modules,omitempty"`
	Tools   []string `json:"tools,omitempty"`
}

// features maps a layout feature (a filesystem format or a block layer a
// disko-style config uses) to what the rescue system needs for it.
var features = map[string]Needs{
	"ext4":  {Modules: []string{"ext4", "crc32c_generic"}, Tools: []string{"mkfs.ext4"}},
	"ext3":  {Modules: []string{"ext4"}, Tools: []string{"mkfs.ext4"}},
	"ext2":  {Modules: []string{"ext4"}, Tools: []string{"mkfs.ext4"}},
	"xfs":   {Modules: []string{"xfs"}, Tools: []string{"mkfs.xfs"}},
	"btrfs": {Modules: []string{"btrfs"}, Tools: []string{"mkfs.btrfs"}},
	"vfat":  {Modules: []string{"vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8"}, Tools: []string{"mkfs.vfat"}}, // Debian's default iocharset is ascii
	"f2fs":  {Modules: []string{"f2fs"}, Tools: []string{"mkfs.f2fs"}},
	"swap":  {Tools: []string{"mkswap"}},
	// dm-crypt and the ciphers cryptsetup's defaults use (aes-xts-plain64,
	// argon2 in user space, AF_ALG for its kernel checks).
	"luks":  {Modules: []string{"dm_crypt", "dm_mod", "xts", "aes", "aes_generic", "aesni_intel", "sha256", "sha256_generic", "algif_skcipher", "algif_hash", "af_alg"}, Tools: []string{"cryptsetup"}},
	"lvm":   {Modules: []string{"dm_mod", "dm_snapshot", "dm_mirror", "dm_thin_pool", "dm_raid"}, Tools: []string{"lvm"}},
	"mdadm": {Modules: []string{"md_mod", "raid0", "raid1", "raid10", "raid456", "linear"}, Tools: []string{"mdadm"}},
}

// AlwaysTools are carried for every layout: wiping old signatures and
// reading them.
var AlwaysTools = []string{"wipefs", "blkid"}

// Features lists the known layout features.
func Features() []string {
	var out []string
	for f := range features {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// IsFeature says whether name is a known layout feature.
func IsFeature(name string) bool {
	_, ok := features[name]
	return ok
}

// NeedsFor returns the union of what the features need, plus AlwaysTools.
// An unknown feature is an error listing the known ones.
func NeedsFor(feats ...string) (Needs, error) {
	var n Needs
	seenM, seenT := map[string]bool{}, map[string]bool{}
	addT := func(t string) {
		if !seenT[t] {
			seenT[t] = true
			n.Tools = append(n.Tools, t)
		}
	}
	for _, t := range AlwaysTools {
		addT(t)
	}
	for _, f := range feats {
		ne, ok := features[strings.ToLower(f)]
		if !ok {
			return n, fmt.Errorf("unknown layout feature %q (known: %s)", f, strings.Join(Features(), ", "))
		}
		for _, m := range ne.Modules {
			if !seenM[m] {
				seenM[m] = true
				n.Modules = append(n.Modules, m)
			}
		}
		for _, t := range ne.Tools {
			addT(t)
		}
	}
	return n, nil
}

// toolPackages names the Debian package that ships each tool, for the
// "missing" error.
var toolPackages = map[string]string{
	"mkfs.ext4": "e2fsprogs", "mkfs.ext3": "e2fsprogs", "mkfs.ext2": "e2fsprogs", "mke2fs": "e2fsprogs",
	"e2fsck": "e2fsprogs", "resize2fs": "e2fsprogs", "tune2fs": "e2fsprogs",
	"mkfs.xfs": "xfsprogs", "xfs_repair": "xfsprogs", "xfs_growfs": "xfsprogs",
	"mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs",
	"mkfs.vfat": "dosfstools", "mkfs.fat": "dosfstools", "fsck.vfat": "dosfstools",
	"mkfs.f2fs": "f2fs-tools",
	"mkswap":    "util-linux", "wipefs": "util-linux", "blkid": "util-linux", "sfdisk": "fdisk",
	"partx": "util-linux", "losetup": "mount",
	"cryptsetup": "cryptsetup-bin",
	"lvm":        "lvm2",
	"mdadm":      "mdadm",
	"sgdisk":     "gdisk",
}

// ToolPackage returns the Debian package that provides tool.
func ToolPackage(tool string) string {
	if p, ok := toolPackages[tool]; ok {
		return p
	}
	return "the package that provides " + tool
}

// multiCall tools are one binary answering to many names through
// symlinks next to it (lvcreate -> lvm): those links are carried too.
var multiCall = map[string]bool{"lvm": true}

// toolConfigFiles are read by a tool and carried when the host has them,
// so it behaves as on the host (mke2fs takes its defaults from there).
var toolConfigFiles = map[string][]string{
	"mkfs.ext4": {"/etc/mke2fs.conf"},
	"mkfs.ext3": {"/etc/mke2fs.conf"},
	"mkfs.ext2": {"/etc/mke2fs.conf"},
	"mke2fs":    {"/etc/mke2fs.conf"},
}

// toolDirs is where tools are looked up on the host, in order.
var toolDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"}

// MissingToolError says which tool the host lacks and how to get it.
type MissingToolError struct {
	Tool    string
	Package string
}

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("%s missing on the host: apt-get install %s (the rescue system copies it from the host)", e.Tool, e.Package)
}

// FindTool returns the host path of a tool.
func FindTool(tool string) (string, error) {
	if filepath.IsAbs(tool) {
		if st, err := os.Stat(tool); err == nil && st.Mode().IsRegular() {
			return tool, nil
		}
		return "", &MissingToolError{Tool: tool, Package: ToolPackage(filepath.Base(tool))}
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, tool)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingToolError{Tool: tool, Package: ToolPackage(tool)}
}
