//go:build linux

package sysmgr

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// planInput is everything a plan is computed from. The host's disk and the
// ledger are the truth for files; units are compared with what the last
// activation(s) declared, because systemd cannot tell which unit content it
// runs.
type planInput struct {
	from *Generation // what `current` points at (Number 0: nothing)
	to   *Generation
	// units may be running: from's units, widened with an interrupted
	// activation's; dirty ones may run other content than declared.
	units  map[string]*UnitState
	dirty  map[string]bool
	ledger *Ledger
	acct   *accounts
	// secrets: nil leaves /run/nivis/secrets alone (rollback); otherwise
	// the full set, and files not in it are removed.
	secrets map[string][]byte
	// forceBackup keeps any unmanaged file aside instead of a conflict: a
	// revert takes back paths the failed run had just given back.
	forceBackup bool
}

type fileOp struct {
	Op
	prio int // among ops on one path: removal of the old type first
}

func (h *Host) plan(in *planInput) (*Plan, error) {
	pl := &planner{h: h, in: in, p: &Plan{From: in.from.Number, To: in.to.Number},
		want: in.to.EntryMap(), prev: in.from.EntryMap(), needed: map[string]bool{}, implicitNew: map[string]bool{}}
	for _, g := range in.to.Groups {
		if !in.acct.hasGroup(g.Name) {
			pl.accountOps = append(pl.accountOps, Op{Kind: OpAddGroup, Name: g.Name})
		}
	}
	for _, u := range in.to.Users {
		if !in.acct.hasUser(u.Name) {
			pl.accountOps = append(pl.accountOps, Op{Kind: OpAddUser, Name: u.Name})
		}
	}
	// Ancestors of wanted paths stay, even when nivis made them.
	for _, e := range in.to.Entries {
		for d := path.Dir(e.Path); d != "/" && d != "."; d = path.Dir(d) {
			pl.needed[d] = true
		}
	}
	for i := range in.to.Entries {
		if err := pl.entry(&in.to.Entries[i]); err != nil {
			return nil, err
		}
	}
	for d := range pl.implicitNew {
		pl.implicitClaims = append(pl.implicitClaims, d)
		pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: OpMkdir, Path: d, Reason: "parent directory"}, prio: 1})
		pl.touch(d)
	}
	sort.SliceStable(pl.fileOps, func(i, j int) bool {
		if pl.fileOps[i].Path != pl.fileOps[j].Path {
			return pl.fileOps[i].Path < pl.fileOps[j].Path
		}
		return pl.fileOps[i].prio < pl.fileOps[j].prio
	})

	pl.removals()
	var secretOps []Op
	if in.secrets != nil {
		ops, err := h.planSecrets(in)
		if err != nil {
			return nil, err
		}
		secretOps = ops
	}
	stopOps, unitOps, reload := planUnits(in)
	if len(stopOps)+len(unitOps) > 0 {
		reload = true
	}
	pl.assemble(stopOps, secretOps, unitOps, reload)
	return pl.p, nil
}

// planner collects a plan's ops by kind while it walks the entries.
type planner struct {
	h                                 *Host
	in                                *planInput
	p                                 *Plan
	want, prev                        map[string]*Entry
	needed, implicitNew               map[string]bool
	accountOps, backupOps, restoreOps []Op
	fileOps                           []fileOp
	claims, implicitClaims, releases  []string
	unitFilesChanged, tmpfilesChanged bool
}

func (pl *planner) touch(p string) {
	if strings.HasPrefix(p, UnitDir+"/") {
		pl.unitFilesChanged = true
	}
	if p == TmpfilesPath {
		pl.tmpfilesChanged = true
	}
}

func (pl *planner) conflict(e *Entry, d *onDisk, hint string) {
	pl.p.Conflicts = append(pl.p.Conflicts, Conflict{Path: e.Path, Found: d.describe(), Wanted: wantDescribe(e), Hint: hint})
}

func (pl *planner) addWrite(e *Entry, reason string) {
	kind := OpWrite
	if e.Type == TypeDir {
		kind = OpMkdir
	}
	pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: kind, Path: e.Path, Entry: e, Reason: reason}, prio: 1})
	pl.touch(e.Path)
}

// entry plans one wanted entry against the disk and the ledger.
func (pl *planner) entry(e *Entry) error {
	h, in, p := pl.h, pl.in, pl.p
	// Parents that are missing are made (and owned) by nivis.
	for d := path.Dir(e.Path); d != "/" && d != "."; d = path.Dir(d) {
		if w := pl.want[d]; w != nil && w.Type == TypeDir {
			break
		}
		dd, err := inspect(h.path(d))
		if err != nil {
			return err
		}
		if dd.Kind == "dir" {
			break
		}
		if dd.Kind != "" {
			p.Conflicts = append(p.Conflicts, Conflict{Path: d, Found: dd.describe(), Wanted: "a directory (parent of " + e.Path + ")", Hint: "move it away"})
			break
		}
		pl.implicitNew[d] = true
	}
	disk, err := inspect(h.path(e.Path))
	if err != nil {
		return err
	}
	same, err := sameContent(disk, e)
	if err != nil {
		return err
	}
	metaOK := h.metaMatches(disk, e, in.acct)
	owned := in.ledger.Paths[e.Path]
	switch {
	case owned == nil && disk.Kind == "":
		pl.claims = append(pl.claims, e.Path)
		pl.addWrite(e, "new")
	case owned == nil:
		switch {
		case e.Type == TypeDir && disk.Kind == "dir":
			// An existing directory is adopted, never removed later.
			pl.backupOps = append(pl.backupOps, Op{Kind: OpBackup, Path: e.Path, Reason: "existing directory adopted"})
			if !metaOK {
				pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: OpSetMeta, Path: e.Path, Entry: e, Reason: "mode or owner"}, prio: 1})
			}
		case e.Type == TypeDir || disk.Kind == "dir" || disk.Kind == "other":
			pl.conflict(e, disk, "nivis replaces only files and symlinks; move it away")
		case same:
			// Identical content: keep the original aside anyway, so
			// removing the entry later gives back exactly what was there.
			pl.backupOps = append(pl.backupOps, Op{Kind: OpBackup, Path: e.Path, Reason: "identical unmanaged file adopted"})
			if !metaOK {
				pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: OpSetMeta, Path: e.Path, Entry: e, Reason: "mode or owner"}, prio: 1})
				pl.touch(e.Path)
			}
		case e.OnConflict == ConflictBackup || in.forceBackup:
			pl.backupOps = append(pl.backupOps, Op{Kind: OpBackup, Path: e.Path, Reason: "unmanaged original kept"})
			pl.addWrite(e, "replaces an unmanaged file, original kept")
		case e.OnConflict == ConflictOverwrite:
			pl.claims = append(pl.claims, e.Path)
			pl.addWrite(e, "overwrites an unmanaged file")
		default:
			hint := "set onConflict: backup (keep and restore it later) or overwrite, or remove it"
			if e.Unit != "" {
				hint = "a unit file nivis did not write is there; remove it or drop the unit from the config"
			}
			pl.conflict(e, disk, hint)
		}
	default:
		reason := "changed"
		if old := pl.prev[e.Path]; old != nil && sameDeclared(old, e) {
			reason = "drift: edited on the host"
		}
		switch {
		case disk.Kind == "":
			pl.addWrite(e, "missing on the host")
		case e.Type == TypeDir && disk.Kind != "dir", e.Type != TypeDir && disk.Kind == "dir":
			// The entry changed type: take the old one away first.
			pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: OpRemove, Path: e.Path, Reason: "type changes"}, prio: 0})
			pl.addWrite(e, "type changes")
		case !same:
			if strings.HasPrefix(reason, "drift") {
				p.Drift = append(p.Drift, e.Path)
			}
			pl.addWrite(e, reason)
		case !metaOK:
			if strings.HasPrefix(reason, "drift") {
				p.Drift = append(p.Drift, e.Path+" (mode or owner)")
				reason = "drift: mode or owner changed on the host"
			}
			pl.fileOps = append(pl.fileOps, fileOp{Op: Op{Kind: OpSetMeta, Path: e.Path, Entry: e, Reason: reason}, prio: 1})
			pl.touch(e.Path)
		}
	}
	return nil
}

// removals plans what nivis owns and no longer wants: it goes, children
// first; originals come back.
func (pl *planner) removals() {
	in := pl.in
	var owned []string
	for q := range in.ledger.Paths {
		owned = append(owned, q)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(owned)))
	for _, q := range owned {
		if pl.want[q] != nil || pl.needed[q] {
			continue
		}
		pl.touch(q)
		if in.ledger.Paths[q].Backup != nil {
			pl.restoreOps = append(pl.restoreOps, Op{Kind: OpRestore, Path: q, Reason: "no longer managed; original restored"})
			continue
		}
		pl.restoreOps = append(pl.restoreOps, Op{Kind: OpRemove, Path: q, Reason: "no longer managed"})
		pl.releases = append(pl.releases, q)
	}
}

// assemble puts the ops in execution order.
func (pl *planner) assemble(stopOps, secretOps, unitOps []Op, reload bool) {
	p, in := pl.p, pl.in
	// Assemble in execution order.
	p.Ops = append(p.Ops, pl.accountOps...)
	p.Ops = append(p.Ops, stopOps...)
	p.Ops = append(p.Ops, pl.backupOps...)
	if len(pl.claims) > 0 {
		sort.Strings(pl.claims)
		p.Ops = append(p.Ops, Op{Kind: OpClaim, Paths: pl.claims})
	}
	if len(pl.implicitClaims) > 0 {
		sort.Strings(pl.implicitClaims)
		p.Ops = append(p.Ops, Op{Kind: OpClaim, Paths: pl.implicitClaims, Implicit: true, Reason: "parent directories"})
	}
	for _, f := range pl.fileOps {
		p.Ops = append(p.Ops, f.Op)
	}
	p.Ops = append(p.Ops, pl.restoreOps...)
	if len(pl.releases) > 0 {
		p.Ops = append(p.Ops, Op{Kind: OpRelease, Paths: pl.releases})
	}
	p.Ops = append(p.Ops, secretOps...)
	if reload || pl.unitFilesChanged {
		p.Ops = append(p.Ops, Op{Kind: OpDaemonReload})
	}
	if pl.tmpfilesChanged && pl.want[TmpfilesPath] != nil {
		p.Ops = append(p.Ops, Op{Kind: OpTmpfiles, Path: TmpfilesPath})
	}
	p.Ops = append(p.Ops, unitOps...)
	var verify []string
	for _, o := range unitOps {
		switch o.Kind {
		case OpStartUnit, OpRestartUnit, OpTryRestart, OpReloadUnit:
			verify = append(verify, o.Unit)
		}
	}
	if len(verify) > 0 {
		p.Ops = append(p.Ops, Op{Kind: OpVerifyUnits, Units: verify})
	}
	if in.to.Number != in.from.Number {
		p.Ops = append(p.Ops, Op{Kind: OpSwitch, Generation: in.to.Number})
	}
}

// planUnits decides, per unit, what systemd must do; stops come before any
// file goes, the rest after daemon-reload.
func planUnits(in *planInput) (stops, after []Op, reload bool) {
	names := map[string]bool{}
	for n := range in.units {
		names[n] = true
	}
	newUnits := in.to.UnitMap()
	for n := range newUnits {
		names[n] = true
	}
	for _, name := range sortedKeys(names) {
		o, n, dirty := in.units[name], newUnits[name], in.dirty[name]
		switch {
		case o != nil && n == nil:
			reload = true
			switch {
			case o.Mask:
				// Unmasked: the distro's unit is usable again; it runs again
				// only if it ran when nivis masked it.
				if contains(in.ledger.Masked, name) {
					after = append(after, Op{Kind: OpStartUnit, Unit: name, Reason: "unmasked; it ran before nivis masked it"})
				}
			case o.Managed:
				if o.StopOnRemoval || dirty {
					stops = append(stops, Op{Kind: OpStopUnit, Unit: name, Reason: "removed"})
				}
				after = append(after, Op{Kind: OpResetFailed, Unit: name, Reason: "removed"})
			default:
				after = append(after, Op{Kind: OpTryRestart, Unit: name, Reason: "drop-ins removed"})
			}
		case o == nil && n != nil:
			reload = true
			switch {
			case n.Mask:
				stops = append(stops, Op{Kind: OpStopUnit, Unit: name, Reason: "masked", Masking: true})
			case n.Managed && n.Enabled:
				after = append(after, Op{Kind: OpStartUnit, Unit: name, Reason: "new"})
			case !n.Managed:
				after = append(after, Op{Kind: OpTryRestart, Unit: name, Reason: "drop-ins added"})
			}
		case o != nil && n != nil && (o.Hash != n.Hash || dirty):
			reload = true
			why := "changed"
			if o.Hash == n.Hash {
				why = "may run other content after an interrupted activation"
			}
			switch {
			case n.Mask:
				if !o.Mask {
					stops = append(stops, Op{Kind: OpStopUnit, Unit: name, Reason: "masked", Masking: true})
				}
			case o.Mask:
				if n.Enabled || contains(in.ledger.Masked, name) {
					after = append(after, Op{Kind: OpStartUnit, Unit: name, Reason: "unmasked"})
				}
			case !n.RestartIfChanged:
				if n.Enabled {
					// X-RestartIfChanged=false: leave a running unit alone, start a stopped one.
					after = append(after, Op{Kind: OpStartUnit, Unit: name, Reason: why + "; X-RestartIfChanged=false"})
				}
			case n.ReloadIfChanged:
				after = append(after, Op{Kind: OpReloadUnit, Unit: name, Reason: why + "; X-ReloadIfChanged"})
			case n.Managed && n.Enabled:
				after = append(after, Op{Kind: OpRestartUnit, Unit: name, Reason: why})
			default:
				after = append(after, Op{Kind: OpTryRestart, Unit: name, Reason: why})
			}
		}
	}
	return stops, after, reload
}

func (h *Host) planSecrets(in *planInput) ([]Op, error) {
	var ops []Op
	declared := map[string]bool{}
	for _, s := range in.to.Secrets {
		declared[s.Name] = true
		data, ok := in.secrets[s.Name]
		if !ok {
			return nil, fmt.Errorf("secret %s is declared but its content was not sent", s.Name)
		}
		full := h.path(filepath.Join(SecretsDir, s.Name))
		d, err := inspect(full)
		if err != nil {
			return nil, err
		}
		if d.Kind == "file" && d.Size == int64(len(data)) {
			cur, err := os.ReadFile(full)
			if err == nil && bytes.Equal(cur, data) && h.metaMatches(d, &Entry{Type: TypeFile, Mode: s.Mode, User: s.User, Group: s.Group}, in.acct) {
				continue
			}
		}
		ops = append(ops, Op{Kind: OpWriteSecret, Name: s.Name})
	}
	ents, err := os.ReadDir(h.path(SecretsDir))
	if err == nil {
		for _, e := range ents {
			if !declared[e.Name()] && !strings.Contains(e.Name(), ".nivis-tmp-") {
				ops = append(ops, Op{Kind: OpRemoveSecret, Name: e.Name()})
			}
		}
	}
	return ops, nil
}

// sameContent compares what is on disk with an entry, ignoring mode/owner.
func sameContent(d *onDisk, e *Entry) (bool, error) {
	switch e.Type {
	case TypeFile:
		if d.Kind != "file" || (e.Size >= 0 && d.Size != e.Size) {
			return false, nil
		}
		s, err := d.SHA256()
		if err != nil {
			return false, err
		}
		return s == e.SHA256, nil
	case TypeLink, TypeSymlink:
		return d.Kind == "symlink" && d.Target == e.Target, nil
	case TypeDir:
		return d.Kind == "dir", nil
	}
	return false, nil
}

func (h *Host) metaMatches(d *onDisk, e *Entry, acct *accounts) bool {
	if e.Type != TypeFile && e.Type != TypeDir {
		return true
	}
	if d.Kind == "" || d.Mode != e.Mode {
		return false
	}
	uid, err1 := acct.uid(e.User)
	gid, err2 := acct.gid(e.Group)
	return err1 == nil && err2 == nil && d.UID == uid && d.GID == gid
}

// sameDeclared tells drift (same declaration, other content on disk) from a change.
func sameDeclared(a, b *Entry) bool {
	return a.Type == b.Type && a.SHA256 == b.SHA256 && a.Target == b.Target && a.Mode == b.Mode && a.User == b.User && a.Group == b.Group
}

func wantDescribe(e *Entry) string {
	switch e.Type {
	case TypeFile:
		return "a managed file"
	case TypeLink:
		return "a link into the store"
	case TypeSymlink:
		return "a symlink to " + e.Target
	}
	return "a directory"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
