//go:build linux

package vmtests

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/mountinfo"
)

// Image is a cached guest image. Its files are never modified after the
// build: VMs boot from copy-on-write overlays.
type Image struct {
	Spec ImageSpec `json:"spec"`
	// Key is the hash of the inputs, the name of Dir.
	Key string `json:"key"`
	Dir string `json:"-"`
	// RootFS is the root ext4 filesystem as a raw image; RootUUID its UUID.
	RootFS   string `json:"-"`
	RootUUID string `json:"root_uuid"`
	// Kernel and Initrd are the guest's own, for direct-kernel boots.
	Kernel        string `json:"-"`
	Initrd        string `json:"-"`
	KernelRelease string `json:"kernel_release"`
	// KeyFile is the private key root in the guest accepts.
	KeyFile string `json:"-"`
	// BuiltAt and BuildTime describe the build that made the image.
	BuiltAt   time.Time     `json:"built_at"`
	BuildTime time.Duration `json:"build_time"`

	// CacheHit is true when Build found the image ready; Took is how long
	// this Build call took.
	CacheHit bool          `json:"-"`
	Took     time.Duration `json:"-"`
}

// BuildOptions tune Build.
type BuildOptions struct {
	// Logf receives progress and every external command; nil is silent.
	Logf func(format string, args ...any)
}

const manifestName = "image.json"

// Build returns the image for spec from the cache, building it first when
// it is missing. Building needs root (debootstrap, chroot) and the Debian
// archive; a cache hit needs neither. Concurrent callers wait for one build.
func Build(ctx context.Context, spec ImageSpec, o BuildOptions) (*Image, error) {
	start := time.Now()
	r := commandRunner{logf: o.Logf}
	spec = spec.withDefaults()
	if spec.Mirror == "" {
		spec.Mirror = DebianMirror()
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create VM cache: %w", err)
	}
	keyFile, authorized, err := ensureTestKey(ctx, cache)
	if err != nil {
		return nil, err
	}
	key := spec.imageKey(authorized)
	dir := filepath.Join(cache, "image-"+key)
	finish := func(img *Image, hit bool) *Image {
		img.Spec.Mirror = spec.Mirror
		img.KeyFile = keyFile
		img.CacheHit = hit
		img.Took = time.Since(start)
		return img
	}
	if img, err := loadImage(dir); err == nil {
		return finish(img, true), nil
	}
	lock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	if img, err := loadImage(dir); err == nil {
		return finish(img, true), nil // another process built it while we waited
	}
	removeStale(cache, ".build-image-"+key+"-")
	r.log("building guest image %s (%s, %d packages) in %s", key, spec.Suite, len(spec.Packages), cache)
	if err := buildPreflight(); err != nil {
		return nil, err
	}
	debs, err := ensureDebs(ctx, r, cache, spec)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cache, ".build-image-"+key+"-")
	if err != nil {
		return nil, err
	}
	defer removeTree(tmp)
	tree := filepath.Join(tmp, "tree")
	if _, err := r.run(ctx, "debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
		"--include="+strings.Join(spec.sortedPackages(), ","), "--unpack-tarball="+debs,
		spec.Suite, tree, spec.Mirror); err != nil {
		return nil, fmt.Errorf("debootstrap from the cached tarball: %w", err)
	}
	release, err := kernelRelease(tree)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Spec:          spec,
		Key:           key,
		RootUUID:      uuidFrom(key),
		KernelRelease: release,
	}
	gc := guestConfig{
		Hostname:      spec.Hostname,
		AuthorizedKey: authorized,
		RootUUID:      img.RootUUID,
		MachineID:     hashJSON(key + "machine-id")[:16] + hashJSON(key + "id")[:16],
		KernelRelease: release,
	}
	if err := configureTree(ctx, r, tree, gc); err != nil {
		return nil, fmt.Errorf("configure guest tree: %w", err)
	}
	// Everything a disk variant needs is copied out now, so gptdisk.go never
	// has to look inside the ext4 image.
	for _, c := range [][2]string{
		{"boot/vmlinuz-" + release, "vmlinuz"},
		{"boot/initrd.img-" + release, "initrd.img"},
		{"boot/grub/i386-pc/boot.img", "grub-boot.img"},
		{"boot/grub/i386-pc/core.img", "grub-core.img"},
		{"boot/grub/x86_64-efi/bootx64.efi", "bootx64.efi"},
	} {
		if err := copyFile(filepath.Join(tree, c[0]), filepath.Join(tmp, c[1]), 0o644); err != nil {
			return nil, fmt.Errorf("copy %s out of the guest tree: %w", c[0], err)
		}
	}
	if _, err := r.run(ctx, "mkfs.ext4", "-q", "-F", "-U", img.RootUUID, "-L", "nivis-root",
		"-d", tree, filepath.Join(tmp, "root.ext4"), fmt.Sprintf("%dM", spec.RootMiB)); err != nil {
		return nil, fmt.Errorf("make the root filesystem: %w", err)
	}
	if err := removeTree(tree); err != nil {
		return nil, err
	}
	img.BuiltAt = time.Now().UTC()
	img.BuildTime = time.Since(start)
	if err := publishImage(img, tmp, dir); err != nil {
		return nil, err
	}
	img, err = loadImage(dir)
	if err != nil {
		return nil, err
	}
	r.log("built guest image %s in %s", key, img.BuildTime.Round(time.Second))
	return finish(img, false), nil
}

// publishImage writes the manifest into the finished build directory tmp
// and renames it to dir, where loadImage finds it.
func publishImage(img *Image, tmp, dir string) error {
	m, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), m, 0o644); err != nil {
		return err
	}
	// MkdirTemp made it private; users other than the builder may boot it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("publish image: %w", err)
	}
	return nil
}

// loadImage reads a finished image directory; the manifest is written last,
// so its presence means the image is complete.
func loadImage(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, manifestName), err)
	}
	img.Dir = dir
	img.RootFS = filepath.Join(dir, "root.ext4")
	img.Kernel = filepath.Join(dir, "vmlinuz")
	img.Initrd = filepath.Join(dir, "initrd.img")
	for _, p := range []string{img.RootFS, img.Kernel, img.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	return &img, nil
}

// BuildTools are the host commands an image build runs.
var BuildTools = []string{"debootstrap", "mkfs.ext4", "chroot"}

func buildPreflight() error {
	if os.Geteuid() != 0 {
		return errors.New("building a guest image needs root (debootstrap, chroot): run once as root, or point NIVIS_VM_CACHE at a cache a root build filled")
	}
	for _, t := range BuildTools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing: install debootstrap and e2fsprogs (scripts/deps.sh): %w", t, err)
		}
	}
	return nil
}

// ensureDebs returns the debootstrap tarball (every .deb of the spec) from
// the cache, downloading it first when missing. Images that differ only in
// configuration then build without the network.
func ensureDebs(ctx context.Context, r commandRunner, cache string, spec ImageSpec) (string, error) {
	path := filepath.Join(cache, "debs-"+spec.Suite+"-"+spec.debsKey()+".tgz")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	lock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", err
	}
	defer lock.unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	prefix := ".build-debs-" + spec.debsKey() + "-"
	removeStale(cache, prefix)
	tmp, err := os.MkdirTemp(cache, prefix)
	if err != nil {
		return "", err
	}
	defer removeTree(tmp)
	out := filepath.Join(tmp, "debs.tgz")
	if _, err := r.run(ctx, "debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
		"--include="+strings.Join(spec.sortedPackages(), ","), "--make-tarball="+out,
		spec.Suite, filepath.Join(tmp, "target"), spec.Mirror); err != nil {
		return "", fmt.Errorf("download the guest's packages from %s (the Debian archive must be reachable; set NIVIS_DEBIAN_MIRROR to use another): %w", spec.Mirror, err)
	}
	if err := os.Rename(out, path); err != nil {
		return "", err
	}
	return path, nil
}

// removeStale deletes build directories a killed build left behind. The
// caller holds the lock of the thing they were building, so none is live.
func removeStale(cache, prefix string) {
	m, _ := filepath.Glob(filepath.Join(cache, prefix+"*"))
	for _, d := range m {
		removeTree(d)
	}
}

// kernelRelease finds the one kernel debootstrap installed in tree.
func kernelRelease(tree string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return "", fmt.Errorf("want exactly one kernel in %s/boot, found %d (is linux-image-amd64 in Packages?)", tree, len(m))
	}
	return strings.TrimPrefix(filepath.Base(m[0]), "vmlinuz-"), nil
}

// uuidFrom derives a stable filesystem UUID from the image key, so that the
// same inputs give the same image.
func uuidFrom(key string) string {
	s := sha256.Sum256([]byte("nivis-root-uuid:" + key))
	h := hex.EncodeToString(s[:16])
	// Version 4 and variant bits keep tools that validate UUIDs happy.
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[s[8]&3]
	h = string(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// copyFile copies src to dst (created with mode), skipping runs of zeros so
// that sparse images stay sparse.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := copySparse(out, in, 0); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copySparse copies r to w starting at offset off of w, seeking over
// all-zero blocks (w must read as zeros there already: a new or truncated
// file). It returns the number of bytes consumed from r.
func copySparse(w *os.File, r io.Reader, off int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			chunk := buf[:k]
			if !allZero(chunk) {
				if _, werr := w.WriteAt(chunk, off+n); werr != nil {
					return n, werr
				}
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	// The file must reach its full length even when it ends in zeros.
	if st, err := w.Stat(); err == nil && st.Size() < off+n {
		if err := w.Truncate(off + n); err != nil {
			return n, err
		}
	}
	return n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// removeTree deletes a build directory, first detaching anything a failed
// debootstrap left mounted inside it (proc, sys): RemoveAll must never
// descend into a live /proc or /dev.
func removeTree(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s before removing %s: %w", m, dir, err)
		}
	}
	return os.RemoveAll(dir)
}

func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := mountinfo.Unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}
