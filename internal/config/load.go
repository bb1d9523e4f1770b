package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// APIVersion is the only config version this nivis reads. Later versions
// will be translated forward from this one (Ignition style).
const APIVersion = "nivis/v1alpha1"

// Validator is implemented by config kinds that check themselves after
// decoding. Checks report through ctx; they must not touch any host.
type Validator interface {
	Validate(ctx *Context)
}

// Context is handed to a kind's Validate.
type Context struct {
	Report *Report
	Pos    Positions
	// Dir is the directory of the config file: relative paths in the config
	// (sources, files) are resolved against it.
	Dir string
	// Node is the kind's whole document, for sections decoded lazily.
	Node *yaml.Node
}

// Errorf records an error at path.
func (c *Context) Errorf(path, format string, args ...any) {
	c.Report.Add(SevError, path, c.Pos.At(path), format, args...)
}

// Warnf records a warning at path.
func (c *Context) Warnf(path, format string, args ...any) {
	c.Report.Add(SevWarning, path, c.Pos.At(path), format, args...)
}

// Resolve makes a config-relative path absolute.
func (c *Context) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(c.Dir, p)
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]func() any{}
)

// RegisterKind makes a config kind loadable: newObj returns a pointer to a
// fresh value to decode into. Packages register their kinds in init.
func RegisterKind(kind string, newObj func() any) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	kinds[kind] = newObj
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Header is the part every nivis config starts with.
type Header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

// Loaded is a decoded config.
type Loaded struct {
	Header
	File string
	Dir  string
	Obj  any // pointer to the kind's struct
	Pos  Positions
	Node *yaml.Node
}

// Load reads and decodes file. The returned error is non-nil when the file
// cannot be read or the report has errors; the report is always returned.
func Load(file string) (*Loaded, Report, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, Report{}, fmt.Errorf("read config: %w", err)
	}
	dir, _ := filepath.Abs(filepath.Dir(file))
	return Parse(file, dir, raw, "")
}

// LoadKind is Load, refusing any kind other than want.
func LoadKind(file, want string) (*Loaded, Report, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, Report{}, fmt.Errorf("read config: %w", err)
	}
	dir, _ := filepath.Abs(filepath.Dir(file))
	return Parse(file, dir, raw, want)
}

// Parse decodes raw (YAML or JSON). want, when not empty, is the kind the
// caller needs. dir resolves relative paths.
func Parse(name, dir string, raw []byte, want string) (*Loaded, Report, error) {
	root, r := ReadDocument(raw, "the file is empty; a config starts with apiVersion: "+APIVersion+" and kind")
	if root == nil {
		return nil, r, r.Err()
	}
	pos := Positions{}
	l := &Loaded{File: name, Dir: dir, Pos: pos, Node: root}
	var rest []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "apiVersion":
			l.APIVersion = v.Value
			pos["$.apiVersion"] = PosOf(v)
		case "kind":
			l.Kind = v.Value
			pos["$.kind"] = PosOf(v)
		default:
			rest = append(rest, k, v)
		}
	}
	switch {
	case l.APIVersion == "":
		r.Add(SevError, "$.apiVersion", PosOf(root), "missing apiVersion; add `apiVersion: %s`", APIVersion)
	case l.APIVersion != APIVersion:
		r.Add(SevError, "$.apiVersion", pos["$.apiVersion"], "unsupported apiVersion %q; this nivis reads %s", l.APIVersion, APIVersion)
	}
	kindsMu.Lock()
	newObj, ok := kinds[l.Kind]
	kindsMu.Unlock()
	switch {
	case l.Kind == "":
		r.Add(SevError, "$.kind", PosOf(root), "missing kind; one of: %s", strings.Join(Kinds(), ", "))
		return l, r, r.Err()
	case !ok:
		r.Add(SevError, "$.kind", pos["$.kind"], "unknown kind %q; one of: %s", l.Kind, strings.Join(Kinds(), ", "))
		return l, r, r.Err()
	case want != "" && l.Kind != want:
		r.Add(SevError, "$.kind", pos["$.kind"], "this command needs kind %s, the file is kind %s", want, l.Kind)
		return l, r, r.Err()
	}
	body := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column, Content: rest}
	l.Obj = newObj()
	Decode(body, "$", l.Obj, &r, pos)
	if v, ok := l.Obj.(Validator); ok {
		v.Validate(&Context{Report: &r, Pos: pos, Dir: dir, Node: root})
	}
	r.Sort()
	return l, r, r.Err()
}

func yamlErrPos(err error) Pos {
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		return Pos{Line: line}
	}
	return Pos{}
}
