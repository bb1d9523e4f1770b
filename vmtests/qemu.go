//go:build linux

package vmtests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RootLayout is how the image's root filesystem is presented to the guest.
type RootLayout int

const (
	// LayoutFS attaches the bare ext4 filesystem as the whole disk
	// (root=/dev/vda); it boots only with BootKernel.
	LayoutFS RootLayout = iota
	// LayoutDisk attaches the image's GPT disk (BIOS boot, ESP, root on
	// vda3) that boots through GRUB under SeaBIOS and OVMF, and with
	// BootKernel too.
	LayoutDisk
)

// BootMode is where the guest's kernel comes from.
type BootMode int

const (
	// BootKernel loads the image's kernel and initrd with -kernel/-initrd.
	BootKernel BootMode = iota
	// BootFirmware lets SeaBIOS (or OVMF with UEFI) boot the first disk's
	// own boot loader.
	BootFirmware
)

// Disk is an extra blank disk.
type Disk struct {
	SizeMiB int
	// Serial is what the guest sees in /dev/disk/by-id (virtio-SERIAL,
	// nvme-...); nvme disks need one.
	Serial string
	// Interface is "virtio" (the default, /dev/vdX) or "nvme".
	Interface string
	// Path is the raw file on the host, set by Launch.
	Path string
}

// Config describes one VM.
type Config struct {
	Image     *Image
	Name      string // shown in the process list and logs
	MemoryMiB int    // default 1024
	CPUs      int    // default 2
	// MAC of the NIC; default DefaultMAC.
	MAC    string
	Layout RootLayout
	Boot   BootMode
	// UEFI boots OVMF instead of SeaBIOS (OVMFCode must exist).
	UEFI bool
	// StaticNetwork gives the guest the fixed address 10.0.2.15/24 and no
	// DHCP client. QEMU's user network still answers DHCP (it cannot be
	// switched off), but from a pool starting at 10.0.2.100 and SSH is
	// forwarded to 10.0.2.15 only: a guest that used DHCP is unreachable.
	StaticNetwork bool
	Disks         []Disk
	// Append is added to the kernel command line of BootKernel.
	Append string
	// ExtraArgs are passed to QEMU as they are.
	ExtraArgs []string
	// Dir holds the overlay, blank disks, serial log and sockets; Launch
	// creates a temporary one when empty.
	Dir string
	// Logf receives the QEMU command line and lifecycle events.
	Logf func(format string, args ...any)
}

// DefaultMAC is the NIC's MAC unless Config.MAC says otherwise.
const DefaultMAC = "52:54:00:12:34:56"

// OVMF firmware as Debian's ovmf package installs it.
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// QEMU is the emulator binary.
const QEMU = "qemu-system-x86_64"

// VM is a running (or stopped) QEMU guest.
type VM struct {
	Config Config
	Dir    string
	// Port on 127.0.0.1 forwarded to the guest's SSH port.
	Port int
	// KeyFile is the private key root accepts; KnownHosts an initially
	// empty known_hosts file in Dir for clients that should record keys.
	KeyFile    string
	KnownHosts string
	// RootDisk is the qcow2 overlay the guest boots from.
	RootDisk string
	// SerialLog collects the serial console of every boot of this VM.
	SerialLog string
	// StartedAt is when the current QEMU process started.
	StartedAt time.Time

	r       commandRunner
	qmpPath string
	// ownDirs are temporary directories Launch made, removed by Close.
	ownDirs  []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	launches int
}

// Launch prepares cfg's disks and starts QEMU. The caller must Close the VM
// (after Shutdown, for a clean poweroff); StartVM does that for tests.
func Launch(ctx context.Context, cfg Config) (*VM, error) {
	if cfg.Image == nil {
		return nil, errors.New("vmtests: Config.Image is nil")
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.MAC == "" {
		cfg.MAC = DefaultMAC
	}
	if cfg.Name == "" {
		cfg.Name = "nivis-vmtest"
	}
	if cfg.Boot == BootFirmware && cfg.Layout != LayoutDisk {
		return nil, errors.New("vmtests: BootFirmware needs Layout: LayoutDisk (the bare filesystem has no boot loader)")
	}
	var own []string
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "nivis-vm-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
		own = append(own, d)
	}
	vm := &VM{
		ownDirs:    own,
		Config:     cfg,
		Dir:        cfg.Dir,
		KeyFile:    cfg.Image.KeyFile,
		KnownHosts: filepath.Join(cfg.Dir, "known_hosts"),
		RootDisk:   filepath.Join(cfg.Dir, "root.qcow2"),
		SerialLog:  filepath.Join(cfg.Dir, "serial.log"),
		r:          commandRunner{logf: cfg.Logf},
	}
	if err := vm.prepare(ctx); err != nil {
		return nil, err
	}
	if err := vm.start(); err != nil {
		return nil, err
	}
	return vm, nil
}

// prepare creates what the VM's disks and firmware need, keeping what a
// previous launch in the same Dir left (so a relaunch sees its writes).
func (vm *VM) prepare(ctx context.Context) error {
	cfg := &vm.Config
	if err := os.MkdirAll(vm.Dir, 0o755); err != nil {
		return err
	}
	// A unix socket path must fit in 108 bytes; t.TempDir paths can be long.
	vm.qmpPath = filepath.Join(vm.Dir, "qmp.sock")
	if len(vm.qmpPath) > 100 {
		d, err := os.MkdirTemp("", "nivis-qmp-")
		if err != nil {
			return err
		}
		vm.qmpPath = filepath.Join(d, "qmp.sock")
		vm.ownDirs = append(vm.ownDirs, d)
	}
	if _, err := os.Stat(vm.KnownHosts); err != nil {
		if err := os.WriteFile(vm.KnownHosts, nil, 0o600); err != nil {
			return err
		}
	}
	if _, err := os.Stat(vm.RootDisk); err != nil {
		base := cfg.Image.RootFS
		if cfg.Layout == LayoutDisk {
			b, err := cfg.Image.BootDisk(ctx)
			if err != nil {
				return err
			}
			base = b
		}
		if err := overlayFor(ctx, vm.r, base, vm.RootDisk); err != nil {
			return fmt.Errorf("root disk overlay: %w", err)
		}
	}
	for i := range cfg.Disks {
		d := &cfg.Disks[i]
		if d.Interface == "" {
			d.Interface = "virtio"
		}
		if d.Interface == "nvme" && d.Serial == "" {
			d.Serial = fmt.Sprintf("nivis-nvme%d", i)
		}
		d.Path = filepath.Join(vm.Dir, fmt.Sprintf("disk%d.raw", i+1))
		if _, err := os.Stat(d.Path); err == nil {
			continue
		}
		f, err := os.Create(d.Path)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(d.SizeMiB) << 20)
		f.Close()
		if err != nil {
			return err
		}
	}
	if cfg.UEFI {
		if _, err := os.Stat(OVMFCode); err != nil {
			return fmt.Errorf("UEFI guest needs OVMF (apt-get install ovmf): %w", err)
		}
		vars := filepath.Join(vm.Dir, "OVMF_VARS.fd")
		if _, err := os.Stat(vars); err != nil {
			if err := copyFile(OVMFVars, vars, 0o644); err != nil {
				return fmt.Errorf("copy OVMF variables: %w", err)
			}
		}
	}
	return nil
}

// Accel is the QEMU accelerator: TCG unless NIVIS_VM_ACCEL=kvm (KVM hangs or
// aborts on some hosts, so it is never picked on its own).
func Accel() string {
	if os.Getenv("NIVIS_VM_ACCEL") == "kvm" {
		return "kvm"
	}
	return "tcg"
}

// args is QEMU's command line for the current Config.
func (vm *VM) args() []string {
	cfg := vm.Config
	a := []string{
		"-name", cfg.Name,
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-machine", "pc",
		"-accel", Accel(),
		"-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemoryMiB),
		// Without a hardware RNG early userspace starves for entropy.
		"-device", "virtio-rng-pci",
		"-chardev", "file,id=serial0,append=on,path=" + vm.SerialLog,
		"-serial", "chardev:serial0",
		"-qmp", "unix:" + vm.qmpPath + ",server=on,wait=off",
	}
	netdev := fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", vm.Port)
	mode := "dhcp"
	if cfg.StaticNetwork {
		netdev = fmt.Sprintf("user,id=n0,dhcpstart=%s,hostfwd=tcp:127.0.0.1:%d-%s:22", dhcpStart, vm.Port, staticAddr)
		mode = "static"
	}
	a = append(a,
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=n0,mac="+cfg.MAC,
		"-fw_cfg", "name="+fwCfgNet+",string="+mode,
		// cache=unsafe: a test disk need not survive a host crash, and
		// flushes are slow under emulation.
		"-drive", "if=none,id=root,format=qcow2,cache=unsafe,file="+vm.RootDisk,
		"-device", "virtio-blk-pci,drive=root,serial=nivis-root,bootindex=1",
	)
	for i, d := range cfg.Disks {
		id := fmt.Sprintf("d%d", i+1)
		a = append(a, "-drive", "if=none,id="+id+",format=raw,cache=unsafe,file="+d.Path)
		dev := "virtio-blk-pci,drive=" + id
		if d.Interface == "nvme" {
			dev = "nvme,drive=" + id
		}
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		a = append(a, "-device", dev)
	}
	if cfg.UEFI {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+filepath.Join(vm.Dir, "OVMF_VARS.fd"))
	}
	if cfg.Boot == BootKernel {
		root := "/dev/vda"
		if cfg.Layout == LayoutDisk {
			root = DiskRootPartition
		}
		cmdline := "root=" + root + " rw console=ttyS0,115200"
		if cfg.Append != "" {
			cmdline += " " + cfg.Append
		}
		a = append(a, "-kernel", cfg.Image.Kernel, "-initrd", cfg.Image.Initrd, "-append", cmdline)
	}
	return append(a, cfg.ExtraArgs...)
}

// start runs QEMU in its own process group on a fresh forwarded port.
func (vm *VM) start() error {
	// A relaunch keeps its port when it can, so known_hosts entries for
	// [127.0.0.1]:PORT still check the guest's host key.
	if vm.Port == 0 || !portFree(vm.Port) {
		port, err := freePort()
		if err != nil {
			return err
		}
		vm.Port = port
	}
	os.Remove(vm.qmpPath)
	vm.launches++
	mode := "kernel"
	if vm.Config.Boot == BootFirmware {
		mode = "firmware"
	}
	marker := fmt.Sprintf("\n=== nivis vmtests: launch %d (%s boot) at %s ===\n", vm.launches, mode, time.Now().Format(time.RFC3339))
	if f, err := os.OpenFile(vm.SerialLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		f.WriteString(marker)
		f.Close()
	}
	qlog, err := os.OpenFile(filepath.Join(vm.Dir, "qemu.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer qlog.Close()
	args := vm.args()
	vm.r.log("[started] %s", quoteArgv(append([]string{QEMU}, args...)))
	cmd := exec.Command(QEMU, args...)
	cmd.Stdout = qlog
	cmd.Stderr = qlog
	// Its own process group, so Kill reaches anything QEMU spawns, and
	// SIGKILL when this process dies, so no emulator outlives a test run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (apt-get install qemu-system-x86): %w", QEMU, err)
	}
	done := make(chan struct{})
	vm.mu.Lock()
	vm.cmd, vm.done, vm.waitErr = cmd, done, nil
	vm.StartedAt = time.Now()
	vm.mu.Unlock()
	go func() {
		err := cmd.Wait()
		vm.mu.Lock()
		vm.waitErr = err
		vm.mu.Unlock()
		close(done)
	}()
	return nil
}

// Exited reports whether QEMU has ended, and how.
func (vm *VM) Exited() (bool, error) {
	vm.mu.Lock()
	done := vm.done
	vm.mu.Unlock()
	if done == nil {
		return true, nil
	}
	select {
	case <-done:
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return true, vm.waitErr
	default:
		return false, nil
	}
}

// Wait blocks until QEMU exits or ctx ends.
func (vm *VM) Wait(ctx context.Context) error {
	vm.mu.Lock()
	done := vm.done
	vm.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill ends QEMU and everything in its process group at once.
func (vm *VM) Kill() {
	vm.mu.Lock()
	cmd, done := vm.cmd, vm.done
	vm.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Close kills QEMU and removes the temporary directories Launch made (a Dir
// the caller chose stays).
func (vm *VM) Close() error {
	vm.Kill()
	var errs []error
	for _, d := range vm.ownDirs {
		errs = append(errs, os.RemoveAll(d))
	}
	vm.ownDirs = nil
	return errors.Join(errs...)
}

// Shutdown powers the guest off cleanly (systemctl poweroff over SSH, then
// ACPI through QMP) and kills QEMU if it has not exited by ctx's end or
// after two minutes.
func (vm *VM) Shutdown(ctx context.Context) error {
	if exited, _ := vm.Exited(); exited {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	vm.Run(sctx, "systemctl poweroff") // the connection drops: errors mean nothing
	scancel()
	wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
	err := vm.Wait(wctx)
	wcancel()
	if err == nil {
		return nil
	}
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	vm.QMP(qctx, "system_powerdown", nil)
	qcancel()
	if err := vm.Wait(ctx); err == nil {
		return nil
	}
	vm.Kill()
	return errors.New("guest did not power off; QEMU was killed")
}

// Relaunch stops the guest (cleanly if it runs) and starts QEMU again on the
// same disks after change edits the Config (nil keeps it).
func (vm *VM) Relaunch(ctx context.Context, change func(*Config)) error {
	if err := vm.Shutdown(ctx); err != nil {
		vm.r.log("relaunch: %v", err)
	}
	if change != nil {
		change(&vm.Config)
	}
	if vm.Config.Boot == BootFirmware && vm.Config.Layout != LayoutDisk {
		return errors.New("vmtests: BootFirmware needs Layout: LayoutDisk")
	}
	if err := vm.prepare(ctx); err != nil {
		return err
	}
	return vm.start()
}

// BootFromDisk powers the guest off and boots the same disks again through
// the firmware and the boot loader on the root disk, without -kernel.
func (vm *VM) BootFromDisk(ctx context.Context) error {
	return vm.Relaunch(ctx, func(c *Config) { c.Boot = BootFirmware })
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Reset presses the guest's reset button (QMP system_reset): a hard reboot
// without the guest's cooperation.
func (vm *VM) Reset(ctx context.Context) error {
	_, err := vm.QMP(ctx, "system_reset", nil)
	return err
}

// SerialTail returns the last n lines of the serial console.
func (vm *VM) SerialTail(n int) string {
	b, err := os.ReadFile(vm.SerialLog)
	if err != nil {
		return fmt.Sprintf("(no serial log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// QEMULog is what QEMU itself printed (errors about its arguments).
func (vm *VM) QEMULog() string {
	b, _ := os.ReadFile(filepath.Join(vm.Dir, "qemu.log"))
	return string(b)
}
