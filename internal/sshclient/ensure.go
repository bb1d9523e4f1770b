package sshclient

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/progress"
)

// Where the agent is cached on a host, by the sha256 of its binary, so
// every nivis version keeps its own copy and a re-run uploads nothing.
const (
	RootAgentDir = "/var/lib/nivis/agent" // when logged in as root
	UserAgentDir = ".cache/nivis/agent"   // under $HOME otherwise
	agentName    = "nivis"                // file name inside <dir>/<sha256>/
	envAgentBin  = "NIVIS_AGENT_BINARY"   // overrides the binary to upload
	envAgentDir  = "NIVIS_AGENT_DIR"      // where nivis-linux-<arch> binaries live
)

// remoteInfo is what EnsureAgent learns about the login before the agent
// exists (so it has to ask the shell, once).
type remoteInfo struct {
	goarch    string
	machine   string // uname -m
	uid       string
	home      string
	sha256sum bool
	sudo      bool
	doas      bool
	// rescueAgent is the sha256 of /nivis/nivis in the nivis rescue
	// system (which has no sha256sum to ask).
	rescueAgent string
}

// RescueAgentPath is the agent inside the nivis rescue system; the rescue
// boot writes its sha256 to /run/nivis/agent.sha256.
const RescueAgentPath = "/nivis/nivis"

const probeScript = `printf 'machine=%s\nuid=%s\nhome=%s\n' "$(uname -m)" "$(id -u 2>/dev/null)" "$HOME"
for t in sha256sum sudo doas; do command -v "$t" >/dev/null 2>&1 && echo "$t=yes"; done
[ -r /run/nivis/agent.sha256 ] && [ -x /nivis/nivis ] && printf 'rescue_agent=%s\n' "$(cat /run/nivis/agent.sha256)"
true`

// EnsureAgent makes sure the nivis agent for the host's architecture is on
// the host, uploading it only when the cached copy (by sha256) is missing,
// and returns the command prefix that starts it: its path, or
// "sudo -n PATH" / "doas -n PATH" when sudo is set and the login is not root.
func (c *Client) EnsureAgent(ctx context.Context, sudo bool) (string, error) {
	c.agentMu.Lock()
	defer c.agentMu.Unlock()
	if cmd, ok := c.agentCmds[sudo]; ok {
		return cmd, nil
	}
	ri, err := c.probe(ctx)
	if err != nil {
		return "", err
	}
	bin, err := c.agentBinary(ri.goarch)
	if err != nil {
		return "", err
	}
	sum, size, err := fileSHA256(bin)
	if err != nil {
		return "", exitcode.Wrap(exitcode.Usage, fmt.Errorf("agent binary: %w", err))
	}
	if ri.rescueAgent == sum {
		// The rescue system runs from this very binary: nothing to upload.
		c.agentCmds[sudo] = RescueAgentPath
		return RescueAgentPath, nil
	}
	dir := c.opts.RemoteAgentDir
	switch {
	case dir != "":
	case ri.uid == "0":
		dir = RootAgentDir
	case ri.home != "":
		dir = path.Join(ri.home, UserAgentDir)
	default:
		return "", exitcode.Errorf(exitcode.Precondition, "%s has no $HOME to cache the nivis agent in; log in as root or as a user with a home directory", c)
	}
	remote := path.Join(dir, sum, agentName)

	have := ""
	if ri.sha256sum {
		have, err = c.remoteSHA256(ctx, remote)
		if err != nil {
			return "", err
		}
	}
	if have == sum {
		c.log.Debugf("nivis agent %s already on %s at %s", sum[:12], c, remote)
	} else {
		c.log.Infof("uploading the nivis agent (linux/%s, %s) to %s:%s", ri.goarch, progress.FormatBytes(size), c, remote)
		f, err := os.Open(bin)
		if err != nil {
			return "", err
		}
		err = c.Upload(ctx, f, size, remote, 0o755)
		f.Close()
		if err != nil {
			return "", err
		}
		if ri.sha256sum {
			got, err := c.remoteSHA256(ctx, remote)
			if err != nil {
				return "", err
			}
			if got != sum {
				_ = c.Run(ctx, "rm -f -- "+ShellQuote(remote), nil, nil, nil)
				return "", exitcode.Errorf(exitcode.Connection, "the agent uploaded to %s:%s has sha256 %s, want %s: the transfer was corrupted; run again", c, remote, got, sum)
			}
		}
	}

	cmd := ShellQuote(remote)
	if sudo && ri.uid != "0" {
		cmd, err = c.elevate(ctx, ri, cmd)
		if err != nil {
			return "", err
		}
	}
	c.agentCmds[sudo] = cmd
	return cmd, nil
}

// probe asks the login shell for arch, uid, $HOME and tools (once).
func (c *Client) probe(ctx context.Context) (*remoteInfo, error) {
	if c.remote != nil {
		return c.remote, nil
	}
	var out, errOut strings.Builder
	if err := c.Run(ctx, "sh -c "+ShellQuote(probeScript), nil, &out, &errOut); err != nil {
		return nil, fmt.Errorf("inspect %s before installing the agent: %w (%s)", c, err, strings.TrimSpace(errOut.String()))
	}
	ri := &remoteInfo{}
	for _, line := range strings.Split(out.String(), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "machine":
			ri.machine = v
		case "uid":
			ri.uid = v
		case "home":
			ri.home = v
		case "sha256sum":
			ri.sha256sum = true
		case "sudo":
			ri.sudo = true
		case "doas":
			ri.doas = true
		case "rescue_agent":
			ri.rescueAgent = strings.TrimSpace(v)
		}
	}
	ri.goarch = goarchOf(ri.machine)
	if ri.goarch == "" {
		return nil, exitcode.Errorf(exitcode.Precondition, "%s runs on %q, which nivis has no agent for (it supports x86_64, aarch64, armv7l, i686, riscv64, ppc64le, s390x)", c, ri.machine)
	}
	c.remote = ri
	return ri, nil
}

// goarchOf maps `uname -m` to GOARCH.
func goarchOf(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "aarch64_be":
		return "arm64"
	case "armv7l", "armv6l", "armv8l", "arm":
		return "arm"
	case "i386", "i486", "i586", "i686":
		return "386"
	case "riscv64":
		return "riscv64"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return ""
}

var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390,
}

// agentBinary picks the file to upload for a linux/goarch host.
func (c *Client) agentBinary(goarch string) (string, error) {
	want := "nivis-linux-" + goarch
	override := c.opts.AgentBinary
	if override == "" {
		override = os.Getenv(envAgentBin)
	}
	if override != "" {
		if err := checkELF(override, goarch); err != nil {
			return "", exitcode.Errorf(exitcode.Usage, "agent binary %s: %v", override, err)
		}
		return override, nil
	}
	exe, exeErr := os.Executable()
	if exeErr == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == goarch && exeErr == nil {
		return exe, nil
	}
	var tried []string
	if d := os.Getenv(envAgentDir); d != "" {
		tried = append(tried, filepath.Join(d, want))
	}
	if exeErr == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), want))
	}
	for _, f := range tried {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if err := checkELF(f, goarch); err != nil {
			return "", exitcode.Errorf(exitcode.Usage, "agent binary %s: %v", f, err)
		}
		return f, nil
	}
	return "", exitcode.Errorf(exitcode.Precondition,
		"%s is linux/%s but this nivis is %s/%s: put %s (built by `make cross`) next to nivis or in $%s (looked for %s)",
		c, goarch, runtime.GOOS, runtime.GOARCH, want, envAgentDir, strings.Join(tried, ", "))
}

// checkELF refuses to upload something that cannot run on the host.
func checkELF(file, goarch string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("not a Linux executable: %w", err)
	}
	defer f.Close()
	if m, ok := elfMachine[goarch]; ok && f.Machine != m {
		return fmt.Errorf("built for %s, but the host needs linux/%s", f.Machine, goarch)
	}
	return nil
}

// remoteSHA256 returns the sha256 of a remote file, "" when it is absent.
func (c *Client) remoteSHA256(ctx context.Context, file string) (string, error) {
	var out strings.Builder
	cmd := "sha256sum -- " + ShellQuote(file) + " 2>/dev/null || true"
	if err := c.Run(ctx, cmd, nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("hash %s on %s: %w", file, c, err)
	}
	f := strings.Fields(out.String())
	if len(f) == 0 {
		return "", nil
	}
	// sha256sum prefixes a backslash when the name needed escaping.
	if sum := strings.TrimPrefix(f[0], `\`); len(sum) == 64 {
		return sum, nil
	}
	return "", nil
}

// elevate wraps the agent command in sudo or doas, after checking that it
// will not stop to ask for a password nobody can type.
func (c *Client) elevate(ctx context.Context, ri *remoteInfo, cmd string) (string, error) {
	var tool string
	switch {
	case ri.sudo:
		tool = "sudo"
	case ri.doas:
		tool = "doas"
	default:
		return "", exitcode.Errorf(exitcode.Precondition, "--sudo: %s is not root and has neither sudo nor doas; log in as root (root@host) instead", c)
	}
	var errOut strings.Builder
	if err := c.Run(ctx, tool+" -n true", nil, io.Discard, &errOut); err != nil {
		return "", exitcode.Errorf(exitcode.Precondition,
			"--sudo: `%s -n true` failed for %s (%s): %s wants a password, which nivis cannot type; allow it without one (NOPASSWD in sudoers, `permit nopass` in doas.conf) or log in as root",
			tool, c.User(), strings.TrimSpace(errOut.String()), tool)
	}
	return tool + " -n " + cmd, nil
}

// hashes caches file sha256 sums for the life of the process.
var hashes = struct {
	sync.Mutex
	m map[string]hashEntry
}{m: map[string]hashEntry{}}

type hashEntry struct {
	size  int64
	mtime time.Time
	sum   string
}

func fileSHA256(file string) (string, int64, error) {
	st, err := os.Stat(file)
	if err != nil {
		return "", 0, err
	}
	hashes.Lock()
	defer hashes.Unlock()
	if e, ok := hashes.m[file]; ok && e.size == st.Size() && e.mtime.Equal(st.ModTime()) {
		return e.sum, e.size, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	hashes.m[file] = hashEntry{size: n, mtime: st.ModTime(), sum: sum}
	return sum, n, nil
}
