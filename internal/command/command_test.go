package command

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/oplog"
)

// Exec runs the real program and logs it through the operation log, with
// the output only when it fails; stdin is fed but never logged.
func TestExecLogsEveryCommand(t *testing.T) {
	var lines []string
	e := Exec{Log: oplog.New(func(level, line string) { lines = append(lines, level+" "+line) })}
	out, err := e.Run(context.Background(), Command{Argv: []string{"sh", "-c", "cat; echo \" $X\""}, Stdin: []byte("secret"), Env: []string{"X=y"}})
	if err != nil || string(out) != "secret y\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	_, err = e.Run(context.Background(), Command{Argv: []string{"sh", "-c", "echo broken >&2; exit 3"}})
	var ce *Error
	if !errors.As(err, &ce) || ce.Output != "broken\n" || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("failure = %#v", err)
	}
	_, err = e.Run(context.Background(), Command{Argv: []string{"no-such-tool-nivis"}})
	if err == nil || !strings.Contains(err.Error(), "no-such-tool-nivis is not installed") {
		t.Fatalf("missing tool: %v", err)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{
		`info [started] sh -c 'cat; echo " $X"'`,
		`info [finished] sh -c 'cat; echo " $X"' (`,
		"error [failed] sh -c 'echo broken >&2; exit 3': exit status 3\nbroken",
		"error [failed] no-such-tool-nivis: no-such-tool-nivis is not installed",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("log lacks %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "secret") {
		t.Errorf("stdin was logged:\n%s", joined)
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{Reply: func(ctx context.Context, c Command) ([]byte, error) {
		if c.Argv[0] == "mkfs.xfs" {
			return []byte("too small\n"), errors.New("exit status 1")
		}
		return nil, nil
	}}
	if _, err := r.Run(context.Background(), Command{Argv: []string{"grub-install", "/dev/vda"}, Chroot: "/mnt"}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(context.Background(), Command{Argv: []string{"mkfs.xfs", "-L", "my data", "/dev/vdb1"}})
	var ce *Error
	if !errors.As(err, &ce) || ce.Output != "too small\n" {
		t.Fatalf("err = %#v", err)
	}
	got := strings.Join(r.Argvs(), "\n")
	if got != "chroot /mnt grub-install /dev/vda\nmkfs.xfs -L 'my data' /dev/vdb1" {
		t.Errorf("argvs:\n%s", got)
	}
}
