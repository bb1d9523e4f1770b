//go:build linux

package vmtests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// guestConfig is what configureTree writes into a fresh debootstrap tree.
type guestConfig struct {
	Hostname      string
	AuthorizedKey string
	RootUUID      string
	MachineID     string
	KernelRelease string
}

// fwCfgNet is the QEMU fw_cfg entry through which the launcher tells the
// guest its network mode; the image reads it at boot (nivis-vmnet).
const fwCfgNet = "opt/org.nivis/net"

// staticAddr and friends are the static network of Config.StaticNetwork:
// QEMU user networking's own subnet, but far from the DHCP pool it serves.
const (
	staticAddr    = "10.0.2.15"
	staticGateway = "10.0.2.2"
	staticDNS     = "10.0.2.3"
	// dhcpStart moves QEMU's DHCP pool away from staticAddr, so a guest that
	// falls back to DHCP gets a different address and a test notices.
	dhcpStart = "10.0.2.100"
)

// configureTree turns a debootstrap tree into a guest: root login by key,
// hostname, fstab, networkd DHCP on every en* link (or a static address when
// the launcher asks for it), serial console, GRUB files for BIOS and UEFI.
func configureTree(ctx context.Context, r commandRunner, tree string, c guestConfig) error {
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"etc/hostname", 0o644, c.Hostname + "\n"},
		{"etc/hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t" + c.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		{"etc/machine-id", 0o444, c.MachineID + "\n"},
		{"etc/fstab", 0o644, fmt.Sprintf("UUID=%s\t/\text4\terrors=remount-ro\t0 1\n", c.RootUUID)},
		{"etc/resolv.conf", 0o644, "nameserver " + staticDNS + "\n"},
		{"root/.ssh/authorized_keys", 0o600, c.AuthorizedKey + "\n"},
		{"etc/ssh/sshd_config.d/nivis-vmtests.conf", 0o644, "PermitRootLogin prohibit-password\nUseDNS no\n"},
		{"etc/systemd/network/80-nivis-dhcp.network", 0o644, "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n"},
		{"usr/local/sbin/nivis-vmnet", 0o755, vmnetScript},
		{"etc/systemd/system/nivis-vmnet.service", 0o644, vmnetUnit},
		{"boot/grub/grub.cfg", 0o644, grubConfig(c)},
		{"tmp/nivis-early.cfg", 0o644, earlyGrubConfig(c)},
	}
	for _, f := range files {
		p := filepath.Join(tree, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		os.Remove(p) // resolv.conf and friends may be symlinks
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(tree, "root/.ssh"), 0o700); err != nil {
		return err
	}

	// GRUB's modules go where grub-install would put them; the core images
	// are made here once and only placed on a disk by gptdisk.go.
	for _, target := range []string{"i386-pc", "x86_64-efi"} {
		src := filepath.Join(tree, "usr/lib/grub", target)
		dst := filepath.Join(tree, "boot/grub", target)
		if err := copyDirFiles(src, dst, ".mod", ".lst", ".img"); err != nil {
			return fmt.Errorf("copy GRUB %s modules (is grub-pc-bin / grub-efi-amd64-bin in Packages?): %w", target, err)
		}
	}
	mk := [][]string{
		{"chroot", tree, "grub-mkimage", "-O", "i386-pc", "-o", "/boot/grub/i386-pc/core.img",
			"-c", "/tmp/nivis-early.cfg", "-p", "/boot/grub",
			"biosdisk", "part_gpt", "part_msdos", "ext2", "search", "search_fs_uuid", "serial", "terminal"},
		{"chroot", tree, "grub-mkimage", "-O", "x86_64-efi", "-o", "/boot/grub/x86_64-efi/bootx64.efi",
			"-c", "/tmp/nivis-early.cfg", "-p", "/boot/grub",
			"part_gpt", "part_msdos", "ext2", "fat", "search", "search_fs_uuid", "serial", "terminal"},
		{"chroot", tree, "systemctl", "enable", "systemd-networkd.service", "nivis-vmnet.service"},
		// Units that only cost boot time in a throwaway guest.
		{"chroot", tree, "systemctl", "mask", "e2scrub_reap.service", "e2scrub_all.timer",
			"apt-daily.timer", "apt-daily-upgrade.timer", "fstrim.timer"},
	}
	for _, argv := range mk {
		if _, err := r.run(ctx, argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(tree, "tmp/nivis-early.cfg"))

	// The package cache and lists are hundreds of MB the guest never uses:
	// it has no network beyond the host.
	for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"} {
		m, _ := filepath.Glob(filepath.Join(tree, glob))
		for _, p := range m {
			os.Remove(p)
		}
	}
	return nil
}

// earlyGrubConfig is built into GRUB's core images: the serial console
// first, so that even a GRUB that cannot find its files says so in the
// serial log, then the root filesystem by UUID.
func earlyGrubConfig(c guestConfig) string {
	return fmt.Sprintf(`serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root %s
set prefix=($root)/boot/grub
`, c.RootUUID)
}

func grubConfig(c guestConfig) string {
	return fmt.Sprintf(`serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry "Debian GNU/Linux (nivis test guest)" {
	search --no-floppy --fs-uuid --set=root %[1]s
	linux /boot/vmlinuz-%[2]s root=UUID=%[1]s ro console=tty0 console=ttyS0,115200
	initrd /boot/initrd.img-%[2]s
}
`, c.RootUUID, c.KernelRelease)
}

const vmnetScript = `#!/bin/sh
# Applies the network mode the nivis test harness passed through QEMU fw_cfg
# (` + fwCfgNet + `): "static" gives every en* link a fixed address and no
# DHCP client; anything else keeps DHCP (/etc/systemd/network).
modprobe qemu_fw_cfg 2>/dev/null
f=/sys/firmware/qemu_fw_cfg/by_name/` + fwCfgNet + `/raw
[ -r "$f" ] || exit 0
[ "$(cat "$f")" = static ] || exit 0
mkdir -p /run/systemd/network
cat > /run/systemd/network/10-nivis-static.network <<EOF
[Match]
Name=en* eth*

[Network]
DHCP=no
Address=` + staticAddr + `/24
Gateway=` + staticGateway + `
DNS=` + staticDNS + `
EOF
`

const vmnetUnit = `[Unit]
Description=Network mode from the nivis test harness
DefaultDependencies=no
After=systemd-remount-fs.service
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/nivis-vmnet

[Install]
WantedBy=multi-user.target
`

// copyDirFiles copies the regular files of src whose names end in one of
// suffixes into dst.
func copyDirFiles(src, dst string, suffixes ...string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		ok := false
		for _, s := range suffixes {
			ok = ok || strings.HasSuffix(e.Name(), s)
		}
		if !ok {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
