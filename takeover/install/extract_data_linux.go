//go:build linux

// Writing file contents: plain copies, and sparse files with their holes.

package install

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// copyTo writes r to fd through the extractor's buffer, with plain write
// calls (an os.File per entry costs extra syscalls).
func (x *extractor) copyTo(fd int, r io.Reader) (int64, error) {
	var n int64
	for {
		m, err := r.Read(x.buf)
		if m > 0 {
			if werr := writeAll(fd, x.buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		p = p[n:]
	}
	return nil
}

// copySparse writes r into fd, seeking over all-zero 4 KiB blocks so the
// holes of a sparse archive member stay holes, then sets the size.
func (x *extractor) copySparse(fd int, r io.Reader) (int64, error) {
	var off int64
	for {
		m, err := io.ReadFull(r, x.buf)
		if m > 0 {
			if werr := writeNonZero(fd, x.buf[:m], off); werr != nil {
				return off, werr
			}
			off += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, unix.Ftruncate(fd, off)
}

var zeroBlock [4096]byte

// writeNonZero writes the runs of p that are not all-zero 4 KiB blocks at
// off, one write per run.
func writeNonZero(fd int, p []byte, off int64) error {
	const blk = len(zeroBlock)
	run := -1
	for i := 0; i < len(p); i += blk {
		end := min(i+blk, len(p))
		if bytes.Equal(p[i:end], zeroBlock[:end-i]) {
			if run >= 0 {
				if err := pwriteAll(fd, p[run:i], off+int64(run)); err != nil {
					return err
				}
				run = -1
			}
			continue
		}
		if run < 0 {
			run = i
		}
	}
	if run >= 0 {
		return pwriteAll(fd, p[run:], off+int64(run))
	}
	return nil
}
