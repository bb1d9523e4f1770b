package sysmgr

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// Deploy is the client side of sysmgr: it applies a Services config to a
// host or a fleet and runs the confirm-or-rollback handshake, each step
// over a connection it opens with Dial.
type Deploy struct {
	// Dial opens a new connection to target; name labels the host's
	// events (fleets interleave hosts).
	Dial func(ctx context.Context, name, target string) (agent.Conn, error)
	// Load reads a Services config with its secrets.
	Load func(file string) (*Services, []SecretData, error)
	// Log gets deploy's own messages, as events of host name.
	Log func(name string, ev agent.Event)
	// Root is the tree the agent acts on ("" for /).
	Root string
	// Local is this machine: no new connection can prove anything, so a
	// confirmation window is kept only with Try.
	Local bool
}

// ApplyOptions shape one apply.
type ApplyOptions struct {
	Message string
	// ConfirmTimeout is the confirmation window (0: none); with Try and
	// ConfirmTimeoutSet false it is 5 minutes.
	ConfirmTimeout    time.Duration
	ConfirmTimeoutSet bool
	// Try keeps the generation only until an explicit confirm.
	Try        bool
	JobTimeout time.Duration
}

// HostResult is one host's outcome, for the output and the fleet table.
type HostResult struct {
	Name, Target string
	Result       *ApplyResult
	// Status is applied, unchanged, on trial, failed or rolled back.
	Status string
	Err    error
	Took   time.Duration
}

// Summary is the one line that says what the host runs now.
func (r *HostResult) Summary() string {
	res := r.Result
	switch r.Status {
	case "unchanged":
		return fmt.Sprintf("%s: no changes; generation %d is active", r.Name, res.Generation)
	case "on trial":
		return fmt.Sprintf("%s: generation %d is active on trial until %s; run `nivis confirm %s` to keep it, otherwise it rolls back to %d",
			r.Name, res.Generation, res.Pending.Deadline.Local().Format(time.RFC3339), r.Target, res.Pending.Previous)
	}
	return fmt.Sprintf("%s: generation %d is active (%d changes)", r.Name, res.Generation, res.Changes)
}

func (d *Deploy) logf(name, level, format string, args ...any) {
	if d.Log != nil {
		d.Log(name, agent.Event{Kind: "log", Level: level, Message: fmt.Sprintf(format, args...)})
	}
}

// call opens a connection, runs verb on it and closes it.
func call[Req, Res any](ctx context.Context, d *Deploy, name, target string, v agent.Verb[Req, Res], req *Req) (*Res, error) {
	conn, err := d.Dial(ctx, name, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return v.Call(ctx, conn, req)
}

// Apply applies the config in file to one host and, unless it is on
// trial, confirms it over a new connection.
func (d *Deploy) Apply(ctx context.Context, h InventoryHost, o ApplyOptions) (*HostResult, error) {
	start := time.Now()
	r := &HostResult{Name: h.Name, Target: h.Target}
	fail := func(status string, err error) (*HostResult, error) {
		r.Err, r.Status, r.Took = err, status, time.Since(start)
		return r, err
	}
	bundle, secrets, err := d.Load(h.Config)
	if err != nil {
		return fail("failed", err)
	}
	req := &ApplyRequest{Root: d.Root, Bundle: bundle, Secrets: secrets, Message: o.Message, Try: o.Try, JobTimeout: o.JobTimeout}
	switch {
	case o.Try && !o.ConfirmTimeoutSet:
		req.ConfirmTimeout = 5 * time.Minute
	case o.Try || !d.Local:
		req.ConfirmTimeout = o.ConfirmTimeout
	}
	// The confirmation must come over a new connection: this one may be the
	// only thing still working, so call closes it.
	res, err := call(ctx, d, h.Name, h.Target, VerbApply, req)
	if res != nil {
		r.Result = res
	} else {
		r.Result = &ApplyResult{}
	}
	for _, note := range r.Result.Recovered {
		d.logf(h.Name, "warning", "%s", note)
	}
	if err != nil {
		return fail("failed", err)
	}
	r.Status = "applied"
	if res.Plan != nil && res.Plan.Empty() && !res.New {
		r.Status = "unchanged"
	}
	if p := res.Pending; p != nil {
		if p.Try {
			r.Status = "on trial"
		} else if err := d.confirmNew(ctx, h, p, req.ConfirmTimeout); err != nil {
			return fail("rolled back", err)
		}
	}
	r.Took = time.Since(start)
	return r, nil
}

// confirmNew confirms generation p over a new connection, retrying until
// the window closes; when it cannot, it waits for the host's own rollback
// and reports it.
func (d *Deploy) confirmNew(ctx context.Context, h InventoryHost, p *Pending, window time.Duration) error {
	// The host's deadline is on its clock; ours starts later, so aiming a
	// little early keeps clock skew out of it.
	by := time.Now().Add(window - window/10)
	var lastErr error
	for time.Now().Before(by) {
		cctx, cancel := context.WithDeadline(ctx, by)
		_, err := call(cctx, d, h.Name, h.Target, VerbConfirm, &ConfirmRequest{Root: d.Root, Generation: p.Generation})
		cancel()
		if err == nil {
			d.logf(h.Name, "info", "generation %d confirmed over a new SSH connection", p.Generation)
			return nil
		}
		if exitcode.Of(err) == exitcode.Change {
			return err // the host already rolled back
		}
		lastErr = err
		d.logf(h.Name, "warning", "confirming over a new SSH connection failed (%v); retrying until the window closes", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	d.logf(h.Name, "error", "could not reach the host over a new SSH connection; it rolls back to generation %d by itself", p.Previous)
	msg := fmt.Sprintf("generation %d was not confirmed over a new SSH connection within %s (last error: %v); the host rolls back to generation %d by itself",
		p.Generation, window, lastErr, p.Previous)
	// Look once more after the deadline to report what the host did.
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(by) + window/10 + 10*time.Second):
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if gens, err := call(cctx, d, h.Name, h.Target, VerbGenerations, &RootRequest{Root: d.Root}); err == nil {
			if gens.Current == p.Previous {
				msg = fmt.Sprintf("generation %d was not confirmed over a new SSH connection (last error: %v); the host rolled back to generation %d and answers again",
					p.Generation, lastErr, p.Previous)
			} else {
				msg += fmt.Sprintf("; the host now reports generation %d as current", gens.Current)
			}
		}
	}
	return exitcode.Errorf(exitcode.Change, "%s", msg)
}

// ApplyFleet applies each host's config, parallel at a time, and returns
// every host's result in the order of hosts; the error names the failed
// hosts with the most telling exit code (a rollback wins).
func (d *Deploy) ApplyFleet(ctx context.Context, hosts []InventoryHost, parallel int, o ApplyOptions) ([]*HostResult, error) {
	if parallel < 1 {
		parallel = 1
	}
	results := make([]*HostResult, len(hosts))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			d.log(h.Name, "info", "applying", map[string]any{"target": h.Target})
			r, err := d.Apply(ctx, h, o)
			fields := map[string]any{"status": r.Status, "duration": r.Took.Round(time.Millisecond).String()}
			if r.Result != nil {
				fields["generation"], fields["changes"] = r.Result.Generation, r.Result.Changes
			}
			if err != nil {
				fields["error"] = err.Error()
				d.log(h.Name, "error", "host failed", fields)
			} else {
				d.log(h.Name, "info", "host done", fields)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	var failed []string
	code := exitcode.OK
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Name)
			if c := exitcode.Of(r.Err); code == exitcode.OK || c == exitcode.Change {
				code = c
			}
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return results, exitcode.Errorf(code, "%d of %d hosts failed: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	return results, nil
}

func (d *Deploy) log(name, level, msg string, fields map[string]any) {
	if d.Log != nil {
		d.Log(name, agent.Event{Kind: "log", Level: level, Message: msg, Fields: fields})
	}
}
