//go:build linux

package vmtests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PowerOffRescue asks a guest that runs the nivis rescue system to power
// off (it unmounts the target and syncs first, as before a reboot) and
// waits until QEMU exits or ctx ends.
func PowerOffRescue(ctx context.Context, vm *VM) error {
	var out, errb strings.Builder
	err := vm.RunIO(ctx, "/nivis/nivis agent rescue-reboot", strings.NewReader(`{"delay_seconds":1,"poweroff":true}`), &out, &errb)
	if err != nil {
		return fmt.Errorf("rescue-reboot poweroff: %w\n%s%s", err, out.String(), errb.String())
	}
	if err := vm.Wait(ctx); err != nil {
		return fmt.Errorf("the rescue system did not power off: %w\n%s", err, vm.SerialTail(30))
	}
	return nil
}

// BootInstalled starts the stopped guest again with its extra disk number
// disk (0 = the first of Config.Disks), where `nivis install` put a system,
// as its only disk, booted by the firmware and that disk's own boot loader:
// no -kernel, and the image's root disk is gone. The SSH port is kept when
// it is free; if not, known_hosts entries for the old port are moved to the
// new one, so host key checks still compare against the keys from before.
func BootInstalled(ctx context.Context, vm *VM, disk int) error {
	if disk < 0 || disk >= len(vm.Config.Disks) {
		return fmt.Errorf("vmtests: the VM has no extra disk %d", disk)
	}
	if exited, _ := vm.Exited(); !exited {
		return errors.New("vmtests: BootInstalled needs the guest stopped (PowerOffRescue)")
	}
	target := vm.Config.Disks[disk].Path
	oldPort := vm.Port
	if err := os.Remove(vm.RootDisk); err != nil {
		return err
	}
	// Launch keeps a root overlay it finds in the VM's directory: this one
	// writes onto the install target's raw file.
	if _, err := vm.r.run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", target, vm.RootDisk); err != nil {
		return err
	}
	if err := vm.Relaunch(ctx, func(c *Config) {
		c.Disks = nil
		c.Layout = LayoutDisk
		c.Boot = BootFirmware
	}); err != nil {
		return err
	}
	if vm.Port != oldPort {
		b, err := os.ReadFile(vm.KnownHosts)
		if err != nil {
			return err
		}
		moved := strings.ReplaceAll(string(b), "[127.0.0.1]:"+strconv.Itoa(oldPort)+" ", "[127.0.0.1]:"+strconv.Itoa(vm.Port)+" ")
		return os.WriteFile(vm.KnownHosts, []byte(moved), 0o600)
	}
	return nil
}
