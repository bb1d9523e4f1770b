// Package unitfile reads systemd unit files (systemd.syntax(7)) as far as
// nivis needs: the [Install] section that `systemctl enable` follows and
// nivis's X- switches. sysmgr and the installer's finalize share it.
package unitfile

import (
	"path"
	"strings"
)

// File is a parsed systemd unit (systemd.syntax(7)): enough to read the
// [Install] section and nivis's X- switches, nothing more.
type File struct {
	// entries in order; later assignments of a list key append, an empty
	// assignment resets, as systemd does.
	entries []unitEntry
}

type unitEntry struct{ section, key, value string }

// Parse parses unit text; it never fails (systemd ignores what it cannot read).
func Parse(texts ...string) File {
	var u File
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
func (u File) Get(section, key string) string {
	v := ""
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			v = e.value
		}
	}
	return v
}

// List returns the space-separated values of a list key, honouring resets.
func (u File) List(section, key string) []string {
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
func (u File) Bool(key string, def bool) bool {
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

// InstallLinks returns the symlinks `systemctl enable` would create in dir
// for unit name, as link path -> target.
func (u File) InstallLinks(dir, name, target string) map[string]string {
	links := map[string]string{}
	self := target
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
		links[path.Join(dir, t+".wants", inst)] = self
	}
	for _, t := range u.List("Install", "RequiredBy") {
		links[path.Join(dir, t+".requires", inst)] = self
	}
	for _, t := range u.List("Install", "UpheldBy") {
		links[path.Join(dir, t+".upholds", inst)] = self
	}
	for _, a := range u.List("Install", "Alias") {
		links[path.Join(dir, a)] = self
	}
	return links
}

// Install lists the [Install] directives that make a unit enable-able.
func (u File) Install() []string {
	var out []string
	for _, k := range []string{"WantedBy", "RequiredBy", "UpheldBy", "Alias"} {
		out = append(out, u.List("Install", k)...)
	}
	return out
}

// Also lists the units `systemctl enable` enables along with this one.
func (u File) Also() []string { return u.List("Install", "Also") }
