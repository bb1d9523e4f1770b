package config

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A Map reads fields one by one with the same reports as Decode: type
// errors and duplicates with their line, unread keys as warnings.
func TestMapReportsWithLines(t *testing.T) {
	src := "name: a\nsize: big\nsize: 2\nlist: [x, {}]\nextra: 1\n_internal: 2\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var r Report
	pos := Positions{}
	m := ReadMap(doc.Content[0], "$", &r, pos)
	if got := m.Str("name", ""); got != "a" {
		t.Errorf("name = %q", got)
	}
	if _, ok := m.Int("size", 0); ok {
		t.Errorf("size read as a number")
	}
	if got := m.Strs("list"); len(got) != 1 || got[0] != "x" {
		t.Errorf("list = %q", got)
	}
	m.Finish(func(k string) bool { return strings.HasPrefix(k, "_") })
	want := []string{
		`error at $.size, line 3 col 1: duplicate key "size"`,
		`error at $.size, line 2 col 7: expected a whole number, found "big"`,
		`error at $.list[1], line 4 col 11: expected a string, found a map`,
		`warning at $.extra, line 5 col 1: unknown key "extra" (ignored)`,
	}
	if got := strings.TrimSpace(r.String()); got != strings.Join(want, "\n") {
		t.Errorf("report:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if p := pos.At("$.list[0]"); p.Line != 4 {
		t.Errorf("position of $.list[0] = %+v", p)
	}
}
