package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	nodeType        = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// Decode fills out (a pointer) from node, recording every problem in r and
// the position of every value in pos. Struct fields are matched by their
// `yaml` tag (or `json` tag when there is no yaml tag). Keys that match no
// field are warnings; values of the wrong type are errors; duplicate keys
// are errors. A field of type yaml.Node or *yaml.Node receives the raw
// subtree, for sections another package decodes itself (disko).
func Decode(node *yaml.Node, path string, out any, r *Report, pos Positions) {
	d := decoder{r: r, pos: pos}
	d.value(node, path, reflect.ValueOf(out).Elem())
}

type decoder struct {
	r   *Report
	pos Positions
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.r.Add(SevError, path, PosOf(n), format, args...)
}

func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.pos != nil {
		d.pos[path] = PosOf(n)
	}
	t := v.Type()
	if t == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if t.Kind() == reflect.Pointer {
		if n.Tag == "!!null" {
			return
		}
		if t.Elem() == nodeType {
			c := *n
			v.Set(reflect.ValueOf(&c))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, path, v.Elem())
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Kind() == reflect.Interface {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "%s", cleanYAMLError(err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.structValue(n, path, v)
	case reflect.Map:
		d.mapValue(n, path, v)
	case reflect.Slice:
		if n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, found %s", Describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, Index(path, i), s.Index(i))
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a %s, found %s", scalarName(t), Describe(n))
			return
		}
		if n.Tag == "!!null" {
			return
		}
		if t.Kind() == reflect.String && n.Tag != "!!str" && n.Style == 0 {
			// YAML would read 0644 as a number; a string field takes the text as written.
			v.SetString(n.Value)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "expected a %s, found %s", scalarName(t), Describe(n))
		}
	}
}

func scalarName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	}
	return t.String()
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	return strings.TrimSpace(s)
}

// FieldName returns the config key of a struct field, or "" for skipped fields.
func FieldName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("yaml")
	if tag == "" {
		tag = f.Tag.Get("json")
	}
	if tag == "-" || !f.IsExported() {
		return "", false
	}
	parts := strings.Split(tag, ",")
	for _, p := range parts[1:] {
		if p == "inline" {
			return "", true
		}
	}
	if parts[0] != "" {
		return parts[0], false
	}
	return strings.ToLower(f.Name[:1]) + f.Name[1:], false
}

type fieldRef struct {
	index []int
}

func structFields(t reflect.Type) map[string]fieldRef {
	out := map[string]fieldRef{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, inline := FieldName(f)
			idx := append(append([]int{}, prefix...), i)
			if inline && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name != "" {
				out[name] = fieldRef{index: idx}
			}
		}
	}
	walk(t, nil)
	return out
}

func (d *decoder) structValue(n *yaml.Node, path string, v reflect.Value) {
	if n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a map, found %s", Describe(n))
		return
	}
	fields := structFields(v.Type())
	eachPair(n, path, d.r, func(k, val *yaml.Node, kpath string) {
		f, ok := fields[k.Value]
		if !ok {
			d.r.Add(SevWarning, kpath, PosOf(k), "unknown key %q (ignored)%s", k.Value, suggest(k.Value, fields))
			return
		}
		d.value(val, kpath, v.FieldByIndex(f.index))
	})
}

func suggest(key string, fields map[string]fieldRef) string {
	lk := strings.ToLower(key)
	for name := range fields {
		if strings.ToLower(name) == lk || strings.ReplaceAll(strings.ToLower(name), "_", "") == strings.ReplaceAll(lk, "_", "") {
			return fmt.Sprintf("; did you mean %q?", name)
		}
	}
	return ""
}

func (d *decoder) mapValue(n *yaml.Node, path string, v reflect.Value) {
	if n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a map, found %s", Describe(n))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(n, path, "internal: map key type %s unsupported", t.Key())
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	eachPair(n, path, d.r, func(k, val *yaml.Node, kpath string) {
		elem := reflect.New(t.Elem()).Elem()
		d.value(val, kpath, elem)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
	})
	v.Set(m)
}
