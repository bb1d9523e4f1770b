//go:build !linux

package facts

import (
	"context"
	"runtime"

	"github.com/nivis/nivis/internal/exitcode"
)

// Gather is Linux only: facts describe a Linux host nivis may take over.
func Gather(ctx context.Context) (*Facts, error) {
	return nil, exitcode.Errorf(exitcode.Precondition, "gathering facts works on Linux only, this is %s: run `nivis facts HOST` against a Linux host instead of --local", runtime.GOOS)
}
