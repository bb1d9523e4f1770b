package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/internal/sshclient"
	"github.com/nivis/nivis/internal/testsshd"
)

// runCLI runs the whole CLI in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = Main(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// procFacts are the values the kernel itself reports, read here without
// the facts package, to compare its answers with.
type procFacts struct {
	memTotal      uint64
	bootID        string
	kernelRelease string
}

func readProcFacts(t *testing.T) procFacts {
	t.Helper()
	var p procFacts
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kb uint64
	if _, err := fmt.Sscanf(string(mi), "MemTotal: %d kB", &kb); err != nil {
		t.Fatalf("/proc/meminfo: %v", err)
	}
	p.memTotal = kb * 1024
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	p.bootID = strings.TrimSpace(string(b))
	b, err = os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	p.kernelRelease = strings.TrimSpace(string(b))
	return p
}

func checkFactsAgainstProc(t *testing.T, f *facts.Facts) {
	t.Helper()
	p := readProcFacts(t)
	if f.Memory.TotalBytes != p.memTotal {
		t.Errorf("memory.total_bytes %d, /proc/meminfo %d", f.Memory.TotalBytes, p.memTotal)
	}
	if f.BootID != p.bootID {
		t.Errorf("boot_id %q, /proc says %q", f.BootID, p.bootID)
	}
	if f.Kernel.Release != p.kernelRelease {
		t.Errorf("kernel.release %q, /proc says %q", f.Kernel.Release, p.kernelRelease)
	}
	if f.SchemaVersion != facts.SchemaVersion || f.Arch != runtime.GOARCH {
		t.Errorf("schema %d arch %q", f.SchemaVersion, f.Arch)
	}
}

func TestFactsLocal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("facts are gathered on Linux only")
	}
	code, out, errOut := runCLI(t, "facts", "--local", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var f facts.Facts
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("--json output is not Facts: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "{\n  \"schema_version\": 1,") {
		t.Errorf("--json is not indented JSON starting with schema_version:\n%.200s", out)
	}
	checkFactsAgainstProc(t, &f)

	code, out, errOut = runCLI(t, "facts", "--local")
	if code != 0 {
		t.Fatalf("table: exit %d: %s", code, errOut)
	}
	for _, s := range []string{"System\n", "Boot/kexec\n", "Memory\n", "Disks\n", "Network\n", "SSH\n", f.BootID} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestFactsUsage(t *testing.T) {
	for _, args := range [][]string{{"facts"}, {"facts", "--local", "host"}, {"facts", "a", "b"}} {
		code, _, errOut := runCLI(t, args...)
		if code != int(exitcode.Usage) {
			t.Errorf("%q: exit %d, want %d (usage): %s", args, code, exitcode.Usage, errOut)
		}
	}
}

// TestFactsOverSSH is the whole path: real sshd on 127.0.0.1, the agent
// (a freshly built nivis) uploaded and run through it, JSON back; the
// answers must be this machine's /proc values.
func TestFactsOverSSH(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the agent side runs on Linux only")
	}
	srv := testsshd.Start(t)
	bin := buildNivis(t)
	// The test binary cannot serve `agent facts`: upload the real nivis.
	t.Setenv("NIVIS_AGENT_BINARY", bin)
	removeCachedAgent(t, bin)

	base := []string{"-p", strconv.Itoa(srv.Port), "-i", srv.KeyFile, "-o", "UserKnownHostsFile=" + srv.KnownHosts, "-o", "StrictHostKeyChecking=yes", srv.User + "@127.0.0.1"}
	code, out, errOut := runCLI(t, append([]string{"facts", "--json"}, base...)...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\nsshd log:\n%s", code, errOut, srv.Log())
	}
	var f facts.Facts
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("output is not Facts JSON: %v\n%s", err, out)
	}
	checkFactsAgainstProc(t, &f)
	found := false
	for _, p := range f.SSH.Ports {
		found = found || p == srv.Port
	}
	if !found {
		t.Errorf("ssh.ports %v lack the test sshd's port %d (listening: %+v)", f.SSH.Ports, srv.Port, f.SSH.Listening)
	}

	// The default output is the table, from the same agent (cached now).
	code, out, errOut = runCLI(t, append([]string{"facts"}, base...)...)
	if code != 0 {
		t.Fatalf("table: exit %d:\n%s", code, errOut)
	}
	for _, s := range []string{"System\n", "Disks\n", f.BootID} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

// localAgentRunner runs agent commands as local processes: the agent protocol
// without SSH.
type localAgentRunner struct{}

func (localAgentRunner) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return &agent.ExitError{Status: ee.ExitCode()}
	}
	return err
}

// TestFactsAgentBinary runs `nivis agent facts` of a built binary: the verb
// is registered in the real binary and its answer decodes through
// agent.Call.
func TestFactsAgentBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the agent side runs on Linux only")
	}
	bin := buildNivis(t)
	var f facts.Facts
	var steps []string
	err := agent.Call(context.Background(), localAgentRunner{}, bin, "facts", nil, &f, func(e agent.Event) { steps = append(steps, e.Step) })
	if err != nil {
		t.Fatal(err)
	}
	checkFactsAgainstProc(t, &f)
	if len(steps) != 1 || steps[0] != "facts" {
		t.Errorf("events: %q, want the facts step", steps)
	}
}

// buildNivis builds cmd/nivis into the test's temp dir.
func buildNivis(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool builds the agent for this test: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nivis")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/nivis/nivis/cmd/nivis")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/nivis: %v\n%s", err, out)
	}
	return bin
}

// removeCachedAgent deletes, after the test, the copy EnsureAgent caches
// under /var/lib/nivis/agent for a root login, unless it was there before.
func removeCachedAgent(t *testing.T, bin string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return // a user login caches under its own ~/.cache
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(sshclient.RootAgentDir, hex.EncodeToString(h.Sum(nil)))
	if _, err := os.Stat(dir); err == nil {
		return
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
}
