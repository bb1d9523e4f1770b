//go:build linux

package sysmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
)

// PendingFile holds the generation that rolls back unless confirmed.
const PendingFile = StateDir + "/pending.json"

func (h *Host) loadPending() (*Pending, error) {
	raw, err := os.ReadFile(h.path(PendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := &Pending{}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", PendingFile, err)
	}
	return p, nil
}

func (h *Host) clearPending() error {
	if err := os.Remove(h.path(PendingFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(h.path(StateDir))
}

// settlePending deals with a confirm window left by an earlier apply: an
// expired one is rolled back now (the watcher died, or the host rebooted),
// a live one blocks unless the caller supersedes it.
func (h *Host) settlePending(ctx context.Context, supersede bool) ([]string, error) {
	p, err := h.loadPending()
	if err != nil || p == nil {
		return nil, err
	}
	if supersede {
		return []string{fmt.Sprintf("generation %d was waiting for confirmation; superseded", p.Generation)}, h.clearPending()
	}
	if h.now().Before(p.Deadline) {
		return nil, exitcode.Errorf(exitcode.Precondition, "generation %d waits for confirmation until %s: run `nivis confirm` to keep it, or wait for the rollback", p.Generation, p.Deadline.Format(time.RFC3339))
	}
	if err := h.rollbackPending(ctx, p); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("generation %d was not confirmed by %s; rolled back to generation %d", p.Generation, p.Deadline.Format(time.RFC3339), p.Previous)}, nil
}

// rollbackPending goes back to the generation before an unconfirmed one.
// The caller holds the lock.
func (h *Host) rollbackPending(ctx context.Context, p *Pending) error {
	s, err := h.load()
	if err != nil {
		return err
	}
	if s.cur.Number == p.Generation || s.journal != nil {
		to, err := h.loadGeneration(p.Previous)
		if err != nil {
			return err
		}
		if _, err := h.activate(ctx, "confirm-timeout", s, to, nil, true); err != nil {
			return err
		}
	}
	return h.clearPending()
}

// activation is what apply, rollback and deactivate do differently inside
// the one flow of switch: which generation, which secrets, what after.
type activation struct {
	kind string
	// supersede drops a live confirm window instead of refusing.
	supersede bool
	secrets   map[string][]byte
	// target picks the generation to activate from the loaded state and
	// fills what it knows of res.
	target func(ctx context.Context, s *state, res *ApplyResult) (*Generation, error)
	// after runs, still under the lock, once the activation ended with err.
	after func(ctx context.Context, s *state, res *ApplyResult, err error) error
}

// switchTo is the flow every activation shares: probe the host, take the
// lock, settle a confirm window left behind, load the state, activate.
func (h *Host) switchTo(ctx context.Context, a activation) (*ApplyResult, error) {
	if err := h.probe(); err != nil {
		return nil, err
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &ApplyResult{}
	if res.Recovered, err = h.settlePending(ctx, a.supersede); err != nil {
		return nil, err
	}
	s, err := h.load()
	if err != nil {
		return nil, err
	}
	g, err := a.target(ctx, s, res)
	if err != nil {
		return nil, err
	}
	p, err := h.activate(ctx, a.kind, s, g, a.secrets, false)
	res.Plan = p
	if p != nil {
		res.Changes = p.Changes()
	}
	if a.after != nil {
		err = a.after(ctx, s, res, err)
	}
	return res, err
}

// compileRequest compiles the bundle of a request; the agent does not
// trust the wire, so the paths are checked again.
func compileRequest(b *Services) (*Compiled, error) {
	if b == nil {
		return nil, exitcode.Errorf(exitcode.Usage, "no bundle in the request")
	}
	compiled, err := Compile(b)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	if err := checkPaths(compiled.Gen); err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	return compiled, nil
}

// Apply makes the host what req.Bundle declares.
func (h *Host) Apply(ctx context.Context, req *ApplyRequest) (*ApplyResult, error) {
	compiled, err := compileRequest(req.Bundle)
	if err != nil {
		return nil, err
	}
	secrets := map[string][]byte{}
	for _, s := range req.Secrets {
		secrets[s.Name] = s.Data
	}
	var target *Generation
	return h.switchTo(ctx, activation{kind: "apply", secrets: secrets,
		target: func(ctx context.Context, s *state, res *ApplyResult) (*Generation, error) {
			if err := h.ensureObjects(ctx, compiled.Gen, compiled.Objects); err != nil {
				return nil, err
			}
			t, isNew, err := h.target(s, compiled.Gen, req.Message)
			if err != nil {
				return nil, err
			}
			res.Previous, res.Generation, res.New = s.cur.Number, t.Number, isNew
			if isNew {
				if err := h.writeGeneration(t); err != nil {
					return nil, err
				}
			}
			target = t
			return t, nil
		},
		after: func(ctx context.Context, s *state, res *ApplyResult, err error) error {
			return h.afterApply(ctx, req, s, target, res, err)
		},
	})
}

// afterApply drops generations no one needs after an apply and opens the
// confirm window.
func (h *Host) afterApply(ctx context.Context, req *ApplyRequest, s *state, target *Generation, res *ApplyResult, err error) error {
	if err != nil {
		// Keep the failed generation only when the host is left between
		// generations: the journal names it and the next apply needs it.
		var ae *ActivationError
		if res.New && !(errors.As(err, &ae) && !ae.Reverted) {
			os.Remove(h.genPath(target.Number))
		}
		return err
	}
	if j := s.journal; j != nil {
		// The interrupted run's generation never became current: drop it.
		failed := j.To
		if j.Kind == "revert" {
			failed = j.From
		}
		if (j.Kind == "apply" || j.Kind == "revert") && failed != target.Number && failed != s.cur.Number && failed != 0 {
			os.Remove(h.genPath(failed))
		}
	}
	if target.Number != s.cur.Number && (req.ConfirmTimeout > 0 || req.Try) {
		if res.Pending, err = h.startPending(ctx, target.Number, s.cur.Number, req.ConfirmTimeout, req.Try); err != nil {
			return err
		}
	}
	return nil
}

// target picks the generation to activate: the current one when nothing
// is declared differently, the interrupted one when it declared the same,
// else a new number.
func (h *Host) target(s *state, g *Generation, message string) (*Generation, bool, error) {
	if s.cur.Number != 0 && s.cur.Hash == g.Hash {
		return s.cur, false, nil
	}
	if j := s.journal; j != nil && j.To != 0 {
		if jg, err := h.loadGeneration(j.To); err == nil && jg.Hash == g.Hash {
			return jg, false, nil
		}
	}
	nums, err := h.generationNumbers()
	if err != nil {
		return nil, false, err
	}
	next := 1
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	if s.cur.Number >= next {
		next = s.cur.Number + 1
	}
	ng := *g
	ng.Number, ng.Date, ng.Message = next, h.now().UTC(), message
	return &ng, true, nil
}

// Diff computes the plan for req.Bundle without changing anything.
func (h *Host) Diff(ctx context.Context, req *DiffRequest) (*DiffResult, error) {
	compiled, err := compileRequest(req.Bundle)
	if err != nil {
		return nil, err
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := h.load()
	if err != nil {
		return nil, err
	}
	target := compiled.Gen
	if s.cur.Number != 0 && s.cur.Hash == target.Hash {
		target = s.cur
	} else {
		target.Number = s.cur.Number + 1
		if nums, _ := h.generationNumbers(); len(nums) > 0 && nums[len(nums)-1] >= target.Number {
			target.Number = nums[len(nums)-1] + 1
		}
	}
	p, err := h.plan(&planInput{from: s.cur, to: target, units: s.units, dirty: s.dirty, ledger: s.ledger, acct: s.acct})
	if err != nil {
		return nil, err
	}
	p.Notes = append(s.notes, p.Notes...)
	if pend, _ := h.loadPending(); pend != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("generation %d waits for confirmation until %s", pend.Generation, pend.Deadline.Format(time.RFC3339)))
	}
	return &DiffResult{Current: s.cur.Number, Plan: p}, nil
}

// Generations lists the generations on the host.
func (h *Host) Generations(ctx context.Context) (*GenerationsResult, error) {
	cur, err := h.current()
	if err != nil {
		return nil, err
	}
	nums, err := h.generationNumbers()
	if err != nil {
		return nil, err
	}
	res := &GenerationsResult{Current: cur, Generations: []Summary{}}
	res.Pending, _ = h.loadPending()
	for _, n := range nums {
		g, err := h.loadGeneration(n)
		if err != nil {
			continue
		}
		sm := Summary{Number: n, Date: g.Date, Message: g.Message, Units: len(g.Units), Current: n == cur}
		for _, e := range g.Entries {
			if e.Unit == "" {
				sm.Files++
			}
		}
		sm.Pending = res.Pending != nil && res.Pending.Generation == n
		res.Generations = append(res.Generations, sm)
	}
	if j, _ := h.loadJournal(); j != nil {
		res.Interrupted = fmt.Sprintf("%s %d -> %d started %s, %d of %d steps done", j.Kind, j.From, j.To, j.Started.Format(time.RFC3339), h.progress(), len(j.Ops))
	}
	return res, nil
}

// Rollback activates generation to (0: the newest one before current).
func (h *Host) Rollback(ctx context.Context, to int) (*ApplyResult, error) {
	return h.switchTo(ctx, activation{kind: "rollback", supersede: true,
		target: func(ctx context.Context, s *state, res *ApplyResult) (*Generation, error) {
			if to == 0 {
				nums, err := h.generationNumbers()
				if err != nil {
					return nil, err
				}
				for _, n := range nums {
					if n < s.cur.Number || s.cur.Number == 0 {
						to = n
					}
				}
				if to == 0 || to == s.cur.Number {
					return nil, exitcode.Errorf(exitcode.Precondition, "no generation before %d to roll back to; `nivis generations` lists them", s.cur.Number)
				}
			}
			g, err := h.loadGeneration(to)
			if err != nil {
				return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("%w; `nivis generations` lists them", err))
			}
			if err := h.ensureObjects(ctx, g, nil); err != nil {
				return nil, err
			}
			res.Previous, res.Generation = s.cur.Number, to
			return g, nil
		}})
}

// Deactivate stops and removes everything nivis manages, restores the
// originals it kept, and removes the secrets. Generations stay for gc.
func (h *Host) Deactivate(ctx context.Context) (*ApplyResult, error) {
	return h.switchTo(ctx, activation{kind: "deactivate", supersede: true, secrets: map[string][]byte{},
		target: func(ctx context.Context, s *state, res *ApplyResult) (*Generation, error) {
			res.Previous = s.cur.Number
			return &Generation{}, nil
		},
		after: func(ctx context.Context, s *state, res *ApplyResult, err error) error {
			if err == nil {
				os.Remove(h.path(SecretsDir))
				if len(s.ledger.Users)+len(s.ledger.Groups) > 0 {
					res.Recovered = append(res.Recovered, fmt.Sprintf("kept users %v and groups %v nivis created (files may still belong to them)", s.ledger.Users, s.ledger.Groups))
				}
			}
			return err
		}})
}

// GC removes generations beyond the newest keep (never the current or a
// pending one's fallback), store objects no kept generation uses, and
// leftovers of killed runs.
func (h *Host) GC(ctx context.Context, keep int) (*GCResult, error) {
	if keep < 1 {
		return nil, exitcode.Errorf(exitcode.Usage, "--keep must be at least 1")
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &GCResult{RemovedGenerations: []int{}}
	nums, err := h.generationNumbers()
	if err != nil {
		return nil, err
	}
	cur, err := h.current()
	if err != nil {
		return nil, err
	}
	keepSet := map[int]bool{cur: true}
	for i := len(nums) - 1; i >= 0 && i >= len(nums)-keep; i-- {
		keepSet[nums[i]] = true
	}
	if p, _ := h.loadPending(); p != nil {
		keepSet[p.Generation], keepSet[p.Previous] = true, true
	}
	if j, _ := h.loadJournal(); j != nil {
		keepSet[j.From], keepSet[j.To] = true, true
	}
	used := map[string]bool{}
	for _, n := range nums {
		if !keepSet[n] {
			if err := os.Remove(h.genPath(n)); err != nil {
				return nil, err
			}
			res.RemovedGenerations = append(res.RemovedGenerations, n)
			continue
		}
		g, err := h.loadGeneration(n)
		if err != nil {
			return nil, err
		}
		for _, e := range g.Entries {
			if e.Object != "" {
				used[e.Object] = true
			}
		}
	}
	ents, _ := os.ReadDir(h.path(StoreDir))
	for _, e := range ents {
		if used[e.Name()] {
			continue
		}
		full := filepath.Join(h.path(StoreDir), e.Name())
		if fi, err := os.Lstat(full); err == nil {
			res.FreedBytes += fi.Size()
		}
		if err := os.Remove(full); err != nil {
			return nil, err
		}
		res.RemovedObjects++
	}
	ledger, err := h.loadLedger()
	if err != nil {
		return nil, err
	}
	backups := map[string]bool{}
	for _, o := range ledger.Paths {
		if o.Backup != nil && o.Backup.ID != "" {
			backups[o.Backup.ID] = true
		}
	}
	ents, _ = os.ReadDir(h.path(BackupDir))
	for _, e := range ents {
		if !backups[e.Name()] {
			os.Remove(filepath.Join(h.path(BackupDir), e.Name()))
			res.RemovedBackups++
		}
	}
	sort.Ints(res.RemovedGenerations)
	return res, syncDir(h.path(StoreDir))
}

// Confirm keeps a pending generation.
func (h *Host) Confirm(ctx context.Context, gen int) (*ConfirmResult, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := h.loadPending()
	if err != nil {
		return nil, err
	}
	cur, err := h.current()
	if err != nil {
		return nil, err
	}
	if p == nil {
		if gen == 0 || gen == cur {
			return &ConfirmResult{Generation: cur, Already: true}, nil
		}
		return nil, exitcode.Errorf(exitcode.Change, "generation %d is not waiting for confirmation and is not current (current: %d): it was rolled back", gen, cur)
	}
	if gen != 0 && p.Generation != gen {
		return nil, exitcode.Errorf(exitcode.Change, "generation %d waits for confirmation, not %d", p.Generation, gen)
	}
	if err := h.clearPending(); err != nil {
		return nil, err
	}
	return &ConfirmResult{Generation: p.Generation}, nil
}

// startPending records the confirm window and starts the detached watcher.
// A watcher that cannot start means no safety net: roll back at once.
func (h *Host) startPending(ctx context.Context, gen, prev int, timeout time.Duration, try bool) (*Pending, error) {
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	p := &Pending{Generation: gen, Previous: prev, Deadline: h.now().Add(timeout).UTC(), Try: try,
		Unit: "nivis-confirm-" + strconv.Itoa(gen) + "-" + strconv.FormatInt(h.now().Unix(), 10)}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := writeBytesAtomic(h.path(PendingFile), raw, 0o600); err != nil {
		return nil, err
	}
	start := h.StartWatcher
	if start == nil {
		start = h.startWatcherUnit
	}
	if err := start(ctx, p); err != nil {
		werr := fmt.Errorf("start the confirm watcher: %w", err)
		if rerr := h.rollbackPending(ctx, p); rerr != nil {
			return nil, exitcode.Wrap(exitcode.Change, fmt.Errorf("%v; rolling back failed too: %w", werr, rerr))
		}
		return nil, exitcode.Wrap(exitcode.Change, fmt.Errorf("%w; rolled back to generation %d", werr, prev))
	}
	return p, nil
}

// startWatcherUnit runs `nivis agent sysmgr-confirm-wait` as a transient
// systemd service, so it outlives the SSH session that started it.
func (h *Host) startWatcherUnit(ctx context.Context, p *Pending) error {
	argv, err := h.watcherArgv(p)
	if err != nil {
		return err
	}
	_, err = h.run(ctx, argv...)
	return err
}

// watcherArgv is the systemd-run call that starts the watcher of p.
func (h *Host) watcherArgv(p *Pending) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{"systemd-run", "--unit=" + p.Unit, "--collect", "--quiet",
		"--description=nivis: roll back generation " + strconv.Itoa(p.Generation) + " unless confirmed",
		"--setenv=" + RootEnv + "=" + h.Root, exe, "agent", VerbConfirmWait.Name}, nil
}

// ConfirmWait is the watcher: it returns when the pending generation is
// confirmed (the marker is gone) and rolls back when the deadline passes.
func (h *Host) ConfirmWait(ctx context.Context) error {
	first, err := h.loadPending()
	if err != nil || first == nil {
		return err
	}
	for {
		p, err := h.loadPending()
		if err != nil {
			return err
		}
		if p == nil || p.Generation != first.Generation {
			h.logf("info", "generation %d confirmed", first.Generation)
			return nil
		}
		if !h.now().Before(p.Deadline) {
			unlock, err := h.lock(ctx)
			if err != nil {
				return err
			}
			defer unlock()
			p, err = h.loadPending()
			if err != nil || p == nil || p.Generation != first.Generation {
				return err // confirmed just in time
			}
			h.logf("warning", "generation %d was not confirmed by %s; rolling back to %d", p.Generation, p.Deadline.Format(time.RFC3339), p.Previous)
			return h.rollbackPending(ctx, p)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
