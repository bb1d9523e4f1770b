package progress

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesAndFinish(t *testing.T) {
	var out bytes.Buffer
	no := false
	b := NewWith(&out, "upload", 1000, Options{TTY: &no, Interval: 20 * time.Millisecond})
	n, err := io.Copy(io.Discard, b.Reader(strings.NewReader(strings.Repeat("x", 400))))
	if err != nil || n != 400 {
		t.Fatalf("copy: %d %v", n, err)
	}
	time.Sleep(70 * time.Millisecond)
	b.Add(600)
	b.Finish(nil)
	b.Finish(nil) // idempotent
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want periodic lines plus a final one, got %q", out.String())
	}
	if !strings.Contains(lines[0], " 40% 400 B / 1000 B") || !strings.Contains(lines[0], "ETA") {
		t.Errorf("periodic line %q lacks percentage, bytes or ETA", lines[0])
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "upload 100% 1000 B / 1000 B") || !strings.Contains(last, " in ") {
		t.Errorf("final line %q", last)
	}
	if strings.Contains(out.String(), "\r") {
		t.Errorf("plain mode must not redraw: %q", out.String())
	}
}

func TestTTYRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	yes := true
	b := NewWith(&out, "up", 100, Options{TTY: &yes, Interval: 10 * time.Millisecond})
	b.Set(50, 0)
	time.Sleep(40 * time.Millisecond)
	b.Finish(errors.New("boom"))
	s := out.String()
	if !strings.HasPrefix(s, "\rup [============>           ]  50%") {
		t.Errorf("bar not drawn in place: %q", s)
	}
	if !strings.Contains(s, "\rup: failed after 50 B: boom ") || !strings.HasSuffix(s, " \n") {
		t.Errorf("failure not reported at the end: %q", s)
	}
}

func TestNilBarIsInert(t *testing.T) {
	var b *Bar = New(nil, "x", 1)
	b.Add(1)
	b.Set(1, 1)
	b.Finish(nil)
	if r := strings.NewReader("a"); b.Reader(r) != r {
		t.Error("nil bar must return the reader unchanged")
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 512 << 20: "512.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 42 * time.Second: "42s", 187 * time.Second: "3m07s", 62 * time.Minute: "1h02m"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", in, got, want)
		}
	}
}
