//go:build linux

package facts

import (
	"net"
	"os"
	"reflect"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, or fails it when the run
// demands root tests (NIVIS_REQUIRE_ROOT=1).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatal("needs root to create a network namespace, and NIVIS_REQUIRE_ROOT=1")
	}
	t.Skip("needs root to create a network namespace")
}

// TestNetworkInNamespace builds links, addresses and routes in a fresh
// network namespace with netlink, then checks the gatherer reads them back:
// bridge slaves, macvlan parent, static vs dynamic addresses with their
// lifetimes, default and onlink routes, a blackhole route.
func TestNetworkInNamespace(t *testing.T) {
	requireRoot(t)
	runtime.LockOSThread() // the namespace belongs to this thread only
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("new netns: %v", err)
	}
	defer func() {
		ns.Close()
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the original netns: %v", err) // thread stays locked and dies with the test
			return
		}
		runtime.UnlockOSThread()
	}()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:10")
	v0 := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0", MTU: 1450, HardwareAddr: mac}, PeerName: "v1"}
	must("add veth", netlink.LinkAdd(v0))
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	must("add bridge", netlink.LinkAdd(br))
	v1, err := netlink.LinkByName("v1")
	must("v1", err)
	must("enslave v1", netlink.LinkSetMaster(v1, br))
	v0l, err := netlink.LinkByName("v0")
	must("v0", err)
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mv0", ParentIndex: v0l.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	must("add macvlan", netlink.LinkAdd(mv))
	for _, l := range []netlink.Link{v0l, v1, br} {
		must("up", netlink.LinkSetUp(l))
	}
	static, _ := netlink.ParseAddr("192.0.2.10/24")
	must("static addr", netlink.AddrAdd(v0l, static))
	dyn, _ := netlink.ParseAddr("198.51.100.5/24")
	dyn.ValidLft, dyn.PreferedLft = 3600, 1800
	must("dynamic addr", netlink.AddrAdd(v0l, dyn))
	v6, _ := netlink.ParseAddr("2001:db8::10/64")
	v6.Flags = unix.IFA_F_NODAD
	must("v6 addr", netlink.AddrAdd(v0l, v6))

	must("default route", netlink.RouteAdd(&netlink.Route{LinkIndex: v0l.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Priority: 100}))
	_, onlinkDst, _ := net.ParseCIDR("203.0.113.0/24")
	must("onlink route", netlink.RouteAdd(&netlink.Route{LinkIndex: v0l.Attrs().Index, Dst: onlinkDst, Gw: net.ParseIP("10.9.9.9"), Flags: int(netlink.FLAG_ONLINK)}))
	_, bh, _ := net.ParseCIDR("198.18.0.0/15")
	must("blackhole route", netlink.RouteAdd(&netlink.Route{Dst: bh, Type: unix.RTN_BLACKHOLE}))
	must("v6 default route", netlink.RouteAdd(&netlink.Route{LinkIndex: v0l.Attrs().Index, Gw: net.ParseIP("2001:db8::1")}))

	// /etc/resolv.conf names systemd-resolved's stub: the real servers are
	// in /run/systemd/resolve/resolv.conf.
	root := fakeRoot(t, map[string]string{
		"run/systemd/resolve/stub-resolv.conf": string(readTestdata(t, "resolv.conf-resolved-stub")),
		"run/systemd/resolve/resolv.conf":      "nameserver 192.0.2.53\nnameserver 2001:db8::53\n",
	}, map[string]string{"etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf"})
	g := &gatherer{root: root, f: &Facts{}}
	g.network()
	dns := g.f.Network.DNS
	if !reflect.DeepEqual(dns.Nameservers, []string{"192.0.2.53", "2001:db8::53"}) || !reflect.DeepEqual(dns.Search, []string{"example.com", "corp.example.com"}) {
		t.Errorf("dns: %+v", dns)
	}
	if len(dns.Sources) != 2 || dns.Sources[0].Target != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("dns sources: %+v", dns.Sources)
	}
	if len(g.f.Warnings) > 0 {
		t.Errorf("warnings: %q", g.f.Warnings)
	}
	ifs := map[string]Interface{}
	for _, it := range g.f.Network.Interfaces {
		ifs[it.Name] = it
	}
	if len(ifs) != 5 { // lo v0 v1 br0 mv0
		t.Errorf("interfaces: %+v", g.f.Network.Interfaces)
	}
	got := ifs["v0"]
	if got.Kind != "veth" || got.MAC != "02:00:00:00:00:10" || got.MTU != 1450 || !contains(got.Flags, "up") {
		t.Errorf("v0: %+v", got)
	}
	if b := ifs["br0"]; b.Kind != "bridge" || len(b.Slaves) != 1 || b.Slaves[0] != "v1" {
		t.Errorf("br0: %+v", b)
	}
	if ifs["v1"].Master != "br0" {
		t.Errorf("v1 master %q", ifs["v1"].Master)
	}
	if m := ifs["mv0"]; m.Kind != "macvlan" || m.Parent != "v0" {
		t.Errorf("mv0: %+v", m)
	}
	addrs := map[string]Address{}
	for _, a := range got.Addresses {
		addrs[a.CIDR] = a
	}
	if a := addrs["192.0.2.10/24"]; a.Dynamic || a.Family != 4 || a.Scope != "global" || a.ValidLifetime != -1 {
		t.Errorf("static address: %+v", a)
	}
	if a := addrs["198.51.100.5/24"]; !a.Dynamic || a.ValidLifetime <= 0 || a.ValidLifetime > 3600 || a.PreferredLifetime > 1800 {
		t.Errorf("dynamic address: %+v", a)
	}
	if a := addrs["2001:db8::10/64"]; a.Family != 6 || a.Dynamic {
		t.Errorf("v6 address: %+v", a)
	}

	var def4, def6, onlink, blackhole *Route
	for i := range g.f.Network.Routes {
		r := &g.f.Network.Routes[i]
		switch {
		case r.Default && r.Family == 4:
			def4 = r
		case r.Default && r.Family == 6:
			def6 = r
		case r.Dst == "203.0.113.0/24":
			onlink = r
		case r.Dst == "198.18.0.0/15":
			blackhole = r
		}
		if r.Table != unix.RT_TABLE_MAIN {
			t.Errorf("route %d not from the main table: %+v", i, r)
		}
	}
	if def4 == nil || def4.Dst != "default" || def4.Gateway != "192.0.2.1" || def4.Dev != "v0" || def4.Metric != 100 {
		t.Errorf("v4 default: %+v", def4)
	}
	if def6 == nil || def6.Gateway != "2001:db8::1" {
		t.Errorf("v6 default: %+v", def6)
	}
	if onlink == nil || !onlink.OnLink || onlink.Gateway != "10.9.9.9" {
		t.Errorf("onlink route: %+v", onlink)
	}
	if blackhole == nil || blackhole.Type != "blackhole" {
		t.Errorf("blackhole route: %+v", blackhole)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
