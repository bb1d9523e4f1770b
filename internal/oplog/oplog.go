// Package oplog is nivis's one operation log: every operation that changes
// a host (a takeover phase, a disko step, an external tool) is logged as
// `[started] WHAT`, then `[finished] WHAT (duration)` or `[failed] WHAT:
// error`, with the tool's output on failure. Packages take a *Log and log
// nothing on their own; the CLI (or the agent's event stream) decides where
// the lines go.
package oplog

import (
	"fmt"
	"strings"
	"time"
)

// Level of a line.
const (
	Info  = "info"
	Error = "error"
)

// Log writes operation lines through Print. A nil *Log logs nothing.
type Log struct {
	// Print gets each line with its level (Info or Error).
	Print func(level, line string)
}

// New returns a Log that sends its lines to print.
func New(print func(level, line string)) *Log { return &Log{Print: print} }

func (l *Log) print(level, format string, args ...any) {
	if l == nil || l.Print == nil {
		return
	}
	l.Print(level, fmt.Sprintf(format, args...))
}

// Started logs the start of what.
func (l *Log) Started(what string) { l.print(Info, "[started] %s", what) }

// Finished logs that what succeeded after d.
func (l *Log) Finished(what string, d time.Duration) {
	l.print(Info, "[finished] %s (%s)", what, d.Round(time.Millisecond))
}

// Failed logs that what failed with err; output (a tool's stdout and
// stderr) follows when there is any.
func (l *Log) Failed(what string, err error, output string) {
	if out := strings.TrimSpace(output); out != "" {
		l.print(Error, "[failed] %s: %v\n%s", what, err, out)
		return
	}
	l.print(Error, "[failed] %s: %v", what, err)
}
