package install

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/nivis/nivis/internal/exitcode"
)

// Image is an OCI image opened for reading: its layers in the order they
// apply. A client sends each layer as its own stream (ExtractRequest.Layer)
// so the host never needs random access to the image.
type Image struct {
	Layers []Layer
	close  func() error
}

// Layer is one filesystem layer of an image.
type Layer struct {
	// Path is where the blob lives inside the layout or archive.
	Path      string
	Digest    string
	MediaType string
	// Size is the blob's size as stored (compressed), -1 when unknown.
	Size int64
	open func() (io.ReadCloser, error)
}

// Open returns the layer blob as stored (possibly gzip or zstd compressed:
// OpenSource detects that).
func (l Layer) Open() (io.ReadCloser, error) { return l.open() }

// Close releases the image's file.
func (im *Image) Close() error {
	if im.close != nil {
		return im.close()
	}
	return nil
}

// OCIArch maps a kernel machine name (uname -m) to an OCI architecture.
func OCIArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l", "arm":
		return "arm"
	case "i386", "i686", "386":
		return "386"
	}
	return machine
}

// OpenImage opens an OCI image layout directory (oci-layout, index.json,
// blobs/) or a tarball of one, or a `docker save` tarball (manifest.json).
// arch picks the platform from a multi-platform index ("" = this machine's).
func OpenImage(p, arch string) (*Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("image %s: %w", p, err))
	}
	if fi.IsDir() {
		r, err := os.OpenRoot(p)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, err)
		}
		im, err := imageFrom(rootOpener(r), arch)
		if err != nil {
			r.Close()
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("image %s: %w", p, err))
		}
		im.close = r.Close
		return im, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	op, err := indexTar(f)
	if err == nil {
		var im *Image
		if im, err = imageFrom(op, arch); err == nil {
			im.close = f.Close
			return im, nil
		}
	}
	f.Close()
	return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("image %s: %w (an OCI layout directory, an OCI archive or a `docker save` tarball is expected; compress nothing around it)", p, err))
}

// opener reads one file of a layout by its slash path.
type opener func(name string) (io.ReadCloser, int64, error)

func rootOpener(r *os.Root) opener {
	return func(name string) (io.ReadCloser, int64, error) {
		f, err := r.Open(name)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
}

type tarMember struct {
	off, size int64
	link      string
}

// indexTar records where each member's data starts, so blobs can be read
// in any order straight from the file.
func indexTar(f *os.File) (opener, error) {
	tr := tar.NewReader(f)
	members := map[string]tarMember{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch hdr.Typeflag {
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			members[name] = tarMember{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			// docker save links duplicate layers to the first copy.
			members[name] = tarMember{link: path.Join(path.Dir(name), hdr.Linkname)}
		case tar.TypeLink:
			members[name] = tarMember{link: path.Clean(hdr.Linkname)}
		}
	}
	return func(name string) (io.ReadCloser, int64, error) {
		for i := 0; i < 8; i++ {
			m, ok := members[path.Clean(name)]
			if !ok {
				return nil, 0, fmt.Errorf("%s: %w", name, os.ErrNotExist)
			}
			if m.link == "" {
				return io.NopCloser(io.NewSectionReader(f, m.off, m.size)), m.size, nil
			}
			name = m.link
		}
		return nil, 0, fmt.Errorf("%s: too many links", name)
	}, nil
}

// Media types that say "this descriptor is an index, not an image".
const (
	mediaOCIIndex   = "application/vnd.oci.image.index.v1+json"
	mediaDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant,omitempty"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string       `json:"mediaType"`
	Layers    []descriptor `json:"layers"`
}

type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func readJSON(op opener, name string, v any) error {
	rc, size, err := op(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size > 16<<20 {
		return fmt.Errorf("%s: %d bytes is too large for image metadata", name, size)
	}
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// blobPath turns a digest into its place in a layout, refusing digests
// that could name anything else.
func blobPath(digest string) (string, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || alg == "" || hex == "" || strings.Trim(alg, "abcdefghijklmnopqrstuvwxyz0123456789+._-") != "" || strings.Trim(hex, "0123456789abcdefABCDEF") != "" {
		return "", fmt.Errorf("bad digest %q", digest)
	}
	return "blobs/" + alg + "/" + hex, nil
}

func imageFrom(op opener, arch string) (*Image, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	var dm []dockerManifest
	err := readJSON(op, "manifest.json", &dm)
	switch {
	case err == nil:
		if len(dm) != 1 {
			return nil, fmt.Errorf("manifest.json lists %d images; save exactly one", len(dm))
		}
		im := &Image{}
		for _, l := range dm[0].Layers {
			p, err := cleanName(l)
			if err != nil {
				return nil, fmt.Errorf("manifest.json layer %q: %w", l, err)
			}
			im.Layers = append(im.Layers, layerAt(op, p, descriptor{Size: -1}))
		}
		return im, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	var idx ociIndex
	if err := readJSON(op, "index.json", &idx); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("neither manifest.json nor index.json found")
		}
		return nil, err
	}
	return manifestFrom(op, idx, arch, 0)
}

func layerAt(op opener, p string, d descriptor) Layer {
	return Layer{Path: p, Digest: d.Digest, MediaType: d.MediaType, Size: d.Size, open: func() (io.ReadCloser, error) {
		rc, _, err := op(p)
		return rc, err
	}}
}

func manifestFrom(op opener, idx ociIndex, arch string, depth int) (*Image, error) {
	if depth > 4 {
		return nil, errors.New("image indexes nested too deep")
	}
	var cands []descriptor
	for _, d := range idx.Manifests {
		if d.Platform != nil && (d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown") {
			continue // attestations
		}
		if d.Platform != nil && d.Platform.Architecture != arch {
			continue
		}
		cands = append(cands, d)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("the image has no manifest for architecture %s", arch)
	}
	if len(cands) > 1 {
		return nil, fmt.Errorf("the image index has %d manifests for %s; keep one", len(cands), arch)
	}
	d := cands[0]
	p, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	if d.MediaType == mediaOCIIndex || d.MediaType == mediaDockerList {
		var sub ociIndex
		if err := readJSON(op, p, &sub); err != nil {
			return nil, err
		}
		return manifestFrom(op, sub, arch, depth+1)
	}
	var m ociManifest
	if err := readJSON(op, p, &m); err != nil {
		return nil, err
	}
	if m.MediaType == mediaOCIIndex || m.MediaType == mediaDockerList {
		var sub ociIndex
		if err := readJSON(op, p, &sub); err != nil {
			return nil, err
		}
		return manifestFrom(op, sub, arch, depth+1)
	}
	im := &Image{}
	for _, l := range m.Layers {
		if strings.Contains(l.MediaType, "nondistributable") || strings.Contains(l.MediaType, "foreign") {
			return nil, fmt.Errorf("layer %s is %s: its content is not in the image", l.Digest, l.MediaType)
		}
		lp, err := blobPath(l.Digest)
		if err != nil {
			return nil, err
		}
		im.Layers = append(im.Layers, layerAt(op, lp, l))
	}
	return im, nil
}
