package sshclient

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sshconfig "github.com/kevinburke/ssh_config"

	"github.com/nivis/nivis/internal/exitcode"
)

// Target is a parsed "[user@]host[:port]" (or ssh://user@host:port).
type Target struct {
	User string
	Host string // a name, an address, or a Host alias from ssh_config
	Port int    // 0 when not given
}

// ParseTarget parses the forms OpenSSH users type: "host", "user@host",
// "host:2222", "[::1]:22", "user@[fe80::1%eth0]:22", bare IPv6 "::1", and
// "ssh://user@host:port".
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, exitcode.Errorf(exitcode.Usage, "bad target %q: %s; use [user@]host[:port] or a Host alias from ~/.ssh/config", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.HasPrefix(s, "ssh://") {
		u, err := url.Parse(s)
		if err != nil {
			return bad(err.Error())
		}
		t := Target{Host: u.Hostname()}
		if u.User != nil {
			t.User = u.User.Username()
		}
		if p := u.Port(); p != "" {
			n, err := parsePort(p)
			if err != nil {
				return bad(err.Error())
			}
			t.Port = n
		}
		if t.Host == "" {
			return bad("no host")
		}
		return t, nil
	}
	var t Target
	rest := s
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		t.User, rest = rest[:i], rest[i+1:]
		if t.User == "" {
			return bad("empty user before @")
		}
	}
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("missing ] after IPv6 address")
		}
		t.Host = rest[1:end]
		after := rest[end+1:]
		if after != "" {
			if !strings.HasPrefix(after, ":") {
				return bad("junk after ]")
			}
			n, err := parsePort(after[1:])
			if err != nil {
				return bad(err.Error())
			}
			t.Port = n
		}
	case strings.Count(rest, ":") == 1:
		h, p, _ := strings.Cut(rest, ":")
		n, err := parsePort(p)
		if err != nil {
			return bad(err.Error())
		}
		t.Host, t.Port = h, n
	default: // a name, IPv4, or a bare IPv6 address (several colons, no port)
		t.Host = rest
	}
	if t.Host == "" {
		return bad("no host")
	}
	if strings.ContainsAny(t.Host, " \t/") {
		return bad("host contains a space or slash")
	}
	return t, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return n, nil
}

// settings is everything needed to connect to one hop, after merging the
// target, the command line and ssh_config (command line first, as OpenSSH).
type settings struct {
	alias    string // the host as typed: the ssh_config lookup key
	hostName string // what is dialled and looked up in known_hosts
	port     int
	user     string

	identityFiles   []string        // expanded paths, command line first
	identitiesCLI   bool            // -i or -o IdentityFile given
	identitiesNamed map[string]bool // files named on the command line: must exist
	identitiesOnly  bool
	identityAgent   string // socket path, "" = $SSH_AUTH_SOCK, "none"
	proxyJump       string
	knownHosts      []string // UserKnownHostsFile (first one is appended to)
	globalKnown     []string // GlobalKnownHostsFile (read only)
	strict          string   // yes | accept-new | no
	hashKnownHosts  bool
	connectTimeout  time.Duration
	aliveInterval   time.Duration
	aliveCountMax   int
	passwordAllowed bool
}

// Keys nivis understands in -o and ssh_config, in ssh_config spelling.
var supportedKeys = []string{
	"HostName", "User", "Port", "IdentityFile", "IdentitiesOnly", "IdentityAgent",
	"ProxyJump", "UserKnownHostsFile", "GlobalKnownHostsFile", "StrictHostKeyChecking",
	"HashKnownHosts", "ConnectTimeout", "ServerAliveInterval", "ServerAliveCountMax",
	"PasswordAuthentication",
}

// Keys users commonly pass to ssh that nivis accepts and ignores quietly
// (they change nothing about correctness here).
var ignoredKeys = map[string]bool{
	"loglevel": true, "compression": true, "controlmaster": true, "controlpath": true,
	"controlpersist": true, "forwardagent": true, "updatehostkeys": true, "batchmode": true,
	"checkhostip": true, "requesttty": true, "sendenv": true, "setenv": true,
	"pubkeyacceptedkeytypes": true, "pubkeyacceptedalgorithms": true, "addkeystoagent": true,
	"gssapiauthentication": true, "visualhostkey": true, "tcpkeepalive": true,
	"kbdinteractiveauthentication": true, "preferredauthentications": true, "ciphers": true,
	"hostkeyalgorithms": true, "kexalgorithms": true, "macs": true, "connectionattempts": true,
}

// lookup answers one key for one host: command-line -o first, then the
// user's ssh_config, then the system's.
type lookup struct {
	cli     map[string][]string // lower-case key -> values in order
	configs []*sshconfig.Config
	warn    func(format string, args ...any)
}

func newLookup(opts []string, configFile string, warn func(string, ...any)) (*lookup, error) {
	l := &lookup{cli: map[string][]string{}, warn: warn}
	for _, o := range opts {
		k, v, ok := splitOption(o)
		if !ok {
			return nil, exitcode.Errorf(exitcode.Usage, "bad -o %q: use KEY=VALUE, e.g. -o StrictHostKeyChecking=accept-new", o)
		}
		lk := strings.ToLower(k)
		known := false
		for _, s := range supportedKeys {
			if strings.ToLower(s) == lk {
				known = true
			}
		}
		if !known {
			if !ignoredKeys[lk] {
				warn("ignoring unsupported SSH option -o %s (nivis understands %s)", o, strings.Join(supportedKeys, ", "))
			}
			continue
		}
		l.cli[lk] = append(l.cli[lk], v)
	}
	var files []string
	switch configFile {
	case "none":
	case "":
		if home, err := os.UserHomeDir(); err == nil {
			files = append(files, filepath.Join(home, ".ssh", "config"))
		}
		files = append(files, "/etc/ssh/ssh_config")
	default:
		files = append(files, configFile)
	}
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) && (configFile == "" || i > 0) {
				continue
			}
			return nil, exitcode.Errorf(exitcode.Usage, "read SSH config: %w", err)
		}
		c, err := decodeConfig(data)
		if err != nil {
			// OpenSSH would refuse too, but a config nivis cannot parse
			// should not make the tool unusable: say so and go on.
			warn("ignoring SSH config %s: %v", f, err)
			continue
		}
		l.configs = append(l.configs, c)
	}
	return l, nil
}

func decodeConfig(data []byte) (c *sshconfig.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser failed: %v", r)
		}
	}()
	return sshconfig.Decode(bytes.NewReader(data))
}

// splitOption accepts "Key=Value", "Key Value" and "Key = Value".
func splitOption(o string) (string, string, bool) {
	o = strings.TrimSpace(o)
	i := strings.IndexAny(o, "= \t")
	if i <= 0 {
		return "", "", false
	}
	k := o[:i]
	v := strings.TrimLeft(o[i:], " \t")
	v = strings.TrimPrefix(v, "=")
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return k, v, v != ""
}

// get returns the first value for key: -o, then config files.
func (l *lookup) get(alias, key string) string {
	if v := l.cli[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	for _, c := range l.configs {
		if v, err := c.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

// all returns every value for a multi-valued key, -o values first.
func (l *lookup) all(alias, key string) (cli, conf []string) {
	cli = append(cli, l.cli[strings.ToLower(key)]...)
	for _, c := range l.configs {
		if v, err := c.GetAll(alias, key); err == nil {
			conf = append(conf, v...)
		}
	}
	return cli, conf
}

// resolve merges a target with -p, -i, -o and ssh_config for one hop.
func resolve(t Target, port int, identities []string, l *lookup) (*settings, error) {
	s := &settings{alias: t.Host}
	usage := func(format string, args ...any) error {
		return exitcode.Errorf(exitcode.Usage, format, args...)
	}
	home, _ := os.UserHomeDir()
	localUser := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		localUser = u.Username
	}

	s.hostName = t.Host
	if h := l.get(t.Host, "HostName"); h != "" {
		s.hostName = strings.ReplaceAll(h, "%h", t.Host)
	}
	s.port = 22
	switch {
	case port > 0:
		s.port = port
	case t.Port > 0:
		s.port = t.Port
	default:
		if p := l.get(t.Host, "Port"); p != "" {
			n, err := parsePort(p)
			if err != nil {
				return nil, usage("Port for %s: %v", t.Host, err)
			}
			s.port = n
		}
	}
	s.user = localUser
	if t.User != "" {
		s.user = t.User
	} else if u := l.get(t.Host, "User"); u != "" {
		s.user = u
	}
	if s.user == "" {
		return nil, usage("no user for %s: use user@host or -o User=NAME", t.Host)
	}

	expand := func(p string) string { return expandTokens(p, home, localUser, s) }
	cliIDs, confIDs := l.all(t.Host, "IdentityFile")
	s.identitiesNamed = map[string]bool{}
	named := len(identities) + len(cliIDs)
	for i, f := range append(append(append([]string{}, identities...), cliIDs...), confIDs...) {
		if f == "none" {
			continue
		}
		f = expand(f)
		s.identityFiles = appendUnique(s.identityFiles, f)
		if i < named {
			s.identitiesNamed[f] = true
		}
	}
	s.identitiesCLI = len(identities) > 0 || len(cliIDs) > 0
	var err error
	if s.identitiesOnly, err = yesNo(l.get(t.Host, "IdentitiesOnly"), false); err != nil {
		return nil, usage("IdentitiesOnly: %v", err)
	}
	if a := l.get(t.Host, "IdentityAgent"); a != "" && a != "SSH_AUTH_SOCK" {
		if strings.HasPrefix(a, "$") {
			a = os.Getenv(strings.TrimPrefix(a, "$"))
		}
		s.identityAgent = expand(a)
	}
	s.proxyJump = l.get(t.Host, "ProxyJump")
	if s.proxyJump == "none" {
		s.proxyJump = ""
	}

	if v := l.get(t.Host, "UserKnownHostsFile"); v != "" {
		for _, f := range strings.Fields(v) {
			s.knownHosts = append(s.knownHosts, expand(f))
		}
	} else if home != "" {
		s.knownHosts = []string{filepath.Join(home, ".ssh", "known_hosts"), filepath.Join(home, ".ssh", "known_hosts2")}
	}
	if v := l.get(t.Host, "GlobalKnownHostsFile"); v != "" {
		for _, f := range strings.Fields(v) {
			s.globalKnown = append(s.globalKnown, expand(f))
		}
	} else {
		s.globalKnown = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	}
	switch v := strings.ToLower(l.get(t.Host, "StrictHostKeyChecking")); v {
	case "", "yes", "ask":
		// "ask" cannot ask without a terminal dialogue; it acts as yes and
		// the error says how to accept a new host.
		s.strict = "yes"
	case "accept-new":
		s.strict = "accept-new"
	case "no", "off":
		s.strict = "no"
	default:
		return nil, usage("StrictHostKeyChecking=%s: use yes, accept-new or no", v)
	}
	if s.hashKnownHosts, err = yesNo(l.get(t.Host, "HashKnownHosts"), false); err != nil {
		return nil, usage("HashKnownHosts: %v", err)
	}
	if s.passwordAllowed, err = yesNo(l.get(t.Host, "PasswordAuthentication"), true); err != nil {
		return nil, usage("PasswordAuthentication: %v", err)
	}
	if s.connectTimeout, err = seconds(l.get(t.Host, "ConnectTimeout"), DefaultConnectTimeout); err != nil {
		return nil, usage("ConnectTimeout: %v", err)
	}
	if v := l.get(t.Host, "ServerAliveInterval"); v == "0" {
		s.aliveInterval = 0 // OpenSSH: 0 turns keepalives off
	} else if s.aliveInterval, err = seconds(v, DefaultKeepalive); err != nil {
		return nil, usage("ServerAliveInterval: %v", err)
	}
	s.aliveCountMax = 3
	if v := l.get(t.Host, "ServerAliveCountMax"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, usage("ServerAliveCountMax=%s: want a positive number", v)
		}
		s.aliveCountMax = n
	}
	return s, nil
}

// addr is the dial address.
func (s *settings) addr() string { return net.JoinHostPort(s.hostName, strconv.Itoa(s.port)) }

// String names the hop for messages: user@host:port (alias).
func (s *settings) String() string {
	r := s.user + "@" + s.addr()
	if s.alias != s.hostName {
		r += " (" + s.alias + ")"
	}
	return r
}

// expandTokens applies ssh_config's ~ and % tokens used in file names.
func expandTokens(p, home, localUser string, s *settings) string {
	if p == "~" {
		p = home
	} else if strings.HasPrefix(p, "~/") {
		p = filepath.Join(home, p[2:])
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(home)
		case 'u':
			b.WriteString(localUser)
		case 'h':
			b.WriteString(s.hostName)
		case 'n':
			b.WriteString(s.alias)
		case 'p':
			b.WriteString(strconv.Itoa(s.port))
		case 'r':
			b.WriteString(s.user)
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

func yesNo(v string, def bool) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "yes", "true", "on":
		return true, nil
	case "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: want yes or no", v)
}

func seconds(v string, def time.Duration) (time.Duration, error) {
	if v == "" || v == "none" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want whole seconds", v)
	}
	if n == 0 {
		return def, nil
	}
	return time.Duration(n) * time.Second, nil
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}
