//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/sysmgr"
	"github.com/nivis/nivis/vmtests"
)

// TestVMSysmgr drives nivis apply, rollback and the confirm window against
// a real Debian guest with systemd as PID 1, over nivis's own SSH client:
// units really start, stop and fail, and an apply that moves sshd away is
// undone by the host itself.
func TestVMSysmgr(t *testing.T) {
	vmtests.Require(t)
	ctx := context.Background()
	img := vmtests.TestImage(t, vmtests.DefaultSpec())
	vm := vmtests.StartVM(t, vmtests.Config{Image: img, MemoryMiB: 1024})
	if _, err := vm.WaitSSH(ctx, vmtests.SSHTimeout); err != nil {
		t.Fatal(err)
	}
	bin := buildNivis(t)
	t.Setenv("NIVIS_AGENT_BINARY", bin)
	dir := t.TempDir()
	guest := func(cmd string) string {
		t.Helper()
		out, err := vm.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("guest: %v", err)
		}
		return strings.TrimSpace(out)
	}
	ssh := []string{"-p", strconv.Itoa(vm.Port), "-i", vm.KeyFile, "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + filepath.Join(dir, "known_hosts")}
	nivis := func(args ...string) (int, string, string) {
		t.Helper()
		if args[0] == "apply" && !listContains(args, "--confirm-timeout") {
			// Under TCG on a loaded machine a new connection takes tens of
			// seconds; the window is not what these steps test.
			args = append(args, "--confirm-timeout", "3m")
		}
		code, out, errOut := runCLI(t, append(args, ssh...)...)
		t.Logf("nivis %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		return code, out, errOut
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const target = "root@127.0.0.1"
	origMotd := guest("cat /etc/motd; stat -c %a /etc/motd")
	if guest("systemctl is-active ssh.service") != "active" {
		t.Fatal("the guest's sshd does not run as ssh.service")
	}

	helloUnit := `[Unit]
Description=nivis test HTTP service
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /etc/hello
[Install]
WantedBy=multi-user.target
`
	write("hello.service", helloUnit)
	services := func(page string) string {
		return fmt.Sprintf(`apiVersion: nivis/v1alpha1
kind: Services
units:
  hello.service:
    source: ./hello.service
    restartTriggers: [/etc/hello/index.html]
files:
  /etc/hello/index.html:
    text: %q
  /etc/motd:
    text: "managed by nivis\n"
    onConflict: backup
`, page)
	}
	mainPID := func() string { return guest("systemctl show -p MainPID --value hello.service") }
	page := func() string {
		return guest("curl -sf --retry 10 --retry-connrefused --retry-delay 1 http://127.0.0.1:8080/index.html")
	}

	// 1. A service and its /etc config: active and answering.
	cfg := write("services.yaml", services("v1\n"))
	if code, _, _ := nivis("apply", target, "-c", cfg, "-m", "v1"); code != 0 {
		t.Fatal("apply v1 failed")
	}
	if st := guest("systemctl is-active hello.service; systemctl is-enabled hello.service"); st != "active\nenabled" {
		t.Errorf("hello.service: %q, want active and enabled", st)
	}
	if got := page(); got != "v1" {
		t.Errorf("page %q, want v1", got)
	}
	pid1 := mainPID()

	// 2. Its config changes: restarted, answering with the new content.
	write("services.yaml", services("v2\n"))
	if code, out, _ := nivis("apply", target, "-c", cfg, "-m", "v2"); code != 0 || !strings.Contains(out, "restart-unit hello.service") {
		t.Fatal("apply v2 failed or did not restart")
	}
	pid2 := mainPID()
	if pid2 == pid1 || pid2 == "0" || page() != "v2" {
		t.Errorf("after the config change: MainPID %s -> %s, page %q; want a restarted service serving v2", pid1, pid2, page())
	}

	// 3. Rollback: the previous generation runs again.
	if code, _, _ := nivis("rollback", target); code != 0 {
		t.Fatal("rollback failed")
	}
	if pid3 := mainPID(); pid3 == pid2 || page() != "v1" {
		t.Errorf("after rollback: MainPID %s (was %s), page %q; want a restarted service serving v1", pid3, pid2, page())
	}
	code, out, _ := nivis("generations", target, "--json")
	var gens sysmgr.GenerationsResult
	if code != 0 || json.Unmarshal([]byte(out), &gens) != nil || gens.Current != 1 || len(gens.Generations) != 2 {
		t.Errorf("generations after rollback: %+v", gens)
	}

	// 4. A unit that cannot start: the whole apply is reverted, exit 5,
	// the failed unit's journal shown.
	write("bad.service", "[Service]\nExecStart=/bin/sh -c 'echo nivis-bad-unit-output; exit 3'\n[Install]\nWantedBy=multi-user.target\n")
	bad := write("bad.yaml", strings.Replace(services("v3-never\n"), "units:\n", "units:\n  bad.service:\n    source: ./bad.service\n", 1))
	code, _, errOut := nivis("apply", target, "-c", bad)
	if code != int(exitcode.Change) || !strings.Contains(errOut, "bad.service") || !strings.Contains(errOut, "nivis-bad-unit-output") || !strings.Contains(errOut, "reverted to generation 1") {
		t.Errorf("failing unit: exit %d (want %d) and the unit's journal in the error", code, exitcode.Change)
	}
	if page() != "v1" || guest("test -e /etc/systemd/system/bad.service && echo left || echo gone") != "gone" || guest("systemctl is-active hello.service") != "active" {
		t.Error("the failed apply was not reverted completely")
	}

	// 5. An apply that moves sshd to another port: no new SSH connection
	// can confirm it, so the host rolls back by itself and SSH works again
	// on the old port; apply exits 5.
	sshMoved := strings.Replace(services("v1\n"), "units:\n", `units:
  ssh.service:
    dropins:
      nivis-port.conf: |
        [Service]
        ExecStart=
        ExecStart=/usr/sbin/sshd -D -p 2222 $SSHD_OPTS
`, 1)
	moved := write("moved.yaml", sshMoved)
	start := time.Now()
	code, _, errOut = nivis("apply", target, "-c", moved, "--confirm-timeout", "60s")
	if code != int(exitcode.Change) || !strings.Contains(errOut, "not confirmed") {
		t.Errorf("apply that breaks SSH: exit %d, want %d with a rollback report", code, exitcode.Change)
	}
	t.Logf("confirm window and rollback took %s", time.Since(start).Round(time.Second))
	if _, err := vm.WaitSSH(ctx, 2*time.Minute); err != nil {
		t.Fatalf("SSH on the old port did not come back: %v", err)
	}
	if got := guest("ss -Htln sport = :2222 | wc -l; test -e /etc/systemd/system/ssh.service.d/nivis-port.conf && echo left || echo gone"); got != "0\ngone" {
		t.Errorf("after the confirm timeout: %q, want sshd off 2222 and the drop-in gone", got)
	}
	if code, out, _ = nivis("generations", target, "--json"); code != 0 || json.Unmarshal([]byte(out), &gens) != nil || gens.Current != 1 || gens.Pending != nil {
		t.Errorf("generations after the confirm timeout: %+v", gens)
	}

	// 6. Removing the service: stopped, its files gone, the original motd back.
	none := write("none.yaml", "apiVersion: nivis/v1alpha1\nkind: Services\nfiles:\n  /etc/nivis-marker:\n    text: x\n")
	if code, _, _ := nivis("apply", target, "-c", none); code != 0 {
		t.Fatal("apply without the service failed")
	}
	if st := guest("systemctl is-active hello.service || true"); st != "inactive" {
		t.Errorf("hello.service is %q after removal", st)
	}
	if got := guest("ls /etc/hello /etc/systemd/system/hello.service /etc/systemd/system/multi-user.target.wants/hello.service 2>&1 | grep -c 'No such file'"); got != "3" {
		t.Errorf("files of the removed service left: %q", got)
	}
	if got := guest("cat /etc/motd; stat -c %a /etc/motd"); got != origMotd {
		t.Errorf("motd %q, want the original %q", got, origMotd)
	}
	if code, _, _ := nivis("deactivate", target, "--yes"); code != 0 {
		t.Error("deactivate failed")
	}
}

func listContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
