// Package mountinfo holds what every reader of /proc/self/mountinfo and
// /proc/mounts here needs.
package mountinfo

import (
	"strconv"
	"strings"
)

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
