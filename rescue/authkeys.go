package rescue

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ParseAuthorizedKeys reads authorized_keys lines. Keys whose options
// restrict what they may do (command=, from=, principals=, or a
// cert-authority line) are left out: this server cannot honour those
// restrictions and must not widen them to a root shell. The client's own
// key carries no options. skipped says which lines were left out, and why.
func ParseAuthorizedKeys(lines []string) (keys []ssh.PublicKey, skipped []string) {
	seen := map[string]bool{}
	for _, raw := range lines {
		for _, line := range strings.Split(raw, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			key, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("unparsable authorized_keys line %.40q: %v", line, err))
				continue
			}
			if opt := restrictingOption(options); opt != "" {
				skipped = append(skipped, fmt.Sprintf("%s key %s (%s): option %s cannot be enforced by the rescue SSH server", key.Type(), ssh.FingerprintSHA256(key), comment, opt))
				continue
			}
			if seen[string(key.Marshal())] {
				continue
			}
			seen[string(key.Marshal())] = true
			keys = append(keys, key)
		}
	}
	return keys, skipped
}

func restrictingOption(options []string) string {
	for _, o := range options {
		name, _, _ := strings.Cut(o, "=")
		switch strings.ToLower(name) {
		case "command", "from", "principals", "cert-authority":
			return name
		}
	}
	return ""
}
