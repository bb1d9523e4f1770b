package sysmgr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/config"
)

func TestValidateReportsEveryProblemWithLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.service"), []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := `apiVersion: nivis/v1alpha1
kind: Services
units:
  hello.service:
    source: ./hello.service
  hello.daemon:
    text: "[Service]\n"
  both.service:
    text: "[Service]\n"
    source: ./hello.service
  empty.service: {}
  ssh.service:
    dropins:
      port: "[Service]\n"
files:
  etc/relative.conf:
    text: x
  /usr/bin/evil:
    text: x
  /etc/bad-mode:
    text: x
    mode: "0999"
  /etc/bad-conflict:
    text: x
    onConflict: sometimes
  /etc/fetched:
    url: https://example.org/x
  /etc/two-sources:
    text: x
    source: ./hello.service
  /etc/ok.conf:
    text: fine
    mode: "0640"
    onConflict: backup
  /etc/systemd/system/sneaky.service:
    text: x
`
	_, rep, err := config.Parse("s.yaml", dir, []byte(raw), Kind)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	want := map[string]int{ // path -> line
		`$.units["hello.daemon"]`:                       7,
		`$.units["both.service"]`:                       9,
		`$.units["empty.service"]`:                      11,
		`$.units["ssh.service"].dropins.port`:           14,
		`$.files["etc/relative.conf"]`:                  17,
		`$.files["/usr/bin/evil"]`:                      19,
		`$.files["/etc/bad-mode"].mode`:                 22,
		`$.files["/etc/bad-conflict"].onConflict`:       25,
		`$.files["/etc/fetched"]`:                       27,
		`$.files["/etc/two-sources"]`:                   29,
		`$.files["/etc/systemd/system/sneaky.service"]`: 36,
	}
	got := map[string]int{}
	for _, e := range rep.Errors() {
		got[e.Path] = e.Line
	}
	for p, line := range want {
		l, ok := got[p]
		if !ok {
			t.Errorf("no error at %s; report:\n%s", p, rep.String())
			continue
		}
		if l != line {
			t.Errorf("error at %s on line %d, want %d", p, l, line)
		}
	}
	for p := range got {
		if strings.Contains(p, "ok.conf") || strings.Contains(p, `"hello.service"`) {
			t.Errorf("valid entry %s reported: %s", p, rep.String())
		}
	}
}

func TestValidateAcceptsIssueExample(t *testing.T) {
	raw := `apiVersion: nivis/v1alpha1
kind: Services
units:
  hello.service:
    text: |
      [Service]
      ExecStart=/usr/bin/python3 -m http.server 8080
      [Install]
      WantedBy=multi-user.target
    dropins: {}
    mask: false
files:
  /etc/hello/config.ini:
    text: "..."
    mode: "0644"
    user: root
    group: root
    onConflict: fail
`
	_, rep, err := config.Parse("s.yaml", t.TempDir(), []byte(raw), Kind)
	if err != nil || len(rep.Entries) != 0 {
		t.Fatalf("issue example rejected: %v\n%s", err, rep.String())
	}
}

func TestCompileUnitHashCoversDropinsAndTriggers(t *testing.T) {
	base := func(dropin, cfg string) *Services {
		return &Services{
			Units: map[string]*Unit{"a.service": {Text: "[Service]\nExecStart=/bin/a\n[Install]\nWantedBy=multi-user.target\n", Dropins: map[string]string{"x.conf": dropin}, RestartTriggers: []string{"/etc/a.conf"}}},
			Files: map[string]*File{"/etc/a.conf": {Text: cfg}},
		}
	}
	hash := func(s *Services) string {
		c, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		return c.Gen.Units[0].Hash
	}
	h0 := hash(base("1", "c"))
	if hash(base("1", "c")) != h0 {
		t.Fatal("hash not deterministic")
	}
	if hash(base("2", "c")) == h0 {
		t.Error("drop-in change does not change the unit hash")
	}
	if hash(base("1", "d")) == h0 {
		t.Error("restart trigger change does not change the unit hash")
	}
	c, _ := Compile(base("1", "c"))
	if got := c.Gen.EntryMap()["/etc/systemd/system/multi-user.target.wants/a.service"]; got == nil || got.Target != "/etc/systemd/system/a.service" {
		t.Errorf("install link missing or wrong: %+v", got)
	}
}

func TestSelectHosts(t *testing.T) {
	hosts := []InventoryHost{{Name: "web1", Tags: []string{"web"}}, {Name: "web2", Tags: []string{"web", "eu"}}, {Name: "db1", Tags: []string{"db"}}}
	names := func(hs []InventoryHost) string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return strings.Join(out, ",")
	}
	for on, want := range map[string]string{"": "web1,web2,db1", "@web": "web1,web2", "db1,@eu": "web2,db1", "web*": "web1,web2"} {
		got, err := SelectHosts(hosts, on)
		if err != nil || names(got) != want {
			t.Errorf("--on %q: got %s (%v), want %s", on, names(got), err, want)
		}
	}
	if _, err := SelectHosts(hosts, "web1,typo"); err == nil {
		t.Error("a term matching nothing was accepted")
	}
}
