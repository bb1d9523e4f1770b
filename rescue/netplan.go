package rescue

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/nivis/nivis/internal/carry"
)

// NetOpKind names one step of a network restore.
type NetOpKind string

// The steps, in the order PlanNetwork emits them.
const (
	// OpRename gives a link its pre-kexec name (udev named it "ens3"
	// before; the rescue kernel calls it "eth0"), so the rescue system and
	// any hardware report see the names the installed system will use.
	OpRename NetOpKind = "rename"
	// OpSysctl sets an IPv6 knob; RA acceptance must be on before the link
	// comes up, or the router solicitation is never sent.
	OpSysctl NetOpKind = "sysctl"
	// OpLinkUp sets the MTU and brings a physical link up.
	OpLinkUp NetOpKind = "link-up"
	// OpBond, OpBridge and OpVLAN create a virtual link (with its members
	// or on its parent) and bring it up.
	OpBond   NetOpKind = "bond"
	OpBridge NetOpKind = "bridge"
	OpVLAN   NetOpKind = "vlan"
	// OpAddr sets back a static address.
	OpAddr NetOpKind = "addr"
	// OpRoute adds a route.
	OpRoute NetOpKind = "route"
	// OpDHCP4 asks for a lease, for the old address when there was one;
	// when no lease comes, Fallback addresses and routes are set instead.
	OpDHCP4 NetOpKind = "dhcp4"
	// OpDNS writes resolv.conf.
	OpDNS NetOpKind = "dns"
)

// NetOp is one step. Link is the link's name in the rescue system (after
// renames). Fields a kind does not use stay empty.
type NetOp struct {
	Kind NetOpKind `json:"kind"`
	Link string    `json:"link,omitempty"`
	// NewName is what a rename gives the link: its pre-kexec name.
	NewName string `json:"new_name,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
	// Sysctl: Key relative to /proc/sys/net/ipv6/conf/<link>/, and Value.
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
	// Members of a bond or bridge; Parent and VLANID of a vlan; BondMode.
	Members  []string `json:"members,omitempty"`
	MAC      string   `json:"mac,omitempty"` // a bond's or bridge's old MAC (DHCP leases follow it)
	Parent   string   `json:"parent,omitempty"`
	VLANID   int      `json:"vlan_id,omitempty"`
	BondMode string   `json:"bond_mode,omitempty"`
	// Addr / DHCP: CIDR is the address to set, or the old lease to ask for.
	CIDR string `json:"cidr,omitempty"`
	// Route.
	Route *carry.Route `json:"route,omitempty"`
	// DHCP: Fallback is set when no lease comes in time; RouteMetric is the
	// metric of the lease's default route (the old one, or high for links
	// that had no configuration, so they never steal the default route).
	Fallback    []NetOp `json:"fallback,omitempty"`
	RouteMetric int     `json:"route_metric,omitempty"`
	// Carried is false for links that were not in the carry-over.
	Carried bool `json:"carried,omitempty"`
	// DNS.
	Nameservers []string `json:"nameservers,omitempty"`
	Search      []string `json:"search,omitempty"`
}

func (op NetOp) String() string {
	switch op.Kind {
	case OpRename:
		return fmt.Sprintf("rename %s -> %s", op.Link, op.NewName)
	case OpSysctl:
		return fmt.Sprintf("sysctl net.ipv6.conf.%s.%s=%s", op.Link, op.Key, op.Value)
	case OpLinkUp:
		return fmt.Sprintf("link %s mtu %d up", op.Link, op.MTU)
	case OpBond:
		return fmt.Sprintf("bond %s mode %s members %s", op.Link, op.BondMode, strings.Join(op.Members, ","))
	case OpBridge:
		return fmt.Sprintf("bridge %s members %s", op.Link, strings.Join(op.Members, ","))
	case OpVLAN:
		return fmt.Sprintf("vlan %s on %s id %d", op.Link, op.Parent, op.VLANID)
	case OpAddr:
		return fmt.Sprintf("addr %s dev %s", op.CIDR, op.Link)
	case OpRoute:
		return "route " + routeString(*op.Route, op.Link)
	case OpDHCP4:
		if op.CIDR != "" {
			return fmt.Sprintf("dhcp4 on %s asking for %s", op.Link, op.CIDR)
		}
		return fmt.Sprintf("dhcp4 on %s", op.Link)
	case OpDNS:
		return fmt.Sprintf("resolv.conf nameservers %s search %s", strings.Join(op.Nameservers, ","), strings.Join(op.Search, ","))
	}
	return string(op.Kind)
}

func routeString(r carry.Route, dev string) string {
	s := r.Dst
	if r.Gateway != "" {
		s += " via " + r.Gateway
	}
	s += " dev " + dev
	if r.OnLink {
		s += " onlink"
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	if r.Src != "" {
		s += " src " + r.Src
	}
	return s
}

// PresentLink is a link the rescue kernel has.
type PresentLink struct {
	Name string
	MAC  string
	// Kind is netlink's type: "device" for hardware; "veth" and the like
	// are accepted as hardware in tests.
	Kind string
}

// NetPlan is the whole restore: the steps and what cannot be restored.
type NetPlan struct {
	Ops []NetOp `json:"ops"`
	// Skipped says, per carried item, why it is not restored.
	Skipped []string `json:"skipped,omitempty"`
	// Names maps pre-kexec link names to rescue names.
	Names map[string]string `json:"names"`
}

// fallbackMetric is the default-route metric of links that had no carried
// configuration: they may help reach the host, but never win over it.
const fallbackMetric = 4096

// isHardwareKind tells NICs, found again by MAC, from virtual links, which
// do not survive kexec (nivis recreates only bonds, bridges and vlans).
func isHardwareKind(kind string) bool {
	switch kind {
	case "", "device", "ether":
		return true
	}
	return false
}

// PlanNetwork turns the carried network into steps for the links present
// now. Hardware links are matched by MAC, never by name. Pure: no system
// access, so every branch is tested.
func PlanNetwork(n carry.Network, present []PresentLink) NetPlan {
	pl := &netPlanner{n: n, p: NetPlan{Names: map[string]string{}}, matched: map[string]bool{}}
	hardware := pl.matchHardware(present)
	virtOps, enslaved := pl.planVirtuals()
	pl.linksUp(hardware, enslaved)
	pl.p.Ops = append(pl.p.Ops, virtOps...)
	dhcpLinks := pl.staticAddrs()
	now, afterDHCP, dhcpFallbackRoutes := pl.routes(dhcpLinks)
	pl.p.Ops = append(pl.p.Ops, sortRoutes(now)...)
	pl.dhcp(dhcpLinks, dhcpFallbackRoutes, present)
	pl.p.Ops = append(pl.p.Ops, sortRoutes(afterDHCP)...)

	// 6. DNS, without loopback stubs (systemd-resolved is not here).
	var ns []string
	for _, s := range n.DNS.Nameservers {
		if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			ns = append(ns, s)
		}
	}
	pl.p.Ops = append(pl.p.Ops, NetOp{Kind: OpDNS, Nameservers: ns, Search: n.DNS.Search})
	return pl.p
}

// netPlanner builds one NetPlan, step by step.
type netPlanner struct {
	n carry.Network
	p NetPlan
	// matched are the present names that belong to a carried link.
	matched map[string]bool
}

// matchHardware finds the carried hardware links by MAC and renames them
// back (step 1); it returns the ones found.
func (pl *netPlanner) matchHardware(present []PresentLink) []carry.Interface {
	p := &pl.p
	byMAC := map[string]PresentLink{}
	presentNames := map[string]bool{}
	for _, l := range present {
		presentNames[l.Name] = true
		if l.MAC != "" && l.Name != "lo" {
			if _, dup := byMAC[strings.ToLower(l.MAC)]; !dup {
				byMAC[strings.ToLower(l.MAC)] = l
			}
		}
	}
	var renames [][2]string
	var hardware []carry.Interface
	for _, it := range pl.n.Interfaces {
		if it.Name == "lo" || !isHardwareKind(it.Kind) {
			continue
		}
		if it.MAC == "" {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s: no MAC address was carried, cannot find it after kexec", it.Name))
			continue
		}
		l, ok := byMAC[strings.ToLower(it.MAC)]
		if !ok || pl.matched[l.Name] {
			if it.Up || len(it.Addrs) > 0 {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s (%s): no link with this MAC after kexec (driver module missing from the image?)", it.Name, it.MAC))
			}
			continue
		}
		pl.matched[l.Name] = true
		p.Names[it.Name] = l.Name
		if l.Name != it.Name {
			renames = append(renames, [2]string{l.Name, it.Name})
		}
		hardware = append(hardware, it)
	}
	p.Ops = append(p.Ops, planRenames(renames, presentNames, p.Names)...)
	return hardware
}

// planVirtuals plans the virtual links that nivis recreates, in dependency
// order: bonds and bridges over hardware, vlans over anything, bridges over
// those (step 2). It returns their steps and the links they enslave.
func (pl *netPlanner) planVirtuals() ([]NetOp, map[string]bool) {
	p := &pl.p
	var virtual []carry.Interface
	for _, it := range pl.n.Interfaces {
		switch it.Kind {
		case "bond", "bridge", "vlan":
			virtual = append(virtual, it)
		default:
			if it.Name != "lo" && !isHardwareKind(it.Kind) && (len(it.Addrs) > 0 || it.Up) {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: %s links are not recreated", it.Name, it.Kind))
			}
		}
	}
	enslaved := map[string]bool{}
	var virtOps []NetOp
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(virtual); i++ {
			it := virtual[i]
			op, ready, why := planVirtual(it, p.Names)
			if !ready {
				continue
			}
			virtual = append(virtual[:i], virtual[i+1:]...)
			i--
			progress = true
			if why != "" {
				p.Skipped = append(p.Skipped, why)
			}
			if op.Kind == "" {
				continue
			}
			p.Names[it.Name] = it.Name
			for _, m := range op.Members {
				enslaved[m] = true
			}
			virtOps = append(virtOps, op)
		}
	}
	for _, it := range virtual {
		p.Skipped = append(p.Skipped, fmt.Sprintf("%s: its %s members or parent are not present", it.Name, it.Kind))
	}
	return virtOps, enslaved
}

// linksUp switches on IPv6 autoconfiguration before any link comes up,
// then brings up the hardware links that were in use.
func (pl *netPlanner) linksUp(hardware []carry.Interface, enslaved map[string]bool) {
	p := &pl.p
	for _, it := range pl.n.Interfaces {
		name, ok := p.Names[it.Name]
		if !ok || !hasDynamic(it, 6) {
			continue
		}
		p.Ops = append(p.Ops,
			NetOp{Kind: OpSysctl, Link: name, Key: "accept_ra", Value: "1"},
			NetOp{Kind: OpSysctl, Link: name, Key: "autoconf", Value: "1"})
	}
	for _, it := range hardware {
		name := p.Names[it.Name]
		if enslaved[name] {
			continue // a bond wants its members down until they are enslaved
		}
		if !it.Up && len(it.Addrs) == 0 {
			continue // it was down and unused before: leave it so
		}
		p.Ops = append(p.Ops, NetOp{Kind: OpLinkUp, Link: name, MTU: it.MTU, Carried: true})
	}
}

// staticAddrs sets back the static addresses (step 3) and returns the
// links that had a dynamic IPv4 address.
func (pl *netPlanner) staticAddrs() map[string]bool {
	p := &pl.p
	dhcpLinks := map[string]bool{}
	for _, it := range pl.n.Interfaces {
		name, ok := p.Names[it.Name]
		if !ok {
			continue
		}
		for _, a := range it.Addrs {
			ip, _, err := net.ParseCIDR(a.CIDR)
			if err != nil {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: address %q: %v", it.Name, a.CIDR, err))
				continue
			}
			if ip.IsLinkLocalUnicast() && ip.To4() == nil {
				continue // the kernel makes its own fe80:: address
			}
			if a.Dynamic {
				if ip.To4() != nil {
					dhcpLinks[name] = true
				}
				continue
			}
			p.Ops = append(p.Ops, NetOp{Kind: OpAddr, Link: name, CIDR: a.CIDR})
		}
	}
	return dhcpLinks
}

// routes sorts the carried routes (step 4): on static links now, on DHCP
// links after the lease, and the DHCP routes as the lease's fallback.
func (pl *netPlanner) routes(dhcpLinks map[string]bool) (now, afterDHCP []NetOp, dhcpFallback map[string][]NetOp) {
	p := &pl.p
	dhcpFallback = map[string][]NetOp{}
	for _, r := range pl.n.Routes {
		if r.Proto == "kernel" || r.Proto == "ra" {
			continue // the kernel and router advertisements recreate these
		}
		if r.Dev == "" {
			p.Skipped = append(p.Skipped, fmt.Sprintf("route %s: no device (blackhole, unreachable or multipath routes are not restored)", r.Dst))
			continue
		}
		name, ok := p.Names[r.Dev]
		if !ok {
			p.Skipped = append(p.Skipped, fmt.Sprintf("route %s: its link %s is not restored", routeString(r, r.Dev), r.Dev))
			continue
		}
		rr := r
		op := NetOp{Kind: OpRoute, Link: name, Route: &rr}
		switch {
		case dhcpLinks[name] && r.Proto == "dhcp":
			dhcpFallback[name] = append(dhcpFallback[name], op)
		case dhcpLinks[name]:
			afterDHCP = append(afterDHCP, op)
		default:
			now = append(now, op)
		}
	}
	return now, afterDHCP, dhcpFallback
}

// dhcp asks for leases (step 5): on the carried links with a dynamic
// address, then on hardware links nobody configured before (a lifeline
// when the carried links were not found).
func (pl *netPlanner) dhcp(dhcpLinks map[string]bool, fallbackRoutes map[string][]NetOp, present []PresentLink) {
	p := &pl.p
	for _, it := range pl.n.Interfaces {
		name, ok := p.Names[it.Name]
		if !ok || !dhcpLinks[name] {
			continue
		}
		op := NetOp{Kind: OpDHCP4, Link: name, Carried: true}
		for _, a := range it.Addrs {
			if a.Dynamic && strings.Contains(a.CIDR, ".") {
				op.CIDR = a.CIDR
				op.Fallback = append(op.Fallback, NetOp{Kind: OpAddr, Link: name, CIDR: a.CIDR})
			}
		}
		op.Fallback = append(op.Fallback, sortRoutes(fallbackRoutes[name])...)
		op.RouteMetric = dhcpDefaultMetric(pl.n.Routes, it.Name)
		p.Ops = append(p.Ops, op)
	}
	var unknown []string
	for _, l := range present {
		if l.Name == "lo" || pl.matched[l.Name] || !isHardwareKind(l.Kind) || l.MAC == "" {
			continue
		}
		unknown = append(unknown, l.Name)
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		p.Ops = append(p.Ops,
			NetOp{Kind: OpLinkUp, Link: name},
			NetOp{Kind: OpDHCP4, Link: name, RouteMetric: fallbackMetric})
	}
}

// planRenames renames links to their old names and updates names to the
// final ones. A target name held by another link that is renamed too goes
// through a temporary name first, so swapped names (eth0 <-> eth1) work; a
// name held by a link that stays keeps the rename from happening.
func planRenames(renames [][2]string, present map[string]bool, names map[string]string) []NetOp {
	freed := map[string]bool{}
	for _, r := range renames {
		freed[r[0]] = true
	}
	var ops, second []NetOp
	for i, r := range renames {
		from, to := r[0], r[1]
		switch {
		case !present[to]:
			ops = append(ops, NetOp{Kind: OpRename, Link: from, NewName: to})
		case freed[to]:
			tmp := fmt.Sprintf("nvtmp%d", i)
			ops = append(ops, NetOp{Kind: OpRename, Link: from, NewName: tmp})
			second = append(second, NetOp{Kind: OpRename, Link: tmp, NewName: to})
		default:
			continue // names[to] keeps pointing at the current name
		}
		names[to] = to
	}
	return append(ops, second...)
}

// planVirtual plans one bond, bridge or vlan. ready is false while a link
// it needs may still be created by another virtual link; why is set when
// it cannot be created at all.
func planVirtual(it carry.Interface, names map[string]string) (op NetOp, ready bool, why string) {
	switch it.Kind {
	case "vlan":
		parent, ok := names[it.Parent]
		if !ok {
			return op, false, ""
		}
		return NetOp{Kind: OpVLAN, Link: it.Name, Parent: parent, VLANID: it.VLANID, MTU: it.MTU, Carried: true}, true, ""
	default: // bond, bridge
		var members, missing []string
		for _, s := range it.Slaves {
			if m, ok := names[s]; ok {
				members = append(members, m)
			} else {
				missing = append(missing, s)
			}
		}
		if len(members) == 0 {
			if len(it.Slaves) == 0 {
				return op, true, fmt.Sprintf("%s: %s without members (not recreated)", it.Name, it.Kind)
			}
			return op, false, ""
		}
		kind := OpBridge
		op = NetOp{Kind: kind, Link: it.Name, Members: members, MAC: it.MAC, MTU: it.MTU, Carried: true}
		if it.Kind == "bond" {
			op.Kind = OpBond
			// The mode is not carried; active-backup works without any
			// switch configuration, unlike 802.3ad.
			op.BondMode = "active-backup"
		}
		if len(missing) > 0 {
			why = fmt.Sprintf("%s: members %s are not present; created with %s only", it.Name, strings.Join(missing, ","), strings.Join(members, ","))
		}
		return op, true, why
	}
}

func hasDynamic(it carry.Interface, family int) bool {
	for _, a := range it.Addrs {
		ip, _, err := net.ParseCIDR(a.CIDR)
		if err != nil || !a.Dynamic {
			continue
		}
		if (family == 4) == (ip.To4() != nil) && !(family == 6 && ip.IsLinkLocalUnicast()) {
			return true
		}
	}
	return false
}

// dhcpDefaultMetric is the metric the old DHCP client gave its default
// route on dev (systemd-networkd: 1024, NetworkManager: 100). Without such
// a route (ifupdown's dhclient adds it as proto boot, which is restored
// like a static route) the lease's default route gets fallbackMetric, so
// it never displaces a carried one.
func dhcpDefaultMetric(routes []carry.Route, dev string) int {
	for _, r := range routes {
		if r.Dev == dev && r.Family == 4 && r.Dst == "default" && r.Proto == "dhcp" {
			return r.Metric
		}
	}
	return fallbackMetric
}

// sortRoutes orders routes so each one's gateway is reachable when it is
// added: routes without a gateway first, then onlink gateways, then the
// rest; default routes last within each group.
func sortRoutes(ops []NetOp) []NetOp {
	rank := func(r *carry.Route) int {
		n := 0
		switch {
		case r.Gateway == "":
		case r.OnLink:
			n = 2
		default:
			n = 4
		}
		if r.Dst == "default" {
			n++
		}
		return n
	}
	out := append([]NetOp(nil), ops...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Route) < rank(out[j].Route) })
	return out
}
