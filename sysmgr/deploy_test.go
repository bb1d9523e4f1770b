package sysmgr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// fakeHost answers sysmgr verbs and records, per connection, what was called.
type fakeHost struct {
	mu      sync.Mutex
	conns   []*fakeConn
	apply   func(req *ApplyRequest) (*ApplyResult, error)
	confirm func(n int) error
}

type fakeConn struct {
	h      *fakeHost
	calls  []string
	closed bool
}

func (h *fakeHost) dial(ctx context.Context, name, target string) (agent.Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if !c.closed {
			return nil, errors.New("a new connection was opened while an old one was still open")
		}
	}
	c := &fakeConn{h: h}
	h.conns = append(h.conns, c)
	return c, nil
}

// log is the verbs called, one connection per element.
func (h *fakeHost) log() []string {
	var out []string
	for _, c := range h.conns {
		out = append(out, strings.Join(c.calls, ","))
	}
	return out
}

func (c *fakeConn) Call(ctx context.Context, verb string, req, resp any) error {
	c.calls = append(c.calls, verb)
	var res any
	var err error
	switch verb {
	case VerbApply.Name:
		res, err = c.h.apply(req.(*ApplyRequest))
	case VerbConfirm.Name:
		n := req.(*ConfirmRequest).Generation
		if err = c.h.confirm(n); err == nil {
			res = &ConfirmResult{Generation: n}
		}
	default:
		return errors.New("unexpected verb " + verb)
	}
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(res)
	return json.Unmarshal(raw, resp)
}

func (c *fakeConn) Stream(context.Context, string, any, io.Reader, any) error {
	return errors.New("no streams")
}
func (c *fakeConn) Upload(context.Context, io.Reader, int64, string, os.FileMode) error {
	return errors.New("no uploads")
}
func (c *fakeConn) HostKey() ssh.PublicKey { return nil }
func (c *fakeConn) User() string           { return "root" }
func (c *fakeConn) Close() error           { c.closed = true; return nil }

func testDeploy(h *fakeHost, local bool) *Deploy {
	return &Deploy{
		Dial:  h.dial,
		Load:  func(string) (*Services, []SecretData, error) { return &Services{}, nil, nil },
		Local: local,
	}
}

// The confirmation travels over a second connection, opened only after the
// apply's own was closed; --try and --local leave the window to the user.
func TestDeployConfirmsOverANewConnection(t *testing.T) {
	var gotTimeout time.Duration
	h := &fakeHost{
		apply: func(req *ApplyRequest) (*ApplyResult, error) {
			gotTimeout = req.ConfirmTimeout
			res := &ApplyResult{Generation: 2, Previous: 1, New: true, Plan: &Plan{}, Changes: 1}
			if req.ConfirmTimeout > 0 {
				res.Pending = &Pending{Generation: 2, Previous: 1, Deadline: time.Now().Add(req.ConfirmTimeout), Try: req.Try}
			}
			return res, nil
		},
		confirm: func(int) error { return nil },
	}
	r, err := testDeploy(h, false).Apply(context.Background(), InventoryHost{Name: "web1", Target: "root@web1"}, ApplyOptions{ConfirmTimeout: 20 * time.Second})
	if err != nil || r.Status != "applied" || gotTimeout != 20*time.Second {
		t.Fatalf("apply: %+v %v (timeout %s)", r, err, gotTimeout)
	}
	if got, want := h.log(), []string{VerbApply.Name, VerbConfirm.Name}; !reflect.DeepEqual(got, want) {
		t.Errorf("connections %q, want %q", got, want)
	}

	h.conns = nil
	r, err = testDeploy(h, false).Apply(context.Background(), InventoryHost{Name: "web1", Target: "root@web1"}, ApplyOptions{Try: true})
	if err != nil || r.Status != "on trial" || gotTimeout != 5*time.Minute || len(h.conns) != 1 {
		t.Errorf("--try: %+v %v, timeout %s, %d connections", r, err, gotTimeout, len(h.conns))
	}
	if !strings.Contains(r.Summary(), "run `nivis confirm root@web1` to keep it") {
		t.Errorf("summary %q", r.Summary())
	}

	h.conns = nil
	if _, err = testDeploy(h, true).Apply(context.Background(), InventoryHost{Name: "local", Target: "local"}, ApplyOptions{ConfirmTimeout: 20 * time.Second}); err != nil || gotTimeout != 0 {
		t.Errorf("--local: %v, timeout %s", err, gotTimeout)
	}
}

// A host that already rolled back ends the fleet with the change code.
func TestDeployFleetReportsRollback(t *testing.T) {
	h := &fakeHost{
		apply: func(req *ApplyRequest) (*ApplyResult, error) {
			return &ApplyResult{Generation: 2, Previous: 1, New: true, Plan: &Plan{},
				Pending: &Pending{Generation: 2, Previous: 1, Deadline: time.Now().Add(time.Minute)}}, nil
		},
		confirm: func(int) error { return exitcode.Errorf(exitcode.Change, "it was rolled back") },
	}
	results, err := testDeploy(h, false).ApplyFleet(context.Background(), []InventoryHost{{Name: "a", Target: "a"}}, 0, ApplyOptions{ConfirmTimeout: time.Minute})
	if exitcode.Of(err) != exitcode.Change || len(results) != 1 || results[0].Status != "rolled back" {
		t.Fatalf("fleet: %v %+v", err, results)
	}
	if !strings.Contains(err.Error(), "1 of 1 hosts failed: a") {
		t.Errorf("err %v", err)
	}
}
