package disko

import (
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/config"
)

func parseString(t *testing.T, s string) (*Layout, config.Report) {
	t.Helper()
	l, r := ParseBytes([]byte(s))
	if l != nil {
		l.Validate(&r, nil, Mode{Destroy: true, Format: true, Mount: true})
	}
	r.Sort()
	return l, r
}

// wantEntry asserts that r has an entry of sev at path (and line, when
// line > 0) whose message contains msg.
func wantEntry(t *testing.T, r config.Report, sev config.Severity, path string, line int, msg string) {
	t.Helper()
	for _, e := range r.Entries {
		if e.Severity == sev && e.Path == path && strings.Contains(e.Message, msg) && (line == 0 || e.Line == line) {
			return
		}
	}
	t.Errorf("no %s at %s (line %d) containing %q; report:\n%s", sev, path, line, msg, r.String())
}

func TestParseDefaultsLikeDisko(t *testing.T) {
	l, r := parseString(t, `{"disk": {"my/disk": {"device": "/dev/sda", "content": {"type": "gpt", "partitions": {
		"ESP": {"size": "512M", "type": "EF00", "content": {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"}},
		"boot": {"size": "1M", "type": "EF02"},
		"swap": {"size": "1G", "content": {"type": "swap"}},
		"root": {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}},
		"a-very-long-partition-name-that-overflows": {"size": "1M"}}}}}}`)
	if r.HasErrors() {
		t.Fatal(r.String())
	}
	d := l.Disks["my/disk"]
	if d.Name != "my_disk" || !d.Destroy {
		t.Errorf("disk name %q destroy %v; want my_disk true", d.Name, d.Destroy)
	}
	g := d.Content.(*GPT)
	var order []string
	for _, p := range g.Sorted {
		order = append(order, p.Key)
	}
	// EF02 first (priority 100), then 1000s by name, then 100% (9001).
	if got := strings.Join(order, " "); got != "boot ESP a-very-long-partition-name-that-overflows swap root" {
		t.Errorf("creation order %q", got)
	}
	p := g.Partitions
	if p["ESP"].Label != "disk-my_disk-ESP" || p["ESP"].Device != "/dev/disk/by-partlabel/disk-my_disk-ESP" || p["ESP"].Index != 2 {
		t.Errorf("ESP: label %q device %q index %d", p["ESP"].Label, p["ESP"].Device, p["ESP"].Index)
	}
	if p["swap"].Type != "8200" || p["root"].Type != "8300" || p["root"].End != "-0" || p["swap"].End != "+1G" || p["boot"].Priority != 100 || p["root"].Priority != 9001 {
		t.Errorf("defaults: swap type %s, root type %s end %s, swap end %s, priorities %d %d", p["swap"].Type, p["root"].Type, p["root"].End, p["swap"].End, p["boot"].Priority, p["root"].Priority)
	}
	// Labels over 36 characters become a sha256 prefix, like disko.
	if lb := p["a-very-long-partition-name-that-overflows"].Label; len(lb) != 36 || strings.Contains(lb, "disk-") {
		t.Errorf("long label %q: want 36 hex characters", lb)
	}
	if p["ESP"].MountOptionsOf() != "defaults" {
		t.Errorf("mountOptions default %q", p["ESP"].MountOptionsOf())
	}
}

// MountOptionsOf is a test helper: the joined mount options of a
// partition's filesystem.
func (p *Partition) MountOptionsOf() string {
	if f, ok := p.Content.(*Filesystem); ok {
		return strings.Join(f.MountOptions, ",")
	}
	return ""
}

func TestEvaluatedJSONInternalsAreSilent(t *testing.T) {
	// nix eval prints every option, internal ones included.
	_, r := parseString(t, `{"disk": {"main": {"_type": "disk", "_meta": {}, "type": "disk", "device": "/dev/vda", "destroy": true,
	  "imageName": "main", "imageSize": "2G", "name": "main", "preCreateHook": "", "postCreateHook": "", "preMountHook": "",
	  "postMountHook": "", "preUnmountHook": "", "postUnmountHook": "", "_create": "...", "_mount": {"dev": ""},
	  "content": {"type": "gpt", "device": "/dev/vda", "efiGptPartitionFirst": true, "_parent": {"name": "main"},
	    "partitions": {"root": {"_index": 1, "alignment": 0, "attributes": [], "device": "/dev/disk/by-partlabel/disk-main-root",
	      "end": "-0", "hybrid": null, "label": "disk-main-root", "name": "root", "priority": 9001, "size": "100%", "start": "0",
	      "type": "8300", "uuid": null,
	      "content": {"type": "filesystem", "device": "/dev/disk/by-partlabel/disk-main-root", "extraArgs": [], "format": "ext4",
	        "mountOptions": ["defaults"], "mountpoint": "/", "postMountHook": "", "_parent": {}}}}}}},
	  "lvm_vg": {}, "mdadm": {}, "nodev": {}, "zpool": {}, "bcachefs_filesystems": {}}`)
	if len(r.Entries) != 0 {
		t.Errorf("evaluated JSON gave entries:\n%s", r.String())
	}
}

func TestBadLayoutsAreReportedWithPathsAndLines(t *testing.T) {
	_, r := parseString(t, `apiVersion: nivis/v1alpha1
kind: Disko
disko:
  disk:
    main:
      device: /dev/vdb
      colour: blue
      content:
        type: gpt
        partitions:
          a:
            size: 10X
            type: ZZ00
          b:
            size: 100%
          c:
            size: 100%
            content:
              type: filesystem
              format: ext4
              mountpoint: /
          d:
            size: 1G
            content:
              type: filesystem
              format: ext4
              mountpoint: /
          e:
            size: 1G
            content:
              type: lvm_pv
              vg: nosuch
          f:
            size: 1G
            content:
              type: raid
  lvm_vg:
    lonely:
      type: lvm_vg
      lvs:
        x:
          size: 10Q
`)
	wantEntry(t, r, config.SevWarning, "$.disko.disk.main.colour", 7, `unknown key "colour"`)
	for _, e := range r.Entries {
		if strings.HasSuffix(e.Path, ".end") {
			t.Errorf("a bad size is reported again as a bad end: %s", e)
		}
	}
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.a.size", 12, `size "10X"`)
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.a.type", 13, `unknown partition type "ZZ00"`)
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.c.size", 17, `two partitions take "100%"`)
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.c.content.mountpoint", 21, "mountpoint / is also used by $.disko.disk.main.content.partitions.d")
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.e.content.vg", 32, `volume group "nosuch" does not exist`)
	wantEntry(t, r, config.SevError, "$.disko.disk.main.content.partitions.f.content.type", 36, `unknown content type "raid"`)
	wantEntry(t, r, config.SevError, "$.disko.lvm_vg.lonely", 39, "has no physical volumes")
	wantEntry(t, r, config.SevError, "$.disko.lvm_vg.lonely.lvs.x.size", 42, `size "10Q"`)
}

func TestCyclesAndMissingMembers(t *testing.T) {
	_, r := parseString(t, `{
  "mdadm": {
    "a": {"content": {"type": "gpt", "partitions": {"p": {"size": "100%", "content": {"type": "mdraid", "name": "b"}}}}},
    "b": {"content": {"type": "gpt", "partitions": {"p": {"size": "100%", "content": {"type": "mdraid", "name": "a"}}}}},
    "c": {"level": 1}
  }}`)
	wantEntry(t, r, config.SevError, "$", 0, "cycle: mdadm.a, mdadm.b")
	wantEntry(t, r, config.SevError, "$.mdadm.c", 0, `mdadm "c" has no members`)
}

func TestHostSupport(t *testing.T) {
	l, r := ParseBytes([]byte(`{"disk": {"main": {"device": "/dev/sda", "content": {"type": "gpt", "partitions": {
	  "root": {"size": "100%", "content": {"type": "zfs", "pool": "zroot"}},
	  "f": {"size": "1G", "content": {"type": "filesystem", "format": "f2fs", "mountpoint": "/f"}},
	  "b": {"size": "1G", "content": {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"}}}}}},
	  "zpool": {"zroot": {"type": "zpool"}}}`))
	host := &Host{
		HasTool:  func(n string) bool { return n != "zpool" && n != "zfs" && n != "mkfs.f2fs" },
		CanMount: func(fs string) bool { return fs != "vfat" },
	}
	l.Validate(&r, host, Mode{Format: true, Mount: true})
	wantEntry(t, r, config.SevError, "$.disk.main.content.partitions.root.content", 0, "not supported on this host: needs zpool")
	wantEntry(t, r, config.SevError, "$.disk.main.content.partitions.f.content", 0, "not supported on this host: needs mkfs.f2fs")
	wantEntry(t, r, config.SevError, "$.disk.main.content.partitions.b.content.format", 0, "the kernel cannot mount vfat")
	// Formatting only: mounting support does not matter.
	var r2 config.Report
	l.Validate(&r2, host, Mode{Format: true})
	for _, e := range r2.Entries {
		if strings.Contains(e.Message, "cannot mount") {
			t.Errorf("format-only run complains about mounting: %s", e)
		}
	}
}

func TestModes(t *testing.T) {
	for in, want := range map[string]string{
		"destroy,format,mount": "destroy,format,mount", "disko": "destroy,format,mount", "format,mount": "format,mount",
		"mount": "mount", "unmount": "unmount", "format": "format", "destroy": "destroy", "mount,format": "format,mount",
	} {
		m, err := ParseMode(in)
		if err != nil || m.String() != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, m, err, want)
		}
	}
	for _, bad := range []string{"", "wipe", "unmount,mount"} {
		if _, err := ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) accepted", bad)
		}
	}
}

func TestShellWords(t *testing.T) {
	got := splitArgs([]string{"--pbkdf argon2id", `--label "my disk"`, "-q"})
	want := []string{"--pbkdf", "argon2id", "--label", "my disk", "-q"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitArgs = %q, want %q", got, want)
	}
}

func TestUdevEscape(t *testing.T) {
	for in, want := range map[string]string{
		"Boot data partition":                 `Boot\x20data\x20partition`,
		"Even(crazier)par&titi^onName":        `Even\x28crazier\x29par\x26titi\x5eonName`,
		"all0these@char#acters+_are-allow.ed": "all0these@char#acters+_are-allow.ed",
	} {
		if got := hexEscapeUdev(in); !strings.EqualFold(got, want) {
			t.Errorf("hexEscapeUdev(%q) = %q, want %q", in, got, want)
		}
		if back := UnescapeUdev(hexEscapeUdev(in)); back != in {
			t.Errorf("unescape(escape(%q)) = %q", in, back)
		}
	}
}

func TestConfigKindDisko(t *testing.T) {
	_, rep, err := config.Parse("x.yaml", "/", []byte(`apiVersion: nivis/v1alpha1
kind: Disko
disko:
  disk:
    main:
      device: /dev/vdb
      content:
        type: gpt
        partitions:
          root:
            size: 100%
            content: {type: filesystem, format: ext4, mountpoint: /, mountOptions: [noatime]}
            sise: 3
`), "Disko")
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.String())
	}
	wantEntry(t, rep, config.SevWarning, "$.disko.disk.main.content.partitions.root.sise", 13, `unknown key "sise"`)
}
