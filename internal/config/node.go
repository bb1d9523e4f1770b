package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// PosOf is where a node starts in the source.
func PosOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

// IsNull reports whether n is absent or an explicit null.
func IsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Describe names what a node is, for "expected X, found Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

// eachPair walks a mapping node's pairs in source order, reporting a
// duplicate key as an error and skipping it: the one place both the
// typed decoder and Map read keys.
func eachPair(n *yaml.Node, path string, r *Report, f func(k, v *yaml.Node, kpath string)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kpath := Key(path, k.Value)
		if seen[k.Value] {
			r.Add(SevError, kpath, PosOf(k), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		f(k, v, kpath)
	}
}

// ReadDocument parses raw (YAML or JSON) and returns its top-level map;
// on failure the report says why (what is the message for an empty file).
func ReadDocument(raw []byte, empty string) (*yaml.Node, Report) {
	var r Report
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		r.Add(SevError, "$", yamlErrPos(err), "not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, r
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		r.Add(SevError, "$", Pos{}, "%s", empty)
		return nil, r
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		r.Add(SevError, "$", PosOf(root), "expected a map at the top level, found %s", Describe(root))
		return nil, r
	}
	return root, r
}

// Lookup returns the value of key in a mapping node, or nil.
func Lookup(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Map reads one YAML map field by field, for sections whose shape
// depends on their own values (disko's content types, defaults taken
// from sibling keys) and so cannot be a fixed struct for Decode. It
// records each value's position, reports type errors and duplicate keys,
// and Finish warns about the keys nothing read.
type Map struct {
	Path string
	r    *Report
	pos  Positions
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
	used map[string]bool
	// Order is the keys in source order.
	Order []string
}

// ReadMap starts reading n at path. It returns nil for null, and for
// anything but a map after reporting it.
func ReadMap(n *yaml.Node, path string, r *Report, pos Positions) *Map {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	pos[path] = PosOf(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.Add(SevError, path, PosOf(n), "expected a map, found %s", Describe(n))
		return nil
	}
	m := EmptyMap(path, r, pos)
	eachPair(n, path, r, func(k, v *yaml.Node, kpath string) {
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		m.vals[k.Value] = v
		m.keys[k.Value] = k
		m.Order = append(m.Order, k.Value)
		pos[kpath] = PosOf(v)
	})
	return m
}

// EmptyMap is a Map with no keys (for a section given as null).
func EmptyMap(path string, r *Report, pos Positions) *Map {
	return &Map{Path: path, r: r, pos: pos, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, used: map[string]bool{}}
}

// Errorf reports an error at path, at n's position or else path's.
func (m *Map) Errorf(path string, n *yaml.Node, format string, args ...any) {
	m.add(SevError, path, n, format, args...)
}

// Warnf reports a warning like Errorf.
func (m *Map) Warnf(path string, n *yaml.Node, format string, args ...any) {
	m.add(SevWarning, path, n, format, args...)
}

func (m *Map) add(sev Severity, path string, n *yaml.Node, format string, args ...any) {
	m.r.AddNode(sev, path, n, m.pos, format, args...)
}

// AddNode appends an entry at n's position, or at path's in pos when n is
// nil (a missing key is reported where its map is).
func (r *Report) AddNode(sev Severity, path string, n *yaml.Node, pos Positions, format string, args ...any) {
	at := pos.At(path)
	if n != nil {
		at = PosOf(n)
	}
	r.Add(sev, path, at, format, args...)
}

// Sub reads another map with the same report and positions.
func (m *Map) Sub(n *yaml.Node, path string) *Map { return ReadMap(n, path, m.r, m.pos) }

// Get returns key's value (nil if absent) and marks it read.
func (m *Map) Get(key string) *yaml.Node {
	m.used[key] = true
	return m.vals[key]
}

// Peek returns key's value without marking it read.
func (m *Map) Peek(key string) *yaml.Node { return m.vals[key] }

// Has reports whether key is present and not null.
func (m *Map) Has(key string) bool {
	n, ok := m.vals[key]
	return ok && !IsNull(n)
}

// UseAll marks every key read (options passed through as written).
func (m *Map) UseAll() {
	for k := range m.vals {
		m.used[k] = true
	}
}

// KeyPath is the report path of key.
func (m *Map) KeyPath(key string) string { return Key(m.Path, key) }

// Str reads a string (numbers and booleans are taken as written).
func (m *Map) Str(key, def string) string {
	n := m.Get(key)
	if IsNull(n) {
		return def
	}
	if n.Kind != yaml.ScalarNode {
		m.Errorf(m.KeyPath(key), n, "expected a string, found %s", Describe(n))
		return def
	}
	return n.Value
}

// Bool reads true or false.
func (m *Map) Bool(key string, def bool) bool {
	n := m.Get(key)
	if IsNull(n) {
		return def
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		m.Errorf(m.KeyPath(key), n, "expected true or false, found %s", Describe(n))
		return def
	}
	return b
}

// Int reads a whole number; ok is false when it is absent or wrong.
func (m *Map) Int(key string, def int) (v int, ok bool) {
	n := m.Get(key)
	if IsNull(n) {
		return def, false
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		m.Errorf(m.KeyPath(key), n, "expected a whole number, found %s", Describe(n))
		return def, false
	}
	return v, true
}

// IntPtr reads an optional whole number.
func (m *Map) IntPtr(key string) *int {
	v, ok := m.Int(key, 0)
	if !ok {
		return nil
	}
	return &v
}

// Strs reads a list of strings.
func (m *Map) Strs(key string) []string {
	n := m.Get(key)
	if IsNull(n) {
		return nil
	}
	path := m.KeyPath(key)
	if n.Kind != yaml.SequenceNode {
		m.Errorf(path, n, "expected a list of strings, found %s", Describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		m.pos[Index(path, i)] = PosOf(c)
		if c.Kind != yaml.ScalarNode || IsNull(c) {
			m.Errorf(Index(path, i), c, "expected a string, found %s", Describe(c))
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

// Ints reads a list of whole numbers.
func (m *Map) Ints(key string) []int {
	n := m.Get(key)
	if IsNull(n) {
		return nil
	}
	path := m.KeyPath(key)
	if n.Kind != yaml.SequenceNode {
		m.Errorf(path, n, "expected a list of numbers, found %s", Describe(n))
		return nil
	}
	var out []int
	for i, c := range n.Content {
		v, err := strconv.Atoi(c.Value)
		if c.Kind != yaml.ScalarNode || err != nil {
			m.Errorf(Index(path, i), c, "expected a whole number, found %s", Describe(c))
			continue
		}
		out = append(out, v)
	}
	return out
}

// AnyMap reads a free-form map (settings passed on as they are).
func (m *Map) AnyMap(key string) map[string]any {
	n := m.Get(key)
	if IsNull(n) {
		return nil
	}
	var v map[string]any
	if n.Kind != yaml.MappingNode || n.Decode(&v) != nil {
		m.Errorf(m.KeyPath(key), n, "expected a map, found %s", Describe(n))
		return nil
	}
	return v
}

// Each walks a map-of-objects value in source order.
func (m *Map) Each(key string, f func(name string, n *yaml.Node, path string)) {
	n := m.Get(key)
	if IsNull(n) {
		return
	}
	path := m.KeyPath(key)
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		return // some tools write an empty map as []
	}
	sub := m.Sub(n, path)
	if sub == nil {
		return
	}
	for _, k := range sub.Order {
		sub.used[k] = true
		f(k, sub.vals[k], Key(path, k))
	}
}

// Finish warns about every key nothing read, except those quiet accepts.
func (m *Map) Finish(quiet func(key string) bool) {
	for _, k := range m.Order {
		if m.used[k] || (quiet != nil && quiet(k)) {
			continue
		}
		m.Warnf(m.KeyPath(k), m.keys[k], "unknown key %q (ignored)", k)
	}
}

// CheckType verifies an optional `type` field of a fixed-type object.
func (m *Map) CheckType(want string) {
	if t := m.Str("type", want); t != want {
		m.Errorf(m.KeyPath("type"), m.vals["type"], "type must be %q here, found %q", want, t)
	}
}
