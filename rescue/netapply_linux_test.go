//go:build linux

package rescue

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
)

// requireRoot skips a test that needs root, unless NIVIS_REQUIRE_ROOT=1
// says it must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
			t.Fatal("needs root (NIVIS_REQUIRE_ROOT=1 is set)")
		}
		t.Skip("needs root: creates a network namespace")
	}
}

const netnsChildEnv = "NIVIS_RESCUE_NETNS_CHILD"

// TestNetworkRestoreInNetns runs TestNetnsChild in a fresh network
// namespace (a child process, so no thread of this one changes netns).
func TestNetworkRestoreInNetns(t *testing.T) {
	requireRoot(t)
	if os.Getenv(netnsChildEnv) != "" {
		t.Skip("this is the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNetnsChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("child in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestNetnsChild") {
		t.Fatal("the child test did not pass")
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// vethPair makes name (the "host's NIC", with mac) and its peer, the
// peer up with peerAddr.
func vethPair(t *testing.T, name, mac, peer, peerAddr string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mustMAC(mac)}, PeerName: peer}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	p, err := netlink.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(peerAddr) {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(p, addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(p); err != nil {
		t.Fatal(err)
	}
}

// dhcpServer answers on iface: with the requested address when sticky,
// else always with pool.
func dhcpServer(t *testing.T, iface, serverIP, pool string, sticky bool) {
	t.Helper()
	sip := net.ParseIP(serverIP).To4()
	handler := func(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
		default:
			return
		}
		ip := net.ParseIP(pool).To4()
		if req := m.RequestedIPAddress(); sticky && req != nil {
			ip = req
		}
		reply, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(ip), dhcpv4.WithServerIP(sip),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(sip), dhcpv4.WithDNS(sip),
			dhcpv4.WithLeaseTime(3600), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sip)))
		if err != nil {
			return
		}
		_, _ = conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
	s, err := server4.NewServer(iface, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
	if err != nil {
		t.Fatalf("dhcp server on %s: %v", iface, err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
}

func TestNetnsChild(t *testing.T) {
	if os.Getenv(netnsChildEnv) == "" {
		t.Skip("runs inside the network namespace TestNetworkRestoreInNetns makes")
	}
	lo, _ := netlink.LinkByName("lo")
	netlink.LinkSetUp(lo)
	// The "NICs" keep their MACs; their names differ from the carried ones,
	// as after kexec.
	// Gateways are not the peers' own addresses: in one namespace those
	// are local, and the kernel refuses a local gateway.
	vethPair(t, "eth0", "02:00:00:00:00:01", "peer0", "192.0.2.2/24 2001:db8::2/64")
	vethPair(t, "eth1", "02:00:00:00:01:01", "peer1", "10.77.0.1/24")
	vethPair(t, "eth2", "02:00:00:00:02:01", "peer2", "10.78.0.1/24")
	vethPair(t, "eth3", "02:00:00:00:03:01", "peer3", "10.79.0.1/24")
	vethPair(t, "eth4", "02:00:00:00:04:01", "peer4", "192.168.77.1/24")
	dhcpServer(t, "peer1", "10.77.0.1", "10.77.0.99", true)  // gives the old address back
	dhcpServer(t, "peer2", "10.78.0.1", "10.78.0.77", false) // gives another one
	// peer3 has no DHCP server: the old lease is set statically.

	n := carry.Network{
		Interfaces: []carry.Interface{
			{Name: "ens3", MAC: "02:00:00:00:00:01", MTU: 1400, Up: true, Addrs: []carry.Addr{
				{CIDR: "192.0.2.10/32"}, {CIDR: "2001:db8::10/64"}, {CIDR: "2001:db8:5::10/64", Dynamic: true},
			}},
			{Name: "ens4", MAC: "02:00:00:00:01:01", Up: true, Addrs: []carry.Addr{{CIDR: "10.77.0.50/24", Dynamic: true}}},
			{Name: "ens5", MAC: "02:00:00:00:02:01", Up: true, Addrs: []carry.Addr{{CIDR: "10.78.0.50/24", Dynamic: true}}},
			{Name: "ens6", MAC: "02:00:00:00:03:01", Up: true, Addrs: []carry.Addr{{CIDR: "10.79.0.50/24", Dynamic: true}}},
			// A bridge over a NIC (Proxmox style): recreated with its MAC.
			{Name: "enp7s0", MAC: "02:00:00:00:04:01", Up: true},
			{Name: "vmbr0", Kind: "bridge", MAC: "02:00:00:00:04:99", Slaves: []string{"enp7s0"}, Up: true, Addrs: []carry.Addr{{CIDR: "192.168.77.5/24"}}},
		},
		Routes: []carry.Route{
			// Hetzner style: a /32 and an onlink gateway outside it.
			{Family: 4, Dst: "default", Gateway: "192.0.2.254", Dev: "ens3", OnLink: true, Proto: "static"},
			{Family: 4, Dst: "198.51.100.0/24", Dev: "ens3", Proto: "boot"},
			{Family: 4, Dst: "203.0.113.0/24", Gateway: "2001:db8::fe", Dev: "ens3", Proto: "static"},
			{Family: 6, Dst: "default", Gateway: "2001:db8::fe", Dev: "ens3", Proto: "static", Metric: 1024},
			{Family: 6, Dst: "2001:db8::/64", Dev: "ens3", Proto: "kernel"},
			{Family: 4, Dst: "default", Gateway: "10.77.0.1", Dev: "ens4", Proto: "dhcp", Metric: 100},
			{Family: 4, Dst: "default", Gateway: "10.79.0.1", Dev: "ens6", Proto: "dhcp", Metric: 300},
			{Family: 4, Dst: "172.16.0.0/12", Gateway: "10.77.0.254", Dev: "ens4", Proto: "static"},
			{Family: 4, Dst: "192.168.0.0/16", Gateway: "192.168.77.254", Dev: "vmbr0", Proto: "boot"},
		},
		DNS: carry.DNS{Nameservers: []string{"127.0.0.53", "9.9.9.9"}, Search: []string{"example.net"}},
	}
	present, err := presentLinks()
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanNetwork(n, present)
	for _, op := range plan.Ops {
		t.Logf("plan: %s", op)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	start := time.Now()
	res := applyNetPlan(context.Background(), plan, netApplyOptions{
		Hostname: "rescued", DHCPTimeout: 6 * time.Second, UnknownDHCPTimeout: 2 * time.Second,
		CarrierTimeout: 3 * time.Second, ResolvConf: resolv, Logf: t.Logf,
	})
	t.Logf("restore took %s", time.Since(start))

	// ens6 had no DHCP server: exactly that failure, nothing else.
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "dhcp4 on ens6") {
		t.Errorf("failures: %q", res.Failures)
	}
	if len(res.AddressChanges) != 1 || res.AddressChanges[0] != (AddressChange{Link: "ens5", Old: "10.78.0.50/24", New: "10.78.0.77/24"}) {
		t.Errorf("address changes: %+v", res.AddressChanges)
	}

	link := func(name, mac string, mtu int) netlink.Link {
		t.Helper()
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
		if l.Attrs().HardwareAddr.String() != mac || l.Attrs().Flags&net.FlagUp == 0 || (mtu > 0 && l.Attrs().MTU != mtu) {
			t.Errorf("%s: mac %s flags %v mtu %d", name, l.Attrs().HardwareAddr, l.Attrs().Flags, l.Attrs().MTU)
		}
		return l
	}
	hasAddr := func(l netlink.Link, cidr string) {
		t.Helper()
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if a.IPNet.String() == cidr {
				return
			}
		}
		t.Errorf("%s lacks %s (has %v)", l.Attrs().Name, cidr, addrs)
	}
	ens3 := link("ens3", "02:00:00:00:00:01", 1400)
	hasAddr(ens3, "192.0.2.10/32")
	hasAddr(ens3, "2001:db8::10/64")
	ens4 := link("ens4", "02:00:00:00:01:01", 0)
	hasAddr(ens4, "10.77.0.50/24")
	ens5 := link("ens5", "02:00:00:00:02:01", 0)
	hasAddr(ens5, "10.78.0.77/24")
	ens6 := link("ens6", "02:00:00:00:03:01", 0)
	hasAddr(ens6, "10.79.0.50/24")
	vmbr0 := link("vmbr0", "02:00:00:00:04:99", 0)
	hasAddr(vmbr0, "192.168.77.5/24")
	if port := link("enp7s0", "02:00:00:00:04:01", 0); port.Attrs().MasterIndex != vmbr0.Attrs().Index {
		t.Errorf("enp7s0 is not in vmbr0")
	}

	routes := func(fam int) []string {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		names := map[int]string{}
		ls, _ := netlink.LinkList()
		for _, l := range ls {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		var out []string
		for _, r := range rs {
			s := "default"
			if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
				s = r.Dst.String()
			}
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			if v, ok := r.Via.(*netlink.Via); ok {
				s += " via " + v.Addr.String()
			}
			s += " dev " + names[r.LinkIndex]
			if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
				s += " onlink"
			}
			if r.Priority != 0 {
				s += " metric " + strconv.Itoa(r.Priority)
			}
			out = append(out, s)
		}
		return out
	}
	v4, v6 := strings.Join(routes(netlink.FAMILY_V4), "\n"), strings.Join(routes(netlink.FAMILY_V6), "\n")
	t.Logf("IPv4 routes:\n%s\nIPv6 routes:\n%s", v4, v6)
	for _, want := range []string{
		"default via 192.0.2.254 dev ens3 onlink",
		"default via 10.77.0.1 dev ens4 metric 100",
		"default via 10.79.0.1 dev ens6 metric 300", // the fallback of the lost lease
		"default via 10.78.0.1 dev ens5 metric 4096",
		"198.51.100.0/24 dev ens3",
		"203.0.113.0/24 via 2001:db8::fe dev ens3",
		"172.16.0.0/12 via 10.77.0.254 dev ens4",
		"192.168.0.0/16 via 192.168.77.254 dev vmbr0",
	} {
		if !strings.Contains(v4+"\n", want+"\n") {
			t.Errorf("IPv4 route missing: %s", want)
		}
	}
	if !strings.Contains(v6, "default via 2001:db8::fe dev ens3 metric 1024") {
		t.Errorf("IPv6 default route missing")
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/ens3/accept_ra"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("accept_ra on ens3 = %q", b)
	}
	b, _ := os.ReadFile(resolv)
	if !strings.Contains(string(b), "nameserver 9.9.9.9\nsearch example.net\n") || strings.Contains(string(b), "127.0.0.53") {
		t.Errorf("resolv.conf:\n%s", b)
	}
}
