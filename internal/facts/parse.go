package facts

// Parsers of the text files the gatherer reads. They take bytes, not paths,
// so they are tested on testdata on any OS.

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/nivis/nivis/internal/mountinfo"
)

// ParseOSRelease parses os-release(5): KEY=VALUE lines, values optionally
// quoted with shell-style escapes.
func ParseOSRelease(data []byte) OSRelease {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		kv[strings.TrimSpace(k)] = unquoteShell(strings.TrimSpace(v))
	}
	return OSRelease{
		ID:              kv["ID"],
		IDLike:          kv["ID_LIKE"],
		Name:            kv["NAME"],
		VersionID:       kv["VERSION_ID"],
		VersionCodename: kv["VERSION_CODENAME"],
		PrettyName:      kv["PRETTY_NAME"],
		VariantID:       kv["VARIANT_ID"],
	}
}

// unquoteShell removes one level of "..." or '...' quoting; inside double
// quotes a backslash escapes $ " \ and `, as os-release(5) says.
func unquoteShell(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.ContainsRune("$\"\\`", rune(v[i+1])) {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// parseMeminfo returns /proc/meminfo's values in bytes, by key.
func parseMeminfo(data []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[strings.TrimSpace(k)] = n
	}
	return out
}

// memoryFrom picks the Memory fields out of parsed meminfo.
func memoryFrom(m map[string]uint64) Memory {
	return Memory{
		TotalBytes:     m["MemTotal"],
		AvailableBytes: m["MemAvailable"],
		SwapTotalBytes: m["SwapTotal"],
		SwapFreeBytes:  m["SwapFree"],
	}
}

// parseMountinfo is the one mountinfo parser (internal/mountinfo).
var parseMountinfo = mountinfo.Parse

// parseResolvConf reads nameserver, search/domain and options lines.
func parseResolvConf(data []byte) ResolvConf {
	var rc ResolvConf
	rc.Nameservers = []string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.Nameservers = append(rc.Nameservers, f[1])
		case "search", "domain":
			// The last search or domain line wins (resolv.conf(5)).
			rc.Search = append([]string(nil), f[1:]...)
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

// isStubResolver says whether ns is a local caching stub (systemd-resolved
// at 127.0.0.53/54, dnsmasq or similar on loopback).
func isStubResolver(ns string) bool {
	ip := net.ParseIP(ns)
	return ip != nil && ip.IsLoopback()
}

// allStub says whether every nameserver is a local stub (and there is one).
func allStub(ns []string) bool {
	for _, n := range ns {
		if !isStubResolver(n) {
			return false
		}
	}
	return len(ns) > 0
}

// sshdConfig is what nivis needs from sshd_config.
type sshdConfig struct {
	Ports           []int
	ListenAddresses []string
}

// parseSSHDConfig reads name (a path inside fsys, without leading slash)
// and the files it Includes. Like sshd, the first Include match list is
// sorted, relative Include paths are under etc/ssh, and Match blocks end
// the global section (Port and ListenAddress are not allowed in Match).
func parseSSHDConfig(fsys fs.FS, name string) (sshdConfig, []string, error) {
	var c sshdConfig
	var warns []string
	err := parseSSHDFile(fsys, name, &c, &warns, 0)
	if len(c.Ports) == 0 {
		c.Ports = []int{22}
	}
	c.Ports = sortUniqueInts(c.Ports)
	return c, warns, err
}

func parseSSHDFile(fsys fs.FS, name string, c *sshdConfig, warns *[]string, depth int) error {
	if depth > 16 {
		return fmt.Errorf("sshd_config: Include nested too deeply at /%s", name)
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	inMatch := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest := splitSSHDKeyword(line)
		switch strings.ToLower(key) {
		case "match":
			inMatch = true
		case "include":
			// Include is allowed inside Match too; its files continue the block.
			for _, pat := range strings.Fields(rest) {
				pat = unquoteShell(pat)
				if strings.HasPrefix(pat, "/") {
					pat = strings.TrimPrefix(pat, "/")
				} else {
					pat = path.Join("etc/ssh", pat)
				}
				matches, err := fs.Glob(fsys, pat)
				if err != nil {
					*warns = append(*warns, fmt.Sprintf("sshd_config: bad Include pattern %q: %v", pat, err))
					continue
				}
				sort.Strings(matches)
				for _, m := range matches {
					if err := parseSSHDFile(fsys, m, c, warns, depth+1); err != nil {
						*warns = append(*warns, fmt.Sprintf("sshd_config: Include /%s: %v", m, err))
					}
				}
			}
		case "port":
			if inMatch {
				continue
			}
			p, err := strconv.Atoi(strings.TrimSpace(unquoteShell(rest)))
			if err != nil || p <= 0 || p > 65535 {
				*warns = append(*warns, fmt.Sprintf("sshd_config /%s: bad Port %q", name, rest))
				continue
			}
			c.Ports = append(c.Ports, p)
		case "listenaddress":
			if inMatch {
				continue
			}
			c.ListenAddresses = append(c.ListenAddresses, strings.Fields(rest)...)
		}
	}
	return sc.Err()
}

// splitSSHDKeyword splits "Key value", "Key=value" or "Key = value".
func splitSSHDKeyword(line string) (string, string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	key, rest := line[:i], strings.TrimSpace(line[i:])
	rest = strings.TrimSpace(strings.TrimPrefix(rest, "="))
	return key, rest
}

// listenPortOf returns the port of a ListenAddress value, if it has one
// ("0.0.0.0:2222", "[::]:2222").
func listenPortOf(addr string) int {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 0
}

// tcpSocket is a line of /proc/net/tcp or tcp6.
type tcpSocket struct {
	Address string
	Port    int
	State   int
	Inode   uint64
}

// tcpListen is the TCP_LISTEN state in /proc/net/tcp.
const tcpListen = 0x0A

// parseProcNetTCP parses /proc/net/tcp or /proc/net/tcp6. Addresses are
// hex in host byte order per 32-bit word.
func parseProcNetTCP(data []byte) ([]tcpSocket, error) {
	var out []tcpSocket
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	for sc.Scan() {
		if first {
			first = false // header
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		host, port, ok := strings.Cut(f[1], ":")
		if !ok {
			return out, fmt.Errorf("bad local address %q", f[1])
		}
		ip, err := decodeProcIP(host)
		if err != nil {
			return out, err
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return out, fmt.Errorf("bad port %q", port)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return out, fmt.Errorf("bad state %q", f[3])
		}
		ino, _ := strconv.ParseUint(f[9], 10, 64)
		out = append(out, tcpSocket{Address: ip.String(), Port: int(p), State: int(st), Inode: ino})
	}
	return out, sc.Err()
}

// decodeProcIP decodes /proc/net's hex address: 8 hex digits (IPv4) or 32
// (IPv6), each 32-bit word in little-endian order on every Linux arch we
// run on.
func decodeProcIP(h string) (net.IP, error) {
	if len(h) != 8 && len(h) != 32 {
		return nil, fmt.Errorf("bad address %q", h)
	}
	raw := make([]byte, len(h)/2)
	for i := range raw {
		b, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad address %q", h)
		}
		raw[i] = byte(b)
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	return net.IP(raw), nil
}

// kernelConfigSymbols are the CONFIG_ symbols Facts reports.
var kernelConfigSymbols = []string{
	"CONFIG_KEXEC", "CONFIG_KEXEC_FILE", "CONFIG_KEXEC_SIG", "CONFIG_KEXEC_SIG_FORCE",
	"CONFIG_BLK_DEV_INITRD", "CONFIG_RD_GZIP", "CONFIG_RD_XZ", "CONFIG_RD_ZSTD",
	"CONFIG_RD_LZ4", "CONFIG_RD_BZIP2", "CONFIG_RD_LZMA", "CONFIG_RD_LZO",
	"CONFIG_MODULES", "CONFIG_MODULE_SIG_FORCE", "CONFIG_DEVTMPFS", "CONFIG_EFI_STUB",
	"CONFIG_SECURITY_LOCKDOWN_LSM", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_BLK",
	"CONFIG_EXT4_FS", "CONFIG_VFAT_FS",
}

// parseKernelConfig returns the wanted symbols that are set (=y or =m).
func parseKernelConfig(data []byte) map[string]string {
	want := map[string]bool{}
	for _, s := range kernelConfigSymbols {
		want[s] = true
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !want[k] {
			continue
		}
		if v == "y" || v == "m" {
			out[k] = v
		}
	}
	return out
}

// initrdCompressions lists the compressions a kernel config can unpack.
func initrdCompressions(cfg map[string]string) []string {
	out := []string{}
	for _, c := range []struct{ sym, name string }{
		{"CONFIG_RD_GZIP", "gzip"}, {"CONFIG_RD_XZ", "xz"}, {"CONFIG_RD_ZSTD", "zstd"},
		{"CONFIG_RD_LZ4", "lz4"}, {"CONFIG_RD_BZIP2", "bzip2"}, {"CONFIG_RD_LZMA", "lzma"},
		{"CONFIG_RD_LZO", "lzo"},
	} {
		if cfg[c.sym] == "y" {
			out = append(out, c.name)
		}
	}
	return out
}

// bootImageFromCmdline returns BOOT_IMAGE=, without a GRUB device prefix
// like "(hd0,gpt2)".
func bootImageFromCmdline(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "BOOT_IMAGE="); ok {
			if strings.HasPrefix(v, "(") {
				if i := strings.Index(v, ")"); i >= 0 {
					v = v[i+1:]
				}
			}
			return v
		}
		if f == "--" {
			break // what follows is for init, not the kernel
		}
	}
	return ""
}

// parseLockdown returns the bracketed mode of
// /sys/kernel/security/lockdown ("none [integrity] confidentiality").
func parseLockdown(data []byte) string {
	s := string(data)
	i := strings.Index(s, "[")
	j := strings.Index(s, "]")
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// parseSwaps parses /proc/swaps (sizes there are KiB).
func parseSwaps(data []byte) []Swap {
	out := []Swap{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		size, _ := strconv.ParseUint(f[2], 10, 64)
		used, _ := strconv.ParseUint(f[3], 10, 64)
		prio, _ := strconv.Atoi(f[4])
		out = append(out, Swap{Path: mountinfo.Unescape(f[0]), Type: f[1], SizeBytes: size * 1024, UsedBytes: used * 1024, Priority: prio})
	}
	return out
}

// parseCPUList counts the CPUs of a sysfs list like "0-3,8-11".
func parseCPUList(s string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0
		}
		if !isRange {
			n++
			continue
		}
		b, err := strconv.Atoi(hi)
		if err != nil || b < a {
			return 0
		}
		n += b - a + 1
	}
	return n
}

func sortUniqueInts(in []int) []int {
	sort.Ints(in)
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// cpuinfoHypervisor reports the x86 "hypervisor" CPU flag (CPUID leaf 1,
// ECX bit 31), set by every hypervisor that announces itself.
func cpuinfoHypervisor(cpuinfo []byte) bool {
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, fl := range strings.Fields(v) {
			if fl == "hypervisor" {
				return true
			}
		}
		return false
	}
	return false
}
