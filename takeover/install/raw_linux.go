//go:build linux

package install

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	diskoapply "github.com/nivis/nivis/disko/apply"
	"github.com/nivis/nivis/internal/exitcode"
)

// rawBlock is the granularity of zero detection: large enough to keep the
// syscall count low, small enough to find the gaps in a filesystem image.
const rawBlock = 64 << 10

var zeroRaw [rawBlock]byte

// zeroMode is how a zero run reaches the device, degraded on EOPNOTSUPP.
type zeroMode int

const (
	zeroPunch zeroMode = iota // FALLOC_FL_PUNCH_HOLE: discard-backed, cheapest
	zeroRange                 // FALLOC_FL_ZERO_RANGE: the kernel writes zeroes
	zeroWrite                 // write zeroes ourselves
)

// WriteRaw writes a raw disk image from r to device (a block device, or a
// regular file for tests). All-zero blocks are zeroed on the device with
// fallocate instead of written, so a mostly empty image costs little. A
// block device is opened O_EXCL (refused while mounted); size, when known,
// is checked against the device before anything is written. The data is
// fsynced and the partition table re-read.
func WriteRaw(ctx context.Context, r io.Reader, device string, size int64, onProgress func(done int64)) (RawStats, error) {
	start := time.Now()
	st := RawStats{Device: device}
	var sb unix.Stat_t
	if err := unix.Stat(device, &sb); err != nil && strings.HasPrefix(device, "/dev/") {
		// /dev/disk/by-id/... where no udev made the link (the rescue
		// system): resolve it from sysfs as disko does.
		node, rerr := (&diskoapply.Resolver{}).Resolve(ctx, device)
		if rerr != nil {
			return st, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("raw image target %s: %w", device, rerr))
		}
		device = node
	}
	if err := unix.Stat(device, &sb); err != nil {
		return st, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("raw image target %s: %w", device, err))
	}
	isBlock := sb.Mode&unix.S_IFMT == unix.S_IFBLK
	flags := unix.O_WRONLY | unix.O_CLOEXEC
	if isBlock {
		flags |= unix.O_EXCL
	} else if sb.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, exitcode.Errorf(exitcode.Usage, "raw image target %s is neither a block device nor a file", device)
	}
	fd, err := unix.Open(device, flags, 0)
	if err != nil {
		if err == unix.EBUSY {
			return st, exitcode.Errorf(exitcode.Precondition, "%s is in use (mounted, or held by LVM, md or dm-crypt): unmount it before writing a raw image", device)
		}
		return st, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("open %s: %w", device, err))
	}
	defer unix.Close(fd)
	var devSize uint64
	if isBlock {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&devSize))); e != 0 {
			return st, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("size of %s: %w", device, e))
		}
		if size > 0 && uint64(size) > devSize {
			return st, exitcode.Errorf(exitcode.Precondition, "the raw image is %d bytes but %s holds only %d: choose a larger disk or a smaller image", size, device, devSize)
		}
	}
	buf := make([]byte, 1<<20)
	var off int64
	mode := zeroPunch
	last := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if devSize > 0 && uint64(off)+uint64(n) > devSize {
				return st, exitcode.Errorf(exitcode.Change, "the raw image is larger than %s (%d bytes); the disk now holds a truncated image", device, devSize)
			}
			z, err := writeRawChunk(fd, buf[:n], off, &mode)
			if err != nil {
				return st, exitcode.Wrap(exitcode.Change, fmt.Errorf("write %s at %d: %w", device, off, err))
			}
			st.Zeroed += z
			off += int64(n)
			st.Bytes = off
			if onProgress != nil && time.Since(last) >= 500*time.Millisecond {
				last = time.Now()
				onProgress(off)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return st, exitcode.Wrap(exitcode.Change, fmt.Errorf("reading the raw image after %d bytes: %w", off, rerr))
		}
	}
	if size > 0 && off != size {
		return st, exitcode.Errorf(exitcode.Change, "the raw image stream ended after %d bytes, %d were announced", off, size)
	}
	if !isBlock {
		if err := unix.Ftruncate(fd, off); err != nil {
			return st, exitcode.Wrap(exitcode.Change, err)
		}
	}
	if err := unix.Fsync(fd); err != nil {
		return st, exitcode.Wrap(exitcode.Change, fmt.Errorf("fsync %s: %w", device, err))
	}
	if isBlock {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKRRPART, 0)
		st.Reread = e == 0
	}
	st.Duration = int64(time.Since(start))
	return st, nil
}

// writeRawChunk writes p at off: data runs with pwrite, zero runs through
// the cheapest zeroing the device allows. It returns the bytes zeroed.
func writeRawChunk(fd int, p []byte, off int64, mode *zeroMode) (int64, error) {
	var zeroed int64
	i := 0
	for i < len(p) {
		end := min(i+rawBlock, len(p))
		isZero := bytes.Equal(p[i:end], zeroRaw[:end-i])
		j := end
		for j < len(p) {
			e := min(j+rawBlock, len(p))
			if bytes.Equal(p[j:e], zeroRaw[:e-j]) != isZero {
				break
			}
			j = e
		}
		if isZero {
			if err := zeroAt(fd, p[i:j], off+int64(i), mode); err != nil {
				return zeroed, err
			}
			zeroed += int64(j - i)
		} else if err := pwriteAll(fd, p[i:j], off+int64(i)); err != nil {
			return zeroed, err
		}
		i = j
	}
	return zeroed, nil
}

func zeroAt(fd int, zeros []byte, off int64, mode *zeroMode) error {
	// fallocate on a block device wants logical-block alignment.
	if off%4096 != 0 || len(zeros)%4096 != 0 {
		return pwriteAll(fd, zeros, off)
	}
	for {
		var err error
		switch *mode {
		case zeroPunch:
			err = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, int64(len(zeros)))
		case zeroRange:
			err = unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, int64(len(zeros)))
		default:
			return pwriteAll(fd, zeros, off)
		}
		if err == nil {
			return nil
		}
		if err != unix.EOPNOTSUPP && err != unix.ENOTSUP && err != unix.EINVAL && err != unix.ENODEV {
			return err
		}
		*mode++
	}
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}
