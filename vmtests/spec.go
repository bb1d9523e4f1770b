//go:build linux

package vmtests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// configVersion names the revision of the guest configuration written by
// configureTree and of the files Build puts beside the image. Bump it when
// either changes so cached images are rebuilt.
const configVersion = 2

// DefaultPackages is what every guest gets on top of debootstrap's minbase:
// enough to boot under systemd with networkd and sshd, the disk tools nivis's
// tests check results with, both GRUB flavours, and python3 for service tests.
var DefaultPackages = []string{
	"systemd-sysv", "udev", "dbus", "kmod", "iproute2", "openssh-server",
	"linux-image-amd64", "e2fsprogs", "dosfstools", "xfsprogs", "btrfs-progs",
	"lvm2", "cryptsetup", "mdadm", "grub-pc-bin", "grub-efi-amd64-bin",
	"grub2-common", "python3", "curl", "sudo",
}

// ImageSpec is everything a guest image is built from. Two specs with the
// same Key share one cached image.
type ImageSpec struct {
	// Suite is the Debian release, e.g. "bookworm".
	Suite string `json:"suite"`
	// Packages are installed with debootstrap --include (minbase variant).
	Packages []string `json:"packages"`
	// Hostname is written to /etc/hostname.
	Hostname string `json:"hostname"`
	// RootMiB is the size of the root ext4 filesystem (sparse on the host).
	RootMiB int `json:"root_mib"`
	// Mirror is the Debian archive; empty means the one this machine's apt
	// uses (DebianMirror). It is not part of Key: every mirror serves the
	// same packages.
	Mirror string `json:"-"`
}

// DefaultSpec is the guest the smoke tests and the demo use.
func DefaultSpec() ImageSpec {
	return ImageSpec{
		Suite:    "bookworm",
		Packages: slices.Clone(DefaultPackages),
		Hostname: "nivis-guest",
		RootMiB:  4096,
	}
}

func (s ImageSpec) withDefaults() ImageSpec {
	d := DefaultSpec()
	if s.Suite == "" {
		s.Suite = d.Suite
	}
	if s.Packages == nil {
		s.Packages = d.Packages
	}
	if s.Hostname == "" {
		s.Hostname = d.Hostname
	}
	if s.RootMiB == 0 {
		s.RootMiB = d.RootMiB
	}
	return s
}

// sortedPackages is the package list as it enters hashes and debootstrap:
// order and duplicates must not change the image.
func (s ImageSpec) sortedPackages() []string {
	p := slices.Clone(s.Packages)
	slices.Sort(p)
	return slices.Compact(p)
}

// debsKey names the cached debootstrap tarball: only suite and packages
// decide which .debs are downloaded.
func (s ImageSpec) debsKey() string {
	return hashJSON(struct {
		Suite    string
		Arch     string
		Variant  string
		Packages []string
	}{s.Suite, "amd64", "minbase", s.sortedPackages()})
}

// imageKey names the cached image: the spec, the SSH key baked into it and
// the configuration revision.
func (s ImageSpec) imageKey(authorizedKey string) string {
	return hashJSON(struct {
		Suite         string
		Packages      []string
		Hostname      string
		RootMiB       int
		AuthorizedKey string
		ConfigVersion int
	}{s.Suite, s.sortedPackages(), s.Hostname, s.RootMiB, authorizedKey, configVersion})
}

func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are hashed
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:24]
}
