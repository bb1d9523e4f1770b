package apply

import (
	"fmt"
	"time"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/logging"
	"github.com/nivis/nivis/internal/oplog"
)

// Options control how a plan is executed.
type Options struct {
	// Root is where mountpoints go; it must match the plan's root.
	Root string
	// AllowRootDisk lets execution touch the disk that holds the running
	// system's root; only the in-RAM rescue agent sets it.
	AllowRootDisk bool
	// DryRun logs every step and command without running anything.
	DryRun bool
	// Runner runs external tools; nil means command.Exec logging to Log.
	Runner command.Runner
	// Log receives one line per step, per command and per note; nil
	// discards.
	Log *oplog.Log
	// Event receives progress, one event per step start and end.
	Event func(disko.Event)
	// Password is the LUKS passphrase for containers with askPassword and
	// no key file (disko asks on the terminal; nivis is given it).
	Password logging.Secret
	// UdevWait bounds waits for udev-made names where udev runs.
	UdevWait time.Duration
}

// logf prints a step or a note through the operation log.
func (o Options) logf(format string, args ...any) {
	if o.Log != nil && o.Log.Print != nil {
		o.Log.Print(oplog.Info, fmt.Sprintf(format, args...))
	}
}
