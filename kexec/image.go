package kexec

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// KernelCandidates are where a release's kernel image usually is.
func KernelCandidates(release string) []string {
	return []string{
		"/boot/vmlinuz-" + release,
		"/boot/vmlinux-" + release,
		"/boot/Image-" + release,
		filepath.Join("/lib/modules", release, "vmlinuz"),
		filepath.Join("/usr/lib/modules", release, "vmlinuz"),
		"/boot/vmlinuz",
		"/vmlinuz",
	}
}

// FindKernel returns the first readable kernel image for release.
func FindKernel(release string) (string, error) {
	var tried []string
	for _, p := range KernelCandidates(release) {
		f, err := os.Open(p)
		if err != nil {
			tried = append(tried, p)
			continue
		}
		f.Close()
		return p, nil
	}
	return "", fmt.Errorf("no readable kernel image for %s (tried %s): install the kernel package's image or pass --kernel", release, strings.Join(tried, ", "))
}

// unpackKernel returns a kernel image the kernel's kexec loaders accept.
// arm64 distributions ship Image.gz or an EFI "zboot" image (a PE file
// whose payload is the compressed Image); kexec_file_load wants the plain
// Image, as kexec-tools does it. Other images are returned as they are
// (ok=false).
func unpackKernel(path, dir string) (out string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	var r io.Reader
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", false, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	case len(head) >= 56 && string(head[0:2]) == "MZ" && string(head[4:8]) == "zimg":
		off := int64(binary.LittleEndian.Uint32(head[8:12]))
		size := int64(binary.LittleEndian.Uint32(head[12:16]))
		comp := string(bytes.TrimRight(head[24:56], "\x00"))
		if i := bytes.IndexByte([]byte(comp), 0); i >= 0 {
			comp = comp[:i]
		}
		payload := io.NewSectionReader(f, off, size)
		r, err = decompressKernel(comp, payload)
		if err != nil {
			return "", false, fmt.Errorf("%s: EFI zboot payload: %w", path, err)
		}
	default:
		return path, false, nil
	}
	out = filepath.Join(dir, "Image")
	w, err := os.Create(out)
	if err != nil {
		return "", false, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return "", false, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return out, true, w.Close()
}

func decompressKernel(comp string, r io.Reader) (io.Reader, error) {
	switch comp {
	case "gzip":
		return gzip.NewReader(r)
	case "zstd", "zstd22":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "xzkern", "xz":
		return xz.NewReader(r)
	case "lzma":
		return lzma.NewReader(r)
	}
	return nil, fmt.Errorf("compression %q not supported by nivis: pass --kernel with an uncompressed Image", comp)
}
