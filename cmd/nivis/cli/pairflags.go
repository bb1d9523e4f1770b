package cli

import (
	"regexp"
	"strings"
)

// pairSep joins the two values of a two-argument flag into the single
// value pflag stores. It cannot occur in a path or an owner.
const pairSep = "\x1f"

var ownerArg = regexp.MustCompile(`^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$`)

// pairFlags rewrites the flags that take two arguments, as
// nixos-anywhere spells them (`--chown PATH UID:GID`,
// `--disk-encryption-keys REMOTE LOCAL`), into one value each, so that
// pflag can parse them. The one-argument forms ("PATH UID:GID" quoted as
// one word, or --flag=...) are left as they are.
func pairFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--chown" || a == "--disk-encryption-keys") && i+2 < len(args) {
			first, second := args[i+1], args[i+2]
			pair := !strings.ContainsAny(first, " \t") && !strings.HasPrefix(first, "-") && !strings.HasPrefix(second, "-")
			if a == "--chown" {
				pair = pair && ownerArg.MatchString(second)
			}
			if pair {
				out = append(out, a, first+pairSep+second)
				i += 2
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// splitPair splits a two-argument flag's value: the pair pairFlags made,
// or one word "A B" split at its last run of blanks.
func splitPair(v string) (string, string, bool) {
	if a, b, ok := strings.Cut(v, pairSep); ok {
		return a, b, a != "" && b != ""
	}
	v = strings.TrimSpace(v)
	i := strings.LastIndexAny(v, " \t")
	if i < 0 {
		return "", "", false
	}
	a, b := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
	return a, b, a != "" && b != ""
}
