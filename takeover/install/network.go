package install

import (
	"fmt"
	"io/fs"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nivis/nivis/internal/carry"
)

// File is a file to write into the root: Path is relative to it.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// Network modes of FinalizeOptions.Network.
const (
	NetworkKeep = "keep"
	NetworkDHCP = "dhcp"
	NetworkNone = "none"
)

// netIface is one interface of the installed system's network, normalized
// from the captured state.
type netIface struct {
	Name    string
	MAC     string
	MTU     int
	Kind    string // "" (ethernet), bond, vlan, bridge
	VLANID  int
	Parent  string
	Master  string // bond or bridge this port belongs to
	DHCP4   bool
	DHCP6   bool
	RA      bool
	Request string // the v4 lease to ask for again
	Static  []string
	Routes  []carry.Route
	DNS     []string
	Search  []string
	VLANs   []string // vlan children
}

var zeroMAC = regexp.MustCompile(`^(00:)*00$`)

// planNetwork turns captured state into the interfaces to configure.
func planNetwork(n carry.Network, mode string) ([]*netIface, []string) {
	var out []*netIface
	var warn []string
	byName := map[string]*netIface{}
	for _, in := range n.Interfaces {
		if in.Name == "lo" {
			continue
		}
		switch in.Kind {
		case "", "bond", "vlan", "bridge":
		default:
			if len(in.Addrs) > 0 {
				warn = append(warn, fmt.Sprintf("interface %s of kind %s is not configured on the installed system", in.Name, in.Kind))
			}
			continue
		}
		if in.Kind == "" && (in.MAC == "" || zeroMAC.MatchString(in.MAC)) {
			continue
		}
		ni := &netIface{Name: in.Name, MAC: strings.ToLower(in.MAC), MTU: in.MTU, Kind: in.Kind, VLANID: in.VLANID, Parent: in.Parent}
		if mode == NetworkDHCP {
			if in.Kind != "" {
				continue
			}
			ni.DHCP4, ni.DHCP6, ni.RA = true, true, true
			out = append(out, ni)
			byName[ni.Name] = ni
			continue
		}
		for _, a := range in.Addrs {
			p, err := netip.ParsePrefix(a.CIDR)
			if err != nil {
				warn = append(warn, fmt.Sprintf("interface %s: address %q skipped: %v", in.Name, a.CIDR, err))
				continue
			}
			ip := p.Addr()
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
				continue
			}
			switch {
			case a.Dynamic && ip.Is4():
				ni.DHCP4 = true
				ni.Request = ip.String()
			case a.Dynamic:
				ni.RA = true
			default:
				ni.Static = append(ni.Static, p.String())
			}
		}
		if !in.Up && len(ni.Static) == 0 && !ni.DHCP4 && in.Kind == "" {
			continue
		}
		out = append(out, ni)
		byName[ni.Name] = ni
	}
	if mode != NetworkDHCP {
		for _, in := range n.Interfaces {
			for _, s := range in.Slaves {
				if p := byName[s]; p != nil && byName[in.Name] != nil {
					p.Master = in.Name
				}
			}
		}
		for _, ni := range out {
			if ni.Kind == "vlan" {
				if p := byName[ni.Parent]; p != nil {
					p.VLANs = append(p.VLANs, ni.Name)
				} else {
					warn = append(warn, fmt.Sprintf("vlan %s: parent %q not captured; skipped", ni.Name, ni.Parent))
				}
			}
		}
		for _, r := range n.Routes {
			switch r.Proto {
			case "kernel", "dhcp", "ra", "redirect":
				continue
			}
			ni := byName[r.Dev]
			if ni == nil {
				continue
			}
			if r.Dst != "default" {
				if p, err := netip.ParsePrefix(r.Dst); err == nil && (p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast()) {
					continue
				}
			}
			ni.Routes = append(ni.Routes, r)
		}
	}
	for _, ni := range out {
		if ni.Master == "" && mode != NetworkDHCP {
			ni.DNS, ni.Search = n.DNS.Nameservers, n.DNS.Search
		}
	}
	return out, warn
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func fileName(name string) string { return unsafeName.ReplaceAllString(name, "_") }

func sortedIfaces(ifs []*netIface) []*netIface {
	sort.SliceStable(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })
	return ifs
}

const header = "# Written by nivis from the network captured before the install.\n"

// RenderNetworkd writes systemd-networkd files: one .network per interface,
// physical ones matched by MAC (names change across kernels), .netdev files
// for bonds, vlans and bridges, and a last-resort DHCP file for ethernet
// ports nothing else matched.
func RenderNetworkd(n carry.Network, mode string) ([]File, []string) {
	ifs, warn := planNetwork(n, mode)
	var files []File
	for _, ni := range sortedIfaces(ifs) {
		var b strings.Builder
		b.WriteString(header)
		fmt.Fprintf(&b, "# Interface %s before the install.\n[Match]\n", ni.Name)
		if ni.Kind == "" {
			fmt.Fprintf(&b, "MACAddress=%s\nType=ether\n", ni.MAC)
		} else {
			fmt.Fprintf(&b, "Name=%s\n", ni.Name)
		}
		if ni.MTU > 0 && ni.MTU != 1500 {
			fmt.Fprintf(&b, "\n[Link]\nMTUBytes=%d\n", ni.MTU)
		}
		b.WriteString("\n[Network]\n")
		switch {
		case ni.Master != "" && bondOrBridge(n, ni.Master) == "bridge":
			fmt.Fprintf(&b, "Bridge=%s\n", ni.Master)
		case ni.Master != "":
			fmt.Fprintf(&b, "Bond=%s\n", ni.Master)
		default:
			switch {
			case ni.DHCP4 && ni.DHCP6:
				b.WriteString("DHCP=yes\n")
			case ni.DHCP4:
				b.WriteString("DHCP=ipv4\n")
			default:
				b.WriteString("DHCP=no\n")
			}
			if ni.RA {
				b.WriteString("IPv6AcceptRA=yes\n")
			}
			for _, a := range ni.Static {
				fmt.Fprintf(&b, "Address=%s\n", a)
			}
			for _, d := range ni.DNS {
				fmt.Fprintf(&b, "DNS=%s\n", d)
			}
			if len(ni.Search) > 0 {
				fmt.Fprintf(&b, "Domains=%s\n", strings.Join(ni.Search, " "))
			}
		}
		for _, v := range ni.VLANs {
			fmt.Fprintf(&b, "VLAN=%s\n", v)
		}
		if ni.Request != "" && ni.Master == "" {
			fmt.Fprintf(&b, "\n[DHCPv4]\nRequestAddress=%s\n", ni.Request)
		}
		for _, r := range ni.Routes {
			b.WriteString("\n[Route]\n")
			if r.Dst != "default" && r.Dst != "" {
				fmt.Fprintf(&b, "Destination=%s\n", r.Dst)
			}
			if r.Gateway != "" {
				fmt.Fprintf(&b, "Gateway=%s\n", r.Gateway)
				if r.OnLink {
					b.WriteString("GatewayOnLink=yes\n")
				}
			} else {
				b.WriteString("Scope=link\n")
			}
			if r.Metric > 0 {
				fmt.Fprintf(&b, "Metric=%d\n", r.Metric)
			}
			if r.Src != "" {
				fmt.Fprintf(&b, "PreferredSource=%s\n", r.Src)
			}
		}
		files = append(files, File{Path: "etc/systemd/network/10-nivis-" + fileName(ni.Name) + ".network", Data: []byte(b.String()), Mode: 0o644})
		if ni.Kind != "" {
			var d strings.Builder
			d.WriteString(header)
			fmt.Fprintf(&d, "[NetDev]\nName=%s\nKind=%s\n", ni.Name, ni.Kind)
			if ni.MTU > 0 && ni.MTU != 1500 {
				fmt.Fprintf(&d, "MTUBytes=%d\n", ni.MTU)
			}
			switch ni.Kind {
			case "vlan":
				fmt.Fprintf(&d, "\n[VLAN]\nId=%d\n", ni.VLANID)
			case "bond":
				d.WriteString("\n[Bond]\n# The bonding mode was not captured: active-backup works with any switch.\nMode=active-backup\nMIIMonitorSec=100ms\n")
				warn = append(warn, fmt.Sprintf("bond %s: its mode was not captured; configured as active-backup", ni.Name))
			}
			files = append(files, File{Path: "etc/systemd/network/10-nivis-" + fileName(ni.Name) + ".netdev", Data: []byte(d.String()), Mode: 0o644})
		}
	}
	fallback := header + "# Any other ethernet port: DHCP, so a changed NIC still comes up.\n[Match]\nType=ether\nName=en* eth*\n\n[Network]\nDHCP=yes\n"
	files = append(files, File{Path: "etc/systemd/network/99-nivis-dhcp.network", Data: []byte(fallback), Mode: 0o644})
	return files, warn
}

func bondOrBridge(n carry.Network, name string) string {
	for _, in := range n.Interfaces {
		if in.Name == name {
			return in.Kind
		}
	}
	return ""
}

type npRoute struct {
	To     string `yaml:"to"`
	Via    string `yaml:"via,omitempty"`
	OnLink bool   `yaml:"on-link,omitempty"`
	Metric int    `yaml:"metric,omitempty"`
	From   string `yaml:"from,omitempty"`
	Scope  string `yaml:"scope,omitempty"`
}

type npNameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty"`
}

type npIface struct {
	Match       map[string]string `yaml:"match,omitempty"`
	ID          *int              `yaml:"id,omitempty"`
	Link        string            `yaml:"link,omitempty"`
	Interfaces  []string          `yaml:"interfaces,omitempty"`
	Parameters  map[string]string `yaml:"parameters,omitempty"`
	MTU         int               `yaml:"mtu,omitempty"`
	DHCP4       bool              `yaml:"dhcp4"`
	DHCP6       bool              `yaml:"dhcp6,omitempty"`
	AcceptRA    *bool             `yaml:"accept-ra,omitempty"`
	Addresses   []string          `yaml:"addresses,omitempty"`
	Routes      []npRoute         `yaml:"routes,omitempty"`
	Nameservers *npNameservers    `yaml:"nameservers,omitempty"`
}

type npNetwork struct {
	Version   int                 `yaml:"version"`
	Renderer  string              `yaml:"renderer"`
	Ethernets map[string]*npIface `yaml:"ethernets,omitempty"`
	VLANs     map[string]*npIface `yaml:"vlans,omitempty"`
	Bonds     map[string]*npIface `yaml:"bonds,omitempty"`
	Bridges   map[string]*npIface `yaml:"bridges,omitempty"`
}

// RenderNetplan writes /etc/netplan/90-nivis.yaml (mode 0600: netplan
// warns about readable files). Ethernet ports are matched by MAC under an
// id of their old name.
func RenderNetplan(n carry.Network, mode string) (File, []string) {
	ifs, warn := planNetwork(n, mode)
	np := npNetwork{Version: 2, Renderer: "networkd"}
	add := func(m *map[string]*npIface, name string, v *npIface) {
		if *m == nil {
			*m = map[string]*npIface{}
		}
		(*m)[name] = v
	}
	for _, ni := range sortedIfaces(ifs) {
		v := &npIface{MTU: ni.MTU, DHCP4: ni.DHCP4 && ni.Master == "", DHCP6: ni.DHCP6, Addresses: ni.Static}
		if ni.MTU == 1500 {
			v.MTU = 0
		}
		if ni.RA {
			t := true
			v.AcceptRA = &t
		}
		for _, r := range ni.Routes {
			to := r.Dst
			if to == "" {
				to = "default"
			}
			nr := npRoute{To: to, Via: r.Gateway, OnLink: r.OnLink, Metric: r.Metric, From: r.Src}
			if r.Gateway == "" {
				nr.Scope = "link"
			}
			v.Routes = append(v.Routes, nr)
		}
		if len(ni.DNS)+len(ni.Search) > 0 {
			v.Nameservers = &npNameservers{Addresses: ni.DNS, Search: ni.Search}
		}
		switch ni.Kind {
		case "":
			v.Match = map[string]string{"macaddress": ni.MAC}
			add(&np.Ethernets, ni.Name, v)
		case "vlan":
			id := ni.VLANID
			v.ID, v.Link = &id, ni.Parent
			add(&np.VLANs, ni.Name, v)
		case "bond", "bridge":
			for _, p := range ifs {
				if p.Master == ni.Name {
					v.Interfaces = append(v.Interfaces, p.Name)
				}
			}
			sort.Strings(v.Interfaces)
			if ni.Kind == "bond" {
				v.Parameters = map[string]string{"mode": "active-backup"}
				warn = append(warn, fmt.Sprintf("bond %s: its mode was not captured; configured as active-backup", ni.Name))
				add(&np.Bonds, ni.Name, v)
			} else {
				add(&np.Bridges, ni.Name, v)
			}
		}
	}
	b, err := yaml.Marshal(map[string]any{"network": np})
	if err != nil {
		warn = append(warn, "netplan: "+err.Error())
	}
	return File{Path: "etc/netplan/90-nivis.yaml", Data: append([]byte(header), b...), Mode: 0o600}, warn
}

// RenderIfupdown writes /etc/network/interfaces.d/90-nivis and, since
// ifupdown names interfaces rather than matching MACs, a systemd .link file
// per port that gives it its old name back.
func RenderIfupdown(n carry.Network, mode string) ([]File, []string) {
	ifs, warn := planNetwork(n, mode)
	var b strings.Builder
	b.WriteString(header)
	var files []File
	for _, ni := range sortedIfaces(ifs) {
		if ni.Kind != "" {
			warn = append(warn, fmt.Sprintf("interface %s (%s) is not written for ifupdown; configure it yourself", ni.Name, ni.Kind))
			continue
		}
		files = append(files, File{
			Path: "etc/systemd/network/10-nivis-" + fileName(ni.Name) + ".link",
			Data: fmt.Appendf(nil, "%s[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n", header, ni.MAC, ni.Name),
			Mode: 0o644,
		})
		fmt.Fprintf(&b, "\nauto %s\n", ni.Name)
		var v4, v6 []string
		for _, a := range ni.Static {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
		stanza := func(fam, method string, addrs []string, v6fam bool) {
			fmt.Fprintf(&b, "iface %s %s %s\n", ni.Name, fam, method)
			// Classic ifupdown takes one address per stanza: more go by hand.
			for i, a := range addrs {
				if i == 0 {
					fmt.Fprintf(&b, "    address %s\n", a)
				} else {
					fmt.Fprintf(&b, "    up ip addr add %s dev %s\n", a, ni.Name)
				}
			}
			if ni.MTU > 0 && ni.MTU != 1500 && !v6fam {
				fmt.Fprintf(&b, "    mtu %d\n", ni.MTU)
			}
			for _, r := range ni.Routes {
				if (r.Family == 6) != v6fam {
					continue
				}
				cmd := "ip -4"
				if v6fam {
					cmd = "ip -6"
				}
				dst := r.Dst
				if dst == "" {
					dst = "default"
				}
				line := fmt.Sprintf("%s route replace %s", cmd, dst)
				if r.Gateway != "" {
					line += " via " + r.Gateway
				}
				line += " dev " + ni.Name
				if r.OnLink {
					line += " onlink"
				}
				if r.Metric > 0 {
					line += fmt.Sprintf(" metric %d", r.Metric)
				}
				fmt.Fprintf(&b, "    post-up %s\n", line)
			}
			if !v6fam && len(ni.DNS) > 0 {
				fmt.Fprintf(&b, "    dns-nameservers %s\n", strings.Join(ni.DNS, " "))
				if len(ni.Search) > 0 {
					fmt.Fprintf(&b, "    dns-search %s\n", strings.Join(ni.Search, " "))
				}
			}
		}
		switch {
		case ni.DHCP4:
			stanza("inet", "dhcp", nil, false)
		case len(v4) > 0:
			stanza("inet", "static", v4, false)
		}
		switch {
		case len(v6) > 0:
			stanza("inet6", "static", v6, true)
		case ni.DHCP6:
			stanza("inet6", "dhcp", nil, true)
		case ni.RA:
			stanza("inet6", "auto", nil, true)
		}
	}
	files = append(files, File{Path: "etc/network/interfaces.d/90-nivis", Data: []byte(b.String()), Mode: 0o644})
	return files, warn
}

// RenderResolvConf writes a static resolv.conf, for systems without
// systemd-resolved.
func RenderResolvConf(d carry.DNS) File {
	var b strings.Builder
	b.WriteString(header)
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	return File{Path: "etc/resolv.conf", Data: []byte(b.String()), Mode: 0o644}
}
