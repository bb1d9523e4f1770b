package disko

import (
	"time"

	"github.com/nivis/nivis/internal/logging"
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
	// Runner runs external tools; nil means ExecRunner with Logf.
	Runner Runner
	// Logf receives one line per step and per command; nil discards.
	Logf func(format string, args ...any)
	// Event receives progress, one event per step start and end.
	Event func(Event)
	// Password is the LUKS passphrase for containers with askPassword and
	// no key file (disko asks on the terminal; nivis is given it).
	Password logging.Secret
	// UdevWait bounds waits for udev-made names where udev runs.
	UdevWait time.Duration
}

// Event reports a step of an execution.
type Event struct {
	Index   int    `json:"index"` // 1-based op number
	Total   int    `json:"total"`
	Op      string `json:"op"`
	Phase   string `json:"phase"`
	Summary string `json:"summary"`
	// Status is started, done, skipped or failed.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Result is what an execution did.
type Result struct {
	Done    int `json:"done"`
	Skipped int `json:"skipped"`
	// Changed lists the ops that changed something, hooks excluded: a
	// second run of the same mode leaves it empty.
	Changed []string `json:"changed,omitempty"`
	// Devices maps each layout device name that was resolved to its node.
	Devices map[string]string `json:"devices,omitempty"`
}
