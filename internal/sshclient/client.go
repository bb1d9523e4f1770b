// Package sshclient is nivis's SSH transport on golang.org/x/crypto/ssh:
// OpenSSH-compatible targets, ~/.ssh/config, -o options, known_hosts,
// agent and key auth that never trips MaxAuthTries, connect retries,
// keepalives, remote exec, fast uploads with progress, and the self-upload
// of the nivis agent cached on the host by sha256.
package sshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/logging"
)

// Defaults, as documented in the CLI help.
const (
	DefaultConnectTimeout = 20 * time.Second // per attempt: TCP connect plus SSH handshake
	DefaultRetryFor       = 30 * time.Second // total time spent retrying a connect
	DefaultKeepalive      = 15 * time.Second // keepalive@openssh.com interval; 3 misses drop the link
)

// Options configure Dial. The zero value connects like plain `ssh TARGET`.
type Options struct {
	Port        int      // -p; overrides every other port source
	Identities  []string // -i files, in order
	Options     []string // -o KEY=VALUE strings, first one wins as in OpenSSH
	EnvPassword bool     // allow the password in $SSHPASS
	Log         *logrus.Logger
	Progress    io.Writer // where upload progress goes (stderr); nil for none

	// ConfigFile is ssh -F: read only this file. "" reads ~/.ssh/config
	// then /etc/ssh/ssh_config; "none" reads nothing.
	ConfigFile string
	// RetryFor bounds how long Dial retries network failures (refused,
	// timed out, reset). 0 means DefaultRetryFor; negative means one try.
	// Authentication and host-key failures are never retried.
	RetryFor time.Duration
	// AgentBinary overrides the file EnsureAgent uploads (else
	// $NIVIS_AGENT_BINARY, this executable, or nivis-linux-<arch>).
	AgentBinary string
	// RemoteAgentDir overrides where EnsureAgent caches the agent on the
	// host (default /var/lib/nivis/agent for root, else
	// ~/.cache/nivis/agent); tests point it at a scratch directory.
	RemoteAgentDir string
	// ExpectHostKey, when set, is the only host key the target may
	// present, whatever known_hosts says: after a kexec the host must come
	// back with the key it had, also on a new port known_hosts has no
	// entry for. With StrictHostKeyChecking=accept-new the key is then
	// recorded for the new name.
	ExpectHostKey ssh.PublicKey
}

// Client is one authenticated SSH connection (through any ProxyJump hops).
type Client struct {
	ssh     *ssh.Client
	jumps   []*ssh.Client // outermost first; closed after ssh
	hop     *settings
	hostKey ssh.PublicKey
	offered []ssh.PublicKey
	opts    Options
	log     *logrus.Logger

	closeOnce sync.Once
	done      chan struct{}

	agentMu   sync.Mutex
	agentCmds map[bool]string // EnsureAgent result per sudo flag
	remote    *remoteInfo
}

// Dial connects and authenticates to target ("[user@]host[:port]", a Host
// alias, or ssh://...). Errors carry exitcode.Connection (or Usage for bad
// input) and say what to do next.
func Dial(ctx context.Context, target string, o Options) (*Client, error) {
	log := o.Log
	if log == nil {
		log = logging.Discard()
	}
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	l, err := newLookup(o.Options, o.ConfigFile, log.Warnf)
	if err != nil {
		return nil, err
	}
	s, err := resolve(t, o.Port, o.Identities, l)
	if err != nil {
		return nil, err
	}
	hops, err := chain(s, o, l, 0)
	if err != nil {
		return nil, err
	}

	retryFor := o.RetryFor
	if retryFor == 0 {
		retryFor = DefaultRetryFor
	}
	start := time.Now()
	deadline := start.Add(retryFor)
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, err := dialChain(ctx, hops, o, log)
		if err == nil {
			c.startKeepalive()
			return c, nil
		}
		var ne *netError
		retry := errors.As(err, &ne) && retryFor > 0 && ctx.Err() == nil
		wait := backoff + rand.N(backoff/2)
		if !retry || time.Now().Add(wait).After(deadline) {
			if attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, time.Since(start).Round(time.Second))
			}
			return nil, exitcode.Wrap(exitcode.Connection, err)
		}
		log.Infof("connect to %s failed: %v; retrying in %s", s, err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, exitcode.Wrap(exitcode.Connection, fmt.Errorf("connect to %s: %w (last error: %v)", s, ctx.Err(), err))
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// chain lists the hops to dial: ProxyJump hosts first, the target last.
// Only the first jump host's own ProxyJump is followed, as OpenSSH does.
func chain(s *settings, o Options, l *lookup, depth int) ([]*settings, error) {
	if s.proxyJump == "" {
		return []*settings{s}, nil
	}
	if depth > 8 {
		return nil, exitcode.Errorf(exitcode.Usage, "ProxyJump loops (more than 8 hops) at %s", s.alias)
	}
	jl := l.forJump()
	var hops []*settings
	for i, spec := range strings.Split(s.proxyJump, ",") {
		jt, err := ParseTarget(strings.TrimSpace(spec))
		if err != nil {
			return nil, err
		}
		js, err := resolve(jt, 0, o.Identities, jl)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			sub, err := chain(js, o, jl, depth+1)
			if err != nil {
				return nil, err
			}
			hops = append(hops, sub...)
			continue
		}
		js.proxyJump = ""
		hops = append(hops, js)
	}
	return append(hops, s), nil
}

// forJump drops the -o keys that name the final target only.
func (l *lookup) forJump() *lookup {
	j := &lookup{cli: map[string][]string{}, configs: l.configs, warn: l.warn}
	for k, v := range l.cli {
		switch k {
		case "hostname", "port", "user", "proxyjump":
			continue
		}
		j.cli[k] = v
	}
	return j
}

// netError marks a failure worth retrying: the network, not the user.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func dialChain(ctx context.Context, hops []*settings, o Options, log *logrus.Logger) (*Client, error) {
	var via *ssh.Client
	var jumps []*ssh.Client
	fail := func(err error) (*Client, error) {
		for i := len(jumps) - 1; i >= 0; i-- {
			jumps[i].Close()
		}
		return nil, err
	}
	for i, h := range hops {
		last := i == len(hops)-1
		c, key, offered, err := dialHop(ctx, h, via, o, last, log)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("%w (through ProxyJump %s)", err, hops[i-1])
			}
			return fail(err)
		}
		if last {
			return &Client{ssh: c, jumps: jumps, hop: h, hostKey: key, offered: offered, opts: o, log: log,
				done: make(chan struct{}), agentCmds: map[bool]string{}}, nil
		}
		jumps = append(jumps, c)
		via = c
	}
	panic("unreachable")
}

// preferredCiphers puts the fastest AEAD ciphers first (AES-GCM uses the
// CPU's AES instructions; ChaCha20 is fast everywhere else).
var preferredCiphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

// dialHop connects one hop (directly, or through via) and authenticates.
func dialHop(ctx context.Context, s *settings, via *ssh.Client, o Options, target bool, log *logrus.Logger) (*ssh.Client, ssh.PublicKey, []ssh.PublicKey, error) {
	hk, err := newHostKeys(s, log.Warnf)
	if err != nil {
		return nil, nil, nil, err
	}
	if target {
		hk.expect = o.ExpectHostKey
	}
	a, err := newAuth(s, o, hk.keyChanged)
	if err != nil {
		return nil, nil, nil, err
	}
	defer a.close()
	cfg := &ssh.ClientConfig{
		User:              s.user,
		Auth:              a.methods,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(),
		Timeout:           s.connectTimeout,
		ClientVersion:     "SSH-2.0-nivis",
	}
	cfg.Ciphers = preferredCiphers

	actx, cancel := context.WithTimeout(ctx, s.connectTimeout)
	defer cancel()
	var conn net.Conn
	if via == nil {
		d := net.Dialer{KeepAlive: 15 * time.Second}
		conn, err = d.DialContext(actx, "tcp", s.addr())
	} else {
		conn, err = via.DialContext(actx, "tcp", s.addr())
	}
	if err != nil {
		err = fmt.Errorf("connect to %s: %w", s, err)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil, nil, exitcode.Wrap(exitcode.Connection, fmt.Errorf("%w; check the host name (or its HostName in ~/.ssh/config)", err))
		}
		if ctx.Err() != nil {
			return nil, nil, nil, exitcode.Wrap(exitcode.Connection, err)
		}
		return nil, nil, nil, &netError{err}
	}
	// The handshake has no context: a deadline and a close on cancel bound it.
	_ = conn.SetDeadline(time.Now().Add(s.connectTimeout))
	stop := context.AfterFunc(actx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, s.addr(), cfg)
	stop()
	if err != nil {
		conn.Close()
		return nil, nil, nil, classify(ctx, s, hk, a, err)
	}
	_ = conn.SetDeadline(time.Time{})
	key, _ := hk.state()
	log.Debugf("connected to %s, host key %s", s, fingerprint(key))
	return ssh.NewClient(sc, chans, reqs), key, a.publicKeys(), nil
}

// classify turns a handshake error into a host-key, auth (both final) or
// network (retryable) error with advice.
func classify(ctx context.Context, s *settings, hk *hostKeys, a *auth, err error) error {
	if _, verdict := hk.state(); verdict != nil {
		return verdict
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain"):
		return exitcode.Errorf(exitcode.Connection, "authentication to %s failed: %s", s, a.hint(s))
	case strings.Contains(msg, "Too many authentication failures"):
		return exitcode.Errorf(exitcode.Connection, "authentication to %s failed: the server cut off after too many keys (MaxAuthTries); pass the right key with -i KEY (nivis then offers only that one): %s", s, a.hint(s))
	}
	if ctx.Err() != nil {
		return exitcode.Wrap(exitcode.Connection, fmt.Errorf("connect to %s: %w", s, ctx.Err()))
	}
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) || strings.Contains(msg, "connection reset") || strings.HasSuffix(msg, "EOF") {
		if a.tried.Load() {
			// Dropped while authenticating: most likely the server refused us
			// (e.g. MaxStartups, or a disconnect on auth). Still worth a retry.
			return &netError{fmt.Errorf("connect to %s: connection lost during authentication: %w", s, err)}
		}
		return &netError{fmt.Errorf("connect to %s: %w", s, err)}
	}
	return exitcode.Wrap(exitcode.Connection, fmt.Errorf("connect to %s: %w", s, err))
}

// startKeepalive sends keepalive@openssh.com every interval and closes
// the connection after aliveCountMax unanswered ones, so a dead host is
// noticed instead of hanging forever.
func (c *Client) startKeepalive() {
	go func() {
		_ = c.ssh.Wait()
		c.closeOnce.Do(func() { close(c.done) })
	}()
	interval, maxMiss := c.hop.aliveInterval, c.hop.aliveCountMax
	if interval <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		misses := 0
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
			}
			reply := make(chan error, 1)
			go func() {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}()
			select {
			case <-c.done:
				return
			case err := <-reply:
				if err != nil {
					return
				}
				misses = 0
			case <-time.After(interval):
				misses++
				if misses >= maxMiss {
					c.log.Warnf("%s did not answer %d keepalives in %s; closing the connection", c.hop, misses, time.Duration(misses)*interval)
					c.ssh.Close()
					return
				}
			}
		}
	}()
}

// HostKey is the key the server presented (and known_hosts accepted).
func (c *Client) HostKey() ssh.PublicKey { return c.hostKey }

// OfferedKeys are the public keys this client offered the target: the
// keys to let into a rescue system so the same client gets back in.
func (c *Client) OfferedKeys() []ssh.PublicKey { return c.offered }

// User is the login user on the host.
func (c *Client) User() string { return c.hop.user }

// Addr is the host:port dialled.
func (c *Client) Addr() string { return c.hop.addr() }

// String names the connection for messages: user@host:port.
func (c *Client) String() string { return c.hop.String() }

// SSH exposes the underlying connection, e.g. for port forwarding.
func (c *Client) SSH() *ssh.Client { return c.ssh }

// Close ends the connection and any ProxyJump hops.
func (c *Client) Close() error {
	err := c.ssh.Close()
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	c.closeOnce.Do(func() { close(c.done) })
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
