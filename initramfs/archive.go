package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// entry is one file, directory or symlink of a cpio part.
type entry struct {
	name string // path in the image, without the leading /
	mode cpio.FileMode
	// Exactly one of these for a regular file.
	src  string // host file, read at write time
	data []byte
	size int64 // of src or data
	link string
}

// part is a planned cpio archive: written compressed, one after the
// other, into the initrd.
type part struct {
	name    string
	entries []entry
	// dirs already created by this part (parents are added on demand).
	dirs map[string]bool
}

func newPart(name string) *part { return &part{name: name, dirs: map[string]bool{}} }

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// dir adds a directory (and its missing parents). Directories in have
// exist already (in the base or an earlier part) and are not repeated: the
// kernel would chmod them to our mode.
func (p *part) dir(name string, perm cpio.FileMode, have map[string]bool) {
	name = clean(name)
	if name == "" || name == "." || have[name] || p.dirs[name] {
		return
	}
	p.dir(path.Dir(name), 0o755, have)
	p.dirs[name] = true
	p.entries = append(p.entries, entry{name: name, mode: cpio.TypeDir | perm})
}

func (p *part) parent(name string, have map[string]bool) {
	if d := path.Dir(clean(name)); d != "." {
		p.dir(d, 0o755, have)
	}
}

// file adds a host file, read when the part is written.
func (p *part) file(name, src string, perm cpio.FileMode, have map[string]bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	p.parent(name, have)
	p.entries = append(p.entries, entry{name: clean(name), mode: cpio.TypeReg | perm, src: src, size: st.Size()})
	return nil
}

// bytes adds a file with the given content.
func (p *part) bytes(name string, data []byte, perm cpio.FileMode, have map[string]bool) {
	p.parent(name, have)
	p.entries = append(p.entries, entry{name: clean(name), mode: cpio.TypeReg | perm, data: data, size: int64(len(data))})
}

// symlink adds name -> target.
func (p *part) symlink(name, target string, have map[string]bool) {
	p.parent(name, have)
	p.entries = append(p.entries, entry{name: clean(name), mode: cpio.TypeSymlink | 0o777, link: target, size: int64(len(target))})
}

// has reports whether the part already holds name.
func (p *part) has(name string) bool {
	name = clean(name)
	for _, e := range p.entries {
		if e.name == name {
			return true
		}
	}
	return false
}

// dataSize is the sum of file sizes: the RAM the part takes once unpacked
// (cpio headers are not kept).
func (p *part) dataSize() int64 {
	var n int64
	for _, e := range p.entries {
		n += e.size
	}
	return n
}

// writeCPIO writes the part as an uncompressed newc cpio to w. Every
// entry is owned by root with mtime 0, so the output depends only on
// the content.
func (p *part) writeCPIO(w io.Writer) error {
	cw := cpio.NewWriter(w)
	for _, e := range p.entries {
		h := &cpio.Header{Name: e.name, Mode: e.mode, Size: e.size}
		if e.mode&cpio.ModeType == cpio.TypeDir {
			h.Links = 2
			h.Size = 0
		}
		if err := cw.WriteHeader(h); err != nil {
			return fmt.Errorf("cpio %s: %w", e.name, err)
		}
		switch {
		case e.link != "":
			if _, err := io.WriteString(cw, e.link); err != nil {
				return err
			}
		case e.data != nil:
			if _, err := cw.Write(e.data); err != nil {
				return err
			}
		case e.src != "":
			if err := copyFile(cw, e.src, e.size); err != nil {
				return err
			}
		}
	}
	return cw.Close()
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("%s changed size while being archived (%d, now %d bytes)", src, size, n)
	}
	return nil
}

// countingWriter counts bytes on their way to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// baseDirs lists the directories of an uncompressed cpio, so later parts
// do not re-create (and chmod) them, and the size its files take unpacked.
func baseDirs(raw []byte) (dirs map[string]bool, size int64, files int, err error) {
	dirs = map[string]bool{}
	r := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return dirs, size, files, nil
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("reading the base image: %w", err)
		}
		files++
		if h.Mode.IsDir() {
			dirs[clean(h.Name)] = true
		}
		size += h.Size + int64(len(h.Linkname))
	}
}
