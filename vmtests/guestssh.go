//go:build linux

package vmtests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The harness drives guests with the plain OpenSSH client: it is not what
// is under test (tests of nivis use nivis's own client) and it is always
// there. Host keys are not checked: every guest is new.

// SSHTarget is the user@host the forwarded port reaches.
const SSHTarget = "root@127.0.0.1"

// SSHOptions are the ssh(1) arguments for the guest, without the target.
func (vm *VM) SSHOptions() []string {
	return []string{
		"-p", strconv.Itoa(vm.Port),
		"-i", vm.KeyFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=15",
		"-o", "ServerAliveInterval=15",
		"-o", "ServerAliveCountMax=4",
	}
}

// RunIO runs a shell command in the guest as root with the given streams.
func (vm *VM) RunIO(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	args := append(vm.SSHOptions(), SSHTarget, command)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

// Run runs a shell command in the guest as root and returns its stdout; on
// failure the error carries stderr.
func (vm *VM) Run(ctx context.Context, command string) (string, error) {
	var out, errb bytes.Buffer
	if err := vm.RunIO(ctx, command, nil, &out, &errb); err != nil {
		return out.String(), fmt.Errorf("guest: %q: %w: %s", command, err, strings.TrimSpace(tail(errb.String(), 2048)))
	}
	return out.String(), nil
}

// WaitSSH waits until the guest runs commands over SSH, up to timeout, and
// returns how long the guest had been running by then. It gives up early
// when QEMU exits.
func (vm *VM) WaitSSH(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if exited, err := vm.Exited(); exited {
			return 0, fmt.Errorf("QEMU exited (%v) before SSH came up: %s\nserial console:\n%s", err, strings.TrimSpace(vm.QEMULog()), vm.SerialTail(40))
		}
		actx, acancel := context.WithTimeout(ctx, 45*time.Second)
		_, err := vm.Run(actx, "true")
		acancel()
		if err == nil {
			return time.Since(vm.StartedAt), nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no SSH on 127.0.0.1:%d after %s (last: %v); serial console:\n%s", vm.Port, timeout, last, vm.SerialTail(40))
		case <-time.After(2 * time.Second):
		}
	}
}

// BootID is the guest kernel's boot_id, new on every boot (and kexec).
func (vm *VM) BootID(ctx context.Context) (string, error) {
	out, err := vm.Run(ctx, "cat /proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(out), err
}

// Reboot reboots the guest from inside (QEMU restarts it the same way it
// was launched) and waits up to timeout until SSH answers from a new boot.
func (vm *VM) Reboot(ctx context.Context, timeout time.Duration) error {
	old, err := vm.BootID(ctx)
	if err != nil {
		return fmt.Errorf("before reboot: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	vm.Run(rctx, "systemctl reboot") // the connection drops: errors mean nothing
	cancel()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("guest did not come back with a new boot_id within %s; serial console:\n%s", timeout, vm.SerialTail(40))
		}
		if _, err := vm.WaitSSH(ctx, left); err != nil {
			return err
		}
		id, err := vm.BootID(ctx)
		if err == nil && id != old {
			return nil
		}
		time.Sleep(2 * time.Second)
	}
}

// Logs is the serial console of every boot and, when SSH answers, the
// current boot's journal.
func (vm *VM) Logs(ctx context.Context) string {
	var b strings.Builder
	b.WriteString("--- serial console ---\n")
	b.WriteString(vm.SerialTail(1 << 30))
	b.WriteString("\n")
	if exited, _ := vm.Exited(); exited {
		return b.String()
	}
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := vm.Run(jctx, "journalctl -b --no-pager -o short-monotonic")
	b.WriteString("--- journalctl -b ---\n")
	if err != nil {
		b.WriteString(fmt.Sprintf("(journal unavailable: %v)\n", err))
	}
	b.WriteString(out)
	return b.String()
}
