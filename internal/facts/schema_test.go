package facts

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.golden")

// TestSchemaStable pins every JSON field path of Facts: scripts read this
// JSON, so a rename or removal must be a deliberate change of the golden
// file (go test ./internal/facts -run Schema -update), never an accident.
func TestSchemaStable(t *testing.T) {
	var paths []string
	jsonPaths(reflect.TypeOf(Facts{}), "", &paths)
	sort.Strings(paths)
	got := strings.Join(paths, "\n") + "\n"
	if *update {
		if err := os.WriteFile("testdata/schema.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/schema.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Facts JSON schema changed; if on purpose (adding fields only), run with -update.\n got:\n%s\nwant:\n%s", got, want)
	}
	for _, p := range paths {
		last := p[strings.LastIndex(p, ".")+1:]
		last = strings.TrimSuffix(last, "[]")
		if last != strings.ToLower(last) || strings.Contains(last, "-") {
			t.Errorf("field %s is not snake_case", p)
		}
	}
}

func jsonPaths(ty reflect.Type, prefix string, out *[]string) {
	for ty.Kind() == reflect.Pointer {
		ty = ty.Elem()
	}
	if ty.Kind() != reflect.Struct || ty == reflect.TypeOf(time.Time{}) {
		return
	}
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			jsonPaths(f.Type, prefix, out) // embedded: fields flatten
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.Slice:
			*out = append(*out, p+"[]")
			jsonPaths(ft.Elem(), p+"[].", out)
		case reflect.Map:
			*out = append(*out, p+"{}")
		default:
			*out = append(*out, p)
			jsonPaths(ft, p+".", out)
		}
	}
}

// TestWriteTable renders a hand-made Facts and checks each section shows
// what a person looks for first.
func TestWriteTable(t *testing.T) {
	yes, no := true, false
	f := &Facts{
		Hostname: "web1", BootID: "b-1", Arch: "amd64", Machine: "x86_64", CPUs: 4,
		OS:     OSRelease{ID: "debian", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Kernel: Kernel{Release: "6.1.0-18-amd64", Image: "/boot/vmlinuz-6.1.0-18-amd64", ImageReadable: true, ConfigSource: "/boot/config-6.1.0-18-amd64"},
		Boot:   Boot{Firmware: "uefi", SecureBoot: "enabled", Lockdown: "integrity"},
		Kexec:  Kexec{LoadDisabled: &no, KexecLoad: &yes, KexecFileLoad: &yes, InitrdCompressions: []string{"gzip", "zstd"}},
		Memory: Memory{TotalBytes: 2 << 30, AvailableBytes: 1 << 30},
		Init:   Init{Name: "systemd", SystemdVersion: "252.22-1~deb12u1"},
		Disks: []Disk{{
			Name: "sda", Path: "/dev/sda", Kind: "disk", SizeBytes: 20 << 30, Model: "QEMU HARDDISK", Serial: "QM0001",
			ByID:       []string{"/dev/disk/by-id/ata-QEMU_HARDDISK_QM0001"},
			Usage:      Usage{HoldsRoot: true},
			Partitions: []Partition{{Name: "sda1", Path: "/dev/sda1", Number: 1, SizeBytes: 20 << 30, Usage: Usage{HoldsRoot: true, Mounts: []Mount{{Mountpoint: "/", FSType: "ext4"}}}}},
		}},
		Network: Network{
			Interfaces: []Interface{{Name: "ens3", MAC: "52:54:00:12:34:56", MTU: 1500, Kind: "device", OperState: "up",
				Addresses: []Address{{CIDR: "203.0.113.7/24", Family: 4, Scope: "global", Dynamic: true, ValidLifetime: 86000}}}},
			Routes: []Route{{Family: 4, Dst: "default", Default: true, Gateway: "203.0.113.1", Dev: "ens3", OnLink: true}},
			DNS:    DNS{Nameservers: []string{"203.0.113.53"}},
		},
		SSH:      SSH{Ports: []int{2222}, ConfigPorts: []int{2222}, HostKeys: []HostKey{{Type: "ssh-ed25519", Fingerprint: "SHA256:abc"}}},
		Warnings: []string{"read /x: permission denied"},
	}
	var b bytes.Buffer
	if err := f.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"System\n", "Boot/kexec\n", "Memory\n", "Disks\n", "Network\n", "SSH\n", "Warnings\n",
		"Debian GNU/Linux 12 (bookworm)", "systemd 252.22-1~deb12u1", "secure boot", "enabled", "integrity",
		"/boot/vmlinuz-6.1.0-18-amd64 (readable)", "gzip, zstd", "2.0 GiB", "/dev/sda", "20.0 GiB", "holds /, / (ext4)",
		"/dev/disk/by-id/ata-QEMU_HARDDISK_QM0001", "203.0.113.7/24 (global, dynamic, valid 86000s)",
		"default via 203.0.113.1 dev ens3 onlink", "2222", "SHA256:abc ssh-ed25519", "permission denied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if err := f.WriteTable(failingWriter{}); err == nil {
		t.Error("write error not returned")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536 << 20: "1.5 GiB", 256 << 30: "256.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
