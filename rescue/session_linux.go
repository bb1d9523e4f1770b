//go:build linux

package rescue

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// session is one SSH session channel: its requests set the environment
// and a PTY, then exactly one of shell, exec or subsystem runs.
type session struct {
	srv  *SSHServer
	conn *ssh.ServerConn
	ch   ssh.Channel

	mu      sync.Mutex
	env     []string
	pty     *ptyRequest
	master  *os.File // the PTY's master side once a command runs on it
	proc    *os.Process
	started bool
	// replied is closed once the start request is answered: the exit
	// status must not overtake that answer, or the client's request
	// fails with EOF on a command that finished too fast.
	replied chan struct{}
	done    chan struct{}
}

type ptyRequest struct {
	Term          string
	Cols, Rows    uint32
	Width, Height uint32
	Modes         string
}

type windowChange struct {
	Cols, Rows    uint32
	Width, Height uint32
}

func newSession(s *SSHServer, c *ssh.ServerConn, ch ssh.Channel) *session {
	return &session{srv: s, conn: c, ch: ch, replied: make(chan struct{}), done: make(chan struct{})}
}

// serve answers the channel's requests until the client closes it.
func (ss *session) serve(reqs <-chan *ssh.Request) {
	defer ss.ch.Close()
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				ss.kill()
				return
			}
			ss.handle(req)
		case <-ss.done:
			// The command finished and its exit status went out; drain
			// what the client still sends until it closes.
			go func() {
				for req := range reqs {
					if req.WantReply {
						_ = req.Reply(false, nil)
					}
				}
			}()
			return
		}
	}
}

func (ss *session) handle(req *ssh.Request) {
	reply := func(ok bool) {
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	switch req.Type {
	case "env":
		var kv struct{ Name, Value string }
		if ssh.Unmarshal(req.Payload, &kv) != nil || !validEnvName(kv.Name) {
			reply(false)
			return
		}
		ss.mu.Lock()
		ss.env = append(ss.env, kv.Name+"="+kv.Value)
		ss.mu.Unlock()
		reply(true)
	case "pty-req":
		var p ptyRequest
		if ssh.Unmarshal(req.Payload, &p) != nil {
			reply(false)
			return
		}
		ss.mu.Lock()
		ok := !ss.started
		if ok {
			ss.pty = &p
		}
		ss.mu.Unlock()
		reply(ok)
	case "window-change":
		var w windowChange
		if ssh.Unmarshal(req.Payload, &w) != nil {
			reply(false)
			return
		}
		ss.mu.Lock()
		if ss.pty != nil {
			ss.pty.Cols, ss.pty.Rows = w.Cols, w.Rows
		}
		if ss.master != nil {
			_ = setWinsize(ss.master, w.Cols, w.Rows, w.Width, w.Height)
		}
		ss.mu.Unlock()
		reply(true)
	case "signal":
		var sig struct{ Name string }
		if ssh.Unmarshal(req.Payload, &sig) != nil {
			reply(false)
			return
		}
		reply(ss.signal(sig.Name))
	case "shell", "exec", "subsystem":
		var arg struct{ Value string }
		if req.Type != "shell" && ssh.Unmarshal(req.Payload, &arg) != nil {
			reply(false)
			return
		}
		ss.mu.Lock()
		already := ss.started
		ss.started = true
		ss.mu.Unlock()
		if already {
			reply(false)
			return
		}
		if err := ss.start(req.Type, arg.Value); err != nil {
			ss.srv.log.Warnf("ssh: %s@%s: %s %q: %v", ss.conn.User(), ss.conn.RemoteAddr(), req.Type, arg.Value, err)
			fmt.Fprintf(ss.ch.Stderr(), "nivis rescue: %v\r\n", err)
			reply(false)
			close(ss.replied)
			ss.finish(255, "", false)
			return
		}
		reply(true)
		close(ss.replied)
	default:
		// keepalive@openssh.com, auth-agent-req, x11-req, break...: no.
		reply(false)
	}
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		if c != '_' && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && (i == 0 || !(c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func (ss *session) environ() []string {
	o := ss.srv.o
	env := append([]string(nil), o.Env...)
	local, lport := splitHostPort(ss.conn.LocalAddr())
	remote, rport := splitHostPort(ss.conn.RemoteAddr())
	env = append(env,
		"HOME="+o.Home, "USER=root", "LOGNAME=root", "SHELL="+o.Shell,
		fmt.Sprintf("SSH_CONNECTION=%s %s %s %s", remote, rport, local, lport),
		fmt.Sprintf("SSH_CLIENT=%s %s %s", remote, rport, lport))
	ss.mu.Lock()
	env = append(env, ss.env...)
	if ss.pty != nil && ss.pty.Term != "" {
		env = append(env, "TERM="+ss.pty.Term)
	}
	ss.mu.Unlock()
	return dedupEnv(env)
}

// dedupEnv keeps the last value of each variable, like a shell would.
func dedupEnv(env []string) []string {
	last := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	var out []string
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

func splitHostPort(a net.Addr) (string, string) {
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), "0"
	}
	return h, p
}

func (ss *session) start(kind, arg string) error {
	if kind == "subsystem" {
		if arg != "sftp" {
			return fmt.Errorf("unknown subsystem %q (only sftp)", arg)
		}
		srv, err := sftp.NewServer(ss.ch, sftp.WithServerWorkingDirectory(ss.srv.o.Home))
		if err != nil {
			return err
		}
		go func() {
			err := srv.Serve()
			status := 0
			if err != nil && !errors.Is(err, io.EOF) {
				status = 1
			}
			srv.Close()
			ss.finish(status, "", false)
		}()
		return nil
	}
	shell := ss.srv.o.Shell
	// argv[0] is the shell's full path: u-root's busybox finds the command
	// by resolving argv[0], and "-sh" or "sh" would not resolve.
	args := []string{shell}
	if kind == "exec" {
		args = append(args, "-c", arg)
	}
	cmd := &exec.Cmd{Path: shell, Args: args, Env: ss.environ(), Dir: ss.srv.o.Home}
	ss.mu.Lock()
	p := ss.pty
	ss.mu.Unlock()
	if p != nil {
		return ss.startPTY(cmd, p)
	}
	return ss.startPipes(cmd)
}

// startPipes runs cmd with stdin, stdout and stderr on the channel, in a
// process group of its own so that a signal reaches its children too.
func (ss *session) startPipes(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = ss.ch
	cmd.Stderr = ss.ch.Stderr()
	cmd.WaitDelay = ss.srv.o.WaitDelay
	if err := cmd.Start(); err != nil {
		return err
	}
	ss.mu.Lock()
	ss.proc = cmd.Process
	ss.mu.Unlock()
	go func() {
		// The client's EOF becomes the command's EOF.
		_, _ = io.Copy(stdin, ss.ch)
		stdin.Close()
	}()
	go func() {
		err := cmd.Wait()
		status, sig, core := waitResult(cmd, err)
		ss.finish(status, sig, core)
	}()
	return nil
}

// startPTY runs cmd on a new PTY as its controlling terminal.
func (ss *session) startPTY(cmd *exec.Cmd, p *ptyRequest) error {
	m, tty, err := openPTY()
	if err != nil {
		return err
	}
	defer tty.Close()
	if err := setWinsize(m, p.Cols, p.Rows, p.Width, p.Height); err != nil {
		m.Close()
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		m.Close()
		return err
	}
	ss.mu.Lock()
	ss.proc = cmd.Process
	ss.master = m
	ss.mu.Unlock()
	go func() { _, _ = io.Copy(m, ss.ch) }()
	output := make(chan struct{})
	go func() {
		// Ends with EIO once every holder of the terminal closed it.
		_, _ = io.Copy(ss.ch, m)
		close(output)
	}()
	go func() {
		err := cmd.Wait()
		select {
		case <-output:
		case <-time.After(ss.srv.o.WaitDelay):
			// A background child keeps the terminal: stop copying.
		}
		ss.mu.Lock()
		ss.master = nil
		ss.mu.Unlock()
		m.Close() // the master is pollable, so this ends the copies
		status, sig, core := waitResult(cmd, err)
		ss.finish(status, sig, core)
	}()
	return nil
}

// openPTY opens a PTY pair. The master stays non-blocking and is never
// touched through Fd(), so the runtime poller owns it and Close
// interrupts a pending Read (creack/pty's ioctls go through Fd(), which
// makes the file blocking for good).
func openPTY() (master, tty *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("set up pty: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

func setWinsize(f *os.File, cols, rows, width, height uint32) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols), Xpixel: uint16(width), Ypixel: uint16(height)})
	})
	if err != nil {
		return err
	}
	return ierr
}

func waitResult(cmd *exec.Cmd, err error) (status int, sig string, core bool) {
	if cmd.ProcessState == nil {
		return 255, "", false
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 0, signalName(ws.Signal()), ws.CoreDump()
	}
	return cmd.ProcessState.ExitCode(), "", false
}

// finish reports the exit status (or signal) and closes the channel.
func (ss *session) finish(status int, sig string, core bool) {
	<-ss.replied
	_ = ss.ch.CloseWrite()
	if sig != "" {
		_, _ = ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{sig, core, "", ""}))
	} else {
		_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
	}
	_ = ss.ch.Close()
	close(ss.done)
}

// kill ends a command whose client went away, as sshd does with SIGHUP.
func (ss *session) kill() {
	ss.mu.Lock()
	p := ss.proc
	ss.mu.Unlock()
	if p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGHUP)
	}
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(s syscall.Signal) string {
	for n, v := range signals {
		if v == s {
			return n
		}
	}
	return fmt.Sprintf("SIG%d", int(s))
}

// signal delivers a client's signal request to the command's process
// group (its session leader's group: the shell and what it started).
func (ss *session) signal(name string) bool {
	sig, ok := signals[strings.TrimPrefix(name, "SIG")]
	ss.mu.Lock()
	p := ss.proc
	ss.mu.Unlock()
	if !ok || p == nil {
		return false
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		return p.Signal(sig) == nil
	}
	return true
}
