//go:build linux

package sysmgr

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/nivis/nivis/internal/command"
)

// Systemd is the seam to the service manager: the real one speaks D-Bus,
// tests record calls. Job methods wait for the job to finish, each with its
// own timeout, and fail unless systemd reports "done".
type Systemd interface {
	DaemonReload(ctx context.Context) error
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	// TryRestart restarts the unit only if it is running.
	TryRestart(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	ResetFailed(ctx context.Context, unit string) error
	State(ctx context.Context, unit string) (UnitStatus, error)
}

// UnitStatus is what systemd says about a unit.
type UnitStatus struct {
	Load   string `json:"load"`   // loaded, not-found, masked...
	Active string `json:"active"` // active, inactive, failed, activating...
	Sub    string `json:"sub"`    // running, dead, auto-restart...
}

// Failed reports a unit that did not come up (or is crash-looping).
func (s UnitStatus) Failed() bool { return s.Active == "failed" || s.Sub == "auto-restart" }

// JobError is a systemd job that ended other than "done".
type JobError struct {
	Unit, Verb, Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s %s: job %s", e.Verb, e.Unit, e.Result)
}

// DBusSystemd drives the running systemd over its private socket (no
// dbus-daemon needed, which minimal images lack), falling back to the bus.
type DBusSystemd struct {
	JobTimeout time.Duration

	mu   sync.Mutex
	conn *sdbus.Conn
}

func (d *DBusSystemd) c(ctx context.Context) (*sdbus.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		return d.conn, nil
	}
	conn, err := sdbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		var err2 error
		conn, err2 = sdbus.NewSystemConnectionContext(ctx)
		if err2 != nil {
			return nil, fmt.Errorf("connect to systemd (private socket: %v; system bus: %w)", err, err2)
		}
	}
	d.conn = conn
	return conn, nil
}

// Close drops the connection.
func (d *DBusSystemd) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

func (d *DBusSystemd) job(ctx context.Context, verb, unit string, f func(*sdbus.Conn) jobFunc) error {
	c, err := d.c(ctx)
	if err != nil {
		return err
	}
	timeout := d.JobTimeout
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	ch := make(chan string, 1)
	if _, err := f(c)(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return &JobError{Unit: unit, Verb: verb, Result: res}
		}
		return nil
	case <-time.After(timeout):
		return &JobError{Unit: unit, Verb: verb, Result: fmt.Sprintf("still running after %s", timeout)}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DaemonReload makes systemd re-read unit files.
func (d *DBusSystemd) DaemonReload(ctx context.Context) error {
	c, err := d.c(ctx)
	if err != nil {
		return err
	}
	if err := c.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// Start starts unit and waits for the job.
func (d *DBusSystemd) Start(ctx context.Context, unit string) error {
	return d.job(ctx, "start", unit, func(c *sdbus.Conn) jobFunc { return c.StartUnitContext })
}

// Stop stops unit; a unit systemd does not know is already stopped.
func (d *DBusSystemd) Stop(ctx context.Context, unit string) error {
	err := d.job(ctx, "stop", unit, func(c *sdbus.Conn) jobFunc { return c.StopUnitContext })
	if err != nil && (strings.Contains(err.Error(), "not loaded") || strings.Contains(err.Error(), "NoSuchUnit")) {
		return nil
	}
	return err
}

// Restart restarts (or starts) unit.
func (d *DBusSystemd) Restart(ctx context.Context, unit string) error {
	return d.job(ctx, "restart", unit, func(c *sdbus.Conn) jobFunc { return c.RestartUnitContext })
}

// TryRestart restarts unit if it runs.
func (d *DBusSystemd) TryRestart(ctx context.Context, unit string) error {
	return d.job(ctx, "try-restart", unit, func(c *sdbus.Conn) jobFunc { return c.TryRestartUnitContext })
}

// Reload asks unit to reload its configuration.
func (d *DBusSystemd) Reload(ctx context.Context, unit string) error {
	return d.job(ctx, "reload", unit, func(c *sdbus.Conn) jobFunc { return c.ReloadUnitContext })
}

// ResetFailed forgets a unit's failed state.
func (d *DBusSystemd) ResetFailed(ctx context.Context, unit string) error {
	c, err := d.c(ctx)
	if err != nil {
		return err
	}
	return c.ResetFailedUnitContext(ctx, unit)
}

// State reads LoadState, ActiveState and SubState.
func (d *DBusSystemd) State(ctx context.Context, unit string) (UnitStatus, error) {
	c, err := d.c(ctx)
	if err != nil {
		return UnitStatus{}, err
	}
	props, err := c.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("state of %s: %w", unit, err)
	}
	str := func(k string) string { s, _ := props[k].(string); return s }
	return UnitStatus{Load: str("LoadState"), Active: str("ActiveState"), Sub: str("SubState")}, nil
}

// TreeSystemd is the service manager of a --root tree: none runs there, so
// every call is only written, one line each, to Log (DIR/var/lib/nivis/
// systemd-calls.log) and every unit reads as not running.
type TreeSystemd struct {
	Log string
	mu  sync.Mutex
}

func (t *TreeSystemd) record(call string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := os.OpenFile(t.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, call)
	return f.Close()
}

// DaemonReload records a reload.
func (t *TreeSystemd) DaemonReload(ctx context.Context) error { return t.record("daemon-reload") }

// Start records a start.
func (t *TreeSystemd) Start(ctx context.Context, u string) error { return t.record("start " + u) }

// Stop records a stop.
func (t *TreeSystemd) Stop(ctx context.Context, u string) error { return t.record("stop " + u) }

// Restart records a restart.
func (t *TreeSystemd) Restart(ctx context.Context, u string) error { return t.record("restart " + u) }

// TryRestart records a try-restart.
func (t *TreeSystemd) TryRestart(ctx context.Context, u string) error {
	return t.record("try-restart " + u)
}

// Reload records a reload.
func (t *TreeSystemd) Reload(ctx context.Context, u string) error { return t.record("reload " + u) }

// ResetFailed records a reset-failed.
func (t *TreeSystemd) ResetFailed(ctx context.Context, u string) error {
	return t.record("reset-failed " + u)
}

// State says what is true of a tree: nothing runs in it.
func (t *TreeSystemd) State(ctx context.Context, u string) (UnitStatus, error) {
	return UnitStatus{Load: "loaded", Active: "inactive", Sub: "dead"}, nil
}

// StartTransient records the transient unit (the confirm watcher) systemd
// would run; in a tree nothing watches the window.
func (t *TreeSystemd) StartTransient(ctx context.Context, argv []string) error {
	return t.record("run " + command.Quote(argv))
}
