//go:build linux

// Command demo is what `make demo` runs: it builds (or reuses) a Debian
// guest image, boots it under QEMU, points nivis at it the way a user would
// and prints what nivis reports, with the time of every phase.
//
// After `nivis facts` it runs `nivis install` with a built-in example config
// (example-host.yaml: GPT with BIOS boot, ESP and ext4 root on the guest's
// second disk, a cached Debian rootfs tarball, GRUB), then boots QEMU from
// that disk alone and shows what came up.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nivis/nivis/vmtests"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// demo is the state the phases share.
type demo struct {
	nivis   string
	memMiB  int
	cpus    int
	verbose bool
	keep    bool
	install bool
	out     io.Writer
	logf    func(string, ...any)

	img    *vmtests.Image
	rootfs *vmtests.Rootfs
	vm     *vmtests.VM
}

// exampleHost is the install config the demo applies; @ROOTFS@ and
// @AUTHORIZED_KEY@ are filled in at run time.
//
//go:embed example-host.yaml
var exampleHost string

// installPhases are left out with -install=false.
var installPhases = map[string]bool{"rootfs": true, "install": true, "boot-installed": true}

// phase is one named step of the demo.
type phase struct {
	name string
	run  func(d *demo, ctx context.Context) (note string, err error)
}

// phases in order.
var phases = []phase{
	{"image", (*demo).image},
	{"rootfs", (*demo).buildRootfs},
	{"boot", (*demo).boot},
	{"facts", (*demo).facts},
	{"install", (*demo).runInstall},
	{"boot-installed", (*demo).bootInstalled},
	{"shutdown", (*demo).shutdown},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := &demo{out: stdout}
	fs.StringVar(&d.nivis, "nivis", "bin/nivis", "the nivis binary to demonstrate")
	fs.IntVar(&d.memMiB, "mem", 1024, "guest memory in MiB")
	fs.IntVar(&d.cpus, "cpus", 2, "guest CPUs")
	fs.BoolVar(&d.verbose, "v", false, "log every command the harness runs")
	fs.BoolVar(&d.keep, "keep", false, "leave the guest running at the end and wait for Ctrl-C")
	fs.BoolVar(&d.install, "install", true, "also run nivis install and boot the installed disk")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(d.nivis); err != nil {
		return fmt.Errorf("nivis binary %s: %w (run `make build` first, or pass -nivis)", d.nivis, err)
	}
	d.logf = func(string, ...any) {}
	if d.verbose {
		d.logf = func(f string, a ...any) { fmt.Fprintf(stderr, "  | "+f+"\n", a...) }
	}
	defer func() {
		if d.vm != nil {
			d.vm.Close()
		}
	}()

	type timing struct {
		name string
		took time.Duration
		note string
	}
	var timings []timing
	total := time.Now()
	run := phases
	if !d.install {
		run = nil
		for _, p := range phases {
			if !installPhases[p.name] {
				run = append(run, p)
			}
		}
	}
	for i, p := range run {
		if p.name == "shutdown" && d.keep {
			d.waitForInterrupt(ctx)
		}
		fmt.Fprintf(stdout, "==> [%d/%d] %s\n", i+1, len(run), p.name)
		start := time.Now()
		note, err := p.run(d, ctx)
		took := time.Since(start)
		if err != nil {
			if d.vm != nil {
				fmt.Fprintf(stderr, "serial console (last lines):\n%s\n", d.vm.SerialTail(30))
			}
			return fmt.Errorf("phase %s: %w", p.name, err)
		}
		fmt.Fprintf(stdout, "    %s done in %s%s\n\n", p.name, took.Round(100*time.Millisecond), prefixed(" (", note, ")"))
		timings = append(timings, timing{p.name, took, note})
	}
	fmt.Fprintln(stdout, "Time per phase:")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, t := range timings {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.name, t.took.Round(100*time.Millisecond), t.note)
	}
	fmt.Fprintf(tw, "  total\t%s\t\n", time.Since(total).Round(100*time.Millisecond))
	return tw.Flush()
}

func (d *demo) image(ctx context.Context) (string, error) {
	fmt.Fprintln(d.out, "    Debian bookworm guest image (debootstrap, cached under", cacheDir()+")")
	if !d.verbose {
		fmt.Fprintln(d.out, "    the first build downloads about 160 MB and takes a few minutes")
	}
	img, err := vmtests.Build(ctx, vmtests.DefaultSpec(), vmtests.BuildOptions{Logf: d.logf})
	if err != nil {
		return "", err
	}
	d.img = img
	if img.CacheHit {
		return "cache hit " + img.Key, nil
	}
	return "built " + img.Key, nil
}

func (d *demo) boot(ctx context.Context) (string, error) {
	cfg := vmtests.Config{
		Image:     d.img,
		Name:      "nivis-demo",
		MemoryMiB: d.memMiB,
		CPUs:      d.cpus,
		Logf:      d.logf,
	}
	if d.install {
		// The install target: a blank disk the guest sees as
		// /dev/disk/by-id/virtio-target.
		cfg.Disks = []vmtests.Disk{{SizeMiB: 4096, Serial: "target"}}
	}
	vm, err := vmtests.Launch(ctx, cfg)
	if err != nil {
		return "", err
	}
	d.vm = vm
	fmt.Fprintf(d.out, "    QEMU (%s, %d MiB, %d CPUs), SSH forwarded to 127.0.0.1:%d, serial console in %s\n",
		vmtests.Accel(), d.memMiB, d.cpus, vm.Port, vm.SerialLog)
	up, err := vm.WaitSSH(ctx, vmtests.SSHTimeout)
	if err != nil {
		return "", err
	}
	return "SSH after " + up.Round(100*time.Millisecond).String(), nil
}

func (d *demo) facts(ctx context.Context) (string, error) {
	return "", d.runNivis(ctx, "facts")
}

// runNivis runs nivis VERB against the guest the way a user would, with
// the guest's key and a known_hosts that learns its host key now and
// checks it on every later connection.
func (d *demo) runNivis(ctx context.Context, verb string, flags ...string) error {
	args := append([]string{verb,
		"-p", strconv.Itoa(d.vm.Port), "-i", d.vm.KeyFile,
		"-o", "UserKnownHostsFile=" + d.vm.KnownHosts,
		"-o", "StrictHostKeyChecking=accept-new"}, flags...)
	args = append(args, vmtests.SSHTarget)
	fmt.Fprintf(d.out, "    $ %s %s\n\n", filepath.Base(d.nivis), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.nivis, args...)
	w := newIndent(d.out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nivis %s: %w", verb, err)
	}
	return nil
}

func (d *demo) buildRootfs(ctx context.Context) (string, error) {
	fmt.Fprintln(d.out, "    the system to install: a Debian bookworm rootfs tarball (kernel, GRUB, systemd, sshd), cached")
	rf, err := vmtests.BuildRootfs(ctx, vmtests.BuildOptions{Logf: d.logf})
	if err != nil {
		return "", err
	}
	d.rootfs = rf
	how := "built"
	if rf.CacheHit {
		how = "cache hit"
	}
	return fmt.Sprintf("%s %s, %d MiB", how, rf.Key, rf.Size>>20), nil
}

// runInstall writes the example config and runs nivis install. The guest
// was started with -kernel, which QEMU would boot again on a reboot, so
// nivis leaves the host in its rescue system (--no-reboot) and the demo
// powers it off and boots the installed disk itself.
func (d *demo) runInstall(ctx context.Context) (string, error) {
	pub, err := os.ReadFile(d.vm.KeyFile + ".pub")
	if err != nil {
		return "", err
	}
	text := strings.NewReplacer("@ROOTFS@", d.rootfs.Path, "@AUTHORIZED_KEY@", strings.TrimSpace(string(pub))).Replace(exampleHost)
	cfg := filepath.Join(d.vm.Dir, "host.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "    %s:\n", cfg)
	w := newIndent(newIndent(d.out))
	io.WriteString(w, text)
	fmt.Fprintln(d.out)
	if err := d.runNivis(ctx, "install", "-c", cfg, "--yes", "--no-reboot"); err != nil {
		return "", err
	}
	fmt.Fprintln(d.out, "\n    powering the rescue system off")
	pctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	return "", vmtests.PowerOffRescue(pctx, d.vm)
}

// bootInstalled boots QEMU from the installed disk alone (SeaBIOS and the
// GRUB nivis installed) and shows the result over SSH with strict host key
// checking against the known_hosts from before the install.
func (d *demo) bootInstalled(ctx context.Context) (string, error) {
	if err := vmtests.BootInstalled(ctx, d.vm, 0); err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "    QEMU booting the installed disk through SeaBIOS and GRUB, SSH on 127.0.0.1:%d\n", d.vm.Port)
	up, err := d.vm.WaitSSH(ctx, vmtests.SSHTimeout)
	if err != nil {
		return "", err
	}
	script := `echo "hostname: $(hostname)"; echo "kernel:   $(uname -r) ($(cat /proc/cmdline))"; echo; lsblk -o NAME,SIZE,TYPE,FSTYPE,PARTLABEL,MOUNTPOINT; echo; cat /etc/fstab`
	args := []string{"-p", strconv.Itoa(d.vm.Port), "-i", d.vm.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + d.vm.KnownHosts, vmtests.SSHTarget, script}
	fmt.Fprintln(d.out, "    $ ssh -o StrictHostKeyChecking=yes (the known_hosts from before the install) ...")
	cmd := exec.CommandContext(ctx, "ssh", args...)
	w := newIndent(newIndent(d.out))
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ssh into the installed system with the old host key: %w", err)
	}
	return "SSH after " + up.Round(100*time.Millisecond).String() + ", same host key", nil
}

func (d *demo) shutdown(ctx context.Context) (string, error) {
	// Also after Ctrl-C (-keep): the guest still deserves a clean poweroff.
	if err := d.vm.Shutdown(context.WithoutCancel(ctx)); err != nil {
		return "", err
	}
	return "", nil
}

func (d *demo) waitForInterrupt(ctx context.Context) {
	fmt.Fprintf(d.out, "The guest keeps running. Log in with:\n  ssh %s %s\nPress Ctrl-C to shut it down.\n",
		strings.Join(d.vm.SSHOptions(), " "), vmtests.SSHTarget)
	<-ctx.Done()
}

// indent prefixes each line of nivis's output so it stands apart from the
// phase lines.
type indent struct {
	w   io.Writer
	mid *bool // inside a line: the last write did not end with a newline
}

func newIndent(w io.Writer) indent { return indent{w: w, mid: new(bool)} }

func (i indent) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, c := range string(p) {
		if !*i.mid {
			b.WriteString("    ")
			*i.mid = true
		}
		b.WriteRune(c)
		if c == '\n' {
			*i.mid = false
		}
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func prefixed(pre, s, post string) string {
	if s == "" {
		return ""
	}
	return pre + s + post
}

func cacheDir() string {
	d, err := vmtests.CacheDir()
	if err != nil {
		return "?"
	}
	return d
}
