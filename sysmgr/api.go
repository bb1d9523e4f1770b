package sysmgr

import (
	"fmt"
	"strings"
	"time"

	"github.com/nivis/nivis/internal/agent"
)

// Agent verbs (the client runs `nivis agent VERB`).
var (
	VerbApply       = agent.Verb[ApplyRequest, ApplyResult]{Name: "sysmgr-apply"}
	VerbDiff        = agent.Verb[DiffRequest, DiffResult]{Name: "sysmgr-diff"}
	VerbGenerations = agent.Verb[RootRequest, GenerationsResult]{Name: "sysmgr-generations"}
	VerbRollback    = agent.Verb[RollbackRequest, ApplyResult]{Name: "sysmgr-rollback"}
	VerbGC          = agent.Verb[GCRequest, GCResult]{Name: "sysmgr-gc"}
	VerbDeactivate  = agent.Verb[RootRequest, ApplyResult]{Name: "sysmgr-deactivate"}
	VerbConfirm     = agent.Verb[ConfirmRequest, ConfirmResult]{Name: "sysmgr-confirm"}
	// VerbConfirmWait runs under systemd-run with no request on stdin: the
	// root comes from the environment, the rest from the pending file.
	VerbConfirmWait = agent.Verb[struct{}, struct{}]{Name: "sysmgr-confirm-wait"}
)

// RootEnv passes the root to the detached confirm watcher.
const RootEnv = "NIVIS_SYSMGR_ROOT"

// SecretData is one secret's content, sent beside the bundle and written
// only to /run/nivis/secrets. Its String hides the bytes from logs.
type SecretData struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

func (s SecretData) String() string {
	return fmt.Sprintf("secret %s ([redacted], %d bytes)", s.Name, len(s.Data))
}

// GoString hides the bytes from %#v too.
func (s SecretData) GoString() string { return s.String() }

// ApplyRequest asks the agent to make the host what Bundle declares.
type ApplyRequest struct {
	Root    string       `json:"root,omitempty"`
	Bundle  *Services    `json:"bundle"`
	Secrets []SecretData `json:"secrets,omitempty"`
	Message string       `json:"message,omitempty"`
	// ConfirmTimeout > 0 starts the detached watcher that rolls back
	// unless `sysmgr-confirm` arrives in time.
	ConfirmTimeout time.Duration `json:"confirmTimeout,omitempty"`
	// Try waits for an explicit `nivis confirm` (the client does not confirm).
	Try        bool          `json:"try,omitempty"`
	JobTimeout time.Duration `json:"jobTimeout,omitempty"`
}

// Pending is a generation that rolls back unless confirmed by Deadline.
type Pending struct {
	Generation int       `json:"generation"`
	Previous   int       `json:"previous"`
	Deadline   time.Time `json:"deadline"`
	Try        bool      `json:"try,omitempty"`
	// Unit is the transient systemd unit of the watcher.
	Unit string `json:"unit,omitempty"`
}

// ApplyResult is what an activation did.
type ApplyResult struct {
	Generation int      `json:"generation"`
	Previous   int      `json:"previous"`
	New        bool     `json:"new"`
	Plan       *Plan    `json:"plan"`
	Changes    int      `json:"changes"`
	Pending    *Pending `json:"pending,omitempty"`
	// Recovered says what an earlier, interrupted run left and how it was settled.
	Recovered []string `json:"recovered,omitempty"`
}

// RootRequest is a request that only names the root.
type RootRequest struct {
	Root string `json:"root,omitempty"`
}

// DiffRequest asks for the plan without changing anything.
type DiffRequest struct {
	Root   string    `json:"root,omitempty"`
	Bundle *Services `json:"bundle"`
}

// DiffResult is the plan.
type DiffResult struct {
	Current int   `json:"current"`
	Plan    *Plan `json:"plan"`
}

// GenerationsResult lists generations.
type GenerationsResult struct {
	Current     int       `json:"current"`
	Generations []Summary `json:"generations"`
	Pending     *Pending  `json:"pending,omitempty"`
	// Interrupted describes an activation that did not finish.
	Interrupted string `json:"interrupted,omitempty"`
}

// RollbackRequest switches to generation To (0: the one before current).
type RollbackRequest struct {
	Root string `json:"root,omitempty"`
	To   int    `json:"to,omitempty"`
}

// GCRequest keeps the newest Keep generations (and the current one).
type GCRequest struct {
	Root string `json:"root,omitempty"`
	Keep int    `json:"keep"`
}

// GCResult says what gc removed.
type GCResult struct {
	RemovedGenerations []int `json:"removedGenerations"`
	RemovedObjects     int   `json:"removedObjects"`
	FreedBytes         int64 `json:"freedBytes"`
	RemovedBackups     int   `json:"removedBackups"`
}

// ConfirmRequest keeps a pending generation (0: whichever is pending).
type ConfirmRequest struct {
	Root       string `json:"root,omitempty"`
	Generation int    `json:"generation,omitempty"`
}

// ConfirmResult says what was confirmed.
type ConfirmResult struct {
	Generation int  `json:"generation"`
	Already    bool `json:"already,omitempty"`
}

// ConflictError lists every unmanaged path in the way; nothing was changed.
type ConflictError struct{ Conflicts []Conflict }

func (e *ConflictError) Error() string {
	var b strings.Builder
	if len(e.Conflicts) == 1 {
		b.WriteString("1 path is in the way; nothing was changed:")
	} else {
		fmt.Fprintf(&b, "%d paths are in the way; nothing was changed:", len(e.Conflicts))
	}
	for _, c := range e.Conflicts {
		b.WriteString("\n  ")
		b.WriteString(c.String())
	}
	return b.String()
}

// ActivationError is a failed activation, with the failed unit's status and
// last journal lines, and whether the host was reverted.
type ActivationError struct {
	Kind     string `json:"kind"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Op       Op     `json:"op"`
	Err      string `json:"error"`
	Unit     string `json:"unit,omitempty"`
	Status   string `json:"status,omitempty"`
	Journal  string `json:"journal,omitempty"`
	Reverted bool   `json:"reverted"`
	// RevertErr is set when going back failed too.
	RevertErr string `json:"revertError,omitempty"`
}

func (e *ActivationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to generation %d failed at %q: %s", e.Kind, e.To, e.Op.String(), e.Err)
	if e.Unit != "" {
		if e.Status != "" {
			fmt.Fprintf(&b, "\n--- systemctl status %s ---\n%s", e.Unit, strings.TrimRight(e.Status, "\n"))
		}
		if e.Journal != "" {
			fmt.Fprintf(&b, "\n--- journalctl -u %s -n 20 ---\n%s", e.Unit, strings.TrimRight(e.Journal, "\n"))
		}
	}
	switch {
	case e.Reverted:
		if e.From == 0 {
			fmt.Fprintf(&b, "\nthe host was reverted: everything this activation changed was undone")
		} else {
			fmt.Fprintf(&b, "\nthe host was reverted to generation %d", e.From)
		}
	case e.RevertErr != "":
		fmt.Fprintf(&b, "\nreverting to generation %d failed too: %s\nthe host is between generations; run `nivis apply` again (it converges from the journal) or `nivis rollback`", e.From, e.RevertErr)
	}
	return b.String()
}
