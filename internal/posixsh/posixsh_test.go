package posixsh

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestPositionalArgsAndSubstitution(t *testing.T) {
	out, _, code := run(t, "", "-c", `set -e; printf 'a=%s b=%s n=%s\n' "$1" "$2" "$#"; d=${1%/*}; echo "dir=$d"`, "name", "/x/y/z", "two")
	if code != 0 || out != "a=/x/y/z b=two n=2\ndir=/x/y\n" {
		t.Fatalf("out=%q code=%d", out, code)
	}
}

func TestExitStatusAndErrexit(t *testing.T) {
	if _, _, code := run(t, "", "-c", "exit 7"); code != 7 {
		t.Errorf("exit 7 -> %d", code)
	}
	out, _, code := run(t, "", "-c", "set -e; false; echo not-reached")
	if code == 0 || strings.Contains(out, "not-reached") {
		t.Errorf("set -e ignored: %q %d", out, code)
	}
	if _, _, code := run(t, "", "-c", "no-such-command-nivis"); code != 127 {
		t.Errorf("missing command -> %d, want 127", code)
	}
}

func TestStdinRedirectAndExternalCommands(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	_, errs, code := run(t, "hello world", "-c", `umask 077 2>/dev/null || true; cat > "$1" && n=$(wc -c < "$1") && [ $n -eq 11 ] && echo ok`, "sh", f)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	b, _ := os.ReadFile(f)
	if string(b) != "hello world" {
		t.Errorf("file = %q", b)
	}
	out, _, _ := run(t, "", "-c", `command -v cat >/dev/null && echo have-cat; command -v nivis-nope >/dev/null || echo no-nope`)
	if out != "have-cat\nno-nope\n" {
		t.Errorf("command -v: %q", out)
	}
}

func TestScriptFromStdin(t *testing.T) {
	out, _, code := run(t, "echo from-stdin\n")
	if code != 0 || out != "from-stdin\n" {
		t.Errorf("out=%q code=%d", out, code)
	}
}
