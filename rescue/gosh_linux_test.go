//go:build linux

package rescue

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSSHWithUrootGosh serves sessions with u-root's gosh as the shell and
// u-root's own commands in PATH, as in the rescue image, and runs the
// command shapes the nivis client sends.
func TestSSHWithUrootGosh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds u-root commands")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go toolchain to build u-root's gosh")
	}
	bin := t.TempDir()
	cmds := []string{"gosh", "cat", "mkdir", "mv", "uname", "shasum", "ls", "rm"}
	for _, c := range cmds {
		b := exec.Command("go", "build", "-o", filepath.Join(bin, c), "github.com/u-root/u-root/cmds/core/"+c)
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("build u-root %s: %v\n%s", c, err, out)
		}
	}
	host, client := newSigner(t), newSigner(t)
	srv, err := NewSSHServer(SSHServerOptions{
		HostKeys: []ssh.Signer{host}, AuthorizedKeys: []ssh.PublicKey{client.PublicKey()},
		Shell: filepath.Join(bin, "gosh"), Env: []string{"PATH=" + bin}, Home: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{client: client, hostKey: host.PublicKey(), srv: srv}
	l, err := netListen(t)
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	go srv.Serve(l)
	defer srv.Close()
	c := ts.connect(t)

	if out, _, err := run(t, c, "uname -m", ""); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("uname -m: %q %v", out, err)
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	payload := strings.Repeat("rescue\n", 1000)
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(payload)))
	cmd := fmt.Sprintf("mkdir -p %[1]s && cat > %[1]s/f.tmp && mv %[1]s/f.tmp %[1]s/f && test -f %[1]s/f && [ -d %[1]s ] && shasum -a 256 %[1]s/f", dir)
	out, errOut, err := run(t, c, cmd, payload)
	if err != nil || !strings.HasPrefix(out, sum+" ") {
		t.Errorf("upload-like command: %q %q %v", out, errOut, err)
	}
	for cmd, want := range map[string]int{"false": 1, "exit 3": 3, "no-such-command-here": 127, "test -e /nonexistent": 1} {
		_, _, err := run(t, c, cmd, "")
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != want {
			t.Errorf("%s: %v, want exit status %d", cmd, err, want)
		}
	}
	if out, _, err := run(t, c, `x=$(echo hi | cat); if [ "$x" = hi ]; then echo "$x" | cat; fi`, ""); err != nil || out != "hi\n" {
		t.Errorf("substitution, pipe, if: %q %v", out, err)
	}

	// ssh -t host cmd: exec on a PTY.
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var ptyOut []byte
	go func() { ptyOut, err = s.CombinedOutput("ls " + bin); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("exec on a PTY hangs")
	}
	if err != nil || !strings.Contains(string(ptyOut), "gosh") {
		t.Errorf("exec on a PTY: %q %v", ptyOut, err)
	}
}
