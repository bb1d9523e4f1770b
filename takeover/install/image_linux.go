//go:build linux

package install

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nivis/nivis/internal/exitcode"
)

// ExtractImage applies an image that arrives as one tar stream (an OCI
// layout or a `docker save` archive, e.g. from install-fetch). Its members
// may come in any order, so they are first spooled (safely extracted) into
// root/.nivis-spool on the target disk, then the layers are applied in
// order with whiteouts, and the spool is removed. The target therefore needs
// room for the image's blobs on top of the unpacked system.
func ExtractImage(ctx context.Context, r io.Reader, root, arch string, opts ExtractOptions) (Stats, error) {
	spool := filepath.Join(root, SpoolDir)
	if err := os.RemoveAll(spool); err != nil {
		return Stats{}, exitcode.Wrap(exitcode.Change, err)
	}
	if err := os.Mkdir(spool, 0o700); err != nil {
		return Stats{}, exitcode.Wrap(exitcode.Change, fmt.Errorf("spool directory for the image: %w", err))
	}
	defer os.RemoveAll(spool)
	if _, err := Extract(ctx, tar.NewReader(r), spool, ExtractOptions{NoChown: true}); err != nil {
		return Stats{}, fmt.Errorf("spooling the image archive: %w", err)
	}
	sr, err := os.OpenRoot(spool)
	if err != nil {
		return Stats{}, exitcode.Wrap(exitcode.Change, err)
	}
	defer sr.Close()
	im, err := imageFrom(rootOpener(sr), arch)
	if err != nil {
		return Stats{}, exitcode.Wrap(exitcode.Usage, fmt.Errorf("image archive: %w", err))
	}
	opts.Whiteouts = true
	opts.Protect = append(opts.Protect, SpoolDir, StateFile)
	var total Stats
	for i, l := range im.Layers {
		st, err := applyLayer(ctx, l, root, opts)
		total.Add(st)
		if err != nil {
			return total, fmt.Errorf("layer %d (%s): %w", i, l.Path, err)
		}
	}
	return total, nil
}

func applyLayer(ctx context.Context, l Layer, root string, opts ExtractOptions) (Stats, error) {
	rc, err := l.Open()
	if err != nil {
		return Stats{}, exitcode.Wrap(exitcode.Usage, err)
	}
	defer rc.Close()
	src, err := OpenSource(rc, FormatTar)
	if err != nil {
		return Stats{}, err
	}
	defer src.Close()
	return Extract(ctx, tar.NewReader(src), root, opts)
}
