package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/testsshd"
)

// TestEventRenderer: agent log events keep their level and fields, steps
// are logged at info, progress becomes a bar that ends when done.
func TestEventRenderer(t *testing.T) {
	var logs, bars bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
	l.SetLevel(logrus.InfoLevel)
	r := &eventRenderer{log: l, w: &bars}
	r.render(agent.Event{Kind: "log", Level: "warning", Message: "disk is small", Fields: map[string]any{"disk": "vda"}})
	r.render(agent.Event{Kind: "log", Level: "debug", Message: "hidden at info"})
	r.render(agent.Event{Kind: "step", Step: "disko", Message: "partitioning"})
	r.render(agent.Event{Kind: "progress", Step: "copy", Done: 10, Total: 100})
	r.render(agent.Event{Kind: "progress", Step: "copy", Done: 100, Total: 100})
	r.finish()
	out := logs.String()
	for _, want := range []string{`level=warning msg="disk is small" disk=vda remote=true`, `level=info msg=partitioning remote=true step=disko`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug event logged at info level:\n%s", out)
	}
	if !strings.Contains(bars.String(), "copy 100% 100 B / 100 B") {
		t.Errorf("progress bar: %q", bars.String())
	}
}

// TestLogLines: with --log-format json, progress lines become log entries.
func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	w := &logLines{log: l}
	w.Write([]byte("upload x  10%"))
	w.Write([]byte(" more\nsecond\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"upload x  10% more"`) || !strings.Contains(lines[0], `"progress":true`) {
		t.Errorf("got %q", buf.String())
	}
}

// TestUploadCommand drives the hidden `nivis upload` through Main against
// a real sshd, the way bench/upload.sh does.
func TestUploadCommand(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := testsshd.Start(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := bytes.Repeat([]byte("nivis "), 300000)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out", "dst")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"upload", "--mode", "0600", "-p", strconv.Itoa(srv.Port), "-i", srv.KeyFile,
		"-o", "UserKnownHostsFile=" + srv.KnownHosts, srv.User + "@127.0.0.1", src, dst}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file differs (%d bytes, %v)", len(got), err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if !strings.Contains(stderr.String(), "upload dst 100%") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}

	// A host key mismatch exits with the connection category (3).
	other := filepath.Join(dir, "kh")
	if err := os.WriteFile(other, []byte("[127.0.0.1]:"+strconv.Itoa(srv.Port)+" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	code = Main(ctx, []string{"upload", "-p", strconv.Itoa(srv.Port), "-i", srv.KeyFile,
		"-o", "UserKnownHostsFile=" + other, srv.User + "@127.0.0.1", src, dst}, strings.NewReader(""), &stdout, &stderr)
	if code != 3 || !strings.Contains(stderr.String(), other+":1") {
		t.Errorf("mismatch: exit %d, stderr %q", code, stderr.String())
	}
}
