//go:build linux

package sysmgr

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

const crashGen1 = `
units:
  u1.service:
    text: "[Service]\nExecStart=/bin/u1 v1\n[Install]\nWantedBy=multi-user.target\n"
  u2.service:
    text: "[Service]\nExecStart=/bin/u2\n[Install]\nWantedBy=multi-user.target\n"
  ssh.service:
    dropins:
      nivis.conf: "[Service]\nEnvironment=V=1\n"
files:
  /etc/app/a.conf:
    text: "a\n"
  /etc/app/b.conf:
    text: "b v1\n"
    mode: "0600"
  /etc/gone.conf:
    text: "only in gen1\n"
symlinks:
  /etc/app/current:
    target: /etc/app/a.conf
`

const crashGen2 = `
groups:
  app: {gid: 960}
users:
  app: {uid: 960, group: app}
units:
  u1.service:
    text: "[Service]\nExecStart=/bin/u1 v2\n[Install]\nWantedBy=multi-user.target\n"
  u3.service:
    text: "[Service]\nExecStart=/bin/u3\n[Install]\nWantedBy=multi-user.target\n"
  ssh.service:
    dropins:
      nivis.conf: "[Service]\nEnvironment=V=2\n"
  bluetooth.service:
    mask: true
files:
  /etc/app/b.conf:
    text: "b v2\n"
    mode: "0640"
    group: app
  /etc/app/c.conf:
    text: "c\n"
  /etc/motd:
    text: "managed motd\n"
    onConflict: backup
  /etc/ssh/sshd_config:
    text: "Port 22\n"
    onConflict: backup
  /srv/app/data/seed.txt:
    text: "seed\n"
directories:
  /srv/app:
    mode: "0750"
    user: app
symlinks:
  /etc/app/current:
    target: /etc/app/c.conf
tmpfiles:
  - d /run/app 0755 root root -
`

type crashed struct{ at int }

// TestCrashAtEveryStepConverges kills the activation (a panic from the op
// hook stands in for SIGKILL: no revert, no cleanup) before and after every
// single op, then applies again and checks that the host converged to
// exactly what a clean run gives, and that deactivating afterwards brings
// back every file that was there before nivis: none was lost.
func TestCrashAtEveryStepConverges(t *testing.T) {
	requireRoot(t)
	bad := replaceOnce(crashGen2, "units:\n", "units:\n  zz-bad.service:\n    text: \"[Service]\\nExecStart=/bin/false\\n[Install]\\nWantedBy=multi-user.target\\n\"\n")
	scenarios := []struct {
		name     string
		from, to string // configs; "" = nothing applied
		converge string // the config applied after the crash
		toFails  bool
	}{
		{name: "first apply", from: "", to: crashGen2, converge: crashGen2},
		{name: "update", from: crashGen1, to: crashGen2, converge: crashGen2},
		{name: "failed update and its revert", from: crashGen1, to: bad, converge: crashGen1, toFails: true},
		{name: "deactivate", from: crashGen2, to: "-", converge: crashGen1},
	}
	for _, sc := range scenarios {
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			setup := func() (*testHost, map[string]string) {
				th := newTestHost(t)
				th.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
				th.write("/etc/group", "root:x:0:\n", 0o644)
				th.write("/etc/motd", "the distro's motd\n", 0o644)
				th.write("/etc/ssh/sshd_config", "Port 22\nPermitRootLogin prohibit-password\n", 0o600)
				th.write("/etc/keep.conf", "never managed\n", 0o644)
				th.sd.Fail = map[string]string{"zz-bad.service": "failed"}
				s0 := th.snapshot()
				if sc.from != "" {
					th.apply(sc.from)
				}
				return th, s0
			}
			run := func(th *testHost) error {
				if sc.to == "-" {
					_, err := th.Deactivate(context.Background())
					return err
				}
				_, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(sc.to)})
				return err
			}

			// The reference: the same steps without a crash.
			ref, _ := setup()
			if err := run(ref); (err != nil) != sc.toFails {
				t.Fatalf("reference run: %v", err)
			}
			ref.apply(sc.converge)
			want, wantRunning := ref.snapshot(), ref.sd.Running()

			points := 0
			for n := 1; ; n++ {
				th, s0 := setup()
				calls := 0
				var where string
				th.hook = func(stage string, i int, op Op) {
					calls++
					if calls == n {
						where = fmt.Sprintf("%s op %d (%s)", stage, i, op)
						panic(crashed{n})
					}
				}
				didCrash := func() (c bool) {
					defer func() {
						if r := recover(); r != nil {
							if _, ok := r.(crashed); !ok {
								panic(r)
							}
							c = true
						}
					}()
					_ = run(th)
					return false
				}()
				if !didCrash {
					break
				}
				points++
				th.hook = nil
				// A new agent process on the same host (systemd keeps its state).
				again := attachHost(t, th.Root, th.sd)
				if !again.exists(JournalFile) {
					t.Errorf("crash %s: no journal left to show the interrupted run", where)
				}
				res, err := again.Apply(context.Background(), &ApplyRequest{Bundle: again.bundle(sc.converge)})
				if err != nil {
					t.Fatalf("crash %s: re-apply failed: %v", where, err)
				}
				if len(res.Plan.Notes) == 0 {
					t.Errorf("crash %s: re-apply did not mention the interrupted run", where)
				}
				got := again.snapshot()
				for _, f := range []string{"/etc/passwd", "/etc/group"} {
					// Accounts are only ever added: whether the crash came
					// before useradd decides, and either is right.
					delete(got, f)
					delete(want, f)
				}
				if d := diffSnapshots(want, got); d != "" {
					t.Errorf("crash %s: re-apply did not converge:\n%s", where, d)
				}
				if got := again.sd.Running(); !reflect.DeepEqual(got, wantRunning) {
					t.Errorf("crash %s: running units %q, want %q", where, got, wantRunning)
				}
				if again.exists(JournalFile) {
					t.Errorf("crash %s: journal left after convergence", where)
				}
				// No file lost: without nivis the host is as it was found.
				if _, err := again.Deactivate(context.Background()); err != nil {
					t.Fatalf("crash %s: deactivate: %v", where, err)
				}
				s := again.snapshot()
				delete(s, "/etc/passwd") // accounts nivis added stay, by design
				delete(s, "/etc/group")
				delete(s0, "/etc/passwd")
				delete(s0, "/etc/group")
				if d := diffSnapshots(s0, s); d != "" {
					t.Errorf("crash %s: after deactivate the host differs from before nivis (a file was lost or left):\n%s", where, d)
				}
			}
			if points < 10 {
				t.Errorf("only %d crash points: the hook is not reached", points)
			}
			t.Logf("%d crash points, each converged", points)
		})
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	panic("replaceOnce: " + old + " not found")
}
