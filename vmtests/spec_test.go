//go:build linux

package vmtests

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestImageKey(t *testing.T) {
	a := DefaultSpec()
	b := DefaultSpec()
	b.Packages = append([]string{"sudo", "curl"}, b.Packages...) // reordered and repeated
	b.Mirror = "http://example.org/debian"
	if a.imageKey("k") != b.imageKey("k") || a.debsKey() != b.debsKey() {
		t.Error("package order, duplicates or the mirror changed the key")
	}
	c := DefaultSpec()
	c.Hostname = "other"
	if a.imageKey("k") == c.imageKey("k") {
		t.Error("hostname does not change the image key")
	}
	if a.debsKey() != c.debsKey() {
		t.Error("hostname changed the package tarball key")
	}
	if a.imageKey("k") == a.imageKey("k2") {
		t.Error("the authorized key does not change the image key")
	}
	d := DefaultSpec()
	d.Packages = append(d.Packages, "gdisk")
	if a.debsKey() == d.debsKey() {
		t.Error("an extra package does not change the tarball key")
	}
}

func TestUUIDFrom(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	u := uuidFrom("abc")
	if !re.MatchString(u) || u != uuidFrom("abc") || u == uuidFrom("abd") {
		t.Errorf("uuidFrom: %q not a stable version-4 UUID", u)
	}
}

func TestMirrorFrom(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"deb822.sources": "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n",
		"oneline.list":   "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n",
		"other.list":     "deb https://packages.cloud.google.com/apt cloud-sdk main\n",
	}
	want := map[string]string{
		"deb822.sources": "http://mirror.example/debian",
		"oneline.list":   "https://m.example/debian",
		"other.list":     "",
	}
	for name, body := range cases {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := mirrorFrom(p); got != want[name] {
			t.Errorf("%s: mirror %q, want %q", name, got, want[name])
		}
	}
}

func TestRequireSkipsWithoutOptIn(t *testing.T) {
	if os.Getenv("NIVIS_VMTESTS") == "1" {
		t.Skip("NIVIS_VMTESTS=1: the gate is open")
	}
	skipped := false
	t.Run("gate", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Require(t)
	})
	if !skipped {
		t.Error("Require did not skip without NIVIS_VMTESTS=1")
	}
}
