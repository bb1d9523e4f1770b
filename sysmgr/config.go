package sysmgr

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/unitfile"
)

// Kind is the config kind this package reads.
const Kind = "Services"

func init() {
	config.RegisterKind(Kind, func() any { return &Services{} })
	config.RegisterKind(InventoryKind, func() any { return &Inventory{} })
}

// Services is `kind: Services`: what nivis manages on a running host. The
// same struct, with sources read into Content, is the Bundle the client
// sends to the agent.
type Services struct {
	Units       map[string]*Unit      `yaml:"units" json:"units,omitempty"`
	Files       map[string]*File      `yaml:"files" json:"files,omitempty"`
	Directories map[string]*Directory `yaml:"directories" json:"directories,omitempty"`
	Symlinks    map[string]*Symlink   `yaml:"symlinks" json:"symlinks,omitempty"`
	// Tmpfiles are tmpfiles.d(5) lines, written to /etc/tmpfiles.d/nivis.conf.
	Tmpfiles []string          `yaml:"tmpfiles" json:"tmpfiles,omitempty"`
	Users    map[string]*User  `yaml:"users" json:"users,omitempty"`
	Groups   map[string]*Group `yaml:"groups" json:"groups,omitempty"`
	// Secrets go to /run/nivis/secrets/<name> (tmpfs), never to the store.
	Secrets map[string]*Secret `yaml:"secrets" json:"secrets,omitempty"`
}

// Unit is a systemd unit: full contents (text or source), drop-ins, or a
// mask. An entry with drop-ins only adds them to a unit the distro ships.
type Unit struct {
	Text    string            `yaml:"text" json:"text,omitempty"`
	Source  string            `yaml:"source" json:"source,omitempty"`
	Dropins map[string]string `yaml:"dropins" json:"dropins,omitempty"`
	Mask    bool              `yaml:"mask" json:"mask,omitempty"`
	// Enable (default true) links the unit as its [Install] section says and
	// starts it; false only installs the file.
	Enable *bool `yaml:"enable" json:"enable,omitempty"`
	// RestartTriggers are managed files (keys of files:) whose content
	// counts as the unit's: when one changes, the unit restarts.
	RestartTriggers []string `yaml:"restartTriggers" json:"restartTriggers,omitempty"`
}

// File is a managed file: exactly one of Text, Source or URL (+SHA256).
type File struct {
	Text   string `yaml:"text" json:"text,omitempty"`
	Source string `yaml:"source" json:"source,omitempty"`
	URL    string `yaml:"url" json:"url,omitempty"`
	SHA256 string `yaml:"sha256" json:"sha256,omitempty"`
	Mode   string `yaml:"mode" json:"mode,omitempty"`
	User   string `yaml:"user" json:"user,omitempty"`
	Group  string `yaml:"group" json:"group,omitempty"`
	// OnConflict says what to do with an unmanaged file already at the
	// path: fail (default), backup (kept and restored later) or overwrite.
	OnConflict string `yaml:"onConflict" json:"onConflict,omitempty"`
	// Link makes the path a symlink into the read-only store instead of a copy.
	Link bool `yaml:"link" json:"link,omitempty"`

	// Content is Source read by the client; only in a Bundle.
	Content []byte `yaml:"-" json:"content,omitempty"`
	// HasContent tells an empty Source file from "no content" in a Bundle.
	HasContent bool `yaml:"-" json:"hasContent,omitempty"`
}

// Directory is a managed directory.
type Directory struct {
	Mode  string `yaml:"mode" json:"mode,omitempty"`
	User  string `yaml:"user" json:"user,omitempty"`
	Group string `yaml:"group" json:"group,omitempty"`
}

// Symlink is a managed symbolic link.
type Symlink struct {
	Target     string `yaml:"target" json:"target"`
	OnConflict string `yaml:"onConflict" json:"onConflict,omitempty"`
}

// User is a user nivis adds when missing; it never changes or removes a
// user it did not create.
type User struct {
	UID         *int     `yaml:"uid" json:"uid,omitempty"`
	Group       string   `yaml:"group" json:"group,omitempty"`
	Groups      []string `yaml:"groups" json:"groups,omitempty"`
	Home        string   `yaml:"home" json:"home,omitempty"`
	Shell       string   `yaml:"shell" json:"shell,omitempty"`
	Description string   `yaml:"description" json:"description,omitempty"`
	// System (default true) makes a system account (no aging, low uid).
	System *bool `yaml:"system" json:"system,omitempty"`
}

// Group is a group nivis adds when missing.
type Group struct {
	GID    *int  `yaml:"gid" json:"gid,omitempty"`
	System *bool `yaml:"system" json:"system,omitempty"`
}

// Secret is read on the client (a file or an environment variable) and sent
// out of band to /run/nivis/secrets/<name>.
type Secret struct {
	Source string `yaml:"source" json:"source,omitempty"`
	Env    string `yaml:"env" json:"env,omitempty"`
	Mode   string `yaml:"mode" json:"mode,omitempty"`
	User   string `yaml:"user" json:"user,omitempty"`
	Group  string `yaml:"group" json:"group,omitempty"`
}

// unitSuffixes are the unit types systemd knows (systemd.unit(5)).
var unitSuffixes = []string{".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path", ".timer", ".slice", ".scope"}

// AllowedRoots are the trees files, directories and symlinks may live in:
// configuration and local data, never the package manager's /usr or nivis's
// own state.
var AllowedRoots = []string{"/etc", "/usr/local", "/opt", "/srv", "/var"}

// reservedRoots are inside AllowedRoots but belong to someone else.
var reservedRoots = []string{StateDir, "/var/run", "/var/lock", "/etc/systemd/system", "/etc/tmpfiles.d/nivis.conf"}

var (
	unitNameRe   = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`)
	accountRe    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}\$?$`)
	secretNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hexRe        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// UnitKnownSuffix reports whether name ends in a unit type systemd knows.
func UnitKnownSuffix(name string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// ParseMode reads an octal permission string ("0644", "644"); "" gives def.
func ParseMode(s string, def uint32) (uint32, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission like \"0644\"", s)
	}
	return uint32(v), nil
}

func validAccount(s string) bool {
	if s == "" {
		return true
	}
	if _, err := strconv.Atoi(s); err == nil {
		return true
	}
	return accountRe.MatchString(s)
}

// pathAllowed checks an absolute managed path.
func pathAllowed(p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%q is not a clean path; write it as %q", p, path.Clean(p))
	}
	for _, r := range reservedRoots {
		if p == r || strings.HasPrefix(p, r+"/") {
			if r == "/etc/systemd/system" {
				return fmt.Errorf("%q is under /etc/systemd/system, which nivis fills from `units`; declare the unit there instead", p)
			}
			return fmt.Errorf("%q is reserved (%s belongs to nivis or the system)", p, r)
		}
	}
	for _, r := range AllowedRoots {
		if strings.HasPrefix(p, r+"/") {
			return nil
		}
	}
	return fmt.Errorf("%q is outside the trees nivis manages (%s)", p, strings.Join(AllowedRoots, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate checks the config; every problem names its path and line.
func (s *Services) Validate(ctx *config.Context) {
	seen := map[string]string{} // managed path -> config path that declares it
	claim := func(p, at string) {
		if prev, ok := seen[p]; ok {
			ctx.Errorf(at, "%s is also declared at %s", p, prev)
			return
		}
		seen[p] = at
	}
	for _, name := range sortedKeys(s.Units) {
		at := config.Key("$.units", name)
		s.validateUnit(ctx, at, name, s.Units[name])
		if s.Units[name] != nil {
			claim(path.Join(UnitDir, name), at)
		}
	}
	for _, p := range sortedKeys(s.Files) {
		at := config.Key("$.files", p)
		f := s.Files[p]
		if f == nil {
			ctx.Errorf(at, "empty file entry: give text, source or url")
			continue
		}
		if err := pathAllowed(p); err != nil {
			ctx.Errorf(at, "%v", err)
		}
		claim(p, at)
		validateFile(ctx, at, f)
	}
	for _, p := range sortedKeys(s.Directories) {
		at := config.Key("$.directories", p)
		if err := pathAllowed(p); err != nil {
			ctx.Errorf(at, "%v", err)
		}
		claim(p, at)
		d := s.Directories[p]
		if d == nil {
			continue
		}
		if _, err := ParseMode(d.Mode, 0o755); err != nil {
			ctx.Errorf(at+".mode", "%v", err)
		}
		checkOwner(ctx, at, d.User, d.Group)
	}
	for _, p := range sortedKeys(s.Symlinks) {
		at := config.Key("$.symlinks", p)
		if err := pathAllowed(p); err != nil {
			ctx.Errorf(at, "%v", err)
		}
		claim(p, at)
		l := s.Symlinks[p]
		if l == nil || l.Target == "" {
			ctx.Errorf(at, "a symlink needs a target")
			continue
		}
		checkOnConflict(ctx, at, l.OnConflict)
	}
	for i, line := range s.Tmpfiles {
		at := config.Index("$.tmpfiles", i)
		f := strings.Fields(line)
		if len(f) < 2 {
			ctx.Errorf(at, "a tmpfiles.d line has at least a type and a path, as in \"d /run/hello 0755 root root -\"")
			continue
		}
		if strings.Trim(f[0], "fFwedvqQpLcbCxXrRzZtThHaA+!-=~^$?") != "" {
			ctx.Errorf(at, "unknown tmpfiles.d type %q (see tmpfiles.d(5))", f[0])
		}
		if !path.IsAbs(f[1]) {
			ctx.Errorf(at, "tmpfiles.d path %q is not absolute", f[1])
		}
	}
	for _, name := range sortedKeys(s.Groups) {
		at := config.Key("$.groups", name)
		if !accountRe.MatchString(name) {
			ctx.Errorf(at, "%q is not a valid group name", name)
		}
	}
	for _, name := range sortedKeys(s.Users) {
		at := config.Key("$.users", name)
		if !accountRe.MatchString(name) {
			ctx.Errorf(at, "%q is not a valid user name", name)
		}
		if u := s.Users[name]; u != nil {
			for i, g := range append([]string{u.Group}, u.Groups...) {
				if !validAccount(g) {
					ctx.Errorf(at, "group %d (%q) is not a valid group name", i, g)
				}
			}
			if u.Home != "" && !path.IsAbs(u.Home) {
				ctx.Errorf(at+".home", "home %q is not absolute", u.Home)
			}
		}
	}
	for _, name := range sortedKeys(s.Secrets) {
		at := config.Key("$.secrets", name)
		sec := s.Secrets[name]
		if !secretNameRe.MatchString(name) {
			ctx.Errorf(at, "secret name %q: use letters, digits, '.', '_' and '-' (it becomes a file name)", name)
		}
		if sec == nil || (sec.Source == "") == (sec.Env == "") {
			ctx.Errorf(at, "a secret needs exactly one of source (a local file) or env (a variable on this machine)")
			continue
		}
		if sec.Source != "" {
			if _, err := os.Stat(ctx.Resolve(sec.Source)); err != nil {
				ctx.Errorf(at+".source", "cannot read secret source: %v", err)
			}
		}
		if _, err := ParseMode(sec.Mode, 0o400); err != nil {
			ctx.Errorf(at+".mode", "%v", err)
		}
		checkOwner(ctx, at, sec.User, sec.Group)
	}
}

func (s *Services) validateUnit(ctx *config.Context, at, name string, u *Unit) {
	if !UnitKnownSuffix(name) {
		ctx.Errorf(at, "unit name %q must end in one of %s", name, strings.Join(unitSuffixes, " "))
	}
	if !unitNameRe.MatchString(name) {
		ctx.Errorf(at, "unit name %q has characters systemd does not allow", name)
	}
	if u == nil {
		ctx.Errorf(at, "empty unit: give text, source, dropins or mask")
		return
	}
	if u.Text != "" && u.Source != "" {
		ctx.Errorf(at, "give text or source, not both")
	}
	if u.Mask && (u.Text != "" || u.Source != "" || len(u.Dropins) > 0) {
		ctx.Errorf(at+".mask", "a masked unit has no contents or drop-ins")
	}
	if !u.Mask && u.Text == "" && u.Source == "" && len(u.Dropins) == 0 {
		ctx.Errorf(at, "empty unit: give text, source, dropins or mask")
	}
	if u.Source != "" {
		raw, err := os.ReadFile(ctx.Resolve(u.Source))
		if err != nil {
			ctx.Errorf(at+".source", "cannot read unit source: %v", err)
		} else if u.Text == "" && len(raw) == 0 {
			ctx.Errorf(at+".source", "unit source %s is empty", u.Source)
		}
	}
	for i, f := range u.RestartTriggers {
		if s.Files[f] == nil {
			ctx.Errorf(config.Index(at+".restartTriggers", i), "%q is not a file declared under files:", f)
		}
	}
	for _, d := range sortedKeys(u.Dropins) {
		if !strings.HasSuffix(d, ".conf") || strings.Contains(d, "/") {
			ctx.Errorf(config.Key(at+".dropins", d), "drop-in name %q must be a file name ending in .conf", d)
		}
	}
	if u.Enable != nil && *u.Enable && u.Text == "" && u.Source == "" && !u.Mask {
		ctx.Warnf(at+".enable", "enable has no effect on a drop-ins-only entry (the distro's unit keeps its own enablement)")
	}
	if u.Text != "" {
		inst := unitfile.Parse(u.Text).Install()
		for _, t := range inst {
			if strings.Contains(t, "/") || !UnitKnownSuffix(t) {
				ctx.Errorf(at+".text", "[Install] names %q, which is not a unit name", t)
			}
		}
		if u.Enable != nil && *u.Enable && len(inst) == 0 {
			ctx.Warnf(at+".enable", "the unit has no [Install] section (WantedBy=, RequiredBy=, Alias=), so enable has no effect")
		}
		if strings.Contains(name, "@.") && len(inst) > 0 && unitfile.Parse(u.Text).Get("Install", "DefaultInstance") == "" {
			ctx.Warnf(at, "template unit without DefaultInstance= cannot be enabled; it is only installed")
		}
	}
}

func validateFile(ctx *config.Context, at string, f *File) {
	n := 0
	for _, set := range []bool{f.Text != "", f.Source != "", f.URL != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		ctx.Errorf(at, "give exactly one of text, source or url (found %d)", n)
	}
	if f.Source != "" {
		if _, err := os.Stat(ctx.Resolve(f.Source)); err != nil {
			ctx.Errorf(at+".source", "cannot read source: %v", err)
		}
	}
	if f.URL != "" {
		u, err := url.Parse(f.URL)
		switch {
		case err != nil || u.Host == "":
			ctx.Errorf(at+".url", "%q is not a URL", f.URL)
		case u.Scheme == "http":
			ctx.Warnf(at+".url", "plain http: the sha256 still protects the content, but prefer https")
		case u.Scheme != "https":
			ctx.Errorf(at+".url", "url scheme %q: use https", u.Scheme)
		}
		if f.SHA256 == "" {
			ctx.Errorf(at, "url needs sha256 (the hex digest of the content), so the host can verify what it fetched")
		}
	}
	if f.SHA256 != "" {
		if !hexRe.MatchString(strings.ToLower(f.SHA256)) {
			ctx.Errorf(at+".sha256", "sha256 must be 64 hex digits")
		} else if f.URL == "" {
			ctx.Warnf(at+".sha256", "sha256 is only checked for url files")
		}
	}
	if _, err := ParseMode(f.Mode, 0o644); err != nil {
		ctx.Errorf(at+".mode", "%v", err)
	}
	checkOwner(ctx, at, f.User, f.Group)
	checkOnConflict(ctx, at, f.OnConflict)
	if f.Link && (f.Mode != "" || f.User != "" || f.Group != "") {
		ctx.Errorf(at+".link", "link: true makes a symlink into the read-only store; mode, user and group apply to copies only")
	}
}

func checkOwner(ctx *config.Context, at, user, group string) {
	if !validAccount(user) {
		ctx.Errorf(at+".user", "%q is not a valid user name or uid", user)
	}
	if !validAccount(group) {
		ctx.Errorf(at+".group", "%q is not a valid group name or gid", group)
	}
}

func checkOnConflict(ctx *config.Context, at, v string) {
	switch v {
	case "", ConflictFail, ConflictBackup, ConflictOverwrite:
	default:
		ctx.Errorf(at+".onConflict", "onConflict %q: use fail, backup or overwrite", v)
	}
}

// The onConflict values.
const (
	ConflictFail      = "fail"
	ConflictBackup    = "backup"
	ConflictOverwrite = "overwrite"
)
