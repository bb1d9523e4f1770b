package kexec

import (
	"strings"
)

// keptParams are the parameters of the running kernel's command line that
// the rescue kernel keeps: where the console is, and hardware quirks the
// host needs to boot at all. Everything else (root=, init=, quiet...) is
// about the old system.
var keptParams = map[string]bool{
	"console": true, "earlycon": true, "earlyprintk": true,
	"ipv6.disable": true,
	"iommu":        true, "intel_iommu": true, "amd_iommu": true,
	"pci": true, "acpi": true, "noapic": true, "nolapic": true, "nomodeset": true,
	"module_blacklist": true, "modprobe.blacklist": true,
	"nvme_core.default_ps_max_latency_us": true,
}

// RescueParams are added to every rescue boot: the marker the in-RAM
// agent and `facts` look for, u-root's init as the initramfs init, and a
// reboot 10 s after a panic, so a host whose rescue system died comes back
// into its old system instead of hanging.
var RescueParams = []string{"nivis.rescue=1", "rdinit=/init", "panic=10"}

// Cmdline builds the rescue kernel's command line from the running one
// (/proc/cmdline): the kept parameters in their order, then extra.
func Cmdline(current string, extra ...string) string {
	var out []string
	for _, p := range splitCmdline(current) {
		if p == "--" {
			break // the rest belongs to init
		}
		key, _, _ := strings.Cut(p, "=")
		if keptParams[key] {
			out = append(out, p)
		}
	}
	for _, e := range extra {
		out = append(out, splitCmdline(e)...)
	}
	return strings.Join(out, " ")
}

// splitCmdline splits a kernel command line on spaces outside double
// quotes (param="a b" stays one parameter).
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
