//go:build linux

package kexec

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Reboot boots the loaded kexec kernel now: sync, emergency-remount the
// filesystems read-only so the old system's disks are clean if the host
// comes back to it, then reboot(LINUX_REBOOT_CMD_KEXEC). It only returns
// on failure.
func Reboot() error {
	if !Loaded() {
		return &Error{Kind: KindOther, Syscall: "reboot", Detail: "no kexec kernel is loaded", Fix: "run kexec-prepare first"}
	}
	unix.Sync()
	// 'u' is asynchronous in the kernel: give it a moment. Root may
	// write the trigger whatever kernel.sysrq allows on the keyboard.
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("u"), 0); err == nil {
		time.Sleep(700 * time.Millisecond)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		var errno syscall.Errno
		if e, ok := err.(syscall.Errno); ok {
			errno = e
		}
		ke := classify("reboot", errno, readHostState())
		ke.Err = err
		return ke
	}
	return nil
}

// Schedule starts `exe agent kexec-exec` as a detached process (its own
// session, stdio on /dev/null and a log file in dir, out of the SSH
// session's cgroup) that waits delay and then calls Reboot. The caller
// returns at once, so the SSH session that asked ends cleanly before the
// kernel goes away.
func Schedule(exe, dir string, delay time.Duration) (int, error) {
	if !Loaded() {
		return 0, &Error{Kind: KindOther, Detail: "no kexec kernel is loaded", Fix: "run kexec-prepare first"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	req, _ := json.Marshal(ExecRequest{Delay: delay.String(), Detached: true})
	reqFile := filepath.Join(dir, "exec-request.json")
	if err := os.WriteFile(reqFile, req, 0o600); err != nil {
		return 0, err
	}
	stdin, err := os.Open(reqFile)
	if err != nil {
		return 0, err
	}
	defer stdin.Close()
	logf, err := os.OpenFile(filepath.Join(dir, "exec.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "kexec-exec")
	cmd.Stdin = stdin
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the detached kexec: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return pid, nil
}

// leaveSession moves this process to the root cgroup, so that logind
// ending the SSH session (KillUserProcesses=yes) does not kill the
// pending reboot with it. Best effort: cgroup v1 hosts keep it where it is.
func leaveSession() {
	_ = os.WriteFile("/sys/fs/cgroup/cgroup.procs", []byte("0"), 0)
}

// runDetached is the child Schedule started.
func runDetached(delay time.Duration) error {
	leaveSession()
	// keep running when the session's terminal hangs up
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	time.Sleep(delay)
	return Reboot()
}
