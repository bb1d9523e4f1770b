//go:build linux

package kexec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/initramfs"
	"github.com/nivis/nivis/initramfs/base"
	"github.com/nivis/nivis/internal/facts"
)

// imageOptions turns a request into initramfs options (without the
// carry-over, which Capture adds).
func imageOptions(req PrepareRequest) (initramfs.Options, error) {
	needs, err := initramfs.NeedsFor(req.Features...)
	if err != nil {
		return initramfs.Options{}, err
	}
	return initramfs.Options{
		Modules:     append(needs.Modules, req.Modules...),
		Tools:       dedupe(append(needs.Tools, req.Tools...)),
		Config:      []byte(req.Config),
		Compression: initramfs.Compression(req.Compression),
		CACerts:     hostCACerts(),
	}, nil
}

// caBundles are where distributions keep their CA bundle (the places Go's
// crypto/x509 reads), first match wins.
var caBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Arch, Gentoo
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine
}

// hostCACerts is the host's CA bundle, if it has one of a sane size.
func hostCACerts() []byte {
	for _, p := range caBundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 && len(b) < 4<<20 {
			return b
		}
	}
	return nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Preflight checks, without changing anything, whether kexec-prepare can
// work: privileges, kexec in the kernel, lockdown, the kernel image, the
// tools, RAM against the unpacked image, and room to assemble it. f is the
// host's facts snapshot: Preflight reads no host state of its own.
func Preflight(req PrepareRequest, f *facts.Facts) *PreflightResult {
	p := &preflight{f: f, res: &PreflightResult{Host: HostStateOf(f)}}
	p.hostChecks()
	p.kernelImage(req)
	p.res.MemTotal, p.res.MemAvailable = int64(f.Memory.TotalBytes), int64(f.Memory.AvailableBytes)
	if req.Initrd != "" {
		if st, err := os.Stat(req.Initrd); err != nil {
			p.add("initrd", "fail", err.Error(), "upload the initrd first or fix --initrd")
		} else {
			p.add("initrd", "ok", fmt.Sprintf("%s (%.1f MiB)", req.Initrd, mib(st.Size())), "")
		}
	} else {
		p.rescueImage(req)
	}
	p.res.OK = allPass(p.res.Checks)
	return p.res
}

// preflight collects the checks of one Preflight.
type preflight struct {
	f   *facts.Facts
	res *PreflightResult
}

func (p *preflight) add(name, status, detail, fix string) {
	p.res.Checks = append(p.res.Checks, Check{Name: name, Status: status, Detail: detail, Fix: fix})
}

// hostChecks judge the kernel and the host: root, container, kexec
// disabled or missing, lockdown and Secure Boot.
func (p *preflight) hostChecks() {
	f, hs := p.f, p.res.Host
	if uid := f.Privilege.UID; uid != 0 {
		p.add("root", "fail", fmt.Sprintf("the agent runs as uid %d", uid), "run nivis with --sudo (or log in as root): kexec needs CAP_SYS_BOOT")
	} else {
		p.add("root", "ok", "running as root", "")
	}
	if hs.Container != "" {
		// A warning: VMs built from container images keep /.dockerenv.
		p.add("container", "warn", "this host looks like a "+hs.Container+" container", fmt.Sprintf(fixContainer, hs.Container))
	} else {
		p.add("container", "ok", "not a container", "")
	}
	if hs.LoadDisabled {
		p.add("kexec_load_disabled", "fail", "kernel.kexec_load_disabled = 1", fixDisabled)
	} else {
		p.add("kexec_load_disabled", "ok", "kernel.kexec_load_disabled = 0", "")
	}

	cfg, src := f.Kernel.Config, f.Kernel.ConfigSource
	switch {
	case src == "":
		p.add("kexec support", "warn", "no kernel config found for "+f.Kernel.Release+": cannot tell whether the kernel has kexec", "")
	case cfg["CONFIG_KEXEC_FILE"] == "y" || cfg["CONFIG_KEXEC"] == "y":
		p.add("kexec support", "ok", fmt.Sprintf("CONFIG_KEXEC=%s CONFIG_KEXEC_FILE=%s (%s)", orNo(cfg["CONFIG_KEXEC"]), orNo(cfg["CONFIG_KEXEC_FILE"]), src), "")
	default:
		p.add("kexec support", "fail", "the kernel config ("+src+") has neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE", fixUnsupported)
	}

	switch {
	case hs.lockedDown():
		p.add("lockdown", "warn", fmt.Sprintf("kernel lockdown is %q (Secure Boot: %v): only a signed kernel can be loaded, with kexec_file_load", hs.Lockdown, hs.SecureBoot), fixLockdown)
	case hs.SecureBoot:
		p.add("lockdown", "ok", "Secure Boot is on but the kernel is not locked down", "")
	default:
		p.add("lockdown", "ok", "no kernel lockdown (Secure Boot off or unknown)", "")
	}
}

// kernelImage finds the kernel to load: the request's, else the running
// release's.
func (p *preflight) kernelImage(req PrepareRequest) {
	release := p.f.Kernel.Release
	kernel := req.Kernel
	if kernel == "" {
		k, err := FindKernel(release)
		if err != nil {
			p.add("kernel image", "fail", err.Error(), "install the package of the running kernel (e.g. linux-image-"+release+") or pass --kernel")
		}
		kernel = k
	}
	if kernel == "" {
		return
	}
	if fh, err := os.Open(kernel); err != nil {
		p.add("kernel image", "fail", err.Error(), "pass --kernel with a readable kernel image")
	} else {
		fh.Close()
		p.add("kernel image", "ok", kernel, "")
		p.res.Kernel = kernel
	}
}

// rescueImage estimates the rescue image to assemble and checks the RAM
// and the work space it needs.
func (p *preflight) rescueImage(req PrepareRequest) {
	release, res := p.f.Kernel.Release, p.res
	if _, err := base.For(runtime.GOARCH); err != nil {
		p.add("rescue base image", "fail", err.Error(), "use a nivis binary built with `make`")
		return
	}
	p.add("rescue base image", "ok", "embedded for "+runtime.GOARCH, "")

	opts, err := imageOptions(req)
	if err != nil {
		p.add("layout", "fail", err.Error(), "fix the features in the request")
		return
	}
	if _, err := os.Stat(filepath.Join("/lib/modules", release, "modules.dep")); err != nil {
		p.add("kernel modules", "warn", "no /lib/modules/"+release+": the rescue system gets only the drivers built into the kernel", "install the modules package of the running kernel (linux-image-"+release+")")
	} else {
		p.add("kernel modules", "ok", "/lib/modules/"+release, "")
	}
	var missing []string
	for _, t := range opts.Tools {
		if _, err := initramfs.FindTool(t); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		p.add("tools", "fail", strings.Join(missing, "; "), "install the packages named above on the host")
		opts.Tools = nil // still estimate the rest
	} else {
		p.add("tools", "ok", strings.Join(opts.Tools, " "), "")
	}

	img, err := initramfs.Estimate(opts)
	if err != nil {
		var tm *initramfs.ToolsMissingError
		if !errors.As(err, &tm) {
			p.add("rescue image", "fail", err.Error(), "")
		}
		return
	}
	res.Image = img
	need := img.RAMNeeded()
	if res.MemTotal > 0 && res.MemTotal < need {
		p.add("memory", "fail", fmt.Sprintf("the rescue system needs about %d MiB of RAM (image %.0f MiB, unpacked %.0f MiB, kernel and runtime), the host has %d MiB",
			need>>20, mib(img.Size), mib(img.Unpacked), res.MemTotal>>20), "use a host with more RAM, or a layout needing fewer tools")
	} else {
		p.add("memory", "ok", fmt.Sprintf("needs about %d MiB, host has %d MiB", need>>20, res.MemTotal>>20), "")
	}
	// Assembling holds the image in tmpfs and, once loaded, the kernel's copy.
	if res.MemAvailable > 0 && res.MemAvailable < 2*img.Size+64<<20 {
		p.add("available memory", "warn", fmt.Sprintf("%d MiB available; assembling and loading needs about %d MiB", res.MemAvailable>>20, (2*img.Size+64<<20)>>20), "stop memory-hungry services first")
	}
	dir, free := chooseWorkDir(req.WorkDir, img.Size)
	res.WorkDir = dir
	if dir == "" {
		p.add("work space", "fail", fmt.Sprintf("no directory with %.0f MiB free among %s", mib(img.Size*5/4), strings.Join(workDirCandidates(req.WorkDir), ", ")), "free space in /run or /var/tmp")
	} else {
		p.add("work space", "ok", fmt.Sprintf("%s (%d MiB free)", dir, free>>20), "")
	}
}

func orNo(v string) string {
	if v == "" {
		return "n"
	}
	return v
}

func allPass(cs []Check) bool {
	for _, c := range cs {
		if c.Status == "fail" {
			return false
		}
	}
	return true
}

// failures formats the failed checks as one error text.
func failures(cs []Check) string {
	var out []string
	for _, c := range cs {
		if c.Status == "fail" {
			s := c.Name + ": " + c.Detail
			if c.Fix != "" {
				s += " (fix: " + c.Fix + ")"
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, "; ")
}

func workDirCandidates(want string) []string {
	if want != "" {
		return []string{want}
	}
	return []string{DefaultWorkDir, "/dev/shm/nivis-kexec", "/var/tmp/nivis-kexec"}
}

// chooseWorkDir picks the first candidate whose filesystem has room for
// the image plus a quarter (Debian sizes /run at 10% of RAM).
func chooseWorkDir(want string, size int64) (string, int64) {
	for _, d := range workDirCandidates(want) {
		probe := d
		for {
			if _, err := os.Stat(probe); err == nil {
				break
			}
			parent := filepath.Dir(probe)
			if parent == probe {
				break
			}
			probe = parent
		}
		var st unix.Statfs_t
		if err := unix.Statfs(probe, &st); err != nil {
			continue
		}
		free := int64(st.Bavail) * int64(st.Bsize)
		if free >= size*5/4+8<<20 {
			return d, free
		}
	}
	return "", 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
