//go:build linux

package initramfs

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/initramfs/base"
)

// Assemble writes the rescue initrd to o.Output: the embedded u-root base,
// the agent as uinit, the running kernel's modules for the present hardware
// and the layout, the layout's tools with their libraries, and the
// carry-over. Each part is a cpio compressed on its own with the best
// compression the kernel unpacks; the kernel reads them one after the other.
func Assemble(o Options) (*Result, error) {
	support, err := fillDefaults(&o)
	if err != nil {
		return nil, err
	}
	if o.Output == "" {
		return nil, fmt.Errorf("initramfs: no output file given")
	}
	pl, err := makePlan(&o, support)
	if err != nil {
		return nil, err
	}
	return pl.write(o.Output, o.Log)
}

// Estimate plans the initrd like Assemble without writing it: unpacked
// sizes are exact, the compressed size is a guess. Preflight uses it to
// compare against RAM and free space.
func Estimate(o Options) (*Result, error) {
	support, err := fillDefaults(&o)
	if err != nil {
		return nil, err
	}
	pl, err := makePlan(&o, support)
	if err != nil {
		return nil, err
	}
	return pl.estimate(), nil
}

// RunningRelease is uname -r.
func RunningRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func fillDefaults(o *Options) (KernelSupport, error) {
	if o.Base == nil {
		b, err := base.For(runtime.GOARCH)
		if err != nil {
			return KernelSupport{}, err
		}
		o.Base = b
	}
	if o.Agent == "" {
		exe, err := os.Executable()
		if err != nil {
			return KernelSupport{}, fmt.Errorf("finding the nivis binary to carry: %w", err)
		}
		o.Agent = exe
	}
	running := RunningRelease()
	if o.KernelRelease == "" {
		o.KernelRelease = running
	}
	if o.ModulesDir == "" {
		o.ModulesDir = filepath.Join("/lib/modules", o.KernelRelease)
	}
	if o.SysDevices == "" {
		o.SysDevices = "/sys/devices"
	}
	cfg := o.KernelConfig
	if len(cfg) == 0 {
		cfg = KernelConfigPaths(o.KernelRelease, o.KernelRelease == running)
	}
	return ReadKernelSupport(cfg), nil
}
