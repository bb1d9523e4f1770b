//go:build linux

package sysmgr

import (
	"context"
	"sort"
	"sync"
)

// RecordedSystemd is the tests' systemd: it records every call and keeps a
// pretend state. Fail makes a
// unit's start or restart end with the given job result, as a unit that
// cannot start would.
type RecordedSystemd struct {
	mu     sync.Mutex
	Calls  []string
	Active map[string]bool
	Fail   map[string]string
}

func (r *RecordedSystemd) record(call string) {
	r.Calls = append(r.Calls, call)
	if r.Active == nil {
		r.Active = map[string]bool{}
	}
}

func (r *RecordedSystemd) jobCall(verb, unit string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(verb + " " + unit)
	switch verb {
	case "stop":
		r.Active[unit] = false
	case "try-restart":
		if !r.Active[unit] {
			return nil
		}
		fallthrough
	case "start", "restart":
		if res, bad := r.Fail[unit]; bad {
			r.Active[unit] = false
			return &JobError{Unit: unit, Verb: verb, Result: res}
		}
		r.Active[unit] = true
	}
	return nil
}

// DaemonReload records a reload.
func (r *RecordedSystemd) DaemonReload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("daemon-reload")
	return nil
}

// Start records a start.
func (r *RecordedSystemd) Start(ctx context.Context, u string) error { return r.jobCall("start", u) }

// Stop records a stop.
func (r *RecordedSystemd) Stop(ctx context.Context, u string) error { return r.jobCall("stop", u) }

// Restart records a restart.
func (r *RecordedSystemd) Restart(ctx context.Context, u string) error {
	return r.jobCall("restart", u)
}

// TryRestart records a try-restart.
func (r *RecordedSystemd) TryRestart(ctx context.Context, u string) error {
	return r.jobCall("try-restart", u)
}

// Reload records a reload.
func (r *RecordedSystemd) Reload(ctx context.Context, u string) error { return r.jobCall("reload", u) }

// ResetFailed records a reset-failed.
func (r *RecordedSystemd) ResetFailed(ctx context.Context, u string) error {
	return r.jobCall("reset-failed", u)
}

// State reports the pretend state.
func (r *RecordedSystemd) State(ctx context.Context, u string) (UnitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Active[u] {
		return UnitStatus{Load: "loaded", Active: "active", Sub: "running"}, nil
	}
	if _, bad := r.Fail[u]; bad {
		return UnitStatus{Load: "loaded", Active: "failed", Sub: "failed"}, nil
	}
	return UnitStatus{Load: "loaded", Active: "inactive", Sub: "dead"}, nil
}

// Running lists the units the pretend systemd has running, sorted.
func (r *RecordedSystemd) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for u, on := range r.Active {
		if on {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// TakeCalls returns and clears the recorded calls.
func (r *RecordedSystemd) TakeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.Calls
	r.Calls = nil
	return c
}
