// Package testsshd runs Debian's real OpenSSH sshd on 127.0.0.1 for tests:
// a throwaway host key, an authorized_keys with a generated client key, and
// a known_hosts file for it. Tests talk to the real thing, never a fake.
package testsshd

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the daemon used; Debian's openssh-server installs it here.
const SSHD = "/usr/sbin/sshd"

// Server is one running (or prepared) sshd.
type Server struct {
	Addr       string        // "127.0.0.1:PORT"
	Port       int           // the TCP port
	User       string        // login user: the current user
	KeyFile    string        // the client's private key (OpenSSH format, unencrypted)
	ClientKey  ssh.Signer    // the same key, parsed
	KnownHosts string        // known_hosts file holding the host key for [127.0.0.1]:PORT
	HostKey    ssh.PublicKey // the key sshd presents
	Dir        string        // scratch directory with the config, keys and log

	// AuthorizedKeys is the authorized_keys file sshd reads; tests may
	// append keys to it.
	AuthorizedKeys string

	config  string
	logFile string
	mu      sync.Mutex
	cmd     *exec.Cmd
	stopped chan struct{}
}

// Config tunes the sshd.
type Config struct {
	// Extra sshd_config lines, e.g. "MaxAuthTries 2".
	Extra []string
}

// Start prepares and launches an sshd, skipping the test when sshd is not
// installed (failing instead when NIVIS_REQUIRE_SSHD=1).
func Start(t testing.TB) *Server { return StartConfig(t, Config{}) }

// StartConfig is Start with extra sshd_config lines.
func StartConfig(t testing.TB, c Config) *Server {
	s := Prepare(t, c)
	s.Launch(t)
	return s
}

// Prepare writes keys, config and known_hosts and reserves a port, without
// starting sshd: tests of connect retries launch it later.
func Prepare(t testing.TB, c Config) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		msg := fmt.Sprintf("%s not found (install Debian's openssh-server): %v", SSHD, err)
		if os.Getenv("NIVIS_REQUIRE_SSHD") == "1" {
			t.Fatal(msg + "; NIVIS_REQUIRE_SSHD=1 demands it")
		}
		t.Skip(msg)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	dir := t.TempDir()
	s := &Server{User: u.Username, Dir: dir, logFile: filepath.Join(dir, "sshd.log")}

	hostSigner, hostPEM := newKey(t, "nivis-test-host")
	clientSigner, clientPEM := newKey(t, "nivis-test-client")
	s.HostKey = hostSigner.PublicKey()
	s.ClientKey = clientSigner
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	s.KeyFile = filepath.Join(dir, "id_ed25519")
	s.AuthorizedKeys = filepath.Join(dir, "authorized_keys")
	writeFile(t, hostKeyFile, hostPEM, 0o600)
	writeFile(t, s.KeyFile, clientPEM, 0o600)
	writeFile(t, s.KeyFile+".pub", ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o644)
	writeFile(t, s.AuthorizedKeys, ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o600)

	s.Port = freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	writeFile(t, s.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, ssh.MarshalAuthorizedKey(s.HostKey))), 0o600)

	lines := []string{
		"ListenAddress 127.0.0.1:" + strconv.Itoa(s.Port),
		"HostKey " + hostKeyFile,
		"AuthorizedKeysFile " + s.AuthorizedKeys,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AllowTcpForwarding yes",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
	}
	// Extra lines go first: for most keywords sshd keeps the first value.
	s.config = filepath.Join(dir, "sshd_config")
	writeFile(t, s.config, []byte(strings.Join(append(append([]string{}, c.Extra...), lines...), "\n")+"\n"), 0o600)
	return s
}

// Launch starts sshd and waits until it answers with its banner. The
// process is killed when the test ends.
func (s *Server) Launch(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	if err := s.Spawn(); err != nil {
		t.Fatal(err)
	}
}

// Spawn is Launch without a test: for starting sshd from another
// goroutine (the caller must arrange Stop, e.g. with t.Cleanup).
func (s *Server) Spawn() error {
	// sshd refuses to start as root without its privilege separation dir.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return err
		}
	}
	// A file, not a pipe: session processes inherit it, and a pipe would
	// keep Wait blocked until every session is gone.
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(SSHD, "-D", "-e", "-f", s.config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	stopped := make(chan struct{})
	s.mu.Lock()
	s.cmd = cmd
	s.stopped = stopped
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); close(stopped) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s.banner() {
			return nil
		}
		select {
		case <-stopped:
			return fmt.Errorf("sshd exited at start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not answer on %s within 15s:\n%s", s.Addr, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills sshd and every connection it serves (each runs in its own
// session, so the whole process tree is walked).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, stopped := s.cmd, s.stopped
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	kids := descendants(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	for _, p := range kids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-stopped
}

// Signal sends sig to sshd and all its connection processes, e.g. SIGSTOP
// to make a host stop answering without closing its TCP connections.
func (s *Server) Signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	for _, p := range append([]int{cmd.Process.Pid}, descendants(cmd.Process.Pid)...) {
		_ = syscall.Kill(p, sig)
	}
}

// descendants lists the processes below pid, from /proc (Linux only; on
// other systems it finds none).
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so cut at ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			parent[p] = pp
		}
	}
	var out []int
	want := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if want[pp] && !want[p] {
				want[p] = true
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// Log returns what sshd wrote so far (its -e log on stderr).
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Target is "user@127.0.0.1:PORT".
func (s *Server) Target() string { return s.User + "@" + s.Addr }

// banner reports whether sshd accepts connections and says "SSH-".
func (s *Server) banner() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

// NewKey makes an ed25519 key pair; the PEM is in OpenSSH format.
func NewKey(t testing.TB, comment string) (ssh.Signer, []byte) { return newKey(t, comment) }

func newKey(t testing.TB, comment string) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func writeFile(t testing.TB, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
}

// freePort asks the kernel for an unused port. Another process may take it
// before sshd binds; tests accept that small race.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
