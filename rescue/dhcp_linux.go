//go:build linux

package rescue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dhcpLease is a DHCPv4 lease and the client that keeps it renewed.
type dhcpLease struct {
	link   string
	client *nclient4.Client
	lease  *nclient4.Lease
	metric int // of the default route
}

func (l *dhcpLease) addr() *net.IPNet {
	ack := l.lease.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	return &net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}
}

// dhcpAcquire asks for a lease on link, for want when it is set (option
// 50: servers that remember the host give its old address back).
func dhcpAcquire(ctx context.Context, link, hostname string, want net.IP) (*dhcpLease, error) {
	c, err := nclient4.New(link, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", link, err)
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithRequestedOptions(
			dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute),
	}
	if hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(hostname)))
	}
	if want != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want)))
	}
	for {
		lease, err := c.Request(ctx, mods...)
		if err == nil {
			return &dhcpLease{link: link, client: c, lease: lease}, nil
		}
		if ctx.Err() != nil {
			c.Close()
			return nil, fmt.Errorf("dhcp on %s: no lease: %w", link, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// configure sets the lease's address and routes on the link. metric is
// the default route's metric.
func (l *dhcpLease) configure(link netlink.Link, metric int) error {
	l.metric = metric
	a := l.addr()
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: a}); err != nil {
		return fmt.Errorf("dhcp address %s on %s: %w", a, l.link, err)
	}
	ack := l.lease.ACK
	var routes []netlink.Route
	// RFC 3442: classless static routes, when present, replace the router
	// option.
	if cr := ack.ClasslessStaticRoute(); len(cr) > 0 {
		for _, r := range cr {
			nr := netlink.Route{LinkIndex: link.Attrs().Index, Dst: r.Dest, Gw: r.Router, Protocol: unix.RTPROT_DHCP, Family: netlink.FAMILY_V4}
			if r.Router == nil || r.Router.IsUnspecified() {
				nr.Gw, nr.Scope = nil, netlink.SCOPE_LINK
			} else if !a.Contains(r.Router) {
				nr.Flags = int(netlink.FLAG_ONLINK)
			}
			if ones, _ := r.Dest.Mask.Size(); ones == 0 {
				nr.Priority = metric
			}
			routes = append(routes, nr)
		}
	} else if gw := ack.Router(); len(gw) > 0 {
		nr := netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw[0], Priority: metric, Protocol: unix.RTPROT_DHCP, Family: netlink.FAMILY_V4}
		if !a.Contains(gw[0]) {
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
		routes = append(routes, nr)
	}
	for _, r := range routes {
		// Add, not replace: a carried route with the same destination and
		// metric (on this or another link) wins over the lease's.
		if err := netlink.RouteAdd(&r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("dhcp route %s on %s: %w", r, l.link, err)
		}
	}
	return nil
}

// dns is what the lease says about name resolution.
func (l *dhcpLease) dns() (servers, search []string) {
	ack := l.lease.ACK
	for _, s := range ack.DNS() {
		servers = append(servers, s.String())
	}
	if ds := ack.DomainSearch(); ds != nil {
		search = append(search, ds.Labels...)
	} else if d := ack.DomainName(); d != "" {
		search = append(search, d)
	}
	return servers, search
}

// keepRenewed renews the lease at half its time until ctx ends: a rescue
// session can outlast a short lease. The address stays set even when
// renewals fail; the rescue system is temporary.
func (l *dhcpLease) keepRenewed(ctx context.Context, logf func(string, ...any)) {
	defer l.client.Close()
	for {
		wait := l.lease.ACK.IPAddressLeaseTime(time.Hour) / 2
		wait = max(wait, 30*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		nl, err := l.client.Renew(rctx, l.lease)
		cancel()
		if err != nil {
			logf("dhcp renewal on %s failed: %v; keeping %s", l.link, err, l.addr())
			continue
		}
		old := l.addr().String()
		l.lease = nl
		if now := l.addr().String(); now != old {
			logf("dhcp renewal on %s moved the address from %s to %s", l.link, old, now)
			if link, err := netlink.LinkByName(l.link); err == nil {
				_ = l.configure(link, l.metric)
			}
		}
	}
}
