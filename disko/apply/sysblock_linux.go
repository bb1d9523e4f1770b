package apply

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/mountinfo"
)

// sysfsRoot is where block devices are listed; tests never change it, it
// is a variable only to keep paths in one place.
var sysfsRoot = "/sys/class/block"

// blockDev is one block device as sysfs describes it.
type blockDev struct {
	Name       string // sda1, loop0p2, dm-0, md127
	Major      uint32
	Minor      uint32
	Disk       string // for partitions: the whole disk's name
	Partition  int    // for partitions: the number
	Start      uint64 // for partitions: first sector (512-byte units)
	Size       int64  // bytes
	SectorSize int64
	Holders    []string
	Slaves     []string
	DMName     string
	DMUUID     string
	Model      string
	Serial     string
	WWID       string
	DiskSeq    string
	Subsystem  string // virtio, scsi, nvme, ...
}

// Node is the /dev path of the device.
func (b *blockDev) Node() string { return "/dev/" + b.Name }

func (b *blockDev) devNum() uint64 { return unix.Mkdev(b.Major, b.Minor) }

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func listDir(p string) []string {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// scanBlock reads every block device from sysfs.
func scanBlock() (map[string]*blockDev, error) {
	names := listDir(sysfsRoot)
	if names == nil {
		return nil, fmt.Errorf("cannot list %s: is sysfs mounted?", sysfsRoot)
	}
	out := make(map[string]*blockDev, len(names))
	for _, n := range names {
		if b := readBlock(n); b != nil {
			out[n] = b
		}
	}
	return out, nil
}

func readBlock(name string) *blockDev {
	dir := filepath.Join(sysfsRoot, name)
	devnum := readTrim(filepath.Join(dir, "dev"))
	var maj, min uint32
	if _, err := fmt.Sscanf(devnum, "%d:%d", &maj, &min); err != nil {
		return nil
	}
	b := &blockDev{Name: name, Major: maj, Minor: min}
	sz, _ := strconv.ParseInt(readTrim(filepath.Join(dir, "size")), 10, 64)
	b.Size = sz * 512
	if p := readTrim(filepath.Join(dir, "partition")); p != "" {
		b.Partition, _ = strconv.Atoi(p)
		b.Start, _ = strconv.ParseUint(readTrim(filepath.Join(dir, "start")), 10, 64)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			b.Disk = filepath.Base(filepath.Dir(real))
		}
	}
	b.Holders = listDir(filepath.Join(dir, "holders"))
	b.Slaves = listDir(filepath.Join(dir, "slaves"))
	b.DMName = readTrim(filepath.Join(dir, "dm", "name"))
	b.DMUUID = readTrim(filepath.Join(dir, "dm", "uuid"))
	base := dir
	if b.Disk != "" {
		base = filepath.Join(sysfsRoot, b.Disk)
	}
	b.SectorSize, _ = strconv.ParseInt(readTrim(filepath.Join(base, "queue", "logical_block_size")), 10, 64)
	if b.SectorSize <= 0 {
		b.SectorSize = 512
	}
	if b.Disk == "" {
		b.Model = readTrim(filepath.Join(dir, "device", "model"))
		b.Serial = readTrim(filepath.Join(dir, "device", "serial"))
		if b.Serial == "" {
			b.Serial = readTrim(filepath.Join(dir, "serial")) // virtio-blk
		}
		if b.Serial == "" {
			b.Serial = vpdSerial(filepath.Join(dir, "device", "vpd_pg80"))
		}
		b.WWID = readTrim(filepath.Join(dir, "wwid"))
		if b.WWID == "" {
			b.WWID = readTrim(filepath.Join(dir, "device", "wwid"))
		}
		b.DiskSeq = readTrim(filepath.Join(dir, "diskseq"))
		if sub, err := filepath.EvalSymlinks(filepath.Join(dir, "device", "subsystem")); err == nil {
			b.Subsystem = filepath.Base(sub)
		}
		if d, err := filepath.EvalSymlinks(filepath.Join(dir, "device", "driver")); err == nil && filepath.Base(d) == "virtio_blk" {
			b.Subsystem = "virtio"
		}
	}
	return b
}

// vpdSerial reads the unit serial number page of a SCSI/ATA disk.
func vpdSerial(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) < 4 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(string(b[4 : 4+n]))
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	Major, Minor uint32
	Root         string // path inside the filesystem (btrfs subvolume)
	Mountpoint   string
	FSType       string
	Source       string
}

// readMounts parses /proc/self/mountinfo, in mount order.
func readMounts() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		var m mountInfo
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &m.Major, &m.Minor); err != nil {
			continue
		}
		m.Root = mountinfo.Unescape(fields[3])
		m.Mountpoint = mountinfo.Unescape(fields[4])
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" && i+2 < len(fields) {
				m.FSType = fields[i+1]
				m.Source = mountinfo.Unescape(fields[i+2])
				break
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// swapEntry is one active swap from /proc/swaps, with the device number
// it lives on (for files: the filesystem's device) and inode.
type activeSwap struct {
	Path  string
	IsDev bool
	Dev   uint64 // rdev of a device, dev of a file
	Ino   uint64
}

func readSwaps() ([]activeSwap, error) {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []activeSwap
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 {
			continue
		}
		s := activeSwap{Path: mountinfo.Unescape(f[0]), IsDev: f[1] == "partition"}
		var st unix.Stat_t
		if unix.Stat(s.Path, &st) == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				s.IsDev, s.Dev = true, st.Rdev
			} else {
				s.Dev, s.Ino = st.Dev, st.Ino
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// devOf returns the block device number of a device node.
func devOf(node string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device", node)
	}
	return st.Rdev, nil
}

// byDevNum finds a device by its number.
func byDevNum(devs map[string]*blockDev, n uint64) *blockDev {
	for _, b := range devs {
		if b.devNum() == n {
			return b
		}
	}
	return nil
}

// tree returns name and everything built on it: partitions, then holders
// (dm, md) recursively, deepest last.
func tree(devs map[string]*blockDev, name string) []*blockDev {
	var out []*blockDev
	seen := map[string]bool{}
	var add func(n string)
	add = func(n string) {
		b := devs[n]
		if b == nil || seen[n] {
			return
		}
		seen[n] = true
		out = append(out, b)
		for _, p := range sortedKeys(devs) {
			if devs[p].Disk == n {
				add(p)
			}
		}
		for _, h := range b.Holders {
			add(h)
		}
	}
	add(name)
	return out
}

// rootDisks returns the whole disks under the running system's /.
func rootDisks(devs map[string]*blockDev) map[string]bool {
	out := map[string]bool{}
	mounts, err := readMounts()
	if err != nil {
		return out
	}
	var start *blockDev
	for _, m := range mounts {
		if m.Mountpoint != "/" {
			continue
		}
		if strings.HasPrefix(m.Source, "/dev/") {
			if n, err := devOf(m.Source); err == nil {
				start = byDevNum(devs, n)
			}
		}
		if start == nil {
			start = byDevNum(devs, unix.Mkdev(m.Major, m.Minor))
		}
	}
	var down func(b *blockDev)
	down = func(b *blockDev) {
		if b == nil {
			return
		}
		if b.Disk != "" {
			down(devs[b.Disk])
			return
		}
		if len(b.Slaves) == 0 {
			out[b.Name] = true
			return
		}
		for _, s := range b.Slaves {
			down(devs[s])
		}
	}
	down(start)
	return out
}
