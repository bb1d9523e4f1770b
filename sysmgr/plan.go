package sysmgr

import (
	"fmt"
	"strings"
)

// OpKind names one typed operation of an activation.
type OpKind string

// The operations, in the order a plan runs them.
const (
	OpAddGroup     OpKind = "add-group"     // Name
	OpAddUser      OpKind = "add-user"      // Name
	OpStopUnit     OpKind = "stop-unit"     // Unit: before its files go
	OpBackup       OpKind = "backup"        // Path: keep an unmanaged original aside, then own the path
	OpClaim        OpKind = "claim"         // Paths: record ownership before creating them
	OpMkdir        OpKind = "mkdir"         // Path (+Entry for declared directories)
	OpWrite        OpKind = "write"         // Path, Entry: file, store link or symlink, atomically
	OpSetMeta      OpKind = "set-meta"      // Path, Entry: mode and owner only
	OpRemove       OpKind = "remove"        // Path: a managed path nivis no longer wants
	OpRestore      OpKind = "restore"       // Path: put the kept original back
	OpRelease      OpKind = "release"       // Paths: forget ownership of removed paths
	OpWriteSecret  OpKind = "write-secret"  // Name
	OpRemoveSecret OpKind = "remove-secret" // Name
	OpDaemonReload OpKind = "daemon-reload"
	OpTmpfiles     OpKind = "tmpfiles" // Path: systemd-tmpfiles --create
	OpResetFailed  OpKind = "reset-failed"
	OpStartUnit    OpKind = "start-unit"
	OpRestartUnit  OpKind = "restart-unit"
	OpTryRestart   OpKind = "try-restart-unit" // restart only if running
	OpReloadUnit   OpKind = "reload-unit"
	OpVerifyUnits  OpKind = "verify-units" // Units: none failed after settling
	OpSwitch       OpKind = "switch"       // Generation: point `current` at it
)

// Op is one step of a Plan. Every op is idempotent, so a plan interrupted
// at any point can be run again from the start.
type Op struct {
	Kind   OpKind   `json:"op"`
	Path   string   `json:"path,omitempty"`
	Paths  []string `json:"paths,omitempty"`
	Unit   string   `json:"unit,omitempty"`
	Units  []string `json:"units,omitempty"`
	Name   string   `json:"name,omitempty"`
	Entry  *Entry   `json:"entry,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Masking marks the stop before a mask: the unit's running state is
	// remembered for the unmask.
	Masking bool `json:"masking,omitempty"`
	// Implicit marks claimed parent directories (removed when no longer needed).
	Implicit bool `json:"implicit,omitempty"`
	// Generation is the switch target (0: nothing is current).
	Generation int `json:"generation,omitempty"`
}

func (o Op) String() string {
	var b strings.Builder
	switch o.Kind {
	case OpAddGroup, OpAddUser, OpWriteSecret, OpRemoveSecret:
		fmt.Fprintf(&b, "%s %s", o.Kind, o.Name)
	case OpStopUnit, OpStartUnit, OpRestartUnit, OpTryRestart, OpReloadUnit, OpResetFailed:
		fmt.Fprintf(&b, "%s %s", o.Kind, o.Unit)
	case OpVerifyUnits:
		fmt.Fprintf(&b, "%s %s", o.Kind, strings.Join(o.Units, " "))
	case OpClaim, OpRelease:
		fmt.Fprintf(&b, "%s %d paths", o.Kind, len(o.Paths))
	case OpDaemonReload:
		b.WriteString(string(o.Kind))
	case OpSwitch:
		fmt.Fprintf(&b, "switch to generation %d", o.Generation)
	case OpWrite:
		fmt.Fprintf(&b, "%s %s", o.Kind, o.Path)
		if o.Entry != nil && (o.Entry.Type == TypeSymlink || o.Entry.Type == TypeLink) {
			fmt.Fprintf(&b, " -> %s", o.Entry.Target)
		}
	default:
		fmt.Fprintf(&b, "%s %s", o.Kind, o.Path)
	}
	if o.Reason != "" {
		fmt.Fprintf(&b, " (%s)", o.Reason)
	}
	return b.String()
}

// Conflict is an unmanaged path where the config wants something.
type Conflict struct {
	Path   string `json:"path"`
	Found  string `json:"found"`
	Wanted string `json:"wanted"`
	Hint   string `json:"hint"`
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: found %s, want %s; %s", c.Path, c.Found, c.Wanted, c.Hint)
}

// Plan is an activation computed from what the host has to what a
// generation declares.
type Plan struct {
	From int  `json:"from"`
	To   int  `json:"to"`
	Ops  []Op `json:"ops"`
	// Conflicts block the plan: nothing runs while any is listed.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Drift lists managed paths edited on the host since nivis wrote them.
	Drift []string `json:"drift,omitempty"`
	// Notes are things worth knowing that change nothing.
	Notes []string `json:"notes,omitempty"`
}

// Empty reports whether the plan changes nothing on the host (a switch of
// `current` alone still counts as a change).
func (p *Plan) Empty() bool {
	for _, o := range p.Ops {
		if o.Kind != OpVerifyUnits {
			return false
		}
	}
	return true
}

// Changes counts the operations that touch the host.
func (p *Plan) Changes() int {
	n := 0
	for _, o := range p.Ops {
		switch o.Kind {
		case OpVerifyUnits, OpClaim, OpRelease, OpSwitch:
		default:
			n++
		}
	}
	return n
}

// String renders the plan for people, one op a line.
func (p *Plan) String() string {
	var b strings.Builder
	if len(p.Conflicts) > 0 {
		fmt.Fprintf(&b, "%d conflicts (nothing will change until they are resolved):\n", len(p.Conflicts))
		for _, c := range p.Conflicts {
			fmt.Fprintf(&b, "  ! %s\n", c)
		}
	}
	for _, d := range p.Drift {
		fmt.Fprintf(&b, "  ~ drift: %s was edited on the host; apply overwrites it\n", d)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if p.Empty() {
		fmt.Fprintf(&b, "no changes (generation %d is in place)\n", p.From)
		return b.String()
	}
	fmt.Fprintf(&b, "plan: generation %d -> %d, %d changes\n", p.From, p.To, p.Changes())
	for _, o := range p.Ops {
		if o.Kind == OpClaim || o.Kind == OpRelease || o.Kind == OpVerifyUnits {
			continue
		}
		fmt.Fprintf(&b, "  %s %s\n", opSign(o.Kind), o)
	}
	return b.String()
}

func opSign(k OpKind) string {
	switch k {
	case OpWrite, OpMkdir, OpAddUser, OpAddGroup, OpWriteSecret, OpStartUnit:
		return "+"
	case OpRemove, OpStopUnit, OpRemoveSecret:
		return "-"
	case OpBackup, OpRestore:
		return "*"
	}
	return "~"
}
