package apply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
	"unsafe"

	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// kpart is a partition as the kernel should know it, in bytes.
type kpart struct {
	Index  int
	Start  int64
	Length int64
}

// blockSize returns the size in bytes and the logical sector size of an
// open device or image.
func blockSize(f *os.File) (int64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), 512, nil
	}
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64 on %s: %w", f.Name(), e)
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil || ss <= 0 {
		ss = 512
	}
	return int64(size), int64(ss), nil
}

func blkpg(f *os.File, op int32, p kpart) error {
	part := unix.BlkpgPartition{Start: p.Start, Length: p.Length, Pno: int32(p.Index)}
	arg := unix.BlkpgIoctlArg{Op: op, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	if e != 0 {
		return e
	}
	return nil
}

// blkpgRetry retries a BLKPG call that fails with EBUSY for up to five
// seconds: where udev runs, it opens every partition for a moment after
// a write (to probe it), and the kernel refuses to drop an open one.
func blkpgRetry(f *os.File, op int32, p kpart) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := blkpg(f, op, p)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncKernelPartitions makes the kernel's view of the disk's partitions
// (sysfs) equal want, with BLKPG: add what is missing, resize what moved
// its end, delete and re-add what moved its start, delete the rest. It
// works on busy disks and on kernels without a partition-table parser,
// where BLKRRPART does nothing.
func syncKernelPartitions(f *os.File, want []kpart, logf func(string, ...any)) error {
	name := filepath.Base(f.Name())
	if real, err := filepath.EvalSymlinks(f.Name()); err == nil {
		name = filepath.Base(real)
	}
	have := map[int]kpart{}
	devs, err := scanBlock()
	if err != nil {
		return err
	}
	for _, b := range devs {
		if b.Disk == name {
			// sysfs start and size are in 512-byte units whatever the sector size.
			have[b.Partition] = kpart{Index: b.Partition, Start: int64(b.Start) * 512, Length: b.Size}
		}
	}
	wantBy := map[int]kpart{}
	for _, p := range want {
		wantBy[p.Index] = p
	}
	var idx []int
	for i := range have {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		h := have[i]
		w, keep := wantBy[i]
		if keep && w.Start == h.Start {
			continue
		}
		if err := blkpgRetry(f, unix.BLKPG_DEL_PARTITION, h); err != nil {
			return fmt.Errorf("tell the kernel to drop partition %d of %s (BLKPG): %w; is it mounted or in use?", i, f.Name(), err)
		}
		logf("kernel: removed partition %d of %s", i, f.Name())
		delete(have, i)
	}
	for _, w := range want {
		h, ok := have[w.Index]
		switch {
		case !ok:
			if err := blkpg(f, unix.BLKPG_ADD_PARTITION, w); err != nil {
				return fmt.Errorf("tell the kernel about partition %d of %s (BLKPG add, start %d, %d bytes): %w", w.Index, f.Name(), w.Start, w.Length, err)
			}
			logf("kernel: added partition %d of %s (%s at byte %d)", w.Index, f.Name(), disko.HumanBytes(w.Length), w.Start)
		case h.Length != w.Length:
			if err := blkpgRetry(f, unix.BLKPG_RESIZE_PARTITION, w); err != nil {
				return fmt.Errorf("tell the kernel partition %d of %s changed size (BLKPG resize): %w", w.Index, f.Name(), err)
			}
			logf("kernel: resized partition %d of %s to %s", w.Index, f.Name(), disko.HumanBytes(w.Length))
		}
	}
	return nil
}

// openBlock opens a block device and reads its size and sector size.
func openBlock(node string, flag int) (f *os.File, size, sectorSize int64, err error) {
	f, err = os.OpenFile(node, flag, 0)
	if err != nil {
		return nil, 0, 0, err
	}
	if size, sectorSize, err = blockSize(f); err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	return f, size, sectorSize, nil
}
