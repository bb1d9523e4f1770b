//go:build linux

package facts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// virtualization follows systemd-detect-virt: container markers first
// (a container on a VM is a container), then DMI, hypervisor and CPU hints.
func (g *gatherer) virtualization() {
	v := &g.f.Virtualization
	v.Container, v.ContainerHints = g.detectContainer()
	v.IsContainer = v.Container != ""
	v.SysVendor = g.readString("/sys/class/dmi/id/sys_vendor")
	v.ProductName = g.readString("/sys/class/dmi/id/product_name")
	v.VM = g.detectVM()
}

func (g *gatherer) detectContainer() (string, []string) {
	if g.exists("/proc/vz") && !g.exists("/proc/bc") {
		return "openvz", []string{"/proc/vz exists without /proc/bc"}
	}
	if rel := g.readString("/proc/sys/kernel/osrelease"); strings.Contains(rel, "Microsoft") || strings.Contains(rel, "WSL") {
		return "wsl", []string{"kernel release " + rel}
	}
	// systemd writes this file when it runs as PID 1 of a container.
	if s := g.readString("/run/systemd/container"); s != "" {
		return s, []string{"/run/systemd/container says " + s}
	}
	if env, err := readQuiet(g.p("/proc/1/environ")); err == nil {
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("container=")); ok && len(v) > 0 {
				return string(v), []string{"PID 1 has container=" + string(v)}
			}
		}
	}
	if s := g.readString("/run/host/container-manager"); s != "" {
		return s, []string{"/run/host/container-manager says " + s}
	}
	if g.exists("/.dockerenv") {
		return "docker", []string{"/.dockerenv exists"}
	}
	if g.exists("/run/.containerenv") {
		return "podman", []string{"/run/.containerenv exists"}
	}
	// Without a cgroup namespace, PID 1's cgroup path names the manager.
	if cg, err := readQuiet(g.p("/proc/1/cgroup")); err == nil {
		s := string(cg)
		for _, h := range []struct{ sub, name string }{
			{"/docker/", "docker"}, {"/docker-", "docker"}, {"/libpod", "podman"},
			{"/lxc/", "lxc"}, {"/lxc.payload", "lxc"}, {"/kubepods", "kubernetes"},
		} {
			if strings.Contains(s, h.sub) {
				return h.name, []string{"/proc/1/cgroup contains " + h.sub}
			}
		}
	}
	return "", nil
}

// readQuiet reads a file whose absence or unreadability (PID 1's environ
// as non-root) is normal and not worth a warning.
func readQuiet(path string) ([]byte, error) { return os.ReadFile(path) }

// dmiVendors maps DMI strings to systemd-detect-virt's names (its
// detect_vm_dmi_vendor table).
var dmiVendors = []struct{ prefix, vm string }{
	{"KVM", "kvm"}, {"OpenStack", "kvm"}, {"KubeVirt", "kvm"}, {"Amazon EC2", "amazon"},
	{"QEMU", "qemu"}, {"VMware", "vmware"}, {"VMW", "vmware"}, {"innotek GmbH", "oracle"},
	{"VirtualBox", "oracle"}, {"Oracle Corporation", "oracle"}, {"Xen", "xen"},
	{"Bochs", "bochs"}, {"Parallels", "parallels"}, {"BHYVE", "bhyve"}, {"Hyper-V", "microsoft"},
	{"Apple Virtualization", "apple"}, {"Google Compute Engine", "google"},
}

func (g *gatherer) detectVM() string {
	for _, f := range []string{"product_name", "sys_vendor", "board_vendor", "bios_vendor", "product_version"} {
		s := g.readString("/sys/class/dmi/id/" + f)
		for _, d := range dmiVendors {
			if strings.HasPrefix(s, d.prefix) {
				return d.vm
			}
		}
	}
	if g.f.Virtualization.SysVendor == "Microsoft Corporation" && g.f.Virtualization.ProductName == "Virtual Machine" {
		return "microsoft"
	}
	if t := g.readString("/sys/hypervisor/type"); t == "xen" {
		return "xen"
	}
	if c := g.readString("/proc/device-tree/hypervisor/compatible"); c != "" {
		switch {
		case strings.Contains(c, "linux,kvm"):
			return "kvm"
		case strings.Contains(c, "xen"):
			return "xen"
		case strings.Contains(c, "vmware"):
			return "vmware"
		}
		return "vm-other"
	}
	if cpuinfo, err := readQuiet(g.p("/proc/cpuinfo")); err == nil && cpuinfoHypervisor(cpuinfo) {
		return "vm-other"
	}
	return ""
}

// systemdVersion asks PID 1 over the system bus; a host without a bus
// (rescue, minimal container) simply has no version.
func systemdVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := conn.GetManagerProperty("Version")
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", r.err
		}
		// The value comes in GVariant text form: a quoted string.
		return strings.Trim(r.v, `"'`), nil
	case <-ctx.Done():
		return "", fmt.Errorf("no answer from systemd: %w", ctx.Err())
	}
}
