// Package exitcode defines nivis's documented exit codes, one per category of
// failure, so scripts can tell bad input from an unreachable host from a host
// that was left half-changed.
package exitcode

import (
	"errors"
	"fmt"
)

// Code is a process exit status.
type Code int

// The categories. Keep numbers stable: scripts depend on them (README lists them).
const (
	OK           Code = 0
	Failure      Code = 1 // unexpected failure that fits no other category
	Usage        Code = 2 // bad input: flags, arguments, config, a source file
	Connection   Code = 3 // cannot reach or authenticate to the host
	Precondition Code = 4 // the host cannot do what was asked; nothing changed
	Change       Code = 5 // failed while changing the host (it may be half-changed)
	Aborted      Code = 6 // the user declined a confirmation
)

func (c Code) String() string {
	switch c {
	case OK:
		return "ok"
	case Usage:
		return "usage"
	case Connection:
		return "connection"
	case Precondition:
		return "precondition"
	case Change:
		return "change"
	case Aborted:
		return "aborted"
	default:
		return "failure"
	}
}

// Error carries an exit code with the error that caused it.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Coder is an error that knows its exit code without being an *Error,
// e.g. an error the agent reported from the host. ok is false when the
// error carries no specific category.
type Coder interface {
	ExitCode() (code Code, ok bool)
}

// Wrap tags err with code; nil stays nil. An error already tagged keeps its
// innermost code, which is the most specific one.
func Wrap(code Code, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := tagged(err); ok {
		return err
	}
	return &Error{Code: code, Err: err}
}

func tagged(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	var c Coder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return Failure, false
}

// Errorf formats an error tagged with code.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code for err: OK for nil, Failure when untagged.
func Of(err error) Code {
	if err == nil {
		return OK
	}
	code, _ := tagged(err)
	return code
}
