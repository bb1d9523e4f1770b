package install

import (
	"archive/tar"
	"bytes"
	"io"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nivis/nivis/internal/exitcode"
)

// tarOf builds a small rootfs-like tar in memory.
func tarOf(t *testing.T, first string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range []string{first, "etc/hostname"} {
		body := []byte("content of " + n)
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return b.Bytes()
}

// dotTar is what `tar -C dir .` makes: a "./" directory, a PAX header,
// then name.
func dotTar(t *testing.T, name string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 2, PAXRecords: map[string]string{"comment": "force a PAX header"}, Format: tar.FormatPAX})
	tw.Write([]byte("{}"))
	tw.Close()
	return b.Bytes()
}

func compress(t *testing.T, c Compression, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch c {
	case CompressionNone:
		return data
	case CompressionGzip:
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
	case CompressionZstd:
		w, _ := zstd.NewWriter(&b)
		w.Write(data)
		w.Close()
	case CompressionXz:
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case CompressionBzip2:
		if _, err := exec.LookPath("bzip2"); err != nil {
			t.Skip("no bzip2 binary to make test data")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return b.Bytes()
}

func TestOpenSourceDetectsCompressionAndKind(t *testing.T) {
	rootfs := tarOf(t, "bin/sh")
	image := tarOf(t, "oci-layout")
	legacy := tarOf(t, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/layer.tar")
	dotImage := dotTar(t, "./index.json")
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xaa
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd, CompressionXz, CompressionBzip2} {
		for _, tc := range []struct {
			name string
			data []byte
			kind Kind
		}{{"rootfs", rootfs, KindTar}, {"oci", image, KindImage}, {"docker-save", legacy, KindImage}, {"dot-oci", dotImage, KindImage}, {"dot-rootfs", dotTar(t, "./etc/passwd"), KindTar}, {"raw", mbr, KindRaw}} {
			t.Run(string(c)+"/"+tc.name, func(t *testing.T) {
				s, err := OpenSource(bytes.NewReader(compress(t, c, tc.data)), FormatAuto)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if s.Compression != c || s.Kind != tc.kind {
					t.Fatalf("got %s/%s, want %s/%s", s.Compression, s.Kind, c, tc.kind)
				}
				got, err := io.ReadAll(s)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("decompressed %d bytes, want %d identical ones", len(got), len(tc.data))
				}
			})
		}
	}
}

func TestOpenSourceRefusesUnknown(t *testing.T) {
	for name, data := range map[string][]byte{
		"qcow2":   append([]byte("QFI\xfb"), make([]byte, 2000)...),
		"garbage": bytes.Repeat([]byte("hello world "), 200),
	} {
		_, err := OpenSource(bytes.NewReader(data), FormatAuto)
		if err == nil || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%s: got %v, want a usage error", name, err)
		}
	}
	if _, err := OpenSource(bytes.NewReader(nil), "zip"); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("unknown format: got %v", err)
	}
	// A forced format wins over detection.
	s, err := OpenSource(bytes.NewReader(bytes.Repeat([]byte{1}, 100)), FormatRaw)
	if err != nil || s.Kind != KindRaw {
		t.Fatalf("forced raw: %v %v", s, err)
	}
}

func TestWireStreamIsZstd(t *testing.T) {
	data := tarOf(t, "bin/sh")
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionXz, CompressionZstd} {
		rc, err := WireStream(bytes.NewReader(compress(t, c, data)), 0)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if DetectCompression(wire) != CompressionZstd {
			t.Fatalf("%s: wire is %s", c, DetectCompression(wire))
		}
		s, err := OpenSource(bytes.NewReader(wire), FormatAuto)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(s)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: round trip differs", c)
		}
	}
}
