// Package takeover drives a host through the named phases of a takeover:
// facts, preflight, kexec into the in-RAM agent, reconnect, disko, install,
// reboot and verify. Each phase is idempotent and timed; a run can start at
// any phase (`--phases`) so a failed install resumes where it stopped.
package takeover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nivis/nivis/internal/oplog"
)

// Phase is one named step of a takeover.
type Phase struct {
	Name string
	// Run does the work. It must be safe to run again after a failure.
	Run func(ctx context.Context) error
}

// Timing is how long a phase took, for the final summary.
type Timing struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	Err      string        `json:"error,omitempty"`
	Skipped  bool          `json:"skipped,omitempty"`
}

// Sequence runs phases in order, stopping at the first failure, and logs
// each through the operation log. Phases not selected by only (when
// non-empty) are skipped and reported as such.
func Sequence(ctx context.Context, log *oplog.Log, phases []Phase, only map[string]bool) ([]Timing, error) {
	var out []Timing
	for _, p := range phases {
		if len(only) > 0 && !only[p.Name] {
			out = append(out, Timing{Name: p.Name, Skipped: true})
			continue
		}
		what := "phase " + p.Name
		log.Started(what)
		start := time.Now()
		err := p.Run(ctx)
		t := Timing{Name: p.Name, Duration: time.Since(start).Round(time.Millisecond)}
		if err != nil {
			t.Err = err.Error()
			out = append(out, t)
			log.Failed(what, err, "")
			return out, fmt.Errorf("phase %s: %w", p.Name, err)
		}
		log.Finished(what, t.Duration)
		out = append(out, t)
	}
	return out, nil
}

// ParsePhases parses a --phases value against the known phase names,
// keeping the order fixed by the sequence, not by the flag.
func ParsePhases(s string, known []string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	ok := map[string]bool{}
	for _, k := range known {
		ok[k] = true
	}
	sel := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if !ok[p] {
			return nil, fmt.Errorf("unknown phase %q in --phases; known phases: %s", p, strings.Join(known, ","))
		}
		sel[p] = true
	}
	return sel, nil
}

// Summary renders timings as a small table.
func Summary(ts []Timing) string {
	var b strings.Builder
	var total time.Duration
	for _, t := range ts {
		status := "ok"
		switch {
		case t.Skipped:
			status = "skipped"
		case t.Err != "":
			status = "FAILED"
		}
		fmt.Fprintf(&b, "  %-12s %-8s %8.1fs\n", t.Name, status, t.Duration.Seconds())
		total += t.Duration
	}
	fmt.Fprintf(&b, "  %-12s %-8s %8.1fs\n", "total", "", total.Seconds())
	return b.String()
}
