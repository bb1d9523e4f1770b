//go:build linux

package rescue

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
)

// Options are the paths and edges of the boot sequence; DefaultOptions
// has the real ones.
type Options struct {
	CarryFile   string
	HostKeyDir  string
	ModulesRoot string
	MarkerPath  string
	LogFile     string
	// RebootRequest is where the rescue-reboot verb leaves its request.
	RebootRequest string
	// Shells are tried in order for SSH sessions and the console.
	Shells []string
	// Reboot performs the final reboot(2) (unix.Reboot).
	Reboot func(cmd int) error
	// FatalDelay is how long a fatal error stays on the console before
	// the host reboots into its old system.
	FatalDelay time.Duration
	// DefaultTimeout is the watchdog's timeout when there is no carry-over.
	DefaultTimeout time.Duration
	// Console and Kmsg are where logs go besides LogFile ("" for none);
	// EtcDir gets hostname, hosts, resolv.conf, passwd.
	Console, Kmsg, EtcDir string
	// ConsoleShell offers a shell on /dev/console.
	ConsoleShell bool

	// Tests replace what would touch the machine they run on.
	mount        func() (done, failures []string)
	releaseDisks func() []string
}

// DefaultOptions are the paths inside the rescue image.
func DefaultOptions() Options {
	return Options{
		CarryFile:      carry.File,
		HostKeyDir:     carry.HostKeyDir,
		ModulesRoot:    carry.ModulesDir,
		MarkerPath:     carry.RescueMarker,
		LogFile:        "/run/nivis/rescue.log",
		RebootRequest:  "/run/nivis/reboot-request.json",
		Shells:         []string{"/bin/sh", "/bbin/gosh", "/bin/gosh"},
		Reboot:         unix.Reboot,
		FatalDelay:     2 * time.Minute,
		DefaultTimeout: 15 * time.Minute,
		Console:        "/dev/console",
		Kmsg:           "/dev/kmsg",
		EtcDir:         "/etc",
		ConsoleShell:   true,
	}
}

// rescue is the running boot sequence's state.
type rescue struct {
	o     Options
	log   *logrus.Logger
	st    *carry.State
	start time.Time

	mu             sync.Mutex
	failures       []string
	skipped        []string
	addressChanges []AddressChange
	names          map[string]string // old link name -> rescue name
	ports          []int
	hostKeys       []string
	ephemeral      bool
	wd             *Watchdog
	rebooting      bool
}

// Run is the in-RAM rescue system's main: it never returns. On a fatal
// error it logs, waits FatalDelay and reboots into the host's old system;
// it never exits, because when u-root's init runs out of children the
// kernel panics.
func Run(ctx context.Context, o Options) {
	if o.mount == nil {
		o.mount = mountPseudo
	}
	if o.releaseDisks == nil {
		o.releaseDisks = releaseDisks
	}
	r := &rescue{o: o, start: time.Now(), names: map[string]string{}}
	r.handleSignals()

	mounted, mountFailures := o.mount()
	r.log = r.openLog()
	for _, m := range mounted {
		r.log.Debugf("mounted: %s", m)
	}
	for _, f := range mountFailures {
		r.failf("mount: %s", f)
	}
	r.log.Infof("nivis rescue system starting (pid %d)", os.Getpid())

	st, err := carry.Read(o.CarryFile)
	if err != nil {
		r.wd = StartWatchdog(o.DefaultTimeout, func() { r.reboot("watchdog: no carry-over", unix.LINUX_REBOOT_CMD_RESTART) })
		r.fatal(fmt.Errorf("read the carry-over: %w; nobody can log in", err))
	}
	r.st = st
	timeout := time.Duration(st.RescueTimeoutSeconds) * time.Second
	r.wd = StartWatchdog(timeout, func() {
		r.log.Errorf("watchdog: no client logged in within %s: rebooting into the old system (disks untouched)", timeout)
		r.reboot("watchdog", unix.LINUX_REBOOT_CMD_RESTART)
	})
	if timeout > 0 {
		r.log.Infof("watchdog: rebooting into the old system at %s unless a client logs in", r.wd.Deadline().Format(time.TimeOnly))
	}
	r.identity()
	r.selfAsShell()
	r.modules(ctx)
	r.network(ctx)
	srv, err := r.sshServer()
	if err != nil {
		r.fatal(err)
	}
	r.listen(srv)
	r.writeMarker()
	r.log.Infof("rescue system ready in %s: ssh on port(s) %v", time.Since(r.start).Round(100*time.Millisecond), r.ports)
	if o.ConsoleShell {
		go r.consoleShell()
	}
	select {}
}

func (r *rescue) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn(msg)
	r.mu.Lock()
	r.failures = append(r.failures, msg)
	r.mu.Unlock()
}

// fatal logs err, waits, and reboots. It does not return.
func (r *rescue) fatal(err error) {
	r.log.Errorf("FATAL: %v", err)
	r.log.Errorf("rebooting into the old system in %s (disks untouched)", r.o.FatalDelay)
	time.Sleep(r.o.FatalDelay)
	r.reboot("fatal error", unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

// handleSignals keeps the terminal's signals from killing the rescue
// system. They are caught, not ignored: ignored signals would stay
// ignored in every command the SSH server starts.
func (r *rescue) handleSignals() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGUSR1)
	go func() {
		for s := range ch {
			if s == unix.SIGUSR1 {
				r.rebootRequested()
				continue
			}
			if r.log != nil {
				r.log.Debugf("ignoring signal %v", s)
			}
		}
	}()
}

// openLog sets up logging to the console, /dev/kmsg and the log file.
func (r *rescue) openLog() *logrus.Logger {
	var console, kmsg, file io.Writer
	if r.o.Console != "" {
		if f, err := os.OpenFile(r.o.Console, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			console = f
		} else {
			console = os.Stderr
		}
	}
	if r.o.Kmsg != "" {
		if f, err := os.OpenFile(r.o.Kmsg, os.O_WRONLY, 0); err == nil {
			kmsg = f
			// Userspace kmsg writes are rate limited by default: all of
			// ours matter.
			_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0o644)
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.o.LogFile), 0o755); err == nil {
		if f, err := os.OpenFile(r.o.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
			file = f
		}
	}
	return newRescueLogger(console, kmsg, file, consoleLoglevel)
}

// identity sets the hostname and the few /etc files tools expect.
func (r *rescue) identity() {
	st := r.st
	if st.Hostname != "" {
		if err := unix.Sethostname([]byte(st.Hostname)); err != nil {
			r.failf("hostname %s: %v", st.Hostname, err)
		}
		_ = os.WriteFile(filepath.Join(r.o.EtcDir, "hostname"), []byte(st.Hostname+"\n"), 0o644)
		_ = os.WriteFile(filepath.Join(r.o.EtcDir, "hosts"), []byte("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 "+st.Hostname+"\n"), 0o644)
	}
	if st.MachineID != "" {
		_ = os.WriteFile(filepath.Join(r.o.EtcDir, "machine-id"), []byte(strings.TrimSpace(st.MachineID)+"\n"), 0o444)
	}
	// tar, ls -l and sftp clients map uid 0 to a name through these.
	for name, content := range map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"group":  "root:x:0:\n",
	} {
		p := filepath.Join(r.o.EtcDir, name)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			_ = os.WriteFile(p, []byte(content), 0o644)
		}
	}
	_ = os.MkdirAll("/root", 0o700)
}

// modules loads the entropy sources first, then whatever the hardware
// needs, and waits for the carried NICs to appear.
func (r *rescue) modules(ctx context.Context) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	if r.st.KernelRelease != "" && r.st.KernelRelease != release {
		r.failf("modules: carried for kernel %s, running %s", r.st.KernelRelease, release)
	}
	dir := filepath.Join(r.o.ModulesRoot, release)
	ix, err := LoadModuleIndex(dir)
	if err != nil {
		// A kernel with every driver built in needs no modules.
		r.failf("modules: %v", err)
		r.waitForNICs(ctx, nil)
		return
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	ld := newModuleLoader(dir, ix, string(cmdline))

	// Entropy first. Everything below uses crypto/rand (SSH handshakes,
	// DHCP transaction ids): on a host without RDRAND, getrandom(2)
	// blocks until the kernel's pool is seeded, and a virtio-rng or TPM
	// RNG seeds it in milliseconds instead of minutes.
	for _, m := range r.st.EarlyModules {
		if loaded, err := ld.Load(m); errors.Is(err, unix.ENODEV) {
			r.log.Infof("modules: early module %s: no such device here", m)
		} else if err != nil {
			r.log.Warnf("modules: early module %s: %v", m, err)
		} else if len(loaded) > 0 {
			r.log.Infof("modules: loaded %s", strings.Join(loaded, ", "))
		}
	}
	coldplug := func(rounds int) {
		res := ld.Coldplug(ctx, "/sys/devices", rounds, 300*time.Millisecond)
		if len(res.Loaded) > 0 {
			r.log.Infof("modules: loaded %s", strings.Join(res.Loaded, ", "))
		}
		names := make([]string, 0, len(res.Failed))
		for n := range res.Failed {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			err := res.Failed[n]
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "not in modules.dep") {
				// Not carried, or matched but nothing to drive: normal.
				r.log.Debugf("modules: %v", err)
				continue
			}
			r.log.Warnf("modules: %v", err)
		}
	}
	coldplug(6)
	r.entropy()
	r.waitForNICs(ctx, func() { coldplug(1) })
}

// entropy reports whether the kernel's random pool is seeded.
func (r *rescue) entropy() {
	var b [1]byte
	if _, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK); err == nil {
		r.log.Infof("entropy: the kernel's random pool is ready")
		return
	}
	r.log.Warnf("entropy: the kernel's random pool is not ready yet; SSH may wait for it (no RDRAND and no hardware RNG module?)")
}

func (r *rescue) waitForNICs(ctx context.Context, poll func()) {
	var macs []string
	for _, it := range r.st.Network.Interfaces {
		if isHardwareKind(it.Kind) && it.MAC != "" && it.Name != "lo" && (it.Up || len(it.Addrs) > 0) {
			macs = append(macs, it.MAC)
		}
	}
	if len(macs) == 0 {
		return
	}
	if missing := waitForMACs(ctx, "/sys/class/net", macs, 20*time.Second, poll); len(missing) > 0 {
		r.failf("network: no link with MAC %s after 20s (its driver module is not in the image?)", strings.Join(missing, ", "))
	}
}

// network restores the carried configuration.
func (r *rescue) network(ctx context.Context) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	present, err := presentLinks()
	if err != nil {
		r.failf("network: list links: %v", err)
		return
	}
	plan := PlanNetwork(r.st.Network, present)
	for _, op := range plan.Ops {
		r.log.Infof("network: %s", op)
	}
	for _, s := range plan.Skipped {
		r.log.Warnf("network: not restored: %s", s)
	}
	res := applyNetPlan(ctx, plan, netApplyOptions{
		Hostname:           r.st.Hostname,
		DHCPTimeout:        30 * time.Second,
		UnknownDHCPTimeout: 20 * time.Second,
		CarrierTimeout:     10 * time.Second,
		ResolvConf:         filepath.Join(r.o.EtcDir, "resolv.conf"),
		Logf:               r.log.Infof,
		Renew:              ctx,
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped = append(r.skipped, plan.Skipped...)
	r.failures = append(r.failures, res.Failures...)
	r.addressChanges = res.AddressChanges
	for old, now := range plan.Names {
		r.names[old] = now
	}
	for _, c := range res.AddressChanges {
		r.log.Errorf("network: %s: the address changed from %s to %s (DHCP): reach the host at %s", c.Link, c.Old, c.New, c.New)
	}
}

// selfAsShell makes this binary the system's /bin/sh (u-root has none that
// takes `sh -c SCRIPT ARGS`, which every SSH client sends) and publishes
// its sha256, so a client finds its agent here instead of uploading it.
func (r *rescue) selfAsShell() {
	exe, err := os.Executable()
	if err != nil {
		r.failf("agent: %v", err)
		return
	}
	// Only inside the image: a test running Run on a developer's machine
	// must never replace that machine's /bin/sh, and has no use for the hash.
	if exe != carry.AgentPath {
		return
	}
	_ = os.MkdirAll("/bin", 0o755)
	_ = os.Remove("/bin/sh.nivis-tmp")
	if err := os.Symlink(exe, "/bin/sh.nivis-tmp"); err == nil {
		if err := os.Rename("/bin/sh.nivis-tmp", "/bin/sh"); err != nil {
			r.failf("agent: /bin/sh: %v", err)
		}
	}
	f, err := os.Open(exe)
	if err != nil {
		r.failf("agent: %v", err)
		return
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		r.failf("agent: hash: %v", err)
		return
	}
	sumFile := filepath.Join(filepath.Dir(r.o.MarkerPath), "agent.sha256")
	_ = os.MkdirAll(filepath.Dir(sumFile), 0o755)
	if err := os.WriteFile(sumFile, []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644); err != nil {
		r.failf("agent: %v", err)
	}
}

func (r *rescue) shell() string {
	for _, s := range r.o.Shells {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&0o111 != 0 {
			return s
		}
	}
	return ""
}

// sshServer builds the server from the carried keys.
func (r *rescue) sshServer() (*SSHServer, error) {
	signers, skipped := LoadHostKeys(r.o.HostKeyDir, r.st.HostKeys)
	for _, s := range skipped {
		r.failf("ssh: %s", s)
	}
	if len(signers) == 0 {
		// Better reachable with a new key than not at all: the client
		// will refuse it loudly, and the operator decides.
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		sg, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return nil, err
		}
		signers = []ssh.Signer{sg}
		r.ephemeral = true
		r.failf("ssh: no carried host key could be used: serving a NEW key %s; clients will see a changed host key", ssh.FingerprintSHA256(sg.PublicKey()))
	}
	for _, s := range signers {
		r.hostKeys = append(r.hostKeys, ssh.FingerprintSHA256(s.PublicKey()))
		r.log.Infof("ssh: host key %s %s", s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey()))
	}
	keys, skippedKeys := ParseAuthorizedKeys(r.st.AuthorizedKeys)
	for _, s := range skippedKeys {
		r.log.Warnf("ssh: %s", s)
		r.mu.Lock()
		r.skipped = append(r.skipped, s)
		r.mu.Unlock()
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable authorized key was carried over: nobody could log in")
	}
	r.log.Infof("ssh: %d authorized key(s)", len(keys))
	shell := r.shell()
	if shell == "" {
		r.failf("ssh: no shell among %v: exec and shell sessions will fail, sftp works", r.o.Shells)
		shell = r.o.Shells[0]
	}
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = kv + ":" + filepath.Dir(carry.AgentPath)
		}
	}
	return NewSSHServer(SSHServerOptions{
		HostKeys:       signers,
		AuthorizedKeys: keys,
		Shell:          shell,
		Env:            env,
		Home:           "/root",
		Log:            r.log,
		OnLogin: func(ssh.ConnMetadata, ssh.PublicKey) {
			if r.wd.Disarm() {
				r.log.Infof("watchdog: disarmed by the first login")
				r.writeMarker()
			}
		},
	})
}

// listen serves on every carried port, IPv4 and IPv6 (":port" is dual
// stack, and falls back to IPv4 on a kernel without IPv6).
func (r *rescue) listen(srv *SSHServer) {
	ports := r.st.SSHPorts
	if len(ports) == 0 {
		ports = []int{22}
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			r.failf("ssh: listen on port %d: %v", p, err)
			continue
		}
		r.ports = append(r.ports, p)
		go func() {
			if err := srv.Serve(l); err != nil {
				r.failf("ssh: port %d: %v", p, err)
			}
		}()
	}
	if len(r.ports) == 0 {
		r.fatal(fmt.Errorf("ssh: could not listen on any of the ports %v", ports))
	}
}

// writeMarker writes (or rewrites) carry.RescueMarker.
func (r *rescue) writeMarker() {
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	r.mu.Lock()
	m := Marker{
		BootID:           strings.TrimSpace(string(bootID)),
		StartedAt:        r.start.UTC(),
		PID:              os.Getpid(),
		Hostname:         r.st.Hostname,
		SSHPorts:         r.ports,
		HostKeys:         r.hostKeys,
		Ephemeral:        r.ephemeral,
		AddressChanges:   r.addressChanges,
		Failures:         r.failures,
		Skipped:          r.skipped,
		WatchdogDeadline: r.wd.Deadline().UTC(),
	}
	oldNames := map[string]string{}
	for old, now := range r.names {
		oldNames[now] = old
	}
	r.mu.Unlock()
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			a := l.Attrs()
			if a.Name == "lo" {
				continue
			}
			ml := MarkerLink{Name: a.Name, MAC: a.HardwareAddr.String(), Up: a.Flags&net.FlagUp != 0, Addrs: []string{}}
			if old := oldNames[a.Name]; old != a.Name {
				ml.OldName = old
			}
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
			for _, ad := range addrs {
				ml.Addrs = append(ml.Addrs, ad.IPNet.String())
			}
			m.Links = append(m.Links, ml)
		}
	}
	if err := writeJSONAtomic(r.o.MarkerPath, m); err != nil {
		r.log.Errorf("marker %s: %v", r.o.MarkerPath, err)
	}
}

// consoleShell offers a shell on the console: the way in when the network
// did not come back and the provider has a KVM or serial console.
func (r *rescue) consoleShell() {
	shell := r.shell()
	if shell == "" {
		return
	}
	for {
		tty, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
		if err != nil {
			return
		}
		fmt.Fprintf(tty, "\r\nnivis rescue system: press Enter for a shell on the console\r\n")
		if _, err := bufio.NewReader(tty).ReadString('\n'); err != nil {
			tty.Close()
			time.Sleep(5 * time.Second)
			continue
		}
		cmd := &exec.Cmd{Path: shell, Args: []string{shell}, Stdin: tty, Stdout: tty, Stderr: tty, Dir: "/root",
			Env:         append(os.Environ(), "HOME=/root", "TERM=linux"),
			SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}}
		if err := cmd.Run(); err != nil {
			r.log.Debugf("console shell: %v", err)
		}
		tty.Close()
		time.Sleep(time.Second)
	}
}
