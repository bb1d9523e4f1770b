//go:build linux

package facts

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// secureBootVar is the EFI global variable holding the Secure Boot state.
const secureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// RescueMarkerPath is written by the nivis rescue agent (see internal/carry).
const RescueMarkerPath = "/run/nivis/rescue.json"

// Tools nivis may call on a host later; Facts.Tools says which exist.
var Tools = []string{"mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat", "mkswap", "cryptsetup", "lvm", "mdadm", "wipefs", "tar", "zstd"}

// Gather reads the facts of the machine it runs on. It never fails: what it
// cannot read is named in Facts.Warnings.
func Gather(ctx context.Context) (*Facts, error) {
	return GatherRoot(ctx, "/"), nil
}

// GatherRoot is Gather with every file read below root, so tests can point
// it at a fake tree (uname, the hostname, netlink and D-Bus still answer
// for the machine it runs on).
func GatherRoot(ctx context.Context, root string) *Facts {
	g := &gatherer{root: root}
	return g.gather(ctx)
}

// GatherBoot reads below root only what decides whether and how kexec can
// work: firmware, Secure Boot, lockdown, kexec_load_disabled and container.
// It is for kexec's load and reboot, which need it without a whole Gather.
func GatherBoot(root string) *Facts {
	g := &gatherer{root: root, f: &Facts{SchemaVersion: SchemaVersion, Tools: map[string]string{}}}
	g.boot()
	g.kexecDisabled()
	v := &g.f.Virtualization
	v.Container, v.ContainerHints = g.detectContainer()
	v.IsContainer = v.Container != ""
	return g.f
}

// gatherer reads files below root ("/" except in tests that build a fake
// tree) and collects warnings instead of failing.
type gatherer struct {
	root string
	f    *Facts
}

func (g *gatherer) gather(ctx context.Context) *Facts {
	g.f = &Facts{
		SchemaVersion: SchemaVersion,
		GatheredAt:    time.Now().UTC().Round(time.Second),
		Arch:          runtime.GOARCH,
		Tools:         map[string]string{},
		Disks:         []Disk{},
		Swaps:         []Swap{},
	}
	f := g.f
	g.system()
	g.kernel()
	g.boot()
	g.memory()
	g.virtualization()
	g.pid1(ctx)
	g.privilege()
	g.disks()
	g.network()
	g.ssh()
	g.rescue()
	sort.Strings(f.Warnings)
	return f
}

// p maps an absolute host path into the gatherer's root.
func (g *gatherer) p(abs string) string {
	if g.root == "/" || g.root == "" {
		return abs
	}
	return filepath.Join(g.root, abs)
}

func (g *gatherer) warnf(format string, args ...any) {
	g.f.Warnings = append(g.f.Warnings, fmt.Sprintf(format, args...))
}

// read returns a file's content; a missing file is ("", false) without a
// warning, any other error warns.
func (g *gatherer) read(abs string) ([]byte, bool) {
	b, err := os.ReadFile(g.p(abs))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.warnf("read %s: %v", abs, err)
		}
		return nil, false
	}
	return b, true
}

// readString is read, trimmed.
func (g *gatherer) readString(abs string) string {
	b, _ := g.read(abs)
	return strings.TrimSpace(string(b))
}

func (g *gatherer) exists(abs string) bool {
	_, err := os.Stat(g.p(abs))
	return err == nil
}

func (g *gatherer) system() {
	f := g.f
	if h, err := os.Hostname(); err == nil {
		f.Hostname = h
	} else {
		g.warnf("hostname: %v", err)
	}
	f.MachineID = g.readString("/etc/machine-id")
	if f.MachineID == "" {
		f.MachineID = g.readString("/var/lib/dbus/machine-id")
	}
	f.BootID = g.readString("/proc/sys/kernel/random/boot_id")
	if f.BootID == "" {
		g.warnf("boot_id: /proc/sys/kernel/random/boot_id is missing or empty")
	}
	osr, ok := g.read("/etc/os-release")
	if !ok {
		osr, ok = g.read("/usr/lib/os-release")
	}
	if ok {
		f.OS = ParseOSRelease(osr)
	} else {
		g.warnf("os-release: neither /etc/os-release nor /usr/lib/os-release exists")
	}
	f.IsInstaller = f.OS.VariantID == "installer"
	if n := parseCPUList(g.readString("/sys/devices/system/cpu/online")); n > 0 {
		f.CPUs = n
	} else {
		f.CPUs = runtime.NumCPU()
	}
}

func (g *gatherer) kernel() {
	f := g.f
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		f.Kernel.Release = unix.ByteSliceToString(u.Release[:])
		f.Kernel.Version = unix.ByteSliceToString(u.Version[:])
		f.Machine = unix.ByteSliceToString(u.Machine[:])
	} else {
		g.warnf("uname: %v", err)
		f.Kernel.Release = g.readString("/proc/sys/kernel/osrelease")
	}
	rel := f.Kernel.Release
	f.Kernel.Cmdline = g.readString("/proc/cmdline")
	f.Kernel.BootImage = bootImageFromCmdline(f.Kernel.Cmdline)

	// The image: what the boot loader named first, then the usual places.
	var cands []string
	if bi := f.Kernel.BootImage; bi != "" {
		cands = append(cands, bi, filepath.Join("/boot", bi))
	}
	if rel != "" {
		cands = append(cands, "/boot/vmlinuz-"+rel, "/boot/Image-"+rel, "/boot/vmlinux-"+rel,
			"/usr/lib/modules/"+rel+"/vmlinuz", "/lib/modules/"+rel+"/vmlinuz")
	}
	cands = append(cands, "/boot/vmlinuz", "/vmlinuz")
	for _, c := range cands {
		st, err := os.Stat(g.p(c))
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		f.Kernel.Image = c
		f.Kernel.ImageReadable = g.readable(c)
		break
	}

	// The config: built in, then files next to the kernel.
	for _, c := range []string{"/proc/config.gz", "/boot/config-" + rel, "/usr/lib/modules/" + rel + "/config", "/lib/modules/" + rel + "/config"} {
		if rel == "" && c != "/proc/config.gz" {
			continue
		}
		data, ok := g.read(c)
		if !ok {
			continue
		}
		if strings.HasSuffix(c, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				g.warnf("kernel config %s: %v", c, err)
				continue
			}
			data, err = io.ReadAll(zr)
			if err != nil {
				g.warnf("kernel config %s: %v", c, err)
				continue
			}
		}
		f.Kernel.ConfigSource = c
		f.Kernel.Config = parseKernelConfig(data)
		break
	}
	g.kexecDisabled()
	if cfg := f.Kernel.Config; f.Kernel.ConfigSource != "" {
		kl, kf, sf := cfg["CONFIG_KEXEC"] == "y", cfg["CONFIG_KEXEC_FILE"] == "y", cfg["CONFIG_KEXEC_SIG_FORCE"] == "y"
		f.Kexec.KexecLoad, f.Kexec.KexecFileLoad, f.Kexec.SigForce = &kl, &kf, &sf
		f.Kexec.InitrdCompressions = initrdCompressions(cfg)
	}
}

// kexecDisabled reads the sysctl that, once 1, blocks kexec until reboot.
func (g *gatherer) kexecDisabled() {
	if b, ok := g.read("/proc/sys/kernel/kexec_load_disabled"); ok {
		v := strings.TrimSpace(string(b)) != "0"
		g.f.Kexec.LoadDisabled = &v
	}
}

// readable reports whether this process can read the first byte of abs.
func (g *gatherer) readable(abs string) bool {
	fh, err := os.Open(g.p(abs))
	if err != nil {
		return false
	}
	defer fh.Close()
	var b [1]byte
	n, _ := fh.Read(b[:])
	return n == 1
}

func (g *gatherer) boot() {
	f := g.f
	if !g.exists("/sys/firmware/efi") {
		f.Boot.Firmware = "bios"
		f.Boot.SecureBoot = "unsupported"
	} else {
		f.Boot.Firmware = "uefi"
		f.Boot.SecureBoot = g.secureBoot()
	}
	if b, ok := g.read("/sys/kernel/security/lockdown"); ok {
		f.Boot.Lockdown = parseLockdown(b)
	}
}

// secureBoot reads the SecureBoot variable: efivarfs prefixes the value with
// 4 bytes of attributes, so the state is the 5th byte. The old sysfs
// interface has the bare value in .../data.
func (g *gatherer) secureBoot() string {
	if b, err := os.ReadFile(g.p("/sys/firmware/efi/efivars/" + secureBootVar)); err == nil {
		if len(b) >= 5 {
			return onOff(b[4] == 1)
		}
		g.warnf("secure boot: efivar %s has %d bytes, want 5", secureBootVar, len(b))
		return "unknown"
	}
	if b, err := os.ReadFile(g.p("/sys/firmware/efi/vars/" + secureBootVar + "/data")); err == nil && len(b) >= 1 {
		return onOff(b[0] == 1)
	}
	entries, err := os.ReadDir(g.p("/sys/firmware/efi/efivars"))
	if err == nil && len(entries) > 0 {
		// efivars is readable and has no SecureBoot: the firmware lacks it.
		return "unsupported"
	}
	return "unknown"
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (g *gatherer) memory() {
	b, ok := g.read("/proc/meminfo")
	if !ok {
		g.warnf("memory: /proc/meminfo is missing")
		return
	}
	g.f.Memory = memoryFrom(parseMeminfo(b))
	if b, ok := g.read("/proc/swaps"); ok {
		g.f.Swaps = parseSwaps(b)
	}
}

func (g *gatherer) pid1(ctx context.Context) {
	f := g.f
	f.Init.Name = g.readString("/proc/1/comm")
	if f.Init.Name == "" {
		g.warnf("init: cannot read /proc/1/comm")
	}
	// sd_booted(3): systemd is PID 1 when /run/systemd/system exists.
	if f.Init.Name == "systemd" || g.exists("/run/systemd/system") {
		v, err := systemdVersion(ctx)
		if err != nil {
			g.warnf("init: systemd version over D-Bus: %v", err)
		}
		f.Init.SystemdVersion = v
	}
}

func (g *gatherer) privilege() {
	f := g.f
	f.Privilege.UID = os.Geteuid()
	f.Privilege.IsRoot = f.Privilege.UID == 0
	if u, err := user.LookupId(strconv.Itoa(f.Privilege.UID)); err == nil {
		f.Privilege.User = u.Username
	}
	f.Privilege.Sudo = g.lookPath("sudo")
	f.Privilege.Doas = g.lookPath("doas")
	for _, t := range Tools {
		if p := g.lookPath(t); p != "" {
			f.Tools[t] = p
		}
	}
}

// sbinPath is searched after $PATH: a non-interactive SSH session often has
// a PATH without the sbin directories where mkfs and friends live.
var sbinPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/run/current-system/sw/bin"}

func (g *gatherer) lookPath(name string) string {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	dirs = append(dirs, sbinPath...)
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		st, err := os.Stat(g.p(p))
		if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (g *gatherer) ssh() {
	f := g.f
	cfg, warns, err := parseSSHDConfig(os.DirFS(g.p("/")), "etc/ssh/sshd_config")
	for _, w := range warns {
		g.warnf("%s", w)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		g.warnf("sshd_config: %v", err)
	}
	f.SSH.ConfigPorts = cfg.Ports
	f.SSH.ListenAddresses = cfg.ListenAddresses
	f.SSH.Listening = g.listeners()

	var sshdPorts []int
	for _, l := range f.SSH.Listening {
		if l.Process == "sshd" {
			sshdPorts = append(sshdPorts, l.Port)
		}
	}
	if len(sshdPorts) == 0 {
		// ListenAddress with a port overrides Port lines (sshd_config(5)).
		for _, a := range cfg.ListenAddresses {
			if p := listenPortOf(a); p > 0 {
				sshdPorts = append(sshdPorts, p)
			}
		}
		if len(sshdPorts) == 0 {
			sshdPorts = append(sshdPorts, cfg.Ports...)
		}
	}
	f.SSH.Ports = append([]int{}, sortUniqueInts(sshdPorts)...)

	f.SSH.HostKeys = []HostKey{}
	pubs, _ := filepath.Glob(g.p("/etc/ssh/ssh_host_*_key.pub"))
	sort.Strings(pubs)
	for _, p := range pubs {
		rel := "/" + strings.TrimPrefix(p, strings.TrimSuffix(g.p("/"), "/")+"/")
		data, err := os.ReadFile(p)
		if err != nil {
			g.warnf("ssh host key %s: %v", rel, err)
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			g.warnf("ssh host key %s: %v", rel, err)
			continue
		}
		f.SSH.HostKeys = append(f.SSH.HostKeys, HostKey{
			Path:        rel,
			Type:        key.Type(),
			Fingerprint: ssh.FingerprintSHA256(key),
			PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))),
		})
	}
}

// listeners lists listening TCP sockets and, where /proc lets us see the
// owning file descriptor, the owning process's name.
func (g *gatherer) listeners() []Listener {
	out := []Listener{}
	byInode := map[uint64][]int{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, ok := g.read(name)
		if !ok {
			continue
		}
		socks, err := parseProcNetTCP(data)
		if err != nil {
			g.warnf("%s: %v", name, err)
		}
		for _, s := range socks {
			if s.State != tcpListen {
				continue
			}
			byInode[s.Inode] = append(byInode[s.Inode], len(out))
			out = append(out, Listener{Address: s.Address, Port: s.Port})
		}
	}
	if len(out) > 0 {
		g.socketOwners(byInode, out)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Address < out[j].Address
	})
	return out
}

// socketOwners fills Listener.Process by finding socket:[inode] among the
// fds of every process (only those we may read; others stay unknown).
func (g *gatherer) socketOwners(byInode map[uint64][]int, ls []Listener) {
	procs, err := os.ReadDir(g.p("/proc"))
	if err != nil {
		return
	}
	for _, pe := range procs {
		if _, err := strconv.Atoi(pe.Name()); err != nil {
			continue
		}
		fdDir := g.p("/proc/" + pe.Name() + "/fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		comm := ""
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			idx, ok := byInode[ino]
			if !ok {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(g.p("/proc/" + pe.Name() + "/comm"))
				comm = strings.TrimSpace(string(b))
			}
			for _, i := range idx {
				if ls[i].Process == "" {
					ls[i].Process = comm
				}
			}
		}
	}
}

func (g *gatherer) rescue() {
	f := g.f
	data, ok := g.read(RescueMarkerPath)
	if !ok {
		return
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		g.warnf("rescue marker %s: %v", RescueMarkerPath, err)
		return
	}
	m := &RescueMarker{Raw: raw}
	if s, ok := raw["boot_id"].(string); ok {
		m.BootID = s
	}
	f.Rescue = m
	// /run does not survive a reboot, but a marker from an earlier boot
	// (copied, or /run on disk) must not make an installed host look rescued.
	if m.BootID != "" && f.BootID != "" && m.BootID != f.BootID {
		g.warnf("rescue marker %s is from boot %s, not this boot %s: ignored", RescueMarkerPath, m.BootID, f.BootID)
		return
	}
	f.NivisRescue = true
}
