package sysmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nivis/nivis/internal/unitfile"
)

// Where things live on the host, relative to the Root option.
const (
	StateDir       = "/var/lib/nivis"
	StoreDir       = StateDir + "/store"
	GenerationsDir = StateDir + "/generations"
	BackupDir      = StateDir + "/backups"
	CurrentLink    = StateDir + "/current"
	UnitDir        = "/etc/systemd/system"
	SecretsDir     = "/run/nivis/secrets"
	TmpfilesPath   = "/etc/tmpfiles.d/nivis.conf"
)

// Entry types: what nivis puts at a path.
const (
	TypeFile    = "file"    // a copy of a store object, with mode and owner
	TypeLink    = "link"    // a symlink into the store
	TypeSymlink = "symlink" // a symlink to a declared target
	TypeDir     = "dir"
)

// Entry is one managed path in a generation.
type Entry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	// Object is the store object ("<sha256>-<name>") for file and link.
	Object string `json:"object,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Size is -1 when unknown before the host fetched a URL.
	Size       int64  `json:"size,omitempty"`
	URL        string `json:"url,omitempty"`
	Target     string `json:"target,omitempty"`
	Mode       uint32 `json:"mode,omitempty"`
	User       string `json:"user,omitempty"`
	Group      string `json:"group,omitempty"`
	OnConflict string `json:"onConflict,omitempty"`
	// Unit names the unit this path belongs to (unit file, drop-in, install link, mask).
	Unit string `json:"unit,omitempty"`
}

// UnitState is what a generation declares about one unit.
type UnitState struct {
	Name string `json:"name"`
	// Hash covers the unit file and its drop-ins (and the mask), so a change
	// to either restarts the unit.
	Hash string `json:"hash"`
	// Managed: nivis ships the unit file; false for drop-ins-only entries
	// on a unit the distro ships.
	Managed          bool     `json:"managed,omitempty"`
	Dropins          []string `json:"dropins,omitempty"`
	Mask             bool     `json:"mask,omitempty"`
	Enabled          bool     `json:"enabled,omitempty"`
	RestartIfChanged bool     `json:"restartIfChanged"`
	ReloadIfChanged  bool     `json:"reloadIfChanged,omitempty"`
	StopOnRemoval    bool     `json:"stopOnRemoval"`
}

// AccountSpec is a user or group to add when missing.
type AccountSpec struct {
	Name        string   `json:"name"`
	ID          *int     `json:"id,omitempty"`
	Group       string   `json:"group,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Home        string   `json:"home,omitempty"`
	Shell       string   `json:"shell,omitempty"`
	Description string   `json:"description,omitempty"`
	System      bool     `json:"system"`
}

// SecretSpec is a secret's name, owner and mode; never its content.
type SecretSpec struct {
	Name  string `json:"name"`
	Mode  uint32 `json:"mode"`
	User  string `json:"user"`
	Group string `json:"group"`
}

// Generation is a numbered, immutable manifest of everything declared.
type Generation struct {
	Number  int       `json:"number"`
	Date    time.Time `json:"date"`
	Message string    `json:"message,omitempty"`
	// Hash is over the declared state only, so re-applying the same config
	// makes no new generation.
	Hash    string        `json:"hash"`
	Entries []Entry       `json:"entries"`
	Units   []UnitState   `json:"units"`
	Users   []AccountSpec `json:"users,omitempty"`
	Groups  []AccountSpec `json:"groups,omitempty"`
	Secrets []SecretSpec  `json:"secrets,omitempty"`
}

// EntryMap indexes entries by path.
func (g *Generation) EntryMap() map[string]*Entry {
	if g == nil {
		return map[string]*Entry{}
	}
	m := make(map[string]*Entry, len(g.Entries))
	for i := range g.Entries {
		m[g.Entries[i].Path] = &g.Entries[i]
	}
	return m
}

// UnitMap indexes units by name.
func (g *Generation) UnitMap() map[string]*UnitState {
	m := map[string]*UnitState{}
	if g == nil {
		return m
	}
	for i := range g.Units {
		m[g.Units[i].Name] = &g.Units[i]
	}
	return m
}

// Summary is one line of `nivis generations`.
type Summary struct {
	Number  int       `json:"number"`
	Date    time.Time `json:"date"`
	Message string    `json:"message,omitempty"`
	Files   int       `json:"files"`
	Units   int       `json:"units"`
	Current bool      `json:"current"`
	Pending bool      `json:"pending,omitempty"`
}

var objectNameRe = regexp.MustCompile(`[^A-Za-z0-9._+@-]`)

// ObjectName is the store name of content: "<sha256>-<name>".
func ObjectName(sum, name string) string {
	name = objectNameRe.ReplaceAllString(path.Base(name), "_")
	if name == "" || name == "." || name == "/" {
		name = "object"
	}
	return sum + "-" + name
}

// Compiled is a generation before it has a number, with the contents its
// store objects need.
type Compiled struct {
	Gen *Generation
	// Objects maps store object name to content (URL objects are absent:
	// the host fetches them).
	Objects map[string][]byte
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Compile turns a bundle (a Services config with sources read) into the
// generation it declares. It is pure: the host adds the number and date.
func Compile(b *Services) (*Compiled, error) {
	c := &compiler{Compiled{Gen: &Generation{}, Objects: map[string][]byte{}}}
	g := c.Gen
	for _, name := range sortedKeys(b.Units) {
		if u := b.Units[name]; u != nil {
			st, err := c.unit(b, name, u)
			if err != nil {
				return nil, err
			}
			g.Units = append(g.Units, st)
		}
	}
	for _, p := range sortedKeys(b.Files) {
		if f := b.Files[p]; f != nil {
			e, err := c.file(p, f)
			if err != nil {
				return nil, err
			}
			c.add(e)
		}
	}
	for _, p := range sortedKeys(b.Directories) {
		d := b.Directories[p]
		if d == nil {
			d = &Directory{}
		}
		m, err := ParseMode(d.Mode, 0o755)
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", p, err)
		}
		c.add(Entry{Path: p, Type: TypeDir, Mode: m, User: orDefault(d.User, "root"), Group: orDefault(d.Group, "root")})
	}
	for _, p := range sortedKeys(b.Symlinks) {
		l := b.Symlinks[p]
		c.add(Entry{Path: p, Type: TypeSymlink, Target: l.Target, OnConflict: orDefault(l.OnConflict, ConflictFail)})
	}
	if len(b.Tmpfiles) > 0 {
		text := strings.Join(b.Tmpfiles, "\n") + "\n"
		text = "# Written by nivis; edit the Services config instead.\n" + text
		o, s := c.object([]byte(text), "nivis.conf")
		c.add(Entry{Path: TmpfilesPath, Type: TypeFile, Object: o, SHA256: s, Size: int64(len(text)), Mode: 0o644, User: "root", Group: "root", OnConflict: ConflictFail})
	}
	if err := c.accounts(b); err != nil {
		return nil, err
	}
	sort.Slice(g.Entries, func(i, j int) bool { return g.Entries[i].Path < g.Entries[j].Path })
	for i := 1; i < len(g.Entries); i++ {
		if g.Entries[i].Path == g.Entries[i-1].Path {
			return nil, fmt.Errorf("%s is declared twice (by %s and %s)", g.Entries[i].Path, describe(g.Entries[i-1]), describe(g.Entries[i]))
		}
	}
	g.Hash = g.declaredHash()
	return &c.Compiled, nil
}

// compiler collects a generation's entries and store objects.
type compiler struct{ Compiled }

func (c *compiler) add(e Entry) { c.Gen.Entries = append(c.Gen.Entries, e) }

// object stores data and returns its object name and sha256.
func (c *compiler) object(data []byte, name string) (string, string) {
	s := sum(data)
	o := ObjectName(s, name)
	c.Objects[o] = data
	return o, s
}

// unit adds a unit's file, drop-ins, mask and install links and returns
// its state, hashed over everything that should restart it.
func (c *compiler) unit(b *Services, name string, u *Unit) (UnitState, error) {
	st := UnitState{Name: name, Mask: u.Mask, Managed: u.Text != "" || u.Source != ""}
	h := sha256.New()
	fmt.Fprintf(h, "unit %s mask=%v\n", name, u.Mask)
	var texts []string
	if st.Managed {
		if u.Text == "" {
			return UnitState{}, fmt.Errorf("unit %s: source was not read into the bundle", name)
		}
		o, s := c.object([]byte(u.Text), name)
		c.add(Entry{Path: path.Join(UnitDir, name), Type: TypeFile, Object: o, SHA256: s, Size: int64(len(u.Text)), Mode: 0o644, User: "root", Group: "root", OnConflict: ConflictFail, Unit: name})
		fmt.Fprintf(h, "text %s\n", s)
		texts = append(texts, u.Text)
	}
	for _, d := range sortedKeys(u.Dropins) {
		o, s := c.object([]byte(u.Dropins[d]), d)
		c.add(Entry{Path: path.Join(UnitDir, name+".d", d), Type: TypeFile, Object: o, SHA256: s, Size: int64(len(u.Dropins[d])), Mode: 0o644, User: "root", Group: "root", OnConflict: ConflictFail, Unit: name})
		fmt.Fprintf(h, "dropin %s %s\n", d, s)
		st.Dropins = append(st.Dropins, d)
		texts = append(texts, u.Dropins[d])
	}
	if u.Mask {
		c.add(Entry{Path: path.Join(UnitDir, name), Type: TypeSymlink, Target: "/dev/null", OnConflict: ConflictFail, Unit: name})
	}
	for _, tp := range u.RestartTriggers {
		f := b.Files[tp]
		if f == nil {
			return UnitState{}, fmt.Errorf("unit %s: restart trigger %s is not a declared file", name, tp)
		}
		var ts string
		switch {
		case f.URL != "":
			ts = strings.ToLower(f.SHA256)
		case f.Text != "":
			ts = sum([]byte(f.Text))
		default:
			ts = sum(f.Content)
		}
		fmt.Fprintf(h, "trigger %s %s %s %s %s\n", tp, ts, f.Mode, f.User, f.Group)
	}
	uf := unitfile.Parse(texts...)
	st.RestartIfChanged = uf.Bool("X-RestartIfChanged", true)
	st.ReloadIfChanged = uf.Bool("X-ReloadIfChanged", false)
	st.StopOnRemoval = uf.Bool("X-StopOnRemoval", true)
	if st.Managed && (u.Enable == nil || *u.Enable) {
		links := unitfile.Parse(u.Text).InstallLinks(UnitDir, name, path.Join(UnitDir, name))
		st.Enabled = len(links) > 0
		for _, l := range sortedKeys(links) {
			// A link systemctl made earlier is kept aside and put back later.
			c.add(Entry{Path: l, Type: TypeSymlink, Target: links[l], OnConflict: ConflictBackup, Unit: name})
		}
	}
	fmt.Fprintf(h, "enabled=%v\n", st.Enabled)
	st.Hash = hex.EncodeToString(h.Sum(nil))
	return st, nil
}

// file is the entry of a declared file.
func (c *compiler) file(p string, f *File) (Entry, error) {
	e := Entry{Path: p, Type: TypeFile, OnConflict: f.OnConflict}
	if e.OnConflict == "" {
		e.OnConflict = ConflictFail
	}
	switch {
	case f.URL != "":
		e.SHA256 = strings.ToLower(f.SHA256)
		e.Object = ObjectName(e.SHA256, p)
		e.URL = f.URL
		e.Size = -1
	case f.Text != "":
		e.Object, e.SHA256 = c.object([]byte(f.Text), p)
		e.Size = int64(len(f.Text))
	case f.HasContent || f.Content != nil:
		e.Object, e.SHA256 = c.object(f.Content, p)
		e.Size = int64(len(f.Content))
	default:
		return Entry{}, fmt.Errorf("file %s: no content in the bundle (source not read?)", p)
	}
	if f.Link {
		e.Type = TypeLink
		e.Target = path.Join(StoreDir, e.Object)
	} else {
		m, err := ParseMode(f.Mode, 0o644)
		if err != nil {
			return Entry{}, fmt.Errorf("file %s: %w", p, err)
		}
		e.Mode, e.User, e.Group = m, orDefault(f.User, "root"), orDefault(f.Group, "root")
	}
	return e, nil
}

// accounts adds the declared groups, users and secrets.
func (c *compiler) accounts(b *Services) error {
	g := c.Gen
	for _, n := range sortedKeys(b.Groups) {
		gr := b.Groups[n]
		a := AccountSpec{Name: n, System: true}
		if gr != nil {
			a.ID = gr.GID
			if gr.System != nil {
				a.System = *gr.System
			}
		}
		g.Groups = append(g.Groups, a)
	}
	for _, n := range sortedKeys(b.Users) {
		u := b.Users[n]
		a := AccountSpec{Name: n, System: true}
		if u != nil {
			a.ID, a.Group, a.Groups, a.Home, a.Shell, a.Description = u.UID, u.Group, u.Groups, u.Home, u.Shell, u.Description
			if u.System != nil {
				a.System = *u.System
			}
		}
		g.Users = append(g.Users, a)
	}
	for _, n := range sortedKeys(b.Secrets) {
		s := b.Secrets[n]
		m, err := ParseMode(s.Mode, 0o400)
		if err != nil {
			return fmt.Errorf("secret %s: %w", n, err)
		}
		g.Secrets = append(g.Secrets, SecretSpec{Name: n, Mode: m, User: orDefault(s.User, "root"), Group: orDefault(s.Group, "root")})
	}
	return nil
}

func describe(e Entry) string {
	if e.Unit != "" {
		return "unit " + e.Unit
	}
	return e.Type + " " + e.Path
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// declaredHash covers what the generation declares, not its number or date.
func (g *Generation) declaredHash() string {
	b, _ := json.Marshal(struct {
		E []Entry
		U []UnitState
		A [][]AccountSpec
		S []SecretSpec
	}{g.Entries, g.Units, [][]AccountSpec{g.Users, g.Groups}, g.Secrets})
	return sum(b)
}
