//go:build linux

package rescue

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

type testServer struct {
	addr    string
	hostKey ssh.PublicKey
	client  ssh.Signer
	logins  atomic.Int32
	srv     *SSHServer
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startTestServer(t *testing.T, network, addr string, onLogin func()) *testServer {
	t.Helper()
	ts := &testServer{client: newSigner(t)}
	host := newSigner(t)
	ts.hostKey = host.PublicKey()
	srv, err := NewSSHServer(SSHServerOptions{
		HostKeys:       []ssh.Signer{host},
		AuthorizedKeys: []ssh.PublicKey{ts.client.PublicKey()},
		Shell:          "/bin/sh",
		Env:            []string{"PATH=" + os.Getenv("PATH")},
		Home:           t.TempDir(),
		WaitDelay:      500 * time.Millisecond,
		OnLogin: func(ssh.ConnMetadata, ssh.PublicKey) {
			ts.logins.Add(1)
			if onLogin != nil {
				onLogin()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	ts.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func (ts *testServer) dial(t *testing.T, key ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(ts.hostKey),
		Timeout:         10 * time.Second,
	})
}

func (ts *testServer) connect(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := ts.dial(t, ts.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd, stdin string) (stdout, stderr string, err error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var o, e bytes.Buffer
	s.Stdout, s.Stderr = &o, &e
	if stdin != "" {
		s.Stdin = strings.NewReader(stdin)
	}
	err = s.Run(cmd)
	return o.String(), e.String(), err
}

func TestSSHExec(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)

	out, _, err := run(t, c, "echo hi", "")
	if err != nil || out != "hi\n" {
		t.Fatalf("echo hi: %q, %v", out, err)
	}

	out, errOut, err := run(t, c, "echo out; echo err >&2; exit 3", "")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
		t.Fatalf("exit 3: err = %v", err)
	}
	if out != "out\n" || errOut != "err\n" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}

	// stdin reaches the command and the client's EOF ends it; the upload
	// path of the client works this way (cat > tmp && mv tmp dst).
	dst := filepath.Join(t.TempDir(), "dir", "file")
	_, errOut, err = run(t, c, "mkdir -p "+filepath.Dir(dst)+" && cat > "+dst+".tmp && mv "+dst+".tmp "+dst+" && test -f "+dst, "payload\n")
	if err != nil {
		t.Fatalf("upload-like command: %v (%s)", err, errOut)
	}
	if b, _ := os.ReadFile(dst); string(b) != "payload\n" {
		t.Errorf("uploaded file holds %q", b)
	}

	// The session environment: HOME, the client's env requests.
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Setenv("LANG", "C.UTF-8"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Output(`echo "$LANG $USER ${SSH_CONNECTION%% *}"; pwd`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "C.UTF-8 root 127.0.0.1\n"+ts.srv.o.Home+"\n" {
		t.Errorf("env and cwd: %q", got)
	}
	if ts.logins.Load() != 1 {
		t.Errorf("OnLogin ran %d times, want 1", ts.logins.Load())
	}
}

func TestSSHSignal(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	s.Stdout = &out
	if err := s.Start("echo started; exec sleep 30"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the exec happen
	if err := s.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.Signal() != "TERM" {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the signal did not end the command")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSSHPTYShell(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm-256color", 40, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	s.Stdout = pw
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("output ended before %q", want)
				}
				if strings.Contains(l, want) && !strings.Contains(l, "echo") {
					return
				}
			case <-timeout:
				t.Fatalf("no %q in the shell's output", want)
			}
		}
	}
	io.WriteString(stdin, "echo tty=$(test -t 0 && echo yes) term=$TERM size=$(stty size)\n")
	expect("tty=yes term=xterm-256color size=40 80")
	if err := s.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	io.WriteString(stdin, "echo size=$(stty size)\n")
	expect("size=50 132")
	io.WriteString(stdin, "exit 7\n")
	pwDone := make(chan error, 1)
	go func() { err := s.Wait(); pw.Close(); pwDone <- err }()
	select {
	case err := <-pwDone:
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
			t.Fatalf("shell exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not exit")
	}
}

func TestSSHSFTP(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("nivis rescue "), 100000)
	f, err := sc.Create(filepath.Join(dir, "x.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.PosixRename(filepath.Join(dir, "x.tmp"), filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	st, err := sc.Stat(filepath.Join(dir, "x"))
	if err != nil || st.Size() != int64(len(payload)) || st.Mode().Perm() != 0o640 {
		t.Fatalf("stat: %v %v", st, err)
	}
	r, err := sc.Open(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// The subsystem and exec sessions share the connection.
	if out, _, err := run(t, c, "wc -c < "+filepath.Join(dir, "x"), ""); err != nil || strings.TrimSpace(out) != "1300000" {
		t.Errorf("wc after sftp: %q %v", out, err)
	}
}

func TestSSHRefusesUnknownKey(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	_, err := ts.dial(t, newSigner(t))
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("a key not in authorized_keys: err = %v", err)
	}
	if ts.logins.Load() != 0 {
		t.Errorf("OnLogin ran for a refused key")
	}
	// The server still serves the right key afterwards.
	if out, _, err := run(t, ts.connect(t), "echo ok", ""); err != nil || out != "ok\n" {
		t.Errorf("after a refusal: %q %v", out, err)
	}
}

func TestSSHIPv6(t *testing.T) {
	ts := startTestServer(t, "tcp", "[::1]:0", nil)
	out, _, err := run(t, ts.connect(t), "echo v6", "")
	if err != nil || out != "v6\n" {
		t.Fatalf("over IPv6: %q %v", out, err)
	}
}

func TestSSHUnknownSubsystemAndRejectedChannel(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestSubsystem("nope"); err == nil {
		t.Error("unknown subsystem accepted")
	}
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Error("port forwarding accepted")
	}
}

func TestWatchdogDisarmedByLogin(t *testing.T) {
	var fired atomic.Bool
	var wd *Watchdog
	ts := startTestServer(t, "tcp", "127.0.0.1:0", func() { wd.Disarm() })
	wd = StartWatchdog(400*time.Millisecond, func() { fired.Store(true) })
	if wd.Deadline().IsZero() {
		t.Fatal("an armed watchdog has no deadline")
	}
	ts.connect(t)
	time.Sleep(700 * time.Millisecond)
	if fired.Load() {
		t.Fatal("the watchdog fired although a client logged in")
	}
	if !wd.Deadline().IsZero() {
		t.Error("a disarmed watchdog still has a deadline")
	}
}

func TestWatchdogFiresWithoutLogin(t *testing.T) {
	fired := make(chan struct{})
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	wd := StartWatchdog(200*time.Millisecond, func() { close(fired) })
	// A refused key does not count as a client.
	ts.dial(t, newSigner(t))
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("the watchdog did not fire")
	}
	if wd.Disarm() {
		t.Error("Disarm after firing reported success")
	}
	if StartWatchdog(0, func() { t.Error("a zero timeout fired") }).Disarm() {
		t.Error("a watchdog without timeout was armed")
	}
}

func TestLoadHostKeys(t *testing.T) {
	dir := t.TempDir()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, k := range map[string]any{"ssh_host_ed25519_key": edPriv, "ssh_host_ecdsa_key": ecPriv, "ssh_host_rsa_key": rsaPriv} {
		blk, err := ssh.MarshalPrivateKey(k, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "ssh_host_dsa_key"), []byte("garbage"), 0o600)
	signers, skipped := LoadHostKeys(dir, nil)
	var types []string
	for _, s := range signers {
		types = append(types, s.PublicKey().Type())
	}
	if strings.Join(types, " ") != "ecdsa-sha2-nistp256 ssh-ed25519 ssh-rsa" {
		t.Errorf("host key types %v", types)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "ssh_host_dsa_key") {
		t.Errorf("skipped %v", skipped)
	}

	// A client asking for RSA only gets the RSA key, with SHA-2 signatures.
	client := newSigner(t)
	srv, err := NewSSHServer(SSHServerOptions{HostKeys: signers, AuthorizedKeys: []ssh.PublicKey{client.PublicKey()}, Shell: "/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	var seen ssh.PublicKey
	c, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyAlgorithms: []string{ssh.KeyAlgoRSASHA512},
		HostKeyCallback:   func(_ string, _ net.Addr, k ssh.PublicKey) error { seen = k; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if seen == nil || seen.Type() != ssh.KeyAlgoRSA {
		t.Errorf("served host key %v", seen)
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	a, b, c := newSigner(t), newSigner(t), newSigner(t)
	line := func(prefix string, s ssh.Signer) string {
		return prefix + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " someone@example"
	}
	keys, skipped := ParseAuthorizedKeys([]string{
		line("", a) + "\n# comment\n\n" + line(`restrict,pty `, b),
		line(`command="/usr/bin/rrsync /backup" `, c),
		line("", a), // duplicate
		"ssh-ed25519 not-base64",
	})
	if len(keys) != 2 || !bytes.Equal(keys[0].Marshal(), a.PublicKey().Marshal()) || !bytes.Equal(keys[1].Marshal(), b.PublicKey().Marshal()) {
		t.Errorf("keys: %d", len(keys))
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0], "option command") || !strings.Contains(skipped[1], "unparsable") {
		t.Errorf("skipped: %q", skipped)
	}
}

func netListen(t *testing.T) (net.Listener, error) {
	t.Helper()
	return net.Listen("tcp", "127.0.0.1:0")
}

// A command that leaves a background child holding its stdout still ends
// (after WaitDelay), unlike OpenSSH, which waits for the child.
func TestSSHBackgroundChildDoesNotHang(t *testing.T) {
	ts := startTestServer(t, "tcp", "127.0.0.1:0", nil)
	c := ts.connect(t)
	start := time.Now()
	out, _, err := run(t, c, "sleep 20 & echo started", "")
	if err != nil || out != "started\n" {
		t.Fatalf("%q %v", out, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}
