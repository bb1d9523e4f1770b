package disko

import (
	"sort"
	"strings"
)

// sortedKeys returns a map's keys in byte order, the order Nix's
// attrNames uses, so ties break exactly as in disko.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stableSort[T any](s []T, less func(a, b T) bool) {
	sort.SliceStable(s, func(i, j int) bool { return less(s[i], s[j]) })
}

// mountpointLess orders mountpoints so that a parent always comes before
// what is mounted inside it ("/" < "/boot" < "/home" < "/home/user").
func mountpointLess(a, b string) bool {
	ac := strings.Split(strings.Trim(a, "/"), "/")
	bc := strings.Split(strings.Trim(b, "/"), "/")
	if a == "/" {
		ac = nil
	}
	if b == "/" {
		bc = nil
	}
	for i := 0; i < len(ac) && i < len(bc); i++ {
		if ac[i] != bc[i] {
			return ac[i] < bc[i]
		}
	}
	if len(ac) != len(bc) {
		return len(ac) < len(bc)
	}
	return a < b
}
