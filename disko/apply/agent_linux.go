package apply

import (
	"context"
	"fmt"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/logging"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{agent.Handle(disko.VerbDisko, serveDisko)}
}

// serveDisko runs a layout on this host for a remote client (takeover's
// disko phase), streaming one step event per operation.
func serveDisko(ctx context.Context, reqp *disko.AgentRequest, em *agent.Emitter) (*disko.AgentResult, error) {
	req := *reqp
	mode, err := disko.ParseMode(req.Mode)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	l, rep := disko.ParseBytes(req.Layout)
	res := &disko.AgentResult{}
	if l == nil || rep.HasErrors() {
		res.Report = rep.Entries
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("disko layout: %w", rep.Err()))
	}
	for _, k := range sortedKeys(req.Disks) {
		if err := l.SetDiskDevice(k, req.Disks[k]); err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, err)
		}
	}
	o := RunOptions{Mode: mode, Options: Options{
		Root: req.Root, AllowRootDisk: req.AllowRootDisk, DryRun: req.DryRun, Password: logging.Secret(req.Password),
		Log: em.OpLog(),
		Event: func(e disko.Event) {
			em.Emit(agent.Event{Kind: "step", Step: e.Op, Message: e.Summary, Done: int64(e.Index), Total: int64(e.Total),
				Fields: map[string]any{"status": e.Status, "phase": e.Phase, "detail": e.Detail}})
		},
	}}
	var r config.Report
	p, result, err := Run(ctx, l, o, &r)
	res.Plan, res.Result, res.Report = p, result, append(rep.Entries, r.Entries...)
	if err != nil {
		if r.HasErrors() {
			return nil, fmt.Errorf("%w\n%s", err, r.String())
		}
		return nil, err
	}
	if req.Tables && !req.DryRun {
		ids := HostIDs(result.Devices)
		if res.Fstab, err = l.Fstab(ids); err != nil {
			return nil, exitcode.Wrap(exitcode.Change, err)
		}
		if res.Crypttab, err = l.Crypttab(ids); err != nil {
			return nil, exitcode.Wrap(exitcode.Change, err)
		}
	}
	return res, nil
}
