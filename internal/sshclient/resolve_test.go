package sshclient

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
)

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"host":                      {Host: "host"},
		"root@host":                 {User: "root", Host: "host"},
		"host:2222":                 {Host: "host", Port: 2222},
		"me@10.0.0.1:22":            {User: "me", Host: "10.0.0.1", Port: 22},
		"[::1]:2222":                {Host: "::1", Port: 2222},
		"root@[fe80::1%eth0]:22":    {User: "root", Host: "fe80::1%eth0", Port: 22},
		"[::1]":                     {Host: "::1"},
		"::1":                       {Host: "::1"},
		"2001:db8::5":               {Host: "2001:db8::5"},
		"ssh://admin@example.org:7": {User: "admin", Host: "example.org", Port: 7},
		"ssh://[::1]:2200":          {Host: "::1", Port: 2200},
		"a@b@host":                  {User: "a@b", Host: "host"},
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "@host", "host:0", "host:99999", "host:x", "[::1", "[::1]x", "user@", "ho st"} {
		if _, err := ParseTarget(bad); err == nil || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("ParseTarget(%q): want a usage error, got %v", bad, err)
		}
	}
}

// TestResolvePrecedence: command line first (-p, target, -o), then the
// first matching ssh_config value, as OpenSSH.
func TestResolvePrecedence(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := filepath.Join(home, "cfg")
	writeFile(t, cfg, `
Host web
  HostName 192.0.2.7
  Port 2200
  User deploy
  IdentityFile ~/.ssh/web_key
  IdentityFile %d/other_%r
  ProxyJump bastion
  ConnectTimeout 7
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/kh1 ~/kh2

Host *
  Port 2300
  User nobody
  IdentitiesOnly yes
`)
	l, err := newLookup([]string{"User=override", "Port=2400", "ServerAliveInterval=0", "LogLevel=ERROR"}, cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := resolve(Target{Host: "web"}, 0, []string{"/k1"}, l)
	if err != nil {
		t.Fatal(err)
	}
	want := &settings{
		alias: "web", hostName: "192.0.2.7", port: 2400, user: "override",
		identityFiles:   []string{"/k1", filepath.Join(home, ".ssh/web_key"), filepath.Join(home, "other_override")},
		identitiesCLI:   true,
		identitiesNamed: map[string]bool{"/k1": true},
		identitiesOnly:  true,
		proxyJump:       "bastion",
		knownHosts:      []string{filepath.Join(home, "kh1"), filepath.Join(home, "kh2")},
		globalKnown:     []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"},
		strict:          "accept-new",
		connectTimeout:  7 * time.Second,
		aliveInterval:   0,
		aliveCountMax:   3,
		passwordAllowed: true,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("resolve:\n got  %+v\n want %+v", s, want)
	}

	// -p beats the target's port, which beats -o Port and the config.
	s, err = resolve(Target{Host: "web", Port: 2500, User: "me"}, 2600, nil, l)
	if err != nil || s.port != 2600 || s.user != "me" {
		t.Errorf("-p and user@: got port %d user %q (%v)", s.port, s.user, err)
	}
	s, _ = resolve(Target{Host: "web", Port: 2500}, 0, nil, l)
	if s.port != 2500 {
		t.Errorf("target port: got %d", s.port)
	}
	// Without -o, the first matching Host block wins; Host * fills the rest.
	l2, _ := newLookup(nil, cfg, t.Logf)
	s, _ = resolve(Target{Host: "other"}, 0, nil, l2)
	if s.port != 2300 || s.user != "nobody" || s.hostName != "other" || s.strict != "yes" || s.aliveInterval != DefaultKeepalive {
		t.Errorf("Host *: got %+v", s)
	}

	for _, bad := range [][]string{{"StrictHostKeyChecking=maybe"}, {"IdentitiesOnly=perhaps"}, {"Port=http"}, {"ConnectTimeout=soon"}} {
		l, err := newLookup(bad, "none", t.Logf)
		if err == nil {
			_, err = resolve(Target{Host: "h"}, 0, nil, l)
		}
		if exitcode.Of(err) != exitcode.Usage {
			t.Errorf("-o %v: want a usage error, got %v", bad, err)
		}
	}
	if _, err := newLookup([]string{"novalue"}, "none", t.Logf); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("-o without a value: want a usage error, got %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/nivis/x": "/var/lib/nivis/x",
		"":                 "''",
		"a b":              "'a b'",
		"it's":             `'it'\''s'`,
		"$HOME":            "'$HOME'",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
