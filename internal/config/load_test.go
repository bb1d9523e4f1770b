package config

import (
	"strings"
	"testing"
)

type testKind struct {
	Hostname string            `yaml:"hostname"`
	Port     int               `yaml:"port"`
	Mode     string            `yaml:"mode"`
	Labels   map[string]string `yaml:"labels"`
	Keys     []string          `yaml:"keys"`
	Nested   struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"nested"`
}

func (k *testKind) Validate(ctx *Context) {
	if k.Hostname == "" {
		ctx.Errorf("$.hostname", "hostname is required")
	}
}

func init() { RegisterKind("TestKind", func() any { return &testKind{} }) }

func find(r Report, path string) *Entry {
	for i := range r.Entries {
		if r.Entries[i].Path == path {
			return &r.Entries[i]
		}
	}
	return nil
}

func TestParseReportsEveryProblemWithLine(t *testing.T) {
	src := `apiVersion: nivis/v1alpha1
kind: TestKind
hostname: web1
port: eighty
mode: 0644
labels:
  a: b
  a: c
keys: notalist
nested:
  enabled: true
  colour: blue
Hostname: typo
`
	l, r, err := Parse("t.yaml", "/cfg", []byte(src), "")
	if err == nil {
		t.Fatalf("want an error for the bad port; report:\n%s", r)
	}
	if e := find(r, "$.port"); e == nil || e.Severity != SevError || e.Line != 4 || !strings.Contains(e.Message, "whole number") {
		t.Errorf("port entry = %+v", e)
	}
	if e := find(r, `$.labels.a`); e == nil || e.Severity != SevError || e.Line != 8 || !strings.Contains(e.Message, "duplicate") {
		t.Errorf("duplicate entry = %+v", e)
	}
	if e := find(r, "$.keys"); e == nil || e.Line != 9 || !strings.Contains(e.Message, "expected a list") {
		t.Errorf("keys entry = %+v", e)
	}
	if e := find(r, "$.nested.colour"); e == nil || e.Severity != SevWarning || e.Line != 12 {
		t.Errorf("unknown key entry = %+v", e)
	}
	if e := find(r, "$.Hostname"); e == nil || e.Severity != SevWarning || !strings.Contains(e.Message, `did you mean "hostname"`) {
		t.Errorf("suggestion entry = %+v", e)
	}
	obj := l.Obj.(*testKind)
	if obj.Mode != "0644" {
		t.Errorf("mode = %q, want the text as written", obj.Mode)
	}
	if !obj.Nested.Enabled || obj.Hostname != "web1" {
		t.Errorf("decoded = %+v", obj)
	}
	// Entries are sorted by line.
	for i := 1; i < len(r.Entries); i++ {
		if r.Entries[i-1].Line > r.Entries[i].Line {
			t.Errorf("entries not sorted: %v", r.Entries)
		}
	}
}

func TestParseJSONAndValidator(t *testing.T) {
	src := `{"apiVersion": "nivis/v1alpha1", "kind": "TestKind", "port": 22}`
	_, r, err := Parse("t.json", "/cfg", []byte(src), "")
	if err == nil {
		t.Fatal("want the validator's error")
	}
	e := find(r, "$.hostname")
	if e == nil || e.Message != "hostname is required" || e.Line != 1 {
		t.Errorf("validator entry = %+v (report %s)", e, r)
	}
}

func TestParseHeaderProblems(t *testing.T) {
	cases := map[string]string{
		"":                                       "the file is empty",
		"- a\n- b\n":                             "expected a map",
		"kind: TestKind\n":                       "missing apiVersion",
		"apiVersion: nivis/v9\nkind: TestKind\n": "unsupported apiVersion",
		"apiVersion: nivis/v1alpha1\nkind: Nope\n":  `unknown kind "Nope"`,
		"apiVersion: nivis/v1alpha1\n":              "missing kind",
		"apiVersion: nivis/v1alpha1\nkind: [\n":     "not valid YAML",
		"apiVersion: nivis/v1alpha1\nkind: Other\n": "",
	}
	for src, want := range cases {
		_, r, err := Parse("t.yaml", "/", []byte(src), "TestKind")
		if err == nil {
			t.Errorf("%q: no error", src)
			continue
		}
		if want != "" && !strings.Contains(r.String(), want) {
			t.Errorf("%q: report %q does not mention %q", src, r.String(), want)
		}
	}
}

func TestPathHelpers(t *testing.T) {
	p := Key(Key("$", "files"), "/etc/hello.ini")
	if p != `$.files["/etc/hello.ini"]` {
		t.Fatalf("Key = %s", p)
	}
	if got := Parent(Key(p, "mode")); got != p {
		t.Errorf("Parent = %s", got)
	}
	if got := Parent(p); got != "$.files" {
		t.Errorf("Parent of quoted = %s", got)
	}
	if got := Parent(Index("$.keys", 3)); got != "$.keys" {
		t.Errorf("Parent of index = %s", got)
	}
	pos := Positions{"$.files": {Line: 3, Column: 1}}
	if got := pos.At(Key(p, "mode")); got.Line != 3 {
		t.Errorf("At falls back to the ancestor: %+v", got)
	}
}
