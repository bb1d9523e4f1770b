package oplog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLines(t *testing.T) {
	var lines []string
	l := New(func(level, line string) { lines = append(lines, level+" "+line) })
	l.Started("mkfs.ext4 /dev/vda2")
	l.Finished("mkfs.ext4 /dev/vda2", 1500*time.Microsecond)
	want := errors.New("exit status 1")
	l.Started("grub-install /dev/vda")
	l.Failed("grub-install /dev/vda", want, "")
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
