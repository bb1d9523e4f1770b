// Package config loads nivis configuration files (YAML or JSON) into typed
// values and reports every problem with its path and line, Ignition style:
// unknown keys are warnings, type errors and failed checks are errors.
package config

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a report entry. A warning never blocks; an error always does.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Entry is one problem found in a config.
type Entry struct {
	Severity Severity `json:"severity"`
	Path     string   `json:"path"`
	Line     int      `json:"line,omitempty"`
	Column   int      `json:"column,omitempty"`
	Message  string   `json:"message"`
}

func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(string(e.Severity))
	if e.Path != "" {
		b.WriteString(" at ")
		b.WriteString(e.Path)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d col %d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// Report collects entries; its zero value is ready to use.
type Report struct {
	Entries []Entry `json:"entries"`
}

// Add appends an entry at pos (zero Pos when the line is unknown).
func (r *Report) Add(sev Severity, path string, pos Pos, format string, args ...any) {
	r.Entries = append(r.Entries, Entry{Severity: sev, Path: path, Line: pos.Line, Column: pos.Column, Message: fmt.Sprintf(format, args...)})
}

// Merge appends all of o's entries.
func (r *Report) Merge(o Report) { r.Entries = append(r.Entries, o.Entries...) }

// HasErrors reports whether any entry is an error.
func (r Report) HasErrors() bool {
	for _, e := range r.Entries {
		if e.Severity == SevError {
			return true
		}
	}
	return false
}

// Errors returns only the error entries.
func (r Report) Errors() []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Severity == SevError {
			out = append(out, e)
		}
	}
	return out
}

// Sort orders entries by line, then path, so output is stable.
func (r *Report) Sort() {
	sort.SliceStable(r.Entries, func(i, j int) bool {
		a, b := r.Entries[i], r.Entries[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
}

// String renders one entry per line.
func (r Report) String() string {
	var b strings.Builder
	for _, e := range r.Entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Err returns an error summarising the report's errors, or nil if it has none.
func (r Report) Err() error {
	errs := r.Errors()
	if len(errs) == 0 {
		return nil
	}
	return &InvalidError{Report: r}
}

// InvalidError is returned when a config has errors; it carries the report.
type InvalidError struct{ Report Report }

func (e *InvalidError) Error() string {
	errs := e.Report.Errors()
	if len(errs) == 1 {
		return "invalid config: " + errs[0].String()
	}
	return fmt.Sprintf("invalid config: %d errors, first: %s", len(errs), errs[0].String())
}
