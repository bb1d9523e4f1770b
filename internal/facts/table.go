package facts

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints f for people, in sections: System, Boot/kexec, Memory,
// Disks, Network, SSH, then warnings. The layout is not a stable interface:
// scripts use the JSON.
func (f *Facts) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	t := newTable(w)
	f.writeSystem(t)
	f.writeBoot(t)
	t.section("Memory")
	t.row("total", humanBytes(f.Memory.TotalBytes))
	t.row("available", humanBytes(f.Memory.AvailableBytes))
	t.row("swap", fmt.Sprintf("%s (%s free)", humanBytes(f.Memory.SwapTotalBytes), humanBytes(f.Memory.SwapFreeBytes)))
	t.tw.Flush()

	fmt.Fprintln(w, "Disks")
	f.writeDisks(newTable(w))
	fmt.Fprintln(w, "Network")
	f.writeNetwork(newTable(w))
	fmt.Fprintln(w, "SSH")
	f.writeSSH(newTable(w))

	if len(f.Warnings) > 0 {
		fmt.Fprintln(w, "Warnings")
		for _, s := range f.Warnings {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	return w.err
}

// table is one block of aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer) table { return table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)} }

func (t table) row(k string, v any) { fmt.Fprintf(t.tw, "  %s\t%v\n", k, v) }
func (t table) section(name string) { fmt.Fprintf(t.tw, "%s\n", name) }

func (f *Facts) writeSystem(t table) {
	t.section("System")
	t.row("hostname", orDash(f.Hostname))
	osName := f.OS.PrettyName
	if osName == "" {
		osName = strings.TrimSpace(f.OS.ID + " " + f.OS.VersionID)
	}
	t.row("os", orDash(osName))
	if f.OS.VariantID != "" {
		t.row("variant", f.OS.VariantID)
	}
	t.row("arch", fmt.Sprintf("%s (%s)", orDash(f.Arch), orDash(f.Machine)))
	t.row("kernel", orDash(f.Kernel.Release))
	t.row("cpus", f.CPUs)
	t.row("machine id", orDash(f.MachineID))
	t.row("boot id", orDash(f.BootID))
	initText := orDash(f.Init.Name)
	if f.Init.SystemdVersion != "" {
		initText += " " + f.Init.SystemdVersion
	}
	t.row("init", initText)
	t.row("virtualization", virtText(f.Virtualization))
	who := fmt.Sprintf("%s (uid %d)", orDash(f.Privilege.User), f.Privilege.UID)
	var esc []string
	if f.Privilege.Sudo != "" {
		esc = append(esc, "sudo")
	}
	if f.Privilege.Doas != "" {
		esc = append(esc, "doas")
	}
	if len(esc) > 0 {
		who += ", has " + strings.Join(esc, ", ")
	}
	t.row("agent runs as", who)
	t.row("nivis rescue", yesNo(f.NivisRescue))
	t.row("installer", yesNo(f.IsInstaller))
	t.row("tools", toolList(f.Tools))
}

func virtText(v Virtualization) string {
	virt := "none"
	switch {
	case v.IsContainer:
		virt = "container: " + v.Container
		if len(v.ContainerHints) > 0 {
			virt += " [" + strings.Join(v.ContainerHints, "; ") + "]"
		}
	case v.VM != "":
		virt = "vm: " + v.VM
	}
	if s := strings.TrimSpace(v.SysVendor + " " + v.ProductName); s != "" {
		virt += " (" + s + ")"
	}
	return virt
}

func (f *Facts) writeBoot(t table) {
	t.section("Boot/kexec")
	t.row("firmware", orDash(f.Boot.Firmware))
	t.row("secure boot", orDash(f.Boot.SecureBoot))
	t.row("lockdown", orUnknown(f.Boot.Lockdown))
	t.row("kexec_load_disabled", triState(f.Kexec.LoadDisabled))
	t.row("kexec_load syscall", triState(f.Kexec.KexecLoad))
	t.row("kexec_file_load syscall", triState(f.Kexec.KexecFileLoad))
	if f.Kexec.SigForce != nil && *f.Kexec.SigForce {
		t.row("kexec signature", "required")
	}
	if f.Kexec.InitrdCompressions == nil {
		t.row("initrd compressions", "unknown")
	} else {
		t.row("initrd compressions", orDash(strings.Join(f.Kexec.InitrdCompressions, ", ")))
	}
	t.row("kernel config", orUnknown(f.Kernel.ConfigSource))
	img := "not found"
	if f.Kernel.Image != "" {
		img = f.Kernel.Image
		if f.Kernel.ImageReadable {
			img += " (readable)"
		} else {
			img += " (NOT readable)"
		}
	}
	t.row("kernel image", img)
	t.row("cmdline", orDash(f.Kernel.Cmdline))
}

func (f *Facts) writeDisks(t table) {
	tw := t.tw
	fmt.Fprintln(tw, "  DEVICE\tSIZE\tKIND\tMODEL\tSERIAL\tUSE")
	for _, d := range f.Disks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", d.Path, humanBytes(d.SizeBytes), diskKind(d), orDash(d.Model), orDash(d.Serial), usageText(d.Usage))
		for _, p := range d.Partitions {
			label := ""
			if p.Label != "" {
				label = "label " + p.Label
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t\t%s\n", p.Path, humanBytes(p.SizeBytes), "part", orDash(label), usageText(p.Usage))
		}
		for _, id := range d.ByID {
			fmt.Fprintf(tw, "    %s\t\t\t\t\t\n", id)
		}
	}
	for _, s := range f.Swaps {
		if s.Type == "file" {
			fmt.Fprintf(tw, "  %s\t%s\tswapfile\t\t\t\n", s.Path, humanBytes(s.SizeBytes))
		}
	}
	tw.Flush()
}

func (f *Facts) writeNetwork(t table) {
	tw := t.tw
	for _, it := range f.Network.Interfaces {
		fmt.Fprintf(tw, "  %s\t%s\n", it.Name, ifaceText(it))
		for _, a := range it.Addresses {
			kind := "static"
			if a.Dynamic {
				kind = "dynamic, valid " + lifetimeText(a.ValidLifetime)
			}
			fmt.Fprintf(tw, "  \t%s (%s, %s)\n", a.CIDR, a.Scope, kind)
		}
	}
	for _, r := range f.Network.Routes {
		fmt.Fprintf(tw, "  route v%d\t%s\n", r.Family, routeText(r))
	}
	fmt.Fprintf(tw, "  dns\t%s\n", orDash(strings.Join(f.Network.DNS.Nameservers, " ")))
	if len(f.Network.DNS.Search) > 0 {
		fmt.Fprintf(tw, "  search\t%s\n", strings.Join(f.Network.DNS.Search, " "))
	}
	tw.Flush()
}

func ifaceText(it Interface) string {
	desc := []string{it.Kind}
	if it.MAC != "" {
		desc = append(desc, it.MAC)
	}
	desc = append(desc, "mtu "+strconv.Itoa(it.MTU), it.OperState)
	if it.Driver != "" {
		desc = append(desc, "driver "+it.Driver)
	}
	if it.VLANID != 0 {
		desc = append(desc, fmt.Sprintf("vlan %d on %s", it.VLANID, it.Parent))
	}
	if it.BondMode != "" {
		desc = append(desc, "mode "+it.BondMode)
	}
	if it.Master != "" {
		desc = append(desc, "master "+it.Master)
	}
	if len(it.Slaves) > 0 {
		desc = append(desc, "slaves "+strings.Join(it.Slaves, ","))
	}
	return strings.Join(desc, ", ")
}

func routeText(r Route) string {
	s := r.Dst
	if r.Gateway != "" {
		s += " via " + r.Gateway
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.OnLink {
		s += " onlink"
	}
	if r.Metric != 0 {
		s += " metric " + strconv.Itoa(r.Metric)
	}
	if r.Type != "" {
		s = r.Type + " " + s
	}
	for _, nh := range r.Nexthops {
		s += fmt.Sprintf(" nexthop via %s dev %s", nh.Gateway, nh.Dev)
	}
	return s
}

func (f *Facts) writeSSH(t table) {
	t.row("ports", orDash(joinInts(f.SSH.Ports)))
	t.row("configured ports", orDash(joinInts(f.SSH.ConfigPorts)))
	var ls []string
	for _, l := range f.SSH.Listening {
		s := net2str(l.Address, l.Port)
		if l.Process != "" {
			s += " (" + l.Process + ")"
		}
		ls = append(ls, s)
	}
	t.row("listening tcp", orDash(strings.Join(ls, ", ")))
	for _, k := range f.SSH.HostKeys {
		t.row("host key", k.Fingerprint+" "+k.Type)
	}
	t.tw.Flush()
}

// errWriter keeps the first write error so WriteTable can return it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func usageText(u Usage) string {
	var parts []string
	if u.HoldsRoot {
		parts = append(parts, "holds /")
	}
	for _, m := range u.Mounts {
		s := m.Mountpoint + " (" + m.FSType
		if m.Via != "" {
			s += " via " + m.Via
		}
		parts = append(parts, s+")")
	}
	if u.Swap {
		parts = append(parts, "swap")
	}
	if len(u.Mounts) == 0 && len(u.Holders) > 0 {
		parts = append(parts, "held by "+strings.Join(u.Holders, ","))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(dedupe(parts), ", ")
}

func diskKind(d Disk) string {
	var f []string
	f = append(f, d.Kind)
	if d.Rotational {
		f = append(f, "hdd")
	}
	if d.Removable {
		f = append(f, "removable")
	}
	if d.ReadOnly {
		f = append(f, "ro")
	}
	return strings.Join(f, ",")
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

func toolList(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// humanBytes prints binary units (GiB), as disk and memory sizes are.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func lifetimeText(s int64) string {
	if s < 0 {
		return "forever"
	}
	return strconv.FormatInt(s, 10) + "s"
}

func triState(b *bool) string {
	if b == nil {
		return "unknown"
	}
	return yesNo(*b)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func net2str(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(port)
	}
	return addr + ":" + strconv.Itoa(port)
}
