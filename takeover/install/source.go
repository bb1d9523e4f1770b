package install

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nivis/nivis/internal/exitcode"
)

// Compression is how a source stream is compressed, found by magic bytes.
type Compression string

// Compressions nivis reads.
const (
	CompressionNone  Compression = "none"
	CompressionGzip  Compression = "gzip"
	CompressionZstd  Compression = "zstd"
	CompressionXz    Compression = "xz"
	CompressionBzip2 Compression = "bzip2"
)

// Kind is what a decompressed source holds.
type Kind string

// Kinds of source. KindImage is an OCI layout or `docker save` archive as one
// tar stream; a client with the file at hand sends its layers one by one
// instead (see OpenImage).
const (
	KindTar   Kind = "tar"
	KindImage Kind = "oci"
	KindRaw   Kind = "raw"
)

// Formats accepted in the config's system.format.
const (
	FormatAuto = "auto"
	FormatTar  = "tar"
	FormatOCI  = "oci"
	FormatRaw  = "raw"
)

// ZstdMaxWindow bounds the decoder's history: enough for `zstd --long=27`
// (the default of --long), small enough for a 512 MiB host.
const ZstdMaxWindow = 128 << 20

// Source is an opened, decompressed source stream.
type Source struct {
	Compression Compression
	Kind        Kind
	// Reader yields the decompressed bytes.
	io.Reader
	close func()
}

// Close releases the decompressor (not the underlying reader).
func (s *Source) Close() error {
	if s.close != nil {
		s.close()
	}
	return nil
}

// DetectCompression names the compression whose magic starts b.
func DetectCompression(b []byte) Compression {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return CompressionGzip
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return CompressionXz
	case len(b) >= 4 && bytes.HasPrefix(b, []byte("BZh")) && b[3] >= '1' && b[3] <= '9':
		return CompressionBzip2
	}
	return CompressionNone
}

// DetectKind tells a tar (and whether it is an image archive) from a raw disk
// image by the first bytes of the decompressed stream (up to 32 KiB of them:
// enough to look past a leading "./" entry).
func DetectKind(b []byte) (Kind, error) {
	if bytes.HasPrefix(b, []byte("QFI\xfb")) {
		return "", fmt.Errorf("the source is a qcow2 image: convert it with `qemu-img convert -O raw` first")
	}
	if isTarHeader(b) {
		if isImageMember(firstMember(b)) {
			return KindImage, nil
		}
		return KindTar, nil
	}
	if len(b) >= 520 && string(b[512:520]) == "EFI PART" {
		return KindRaw, nil
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa {
		return KindRaw, nil
	}
	return "", fmt.Errorf("the source is neither a tar archive nor a disk image (first bytes %q); set system.format", printable(b, 16))
}

func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// isTarHeader checks the ustar magic or, for old v7 archives, the checksum.
func isTarHeader(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if string(b[257:262]) == "ustar" {
		return true
	}
	// v7: the checksum field must match the header's byte sum.
	var sum int64
	for i := 0; i < 512; i++ {
		if i >= 148 && i < 156 {
			sum += ' '
			continue
		}
		sum += int64(b[i])
	}
	field := strings.Trim(string(b[148:156]), " \x00")
	var want int64
	if _, err := fmt.Sscanf(field, "%o", &want); err != nil {
		return false
	}
	return want == sum && b[0] != 0
}

// firstMember returns the name of the first real member in the headers
// found in b, past "./" and extended headers (`tar -C dir .` starts with
// "./").
func firstMember(b []byte) string {
	for off := 0; off+512 <= len(b); {
		h := b[off : off+512]
		if !isTarHeader(h) {
			return ""
		}
		var size int64
		fmt.Sscanf(strings.Trim(string(h[124:136]), " \x00"), "%o", &size)
		off += 512 + int((size+511)/512*512)
		switch h[156] {
		case 'x', 'g', 'L', 'K':
			continue
		}
		name := tarName(h)
		if n := strings.TrimPrefix(name, "./"); n == "" || n == "." {
			continue
		}
		return name
	}
	return ""
}

func tarName(b []byte) string {
	name := string(b[0:100])
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if string(b[257:262]) == "ustar" {
		prefix := string(b[345:500])
		if i := strings.IndexByte(prefix, 0); i >= 0 {
			prefix = prefix[:i]
		}
		if prefix != "" {
			name = prefix + "/" + name
		}
	}
	return name
}

// isImageMember recognises the first member of an OCI layout or docker-save
// tar: what a rootfs never starts with.
func isImageMember(name string) bool {
	name = strings.TrimPrefix(name, "./")
	switch {
	case name == "oci-layout", name == "index.json", name == "manifest.json", name == "repositories":
		return true
	case strings.HasPrefix(name, "blobs/"), name == "blobs":
		return true
	}
	// Legacy docker save: "<64 hex>/" or "<64 hex>.json".
	base := strings.TrimSuffix(strings.TrimSuffix(name, "/"), ".json")
	if i := strings.IndexByte(base, '/'); i >= 0 {
		base = base[:i]
	}
	return len(base) == 64 && strings.Trim(base, "0123456789abcdef") == ""
}

// OpenSource wraps r in the decompressor its magic calls for and decides what
// it holds. format is the config's system.format: auto detects the kind too;
// tar, oci and raw force it (compression is always detected).
func OpenSource(r io.Reader, format string) (*Source, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(8)
	s := &Source{Compression: DetectCompression(head)}
	var dr io.Reader
	switch s.Compression {
	case CompressionNone:
		dr = br
	case CompressionGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("gzip source: %w", err))
		}
		dr, s.close = zr, func() { _ = zr.Close() }
	case CompressionZstd:
		zr, err := NewZstdReader(br)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("zstd source: %w", err))
		}
		dr, s.close = zr, zr.Close
	case CompressionXz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("xz source: %w", err))
		}
		dr = zr
	case CompressionBzip2:
		dr = bzip2.NewReader(br)
	}
	// Peek through the decompressor for the kind.
	kbr := bufio.NewReaderSize(dr, 64<<10)
	s.Reader = kbr
	switch format {
	case "", FormatAuto:
		head, err := kbr.Peek(32 << 10)
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			s.Close()
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("reading the source (%s): %w", s.Compression, err))
		}
		k, err := DetectKind(head)
		if err != nil {
			s.Close()
			return nil, exitcode.Wrap(exitcode.Usage, err)
		}
		s.Kind = k
	case FormatTar:
		s.Kind = KindTar
	case FormatOCI:
		s.Kind = KindImage
	case FormatRaw:
		s.Kind = KindRaw
	default:
		s.Close()
		return nil, exitcode.Errorf(exitcode.Usage, "unknown source format %q: use auto, tar, oci or raw", format)
	}
	return s, nil
}

// NewZstdReader is the decoder the agent uses: bounded memory (low-memory
// mode, a capped window) and at most two decoding goroutines, since a small
// rescue host has one or two CPUs.
func NewZstdReader(r io.Reader) (*zstd.Decoder, error) {
	n := runtime.NumCPU()
	if n > 2 {
		n = 2
	}
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(n),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(ZstdMaxWindow))
}
