package sshclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/testsshd"
)

// isolate gives the test its own HOME and no agent or key from the
// environment, so nothing in /root/.ssh is read or written.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv(EnvPrivateKey, "")
	t.Setenv(EnvPassword, "")
	t.Setenv(envAgentBin, "")
	return home
}

// opts logs in with the server's client key and known_hosts file.
func opts(s *testsshd.Server, extra ...string) Options {
	return Options{
		Identities: []string{s.KeyFile},
		Options:    append([]string{"UserKnownHostsFile=" + s.KnownHosts}, extra...),
		ConfigFile: "none",
		RetryFor:   -1,
	}
}

func dial(t *testing.T, target string, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, target, o)
	if err != nil {
		t.Fatalf("Dial(%s): %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialErr(t *testing.T, target string, o Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, target, o)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%s) succeeded, want an error", target)
	}
	return err
}

// output runs cmd and returns its stdout.
func output(t *testing.T, c *Client, cmd string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := c.Run(context.Background(), cmd, nil, &out, &errOut); err != nil {
		t.Fatalf("run %q: %v (stderr %q)", cmd, err, errOut.String())
	}
	return out.String()
}

// serveAgent runs an in-process ssh-agent holding keys and points
// $SSH_AUTH_SOCK at it.
func serveAgent(t *testing.T, keys ...ed25519.PrivateKey) {
	t.Helper()
	kr := sshagent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(sshagent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "nivis-agent") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); os.RemoveAll(dir) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = sshagent.ServeAgent(kr, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func newRawKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawKeyFile reads the server's client key back as a raw key.
func rawKeyFile(t *testing.T, file string) ed25519.PrivateKey {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return *k.(*ed25519.PrivateKey)
}

func TestIdentityFileAuthAndRun(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	c := dial(t, s.Target(), opts(s))
	if !bytes.Equal(c.HostKey().Marshal(), s.HostKey.Marshal()) {
		t.Errorf("HostKey() is not the server's key")
	}
	if got := output(t, c, "echo out; echo err >&2; id -un"); got != "out\n"+s.User+"\n" {
		t.Errorf("stdout = %q", got)
	}
	var errOut bytes.Buffer
	err := c.Run(context.Background(), "cat; echo oops >&2; exit 7", strings.NewReader("in"), io.Discard, &errOut)
	var ee *agent.ExitError
	if !errors.As(err, &ee) || ee.Status != 7 {
		t.Errorf("exit 7: got %v", err)
	}
	if errOut.String() != "oops\n" {
		t.Errorf("stderr = %q", errOut.String())
	}
	var out bytes.Buffer
	if err := c.Run(context.Background(), "tr a-z A-Z", strings.NewReader("stdin reaches the command"), &out, nil); err != nil || out.String() != "STDIN REACHES THE COMMAND" {
		t.Errorf("stdin: %q %v", out.String(), err)
	}
}

// TestRunCancel: a cancelled Run returns at once with the context's error,
// the connection stays usable, and a remote command that keeps writing
// dies (SIGTERM for non-root logins; SIGPIPE once the session is closed).
func TestRunCancel(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	c := dial(t, s.Target(), opts(s))
	marker := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var out bytes.Buffer
	err := c.Run(ctx, "echo $$ > "+marker+"; while :; do echo tick; sleep 0.1; done", nil, &out, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if d := time.Since(start); d > signalGrace+2*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if !strings.HasPrefix(out.String(), "tick\n") {
		t.Errorf("output before cancel not streamed: %q", out.String())
	}
	pid, _ := os.ReadFile(marker)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote loop (pid %s) still runs after cancel", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := output(t, c, "echo ok"); got != "ok\n" {
		t.Errorf("after cancel: %q", got)
	}
}

func TestAgentAuth(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	serveAgent(t, newRawKey(t), rawKeyFile(t, s.KeyFile))
	o := opts(s)
	o.Identities = nil
	c := dial(t, s.Target(), o)
	if got := output(t, c, "echo agent"); got != "agent\n" {
		t.Errorf("got %q", got)
	}
}

// TestTooManyAuthFailures: sshd allows 2 tries, the agent holds 5 keys the
// server does not know. With -i nivis offers only that key and gets in.
func TestTooManyAuthFailures(t *testing.T) {
	isolate(t)
	s := testsshd.StartConfig(t, testsshd.Config{Extra: []string{"MaxAuthTries 2"}})
	var keys []ed25519.PrivateKey
	for range 5 {
		keys = append(keys, newRawKey(t))
	}
	// Control: the right key behind 5 wrong ones in the agent is refused,
	// so the test below proves something.
	serveAgent(t, append(keys, rawKeyFile(t, s.KeyFile))...)
	o := opts(s)
	o.Identities = nil
	err := dialErr(t, s.Target(), o)
	if exitcode.Of(err) != exitcode.Connection || !strings.Contains(err.Error(), "MaxAuthTries") {
		t.Errorf("control: want a Connection error explaining MaxAuthTries, got %v", err)
	}

	serveAgent(t, keys...)
	c := dial(t, s.Target(), opts(s))
	if got := output(t, c, "echo in"); got != "in\n" {
		t.Errorf("got %q", got)
	}
	// IdentitiesOnly with the key in the agent: only the matching agent key is offered.
	serveAgent(t, append(keys, rawKeyFile(t, s.KeyFile))...)
	home := os.Getenv("HOME")
	pubOnly := filepath.Join(home, "only.pub")
	if err := os.WriteFile(pubOnly, ssh.MarshalAuthorizedKey(s.ClientKey.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	o = opts(s, "IdentitiesOnly=yes", "IdentityFile="+pubOnly)
	o.Identities = nil
	c = dial(t, s.Target(), o)
	if got := output(t, c, "echo pub"); got != "pub\n" {
		t.Errorf("got %q", got)
	}
}

func TestEncryptedKey(t *testing.T) {
	home := isolate(t)
	s := testsshd.Start(t)
	priv := rawKeyFile(t, s.KeyFile)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "enc", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(home, "enc_key")
	if err := os.WriteFile(enc, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	o := opts(s)
	o.Identities = []string{enc}
	err = dialErr(t, s.Target(), o)
	msg := err.Error()
	if exitcode.Of(err) != exitcode.Connection || !strings.Contains(msg, enc+" is encrypted") || !strings.Contains(msg, "ssh-add "+enc) || !strings.Contains(msg, "ssh-agent") {
		t.Errorf("want a Connection error naming %s and telling to load it into ssh-agent, got %v", enc, err)
	}
	// With the key in the agent, the same -i works (the agent signs).
	serveAgent(t, priv)
	c := dial(t, s.Target(), o)
	if got := output(t, c, "echo unlocked"); got != "unlocked\n" {
		t.Errorf("got %q", got)
	}
}

func TestPrivateKeyFromEnv(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	data, err := os.ReadFile(s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPrivateKey, string(data))
	o := opts(s)
	o.Identities = nil
	c := dial(t, s.Target(), o)
	if got := output(t, c, "echo env"); got != "env\n" {
		t.Errorf("got %q", got)
	}
}

func TestKnownHostsMismatchRefused(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	other, _ := testsshd.NewKey(t, "impostor")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	content := "otherhost " + string(ssh.MarshalAuthorizedKey(s.HostKey)) +
		fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, ssh.MarshalAuthorizedKey(other.PublicKey()))
	writeFile(t, kh, content)
	o := opts(s)
	o.Options = []string{"UserKnownHostsFile=" + kh}
	err := dialErr(t, s.Target(), o)
	msg := err.Error()
	if exitcode.Of(err) != exitcode.Connection {
		t.Errorf("exit category %v, want connection", exitcode.Of(err))
	}
	for _, want := range []string{"HAS CHANGED", kh + ":2", ssh.FingerprintSHA256(s.HostKey), fmt.Sprintf("ssh-keygen -R '[127.0.0.1]:%d' -f %s", s.Port, kh)} {
		if !strings.Contains(msg, want) {
			t.Errorf("mismatch error lacks %q:\n%s", want, msg)
		}
	}
	// accept-new never overrides a changed key.
	o.Options = append(o.Options, "StrictHostKeyChecking=accept-new")
	if err := dialErr(t, s.Target(), o); !strings.Contains(err.Error(), "HAS CHANGED") {
		t.Errorf("accept-new must refuse a changed key: %v", err)
	}
}

func TestAcceptNewRecordsKey(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	o := opts(s)
	o.Options = []string{"UserKnownHostsFile=" + kh}

	err := dialErr(t, s.Target(), o)
	if exitcode.Of(err) != exitcode.Connection || !strings.Contains(err.Error(), "StrictHostKeyChecking=accept-new") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(s.HostKey)) {
		t.Errorf("unknown host: want advice to use accept-new and the fingerprint, got %v", err)
	}

	o.Options = append(o.Options, "StrictHostKeyChecking=accept-new")
	dial(t, s.Target(), o).Close()
	data, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, ssh.MarshalAuthorizedKey(s.HostKey))
	if string(data) != want {
		t.Errorf("known_hosts = %q, want %q", data, want)
	}
	o.Options = []string{"UserKnownHostsFile=" + kh, "StrictHostKeyChecking=yes"}
	dial(t, s.Target(), o).Close()
	if data2, _ := os.ReadFile(kh); !bytes.Equal(data, data2) {
		t.Errorf("a known host was recorded twice: %q", data2)
	}

	// HashKnownHosts: the entry is hashed and still matches.
	kh2 := filepath.Join(t.TempDir(), "known_hosts")
	o.Options = []string{"UserKnownHostsFile=" + kh2, "StrictHostKeyChecking=accept-new", "HashKnownHosts=yes"}
	dial(t, s.Target(), o).Close()
	data, _ = os.ReadFile(kh2)
	if !strings.HasPrefix(string(data), "|1|") || strings.Contains(string(data), "127.0.0.1") {
		t.Errorf("hashed entry expected, got %q", data)
	}
	o.Options = []string{"UserKnownHostsFile=" + kh2}
	dial(t, s.Target(), o).Close()
}

func TestHashedKnownHostsEntry(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, knownhosts.HashHostname(fmt.Sprintf("[127.0.0.1]:%d", s.Port))+" "+string(ssh.MarshalAuthorizedKey(s.HostKey)))
	o := opts(s)
	o.Options = []string{"UserKnownHostsFile=" + kh}
	c := dial(t, s.Target(), o)
	if got := output(t, c, "echo hashed"); got != "hashed\n" {
		t.Errorf("got %q", got)
	}
}

// TestHostKeyAlgorithmsFromKnownHosts: the server has an ECDSA key (which
// x/crypto prefers) and the ed25519 key known_hosts holds; nivis must ask
// for the known type instead of reporting a false mismatch.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	isolate(t)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(ek, "ecdsa-host")
	if err != nil {
		t.Fatal(err)
	}
	ecdsaFile := filepath.Join(t.TempDir(), "ssh_host_ecdsa_key")
	if err := os.WriteFile(ecdsaFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testsshd.StartConfig(t, testsshd.Config{Extra: []string{"HostKey " + ecdsaFile}})
	c := dial(t, s.Target(), opts(s))
	if c.HostKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("negotiated %s, want the known ed25519 key", c.HostKey().Type())
	}
}

// TestSSHConfigAlias: HostName, Port, User, IdentityFile and
// UserKnownHostsFile come from ~/.ssh/config (in a temporary HOME).
func TestSSHConfigAlias(t *testing.T) {
	home := isolate(t)
	s := testsshd.Start(t)
	writeFile(t, filepath.Join(home, ".ssh", "config"), fmt.Sprintf(`
Host mybox
    HostName 127.0.0.1
    Port %d
    User %s
    IdentityFile %s
    UserKnownHostsFile %s
`, s.Port, s.User, s.KeyFile, s.KnownHosts))
	c := dial(t, "mybox", Options{RetryFor: -1})
	if c.Addr() != s.Addr || c.User() != s.User {
		t.Errorf("connected to %s as %s, want %s as %s", c.Addr(), c.User(), s.Addr, s.User)
	}
	if got := output(t, c, "echo alias"); got != "alias\n" {
		t.Errorf("got %q", got)
	}
	// -o wins over the config: a wrong port on the command line fails.
	err := dialErr(t, "mybox", Options{RetryFor: -1, Options: []string{"Port=1"}})
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("-o Port did not override the config: %v", err)
	}
}

func TestProxyJump(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	// The same sshd is both the jump host and the target.
	c := dial(t, s.Target(), opts(s, "ProxyJump="+s.Target()))
	if len(c.jumps) != 1 {
		t.Fatalf("want one jump, got %d", len(c.jumps))
	}
	if got := output(t, c, "echo $SSH_CLIENT"); !strings.HasPrefix(got, "127.0.0.1 ") {
		t.Errorf("SSH_CLIENT = %q", got)
	}
}

// TestRetryUntilServerStarts: nothing listens for 2 s, then sshd starts;
// Dial keeps trying and gets in. Auth failures are not retried.
func TestRetryUntilServerStarts(t *testing.T) {
	isolate(t)
	s := testsshd.Prepare(t, testsshd.Config{})
	t.Cleanup(s.Stop)
	started := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second)
		started <- s.Spawn()
	}()
	o := opts(s)
	o.RetryFor = 20 * time.Second
	begin := time.Now()
	c := dial(t, s.Target(), o)
	if d := time.Since(begin); d < 2*time.Second {
		t.Errorf("connected after %s, before sshd started?", d)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if got := output(t, c, "echo late"); got != "late\n" {
		t.Errorf("got %q", got)
	}

	wrong := filepath.Join(t.TempDir(), "wrong")
	_, pemBytes := testsshd.NewKey(t, "wrong")
	if err := os.WriteFile(wrong, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	o.Identities = []string{wrong}
	begin = time.Now()
	err := dialErr(t, s.Target(), o)
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("an auth failure was retried for %s", d)
	}
	if exitcode.Of(err) != exitcode.Connection || !strings.Contains(err.Error(), "authentication") || !strings.Contains(err.Error(), wrong) {
		t.Errorf("want an auth error naming the offered key, got %v", err)
	}
}

func TestNoRetryWhenRefused(t *testing.T) {
	isolate(t)
	s := testsshd.Prepare(t, testsshd.Config{})
	begin := time.Now()
	err := dialErr(t, s.Target(), opts(s))
	if exitcode.Of(err) != exitcode.Connection || time.Since(begin) > 3*time.Second {
		t.Errorf("RetryFor<0: want one quick Connection error, got %v after %s", err, time.Since(begin))
	}
}

// TestKeepaliveDropsDeadHost: a frozen server (SIGSTOP: TCP stays open,
// nothing answers) is dropped after ServerAliveCountMax missed keepalives.
func TestKeepaliveDropsDeadHost(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	c := dial(t, s.Target(), opts(s, "ServerAliveInterval=1", "ServerAliveCountMax=2"))
	output(t, c, "true")
	s.Signal(syscall.SIGSTOP)
	defer s.Signal(syscall.SIGCONT)
	closed := make(chan error, 1)
	go func() { closed <- c.SSH().Wait() }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("connection to a frozen host still open after 15s")
	}
}

// TestUpload256MiB streams 256 MiB of random data and compares sha256.
func TestUpload256MiB(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	var progressOut bytes.Buffer
	o := opts(s)
	o.Progress = &progressOut
	c := dial(t, s.Target(), o)
	const size = 256 << 20
	src := mrand.NewChaCha8([32]byte{1, 2, 3})
	h := sha256.New()
	dir := t.TempDir()
	dst := filepath.Join(dir, "a", "b", "big.bin")
	start := time.Now()
	if err := c.Upload(context.Background(), io.TeeReader(io.LimitReader(src, size), h), size, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	t.Logf("256 MiB in %s (%.0f MiB/s)", time.Since(start).Round(time.Millisecond), 256/time.Since(start).Seconds())
	if got, want := fileSum(t, dst), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("remote sha256 %s, local %s", got, want)
	}
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o640 || st.Size() != size {
		t.Errorf("remote file: %v %v", st, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 1 {
		t.Errorf("leftovers next to the upload: %v", ents)
	}
	if !strings.Contains(progressOut.String(), "upload big.bin 100% 256.0 MiB / 256.0 MiB") {
		t.Errorf("no final progress line: %q", progressOut.String())
	}

	// sftp, the alternative the benchmark compares.
	h.Reset()
	dst2 := filepath.Join(dir, "sftp.bin")
	if err := c.UploadWith(context.Background(), UploadSFTP, io.TeeReader(io.LimitReader(src, 8<<20), h), 8<<20, dst2, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSum(t, dst2), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("sftp: remote sha256 %s, local %s", got, want)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

// TestUploadNeverLeavesPartialFile: a source that fails (or ends early)
// leaves the old file untouched and no temporary file behind.
func TestUploadNeverLeavesPartialFile(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	c := dial(t, s.Target(), opts(s))
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	writeFile(t, dst, "old")
	for _, m := range []UploadMethod{UploadExec, UploadSFTP} {
		err := c.UploadWith(context.Background(), m, &failingReader{n: 3 << 20}, 10<<20, dst, 0o644)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("%s: want the read error, got %v", m, err)
		}
		err = c.UploadWith(context.Background(), m, strings.NewReader("short"), 10, dst, 0o644)
		if err == nil {
			t.Errorf("%s: a short source must fail", m)
		}
		if data, _ := os.ReadFile(dst); string(data) != "old" {
			t.Errorf("%s: destination changed to %d bytes", m, len(data))
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: leftovers: %v", m, ents)
		}
	}
}

// TestEnsureAgentCachesByHash: the first call uploads this binary and
// checks its sha256 on the host; later calls (same or new connection)
// find it and upload nothing.
func TestEnsureAgentCachesByHash(t *testing.T) {
	isolate(t)
	s := testsshd.Start(t)
	o := opts(s)
	o.RemoteAgentDir = t.TempDir()
	c := dial(t, s.Target(), o)
	cmd, err := c.EnsureAgent(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	sum := fileSum(t, exe)
	want := filepath.Join(o.RemoteAgentDir, sum, "nivis")
	if cmd != want {
		t.Fatalf("agent command %q, want %q", cmd, want)
	}
	if got := fileSum(t, want); got != sum {
		t.Fatalf("uploaded agent sha256 %s, want %s", got, sum)
	}
	st1, err := os.Stat(want)
	if err != nil || st1.Mode().Perm() != 0o755 {
		t.Fatalf("agent file: %v %v", st1, err)
	}
	if again, err := c.EnsureAgent(context.Background(), false); err != nil || again != cmd {
		t.Errorf("second call: %q %v", again, err)
	}
	// As root, --sudo needs no sudo.
	if os.Geteuid() == 0 {
		if sudoCmd, err := c.EnsureAgent(context.Background(), true); err != nil || sudoCmd != cmd {
			t.Errorf("sudo as root: %q %v", sudoCmd, err)
		}
	}

	c2 := dial(t, s.Target(), o)
	if _, err := c2.EnsureAgent(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the agent was uploaded again although the host had it")
	}

	// A corrupted cached copy is replaced.
	if err := os.WriteFile(want, []byte("garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, s.Target(), o)
	if _, err := c3.EnsureAgent(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if got := fileSum(t, want); got != sum {
		t.Errorf("corrupted agent not replaced: %s", got)
	}
}

func fileSum(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
