// Package mountinfo is the one parser of /proc/self/mountinfo here, and
// the unescaping that readers of /proc/mounts need too.
package mountinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one line of /proc/PID/mountinfo (proc(5)).
type Entry struct {
	ID, Parent int
	DevNum     string // major:minor of st_dev
	Root       string
	Mountpoint string
	Options    string
	FSType     string
	Source     string
	SuperOpts  string
}

// Parse parses mountinfo; octal escapes (\040) are decoded. A malformed
// line is skipped and the first one is the error, so callers that only
// need what could be read still get every good line.
func Parse(data []byte) ([]Entry, error) {
	var out []Entry
	var first error
	bad := func(n int, format, line string) {
		if first == nil {
			first = fmt.Errorf(format, n, line)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			bad(n, "mountinfo line %d: malformed: %q", line)
			continue
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			bad(n, "mountinfo line %d: bad mount id: %q", line)
			continue
		}
		e := Entry{
			ID: id, Parent: parent, DevNum: f[2],
			Root: Unescape(f[3]), Mountpoint: Unescape(f[4]), Options: f[5],
			FSType: g[0], Source: Unescape(g[1]),
		}
		if len(g) > 2 {
			e.SuperOpts = g[2]
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, first
}

// Unescape decodes the \ooo escapes the kernel writes for space, tab,
// newline and backslash in mount paths (\040 for a space). Anything that
// is not a three-digit octal byte is kept as it is.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
