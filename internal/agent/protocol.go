// Package agent is the JSON protocol between the nivis client and the
// nivis agent on a host. The client runs `nivis agent VERB` remotely, writes
// one JSON request on its stdin, and reads JSON lines from its stdout: any
// number of events, then exactly one result or error. The client never
// parses shell output.
package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/oplog"
)

// Message is one line on the agent's stdout.
type Message struct {
	// Type is "event", "result" or "error".
	Type string `json:"type"`
	// Event fields.
	Event *Event `json:"event,omitempty"`
	// Result payload (verb-specific JSON).
	Result json.RawMessage `json:"result,omitempty"`
	// Error fields.
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// Event is progress or a log line from a long-running verb.
type Event struct {
	Kind    string         `json:"kind"` // "log", "progress", "step"
	Level   string         `json:"level,omitempty"`
	Message string         `json:"message,omitempty"`
	Step    string         `json:"step,omitempty"`
	Done    int64          `json:"done,omitempty"`
	Total   int64          `json:"total,omitempty"`
	Fields  map[string]any `json:"fields,omitempty"`
}

// Emitter lets a verb send events while it runs. Safe for concurrent use.
type Emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewEmitter writes events to w (nil discards them).
func NewEmitter(w io.Writer) *Emitter {
	if w == nil {
		w = io.Discard
	}
	return &Emitter{enc: json.NewEncoder(w)}
}

// Emit sends one event.
func (e *Emitter) Emit(ev Event) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(Message{Type: "event", Event: &ev})
}

// Logf sends a log event.
func (e *Emitter) Logf(level, format string, args ...any) {
	e.Emit(Event{Kind: "log", Level: level, Message: fmt.Sprintf(format, args...)})
}

// OpLog is the operation log of a verb: its lines reach the client as log
// events at their level. A nil Emitter drops them.
func (e *Emitter) OpLog() *oplog.Log {
	return oplog.New(func(level, line string) { e.Logf(level, "%s", line) })
}

// Step announces a named step.
func (e *Emitter) Step(name, message string) {
	e.Emit(Event{Kind: "step", Step: name, Message: message})
}

func (e *Emitter) send(m Message) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(m)
}

// Runner runs a command line on a host (over SSH, or locally) with the given
// streams. A non-zero exit is an error; implementations wrap it so that
// errors.As finds *ExitError.
type Runner interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
}

// ExitError is a remote command's non-zero exit.
type ExitError struct{ Status int }

func (e *ExitError) Error() string { return fmt.Sprintf("exited with status %d", e.Status) }

// RemoteError is an error the agent reported, with its exit-code category.
type RemoteError struct {
	Verb    string
	Message string
	Code    exitcode.Code
}

func (e *RemoteError) Error() string { return e.Message }

// ExitCode is the category the agent gave the error; a plain failure is
// no category, so the caller's own applies.
func (e *RemoteError) ExitCode() (exitcode.Code, bool) {
	return e.Code, e.Code != exitcode.OK && e.Code != exitcode.Failure
}

// Call runs `AGENT agent VERB` through r, sends req, delivers events to
// onEvent (may be nil) and decodes the result into resp (may be nil).
// agentCmd is the remote command prefix that starts the agent, e.g.
// "sudo /var/lib/nivis/agent/<sha>/nivis".
func Call(ctx context.Context, r Runner, agentCmd, verb string, req, resp any, onEvent func(Event)) error {
	var in io.Reader = strings.NewReader("")
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		in = strings.NewReader(string(b))
	}
	return CallCommand(ctx, r, agentCmd+" agent "+verb, verb, in, resp, onEvent)
}

// NoResultError says the agent's command ended without sending a result
// or an error: it died, or something else answered.
type NoResultError struct {
	Verb string
	// Err is how the command ended ("no result" when it exited 0).
	Err error
	// Output is its stderr and any stdout that was not protocol.
	Output string
}

func (e *NoResultError) Error() string {
	if e.Output != "" {
		return fmt.Sprintf("agent %s: %v: %s", e.Verb, e.Err, e.Output)
	}
	return fmt.Sprintf("agent %s: %v", e.Verb, e.Err)
}

func (e *NoResultError) Unwrap() error { return e.Err }

// CallCommand runs cmd through r with stdin as its input and reads the
// agent protocol of verb from its stdout: Call's request on stdin, or the
// data of a streaming verb (`agent-stream VERB ARGS`).
func CallCommand(ctx context.Context, r Runner, cmd, verb string, stdin io.Reader, resp any, onEvent func(Event)) error {
	pr, pw := io.Pipe()
	var stderr strings.Builder
	runErr := make(chan error, 1)
	go func() {
		err := r.Run(ctx, cmd, stdin, pw, &stderr)
		pw.CloseWithError(io.EOF)
		runErr <- err
	}()
	var (
		gotFinal bool
		callErr  error
	)
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			// Not protocol: something else wrote to stdout. Keep it for the error.
			stderr.Write(line)
			stderr.WriteByte('\n')
			continue
		}
		switch m.Type {
		case "event":
			if onEvent != nil && m.Event != nil {
				onEvent(*m.Event)
			}
		case "result":
			gotFinal = true
			if resp != nil {
				if err := json.Unmarshal(m.Result, resp); err != nil {
					callErr = fmt.Errorf("agent %s: bad result: %w", verb, err)
				}
			}
		case "error":
			gotFinal = true
			callErr = &RemoteError{Verb: verb, Message: m.Error, Code: exitcode.Code(m.Code)}
		}
	}
	_, _ = io.Copy(io.Discard, pr)
	err := <-runErr
	if callErr != nil {
		var re *RemoteError
		if errors.As(callErr, &re) {
			return exitcode.Wrap(re.Code, callErr)
		}
		return callErr
	}
	if !gotFinal {
		if err == nil {
			err = errors.New("no result")
		}
		return &NoResultError{Verb: verb, Err: err, Output: strings.TrimSpace(stderr.String())}
	}
	return nil
}
