package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/exitcode"
)

// serveRunner runs verbs in-process, as the remote `nivis agent VERB` would.
type serveRunner struct{ prefix string }

func (r serveRunner) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	verb := strings.TrimPrefix(cmd, r.prefix+" agent ")
	if err := Serve(ctx, verb, stdin, stdout); err != nil {
		return &ExitError{Status: int(exitcode.Of(err))}
	}
	return nil
}

type echoReq struct{ Text string }

func init() {
	Register("test-echo", func(ctx context.Context, req json.RawMessage, ev *Emitter) (any, error) {
		var r echoReq
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, err
		}
		ev.Step("echo", "echoing")
		ev.Emit(Event{Kind: "progress", Done: 1, Total: 2})
		return map[string]string{"echo": r.Text}, nil
	})
	Register("test-fail", func(ctx context.Context, req json.RawMessage, ev *Emitter) (any, error) {
		return nil, exitcode.Errorf(exitcode.Precondition, "host lacks kexec")
	})
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
