package apply

import (
	"context"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

// RunOptions are Options plus what Run needs to decide.
type RunOptions struct {
	Options
	Mode disko.Mode
	// Host describes this machine for validation; nil means LocalHost().
	Host *disko.Host
	// Confirm sees the plan before a destroy changes anything; an error
	// stops the run with nothing changed.
	Confirm func(*disko.Plan) error
	// Plan, when set, receives the plan as soon as it exists (to print it).
	Plan func(*disko.Plan)
}

// Run does what `nivis disko` does: validate the layout for this host,
// read the disks, plan, confirm, execute. Every problem in the layout is
// reported in r before any disk is touched, so a bad layout leaves the
// disks byte-for-byte as they were.
func Run(ctx context.Context, l *disko.Layout, o RunOptions, r *config.Report) (*disko.Plan, *disko.Result, error) {
	if r == nil {
		r = &config.Report{}
	}
	h := o.Host
	if h == nil {
		h = LocalHost()
	}
	l.Validate(r, h, o.Mode)
	if r.HasErrors() {
		r.Sort()
		return nil, nil, exitcode.Wrap(exitcode.Usage, r.Err())
	}
	st, err := ProbeState(ctx, l)
	if err != nil && !o.DryRun {
		return nil, nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	p, err := disko.NewPlan(l, o.Mode, st, disko.PlanOptions{Root: o.Root, AllowRootDisk: o.AllowRootDisk}, r)
	if err != nil {
		r.Sort()
		return p, nil, err
	}
	if o.Plan != nil {
		o.Plan(p)
	}
	if o.Mode.Destroy && !o.DryRun && o.Confirm != nil && len(p.Destroys()) > 0 {
		if err := o.Confirm(p); err != nil {
			return p, nil, err
		}
	}
	res, err := Execute(ctx, p, o.Options)
	return p, res, err
}
