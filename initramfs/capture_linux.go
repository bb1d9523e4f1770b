//go:build linux

package initramfs

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
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
	// Root prefixes every file read (tests); "" is /.
	Root string
}

// Captured is the host's state to carry over, plus its SSH host keys
// (kept apart: they are secrets and go to their own files).
type Captured struct {
	State    carry.State
	HostKeys map[string][]byte
	Warnings []string
}

// Capture reads what the rescue system needs to look like this host from
// outside: identity, SSH access and network.
func Capture(o CaptureOptions) (*Captured, error) {
	c := &Captured{HostKeys: map[string][]byte{}}
	st := &c.State
	st.Version = 1
	st.Hostname, _ = os.Hostname()
	st.MachineID = readTrim(o.path("/etc/machine-id"))
	st.BootID = readTrim("/proc/sys/kernel/random/boot_id")
	st.KernelRelease = RunningRelease()
	st.RescueTimeoutSeconds = int(o.RescueTimeout / time.Second)

	if len(o.SSHPorts) > 0 {
		st.SSHPorts = o.SSHPorts
	} else {
		st.SSHPorts = c.sshPorts(o)
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

	nw, warns, err := CaptureNetwork()
	if err != nil {
		return nil, fmt.Errorf("reading the network configuration: %w", err)
	}
	c.Warnings = append(c.Warnings, warns...)
	st.Network = nw
	st.Network.DNS = ReadDNS(o.path("/etc/resolv.conf"), o.path("/run/systemd/resolve/resolv.conf"))
	return c, nil
}

func (o CaptureOptions) path(p string) string { return filepath.Join("/", o.Root, p) }

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sshPorts are the ports sshd listens on now: from its listening sockets,
// else from the SSH connection we came in on, else sshd_config, else 22.
func (c *Captured) sshPorts(o CaptureOptions) []int {
	if ports := SSHDListenPorts(); len(ports) > 0 {
		return ports
	}
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 {
		if p, err := strconv.Atoi(f[3]); err == nil {
			return []int{p}
		}
	}
	if ports := SSHDConfigPorts(o.path("/etc/ssh/sshd_config")); len(ports) > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("no sshd listener found; using the sshd_config ports %v", ports))
		return ports
	}
	c.Warnings = append(c.Warnings, "no sshd listener or sshd_config port found; the rescue SSH server listens on 22")
	return []int{22}
}

// SSHDListenPorts returns the TCP ports on which a process named sshd
// listens, from /proc/net/tcp{,6} and the processes' socket fds.
func SSHDListenPorts() []int {
	listen := map[string]int{} // socket inode -> port
	// thread-self: the sockets of this thread's network namespace.
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, l := range strings.Split(string(b), "\n") {
			fs := strings.Fields(l)
			if i == 0 || len(fs) < 10 || fs[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, portHex, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseInt(portHex, 16, 32)
			if err != nil {
				continue
			}
			listen[fs[9]] = int(port)
		}
	}
	if len(listen) == 0 {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	set := map[int]bool{}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		comm := readTrim(filepath.Join("/proc", p.Name(), "comm"))
		if comm != "sshd" {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			t, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(t, "socket:[") {
				continue
			}
			if port, ok := listen[strings.TrimSuffix(strings.TrimPrefix(t, "socket:["), "]")]; ok {
				set[port] = true
			}
		}
	}
	var out []int
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// SSHDConfigPorts reads Port and ListenAddress host:port lines of an
// sshd_config and its Include files, up to the first Match block.
func SSHDConfigPorts(file string) []int {
	set := map[int]bool{}
	var read func(f string, depth int)
	read = func(f string, depth int) {
		b, err := os.ReadFile(f)
		if err != nil || depth > 8 {
			return
		}
		for _, l := range lines(b) {
			fs := strings.Fields(l)
			if len(fs) < 2 {
				continue
			}
			switch strings.ToLower(fs[0]) {
			case "match":
				return
			case "include":
				for _, pat := range fs[1:] {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(file), pat)
					}
					ms, _ := filepath.Glob(pat)
					sort.Strings(ms)
					for _, m := range ms {
						read(m, depth+1)
					}
				}
			case "port":
				if p, err := strconv.Atoi(fs[1]); err == nil {
					set[p] = true
				}
			case "listenaddress":
				if _, ps, err := net.SplitHostPort(fs[1]); err == nil {
					if p, err := strconv.Atoi(ps); err == nil {
						set[p] = true
					}
				}
			}
		}
	}
	read(file, 0)
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

// CaptureNetwork reads links, addresses and main-table routes through
// netlink. Loopback, link-local IPv6 addresses and kernel-made routes are
// left out: the kernel recreates them.
func CaptureNetwork() (carry.Network, []string, error) {
	var nw carry.Network
	var warns []string
	links, err := netlink.LinkList()
	if err != nil {
		return nw, nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		ifc := carry.Interface{
			Name: a.Name,
			MAC:  a.HardwareAddr.String(),
			MTU:  a.MTU,
			Up:   a.Flags&net.FlagUp != 0,
		}
		if t := l.Type(); t != "device" {
			ifc.Kind = t
		}
		if v, ok := l.(*netlink.Vlan); ok {
			ifc.VLANID = v.VlanId
			ifc.Parent = names[a.ParentIndex]
		}
		for _, o := range links {
			if o.Attrs().MasterIndex == a.Index {
				ifc.Slaves = append(ifc.Slaves, o.Attrs().Name)
			}
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nw, nil, fmt.Errorf("addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() && ad.IP.To4() == nil {
				continue
			}
			ifc.Addrs = append(ifc.Addrs, carry.Addr{CIDR: ad.IPNet.String(), Dynamic: ad.Flags&unix.IFA_F_PERMANENT == 0})
		}
		nw.Interfaces = append(nw.Interfaces, ifc)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nw, nil, fmt.Errorf("routes: %w", err)
		}
		for _, r := range routes {
			if r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST {
				continue
			}
			cr := carry.Route{Family: 4, Dst: "default", Dev: names[r.LinkIndex], Metric: r.Priority, Proto: r.Protocol.String()}
			if fam == netlink.FAMILY_V6 {
				cr.Family = 6
			}
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
					cr.Dst = r.Dst.String()
				}
			}
			gw, flags := r.Gw, r.Flags
			if len(r.MultiPath) > 0 {
				nh := r.MultiPath[0]
				gw, flags, cr.Dev = nh.Gw, nh.Flags, names[nh.LinkIndex]
				warns = append(warns, fmt.Sprintf("route %s has %d next hops; only the first (via %s) is kept", cr.Dst, len(r.MultiPath), gw))
			}
			if gw != nil {
				cr.Gateway = gw.String()
			}
			cr.OnLink = flags&unix.RTNH_F_ONLINK != 0
			if r.Src != nil {
				cr.Src = r.Src.String()
			}
			if strings.HasPrefix(cr.Dst, "ff00::") || strings.HasPrefix(cr.Dst, "fe80::") {
				continue // multicast and link-local: the kernel adds them
			}
			nw.Routes = append(nw.Routes, cr)
		}
	}
	return nw, warns, nil
}

// ReadDNS parses resolv.conf; when it points at systemd-resolved's stub
// (127.0.0.53) it reads the real upstream servers from resolvedConf.
func ReadDNS(resolvConf, resolvedConf string) carry.DNS {
	d := parseResolvConf(resolvConf)
	for _, ns := range d.Nameservers {
		if ns == "127.0.0.53" || ns == "127.0.0.54" {
			if up := parseResolvConf(resolvedConf); len(up.Nameservers) > 0 {
				if len(up.Search) == 0 {
					up.Search = d.Search
				}
				return up
			}
		}
	}
	return d
}

func parseResolvConf(p string) carry.DNS {
	var d carry.DNS
	b, err := os.ReadFile(p)
	if err != nil {
		return d
	}
	for _, l := range lines(b) {
		fs := strings.Fields(l)
		if len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "nameserver":
			d.Nameservers = append(d.Nameservers, fs[1])
		case "search", "domain":
			d.Search = fs[1:]
		}
	}
	return d
}
