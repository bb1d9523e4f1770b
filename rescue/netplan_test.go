package rescue

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/carry"
)

func testCarryNetwork() carry.Network {
	return carry.Network{
		Interfaces: []carry.Interface{
			{Name: "lo", MTU: 65536, Up: true, Addrs: []carry.Addr{{CIDR: "127.0.0.1/8"}}},
			{Name: "ens3", MAC: "52:54:00:12:34:56", MTU: 1500, Up: true, Addrs: []carry.Addr{
				{CIDR: "10.0.2.15/24", Dynamic: true},
				{CIDR: "2001:db8::5/64"},
				{CIDR: "2001:db8:1::abcd/64", Dynamic: true},
				{CIDR: "fe80::5054:ff:fe12:3456/64", Dynamic: true},
			}},
			{Name: "ens4", MAC: "52:54:00:00:00:02", MTU: 9000, Up: true, Addrs: []carry.Addr{{CIDR: "192.0.2.10/32"}}},
			{Name: "ens4.100", Kind: "vlan", Parent: "ens4", VLANID: 100, MTU: 1500, Up: true, Addrs: []carry.Addr{{CIDR: "198.51.100.5/24"}}},
			{Name: "docker0", Kind: "bridge", MAC: "02:42:ac:11:00:01", Up: true, Addrs: []carry.Addr{{CIDR: "172.17.0.1/16"}}},
			{Name: "ens5", MAC: "52:54:00:00:00:05", MTU: 1500, Up: true},
			{Name: "ens6", MAC: "52:54:00:00:00:05", MTU: 1500, Up: true}, // bond slave: the bond's MAC
			{Name: "bond0", Kind: "bond", MAC: "52:54:00:00:00:05", Slaves: []string{"ens5", "ens6"}, MTU: 1500, Up: true, Addrs: []carry.Addr{{CIDR: "203.0.113.7/24"}}},
			{Name: "eth9", MAC: "52:54:00:00:00:99", Up: true, Addrs: []carry.Addr{{CIDR: "192.168.9.9/24"}}},
			{Name: "wg0", Kind: "wireguard", Up: true, Addrs: []carry.Addr{{CIDR: "10.99.0.1/24"}}},
		},
		Routes: []carry.Route{
			{Family: 4, Dst: "default", Gateway: "10.0.2.2", Dev: "ens3", Proto: "dhcp", Metric: 100},
			{Family: 4, Dst: "10.0.2.0/24", Dev: "ens3", Proto: "kernel"},
			{Family: 4, Dst: "10.10.0.0/16", Gateway: "10.0.2.3", Dev: "ens3", Proto: "static"},
			{Family: 4, Dst: "default", Gateway: "192.0.2.1", Dev: "ens4", OnLink: true, Proto: "static", Metric: 200},
			{Family: 4, Dst: "203.0.113.128/25", Gateway: "198.51.100.1", Dev: "ens4.100", Proto: "boot"},
			{Family: 4, Dst: "198.18.0.0/15", Dev: "ens4", Proto: "boot"},
			{Family: 6, Dst: "2001:db8::/64", Dev: "ens3", Proto: "kernel"},
			{Family: 6, Dst: "default", Gateway: "2001:db8::1", Dev: "ens3", Proto: "static"},
			{Family: 6, Dst: "default", Gateway: "fe80::1", Dev: "ens3", Proto: "ra"},
			{Family: 4, Dst: "172.17.0.0/16", Dev: "docker0", Proto: "kernel"},
			{Family: 4, Dst: "192.168.50.0/24", Gateway: "192.168.9.1", Dev: "eth9", Proto: "boot"},
			{Family: 4, Dst: "192.0.2.128/25", Dev: "", Proto: "boot"},
		},
		DNS: carry.DNS{Nameservers: []string{"127.0.0.53", "9.9.9.9", "2620:fe::fe"}, Search: []string{"example.net"}},
	}
}

func opStrings(ops []NetOp) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.String())
	}
	return out
}

func TestPlanNetwork(t *testing.T) {
	present := []PresentLink{
		{Name: "lo", Kind: "device"},
		{Name: "eth0", MAC: "52:54:00:12:34:56", Kind: "device"},
		{Name: "eth1", MAC: "52:54:00:00:00:02", Kind: "device"},
		{Name: "eth2", MAC: "52:54:00:00:00:05", Kind: "device"},
		{Name: "eth3", MAC: "52:54:00:00:00:33", Kind: "device"},
	}
	p := PlanNetwork(testCarryNetwork(), present)
	got := opStrings(p.Ops)
	want := []string{
		"rename eth0 -> ens3",
		"rename eth1 -> ens4",
		"rename eth2 -> ens5",
		"sysctl net.ipv6.conf.ens3.accept_ra=1",
		"sysctl net.ipv6.conf.ens3.autoconf=1",
		"link ens3 mtu 1500 up",
		"link ens4 mtu 9000 up",
		"vlan ens4.100 on ens4 id 100",
		"bond bond0 mode active-backup members ens5",
		"addr 2001:db8::5/64 dev ens3",
		"addr 192.0.2.10/32 dev ens4",
		"addr 198.51.100.5/24 dev ens4.100",
		"addr 203.0.113.7/24 dev bond0",
		// link routes, then onlink gateways, then gateways; defaults last.
		"route 198.18.0.0/15 dev ens4",
		"route default via 192.0.2.1 dev ens4 onlink metric 200",
		"route 203.0.113.128/25 via 198.51.100.1 dev ens4.100",
		"dhcp4 on ens3 asking for 10.0.2.15/24",
		"link eth3 mtu 0 up",
		"dhcp4 on eth3",
		// routes of DHCP links come after the lease.
		"route 10.10.0.0/16 via 10.0.2.3 dev ens3",
		"route default via 2001:db8::1 dev ens3",
		"resolv.conf nameservers 9.9.9.9,2620:fe::fe search example.net",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, op := range p.Ops {
		switch {
		case op.Kind == OpDHCP4 && op.Link == "ens3":
			if op.RouteMetric != 100 || !op.Carried {
				t.Errorf("dhcp on ens3: metric %d carried %v, want the old 100, true", op.RouteMetric, op.Carried)
			}
			fb := strings.Join(opStrings(op.Fallback), "; ")
			if fb != "addr 10.0.2.15/24 dev ens3; route default via 10.0.2.2 dev ens3 metric 100" {
				t.Errorf("dhcp fallback on ens3 = %s", fb)
			}
		case op.Kind == OpDHCP4 && op.Link == "eth3":
			if op.RouteMetric != fallbackMetric || op.Carried {
				t.Errorf("dhcp on an unknown link: metric %d carried %v", op.RouteMetric, op.Carried)
			}
		case op.Kind == OpBond:
			if op.MAC != "52:54:00:00:00:05" {
				t.Errorf("bond MAC %q, want the carried one", op.MAC)
			}
		}
	}
	skipped := strings.Join(p.Skipped, "\n")
	for _, s := range []string{
		"eth9 (52:54:00:00:00:99): no link with this MAC",
		"docker0: bridge without members",
		"wg0: wireguard links are not recreated",
		"bond0: members ens6 are not present",
		"route 192.168.50.0/24 via 192.168.9.1 dev eth9",
		"route 192.0.2.128/25: no device",
	} {
		if !strings.Contains(skipped, s) {
			t.Errorf("skipped lacks %q:\n%s", s, skipped)
		}
	}
	if p.Names["ens3"] != "ens3" || p.Names["ens4.100"] != "ens4.100" {
		t.Errorf("names = %v", p.Names)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Fatal(err)
	}
}

func TestPlanNetworkSwappedNames(t *testing.T) {
	n := carry.Network{Interfaces: []carry.Interface{
		{Name: "eth0", MAC: "02:00:00:00:00:01", Up: true, Addrs: []carry.Addr{{CIDR: "192.0.2.1/24"}}},
		{Name: "eth1", MAC: "02:00:00:00:00:02", Up: true, Addrs: []carry.Addr{{CIDR: "198.51.100.1/24"}}},
	}}
	present := []PresentLink{
		{Name: "eth0", MAC: "02:00:00:00:00:02", Kind: "device"},
		{Name: "eth1", MAC: "02:00:00:00:00:01", Kind: "device"},
	}
	got := strings.Join(opStrings(PlanNetwork(n, present).Ops), "\n")
	want := strings.Join([]string{
		"rename eth1 -> nvtmp0",
		"rename eth0 -> nvtmp1",
		"rename nvtmp0 -> eth0",
		"rename nvtmp1 -> eth1",
		"link eth0 mtu 0 up",
		"link eth1 mtu 0 up",
		"addr 192.0.2.1/24 dev eth0",
		"addr 198.51.100.1/24 dev eth1",
		"resolv.conf nameservers  search ",
	}, "\n")
	if got != want {
		t.Errorf("ops:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanNetworkNameHeldByUnknownLink(t *testing.T) {
	// eth0 before kexec is now eth1, and a new, unconfigured NIC took eth0:
	// no rename, the carried configuration goes to eth1.
	n := carry.Network{
		Interfaces: []carry.Interface{{Name: "eth0", MAC: "02:00:00:00:00:01", Up: true, Addrs: []carry.Addr{{CIDR: "192.0.2.1/24"}}}},
		Routes:     []carry.Route{{Family: 4, Dst: "default", Gateway: "192.0.2.254", Dev: "eth0", Proto: "boot"}},
	}
	present := []PresentLink{
		{Name: "eth0", MAC: "02:00:00:00:00:09", Kind: "device"},
		{Name: "eth1", MAC: "02:00:00:00:00:01", Kind: "device"},
	}
	p := PlanNetwork(n, present)
	got := strings.Join(opStrings(p.Ops), "\n")
	want := strings.Join([]string{
		"link eth1 mtu 0 up",
		"addr 192.0.2.1/24 dev eth1",
		"route default via 192.0.2.254 dev eth1",
		"link eth0 mtu 0 up",
		"dhcp4 on eth0",
		"resolv.conf nameservers  search ",
	}, "\n")
	if got != want {
		t.Errorf("ops:\n%s\nwant:\n%s", got, want)
	}
}
