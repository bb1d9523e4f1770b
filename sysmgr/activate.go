//go:build linux

package sysmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
)

// The activation journal: written (and fsynced) before the first op, one
// progress line per finished op, removed after the switch. Its presence
// means an activation did not finish.
const (
	JournalFile  = StateDir + "/journal.json"
	ProgressFile = StateDir + "/journal.progress"
)

// Journal is the write-ahead record of one activation.
type Journal struct {
	Kind    string    `json:"kind"` // apply, revert, rollback, deactivate, confirm-timeout
	From    int       `json:"from"`
	To      int       `json:"to"`
	Started time.Time `json:"started"`
	Ops     []Op      `json:"ops"`
}

func (h *Host) loadJournal() (*Journal, error) {
	raw, err := os.ReadFile(h.path(JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j := &Journal{}
	if err := json.Unmarshal(raw, j); err != nil {
		// A torn journal is still proof of an interrupted run; the plan from
		// the ledger and the disk does not need its contents.
		return &Journal{Kind: "unknown"}, nil
	}
	return j, nil
}

// progress reads how far an interrupted activation got.
func (h *Host) progress() int {
	raw, _ := os.ReadFile(h.path(ProgressFile))
	return bytes.Count(raw, []byte("\n"))
}

// state is what every mutating verb starts from.
type state struct {
	cur     *Generation
	ledger  *Ledger
	acct    *accounts
	journal *Journal
	units   map[string]*UnitState
	dirty   map[string]bool
	notes   []string
}

// load reads the host's sysmgr state. An interrupted activation widens the
// units that may be running: both of its generations count, and units they
// disagree on are dirty (restarted if still wanted, stopped if not).
func (h *Host) load() (*state, error) {
	s := &state{dirty: map[string]bool{}}
	n, err := h.current()
	if err != nil {
		return nil, err
	}
	if s.cur, err = h.loadGeneration(n); err != nil {
		return nil, err
	}
	if s.ledger, err = h.loadLedger(); err != nil {
		return nil, err
	}
	if s.acct, err = loadAccounts(h.Root); err != nil {
		return nil, err
	}
	if s.journal, err = h.loadJournal(); err != nil {
		return nil, err
	}
	s.units = s.cur.UnitMap()
	if j := s.journal; j != nil {
		s.notes = append(s.notes, fmt.Sprintf("an earlier %s (generation %d -> %d, started %s) was interrupted after %d of %d steps; converging from what is on the host",
			j.Kind, j.From, j.To, j.Started.Format(time.RFC3339), h.progress(), len(j.Ops)))
		gens := []*Generation{s.cur}
		for _, gn := range []int{j.From, j.To} {
			if g, err := h.loadGeneration(gn); err == nil {
				gens = append(gens, g)
			}
		}
		// A unit the generations disagree on (content, or presence) may have
		// been stopped, started or restarted by the interrupted run.
		for _, g := range gens {
			for _, u := range g.Units {
				u := u
				if s.units[u.Name] == nil {
					s.units[u.Name] = &u
				}
				for _, other := range gens {
					if ou := other.UnitMap()[u.Name]; ou == nil || ou.Hash != u.Hash {
						s.dirty[u.Name] = true
					}
				}
			}
		}
	}
	return s, nil
}

// execState is what ops need while they run.
type execState struct {
	to      *Generation
	ledger  *Ledger
	acct    *accounts
	secrets map[string][]byte
}

// opError is an op that failed.
type opError struct {
	i   int
	op  Op
	err error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// execute runs plan under a write-ahead journal.
func (h *Host) execute(ctx context.Context, kind string, p *Plan, es *execState) error {
	j := &Journal{Kind: kind, From: p.From, To: p.To, Started: h.now(), Ops: p.Ops}
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := writeBytesAtomic(h.path(JournalFile), raw, 0o600); err != nil {
		return &opError{i: -1, op: Op{Kind: "journal"}, err: err}
	}
	prog, err := os.OpenFile(h.path(ProgressFile), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return &opError{i: -1, op: Op{Kind: "journal"}, err: err}
	}
	defer prog.Close()
	for i, op := range p.Ops {
		if h.hook != nil {
			h.hook("before", i, op)
		}
		if err := h.exec(ctx, op, es); err != nil {
			return &opError{i: i, op: op, err: err}
		}
		fmt.Fprintf(prog, "%d %s\n", i, op.Kind)
		if h.hook != nil {
			h.hook("after", i, op)
		}
	}
	os.Remove(h.path(ProgressFile))
	if err := os.Remove(h.path(JournalFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(h.path(StateDir))
}

func (h *Host) exec(ctx context.Context, op Op, es *execState) error {
	full := h.path(op.Path)
	switch op.Kind {
	case OpStopUnit, OpDaemonReload, OpTmpfiles, OpResetFailed, OpStartUnit, OpRestartUnit, OpTryRestart, OpReloadUnit, OpVerifyUnits:
		return h.execUnit(ctx, op, es)
	case OpAddGroup:
		for _, g := range es.to.Groups {
			if g.Name == op.Name {
				return h.addGroup(ctx, es.ledger, es.acct, g)
			}
		}
		return fmt.Errorf("group %s is not in generation %d", op.Name, es.to.Number)
	case OpAddUser:
		for _, u := range es.to.Users {
			if u.Name == op.Name {
				return h.addUser(ctx, es.ledger, es.acct, u)
			}
		}
		return fmt.Errorf("user %s is not in generation %d", op.Name, es.to.Number)
	case OpBackup:
		return h.takeBackup(es.ledger, op.Path)
	case OpClaim:
		changed := false
		for _, p := range op.Paths {
			if es.ledger.Paths[p] == nil {
				es.ledger.Paths[p] = &Owned{Implicit: op.Implicit}
				changed = true
			}
		}
		if !changed {
			return nil
		}
		return h.saveLedger(es.ledger)
	case OpMkdir:
		return h.mkdir(es, op, full)
	case OpWrite:
		e := op.Entry
		switch e.Type {
		case TypeFile:
			uid, gid, err := h.owner(es.acct, e)
			if err != nil {
				return err
			}
			return copyFileAtomic(h.objectPath(e.Object), full, fileMode(e.Mode), uid, gid)
		case TypeLink, TypeSymlink:
			return symlinkAtomic(e.Target, full)
		}
		return fmt.Errorf("unknown entry type %q", e.Type)
	case OpSetMeta:
		uid, gid, err := h.owner(es.acct, op.Entry)
		if err != nil {
			return err
		}
		if err := os.Lchown(full, uid, gid); err != nil {
			return err
		}
		return os.Chmod(full, fileMode(op.Entry.Mode))
	case OpRemove:
		d, err := inspect(full)
		if err != nil || d.Kind == "" {
			return err
		}
		if err := os.Remove(full); err != nil {
			if d.Kind == "dir" && errors.Is(err, syscall.ENOTEMPTY) {
				h.logf("warning", "kept %s: the directory holds files nivis does not manage", op.Path)
				return nil
			}
			return err
		}
		return syncDir(filepath.Dir(full))
	case OpRestore:
		return h.restoreBackup(es.ledger, op.Path)
	case OpRelease:
		for _, p := range op.Paths {
			if o := es.ledger.Paths[p]; o != nil && o.Backup == nil {
				delete(es.ledger.Paths, p)
			}
		}
		return h.saveLedger(es.ledger)
	case OpWriteSecret:
		return h.writeSecret(es, op.Name)
	case OpRemoveSecret:
		err := os.Remove(h.path(filepath.Join(SecretsDir, op.Name)))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	case OpSwitch:
		return h.switchCurrent(op.Generation)
	}
	return fmt.Errorf("unknown op %q", op.Kind)
}

// execUnit runs the ops that talk to the service manager.
func (h *Host) execUnit(ctx context.Context, op Op, es *execState) error {
	switch op.Kind {
	case OpStopUnit:
		if op.Masking && !contains(es.ledger.Masked, op.Unit) {
			if st, err := h.Systemd.State(ctx, op.Unit); err == nil && st.Active == "active" {
				es.ledger.Masked = append(es.ledger.Masked, op.Unit)
				if err := h.saveLedger(es.ledger); err != nil {
					return err
				}
			}
		}
		return h.Systemd.Stop(ctx, op.Unit)
	case OpDaemonReload:
		return h.Systemd.DaemonReload(ctx)
	case OpTmpfiles:
		argv := []string{"systemd-tmpfiles", "--create"}
		if h.Root != "/" {
			argv = append(argv, "--root="+h.Root)
		}
		_, err := h.run(ctx, append(argv, op.Path)...)
		return err
	case OpResetFailed:
		_ = h.Systemd.ResetFailed(ctx, op.Unit) // a unit that never failed has nothing to reset
		return nil
	case OpStartUnit:
		if err := h.Systemd.Start(ctx, op.Unit); err != nil {
			return err
		}
		if i := indexOf(es.ledger.Masked, op.Unit); i >= 0 && !es.to.UnitMap()[op.Unit].isMasked() {
			es.ledger.Masked = append(es.ledger.Masked[:i], es.ledger.Masked[i+1:]...)
			return h.saveLedger(es.ledger)
		}
		return nil
	case OpRestartUnit:
		return h.Systemd.Restart(ctx, op.Unit)
	case OpTryRestart:
		return h.Systemd.TryRestart(ctx, op.Unit)
	case OpReloadUnit:
		st, err := h.Systemd.State(ctx, op.Unit)
		if err != nil {
			return err
		}
		if st.Active == "active" {
			return h.Systemd.Reload(ctx, op.Unit)
		}
		if u := es.to.UnitMap()[op.Unit]; u != nil && u.Enabled {
			return h.Systemd.Start(ctx, op.Unit)
		}
		return nil
	case OpVerifyUnits:
		return h.verifyUnits(ctx, op.Units)
	}
	return fmt.Errorf("unknown op %q", op.Kind)
}

// mkdir makes a directory with the entry's mode and owner (root's 0755
// for the parents nivis adds).
func (h *Host) mkdir(es *execState, op Op, full string) error {
	mode, uid, gid := uint32(0o755), 0, 0
	if op.Entry != nil {
		var err error
		mode = op.Entry.Mode
		if uid, gid, err = h.owner(es.acct, op.Entry); err != nil {
			return err
		}
	}
	if err := os.Mkdir(full, fileMode(mode)); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if fi, err := os.Lstat(full); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: not a directory after mkdir", op.Path)
	}
	if err := os.Chmod(full, fileMode(mode)); err != nil { // mkdir honours the umask
		return err
	}
	if err := os.Lchown(full, uid, gid); err != nil {
		return err
	}
	return syncDir(filepath.Dir(full))
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// isMasked is true for a unit the generation masks (false when absent).
func (u *UnitState) isMasked() bool { return u != nil && u.Mask }

func (h *Host) owner(acct *accounts, e *Entry) (int, int, error) {
	uid, err := acct.uid(e.User)
	if err != nil {
		return 0, 0, err
	}
	gid, err := acct.gid(e.Group)
	return uid, gid, err
}

// UnitFailedError is a unit that failed after its job reported success
// (a simple service that exits right away).
type UnitFailedError struct {
	Unit   string
	Status UnitStatus
}

func (e *UnitFailedError) Error() string {
	return fmt.Sprintf("%s is %s (%s) after starting", e.Unit, e.Status.Active, e.Status.Sub)
}

// verifyUnits watches started units for Settle and fails on the first that
// fails: a start job of a simple service is "done" as soon as it forked.
func (h *Host) verifyUnits(ctx context.Context, units []string) error {
	deadline := h.now().Add(h.Settle)
	for {
		for _, u := range units {
			st, err := h.Systemd.State(ctx, u)
			if err != nil {
				return err
			}
			if st.Failed() {
				return &UnitFailedError{Unit: u, Status: st}
			}
		}
		if !h.now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (h *Host) writeSecret(es *execState, name string) error {
	var spec *SecretSpec
	for i := range es.to.Secrets {
		if es.to.Secrets[i].Name == name {
			spec = &es.to.Secrets[i]
		}
	}
	data, ok := es.secrets[name]
	if spec == nil || !ok {
		return fmt.Errorf("secret %s: no content (secrets are never stored on the host; apply the config again to send them)", name)
	}
	dir := h.path(SecretsDir)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if h.Root == "/" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return err
		}
		const tmpfsMagic = 0x01021994
		if st.Type != tmpfsMagic {
			return exitcode.Errorf(exitcode.Precondition, "%s is not on a tmpfs; secrets must not reach a disk", SecretsDir)
		}
	}
	uid, gid, err := h.owner(es.acct, &Entry{User: spec.User, Group: spec.Group})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name), bytes.NewReader(data), fileMode(spec.Mode), uid, gid)
}

// activate plans from s to `to`, runs the plan, and on any failure reverts
// the host to s.cur completely.
func (h *Host) activate(ctx context.Context, kind string, s *state, to *Generation, secrets map[string][]byte, forceBackup bool) (*Plan, error) {
	p, err := h.plan(&planInput{from: s.cur, to: to, units: s.units, dirty: s.dirty, ledger: s.ledger, acct: s.acct, secrets: secrets, forceBackup: forceBackup})
	if err != nil {
		return nil, err
	}
	p.Notes = append(s.notes, p.Notes...)
	if len(p.Conflicts) > 0 {
		return p, exitcode.Wrap(exitcode.Precondition, &ConflictError{Conflicts: p.Conflicts})
	}
	if p.Empty() && s.journal == nil {
		return p, nil
	}
	h.step("activate", "%s: %d changes (generation %d -> %d)", kind, p.Changes(), p.From, p.To)
	es := &execState{to: to, ledger: s.ledger, acct: s.acct, secrets: secrets}
	err = h.execute(ctx, kind, p, es)
	if err == nil {
		return p, nil
	}
	ae := &ActivationError{Kind: kind, From: s.cur.Number, To: to.Number, Err: err.Error()}
	var oe *opError
	if errors.As(err, &oe) {
		ae.Op = oe.op
		ae.Err = oe.err.Error()
	}
	var uf *UnitFailedError
	switch {
	case errors.As(err, &uf):
		ae.Unit = uf.Unit
	case ae.Op.Unit != "":
		ae.Unit = ae.Op.Unit
	}
	if ae.Unit != "" {
		ae.Status, ae.Journal = h.diagnose(ctx, ae.Unit)
	}
	h.logf("error", "%s failed at %s: %s; reverting to generation %d", kind, ae.Op, ae.Err, s.cur.Number)
	if rerr := h.revert(ctx, s, to); rerr != nil {
		ae.RevertErr = rerr.Error()
	} else {
		ae.Reverted = true
	}
	return p, exitcode.Wrap(exitcode.Change, ae)
}

// revert goes back from a failed activation towards s.cur, owning again
// whatever the failed run gave back (its originals are kept aside again).
func (h *Host) revert(ctx context.Context, s *state, failed *Generation) error {
	ledger, err := h.loadLedger()
	if err != nil {
		return err
	}
	acct, err := loadAccounts(h.Root)
	if err != nil {
		return err
	}
	// Units the failed run dropped may have been stopped by it: dirty, so
	// going back starts them again.
	units, dirty := failed.UnitMap(), map[string]bool{}
	for n, u := range s.units {
		if units[n] == nil {
			units[n], dirty[n] = u, true
		}
	}
	for n := range s.dirty {
		dirty[n] = true
	}
	p, err := h.plan(&planInput{from: failed, to: s.cur, units: units, dirty: dirty, ledger: ledger, acct: acct, forceBackup: true})
	if err != nil {
		return err
	}
	if len(p.Conflicts) > 0 {
		return &ConflictError{Conflicts: p.Conflicts}
	}
	// The failed generation never became current: make sure the plan
	// points `current` back even when numbers match.
	if !hasSwitch(p) {
		p.Ops = append(p.Ops, Op{Kind: OpSwitch, Generation: s.cur.Number})
	}
	return h.execute(ctx, "revert", p, &execState{to: s.cur, ledger: ledger, acct: acct})
}

func hasSwitch(p *Plan) bool {
	for _, o := range p.Ops {
		if o.Kind == OpSwitch {
			return true
		}
	}
	return false
}

// diagnose collects what a person needs to see about a failed unit.
func (h *Host) diagnose(ctx context.Context, unit string) (status, journal string) {
	out, _ := h.run(ctx, "systemctl", "status", unit, "--no-pager", "--full", "--lines=0")
	status = string(out)
	out, _ = h.run(ctx, "journalctl", "-u", unit, "-n", "20", "--no-pager", "-o", "cat")
	journal = string(out)
	return status, journal
}

// checkPaths refuses a bundle that reaches outside the trees nivis manages
// (the client validated it; the agent does not trust the wire).
func checkPaths(g *Generation) error {
	for _, e := range g.Entries {
		if e.Unit != "" || e.Path == TmpfilesPath {
			if !strings.HasPrefix(e.Path, UnitDir+"/") && e.Path != TmpfilesPath {
				return fmt.Errorf("unit entry %s outside %s", e.Path, UnitDir)
			}
			if path.Clean(e.Path) != e.Path || strings.Contains(e.Path, "/../") {
				return fmt.Errorf("unclean unit path %s", e.Path)
			}
			continue
		}
		if err := pathAllowed(e.Path); err != nil {
			return err
		}
	}
	return nil
}
