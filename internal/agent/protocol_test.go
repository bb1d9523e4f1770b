package agent

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/exitcode"
)

type echoReq struct{ Text string }

var (
	verbEcho = Verb[echoReq, map[string]string]{Name: "test-echo"}
	verbFail = Verb[struct{}, struct{}]{Name: "test-fail"}
	verbCat  = StreamVerb[echoReq, map[string]string]{Name: "test-cat"}
	table    = NewTable([]Handler{
		Handle(verbEcho, func(ctx context.Context, r *echoReq, ev *Emitter) (*map[string]string, error) {
			ev.Step("echo", "echoing")
			ev.Emit(Event{Kind: "progress", Done: 1, Total: 2})
			return &map[string]string{"echo": r.Text}, nil
		}),
		Handle(verbFail, func(ctx context.Context, _ *struct{}, ev *Emitter) (*struct{}, error) {
			return nil, exitcode.Errorf(exitcode.Precondition, "host lacks kexec")
		}),
		HandleStream(verbCat, func(ctx context.Context, r *echoReq, data io.Reader, ev *Emitter) (*map[string]string, error) {
			b, err := io.ReadAll(data)
			return &map[string]string{"prefix": r.Text, "data": string(b)}, err
		}),
	})
)

// serveRunner runs verbs in-process, as the remote `nivis agent VERB` would.
type serveRunner struct{ prefix string }

func (r serveRunner) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return tableRunner{table}.Run(ctx, cmd, stdin, stdout, stderr)
}

func TestCallRoundTrip(t *testing.T) {
	var events []Event
	var resp map[string]string
	err := Call(context.Background(), serveRunner{"nivis"}, "nivis", "test-echo", echoReq{Text: "hi"}, &resp, func(e Event) { events = append(events, e) })
	if err != nil {
		t.Fatal(err)
	}
	if resp["echo"] != "hi" {
		t.Errorf("resp = %v", resp)
	}
	if len(events) != 2 || events[0].Kind != "step" || events[1].Done != 1 {
		t.Errorf("events = %+v", events)
	}
}

func TestLocalConnTypedVerbs(t *testing.T) {
	var c Conn = &Local{Table: table}
	res, err := verbEcho.Call(context.Background(), c, &echoReq{Text: "typed"})
	if err != nil || (*res)["echo"] != "typed" {
		t.Fatalf("Call = %v, %v", res, err)
	}
	out, err := verbCat.Call(context.Background(), c, &echoReq{Text: "p"}, strings.NewReader("stream data"))
	if err != nil || (*out)["data"] != "stream data" || (*out)["prefix"] != "p" {
		t.Fatalf("Stream = %v, %v", out, err)
	}
	// A streaming verb is not callable as a plain one, and the reverse.
	if err := c.Call(context.Background(), verbCat.Name, nil, nil); err == nil || !strings.Contains(err.Error(), "unknown agent verb") {
		t.Errorf("stream verb called plainly: %v", err)
	}
	if err := c.Stream(context.Background(), verbEcho.Name, nil, strings.NewReader(""), nil); err == nil || !strings.Contains(err.Error(), "unknown stream verb") {
		t.Errorf("plain verb streamed: %v", err)
	}
}

// One decoder for every verb: an empty request is the zero value, a
// malformed one is a usage error naming the verb.
func TestDecodeRequest(t *testing.T) {
	var out strings.Builder
	if err := table.Serve(context.Background(), verbEcho.Name, strings.NewReader(""), &out); err != nil {
		t.Fatalf("empty request: %v", err)
	}
	out.Reset()
	err := table.Serve(context.Background(), verbEcho.Name, strings.NewReader("{not json"), &out)
	if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "test-echo") || !strings.Contains(out.String(), `"type":"error"`) {
		t.Fatalf("bad request: %v, %s", err, out.String())
	}
}

func TestCallCarriesErrorCategory(t *testing.T) {
	err := Call(context.Background(), serveRunner{"nivis"}, "nivis", "test-fail", nil, nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "host lacks kexec" {
		t.Fatalf("err = %v", err)
	}
	if exitcode.Of(err) != exitcode.Precondition {
		t.Errorf("code = %v, want precondition", exitcode.Of(err))
	}
	err = Call(context.Background(), serveRunner{"nivis"}, "nivis", "no-such-verb", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown agent verb") || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("unknown verb: %v (%v)", err, exitcode.Of(err))
	}
}

// noiseRunner writes non-protocol output and fails, as a broken agent would.
type noiseRunner struct{}

func (noiseRunner) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	io.WriteString(stdout, "sh: nivis: not found\n")
	return &ExitError{Status: 127}
}

func TestCallWithoutResultSaysWhy(t *testing.T) {
	err := Call(context.Background(), noiseRunner{}, "nivis", "facts", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "127") {
		t.Fatalf("err = %v", err)
	}
}

// A streaming command that ends without a result is a NoResultError too,
// with how it ended underneath.
func TestCallCommandWithoutResult(t *testing.T) {
	err := CallCommand(context.Background(), noiseRunner{}, "nivis agent-stream x", "x", strings.NewReader("data"), nil, nil)
	var nr *NoResultError
	var ee *ExitError
	if !errors.As(err, &nr) || nr.Output != "sh: nivis: not found" || !errors.As(err, &ee) || ee.Status != 127 {
		t.Fatalf("err = %#v", err)
	}
}
