//go:build linux

package facts

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lifetimeForever is INFINITY_LIFE_TIME in the kernel's address cache info.
const lifetimeForever = 0xFFFFFFFF

func (g *gatherer) network() {
	n := &g.f.Network
	n.Interfaces = []Interface{}
	n.Routes = []Route{}
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		g.networkFailed("network: list links: %v", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		it := Interface{
			Name:      a.Name,
			Index:     a.Index,
			MAC:       a.HardwareAddr.String(),
			MTU:       a.MTU,
			Flags:     flagWords(a.Flags),
			OperState: a.OperState.String(),
			Kind:      l.Type(),
			Master:    names[a.MasterIndex],
			Driver:    g.netDriver(a.Name),
			Addresses: []Address{},
		}
		if len(a.PermHWAddr) > 0 && a.PermHWAddr.String() != it.MAC {
			it.PermanentMAC = a.PermHWAddr.String()
		}
		switch v := l.(type) {
		case *netlink.Vlan:
			it.VLANID = v.VlanId
			it.Parent = names[a.ParentIndex]
		case *netlink.Bond:
			it.BondMode = v.Mode.String()
		}
		if it.Kind != "vlan" && a.ParentIndex != 0 && a.ParentIndex != a.Index {
			it.Parent = names[a.ParentIndex] // macvlan, ipvlan
		}
		for _, o := range links {
			if o.Attrs().MasterIndex == a.Index {
				it.Slaves = append(it.Slaves, o.Attrs().Name)
			}
		}
		sort.Strings(it.Slaves)
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			g.networkFailed("network: addresses of %s: %v", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IPNet == nil {
				continue
			}
			fam := 6
			if ad.IP.To4() != nil {
				fam = 4
			}
			it.Addresses = append(it.Addresses, Address{
				CIDR:              ad.IPNet.String(),
				Family:            fam,
				Scope:             scopeName(netlink.Scope(ad.Scope)),
				Dynamic:           ad.Flags&unix.IFA_F_PERMANENT == 0,
				PreferredLifetime: lifetime(ad.PreferedLft),
				ValidLifetime:     lifetime(ad.ValidLft),
			})
		}
		n.Interfaces = append(n.Interfaces, it)
	}
	sort.Slice(n.Interfaces, func(i, j int) bool { return n.Interfaces[i].Index < n.Interfaces[j].Index })

	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			g.networkFailed("network: routes (family %d): %v", fam, err)
		}
		for _, r := range routes {
			n.Routes = append(n.Routes, convertRoute(r, fam, names))
		}
	}
	n.DNS = g.dns()
}

// networkFailed warns, and keeps the first failure for Facts.NetworkError.
func (g *gatherer) networkFailed(format string, args ...any) {
	g.warnf(format, args...)
	if g.f.networkErr == nil {
		g.f.networkErr = fmt.Errorf(format, args...)
	}
}

// retryDump repeats a netlink dump the kernel interrupted because the
// table changed meanwhile; the last partial answer is kept.
func retryDump[T any](f func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range 3 {
		out, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

func convertRoute(r netlink.Route, fam int, names map[int]string) Route {
	out := Route{
		Family: 4,
		Dev:    names[r.LinkIndex],
		OnLink: r.Flags&int(netlink.FLAG_ONLINK) != 0,
		Metric: r.Priority,
		Proto:  r.Protocol.String(),
		Scope:  scopeName(r.Scope),
		Table:  r.Table,
	}
	if fam == netlink.FAMILY_V6 {
		out.Family = 6
	}
	if r.Dst == nil {
		out.Dst, out.Default = "default", true
	} else if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.Dst.IP.IsUnspecified() {
		out.Dst, out.Default = "default", true
	} else {
		out.Dst = r.Dst.String()
	}
	out.Gateway = gatewayOf(r.Gw, r.Via)
	if r.Src != nil {
		out.Src = r.Src.String()
	}
	if r.Type != unix.RTN_UNICAST {
		out.Type = routeTypeName(r.Type)
	}
	for _, nh := range r.MultiPath {
		out.Nexthops = append(out.Nexthops, Nexthop{
			Gateway: gatewayOf(nh.Gw, nh.Via),
			Dev:     names[nh.LinkIndex],
			OnLink:  nh.Flags&int(netlink.FLAG_ONLINK) != 0,
			Weight:  nh.Hops + 1,
		})
	}
	return out
}

// gatewayOf prefers the plain gateway and falls back to RTA_VIA (an IPv4
// route via an IPv6 gateway).
func gatewayOf(gw net.IP, via netlink.Destination) string {
	if gw != nil {
		return gw.String()
	}
	if v, ok := via.(*netlink.Via); ok && v != nil && v.Addr != nil {
		return v.Addr.String()
	}
	return ""
}

func routeTypeName(t int) string {
	switch t {
	case unix.RTN_LOCAL:
		return "local"
	case unix.RTN_BROADCAST:
		return "broadcast"
	case unix.RTN_MULTICAST:
		return "multicast"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_THROW:
		return "throw"
	}
	return "type-" + strconv.Itoa(t)
}

// scopeName uses iproute2's names ("global", "link", "host").
func scopeName(s netlink.Scope) string {
	switch s {
	case netlink.SCOPE_UNIVERSE:
		return "global"
	case netlink.SCOPE_SITE:
		return "site"
	case netlink.SCOPE_LINK:
		return "link"
	case netlink.SCOPE_HOST:
		return "host"
	case netlink.SCOPE_NOWHERE:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

func lifetime(v int) int64 {
	if uint32(v) == lifetimeForever {
		return -1
	}
	return int64(v)
}

// flagWords spells net.Flags as words ("up", "broadcast", ...), stable.
func flagWords(f net.Flags) []string {
	out := []string{}
	if f == 0 {
		return out
	}
	for _, w := range strings.Split(f.String(), "|") {
		if w != "" && w != "0" {
			out = append(out, w)
		}
	}
	return out
}

// netDriver names the kernel driver bound to a link's device (virtio_net),
// which the rescue image must carry to bring the link up after kexec.
func (g *gatherer) netDriver(name string) string {
	target, err := os.Readlink(g.p("/sys/class/net/" + name + "/device/driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func (g *gatherer) dns() DNS {
	d := DNS{Nameservers: []string{}, Search: []string{}}
	var main, resolved *ResolvConf
	for _, p := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		data, ok := g.read(p)
		if !ok {
			continue
		}
		rc := parseResolvConf(data)
		rc.Path = p
		if t, err := os.Readlink(g.p(p)); err == nil {
			rc.Target = t
		}
		d.Sources = append(d.Sources, rc)
	}
	for i := range d.Sources {
		switch d.Sources[i].Path {
		case "/etc/resolv.conf":
			main = &d.Sources[i]
		default:
			resolved = &d.Sources[i]
		}
	}
	use := main
	if resolved != nil && (main == nil || allStub(main.Nameservers)) {
		use = resolved
	}
	if use == nil {
		g.warnf("dns: no /etc/resolv.conf")
		return d
	}
	d.Nameservers = append(d.Nameservers, use.Nameservers...)
	d.Search = append(d.Search, use.Search...)
	if len(d.Search) == 0 && main != nil {
		d.Search = append(d.Search, main.Search...)
	}
	return d
}
