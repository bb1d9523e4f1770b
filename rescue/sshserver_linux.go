//go:build linux

package rescue

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/ssh"
)

// SSHServerOptions configures the rescue SSH server.
type SSHServerOptions struct {
	HostKeys       []ssh.Signer
	AuthorizedKeys []ssh.PublicKey
	// Shell runs exec requests as `Shell -c CMD` and interactive sessions
	// as `Shell`, like OpenSSH runs the login shell.
	Shell string
	// Env is the environment every session starts from (PATH!).
	Env []string
	// Home is the sessions' working directory and $HOME.
	Home string
	// WaitDelay bounds how long output is still copied after a command
	// exited while a background child keeps its stdout open (OpenSSH
	// waits forever there).
	WaitDelay time.Duration
	// OnLogin runs after each successful authentication.
	OnLogin func(meta ssh.ConnMetadata, key ssh.PublicKey)
	Log     *logrus.Logger
}

// SSHServer serves exec, shell (with or without a PTY) and sftp sessions
// to the carried keys only: public-key authentication, nothing else.
type SSHServer struct {
	o      SSHServerOptions
	config *ssh.ServerConfig
	log    *logrus.Logger

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*ssh.ServerConn]bool
	closed    bool
	wg        sync.WaitGroup
}

// NewSSHServer checks the options and builds the server.
func NewSSHServer(o SSHServerOptions) (*SSHServer, error) {
	if len(o.HostKeys) == 0 {
		return nil, errors.New("ssh server: no host key")
	}
	if o.Shell == "" {
		o.Shell = "/bin/sh"
	}
	if o.Home == "" {
		o.Home = "/"
	}
	if o.WaitDelay == 0 {
		o.WaitDelay = 2 * time.Second
	}
	log := o.Log
	if log == nil {
		log = logrus.New()
		log.SetOutput(discard{})
	}
	authorized := map[string]bool{}
	for _, k := range o.AuthorizedKeys {
		authorized[string(k.Marshal())] = true
	}
	s := &SSHServer{o: o, log: log, conns: map[*ssh.ServerConn]bool{}}
	s.config = &ssh.ServerConfig{
		// Clients with many keys in their agent must not run out of tries
		// before the right key (OpenSSH's default of 6 is a known trap).
		MaxAuthTries:  64,
		ServerVersion: "SSH-2.0-nivis_rescue",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if authorized[string(key.Marshal())] {
				return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
			}
			return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
		},
		AuthLogCallback: func(meta ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" {
				log.Debugf("ssh: %s@%s: %s refused: %v", meta.User(), meta.RemoteAddr(), method, err)
			}
		},
	}
	for _, k := range o.HostKeys {
		s.config.AddHostKey(k)
	}
	return s, nil
}

// Serve accepts connections on l until Close. It returns nil after Close.
func (s *SSHServer) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warnf("ssh: accept: %v; retrying in %s", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(c)
		}()
	}
}

// Close stops listening and drops every connection.
func (s *SSHServer) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := s.listeners
	var cs []*ssh.ServerConn
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	return nil
}

func (s *SSHServer) handleConn(c net.Conn) {
	// A client that never finishes the handshake must not hold a slot.
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		s.log.Debugf("ssh: handshake with %s: %v", c.RemoteAddr(), err)
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.Close()
		return
	}
	s.conns[sc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		sc.Close()
	}()
	fp := sc.Permissions.Extensions["pubkey-fp"]
	s.log.Infof("ssh: %s@%s logged in with key %s", sc.User(), sc.RemoteAddr(), fp)
	if s.o.OnLogin != nil {
		var key ssh.PublicKey
		for _, k := range s.o.AuthorizedKeys {
			if ssh.FingerprintSHA256(k) == fp {
				key = k
			}
		}
		s.o.OnLogin(sc, key)
	}
	// Global requests (keepalive@openssh.com, tcpip-forward): answered
	// "no", which OpenSSH's keepalive counts as alive.
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are served by the nivis rescue system")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			newSession(s, sc, ch).serve(creqs)
		}()
	}
	wg.Wait()
	s.log.Infof("ssh: %s@%s disconnected", sc.User(), sc.RemoteAddr())
}

// LoadHostKeys reads the private host keys in dir: the files in names, or
// every ssh_host_*_key when names is empty. Unusable files are reported in
// skipped, not fatal.
func LoadHostKeys(dir string, names []string) (signers []ssh.Signer, skipped []string) {
	if len(names) == 0 {
		found, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*_key"))
		for _, f := range found {
			names = append(names, filepath.Base(f))
		}
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, ".pub") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("host key %s: %v", n, err))
			continue
		}
		sg, err := ssh.ParsePrivateKey(b)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("host key %s: %v", n, err))
			continue
		}
		if seen[sg.PublicKey().Type()] {
			continue
		}
		seen[sg.PublicKey().Type()] = true
		signers = append(signers, sg)
	}
	return signers, skipped
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
