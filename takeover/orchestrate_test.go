package takeover

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/internal/oplog"
	"github.com/nivis/nivis/kexec"
)

// fakeHost is the far end of a recording fake connection: it answers each
// agent verb as a host would, boots into the rescue system on kexec-exec
// and into the installed system on rescue-reboot, and records every call
// with its request.
type fakeHost struct {
	t       *testing.T
	key     ssh.PublicKey
	mu      sync.Mutex
	boot    int
	state   string // "old", "rescue", "installed"
	pending string // the state the next boot brings
	calls   []string
	reqs    map[string][]json.RawMessage
}

func newFakeHost(t *testing.T) *fakeHost {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeHost{t: t, key: key, boot: 1, state: "old", reqs: map[string][]json.RawMessage{}}
}

// dial is a Dialer: a pending boot happens between two connections.
func (h *fakeHost) dial(ctx context.Context, port int, expect ssh.PublicKey) (agent.Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending != "" {
		h.state, h.pending = h.pending, ""
		h.boot++
	}
	return &fakeConn{h: h}, nil
}

func (h *fakeHost) record(verb string, req any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := json.Marshal(req)
	h.calls = append(h.calls, verb)
	h.reqs[verb] = append(h.reqs[verb], b)
}

// req decodes the n-th request of verb into v.
func (h *fakeHost) req(verb string, n int, v any) {
	h.t.Helper()
	if len(h.reqs[verb]) <= n {
		h.t.Fatalf("no request %d of %s", n, verb)
	}
	if err := json.Unmarshal(h.reqs[verb][n], v); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) answer(verb string) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch verb {
	case facts.VerbFacts.Name:
		f := facts.Facts{SchemaVersion: facts.SchemaVersion, BootID: fmt.Sprintf("boot-%d", h.boot), Arch: "amd64", Hostname: "old-name"}
		f.OS.PrettyName = "Debian GNU/Linux 12 (bookworm)"
		switch h.state {
		case "rescue":
			f.NivisRescue = true
		case "installed":
			f.Hostname = "web1"
		}
		return f, nil
	case kexec.VerbPreflight.Name:
		return kexec.PreflightResult{OK: true, Checks: []kexec.Check{{Name: "kexec", Status: "ok"}}}, nil
	case kexec.VerbPrepare.Name:
		return kexec.PrepareResult{Kernel: "/boot/vmlinuz", Method: "kexec_file_load", BootID: fmt.Sprintf("boot-%d", h.boot)}, nil
	case kexec.VerbExec.Name:
		h.pending = "rescue"
		return kexec.ExecResult{PID: 42, Delay: "2s"}, nil
	case disko.VerbDisko.Name:
		return disko.AgentResult{
			Plan:  &disko.Plan{Mode: disko.Mode{Destroy: true, Format: true, Mount: true}, Disks: []disko.DiskPlan{{Key: "main", Device: "/dev/vdb", Destroy: true}}},
			Fstab: "UUID=1234 / ext4 defaults 0 1\n",
		}, nil
	case "rescue-reboot":
		h.pending = "installed"
		return map[string]any{"pid": 1}, nil
	}
	return struct{}{}, nil
}

// fakeConn is the recording fake connection.
type fakeConn struct {
	h      *fakeHost
	closed bool
}

func (c *fakeConn) Call(ctx context.Context, verb string, req, resp any) error {
	if c.closed {
		return fmt.Errorf("call %s on a closed connection", verb)
	}
	c.h.record(verb, req)
	res, err := c.h.answer(verb)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	if resp == nil {
		return nil
	}
	return json.Unmarshal(b, resp)
}

func (c *fakeConn) Stream(ctx context.Context, verb string, req any, data io.Reader, resp any) error {
	n, err := io.Copy(io.Discard, data)
	if err != nil {
		return err
	}
	c.h.record(verb, req)
	b, _ := json.Marshal(map[string]any{"kind": "tar", "received": n})
	return json.Unmarshal(b, resp)
}

func (c *fakeConn) Upload(ctx context.Context, src io.Reader, size int64, remote string, mode os.FileMode) error {
	c.h.record("upload "+remote, map[string]any{"size": size, "mode": mode})
	return nil
}

func (c *fakeConn) HostKey() ssh.PublicKey { return c.h.key }
func (c *fakeConn) User() string           { return "root" }
func (c *fakeConn) Close() error           { c.closed = true; return nil }

func newFakeTakeover(h *fakeHost) (*Takeover, *bytes.Buffer) {
	var out bytes.Buffer
	return &Takeover{Dial: h.dial, Log: quietLog(), Out: &out, ClientKeys: func() []string {
		return []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtest nivis-client"}
	}}, &out
}

func installConfig(t *testing.T) *HostConfig {
	t.Helper()
	hc, rep, err := hostConfig(t, "system:\n  source: rootfs.tar\n", map[string][]byte{"rootfs.tar": tarOf(t, "etc/os-release")})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.String())
	}
	return hc
}

// TestInstallOrchestration runs every phase of `nivis install` against the
// recording fake: the verbs called, in order, with their requests.
func TestInstallOrchestration(t *testing.T) {
	h := newFakeHost(t)
	tk, _ := newFakeTakeover(h)
	var asked []string
	in := &Install{Takeover: tk, Config: installConfig(t), Opts: InstallOptions{
		Kexec:   KexecOptions{Config: "kind: Host\n"},
		Confirm: func(q, want string) error { asked = append(asked, q); return nil },
	}}
	var logged []string
	timings, err := in.Run(context.Background(), oplog.New(func(level, line string) { logged = append(logged, line) }), nil)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	want := []string{
		"facts", "kexec-preflight", "kexec-prepare", "kexec-exec", // old system
		"facts", "disko", "disko", "install-extract", "install-finalize", "install-bootloader", "disko", "rescue-reboot", // rescue
		"facts", // installed
	}
	if got := strings.Join(h.calls, ","); got != strings.Join(want, ",") {
		t.Fatalf("verbs called:\n got %s\nwant %s", got, strings.Join(want, ","))
	}
	var pf kexec.PrepareRequest
	h.req("kexec-prepare", 0, &pf)
	if pf.LoginUser != "root" || len(pf.AuthorizedKeys) != 1 || !strings.HasSuffix(pf.AuthorizedKeys[0], "nivis-client") ||
		pf.Config != "kind: Host\n" || len(pf.Features) == 0 {
		t.Errorf("kexec-prepare request: %+v", pf)
	}
	var plan, run, unmount disko.AgentRequest
	h.req("disko", 0, &plan)
	h.req("disko", 1, &run)
	h.req("disko", 2, &unmount)
	if !plan.DryRun || run.DryRun || plan.Mode != "destroy,format,mount" || run.Mode != plan.Mode || !run.Tables || run.Root != TargetRoot || unmount.Mode != "unmount" {
		t.Errorf("disko requests: plan %+v run %+v unmount %+v", plan, run, unmount)
	}
	if len(asked) != 1 || !strings.Contains(asked[0], "DESTROYS everything on /dev/vdb") {
		t.Errorf("confirmations: %q", asked)
	}
	var ex struct{ Root, Format string }
	h.req("install-extract", 0, &ex)
	var fin struct {
		Root, Hostname, Fstab string
	}
	h.req("install-finalize", 0, &fin)
	if ex.Root != TargetRoot || ex.Format != "tar" || fin.Root != TargetRoot || fin.Hostname != "web1" || !strings.Contains(fin.Fstab, "UUID=1234") {
		t.Errorf("extract %+v finalize %+v", ex, fin)
	}
	var reboot struct {
		Delay int  `json:"delay_seconds"`
		Kexec bool `json:"kexec"`
	}
	h.req("rescue-reboot", 0, &reboot)
	if reboot.Delay != 2 || reboot.Kexec {
		t.Errorf("rescue-reboot request %+v", reboot)
	}
	if len(timings) != 4 || in.final == nil || in.final.Hostname != "web1" {
		t.Errorf("timings %+v final %+v", timings, in.final)
	}
	if len(logged) != 8 || logged[0] != "[started] phase kexec" || !strings.HasPrefix(logged[7], "[finished] phase reboot") {
		t.Errorf("operation log:\n%s", strings.Join(logged, "\n"))
	}
}

// TestInstallDryRunOrchestration: a dry run asks only questions: facts,
// the kexec preflight and disko's plan, on the running host.
func TestInstallDryRunOrchestration(t *testing.T) {
	h := newFakeHost(t)
	tk, out := newFakeTakeover(h)
	var reported *facts.Facts
	var planned *disko.Plan
	in := &Install{Takeover: tk, Config: installConfig(t), Opts: InstallOptions{
		DryRun:      true,
		Confirm:     func(q, want string) error { t.Errorf("a dry run asked %q", q); return nil },
		ReportFacts: func(f *facts.Facts) { reported = f },
		ReportPlan:  func(p *disko.Plan) { planned = p },
	}}
	if _, err := in.Run(context.Background(), nil, nil); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := strings.Join(h.calls, ","); got != "facts,kexec-preflight,disko" {
		t.Fatalf("verbs called: %s", got)
	}
	var plan disko.AgentRequest
	h.req("disko", 0, &plan)
	if !plan.DryRun || h.boot != 1 || h.state != "old" {
		t.Errorf("disko request %+v; host boot %d state %s", plan, h.boot, h.state)
	}
	if reported == nil || reported.BootID != "boot-1" || planned == nil || len(planned.Destroys()) != 1 {
		t.Errorf("reported facts %+v plan %+v", reported, planned)
	}
	if !strings.Contains(out.String(), "install: rootfs.tar (tar) into /mnt") {
		t.Errorf("dry run output: %q", out.String())
	}
}

// TestRescueOrchestration runs `nivis rescue`'s phases against the fake.
func TestRescueOrchestration(t *testing.T) {
	h := newFakeHost(t)
	tk, _ := newFakeTakeover(h)
	kernel := t.TempDir() + "/vmlinuz"
	if err := os.WriteFile(kernel, []byte("MZ kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := KexecOptions{PostKexecSSHPort: 2222, KernelFile: kernel}
	if _, err := Sequence(context.Background(), nil, tk.RescuePhases(o), nil); err != nil {
		t.Fatalf("rescue: %v", err)
	}
	want := "facts,upload /run/nivis/kexec/custom-kernel-vmlinuz,kexec-preflight,kexec-prepare,kexec-exec,facts"
	if got := strings.Join(h.calls, ","); got != want {
		t.Fatalf("verbs called:\n got %s\nwant %s", got, want)
	}
	var pf kexec.PrepareRequest
	h.req("kexec-prepare", 0, &pf)
	if pf.SSHPort != 2222 || pf.Kernel != "/run/nivis/kexec/custom-kernel-vmlinuz" || pf.LoginUser != "root" || len(pf.AuthorizedKeys) != 1 {
		t.Errorf("kexec-prepare request %+v", pf)
	}
	if h.state != "rescue" || !tk.after.NivisRescue {
		t.Errorf("host state %s, after %+v", h.state, tk.after)
	}
	// Run again on the rescue system: nothing is kexec'd a second time.
	h.calls = nil
	tk2, _ := newFakeTakeover(h)
	if _, err := Sequence(context.Background(), nil, tk2.RescuePhases(KexecOptions{}), nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls, ","); got != "facts" {
		t.Errorf("a second rescue called %s", got)
	}
}
