// Package base holds the u-root base images of the rescue initramfs,
// embedded at build time (see README). A nivis built without them still
// works as a client and agent; only the rescue image cannot be assembled.
package base

import (
	"embed"
	"fmt"
	"io/fs"
)

// The pattern * always matches README, so this compiles before `make` has
// produced any image.
//
//go:embed *
var files embed.FS

// Name is the file name of the base image for a GOARCH.
func Name(arch string) string { return "base-" + arch + ".cpio.zst" }

// ErrMissing is returned by For when this binary has no base for the arch.
type ErrMissing struct{ Arch string }

func (e *ErrMissing) Error() string {
	return fmt.Sprintf("this nivis was built without the rescue base image for %s; build with `make`", e.Arch)
}

// For returns the zstd-compressed base cpio for arch (a GOARCH).
func For(arch string) ([]byte, error) {
	b, err := fs.ReadFile(files, Name(arch))
	if err != nil || len(b) == 0 {
		return nil, &ErrMissing{Arch: arch}
	}
	return b, nil
}

// Available lists the arches this binary has a base for.
func Available() []string {
	var out []string
	for _, a := range []string{"amd64", "arm64"} {
		if _, err := For(a); err == nil {
			out = append(out, a)
		}
	}
	return out
}
