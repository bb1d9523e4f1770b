//go:build linux

package sysmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
)

const helloV1 = `
units:
  hello.service:
    text: |
      [Service]
      ExecStart=/usr/bin/python3 -m http.server 8080
      [Install]
      WantedBy=multi-user.target
    restartTriggers: [/etc/hello/config.ini]
  ssh.service:
    dropins:
      port.conf: |
        [Service]
        Environment=X=1
  bluetooth.service:
    mask: true
files:
  /etc/hello/config.ini:
    text: "port=8080\n"
    mode: "0640"
  /etc/hello/link.conf:
    text: "linked\n"
    link: true
directories:
  /srv/hello:
    mode: "0750"
symlinks:
  /etc/hello/current:
    target: /srv/hello
tmpfiles:
  - d /run/hello 0755 root root -
`

func TestApplyWritesEverythingAndStartsUnits(t *testing.T) {
	th := newTestHost(t)
	res := th.apply(helloV1)
	if res.Generation != 1 || !res.New || res.Previous != 0 {
		t.Fatalf("result %+v", res)
	}
	if got := th.read("/etc/hello/config.ini"); got != "port=8080\n" {
		t.Errorf("config.ini = %q", got)
	}
	d, _ := inspect(th.path("/etc/hello/config.ini"))
	if d.Mode != 0o640 || d.UID != 0 {
		t.Errorf("config.ini mode %o uid %d", d.Mode, d.UID)
	}
	link, _ := os.Readlink(th.path("/etc/hello/link.conf"))
	if !strings.HasPrefix(link, StoreDir+"/"+sha("linked\n")+"-") {
		t.Errorf("link.conf -> %q, want a store path", link)
	}
	obj, _ := inspect(th.path(link))
	if obj.Kind != "file" || obj.Mode != 0o444 {
		t.Errorf("store object %+v, want a read-only file", obj)
	}
	for p, target := range map[string]string{
		"/etc/systemd/system/multi-user.target.wants/hello.service": "/etc/systemd/system/hello.service",
		"/etc/systemd/system/bluetooth.service":                     "/dev/null",
		"/etc/hello/current":                                        "/srv/hello",
	} {
		if got, _ := os.Readlink(th.path(p)); got != target {
			t.Errorf("%s -> %q, want %q", p, got, target)
		}
	}
	if !strings.Contains(th.read("/etc/systemd/system/ssh.service.d/port.conf"), "X=1") || !strings.Contains(th.read(TmpfilesPath), "/run/hello") {
		t.Error("drop-in or tmpfiles.d file missing")
	}
	if dd, _ := inspect(th.path("/srv/hello")); dd.Kind != "dir" || dd.Mode != 0o750 {
		t.Errorf("/srv/hello: %+v", dd)
	}
	wantCalls := []string{"stop bluetooth.service", "daemon-reload", "start hello.service", "try-restart ssh.service"}
	if got := th.sd.TakeCalls(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("systemd calls %q, want %q", got, wantCalls)
	}
	if got := th.cmds.lines(); !contains(got, "systemd-tmpfiles --create --root="+th.Root+" "+TmpfilesPath) {
		t.Errorf("tmpfiles not run: %q", got)
	}
	if th.current() != 1 {
		t.Errorf("current = %d", th.current())
	}
	if th.exists(JournalFile) {
		t.Error("journal left after a successful activation")
	}

	// Re-applying the same config changes nothing and makes no generation.
	res = th.apply(helloV1)
	if res.New || res.Generation != 1 || !res.Plan.Empty() {
		t.Errorf("no-op re-apply: %+v\n%s", res, res.Plan)
	}
	if calls := th.sd.TakeCalls(); len(calls) != 0 {
		t.Errorf("no-op re-apply called systemd: %q", calls)
	}

	// A change to the unit's config file restarts it (restartTriggers);
	// nothing else is touched.
	res = th.apply(strings.Replace(helloV1, "port=8080", "port=8081", 1))
	if res.Generation != 2 {
		t.Fatalf("generation %d", res.Generation)
	}
	if got := th.sd.TakeCalls(); !reflect.DeepEqual(got, []string{"daemon-reload", "restart hello.service"}) {
		t.Errorf("calls after config change: %q", got)
	}
	if res.Changes != 3 { // write, daemon-reload, restart
		t.Errorf("changes = %d, want 3\n%s", res.Changes, res.Plan)
	}
}

func TestRemovedUnitStoppedBeforeItsFilesGo(t *testing.T) {
	th := newTestHost(t)
	th.apply(helloV1)
	th.sd.TakeCalls()
	var order []string
	th.hook = func(stage string, i int, op Op) {
		if stage == "before" && (op.Kind == OpStopUnit || op.Kind == OpRemove) {
			order = append(order, op.String())
		}
	}
	th.apply(`
files:
  /etc/other.conf:
    text: x
`)
	if len(order) == 0 || !strings.HasPrefix(order[0], "stop-unit hello.service") {
		t.Errorf("ops in order %q: the unit must stop before its files go", order)
	}
	calls := th.sd.TakeCalls()
	for _, want := range []string{"stop hello.service", "daemon-reload", "try-restart ssh.service", "reset-failed hello.service"} {
		if !contains(calls, want) {
			t.Errorf("missing %q in %q", want, calls)
		}
	}
	for _, p := range []string{"/etc/hello", "/etc/systemd/system/hello.service", "/etc/systemd/system/multi-user.target.wants/hello.service", "/etc/systemd/system/ssh.service.d", "/etc/systemd/system/bluetooth.service", "/srv/hello", TmpfilesPath} {
		if th.exists(p) {
			t.Errorf("%s still there after its entry was removed", p)
		}
	}
	if !th.exists("/etc/systemd/system/multi-user.target.wants") {
		t.Error("a directory nivis did not create was removed")
	}
}

func TestUnitSwitchesHonoured(t *testing.T) {
	th := newTestHost(t)
	cfg := func(v string) string {
		return fmt.Sprintf(`
units:
  keep.service:
    text: |
      [Unit]
      X-RestartIfChanged=false
      X-StopOnRemoval=false
      [Service]
      ExecStart=/bin/keep %[1]s
      [Install]
      WantedBy=multi-user.target
  soft.service:
    text: |
      [Service]
      X-ReloadIfChanged=true
      ExecStart=/bin/soft %[1]s
      [Install]
      WantedBy=multi-user.target
`, v)
	}
	th.apply(cfg("1"))
	th.sd.TakeCalls()
	th.apply(cfg("2"))
	calls := th.sd.TakeCalls()
	if contains(calls, "restart keep.service") || !contains(calls, "reload soft.service") {
		t.Errorf("X-RestartIfChanged=false / X-ReloadIfChanged not honoured: %q", calls)
	}
	th.apply(`
files:
  /etc/x:
    text: x
`)
	if calls := th.sd.TakeCalls(); contains(calls, "stop keep.service") || !contains(calls, "stop soft.service") {
		t.Errorf("X-StopOnRemoval=false not honoured: %q", calls)
	}
}

func TestConflictsAllListedNothingChanged(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/a.conf", "theirs a\n", 0o644)
	th.write("/etc/b.conf", "theirs b\n", 0o600)
	th.write("/etc/systemd/system/web.service", "[Service]\nExecStart=/bin/theirs\n", 0o644)
	if err := os.Symlink("/somewhere", th.path("/etc/c.link")); err != nil {
		t.Fatal(err)
	}
	th.write("/etc/same.conf", "same\n", 0o644) // identical: adopted, not a conflict
	before := th.snapshot()
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(`
units:
  web.service:
    text: "[Service]\nExecStart=/bin/web\n"
files:
  /etc/a.conf:
    text: "ours a\n"
  /etc/b.conf:
    text: "ours b\n"
    onConflict: fail
  /etc/same.conf:
    text: "same\n"
  /etc/new.conf:
    text: "new\n"
symlinks:
  /etc/c.link:
    target: /elsewhere
`)})
	var ce *ConflictError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Precondition {
		t.Fatalf("err = %v (code %v), want a ConflictError with exit code precondition", err, exitcode.Of(err))
	}
	var paths []string
	for _, c := range ce.Conflicts {
		paths = append(paths, c.Path)
	}
	want := []string{"/etc/a.conf", "/etc/b.conf", "/etc/c.link", "/etc/systemd/system/web.service"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("conflicts %q, want every one of %q", paths, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error text does not name %s:\n%v", w, err)
		}
	}
	if d := diffSnapshots(before, th.snapshot()); d != "" {
		t.Errorf("the host changed although the apply was refused:\n%s", d)
	}
	if th.current() != 0 || th.exists(LedgerFile) || len(th.sd.TakeCalls()) != 0 {
		t.Error("state or systemd touched by a refused apply")
	}
	if nums, _ := th.generationNumbers(); len(nums) != 0 {
		t.Errorf("generations %v left by a refused apply", nums)
	}
}

func TestBackupKeptAndRestored(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/motd", "the distro's motd\n", 0o600)
	if err := os.Chown(th.path("/etc/motd"), 12, 34); err != nil {
		t.Fatal(err)
	}
	th.write("/etc/issue", "overwrite me\n", 0o644)
	orig := th.snapshot()
	th.apply(`
files:
  /etc/motd:
    text: "managed motd\n"
    onConflict: backup
  /etc/issue:
    text: "managed issue\n"
    onConflict: overwrite
`)
	if th.read("/etc/motd") != "managed motd\n" || th.read("/etc/issue") != "managed issue\n" {
		t.Fatal("managed content not written")
	}
	ents, _ := os.ReadDir(th.path(BackupDir))
	if len(ents) != 1 {
		t.Fatalf("backups %v, want the motd only", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(th.path(BackupDir), ents[0].Name())); string(b) != "the distro's motd\n" {
		t.Errorf("backup holds %q", b)
	}
	// Dropping the entries gives the motd back exactly, and the overwritten
	// file (its original was given up on purpose) goes.
	th.apply(`
files:
  /etc/other:
    text: x
`)
	now := th.snapshot()
	if now["/etc/motd"] != orig["/etc/motd"] {
		t.Errorf("motd after restore %q, want %q", now["/etc/motd"], orig["/etc/motd"])
	}
	if th.exists("/etc/issue") {
		t.Error("/etc/issue (overwritten, then unmanaged) still there")
	}
	if ents, _ := os.ReadDir(th.path(BackupDir)); len(ents) != 0 {
		t.Errorf("backup copies left after restore: %v", ents)
	}
}

func TestDriftShownByDiffOverwrittenByApply(t *testing.T) {
	th := newTestHost(t)
	cfg := `
files:
  /etc/app.conf:
    text: "declared\n"
    mode: "0644"
  /etc/mode.conf:
    text: "m\n"
    mode: "0600"
`
	th.apply(cfg)
	th.write("/etc/app.conf", "edited by hand\n", 0o644)
	if err := os.Chmod(th.path("/etc/mode.conf"), 0o666); err != nil {
		t.Fatal(err)
	}
	d, err := th.Diff(context.Background(), &DiffRequest{Bundle: th.bundle(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Plan.Drift, []string{"/etc/app.conf", "/etc/mode.conf (mode or owner)"}) {
		t.Errorf("drift %q", d.Plan.Drift)
	}
	if !strings.Contains(d.Plan.String(), "drift: /etc/app.conf was edited on the host") {
		t.Errorf("diff output does not show the drift:\n%s", d.Plan)
	}
	if th.read("/etc/app.conf") != "edited by hand\n" {
		t.Error("diff changed the file")
	}
	res := th.apply(cfg)
	if res.New || th.read("/etc/app.conf") != "declared\n" {
		t.Errorf("apply did not overwrite the drift (new generation: %v)", res.New)
	}
	if dd, _ := inspect(th.path("/etc/mode.conf")); dd.Mode != 0o600 {
		t.Errorf("mode drift not fixed: %o", dd.Mode)
	}
}

func TestGenerationsRollbackGC(t *testing.T) {
	th := newTestHost(t)
	cfg := func(v string) string {
		return fmt.Sprintf("\nfiles:\n  /etc/v.conf:\n    text: %q\n  /etc/only%s.conf:\n    text: x\n", v, v)
	}
	th.apply(cfg("1"))
	s1 := th.snapshot()
	th.apply(cfg("2"))
	s2 := th.snapshot()
	th.apply(cfg("3"))
	gens, err := th.Generations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gens.Current != 3 || len(gens.Generations) != 3 || !gens.Generations[2].Current || gens.Generations[0].Files != 2 || gens.Generations[0].Message != "test" {
		t.Fatalf("generations %+v", gens)
	}
	if _, err := th.Rollback(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if th.current() != 2 || diffSnapshots(s2, th.snapshot()) != "" {
		t.Errorf("rollback: current %d, diff:\n%s", th.current(), diffSnapshots(s2, th.snapshot()))
	}
	if _, err := th.Rollback(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if th.current() != 1 || diffSnapshots(s1, th.snapshot()) != "" {
		t.Errorf("rollback --to 1: current %d, diff:\n%s", th.current(), diffSnapshots(s1, th.snapshot()))
	}
	gc, err := th.GC(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gc.RemovedGenerations, []int{2}) || gc.RemovedObjects != 2 {
		t.Errorf("gc %+v: want generation 2 and its 2 objects removed (3 is newest, 1 is current)", gc)
	}
	if _, err := th.Rollback(context.Background(), 2); err == nil {
		t.Error("rollback to a collected generation succeeded")
	}
	if _, err := th.Rollback(context.Background(), 3); err != nil {
		t.Errorf("rollback to a kept generation: %v", err)
	}
	// A new apply numbers after the highest generation, not after current.
	if _, err := th.Rollback(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if res := th.apply(cfg("4")); res.Generation != 4 {
		t.Errorf("new generation after rollback numbered %d, want 4", res.Generation)
	}
}

func TestFailingUnitRevertsEverything(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/motd", "original motd\n", 0o644)
	good := `
units:
  ok.service:
    text: "[Service]\nExecStart=/bin/ok\n[Install]\nWantedBy=multi-user.target\n"
files:
  /etc/motd:
    text: "gen1 motd\n"
    onConflict: backup
  /etc/app.conf:
    text: "v1\n"
`
	th.apply(good)
	s1, running1 := th.snapshot(), th.sd.Running()
	th.sd.Fail = map[string]string{"bad.service": "failed"}
	th.sd.TakeCalls()
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(`
units:
  ok.service:
    text: "[Service]\nExecStart=/bin/ok --v2\n[Install]\nWantedBy=multi-user.target\n"
  bad.service:
    text: "[Service]\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n"
files:
  /etc/app.conf:
    text: "v2\n"
  /etc/new.conf:
    text: "new\n"
`)})
	var ae *ActivationError
	if !errors.As(err, &ae) || exitcode.Of(err) != exitcode.Change {
		t.Fatalf("err %v (code %v), want an ActivationError with exit code change", err, exitcode.Of(err))
	}
	if !ae.Reverted || ae.Unit != "bad.service" || !strings.Contains(ae.Status, "Active: failed") || !strings.Contains(ae.Journal, "the service crashed") {
		t.Errorf("activation error lacks revert or diagnostics: %+v", ae)
	}
	for _, want := range []string{"bad.service", "journalctl -u bad.service", "reverted to generation 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error text lacks %q:\n%v", want, err)
		}
	}
	if d := diffSnapshots(s1, th.snapshot()); d != "" {
		t.Errorf("host not back at generation 1:\n%s", d)
	}
	if th.current() != 1 || th.exists(JournalFile) || th.exists(filepath.Join(GenerationsDir, "2.json")) {
		t.Errorf("state after revert: current %d, journal %v, failed generation kept %v", th.current(), th.exists(JournalFile), th.exists(filepath.Join(GenerationsDir, "2.json")))
	}
	if got := th.sd.Running(); !reflect.DeepEqual(got, running1) {
		t.Errorf("running units %q, want %q", got, running1)
	}
	calls := th.sd.TakeCalls()
	if !contains(calls, "stop bad.service") || !contains(calls, "reset-failed bad.service") {
		t.Errorf("revert did not stop the failed unit: %q", calls)
	}
	// The unit's diagnostics came through the command seam.
	if cmds := strings.Join(th.cmds.lines(), "\n"); !strings.Contains(cmds, "journalctl -u bad.service -n 20 --no-pager -o cat") {
		t.Errorf("journal not read: %s", cmds)
	}
}

func TestFirstApplyFailureLeavesHostAsFound(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/motd", "original\n", 0o644)
	s0 := th.snapshot()
	th.sd.Fail = map[string]string{"bad.service": "failed"}
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(`
units:
  bad.service:
    text: "[Service]\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n"
files:
  /etc/motd:
    text: "managed\n"
    onConflict: backup
  /etc/deep/new/file.conf:
    text: x
`)})
	if exitcode.Of(err) != exitcode.Change {
		t.Fatalf("err %v", err)
	}
	if d := diffSnapshots(s0, th.snapshot()); d != "" {
		t.Errorf("host differs from before the failed first apply:\n%s", d)
	}
	if th.current() != 0 {
		t.Errorf("current = %d", th.current())
	}
}

func TestVerifyCatchesUnitThatDiesAfterStart(t *testing.T) {
	th := newTestHost(t)
	th.Systemd = &dyingSystemd{RecordedSystemd: th.sd, dies: "flaky.service"}
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(`
units:
  flaky.service:
    text: "[Service]\nExecStart=/bin/sh -c 'exit 3'\n[Install]\nWantedBy=multi-user.target\n"
`)})
	var ae *ActivationError
	if !errors.As(err, &ae) || ae.Op.Kind != OpVerifyUnits || ae.Unit != "flaky.service" || !ae.Reverted {
		t.Fatalf("err %v", err)
	}
	if th.exists("/etc/systemd/system/flaky.service") {
		t.Error("unit file left after revert")
	}
}

// dyingSystemd reports a unit failed right after its start job succeeded.
type dyingSystemd struct {
	*RecordedSystemd
	dies string
}

func (d *dyingSystemd) State(ctx context.Context, u string) (UnitStatus, error) {
	if u == d.dies && d.Active[u] {
		return UnitStatus{Load: "loaded", Active: "failed", Sub: "failed"}, nil
	}
	return d.RecordedSystemd.State(ctx, u)
}

func TestUsersGroupsAndOwnership(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nold:x:1000:1000::/home/old:/bin/sh\n", 0o644)
	th.write("/etc/group", "root:x:0:\nold:x:1000:\n", 0o644)
	cfg := `
groups:
  hello: {gid: 950}
users:
  hello: {uid: 950, group: hello, home: /srv/hello}
  old: {uid: 5}
files:
  /etc/hello/secret.ini:
    text: x
    mode: "0600"
    user: hello
    group: hello
`
	th.apply(cfg)
	cmds := th.cmds.lines()
	if !contains(cmds, "groupadd --prefix "+th.Root+" --system --gid 950 hello") || !contains(cmds, "useradd --prefix "+th.Root+" --system --uid 950 --gid hello --home-dir /srv/hello --no-create-home --shell /usr/sbin/nologin hello") {
		t.Errorf("account commands %q", cmds)
	}
	for _, c := range cmds {
		if strings.Contains(c, " old") {
			t.Errorf("an existing user was touched: %q", c)
		}
	}
	if d, _ := inspect(th.path("/etc/hello/secret.ini")); d.UID != 950 || d.GID != 950 {
		t.Errorf("owner %d:%d, want 950:950", d.UID, d.GID)
	}
	th.cmds.Recorder.Commands = nil
	th.apply(cfg)
	if len(th.cmds.lines()) != 0 {
		t.Errorf("second apply ran %q", th.cmds.lines())
	}
}

func TestSecretsOnlyUnderRunNeverInState(t *testing.T) {
	th := newTestHost(t)
	secret := "s3cr3t-" + sha("x")[:16]
	b := th.bundle(`
files:
  /etc/app.conf:
    text: x
`)
	b.Secrets = map[string]*Secret{"db.pass": {Mode: "0440", Group: "root"}}
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: b, Secrets: []SecretData{{Name: "db.pass", Data: []byte(secret)}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := th.read(SecretsDir + "/db.pass"); got != secret {
		t.Errorf("secret content %q", got)
	}
	if d, _ := inspect(th.path(SecretsDir + "/db.pass")); d.Mode != 0o440 {
		t.Errorf("secret mode %o", d.Mode)
	}
	_ = filepath.WalkDir(th.path(StateDir), func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if raw, _ := os.ReadFile(p); strings.Contains(string(raw), secret) {
				t.Errorf("secret found in %s", p)
			}
		}
		return nil
	})
	if s := fmt.Sprintf("%v %#v", SecretData{Name: "db.pass", Data: []byte(secret)}, SecretData{Data: []byte(secret)}); strings.Contains(s, secret) {
		t.Errorf("SecretData prints its content: %s", s)
	}
	// Dropping the secret removes it.
	b.Secrets = nil
	if _, err := th.Apply(context.Background(), &ApplyRequest{Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if th.exists(SecretsDir + "/db.pass") {
		t.Error("undeclared secret kept")
	}
}

func TestURLFileFetchedAndVerified(t *testing.T) {
	th := newTestHost(t)
	body := "fetched content\n"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	th.HTTP = srv.Client()
	th.apply(fmt.Sprintf("\nfiles:\n  /etc/fetched.conf:\n    url: %s/x\n    sha256: %s\n", srv.URL, sha(body)))
	if th.read("/etc/fetched.conf") != body {
		t.Error("fetched content wrong")
	}
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(fmt.Sprintf("\nfiles:\n  /etc/fetched.conf:\n    url: %s/y\n    sha256: %s\n", srv.URL, sha("other")))})
	if err == nil || !strings.Contains(err.Error(), "sha256") || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("wrong digest: err %v", err)
	}
	if th.read("/etc/fetched.conf") != body || th.current() != 1 {
		t.Error("a failed fetch changed the host")
	}
}

func TestConfirmWindow(t *testing.T) {
	th := newTestHost(t)
	th.apply("\nfiles:\n  /etc/v:\n    text: one\n")
	s1 := th.snapshot()
	var watcherErr = make(chan error, 1)
	th.StartWatcher = func(ctx context.Context, p *Pending) error {
		w := attachHost(t, th.Root, th.sd)
		go func() { watcherErr <- w.ConfirmWait(context.Background()) }()
		return nil
	}
	// Not confirmed: the watcher rolls back at the deadline.
	res, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: two\n"), ConfirmTimeout: 300 * time.Millisecond})
	if err != nil || res.Pending == nil || res.Pending.Generation != 2 || res.Pending.Previous != 1 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if th.read("/etc/v") != "two" {
		t.Fatal("generation 2 not active during the window")
	}
	if err := <-watcherErr; err != nil {
		t.Fatal(err)
	}
	if th.current() != 1 || diffSnapshots(s1, th.snapshot()) != "" {
		t.Fatalf("not rolled back: current %d", th.current())
	}
	if _, err := th.Confirm(context.Background(), 2); exitcode.Of(err) != exitcode.Change {
		t.Errorf("late confirm of a rolled-back generation: %v", err)
	}
	// Confirmed in time: kept after the deadline.
	res, err = th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: three\n"), ConfirmTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := th.Confirm(context.Background(), res.Generation); err != nil {
		t.Fatal(err)
	}
	if err := <-watcherErr; err != nil {
		t.Fatal(err)
	}
	if th.current() != res.Generation || th.read("/etc/v") != "three" {
		t.Error("confirmed generation not kept")
	}
	// --try: nothing confirms; a watcher that never ran (host rebooted) is
	// replaced by the next apply, which rolls back first.
	th.StartWatcher = func(ctx context.Context, p *Pending) error { return nil }
	res, err = th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: four\n"), Try: true, ConfirmTimeout: 100 * time.Millisecond})
	if err != nil || !res.Pending.Try {
		t.Fatal(err)
	}
	if _, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: five\n")}); exitcode.Of(err) != exitcode.Precondition {
		t.Errorf("apply during a live confirm window: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	res, err = th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: five\n")})
	if err != nil || len(res.Recovered) == 0 || res.Previous != 3 {
		t.Errorf("apply after an expired window: %+v %v", res, err)
	}
}

func TestWatcherStartFailureRollsBack(t *testing.T) {
	th := newTestHost(t)
	th.apply("\nfiles:\n  /etc/v:\n    text: one\n")
	th.StartWatcher = func(ctx context.Context, p *Pending) error { return errors.New("no systemd-run") }
	_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle("\nfiles:\n  /etc/v:\n    text: two\n"), ConfirmTimeout: time.Minute})
	if exitcode.Of(err) != exitcode.Change || th.read("/etc/v") != "one" || th.current() != 1 {
		t.Errorf("err %v, current %d", err, th.current())
	}
}

func TestDeactivateRemovesAllRestoresOriginals(t *testing.T) {
	th := newTestHost(t)
	th.write("/etc/motd", "original\n", 0o644)
	s0 := th.snapshot()
	running0 := th.sd.Running()
	th.apply(strings.Replace(helloV1, "files:\n", "files:\n  /etc/motd:\n    text: managed\n    onConflict: backup\n", 1))
	res, err := th.Deactivate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != 1 || th.current() != 0 {
		t.Errorf("deactivate result %+v, current %d", res, th.current())
	}
	if d := diffSnapshots(s0, th.snapshot()); d != "" {
		t.Errorf("host differs from before nivis:\n%s", d)
	}
	if got := th.sd.Running(); !reflect.DeepEqual(got, running0) {
		t.Errorf("running %q", got)
	}
	l, _ := th.loadLedger()
	if len(l.Paths) != 0 {
		raw, _ := json.Marshal(l)
		t.Errorf("ledger still owns paths: %s", raw)
	}
}

func TestMaskedUnitRunsAgainWhenUnmasked(t *testing.T) {
	th := newTestHost(t)
	if err := th.sd.Start(context.Background(), "bluetooth.service"); err != nil {
		t.Fatal(err)
	}
	th.sd.TakeCalls()
	th.apply("\nunits:\n  bluetooth.service:\n    mask: true\n  cups.service:\n    mask: true\n")
	if got := th.sd.Running(); len(got) != 0 {
		t.Errorf("masked units still running: %q", got)
	}
	th.apply("\nfiles:\n  /etc/x:\n    text: x\n")
	if got := th.sd.Running(); !reflect.DeepEqual(got, []string{"bluetooth.service"}) {
		t.Errorf("after unmasking, running %q: want bluetooth (it ran before), not cups (it did not)", got)
	}
	if l, _ := th.loadLedger(); len(l.Masked) != 0 {
		t.Errorf("ledger still remembers %q", l.Masked)
	}
}
