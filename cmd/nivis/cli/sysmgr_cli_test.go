//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/testsshd"
	"github.com/nivis/nivis/sysmgr"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatal("needs root and NIVIS_REQUIRE_ROOT=1 is set")
	}
	t.Skip("needs root: activation sets file owners")
}

// cliTree is a --root tree and a config directory.
type cliTree struct {
	t         *testing.T
	root, dir string
}

func newTree(t *testing.T) *cliTree {
	requireRoot(t)
	tr := &cliTree{t: t, root: t.TempDir(), dir: t.TempDir()}
	for _, d := range []string{"etc/systemd/system", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(tr.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func (tr *cliTree) file(name, content string) string {
	p := filepath.Join(tr.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
	return p
}

func (tr *cliTree) read(p string) string {
	b, err := os.ReadFile(filepath.Join(tr.root, p))
	if err != nil {
		tr.t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

const cliConfig = `apiVersion: nivis/v1alpha1
kind: Services
units:
  hello.service:
    source: ./hello.service
    restartTriggers: [/etc/hello/config.ini]
files:
  /etc/hello/config.ini:
    source: ./config.ini
    mode: "0640"
  /etc/motd:
    text: "managed by nivis\n"
    onConflict: backup
secrets:
  token:
    env: NIVIS_TEST_TOKEN
    mode: "0400"
`

const helloUnit = "[Service]\nExecStart=/usr/bin/python3 -m http.server 8080\n[Install]\nWantedBy=multi-user.target\n"

func TestCLILocalLifecycle(t *testing.T) {
	tr := newTree(t)
	t.Setenv("NIVIS_TEST_TOKEN", "tok-123")
	tr.file("hello.service", helloUnit)
	tr.file("config.ini", "port=8080\n")
	cfg := tr.file("services.yaml", cliConfig)
	if err := os.WriteFile(filepath.Join(tr.root, "etc/motd"), []byte("distro motd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	local := []string{"--local", "--root", tr.root}

	code, out, errOut := runCLI(t, append([]string{"apply", "-c", cfg, "-m", "first"}, local...)...)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "local: generation 1 is active") || !strings.Contains(out, "+ write /etc/hello/config.ini (new)") {
		t.Errorf("apply output:\n%s", out)
	}
	if tr.read("/etc/hello/config.ini") != "port=8080\n" || tr.read(sysmgr.SecretsDir+"/token") != "tok-123" {
		t.Error("files or secret not written")
	}
	if calls := tr.read(sysmgr.StateDir + "/systemd-calls.log"); !strings.Contains(calls, "start hello.service") {
		t.Errorf("systemd calls:\n%s", calls)
	}

	// Drift shows in diff and changes nothing.
	if err := os.WriteFile(filepath.Join(tr.root, "etc/hello/config.ini"), []byte("port=9999\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, append([]string{"diff", "-c", cfg}, local...)...)
	if code != 0 || !strings.Contains(out, "drift: /etc/hello/config.ini was edited on the host") {
		t.Errorf("diff: exit %d\n%s", code, out)
	}
	if code, _, _ = runCLI(t, append([]string{"diff", "-c", cfg, "--exit-code"}, local...)...); code != 1 {
		t.Errorf("diff --exit-code with drift: exit %d, want 1", code)
	}
	if tr.read("/etc/hello/config.ini") != "port=9999\n" {
		t.Error("diff changed the host")
	}

	// A config change makes generation 2 and restarts the unit.
	tr.file("config.ini", "port=8081\n")
	if code, out, errOut = runCLI(t, append([]string{"apply", "-c", cfg, "-m", "second"}, local...)...); code != 0 {
		t.Fatalf("apply 2: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "restart-unit hello.service (changed)") {
		t.Errorf("apply 2 output:\n%s", out)
	}

	code, out, _ = runCLI(t, append([]string{"generations", "--json"}, local...)...)
	var gens sysmgr.GenerationsResult
	if code != 0 || json.Unmarshal([]byte(out), &gens) != nil || gens.Current != 2 || len(gens.Generations) != 2 || gens.Generations[0].Message != "first" {
		t.Fatalf("generations: exit %d %+v\n%s", code, gens, out)
	}
	code, out, _ = runCLI(t, append([]string{"generations"}, local...)...)
	if code != 0 || !strings.Contains(out, "(current)") || !strings.Contains(out, "second") {
		t.Errorf("generations table:\n%s", out)
	}

	if code, out, errOut = runCLI(t, append([]string{"rollback"}, local...)...); code != 0 || tr.read("/etc/hello/config.ini") != "port=8080\n" {
		t.Errorf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = runCLI(t, append([]string{"gc", "--keep", "1"}, local...)...); code != 0 || !strings.Contains(out, "removed generations []") {
		// 2 is newest, 1 is current: nothing to remove.
		t.Errorf("gc: exit %d\n%s", code, out)
	}
	if code, out, _ = runCLI(t, append([]string{"confirm"}, local...)...); code != 0 || !strings.Contains(out, "nothing waits") {
		t.Errorf("confirm with nothing pending: exit %d\n%s", code, out)
	}

	// --try leaves the generation pending until confirm.
	tr.file("config.ini", "port=8082\n")
	code, out, errOut = runCLI(t, append([]string{"apply", "-c", cfg, "--try"}, local...)...)
	if code != 0 || !strings.Contains(out, "on trial until") {
		t.Fatalf("apply --try: exit %d\n%s\n%s", code, out, errOut)
	}
	// A tree has no service manager: the watcher's transient unit is recorded.
	if cmds := tr.read(sysmgr.StateDir + "/systemd-calls.log"); !strings.Contains(cmds, "run systemd-run --unit=nivis-confirm-3-") || !strings.Contains(cmds, "agent sysmgr-confirm-wait") {
		t.Errorf("watcher not started through systemd-run:\n%s", cmds)
	}
	if code, out, _ = runCLI(t, append([]string{"confirm"}, local...)...); code != 0 || !strings.Contains(out, "generation 3 confirmed") {
		t.Errorf("confirm: exit %d\n%s", code, out)
	}

	// Deactivate needs --yes without a terminal, then restores the motd.
	if code, _, _ = runCLI(t, append([]string{"deactivate"}, local...)...); code != int(exitcode.Aborted) {
		t.Errorf("deactivate without --yes: exit %d", code)
	}
	if code, out, errOut = runCLI(t, append([]string{"deactivate", "--yes"}, local...)...); code != 0 {
		t.Fatalf("deactivate: exit %d\n%s%s", code, out, errOut)
	}
	if tr.read("/etc/motd") != "distro motd\n" {
		t.Error("motd not restored")
	}
	if _, err := os.Stat(filepath.Join(tr.root, "etc/hello")); err == nil {
		t.Error("/etc/hello left after deactivate")
	}
}

func TestCLIRefusals(t *testing.T) {
	tr := newTree(t)
	local := []string{"--local", "--root", tr.root}
	bad := tr.file("bad.yaml", `apiVersion: nivis/v1alpha1
kind: Services
units:
  hello:
    text: x
files:
  /etc/x:
    text: x
    mode: "99"
`)
	code, _, errOut := runCLI(t, append([]string{"apply", "-c", bad}, local...)...)
	if code != int(exitcode.Usage) || !strings.Contains(errOut, `error at $.units.hello, line 5`) || !strings.Contains(errOut, `$.files["/etc/x"].mode`) {
		t.Errorf("invalid config: exit %d\n%s", code, errOut)
	}
	for _, p := range []string{"etc/a.conf", "etc/b.conf"} {
		if err := os.WriteFile(filepath.Join(tr.root, p), []byte("theirs\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := tr.file("s.yaml", "apiVersion: nivis/v1alpha1\nkind: Services\nfiles:\n  /etc/a.conf: {text: ours}\n  /etc/b.conf: {text: ours}\n")
	code, _, errOut = runCLI(t, append([]string{"apply", "-c", cfg}, local...)...)
	if code != int(exitcode.Precondition) || !strings.Contains(errOut, "/etc/a.conf: found a file") || !strings.Contains(errOut, "/etc/b.conf: found a file") {
		t.Errorf("conflicts: exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{{"apply", "-c", cfg}, {"apply", "host", "--local", "-c", cfg}, {"generations"}, {"apply", "--inventory", "x.yaml", "host"}, {"apply", "host", "--on", "@web", "-c", cfg}} {
		if code, _, _ := runCLI(t, args...); code != int(exitcode.Usage) {
			t.Errorf("%q: exit %d, want usage", args, code)
		}
	}
}

// TestCLIApplyOverSSH runs the whole remote path against a real sshd on
// 127.0.0.1: bundle and secret uploaded, the agent (a freshly built nivis)
// activates under --root, and the client confirms over a second, new SSH
// connection; then a fleet apply over an inventory prints its table.
func TestCLIApplyOverSSH(t *testing.T) {
	tr := newTree(t)
	srv := testsshd.Start(t)
	bin := buildNivis(t)
	t.Setenv("NIVIS_AGENT_BINARY", bin)
	removeCachedAgent(t, bin)
	t.Setenv("NIVIS_TEST_TOKEN", "remote-token")
	tr.file("hello.service", helloUnit)
	tr.file("config.ini", "port=8080\n")
	cfg := tr.file("services.yaml", cliConfig)
	ssh := []string{"-p", strconv.Itoa(srv.Port), "-i", srv.KeyFile, "-o", "UserKnownHostsFile=" + srv.KnownHosts, "-o", "StrictHostKeyChecking=yes"}
	target := srv.User + "@127.0.0.1"

	args := append([]string{"apply", target, "-c", cfg, "--root", tr.root, "--confirm-timeout", "20s"}, ssh...)
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("apply over SSH: exit %d\n%s\n%s\nsshd log:\n%s", code, out, errOut, srv.Log())
	}
	if !strings.Contains(errOut, "confirmed over a new SSH connection") {
		t.Errorf("no confirmation reported:\n%s", errOut)
	}
	if tr.read(sysmgr.SecretsDir+"/token") != "remote-token" || tr.read("/etc/hello/config.ini") != "port=8080\n" {
		t.Error("secret or file not written over SSH")
	}
	if _, err := os.Stat(filepath.Join(tr.root, sysmgr.PendingFile)); err == nil {
		t.Error("pending marker left after confirmation")
	}
	logs, _ := os.ReadFile(filepath.Join(tr.root, sysmgr.StateDir, "systemd-calls.log"))
	if !strings.Contains(string(logs), "run systemd-run --unit=nivis-confirm-1-") {
		t.Errorf("watcher not started:\n%s", logs)
	}
	if strings.Contains(errOut+out, "remote-token") {
		t.Error("the secret reached the output")
	}

	inv := tr.file("hosts.yaml", "apiVersion: nivis/v1alpha1\nkind: Inventory\nconfig: ./services.yaml\nhosts:\n  - {name: a, target: "+target+", tags: [web]}\n  - {name: b, target: "+target+", tags: [db]}\n")
	code, out, errOut = runCLI(t, append([]string{"apply", "--inventory", inv, "--on", "@web,b", "--parallel", "2", "--root", tr.root}, ssh...)...)
	if code != 0 {
		t.Fatalf("fleet: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"HOST", "a  ", "b  ", "unchanged"} {
		if !strings.Contains(out, want) {
			t.Errorf("fleet table lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCLI(t, append([]string{"apply", "--inventory", inv, "--on", "a", "--root", tr.root, "--log-format", "json", "--json"}, ssh...)...)
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0]["host"] != "a" {
		t.Errorf("fleet --json: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-format json wrote a non-JSON line: %q", line)
		}
	}
}
