//go:build !linux

package disko

import (
	"context"

	"github.com/nivis/nivis/internal/exitcode"
)

// Execute needs Linux: it writes partition tables, mounts and runs mkfs.
func Execute(ctx context.Context, p *Plan, o Options) (*Result, error) {
	if o.DryRun {
		for i, op := range p.Ops {
			if o.Logf != nil {
				o.Logf("[dry-run] %d. %s", i+1, op.Summary)
			}
		}
		return &Result{Skipped: len(p.Ops)}, nil
	}
	return nil, exitcode.Errorf(exitcode.Precondition, "disk layouts can only be applied on Linux; run nivis disko on the target host")
}

// ProbeState needs Linux sysfs; elsewhere nothing is known.
func ProbeState(ctx context.Context, l *Layout) (*State, error) {
	return nil, exitcode.Errorf(exitcode.Precondition, "disks can only be probed on Linux")
}
