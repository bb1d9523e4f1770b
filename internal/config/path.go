package config

import (
	"regexp"
	"strconv"
)

// Pos is a line and column in the source file (1-based; zero when unknown).
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// Positions maps a JSON-path-like string (as in report entries) to where
// that value appears in the source, so checks made after decoding can still
// point at a line.
type Positions map[string]Pos

// At returns the position of path, or of its closest known ancestor.
func (p Positions) At(path string) Pos {
	for path != "" {
		if pos, ok := p[path]; ok {
			return pos
		}
		path = Parent(path)
	}
	return Pos{}
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Key appends a map key to path: $.a.b, or $.a["x.y"] when the key is not a
// plain identifier (file paths, unit names).
func Key(path, key string) string {
	if plainKey.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// Index appends a sequence index to path: $.a[3].
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Parent strips the last element of path; "$" has parent "".
func Parent(path string) string {
	if path == "$" || path == "" {
		return ""
	}
	// Walk back over a trailing [..] (which may contain quoted dots) or .key.
	if path[len(path)-1] == ']' {
		inQuote := false
		for i := len(path) - 2; i >= 0; i-- {
			switch path[i] {
			case '"':
				if i == 0 || path[i-1] != '\\' {
					inQuote = !inQuote
				}
			case '[':
				if !inQuote {
					return path[:i]
				}
			}
		}
		return ""
	}
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[:i]
		}
	}
	return ""
}
