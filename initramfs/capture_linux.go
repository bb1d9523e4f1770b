//go:build linux

package initramfs

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/facts"
)

// CaptureOptions tune what Capture reads.
type CaptureOptions struct {
	// LoginUser is the user the client logged in as (default $SUDO_USER):
	// their authorized_keys are carried with root's.
	LoginUser string
	// ExtraKeys are authorized_keys lines to add (the client's key).
	ExtraKeys []string
	// SSHPorts overrides the ports the rescue SSH server listens on.
	SSHPorts []int
	// RescueTimeout is written into the state (0: never reboot back).
	RescueTimeout time.Duration
	// Root prefixes the key files read (tests); "" is /. The rest comes
	// from the facts snapshot, gathered below its own root.
	Root string
}

// Captured is the host's state to carry over, plus its SSH host keys
// (kept apart: they are secrets and go to their own files).
type Captured struct {
	State    carry.State
	HostKeys map[string][]byte
	Warnings []string
}

// Capture takes what the rescue system needs to look like this host from
// outside: identity, SSH ports and network from the facts snapshot f (the
// one reader of host state), and the SSH keys from the files below Root.
func Capture(f *facts.Facts, o CaptureOptions) (*Captured, error) {
	c := &Captured{HostKeys: map[string][]byte{}}
	st := &c.State
	st.Version = 1
	st.Hostname = f.Hostname
	st.MachineID = f.MachineID
	st.BootID = f.BootID
	st.KernelRelease = f.Kernel.Release
	st.RescueTimeoutSeconds = int(o.RescueTimeout / time.Second)

	if len(o.SSHPorts) > 0 {
		st.SSHPorts = o.SSHPorts
	} else {
		st.SSHPorts = c.sshPorts(f.SSH)
	}

	login := o.LoginUser
	if login == "" {
		login = os.Getenv("SUDO_USER")
	}
	st.AuthorizedKeys = c.authorizedKeys(o, login)
	if len(st.AuthorizedKeys) == 0 {
		return nil, fmt.Errorf("no authorized SSH keys found for root%s and none given: nobody could log in to the rescue system", map[bool]string{true: " or " + login, false: ""}[login != ""])
	}

	keys, _ := filepath.Glob(o.path("/etc/ssh/ssh_host_*_key"))
	for _, k := range keys {
		for _, f := range []string{k, k + ".pub"} {
			b, err := os.ReadFile(f)
			if err != nil {
				if f == k {
					c.Warnings = append(c.Warnings, fmt.Sprintf("host key %s unreadable: %v", f, err))
				}
				continue
			}
			c.HostKeys[filepath.Base(f)] = b
		}
	}
	if len(c.HostKeys) == 0 {
		c.Warnings = append(c.Warnings, "no SSH host keys in /etc/ssh: the rescue system will present a new host key")
	}

	if err := f.NetworkError(); err != nil {
		return nil, fmt.Errorf("reading the network configuration: %w", err)
	}
	nw, warns := carryNetwork(f.Network)
	c.Warnings = append(c.Warnings, warns...)
	st.Network = nw
	return c, nil
}

func (o CaptureOptions) path(p string) string { return filepath.Join("/", o.Root, p) }

// sshPorts are the ports sshd listens on now: from its listening sockets,
// else from the SSH connection we came in on, else sshd_config.
func (c *Captured) sshPorts(ssh facts.SSH) []int {
	set := map[int]bool{}
	for _, l := range ssh.Listening {
		if l.Process == "sshd" {
			set[l.Port] = true
		}
	}
	if ports := sortedPorts(set); len(ports) > 0 {
		return ports
	}
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 {
		if p, err := strconv.Atoi(f[3]); err == nil {
			return []int{p}
		}
	}
	for _, p := range ssh.ConfigPorts {
		set[p] = true
	}
	for _, a := range ssh.ListenAddresses {
		if _, ps, err := net.SplitHostPort(a); err == nil {
			if p, err := strconv.Atoi(ps); err == nil {
				set[p] = true
			}
		}
	}
	if ports := sortedPorts(set); len(ports) > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("no sshd listener found; using the sshd_config ports %v", ports))
		return ports
	}
	c.Warnings = append(c.Warnings, "no sshd listener or sshd_config port found; the rescue SSH server listens on 22")
	return []int{22}
}

func sortedPorts(set map[int]bool) []int {
	var out []int
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// authorizedKeys gathers root's, the login user's and
// /etc/ssh/authorized_keys.d keys plus the extra ones, without duplicates.
func (c *Captured) authorizedKeys(o CaptureOptions, login string) []string {
	files := []string{o.path("/root/.ssh/authorized_keys"), o.path("/root/.ssh/authorized_keys2")}
	if login != "" && login != "root" {
		if u, err := user.Lookup(login); err == nil {
			files = append(files, o.path(filepath.Join(u.HomeDir, ".ssh/authorized_keys")), o.path(filepath.Join(u.HomeDir, ".ssh/authorized_keys2")))
		} else {
			c.Warnings = append(c.Warnings, fmt.Sprintf("login user %s: %v", login, err))
		}
	}
	d, _ := filepath.Glob(o.path("/etc/ssh/authorized_keys.d/*"))
	files = append(files, d...)
	seen := map[string]bool{}
	var out []string
	add := func(line, from string) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: skipping a line that is not an SSH public key", from))
			return
		}
		k := string(pk.Marshal())
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, line)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			add(sc.Text(), f)
		}
	}
	for _, k := range o.ExtraKeys {
		add(k, "the client's keys")
	}
	return out
}

// carryNetwork takes from the facts' network what the rescue system
// restores: links without loopback, addresses without IPv6 link-local ones,
// unicast main-table routes the kernel did not make, and DNS. The kernel
// recreates what is left out.
func carryNetwork(n facts.Network) (carry.Network, []string) {
	var nw carry.Network
	var warns []string
	for _, it := range n.Interfaces {
		if slices.Contains(it.Flags, "loopback") {
			continue
		}
		ifc := carry.Interface{Name: it.Name, MAC: it.MAC, MTU: it.MTU, Up: slices.Contains(it.Flags, "up")}
		if it.Kind != "device" {
			ifc.Kind = it.Kind
		}
		if it.Kind == "vlan" {
			ifc.VLANID, ifc.Parent = it.VLANID, it.Parent
		}
		// Members in link order, as the kernel lists them.
		for _, o := range n.Interfaces {
			if o.Master != "" && o.Master == it.Name {
				ifc.Slaves = append(ifc.Slaves, o.Name)
			}
		}
		for _, a := range it.Addresses {
			if ip, _, err := net.ParseCIDR(a.CIDR); err == nil && ip.IsLinkLocalUnicast() && ip.To4() == nil {
				continue
			}
			ifc.Addrs = append(ifc.Addrs, carry.Addr{CIDR: a.CIDR, Dynamic: a.Dynamic})
		}
		nw.Interfaces = append(nw.Interfaces, ifc)
	}
	for _, r := range n.Routes {
		if r.Proto == "kernel" || r.Type != "" || r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		cr := carry.Route{Family: r.Family, Dst: r.Dst, Gateway: r.Gateway, Dev: r.Dev, OnLink: r.OnLink, Metric: r.Metric, Src: r.Src, Proto: r.Proto}
		if len(r.Nexthops) > 0 {
			nh := r.Nexthops[0]
			cr.Gateway, cr.OnLink, cr.Dev = nh.Gateway, nh.OnLink, nh.Dev
			warns = append(warns, fmt.Sprintf("route %s has %d next hops; only the first (via %s) is kept", cr.Dst, len(r.Nexthops), nh.Gateway))
		}
		if strings.HasPrefix(cr.Dst, "ff00::") || strings.HasPrefix(cr.Dst, "fe80::") {
			continue // multicast and link-local: the kernel adds them
		}
		nw.Routes = append(nw.Routes, cr)
	}
	// Empty lists stay null in the carry-over, as before.
	if len(n.DNS.Nameservers) > 0 {
		nw.DNS.Nameservers = n.DNS.Nameservers
	}
	if len(n.DNS.Search) > 0 {
		nw.DNS.Search = n.DNS.Search
	}
	return nw, warns
}
