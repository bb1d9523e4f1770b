package install

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/nivis/nivis/internal/command"
)

// Bootloader kinds.
const (
	BootGrub        = "grub"
	BootSystemdBoot = "systemd-boot"
	BootNone        = "none"
	BootCustom      = "custom"
)

// Firmware choices for GRUB.
const (
	FirmwareAuto = ""
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
	FirmwareBoth = "both"
)

// BootloaderOptions is install-bootloader's request.
type BootloaderOptions struct {
	// Root is the mounted target root.
	Root string `json:"root"`
	// Kind: grub, systemd-boot, none or custom.
	Kind string `json:"kind"`
	// Firmware for grub: bios, uefi, both, or "" for what the host booted
	// with. both suits a GPT disk with an EF02 partition and an ESP.
	Firmware string `json:"firmware,omitempty"`
	// Disks get GRUB's BIOS boot code (default: the disk holding the root).
	Disks []string `json:"disks,omitempty"`
	// ESP is the ESP's mount point inside the root (default: the first of
	// /boot/efi, /efi, /boot mounted as vfat, else /boot/efi).
	ESP string `json:"esp,omitempty"`
	// BootloaderID names the UEFI boot entry and its directory (default:
	// the installed system's os-release ID).
	BootloaderID string `json:"bootloader_id,omitempty"`
	// Command runs in the chroot for kind custom.
	Command []string `json:"command,omitempty"`
	// KernelCmdline is added after root=UUID=... rw for systemd-boot.
	KernelCmdline string `json:"kernel_cmdline,omitempty"`
	// Links are /dev/disk/by-* links to create before the config is
	// generated; empty probes the filesystems mounted under Root.
	Links []DiskLink `json:"links,omitempty"`
}

// DiskLink is one udev-style link: /dev/disk/<Dir>/<Name> -> Device.
type DiskLink struct {
	Dir    string `json:"dir"` // by-uuid, by-partuuid
	Name   string `json:"name"`
	Device string `json:"device"`
}

// BootloaderResult says what was run and what was checked.
type BootloaderResult struct {
	Commands []command.Command `json:"commands"`
	// Config is the generated file that was checked, RootArg its root=.
	Config  string   `json:"config,omitempty"`
	RootArg string   `json:"root_arg,omitempty"`
	Links   []string `json:"links,omitempty"`
	// Warnings are problems that did not stop the install, e.g. no
	// access to the firmware's boot entries.
	Warnings []string `json:"warnings,omitempty"`
}

var rootArg = regexp.MustCompile(`(?:^|\s)root=(\S+)`)

// stableRoot says whether a root= value survives device renumbering.
func stableRoot(v string) bool {
	v = strings.Trim(v, `"'`)
	for _, p := range []string{"UUID=", "PARTUUID=", "LABEL=", "PARTLABEL=", "ZFS=", "/dev/mapper/", "/dev/disk/by-uuid/", "/dev/disk/by-partuuid/", "/dev/disk/by-label/", "/dev/disk/by-partlabel/", "/dev/disk/by-id/", "/dev/md/"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// CheckBootConfig verifies that every kernel line of a generated boot
// config (grub.cfg, or loader entries) names its root by UUID/PARTUUID (or
// another name that does not change), never /dev/sdX-style, and that there
// is at least one kernel. It returns the first root= value.
func CheckBootConfig(name, text string) (string, error) {
	first := ""
	for i, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if !(strings.HasPrefix(t, "linux") || strings.HasPrefix(t, "options") || strings.HasPrefix(t, "kernel")) {
			continue
		}
		for _, m := range rootArg.FindAllStringSubmatch(t, -1) {
			if !stableRoot(m[1]) {
				return "", fmt.Errorf("%s line %d names the root as %s, a device name that can change between boots (no /dev/disk/by-uuid link when it was generated?): %s", name, i+1, m[1], t)
			}
			if first == "" {
				first = m[1]
			}
		}
	}
	if first == "" {
		return "", fmt.Errorf("%s has no kernel entry with root=: is a kernel installed in the new system?", name)
	}
	return first, nil
}
