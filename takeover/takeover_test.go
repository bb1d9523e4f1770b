package takeover

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/sirupsen/logrus"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/oplog"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestSequenceStopsAtFailureAndSkips(t *testing.T) {
	var ran []string
	ph := func(name string, err error) Phase {
		return Phase{Name: name, Run: func(context.Context) error { ran = append(ran, name); return err }}
	}
	boom := errors.New("boom")
	only, err := ParsePhases("disko, install,reboot", InstallPhases)
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	log := oplog.New(func(level, line string) { logged = append(logged, level+" "+line) })
	ts, err := Sequence(context.Background(), log, []Phase{ph("kexec", nil), ph("disko", nil), ph("install", boom), ph("reboot", nil)}, only)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "phase install") {
		t.Fatalf("err = %v, want phase install: boom", err)
	}
	if strings.Join(ran, ",") != "disko,install" {
		t.Errorf("ran %v, want disko,install", ran)
	}
	if len(ts) != 3 || !ts[0].Skipped || ts[2].Err != "boom" {
		t.Errorf("timings %+v", ts)
	}
	if len(logged) != 4 || logged[0] != "info [started] phase disko" || !strings.HasPrefix(logged[1], "info [finished] phase disko (") ||
		logged[3] != "error [failed] phase install: boom" {
		t.Errorf("operation log:\n%s", strings.Join(logged, "\n"))
	}
	sum := Summary(ts)
	for _, want := range []string{"kexec", "skipped", "install", "FAILED"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	if _, err := ParsePhases("kexec,fromat", InstallPhases); err == nil || !strings.Contains(err.Error(), `"fromat"`) {
		t.Errorf("a misspelt phase: %v", err)
	}
}

// hostConfig writes a Host config with the given system block next to
// the files in files and loads it.
func hostConfig(t *testing.T, system string, files map[string][]byte) (*HostConfig, config.Report, error) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `apiVersion: nivis/v1alpha1
kind: Host
hostname: web1
disko:
  disk:
    main:
      type: disk
      device: /dev/vdb
      content:
        type: gpt
        partitions:
          root: {size: 100%, content: {type: filesystem, format: ext4, mountpoint: /}}
` + system
	p := filepath.Join(dir, "host.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, rep, err := config.LoadKind(p, "Host")
	if err != nil {
		return nil, rep, err
	}
	return l.Obj.(*HostConfig), rep, nil
}

func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("{}"))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestFormatAutoIsDetected(t *testing.T) {
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(tarOf(t, "etc/os-release"))
	zw.Close()
	gpt := make([]byte, 64<<10)
	copy(gpt[512:], "EFI PART")
	for _, c := range []struct {
		name  string
		files map[string][]byte
		src   string
		want  string
	}{
		{"zstd tar", map[string][]byte{"rootfs.tar.zst": z.Bytes()}, "rootfs.tar.zst", "tar"},
		{"oci layout", map[string][]byte{"img/oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "img/index.json": []byte(`{}`)}, "img", "oci"},
		{"docker save", map[string][]byte{"img.tar": tarOf(t, "manifest.json")}, "img.tar", "oci"},
		{"raw disk", map[string][]byte{"disk.raw": gpt}, "disk.raw", "raw"},
	} {
		h, rep, err := hostConfig(t, "system:\n  source: "+c.src+"\n", c.files)
		if err != nil {
			t.Errorf("%s: %v\n%s", c.name, err, rep.String())
			continue
		}
		if h.System.Format != c.want {
			t.Errorf("%s: format auto resolved to %q, want %q", c.name, h.System.Format, c.want)
		}
	}
	// What is none of these is refused at validation, naming the path.
	_, rep, err := hostConfig(t, "system:\n  source: notes.txt\n", map[string][]byte{"notes.txt": []byte("hello, world\n")})
	if err == nil || !strings.Contains(rep.String(), "$.system.source") || !strings.Contains(rep.String(), "neither a tar archive nor a disk image") {
		t.Errorf("a text file as the system: %v\n%s", err, rep.String())
	}
	_, rep, err = hostConfig(t, "system:\n  source: emptydir/\n", map[string][]byte{"emptydir/x": nil})
	if err == nil || !strings.Contains(rep.String(), "oci-layout") {
		t.Errorf("a plain directory as the system: %v\n%s", err, rep.String())
	}
}
