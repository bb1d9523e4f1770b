package sshclient

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	skeema "github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/nivis/nivis/internal/exitcode"
)

// hostKeys verifies one hop's host key against known_hosts, OpenSSH style.
type hostKeys struct {
	s    *settings
	db   *skeema.HostKeyDB // nil when no known_hosts file exists yet
	warn func(format string, args ...any)

	mu        sync.Mutex
	presented ssh.PublicKey
	verdict   error // why the key was refused; a refusal is never retried
	changed   bool  // accepted despite a mismatch (StrictHostKeyChecking=no)
	expect    ssh.PublicKey
}

func newHostKeys(s *settings, warn func(string, ...any)) (*hostKeys, error) {
	h := &hostKeys{s: s, warn: warn}
	var files []string
	for _, f := range append(append([]string{}, s.knownHosts...), s.globalKnown...) {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			files = append(files, f)
		}
	}
	if len(files) > 0 {
		db, err := skeema.NewDB(files...)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Usage, "read known_hosts: %w; fix or remove the bad line", err)
		}
		h.db = db
	}
	return h, nil
}

// algorithms puts the key types known_hosts has for this host first, so a
// server with several host keys presents the one we know (x/crypto would
// otherwise pick its own favourite and report a false mismatch).
func (h *hostKeys) algorithms() []string {
	if h.db == nil {
		return nil
	}
	known := h.db.HostKeyAlgorithms(h.s.addr())
	if len(known) == 0 {
		return nil
	}
	out := append([]string{}, known...)
	for _, a := range ssh.SupportedAlgorithms().HostKeys {
		out = appendUnique(out, a)
	}
	return out
}

// knownName is the host as known_hosts writes it: host, or [host]:port.
func (h *hostKeys) knownName() string { return knownhosts.Normalize(h.s.addr()) }

func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.presented = key
	err := h.check(remote, key)
	h.verdict = err
	return err
}

func (h *hostKeys) check(remote net.Addr, key ssh.PublicKey) error {
	if h.expect != nil {
		if !bytes.Equal(h.expect.Marshal(), key.Marshal()) {
			return exitcode.Errorf(exitcode.Connection,
				"host key verification failed: %s presented %s, but it must present %s (the key it had before); refusing to connect",
				h.knownName(), fingerprint(key), fingerprint(h.expect))
		}
		if h.s.strict == "accept-new" || h.s.strict == "no" {
			if h.db == nil || h.db.HostKeyCallback()(h.s.addr(), remote, key) != nil {
				if err := h.record(key); err == nil {
					h.warn("permanently added %s (%s) to %s", h.knownName(), fingerprint(key), h.s.knownHosts[0])
				}
			}
		}
		return nil
	}
	var err error
	if h.db == nil {
		err = &knownhosts.KeyError{}
	} else {
		if _, ok := remote.(*net.TCPAddr); !ok {
			// Through a ProxyJump the address may not be TCP; the host name
			// is what is looked up anyway.
			remote = &net.TCPAddr{IP: net.IPv4zero}
		}
		err = h.db.HostKeyCallback()(h.s.addr(), remote, key)
	}
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return exitcode.Errorf(exitcode.Connection, "host key %s of %s is marked @revoked in %s:%d; refusing to connect",
				fingerprint(key), h.knownName(), re.Revoked.Filename, re.Revoked.Line)
		}
		return exitcode.Wrap(exitcode.Connection, fmt.Errorf("check host key of %s: %w", h.knownName(), err))
	}
	if len(ke.Want) > 0 {
		return h.mismatch(key, ke.Want)
	}
	switch h.s.strict {
	case "accept-new", "no":
		if err := h.record(key); err != nil {
			return exitcode.Wrap(exitcode.Connection, err)
		}
		h.warn("permanently added %s (%s) to %s", h.knownName(), fingerprint(key), h.s.knownHosts[0])
		return nil
	}
	return exitcode.Errorf(exitcode.Connection,
		"host key verification failed: %s is not in %s (it presented %s); check that fingerprint out of band, then connect once with -o StrictHostKeyChecking=accept-new to record it",
		h.knownName(), strings.Join(h.s.knownHosts, " or "), fingerprint(key))
}

func (h *hostKeys) mismatch(key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var where []string
	for _, w := range want {
		where = append(where, fmt.Sprintf("%s:%d (%s)", w.Filename, w.Line, fingerprint(w.Key)))
	}
	file := want[0].Filename
	msg := fmt.Sprintf("WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for %s: it presented %s but known_hosts has %s. "+
		"Someone may be intercepting the connection, or the host was reinstalled. "+
		"If you know the change is legitimate, remove the old key with `ssh-keygen -R '%s' -f %s` and connect again with -o StrictHostKeyChecking=accept-new",
		h.knownName(), fingerprint(key), strings.Join(where, ", "), h.knownName(), file)
	if h.s.strict == "no" {
		// As OpenSSH: connect anyway, but never send a password to it.
		h.changed = true
		h.warn("%s; continuing because StrictHostKeyChecking=no (password authentication disabled)", msg)
		return nil
	}
	return exitcode.Errorf(exitcode.Connection, "%s", msg)
}

// record appends the host's key to the first UserKnownHostsFile, plain
// "[host]:port key" (or hashed with HashKnownHosts yes), as OpenSSH does.
func (h *hostKeys) record(key ssh.PublicKey) error {
	if len(h.s.knownHosts) == 0 {
		return errors.New("no UserKnownHostsFile to record the new host key in; set -o UserKnownHostsFile=FILE")
	}
	file := h.s.knownHosts[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	name := h.knownName()
	if h.s.hashKnownHosts {
		name = knownhosts.HashHostname(name)
	}
	line := name + " " + string(ssh.MarshalAuthorizedKey(key))
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record host key in %s: %w", file, err)
	}
	return f.Close()
}

// state returns the key the server presented and why it was refused (nil
// when accepted).
func (h *hostKeys) state() (ssh.PublicKey, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.presented, h.verdict
}

func (h *hostKeys) keyChanged() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// fingerprint is "ssh-ed25519 SHA256:...", as ssh prints it.
func fingerprint(k ssh.PublicKey) string {
	if k == nil {
		return "(no key)"
	}
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}
