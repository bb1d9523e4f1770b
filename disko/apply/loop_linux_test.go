package apply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, or fails it when the run asks
// for root tests explicitly (NIVIS_REQUIRE_ROOT=1, as CI does).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatalf("this test needs root (loop devices, mkfs, mount) and NIVIS_REQUIRE_ROOT=1 is set")
	}
	t.Skip("needs root: loop devices, mkfs and mount (run as root, or set NIVIS_REQUIRE_ROOT=1 to make this a failure)")
}

// newLoop attaches a sparse image of size bytes to a free loop device and
// detaches it (after unmounting and swapping off whatever sits on it) when
// the test ends. Partition scanning stays off: nivis announces partitions
// with BLKPG, which is what this kernel needs anyway.
func newLoop(t testing.TB, size int64) (node, image string) {
	t.Helper()
	image = filepath.Join(t.TempDir(), "disk.img")
	img, err := os.OpenFile(image, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Truncate(size); err != nil {
		t.Fatal(err)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open /dev/loop-control: %v", err)
	}
	defer ctl.Close()
	var dev *os.File
	for attempt := 0; attempt < 20 && dev == nil; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		node = fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(node, os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open %s: %v", node, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = 0
		if err := unix.IoctlLoopConfigure(int(f.Fd()), &cfg); err != nil {
			f.Close()
			if errors.Is(err, unix.EBUSY) {
				time.Sleep(10 * time.Millisecond)
				continue // another process took it first
			}
			t.Fatalf("LOOP_CONFIGURE %s: %v", node, err)
		}
		dev = f
	}
	img.Close()
	if dev != nil {
		// A loop device can keep partitions someone announced before it
		// was detached; a fresh disk has none.
		if err := syncKernelPartitions(dev, nil, func(string, ...any) {}); err != nil {
			t.Fatalf("drop stale partitions of %s: %v", node, err)
		}
	}
	if dev == nil {
		t.Fatal("no free loop device")
	}
	t.Cleanup(func() {
		releaseLoop(t, node)
		if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
			t.Errorf("detach %s: %v", node, err)
		}
		dev.Close()
	})
	return node, image
}

// releaseLoop undoes whatever a test left on a loop device: swap, mounts
// and kernel partitions.
func releaseLoop(t testing.TB, node string) {
	devs, err := scanBlock()
	if err != nil {
		t.Errorf("scan: %v", err)
		return
	}
	name := filepath.Base(node)
	set := map[uint64]bool{}
	for _, b := range tree(devs, name) {
		set[b.devNum()] = true
	}
	swaps, _ := readSwaps()
	mounts, _ := readMounts()
	fsDevs := map[uint64]bool{}
	var targets []string
	for _, m := range mounts {
		d := unix.Mkdev(m.Major, m.Minor)
		if m.Major == 0 && strings.HasPrefix(m.Source, "/dev/") {
			if n, err := devOf(m.Source); err == nil {
				d = n
			}
		}
		if set[d] {
			fsDevs[unix.Mkdev(m.Major, m.Minor)] = true
			targets = append(targets, m.Mountpoint)
		}
	}
	for _, s := range swaps {
		if (s.IsDev && set[s.Dev]) || (!s.IsDev && fsDevs[s.Dev]) {
			if err := swapoff(s.Path); err != nil {
				t.Errorf("cleanup swapoff %s: %v", s.Path, err)
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	for _, m := range targets {
		if err := unix.Unmount(m, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			if err2 := unix.Unmount(m, unix.MNT_DETACH); err2 != nil {
				t.Errorf("cleanup umount %s: %v", m, err)
			}
		}
	}
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if err := syncKernelPartitions(f, nil, func(string, ...any) {}); err != nil {
		t.Errorf("cleanup partitions of %s: %v", node, err)
	}
}
