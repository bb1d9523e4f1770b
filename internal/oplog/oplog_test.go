package oplog

import (
	"errors"
	"strings"
	"testing"
)

func TestDo(t *testing.T) {
	var lines []string
	l := New(func(level, line string) { lines = append(lines, level+" "+line) })
	if err := l.Do("mkfs.ext4 /dev/vda2", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := errors.New("exit status 1")
	if err := l.Do("grub-install /dev/vda", func() error { return want }); err != want {
		t.Fatalf("Do returned %v", err)
	}
	l.Failed("wipefs -a /dev/vdb", want, "wipefs: error: /dev/vdb: probing initialization failed\n")
	if len(lines) != 5 ||
		lines[0] != "info [started] mkfs.ext4 /dev/vda2" ||
		!strings.HasPrefix(lines[1], "info [finished] mkfs.ext4 /dev/vda2 (") ||
		lines[3] != "error [failed] grub-install /dev/vda: exit status 1" ||
		lines[4] != "error [failed] wipefs -a /dev/vdb: exit status 1\nwipefs: error: /dev/vdb: probing initialization failed" {
		t.Errorf("lines:\n%s", strings.Join(lines, "\n"))
	}
	var nl *Log
	nl.Started("nothing") // a nil Log is quiet
}
