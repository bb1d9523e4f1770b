//go:build linux

package kexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nivis/nivis/initramfs"
	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// serve runs a verb through the agent protocol, as over SSH.
func serve(t *testing.T, verb string, req any) (result json.RawMessage, msgs []agent.Message, err error) {
	t.Helper()
	in, _ := json.Marshal(req)
	var out bytes.Buffer
	err = agent.NewTable(Handlers()).Serve(context.Background(), verb, bytes.NewReader(in), &out)
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m agent.Message
		if e := json.Unmarshal(sc.Bytes(), &m); e != nil {
			t.Fatalf("not a protocol line: %q", sc.Text())
		}
		msgs = append(msgs, m)
		if m.Type == "result" {
			result = m.Result
		}
	}
	return result, msgs, err
}

func checkNamed(cs []Check, name string) (Check, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// TestPreflightOnThisMachine runs the real checks here and compares them
// with what the machine is: every check present, each failure with a fix,
// and the image estimate filled in.
func TestPreflightOnThisMachine(t *testing.T) {
	raw, _, err := serve(t, VerbPreflight.Name, PrepareRequest{Features: []string{"ext4"}})
	if err != nil {
		t.Fatal(err)
	}
	var res PreflightResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "container", "kexec_load_disabled", "kexec support", "lockdown", "kernel image"} {
		if _, ok := checkNamed(res.Checks, name); !ok {
			t.Errorf("check %q missing: %+v", name, res.Checks)
		}
	}
	fails := 0
	for _, c := range res.Checks {
		t.Logf("%-20s %-4s %s", c.Name, c.Status, c.Detail)
		if c.Status == "fail" {
			fails++
			if c.Fix == "" {
				t.Errorf("failed check %s has no fix", c.Name)
			}
		}
	}
	if res.OK != (fails == 0) {
		t.Errorf("ok=%v with %d failed checks", res.OK, fails)
	}
	cfg, _ := initramfs.ReadKernelConfig(initramfs.KernelConfigPaths(initramfs.RunningRelease(), true))
	if cfg != nil && cfg["CONFIG_KEXEC"] != "y" && cfg["CONFIG_KEXEC_FILE"] != "y" {
		if c, _ := checkNamed(res.Checks, "kexec support"); c.Status != "fail" {
			t.Errorf("this kernel has no kexec, check says %+v", c)
		}
	}
	if res.MemTotal == 0 {
		t.Error("no MemTotal")
	}
	if res.Image != nil {
		if res.Image.Unpacked == 0 || res.Image.RAMNeeded() <= res.Image.Unpacked {
			t.Errorf("image estimate %+v", res.Image)
		}
		if c, ok := checkNamed(res.Checks, "memory"); !ok || c.Status != "ok" {
			t.Errorf("memory check on a %d MiB machine: %+v", res.MemTotal>>20, c)
		}
	}
}

// TestPrepareRefusesWhenPreflightFails: a host that cannot kexec is told
// why, with the precondition exit code and the fix, and nothing is
// assembled. The host is a fake tree with kexec_load_disabled=1 under
// Secure Boot and lockdown.
func TestPrepareRefusesWhenPreflightFails(t *testing.T) {
	root := fakeHost(t, map[string]string{
		"sys/firmware/efi/efivars/SecureBoot-" + efiGlobalGUID: secureBootOn,
		"sys/kernel/security/lockdown":                         "none [integrity] confidentiality\n",
		"proc/sys/kernel/kexec_load_disabled":                  "1\n",
	})
	useFakeHost(t, root)
	dir := t.TempDir()
	_, msgs, err := serve(t, VerbPrepare.Name, PrepareRequest{WorkDir: dir})
	if err == nil {
		t.Fatal("kexec-prepare succeeded on a host that failed preflight")
	}
	if exitcode.Of(err) != exitcode.Precondition {
		t.Errorf("exit code %v, want precondition", exitcode.Of(err))
	}
	last := msgs[len(msgs)-1]
	if last.Type != "error" || !strings.Contains(last.Error, "cannot be kexec'd") || !strings.Contains(last.Error, "fix: "+fixDisabled) {
		t.Errorf("last message %+v", last)
	}
	warned := false
	for _, m := range msgs {
		warned = warned || m.Event != nil && strings.Contains(m.Event.Message, "preflight lockdown") && strings.Contains(m.Event.Message, "Secure Boot: true")
	}
	if !warned {
		t.Errorf("no lockdown warning naming Secure Boot in %+v", msgs)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the work dir is not empty: %v", entries)
	}
}
