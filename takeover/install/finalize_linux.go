//go:build linux

package install

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/unitfile"
)

// rootFS writes into the target root through os.Root, so a symlink in the
// installed tree (etc -> /etc, say) can never redirect a write to the host.
type rootFS struct {
	r       *os.Root
	written []string
}

// WriteFile replaces rel atomically (temp file and rename, which replaces a
// symlink rather than following it) and sets its owner to uid:gid.
func (w *rootFS) WriteFile(rel string, data []byte, mode fs.FileMode, uid, gid int) error {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if dir := path.Dir(rel); dir != "." {
		if err := w.r.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path.Join(path.Dir(rel), ".nivis-tmp-"+path.Base(rel))
	_ = w.r.Remove(tmp)
	f, err := w.r.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && os.Geteuid() == 0 {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.r.Rename(tmp, rel)
	}
	if err != nil {
		_ = w.r.Remove(tmp)
		return fmt.Errorf("write /%s: %w", rel, err)
	}
	w.written = append(w.written, "/"+rel)
	return nil
}

func (w *rootFS) exists(rel string) bool {
	_, err := w.r.Lstat(rel)
	return err == nil
}

// Finalize makes an extracted root the installed system: fstab and
// crypttab, hostname and hosts, a fresh machine-id, root's authorized_keys,
// the old host keys, the network configuration (networkd, netplan or
// ifupdown, whichever the system uses) and the owners of --chown paths.
func Finalize(o FinalizeOptions) (*FinalizeResult, error) {
	r, err := os.OpenRoot(o.Root)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("target root %s: %w", o.Root, err))
	}
	defer r.Close()
	if b, err := r.ReadFile(StateFile); err == nil {
		return nil, exitcode.Errorf(exitcode.Precondition, "the root %s is not fully installed (%s says %s): run the install phase again", o.Root, StateFile, strings.TrimSpace(string(b)))
	}
	w := &rootFS{r: r}
	res := &FinalizeResult{}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"fstab", func() error { return finalizeTabs(w, o) }},
		{"hostname", func() error { return finalizeHostname(w, o.Hostname) }},
		{"machine-id", func() error { return finalizeMachineID(w, o.MachineID) }},
		{"authorized_keys", func() error { return finalizeAuthorizedKeys(w, o.AuthorizedKeys) }},
		{"host keys", func() error { return finalizeHostKeys(w, o.HostKeyDir) }},
		{"network", func() error { return finalizeNetwork(w, o, res) }},
		{"chown", func() error { return finalizeChown(w, o.Chown) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			res.Written = w.written
			return res, exitcode.Wrap(exitcode.Change, fmt.Errorf("finalize %s in %s: %w", s.name, o.Root, err))
		}
	}
	res.Written = w.written
	return res, nil
}

func finalizeTabs(w *rootFS, o FinalizeOptions) error {
	if o.Fstab != "" {
		if err := w.WriteFile("etc/fstab", []byte(withNewline(o.Fstab)), 0o644, 0, 0); err != nil {
			return err
		}
	}
	if o.Crypttab != "" {
		return w.WriteFile("etc/crypttab", []byte(withNewline(o.Crypttab)), 0o600, 0, 0)
	}
	return nil
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func finalizeHostname(w *rootFS, name string) error {
	if name == "" {
		return nil
	}
	if !validHostname.MatchString(name) || len(name) > 253 {
		return exitcode.Errorf(exitcode.Usage, "hostname %q: use letters, digits, '-' and '.' (RFC 1123)", name)
	}
	short, _, _ := strings.Cut(name, ".")
	if err := w.WriteFile("etc/hostname", []byte(short+"\n"), 0o644, 0, 0); err != nil {
		return err
	}
	old, _ := w.r.ReadFile("etc/hosts")
	return w.WriteFile("etc/hosts", HostsWithName(old, name), 0o644, 0, 0)
}

var validHostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// HostsWithName returns /etc/hosts with the Debian-style 127.0.1.1 line
// naming the host (and localhost kept).
func HostsWithName(old []byte, name string) []byte {
	short, _, _ := strings.Cut(name, ".")
	entry := "127.0.1.1\t" + name
	if short != name {
		entry += " " + short
	}
	var out []string
	seen, local := false, false
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "127.0.1.1" {
			if !seen {
				out = append(out, entry)
				seen = true
			}
			continue
		}
		if len(f) > 1 && f[0] == "127.0.0.1" {
			local = true
		}
		out = append(out, line)
	}
	if !local {
		out = append([]string{"127.0.0.1\tlocalhost"}, out...)
	}
	if !seen {
		// Right after the localhost line, where Debian puts it.
		for i, l := range out {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.0.1" {
				out = append(out[:i+1], append([]string{entry}, out[i+1:]...)...)
				seen = true
				break
			}
		}
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// NewMachineID returns 32 random hex digits, as systemd-machine-id-setup does.
func NewMachineID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	// systemd ids are v4 UUIDs in hex.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}

func finalizeMachineID(w *rootFS, keep string) error {
	id := keep
	if id == "" {
		var err error
		if id, err = NewMachineID(); err != nil {
			return err
		}
	}
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("machine id %q is not 32 lower-case hex digits", id)
	}
	if err := w.WriteFile("etc/machine-id", []byte(id+"\n"), 0o444, 0, 0); err != nil {
		return err
	}
	// D-Bus keeps its own copy on old systems: point it at the new id.
	fi, err := w.r.Lstat("var/lib/dbus/machine-id")
	if err == nil && fi.Mode().IsRegular() {
		if err := w.r.Remove("var/lib/dbus/machine-id"); err != nil {
			return err
		}
		if err := w.r.Symlink("/etc/machine-id", "var/lib/dbus/machine-id"); err != nil {
			return err
		}
		w.written = append(w.written, "/var/lib/dbus/machine-id")
	}
	return nil
}

// rootHome reads uid 0's home from the installed passwd (default /root).
func rootHome(w *rootFS) string {
	b, err := w.r.ReadFile("etc/passwd")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 6 && f[2] == "0" && strings.HasPrefix(f[5], "/") && !strings.Contains(f[5], "..") {
				return strings.TrimPrefix(path.Clean(f[5]), "/")
			}
		}
	}
	return "root"
}

// MergeAuthorizedKeys appends keys not yet in old (compared by key, not by
// comment or options).
func MergeAuthorizedKeys(old []byte, keys []string) []byte {
	seen := map[string]bool{}
	var out []string
	keyOf := func(line string) string {
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			return string(pk.Marshal())
		}
		return line
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		out = append(out, l)
		seen[keyOf(strings.TrimSpace(l))] = true
	}
	for _, k := range keys {
		for _, l := range strings.Split(k, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if id := keyOf(l); !seen[id] {
				seen[id] = true
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

func finalizeAuthorizedKeys(w *rootFS, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	home := rootHome(w)
	dir := path.Join(home, ".ssh")
	if err := w.r.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := w.r.Lchown(dir, 0, 0); err != nil {
			return err
		}
	}
	if err := w.r.Chmod(dir, 0o700); err != nil {
		return err
	}
	file := path.Join(dir, "authorized_keys")
	old, _ := w.r.ReadFile(file)
	return w.WriteFile(file, MergeAuthorizedKeys(old, keys), 0o600, 0, 0)
}

func finalizeHostKeys(w *rootFS, dir string) error {
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("host keys to copy: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "ssh_host_") || !strings.HasSuffix(name, "_key") || !e.Type().IsRegular() {
			continue
		}
		priv, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		pub, err := os.ReadFile(filepath.Join(dir, name+".pub"))
		if err != nil {
			signer, perr := ssh.ParsePrivateKey(priv)
			if perr != nil {
				return fmt.Errorf("host key %s: no .pub beside it and %w", name, perr)
			}
			pub = ssh.MarshalAuthorizedKey(signer.PublicKey())
		}
		if err := w.WriteFile("etc/ssh/"+name, priv, 0o600, 0, 0); err != nil {
			return err
		}
		if err := w.WriteFile("etc/ssh/"+name+".pub", pub, 0o644, 0, 0); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no ssh_host_*_key files in %s", dir)
	}
	return nil
}

// unitDirs are where an installed system keeps its units, most specific
// first (/lib is a symlink to usr/lib on merged systems).
var unitDirs = []string{"etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

func findUnit(w *rootFS, unit string) string {
	for _, d := range unitDirs {
		p := d + "/" + unit
		if fi, err := w.r.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// enableUnit does what `systemctl --root enable` does: a symlink per
// WantedBy/RequiredBy/UpheldBy, one per Alias, and the Also units.
func enableUnit(w *rootFS, unit string, seen map[string]bool) ([]string, error) {
	if seen[unit] {
		return nil, nil
	}
	seen[unit] = true
	p := findUnit(w, unit)
	if p == "" {
		return nil, os.ErrNotExist
	}
	b, err := w.r.ReadFile(p)
	if err != nil {
		return nil, err
	}
	target := "/" + p
	uf := unitfile.Parse(string(b))
	var links []string
	for l := range uf.InstallLinks("etc/systemd/system", unit, target) {
		links = append(links, l)
	}
	sort.Strings(links)
	var done []string
	for _, l := range links {
		if err := w.r.MkdirAll(path.Dir(l), 0o755); err != nil {
			return done, err
		}
		if cur, err := w.r.Readlink(l); err == nil && cur == target {
			continue
		}
		_ = w.r.Remove(l)
		if err := w.r.Symlink(target, l); err != nil {
			return done, err
		}
		done = append(done, "/"+l)
	}
	for _, a := range uf.Also() {
		more, err := enableUnit(w, a, seen)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return done, err
		}
		done = append(done, more...)
	}
	return done, nil
}

// Renderer picks how the installed system configures its network: netplan
// when it has netplan, ifupdown when it uses ifupdown and not networkd,
// otherwise systemd-networkd.
func renderer(w *rootFS) string {
	for _, p := range []string{"etc/netplan", "usr/sbin/netplan", "usr/bin/netplan"} {
		if w.exists(p) {
			return "netplan"
		}
	}
	ifup := w.exists("sbin/ifup") || w.exists("usr/sbin/ifup")
	networkdOn := w.exists("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
	if ifup && w.exists("etc/network/interfaces") && !networkdOn {
		return "ifupdown"
	}
	return "networkd"
}

func finalizeNetwork(w *rootFS, o FinalizeOptions, res *FinalizeResult) error {
	mode := o.Network
	if mode == "" {
		mode = NetworkKeep
	}
	switch mode {
	case NetworkNone:
		return nil
	case NetworkKeep, NetworkDHCP:
	default:
		return exitcode.Errorf(exitcode.Usage, "network %q: use keep, dhcp or none", mode)
	}
	var state carry.Network
	if o.State != nil {
		state = *o.State
	} else {
		s, err := carry.Read(carry.File)
		if err != nil {
			return fmt.Errorf("captured network state: %w (pass it in the request, or use network: dhcp)", err)
		}
		state = s.Network
	}
	// Drop what an earlier run wrote, so a rerun leaves no stale interface.
	if ents, err := fs.ReadDir(w.r.FS(), "etc/systemd/network"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "10-nivis-") || strings.HasPrefix(e.Name(), "99-nivis-") {
				_ = w.r.Remove("etc/systemd/network/" + e.Name())
			}
		}
	}
	res.Renderer = renderer(w)
	var files []File
	var warn []string
	switch res.Renderer {
	case "netplan":
		f, wn := RenderNetplan(state, mode)
		files, warn = []File{f}, wn
	case "ifupdown":
		files, warn = RenderIfupdown(state, mode)
	default:
		files, warn = RenderNetworkd(state, mode)
	}
	res.Warnings = append(res.Warnings, warn...)
	for _, f := range files {
		if err := w.WriteFile(f.Path, f.Data, f.Mode, 0, 0); err != nil {
			return err
		}
	}
	resolved := findUnit(w, "systemd-resolved.service") != ""
	if res.Renderer == "networkd" {
		seen := map[string]bool{}
		links, err := enableUnit(w, "systemd-networkd.service", seen)
		switch {
		case errors.Is(err, os.ErrNotExist):
			res.Warnings = append(res.Warnings, "systemd-networkd is not installed in the new system: its network files were written but nothing will apply them; install systemd-networkd or use a system with netplan or ifupdown")
		case err != nil:
			return err
		}
		res.Enabled = append(res.Enabled, links...)
		if resolved {
			links, err := enableUnit(w, "systemd-resolved.service", seen)
			if err != nil {
				return err
			}
			res.Enabled = append(res.Enabled, links...)
		}
	}
	if mode == NetworkKeep && !resolved && len(state.DNS.Nameservers) > 0 {
		if fi, err := w.r.Lstat("etc/resolv.conf"); err != nil || fi.Mode().IsRegular() {
			f := RenderResolvConf(state.DNS)
			if err := w.WriteFile(f.Path, f.Data, f.Mode, 0, 0); err != nil {
				return err
			}
		}
	}
	sort.Strings(res.Enabled)
	return nil
}

// ParseChown parses a --chown value "UID:GID" (numbers: the names are the
// installed system's, unknown here).
func ParseChown(p, owner string) (Chown, error) {
	u, g, ok := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return Chown{}, exitcode.Errorf(exitcode.Usage, "--chown %s %s: the owner must be numeric UID:GID", p, owner)
	}
	return Chown{Path: p, UID: uid, GID: gid}, nil
}

func finalizeChown(w *rootFS, rules []Chown) error {
	for _, c := range rules {
		rel := strings.TrimPrefix(path.Clean("/"+c.Path), "/")
		if rel == "" {
			rel = "."
		}
		err := fs.WalkDir(w.r.FS(), rel, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return w.r.Lchown(p, c.UID, c.GID)
		})
		if err != nil {
			return fmt.Errorf("--chown %s %d:%d: %w", c.Path, c.UID, c.GID, err)
		}
	}
	return nil
}

// WriteSecrets writes each secret 0600 (directories 0700) on the host, for
// disko to find (LUKS key files). Contents are never logged.
func WriteSecrets(files []SecretFile) ([]string, error) {
	var done []string
	for _, f := range files {
		p := filepath.Clean(f.Path)
		if !filepath.IsAbs(p) {
			return done, exitcode.Errorf(exitcode.Usage, "secret path %q must be absolute", f.Path)
		}
		for _, bad := range []string{"/proc", "/sys", "/dev"} {
			if p == bad || strings.HasPrefix(p, bad+"/") {
				return done, exitcode.Errorf(exitcode.Usage, "secret path %q is under %s", f.Path, bad)
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return done, exitcode.Wrap(exitcode.Change, err)
		}
		tmp := p + ".nivis-tmp"
		_ = os.Remove(tmp)
		fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return done, exitcode.Wrap(exitcode.Change, fmt.Errorf("secret %s: %w", p, err))
		}
		_, err = fh.Write(f.Data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, p)
		}
		if err != nil {
			_ = os.Remove(tmp)
			return done, exitcode.Wrap(exitcode.Change, fmt.Errorf("secret %s: %w", p, err))
		}
		done = append(done, p)
	}
	return done, nil
}
