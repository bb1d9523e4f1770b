//go:build !linux

package apply

import (
	"context"
	"fmt"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/exitcode"
)

// Execute needs Linux: it writes partition tables, mounts and runs mkfs.
func Execute(ctx context.Context, p *disko.Plan, o Options) (*disko.Result, error) {
	if o.DryRun {
		for i, op := range p.Ops {
			o.logf("[dry-run] %d. %s", i+1, op.Summary)
		}
		return &disko.Result{Skipped: len(p.Ops)}, nil
	}
	return nil, exitcode.Errorf(exitcode.Precondition, "disk layouts can only be applied on Linux; run nivis disko on the target host")
}

// ProbeState needs Linux sysfs; elsewhere nothing is known.
func ProbeState(ctx context.Context, l *disko.Layout) (*disko.State, error) {
	return nil, exitcode.Errorf(exitcode.Precondition, "disks can only be probed on Linux")
}

// kernelCanMount cannot be known off Linux; layouts only run on Linux.
func kernelCanMount(string) bool { return true }

// HostIDs needs Linux; elsewhere every lookup fails.
func HostIDs(devices map[string]string) disko.IDs { return noIDs{} }

type noIDs struct{}

func (noIDs) UUID(dev string) (string, error) {
	return "", fmt.Errorf("%s: devices can only be read on Linux", dev)
}

func (noIDs) PartUUID(dev string) (string, error) {
	return "", fmt.Errorf("%s: devices can only be read on Linux", dev)
}
