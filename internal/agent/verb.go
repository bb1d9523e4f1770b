package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/nivis/nivis/internal/exitcode"
)

// Verb names an agent verb with its request and result types. Each domain
// package declares its verbs once, in a portable file, and both sides use
// that declaration: the client with Call, the agent with Handle.
type Verb[Req, Res any] struct{ Name string }

// Call runs the verb on c with req and returns its result.
func (v Verb[Req, Res]) Call(ctx context.Context, c Conn, req *Req) (*Res, error) {
	var res Res
	if err := c.Call(ctx, v.Name, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// StreamVerb is a verb whose input is a data stream (a tarball, an image
// layer): its request travels on the command line, the data on stdin.
type StreamVerb[Req, Res any] struct{ Name string }

// Call streams data to the verb on c with req and returns its result.
func (v StreamVerb[Req, Res]) Call(ctx context.Context, c Conn, req *Req, data io.Reader) (*Res, error) {
	var res Res
	if err := c.Stream(ctx, v.Name, req, data, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Handler is one entry of the agent's verb table.
type Handler struct {
	Name   string
	Stream bool
	serve  func(ctx context.Context, req json.RawMessage, data io.Reader, em *Emitter) (any, error)
}

// Handle makes the table entry that serves v with f.
func Handle[Req, Res any](v Verb[Req, Res], f func(ctx context.Context, req *Req, em *Emitter) (*Res, error)) Handler {
	return Handler{Name: v.Name, serve: func(ctx context.Context, raw json.RawMessage, _ io.Reader, em *Emitter) (any, error) {
		var req Req
		if err := decodeRequest(v.Name, raw, &req); err != nil {
			return nil, err
		}
		res, err := f(ctx, &req, em)
		return res, err
	}}
}

// HandleStream makes the table entry that serves the streaming verb v with f.
func HandleStream[Req, Res any](v StreamVerb[Req, Res], f func(ctx context.Context, req *Req, data io.Reader, em *Emitter) (*Res, error)) Handler {
	return Handler{Name: v.Name, Stream: true, serve: func(ctx context.Context, raw json.RawMessage, data io.Reader, em *Emitter) (any, error) {
		var req Req
		if err := decodeRequest(v.Name, raw, &req); err != nil {
			return nil, err
		}
		res, err := f(ctx, &req, data, em)
		return res, err
	}}
}

// decodeRequest is the one request decoder: an empty request is the zero
// value (a verb checks its own required fields), anything else must be JSON
// of the request type.
func decodeRequest(verb string, raw json.RawMessage, v any) error {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("agent %s: bad request: %w", verb, err))
	}
	return nil
}

// Table is the agent's verbs, built once from every domain package's list.
type Table struct {
	verbs map[string]Handler
}

// NewTable builds a table from lists of handlers. A name listed twice is a
// programming error.
func NewTable(lists ...[]Handler) *Table {
	t := &Table{verbs: map[string]Handler{}}
	for _, l := range lists {
		for _, h := range l {
			if _, dup := t.verbs[h.Name]; dup {
				panic("agent: verb listed twice: " + h.Name)
			}
			t.verbs[h.Name] = h
		}
	}
	return t
}

// Names lists the table's verbs, sorted.
func (t *Table) Names() []string {
	out := make([]string, 0, len(t.verbs))
	for v := range t.verbs {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func (t *Table) lookup(verb string, stream bool) (Handler, error) {
	h, ok := t.verbs[verb]
	if !ok || h.Stream != stream {
		kind := "agent verb"
		if stream {
			kind = "stream verb"
		}
		return Handler{}, exitcode.Errorf(exitcode.Usage, "unknown %s %q on this agent (%s/%s; known: %s); the agent on the host may be a different nivis version",
			kind, verb, runtime.GOOS, runtime.GOARCH, strings.Join(t.Names(), ", "))
	}
	return h, nil
}

// Serve runs verb with the request read from stdin, writing the protocol to
// stdout. It returns the verb's error (already reported on stdout).
func (t *Table) Serve(ctx context.Context, verb string, stdin io.Reader, stdout io.Writer) error {
	em := NewEmitter(stdout)
	h, err := t.lookup(verb, false)
	if err != nil {
		return em.fail(err)
	}
	var req json.RawMessage
	if stdin != nil {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return em.fail(err)
		}
		req = json.RawMessage(strings.TrimSpace(string(data)))
	}
	return em.finish(h.serve(ctx, req, nil, em))
}

// ServeStream runs a streaming verb: `nivis agent-stream VERB ARGS`, with
// the data on stdin, args as EncodeArgs made it, and the same protocol as
// Serve on stdout.
func (t *Table) ServeStream(ctx context.Context, verb, args string, stdin io.Reader, stdout io.Writer) error {
	em := NewEmitter(stdout)
	h, err := t.lookup(verb, true)
	if err != nil {
		return em.fail(err)
	}
	raw, err := decodeArgs(args)
	if err != nil {
		return em.fail(exitcode.Wrap(exitcode.Usage, err))
	}
	return em.finish(h.serve(ctx, raw, stdin, em))
}

// EncodeArgs renders a streaming verb's request for the command line:
// base64url JSON, which needs no shell quoting.
func EncodeArgs(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeArgs accepts EncodeArgs' form or plain JSON.
func decodeArgs(s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "{") {
		return json.RawMessage(s), nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("stream verb argument is neither JSON nor base64url JSON: %w", err)
	}
	return json.RawMessage(b), nil
}

// fail reports err as the verb's final message.
func (e *Emitter) fail(err error) error {
	e.send(Message{Type: "error", Error: err.Error(), Code: int(exitcode.Of(err))})
	return err
}

// finish reports a verb's outcome as its final message.
func (e *Emitter) finish(res any, err error) error {
	if err != nil {
		return e.fail(err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return e.fail(err)
	}
	e.send(Message{Type: "result", Result: raw})
	return nil
}
