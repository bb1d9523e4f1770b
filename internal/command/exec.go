package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nivis/nivis/internal/oplog"
)

// SbinDirs are searched after $PATH: a non-login root shell (sudo, the
// agent over SSH, the rescue system) often has no sbin directories in it.
var SbinDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/run/current-system/sw/bin"}

// CleanEnv is the environment of programs run inside a chroot: the
// caller's may name paths the new system lacks.
var CleanEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", "HOME=/root"}

// Exec runs programs for real and logs each one: `[started] ARGV`, then
// `[finished]` or `[failed]` with its output.
type Exec struct {
	Log *oplog.Log
	// Env is the base environment (nil: this process's, with LC_ALL=C and
	// the sbin directories on PATH; always CleanEnv inside a chroot).
	Env []string
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, c Command) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("empty command")
	}
	what := c.String()
	e.Log.Started(what)
	start := time.Now()
	out, err := e.run(ctx, c)
	if err != nil {
		e.Log.Failed(what, err, string(out))
		return out, &Error{Command: c, Err: err, Output: string(out)}
	}
	e.Log.Finished(what, time.Since(start))
	return out, nil
}

func (e Exec) run(ctx context.Context, c Command) ([]byte, error) {
	var path string
	var env []string
	if c.Chroot != "" {
		if chrootAttr(c.Chroot) == nil {
			return nil, errors.New("chroot is supported on Linux only")
		}
		path = c.Argv[0]
		if !strings.HasPrefix(path, "/") {
			p, err := LookPathIn(c.Chroot, path)
			if err != nil {
				return nil, err
			}
			path = p
		}
		env = CleanEnv
	} else {
		p, ok := Find(c.Argv[0])
		if !ok {
			return nil, fmt.Errorf("%s is not installed", c.Argv[0])
		}
		path = p
		env = e.Env
		if env == nil {
			env = append(os.Environ(), "LC_ALL=C", "PATH="+searchPath())
		}
	}
	cmd := exec.CommandContext(ctx, path, c.Argv[1:]...)
	cmd.Path = path
	cmd.Args[0] = c.Argv[0]
	cmd.Err = nil
	cmd.Env = append(append([]string(nil), env...), c.Env...)
	cmd.SysProcAttr = chrootAttr(c.Chroot)
	if c.Chroot != "" {
		cmd.Dir = "/"
	}
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Find returns the path of an executable, looking in $PATH and then in
// the sbin directories.
func Find(name string) (string, bool) {
	if filepath.IsAbs(name) {
		st, err := os.Stat(name)
		return name, err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range SbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func searchPath() string {
	p := os.Getenv("PATH")
	for _, d := range SbinDirs {
		if !strings.Contains(":"+p+":", ":"+d+":") {
			p += ":" + d
		}
	}
	return strings.TrimPrefix(p, ":")
}

var chrootPath = []string{"usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"}

// LookPathIn finds a command in a chroot's PATH, returning its path as
// seen inside the chroot.
func LookPathIn(root, name string) (string, error) {
	for _, d := range chrootPath {
		fi, err := os.Stat(filepath.Join(root, d, name))
		if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return "/" + d + "/" + name, nil
		}
	}
	return "", fmt.Errorf("%s not found in the installed system (looked in /%s)", name, strings.Join(chrootPath, ", /"))
}
