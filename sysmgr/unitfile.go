package sysmgr

import (
	"path"
	"strings"
)

// UnitFile is a parsed systemd unit (systemd.syntax(7)): enough to read the
// [Install] section and nivis's X- switches, nothing more.
type UnitFile struct {
	// entries in order; later assignments of a list key append, an empty
	// assignment resets, as systemd does.
	entries []unitEntry
}

type unitEntry struct{ section, key, value string }

// ParseUnit parses unit text; it never fails (systemd ignores what it cannot read).
func ParseUnit(texts ...string) UnitFile {
	var u UnitFile
	for _, text := range texts {
		section := ""
		lines := strings.Split(text, "\n")
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
			}
			switch {
			case line == "" || line[0] == '#' || line[0] == ';':
			case line[0] == '[' && strings.HasSuffix(line, "]"):
				section = line[1 : len(line)-1]
			default:
				k, v, ok := strings.Cut(line, "=")
				if ok {
					u.entries = append(u.entries, unitEntry{section, strings.TrimSpace(k), strings.TrimSpace(v)})
				}
			}
		}
	}
	return u
}

// Get returns the last value of key in section ("" when unset).
func (u UnitFile) Get(section, key string) string {
	v := ""
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			v = e.value
		}
	}
	return v
}

// List returns the space-separated values of a list key, honouring resets.
func (u UnitFile) List(section, key string) []string {
	var out []string
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			if e.value == "" {
				out = nil
				continue
			}
			out = append(out, strings.Fields(e.value)...)
		}
	}
	return out
}

// Bool reads a systemd boolean from any section (NixOS and system-manager
// disagree on where X-RestartIfChanged lives, so accept both).
func (u UnitFile) Bool(key string, def bool) bool {
	v := ""
	for _, e := range u.entries {
		if e.key == key {
			v = e.value
		}
	}
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true
	case "0", "no", "false", "off":
		return false
	}
	return def
}

// InstallLinks returns the symlinks `systemctl enable` would create for unit
// name, as link path -> target, both absolute under /etc/systemd/system.
func (u UnitFile) InstallLinks(name string) map[string]string {
	links := map[string]string{}
	self := path.Join(UnitDir, name)
	inst := name
	if strings.Contains(name, "@.") {
		di := u.Get("Install", "DefaultInstance")
		if di == "" {
			return links
		}
		at := strings.Index(name, "@.")
		inst = name[:at+1] + di + name[at+1:]
	}
	for _, t := range u.List("Install", "WantedBy") {
		links[path.Join(UnitDir, t+".wants", inst)] = self
	}
	for _, t := range u.List("Install", "RequiredBy") {
		links[path.Join(UnitDir, t+".requires", inst)] = self
	}
	for _, t := range u.List("Install", "UpheldBy") {
		links[path.Join(UnitDir, t+".upholds", inst)] = self
	}
	for _, a := range u.List("Install", "Alias") {
		links[path.Join(UnitDir, a)] = self
	}
	return links
}

// Install lists the [Install] directives that make a unit enable-able.
func (u UnitFile) Install() []string {
	var out []string
	for _, k := range []string{"WantedBy", "RequiredBy", "UpheldBy", "Alias"} {
		out = append(out, u.List("Install", k)...)
	}
	return out
}
