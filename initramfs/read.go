package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cavaliergopher/cpio"
)

// PartInfo describes one archive found in an initrd by Walk.
type PartInfo struct {
	Offset      int64       `json:"offset"`
	Size        int64       `json:"size"`
	Compression Compression `json:"compression"`
	Files       int         `json:"files"`
}

// Walk reads an initrd made of concatenated, separately compressed cpio
// archives the way the kernel does (zero padding between them is
// skipped) and calls fn for every entry. It is the independent check of
// what Assemble wrote, and a way to inspect any initrd.
func Walk(initrd []byte, fn func(part int, h *cpio.Header, body io.Reader) error) ([]PartInfo, error) {
	var parts []PartInfo
	off := 0
	for off < len(initrd) {
		if initrd[off] == 0 {
			off++
			continue
		}
		c, ok := DetectCompression(initrd[off:])
		if !ok {
			return parts, fmt.Errorf("offset %d: unknown data %x", off, initrd[off:min(off+8, len(initrd))])
		}
		end, err := streamEnd(c, initrd[off:])
		if err != nil {
			return parts, fmt.Errorf("offset %d (%s): %w", off, c, err)
		}
		dr, done, err := decompressor(c, bytes.NewReader(initrd[off:off+end]))
		if err != nil {
			return parts, fmt.Errorf("offset %d (%s): %w", off, c, err)
		}
		info := PartInfo{Offset: int64(off), Size: int64(end), Compression: c}
		r := cpio.NewReader(dr)
		for {
			h, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				done()
				return parts, fmt.Errorf("part at offset %d: %w", off, err)
			}
			info.Files++
			if fn != nil {
				if err := fn(len(parts), h, r); err != nil {
					done()
					return parts, err
				}
			}
		}
		done()
		parts = append(parts, info)
		off += end
	}
	return parts, nil
}

// streamEnd returns the length of the compressed stream at the start of b.
func streamEnd(c Compression, b []byte) (int, error) {
	switch c {
	case Zstd:
		return zstdFrameLen(b)
	case Gzip:
		br := bytes.NewReader(b)
		dr, done, err := decompressor(Gzip, br)
		if err != nil {
			return 0, err
		}
		defer done()
		// bytes.Reader is an io.ByteReader, so flate reads no further
		// than the end of the stream.
		if _, err := io.Copy(io.Discard, dr); err != nil {
			return 0, err
		}
		return len(b) - br.Len(), nil
	case XZ:
		return xzStreamLen(b)
	case None:
		cr := &countingReader{r: bytes.NewReader(b)}
		r := cpio.NewReader(cr)
		for {
			_, err := r.Next()
			if err == io.EOF {
				// The reader stops before the padding after the trailer's
				// name; the archive is 4-byte aligned from its start.
				return int((cr.n + 3) &^ 3), nil
			}
			if err != nil {
				return 0, err
			}
		}
	}
	return 0, fmt.Errorf("unknown compression %q", c)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// zstdFrameLen walks a zstd frame's block headers (RFC 8878 section 3.1).
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0xFD2FB528 {
		return 0, errors.New("not a zstd frame")
	}
	fhd := b[4]
	p := 5
	single := fhd&0x20 != 0
	if !single {
		p++ // window descriptor
	}
	p += []int{0, 1, 2, 4}[fhd&3]
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	p += fcs
	for {
		if p+3 > len(b) {
			return 0, errors.New("truncated zstd frame")
		}
		h := uint32(b[p]) | uint32(b[p+1])<<8 | uint32(b[p+2])<<16
		p += 3
		last := h&1 != 0
		size := int(h >> 3)
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
			p += size
		case 1: // RLE: one byte repeated
			p++
		default:
			return 0, errors.New("reserved zstd block type")
		}
		if last {
			break
		}
	}
	if fhd&0x04 != 0 {
		p += 4 // content checksum
	}
	if p > len(b) {
		return 0, errors.New("truncated zstd frame")
	}
	return p, nil
}

// xzStreamLen finds the end of the first xz stream: the first 4-aligned
// stream footer ("YZ" magic) whose CRC32 checks out.
func xzStreamLen(b []byte) (int, error) {
	for end := 24; end <= len(b); end += 4 {
		if b[end-2] != 'Y' || b[end-1] != 'Z' {
			continue
		}
		footer := b[end-12 : end]
		if crc32.ChecksumIEEE(footer[4:10]) == binary.LittleEndian.Uint32(footer[0:4]) {
			return end, nil
		}
	}
	return 0, errors.New("no xz stream footer found")
}
