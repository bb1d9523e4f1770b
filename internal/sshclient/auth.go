package sshclient

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/nivis/nivis/internal/exitcode"
)

// EnvPrivateKey names the environment variable that may hold a private key
// (PEM text), as nixos-anywhere users set it in CI.
const EnvPrivateKey = "SSH_PRIVATE_KEY"

// EnvPassword names the environment variable holding the SSH password,
// read only when Options.EnvPassword is set.
const EnvPassword = "SSHPASS"

// offer is one key we may show the server, with where it came from.
type offer struct {
	signer ssh.Signer
	from   string // "agent", a file name, or $SSH_PRIVATE_KEY
}

func (o offer) String() string {
	return fmt.Sprintf("%s %s (%s)", o.signer.PublicKey().Type(), ssh.FingerprintSHA256(o.signer.PublicKey()), o.from)
}

// auth holds the methods for one handshake and what they offered, so a
// failure can say exactly which keys were tried.
type auth struct {
	methods   []ssh.AuthMethod
	offers    []offer
	locked    []string // encrypted identity files no agent holds
	agentNote string   // why the agent was not used, if it was not
	password  bool
	agentConn net.Conn
	tried     atomic.Bool // the server got as far as asking for keys
}

// publicKeys lists the keys offered, in order.
func (a *auth) publicKeys() []ssh.PublicKey {
	out := make([]ssh.PublicKey, 0, len(a.offers))
	for _, of := range a.offers {
		out = append(out, of.signer.PublicKey())
	}
	return out
}

func (a *auth) close() {
	if a.agentConn != nil {
		a.agentConn.Close()
	}
}

// newAuth picks the keys to offer. With -i or IdentitiesOnly only the
// listed identities are offered (an agent key counts when it is one of
// them), so a full agent never trips the server's MaxAuthTries.
func newAuth(s *settings, o Options, changed func() bool) (*auth, error) {
	a := &auth{}
	kr := &keyring{a: a, agent: a.dialAgent(s.identityAgent), seen: map[string]bool{}}
	if err := kr.load(s); err != nil {
		return nil, err
	}
	if len(a.offers) > 0 {
		signers := make([]ssh.Signer, len(a.offers))
		for i, of := range a.offers {
			signers[i] = of.signer
		}
		// One callback with every key in order: x/crypto asks the server
		// about each and stops at the first it accepts.
		a.methods = append(a.methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			a.tried.Store(true)
			return signers, nil
		}))
	}
	if o.EnvPassword {
		if err := a.addPassword(s, changed); err != nil {
			return nil, err
		}
	}
	if len(a.methods) == 0 {
		a.close()
		return nil, exitcode.Errorf(exitcode.Connection, "no credentials to log in to %s: %s", s, a.hint(s))
	}
	return a, nil
}

// dialAgent connects to the ssh-agent (IdentityAgent, else
// $SSH_AUTH_SOCK) and returns its keys, noting why when there are none.
func (a *auth) dialAgent(sock string) []ssh.Signer {
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock == "" || sock == "none" {
		a.agentNote = "no ssh-agent ($SSH_AUTH_SOCK is not set)"
		return nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		a.agentNote = fmt.Sprintf("ssh-agent at %s not reachable: %v", sock, err)
		return nil
	}
	a.agentConn = conn
	keys, err := sshagent.NewClient(conn).Signers()
	if err != nil {
		a.agentNote = fmt.Sprintf("ssh-agent at %s: %v", sock, err)
	}
	return keys
}

// keyring gathers the keys to offer, each once, in OpenSSH's order.
type keyring struct {
	a     *auth
	agent []ssh.Signer
	seen  map[string]bool
}

// load offers $SSH_PRIVATE_KEY, the identity files, the agent's keys
// (unless only the listed identities may be offered), then the default
// key files when no identity was named.
func (kr *keyring) load(s *settings) error {
	if pemText := os.Getenv(EnvPrivateKey); strings.TrimSpace(pemText) != "" {
		if err := kr.loadKey([]byte(pemText), "$"+EnvPrivateKey, ""); err != nil {
			return exitcode.Errorf(exitcode.Usage, "private key in $%s is unusable: %v", EnvPrivateKey, err)
		}
	}
	for _, f := range s.identityFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			// OpenSSH skips missing IdentityFile lines from config files,
			// but a key named on the command line must exist.
			if os.IsNotExist(err) && !s.identitiesNamed[f] {
				continue
			}
			return exitcode.Errorf(exitcode.Usage, "identity file: %v", err)
		}
		if err := kr.loadKey(data, f, f+".pub"); err != nil {
			return exitcode.Errorf(exitcode.Usage, "identity file %v", err)
		}
	}
	onlyListed := s.identitiesOnly || s.identitiesCLI
	if !onlyListed {
		for _, k := range kr.agent {
			kr.add(k, "agent")
		}
	}
	home, _ := os.UserHomeDir()
	if len(s.identityFiles) == 0 && home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			f := filepath.Join(home, ".ssh", n)
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			_ = kr.loadKey(data, f, f+".pub") // a broken default key is skipped, as OpenSSH does
		}
	}
	return nil
}

// inAgent returns the agent's signer for pub, if it holds one.
func (kr *keyring) inAgent(pub ssh.PublicKey) ssh.Signer {
	if pub == nil {
		return nil
	}
	for _, k := range kr.agent {
		if bytes.Equal(k.PublicKey().Marshal(), pub.Marshal()) {
			return k
		}
	}
	return nil
}

func (kr *keyring) add(sg ssh.Signer, from string) {
	k := string(sg.PublicKey().Marshal())
	if !kr.seen[k] {
		kr.seen[k] = true
		kr.a.offers = append(kr.a.offers, offer{signer: sg, from: from})
	}
}

// loadKey turns PEM (or a public key whose private half is in the
// agent) into a signer, or notes why it cannot be used.
func (kr *keyring) loadKey(data []byte, name string, pubFile string) error {
	sg, err := ssh.ParsePrivateKey(data)
	if err == nil {
		kr.add(sg, name)
		return nil
	}
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		pub := pm.PublicKey
		if pub == nil && pubFile != "" {
			pub = readPublicKey(pubFile)
		}
		if sg := kr.inAgent(pub); sg != nil {
			kr.add(sg, name+" via agent")
			return nil
		}
		kr.a.locked = append(kr.a.locked, name)
		return nil
	}
	// -i may name a public key whose private half lives in the agent.
	if pub, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
		if sg := kr.inAgent(pub); sg != nil {
			kr.add(sg, name+" via agent")
			return nil
		}
		return fmt.Errorf("%s is a public key and no ssh-agent holds its private key", name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// addPassword offers $SSHPASS (--env-password) by password and
// keyboard-interactive, where the config allows passwords; never to a
// host whose key has changed.
func (a *auth) addPassword(s *settings, changed func() bool) error {
	pw := os.Getenv(EnvPassword)
	if pw == "" {
		return exitcode.Errorf(exitcode.Usage, "--env-password is set but $%s is empty", EnvPassword)
	}
	if !s.passwordAllowed {
		return nil
	}
	a.password = true
	refuse := errors.New("not sending a password to a host whose key has changed")
	a.methods = append(a.methods,
		ssh.PasswordCallback(func() (string, error) {
			a.tried.Store(true)
			if changed() {
				return "", refuse
			}
			return pw, nil
		}),
		ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			a.tried.Store(true)
			if changed() {
				return nil, refuse
			}
			answers := make([]string, len(questions))
			for i := range questions {
				if !echos[i] {
					answers[i] = pw
				}
			}
			return answers, nil
		}))
	return nil
}

// hint explains what was (not) offered and what to do about it.
func (a *auth) hint(s *settings) string {
	var parts []string
	if len(a.offers) > 0 {
		var names []string
		for _, o := range a.offers {
			names = append(names, o.String())
		}
		parts = append(parts, "offered "+strings.Join(names, ", "))
	} else {
		parts = append(parts, "no usable key")
	}
	if a.agentNote != "" {
		parts = append(parts, a.agentNote)
	}
	for _, f := range a.locked {
		parts = append(parts, fmt.Sprintf("identity file %s is encrypted with a passphrase and nivis cannot ask for it: load it into ssh-agent (eval $(ssh-agent); ssh-add %s) and run again", f, f))
	}
	if a.password {
		parts = append(parts, "the password from $"+EnvPassword+" was offered")
	}
	var next string
	switch {
	case len(a.locked) > 0:
		next = ""
	case len(a.offers) == 0:
		next = fmt.Sprintf("pass -i KEY, set $%s, load a key into ssh-agent, or use --env-password with $%s", EnvPrivateKey, EnvPassword)
	default:
		next = fmt.Sprintf("check that %s's authorized_keys holds one of these keys, or pass the right one with -i KEY", s.user)
	}
	if next != "" {
		parts = append(parts, next)
	}
	return strings.Join(parts, "; ")
}

func readPublicKey(file string) ssh.PublicKey {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil
	}
	return pub
}
