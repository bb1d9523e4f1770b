package testsshd

import (
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestStart logs in with the generated key, checks the host key against the
// written known_hosts, and runs a command.
func TestStart(t *testing.T) {
	s := Start(t)
	hk, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.ClientKey)},
		HostKeyCallback: hk,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo hello-$((6*7))")
	if err != nil || string(out) != "hello-42\n" {
		t.Fatalf("exec: %q %v", out, err)
	}
	s.Stop()
	if s.banner() {
		t.Error("sshd still answers after Stop")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Wait() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Error("the open connection survived Stop")
	}
}
