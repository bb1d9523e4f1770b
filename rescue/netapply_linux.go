//go:build linux

package rescue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
)

// netApplyOptions are the edges of a network restore.
type netApplyOptions struct {
	Hostname string
	// DHCPTimeout bounds a carried link's DHCP; UnknownDHCPTimeout that
	// of links that were not configured before.
	DHCPTimeout        time.Duration
	UnknownDHCPTimeout time.Duration
	// CarrierTimeout bounds the wait for a link's carrier before DHCP.
	CarrierTimeout time.Duration
	ResolvConf     string // /etc/resolv.conf
	Logf           func(format string, args ...any)
	// Renew keeps leases renewed until this context ends (nil: no renewal).
	Renew context.Context
}

// netResult is what a restore did not manage, and what changed.
type netResult struct {
	Failures       []string
	AddressChanges []AddressChange
	Leases         []*dhcpLease
}

// presentLinks lists the kernel's links for PlanNetwork.
func presentLinks() ([]PresentLink, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []PresentLink
	for _, l := range links {
		a := l.Attrs()
		out = append(out, PresentLink{Name: a.Name, MAC: a.HardwareAddr.String(), Kind: l.Type()})
	}
	return out, nil
}

// applier runs a NetPlan's steps against the kernel. A failed step is
// recorded and the rest still run: half a network beats none.
type applier struct {
	o   netApplyOptions
	ctx context.Context
	mu  sync.Mutex
	res netResult
	// actual maps a planned link name to the real one when a rename
	// failed.
	actual map[string]string
	// failedRoutes get a second try after everything else.
	failedRoutes []NetOp
	dhcpDNS      []string
	dhcpSearch   []string
}

func applyNetPlan(ctx context.Context, p NetPlan, o netApplyOptions) netResult {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	a := &applier{o: o, ctx: ctx, actual: map[string]string{}}
	for i := 0; i < len(p.Ops); i++ {
		op := p.Ops[i]
		if op.Kind == OpDHCP4 {
			// Consecutive DHCP steps run at once: each may wait long.
			j := i
			for j < len(p.Ops) && p.Ops[j].Kind == OpDHCP4 {
				j++
			}
			a.dhcpGroup(p.Ops[i:j])
			i = j - 1
			continue
		}
		if op.Kind == OpDNS && len(a.failedRoutes) > 0 {
			a.retryRoutes()
		}
		if err := a.apply(op); err != nil {
			if op.Kind == OpRoute {
				a.failedRoutes = append(a.failedRoutes, op)
				continue
			}
			a.fail("%s: %v", op, err)
		}
	}
	a.retryRoutes()
	return a.res
}

func (a *applier) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.o.Logf("network: %s", msg)
	a.mu.Lock()
	a.res.Failures = append(a.res.Failures, msg)
	a.mu.Unlock()
}

func (a *applier) retryRoutes() {
	rs := a.failedRoutes
	a.failedRoutes = nil
	for _, op := range rs {
		if err := a.apply(op); err != nil {
			a.fail("%s: %v", op, err)
		}
	}
}

func (a *applier) link(name string) (netlink.Link, error) {
	if real, ok := a.actual[name]; ok {
		name = real
	}
	return netlink.LinkByName(name)
}

func (a *applier) apply(op NetOp) error {
	switch op.Kind {
	case OpRename:
		l, err := a.link(op.Link)
		if err != nil {
			return err
		}
		// A link must be down to be renamed; after kexec it is.
		_ = netlink.LinkSetDown(l)
		if err := netlink.LinkSetName(l, op.NewName); err != nil {
			a.actual[op.NewName] = l.Attrs().Name
			return err
		}
		return nil
	case OpSysctl:
		name := op.Link
		if real, ok := a.actual[name]; ok {
			name = real
		}
		p := filepath.Join("/proc/sys/net/ipv6/conf", name, op.Key)
		return os.WriteFile(p, []byte(op.Value), 0o644)
	case OpLinkUp:
		l, err := a.link(op.Link)
		if err != nil {
			return err
		}
		if op.MTU > 0 && l.Attrs().MTU != op.MTU {
			if err := netlink.LinkSetMTU(l, op.MTU); err != nil {
				a.fail("%s: mtu %d: %v", op.Link, op.MTU, err)
			}
		}
		return netlink.LinkSetUp(l)
	case OpVLAN:
		parent, err := a.link(op.Parent)
		if err != nil {
			return err
		}
		_ = netlink.LinkSetUp(parent)
		v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: op.Link, ParentIndex: parent.Attrs().Index, MTU: op.MTU}, VlanId: op.VLANID}
		if err := netlink.LinkAdd(v); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		l, err := netlink.LinkByName(op.Link)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	case OpBond, OpBridge:
		return a.master(op)
	case OpAddr:
		l, err := a.link(op.Link)
		if err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(op.CIDR)
		if err != nil {
			return err
		}
		if addr.IP.To4() == nil {
			// The address was this host's a moment ago: duplicate address
			// detection would only hold it back for a second or two.
			addr.Flags |= unix.IFA_F_NODAD
		}
		return netlink.AddrReplace(l, addr)
	case OpRoute:
		l, err := a.link(op.Link)
		if err != nil {
			return err
		}
		r, err := netlinkRoute(*op.Route, l.Attrs().Index)
		if err != nil {
			return err
		}
		err = netlink.RouteReplace(r)
		if err != nil && r.Src != nil {
			// The preferred source may not be back (a lease that moved).
			r.Src = nil
			if err2 := netlink.RouteReplace(r); err2 == nil {
				a.fail("%s: added without its source address: %v", op, err)
				return nil
			}
		}
		return err
	case OpDNS:
		ns, search := op.Nameservers, op.Search
		if len(ns) == 0 {
			ns = a.dhcpDNS
		}
		if len(search) == 0 {
			search = a.dhcpSearch
		}
		return writeResolvConf(a.o.ResolvConf, ns, search)
	}
	return fmt.Errorf("unknown step %q", op.Kind)
}

// master creates a bond or bridge and enslaves its members.
func (a *applier) master(op NetOp) error {
	attrs := netlink.LinkAttrs{Name: op.Link, MTU: op.MTU}
	var link netlink.Link
	if op.Kind == OpBond {
		b := netlink.NewLinkBond(attrs)
		b.Mode = netlink.StringToBondMode(op.BondMode)
		b.Miimon = 100
		link = b
	} else {
		link = &netlink.Bridge{LinkAttrs: attrs}
	}
	if err := netlink.LinkAdd(link); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	m, err := netlink.LinkByName(op.Link)
	if err != nil {
		return err
	}
	for _, name := range op.Members {
		l, err := a.link(name)
		if err != nil {
			a.fail("%s: member %s: %v", op.Link, name, err)
			continue
		}
		_ = netlink.LinkSetDown(l) // bonds take only members that are down
		if err := netlink.LinkSetMaster(l, m); err != nil {
			a.fail("%s: enslave %s: %v", op.Link, name, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			a.fail("%s: member %s up: %v", op.Link, name, err)
		}
	}
	if op.MAC != "" {
		// DHCP servers and switches know the old MAC.
		if hw, err := net.ParseMAC(op.MAC); err == nil {
			if err := netlink.LinkSetHardwareAddr(m, hw); err != nil {
				a.fail("%s: mac %s: %v", op.Link, op.MAC, err)
			}
		}
	}
	return netlink.LinkSetUp(m)
}

// netlinkRoute converts a carried route for the link with index idx.
func netlinkRoute(r carry.Route, idx int) (*netlink.Route, error) {
	nr := &netlink.Route{LinkIndex: idx, Priority: r.Metric, Protocol: unix.RTPROT_STATIC, Family: netlink.FAMILY_V4}
	if r.Family == 6 {
		nr.Family = netlink.FAMILY_V6
	}
	if r.Dst != "default" && r.Dst != "" {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			if ip := net.ParseIP(r.Dst); ip != nil {
				bits := 32
				if ip.To4() == nil {
					bits = 128
				}
				dst = &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
			} else {
				return nil, fmt.Errorf("destination %q: %w", r.Dst, err)
			}
		}
		nr.Dst = dst
	}
	if r.Gateway != "" {
		gw := net.ParseIP(r.Gateway)
		if gw == nil {
			return nil, fmt.Errorf("gateway %q is not an address", r.Gateway)
		}
		if (gw.To4() == nil) != (r.Family == 6) {
			// An IPv4 route via an IPv6 gateway (RFC 5549).
			fam := netlink.FAMILY_V6
			if gw.To4() != nil {
				fam = netlink.FAMILY_V4
			}
			nr.Via = &netlink.Via{AddrFamily: fam, Addr: gw}
		} else {
			nr.Gw = gw
		}
	} else if r.Family != 6 {
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if r.Src != "" {
		nr.Src = net.ParseIP(r.Src)
	}
	return nr, nil
}

// dhcpGroup runs DHCP on several links at once.
func (a *applier) dhcpGroup(ops []NetOp) {
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.dhcp(op)
		}()
	}
	wg.Wait()
}

func (a *applier) dhcp(op NetOp) {
	timeout := a.o.DHCPTimeout
	if !op.Carried {
		timeout = a.o.UnknownDHCPTimeout
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	defer cancel()
	name := op.Link
	a.mu.Lock()
	if real, ok := a.actual[name]; ok {
		name = real
	}
	a.mu.Unlock()
	var want net.IP
	if op.CIDR != "" {
		want, _, _ = net.ParseCIDR(op.CIDR)
	}
	err := waitCarrier(ctx, name, a.o.CarrierTimeout)
	var lease *dhcpLease
	if err == nil {
		lease, err = dhcpAcquire(ctx, name, a.o.Hostname, want)
	}
	if err == nil {
		var l netlink.Link
		if l, err = netlink.LinkByName(name); err == nil {
			err = lease.configure(l, op.RouteMetric)
		}
		if err != nil {
			lease.client.Close()
		}
	}
	if err != nil {
		if !op.Carried {
			a.o.Logf("network: %s had no configuration before and got no DHCP lease: %v", name, err)
			return
		}
		a.fail("%s: %v", op, err)
		if len(op.Fallback) > 0 {
			a.o.Logf("network: %s: no lease; setting the previous address and routes statically", name)
			for _, f := range op.Fallback {
				if err := a.apply(f); err != nil {
					a.fail("fallback %s: %v", f, err)
				}
			}
		}
		return
	}
	got := lease.addr()
	a.o.Logf("network: %s: DHCP lease %s", name, got)
	servers, search := lease.dns()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.res.Leases = append(a.res.Leases, lease)
	a.dhcpDNS = append(a.dhcpDNS, servers...)
	a.dhcpSearch = append(a.dhcpSearch, search...)
	if want != nil && !got.IP.Equal(want) {
		ch := AddressChange{Link: name, Old: op.CIDR, New: got.String()}
		a.res.AddressChanges = append(a.res.AddressChanges, ch)
		a.o.Logf("network: ATTENTION: %s was %s before kexec; DHCP gave %s: connect to the new address", name, ch.Old, ch.New)
	}
	if a.o.Renew != nil {
		go lease.keepRenewed(a.o.Renew, a.o.Logf)
	} else {
		lease.client.Close()
	}
}

// waitCarrier waits (bounded) for a link to report carrier: DHCP sent
// into a link still negotiating is lost.
func waitCarrier(ctx context.Context, name string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		l, err := netlink.LinkByName(name)
		if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has no carrier (cable, switch port?)", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func writeResolvConf(path string, servers, search []string) error {
	var b strings.Builder
	b.WriteString("# written by the nivis rescue system from the host's previous resolver settings\n")
	seen := map[string]bool{}
	for _, s := range servers {
		if !seen[s] {
			seen[s] = true
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// /etc/resolv.conf may be a dangling symlink into /run/systemd: replace it.
	_ = os.Remove(path)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
