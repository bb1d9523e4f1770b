package sysmgr

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

// LoadBundle reads a Services config and everything it references on this
// machine: unit and file sources become contents in the bundle the agent
// gets; secrets come back apart, never inside the bundle.
func LoadBundle(file string) (*Services, []SecretData, config.Report, error) {
	l, rep, err := config.LoadKind(file, Kind)
	if err != nil {
		return nil, nil, rep, err
	}
	b, secrets, err := Resolve(l.Obj.(*Services), l.Dir)
	if err != nil {
		return nil, nil, rep, exitcode.Wrap(exitcode.Usage, err)
	}
	return b, secrets, rep, nil
}

// Resolve reads the sources of s (relative to dir) into a new bundle.
func Resolve(s *Services, dir string) (*Services, []SecretData, error) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	b := &Services{Tmpfiles: s.Tmpfiles, Users: s.Users, Groups: s.Groups, Directories: s.Directories, Symlinks: s.Symlinks}
	if len(s.Units) > 0 {
		b.Units = map[string]*Unit{}
	}
	for name, u := range s.Units {
		if u == nil {
			continue
		}
		c := *u
		if c.Source != "" {
			raw, err := os.ReadFile(abs(c.Source))
			if err != nil {
				return nil, nil, fmt.Errorf("unit %s: %w", name, err)
			}
			c.Text, c.Source = string(raw), ""
		}
		b.Units[name] = &c
	}
	if len(s.Files) > 0 {
		b.Files = map[string]*File{}
	}
	for p, f := range s.Files {
		if f == nil {
			continue
		}
		c := *f
		if c.Source != "" {
			raw, err := os.ReadFile(abs(c.Source))
			if err != nil {
				return nil, nil, fmt.Errorf("file %s: %w", p, err)
			}
			c.Content, c.HasContent, c.Source = raw, true, ""
		}
		b.Files[p] = &c
	}
	var secrets []SecretData
	if len(s.Secrets) > 0 {
		b.Secrets = map[string]*Secret{}
	}
	for _, name := range sortedKeys(s.Secrets) {
		sec := s.Secrets[name]
		var data []byte
		switch {
		case sec.Source != "":
			raw, err := os.ReadFile(abs(sec.Source))
			if err != nil {
				return nil, nil, fmt.Errorf("secret %s: %w", name, err)
			}
			data = raw
		case sec.Env != "":
			v, ok := os.LookupEnv(sec.Env)
			if !ok {
				return nil, nil, fmt.Errorf("secret %s: environment variable %s is not set", name, sec.Env)
			}
			data = []byte(v)
		}
		secrets = append(secrets, SecretData{Name: name, Data: data})
		// The bundle keeps owner and mode only.
		b.Secrets[name] = &Secret{Mode: sec.Mode, User: sec.User, Group: sec.Group, Source: "(sent apart)"}
	}
	return b, secrets, nil
}
