//go:build linux

package rescue

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// fakeModules writes every module of the test index, compressed as its
// name says, holding "MODULE <name>" so the fake init_module can tell
// which one it got.
func fakeModules(t *testing.T, ix *ModuleIndex) string {
	t.Helper()
	dir := t.TempDir()
	for name, rel := range ix.paths {
		content := []byte("MODULE " + name)
		var buf bytes.Buffer
		switch {
		case strings.HasSuffix(rel, ".xz"):
			w, err := xz.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(content)
			w.Close()
		case strings.HasSuffix(rel, ".zst"):
			w, _ := zstd.NewWriter(&buf)
			w.Write(content)
			w.Close()
		case strings.HasSuffix(rel, ".gz"):
			w := gzip.NewWriter(&buf)
			w.Write(content)
			w.Close()
		default:
			buf.Write(content)
		}
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeModalias(t *testing.T, root, dev, alias string) {
	t.Helper()
	p := filepath.Join(root, dev)
	os.MkdirAll(p, 0o755)
	if err := os.WriteFile(filepath.Join(p, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
}

func TestColdplug(t *testing.T) {
	ix := testIndex(t)
	modDir := fakeModules(t, ix)
	sys := t.TempDir()
	sysModule := filepath.Join(sys, "module")
	devices := filepath.Join(sys, "devices")
	os.MkdirAll(sysModule, 0o755)
	// Before any module: the PCI functions of a virtio NIC and an e1000,
	// the CPU, and an ACPI button whose module is not carried.
	writeModalias(t, devices, "pci0000:00/0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	writeModalias(t, devices, "pci0000:00/0000:00:04.0", "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00")
	writeModalias(t, devices, "pci0000:00/0000:00:05.0", "pci:v00008086d0000100Esv00008086sd00001100bc02sc00i00")
	writeModalias(t, devices, "system/cpu/cpu0", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0099")
	writeModalias(t, devices, "LNXSYSTM:00/PNP0C0C:00", "acpi:PNP0C0C:")
	os.Remove(filepath.Join(modDir, ix.Path("button")))

	l := newModuleLoader(modDir, ix, "BOOT_IMAGE=/vmlinuz quiet virtio_net.napi-tx=0 e1000.debug modprobe.blacklist=aesni-intel")
	l.sysModule = sysModule
	var calls []string
	l.initModule = func(image []byte, params string) error {
		name := strings.TrimPrefix(string(image), "MODULE ")
		calls = append(calls, strings.TrimSpace(name+" "+params))
		os.MkdirAll(filepath.Join(sysModule, name), 0o755)
		if name == "virtio_pci" {
			// The bus driver finds its devices: new modaliases appear.
			writeModalias(t, devices, "pci0000:00/0000:00:03.0/virtio0", "virtio:d00000001v00001AF4")
			writeModalias(t, devices, "pci0000:00/0000:00:04.0/virtio1", "virtio:d00000004v00001AF4")
		}
		if name == "e1000" {
			return unix.ENODEV
		}
		return nil
	}
	res := l.Coldplug(context.Background(), devices, 4, time.Millisecond)
	want := []string{
		"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"e1000 debug",
		"failover", "net_failover", "virtio_net napi_tx=0",
		"rng_core", "virtio_rng",
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("init_module calls:\n%q\nwant\n%q", calls, want)
	}
	if !errors.Is(res.Failed["e1000"], unix.ENODEV) {
		t.Errorf("e1000: %v", res.Failed["e1000"])
	}
	if err := res.Failed["button"]; !errors.Is(err, os.ErrNotExist) {
		t.Errorf("button (not carried): %v", err)
	}
	if err := res.Failed["aesni_intel"]; err == nil || !strings.Contains(err.Error(), "blacklisted") {
		t.Errorf("aesni_intel (blacklisted): %v", err)
	}
	if strings.Join(res.Loaded, " ") != "virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net rng_core virtio_rng" {
		t.Errorf("loaded: %v", res.Loaded)
	}

	// Early modules go through the same loader; a loaded one is a no-op.
	calls = nil
	if got, err := l.Load("virtio-rng"); err != nil || len(got) != 0 || len(calls) != 0 {
		t.Errorf("Load(virtio-rng) again: %v %v %v", got, err, calls)
	}
	if got, err := l.Load("ext4"); err != nil || strings.Join(got, " ") != "crc16 mbcache jbd2 ext4" {
		t.Errorf("Load(ext4): %v %v", got, err)
	}
}

func TestWaitForMACs(t *testing.T) {
	classNet := t.TempDir()
	add := func(name, mac string) {
		os.MkdirAll(filepath.Join(classNet, name), 0o755)
		os.WriteFile(filepath.Join(classNet, name, "address"), []byte(mac+"\n"), 0o444)
	}
	add("lo", "00:00:00:00:00:00")
	polls := 0
	missing := waitForMACs(context.Background(), classNet, []string{"52:54:00:AA:BB:CC"}, 5*time.Second, func() {
		polls++
		if polls == 2 {
			add("eth0", "52:54:00:aa:bb:cc")
		}
	})
	if len(missing) != 0 || polls != 2 {
		t.Errorf("missing %v after %d polls", missing, polls)
	}
	start := time.Now()
	missing = waitForMACs(context.Background(), classNet, []string{"52:54:00:00:00:01"}, 300*time.Millisecond, nil)
	if len(missing) != 1 || time.Since(start) > 2*time.Second {
		t.Errorf("missing %v after %s", missing, time.Since(start))
	}
}
