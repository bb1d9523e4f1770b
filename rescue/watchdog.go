package rescue

import (
	"sync"
	"time"
)

// Watchdog reboots the host into its old system when no client logs in
// within a deadline: a rescue system nobody can reach must not keep the
// host away from its disks forever. The first login disarms it.
type Watchdog struct {
	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Time
	state    watchdogState
}

type watchdogState int

const (
	watchdogArmed watchdogState = iota
	watchdogDisarmed
	watchdogFired
	watchdogOff
)

// StartWatchdog calls fire once timeout has passed unless Disarm is called
// first. A timeout of zero or less never fires.
func StartWatchdog(timeout time.Duration, fire func()) *Watchdog {
	w := &Watchdog{}
	if timeout <= 0 {
		w.state = watchdogOff
		return w
	}
	w.deadline = time.Now().Add(timeout)
	w.timer = time.AfterFunc(timeout, func() {
		w.mu.Lock()
		if w.state != watchdogArmed {
			w.mu.Unlock()
			return
		}
		w.state = watchdogFired
		w.mu.Unlock()
		fire()
	})
	return w
}

// Disarm stops the watchdog; it reports whether this call disarmed it
// (false when it already fired, was disarmed or never armed).
func (w *Watchdog) Disarm() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != watchdogArmed {
		return false
	}
	w.state = watchdogDisarmed
	w.timer.Stop()
	return true
}

// Deadline is when the watchdog fires, zero when it will not.
func (w *Watchdog) Deadline() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != watchdogArmed {
		return time.Time{}
	}
	return w.deadline
}
