package rescue

import (
	"reflect"
	"strings"
	"testing"
)

func TestFnmatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"pci:v00008086d0000100[FG]sv*", "pci:v00008086d0000100Fsv0", true},
		{"pci:v00008086d0000100[!FG]sv*", "pci:v00008086d0000100Fsv0", false},
		{"pci:v00008086d0000100[!FG]sv*", "pci:v00008086d0000100Esv0", true},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*", "", true},
		{"a*", "a/b/c", true}, // '*' crosses slashes in fnmatch without FNM_PATHNAME
		{"*:feature:*0099*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0099,00E5", true},
		{"*:feature:*0099*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0098", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"a[", "a[", true},
		{"**x", "abx", true},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxc", false},
	}
	for _, c := range cases {
		if got := fnmatch(c.pattern, c.s); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func testIndex(t *testing.T) *ModuleIndex {
	t.Helper()
	ix, err := LoadModuleIndex("testdata/modules/6.1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestModuleIndexMatch(t *testing.T) {
	ix := testIndex(t)
	cases := map[string][]string{
		"virtio:d00000001v00001AF4":                             {"virtio_net"},
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00": {"virtio_pci"},
		"pci:v00008086d0000100Esv00008086sd00001100bc02sc00i00": {"e1000"},
		"acpi:PNP0C0C:": {"button"},
		"cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0099": {"aesni_intel"},
		"usb:v1D6Bp0002d0606dc09dsc00dp03ic09isc00ip00in00":     {},
	}
	for alias, want := range cases {
		got := ix.Match(alias)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Match(%q) = %v, want %v", alias, got, want)
		}
	}
}

func TestModuleIndexLoadOrder(t *testing.T) {
	ix := testIndex(t)
	cases := map[string][]string{
		"virtio_net": {"failover", "net_failover", "virtio_net"},
		"virtio-rng": {"rng_core", "virtio_rng"},
		// crc32c_generic is builtin (skipped), crc32c_intel is a missing softdep.
		"ext4":        {"crc16", "mbcache", "jbd2", "ext4"},
		"virtio_pci":  {"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"},
		"aesni_intel": {"cryptd", "aesni_intel"},
		"virtio_ring": nil, // builtin
	}
	for name, want := range cases {
		got, err := ix.LoadOrder(name)
		if err != nil {
			t.Errorf("LoadOrder(%s): %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LoadOrder(%s) = %v, want %v", name, got, want)
		}
	}
	if _, err := ix.LoadOrder("nonexistent"); err == nil || !strings.Contains(err.Error(), "not in modules.dep") {
		t.Errorf("LoadOrder(nonexistent) error = %v", err)
	}
	if p := ix.Path("e1000"); p != "kernel/drivers/net/ethernet/intel/e1000/e1000.ko.zst" {
		t.Errorf("Path(e1000) = %q", p)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko.xz": "virtio_rng",
		"e1000.ko.zst": "e1000",
		"ext4.ko":      "ext4",
		"button.ko.gz": "button",
		"tpm_rng":      "tpm_rng",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}
