package install

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/nivis/nivis/internal/exitcode"
)

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// Whiteouts applies OCI whiteouts (.wh.NAME removes NAME, .wh..wh..opq
	// empties the directory of what lower layers put there) instead of
	// writing them as files. Set it for image layers.
	Whiteouts bool
	// NoChown keeps the extracting user's ownership. Ownership is only
	// restored when running as root anyway.
	NoChown bool
	// Protect names paths (relative to the root) that removals triggered by
	// the archive never touch, such as the spool directory of an image.
	Protect []string
	// OnProgress is called about twice a second with the running totals.
	OnProgress func(Stats)
}

// Stats are the totals of one extraction.
type Stats struct {
	Entries   int64 `json:"entries"`
	Files     int64 `json:"files"`
	Dirs      int64 `json:"dirs"`
	Symlinks  int64 `json:"symlinks"`
	Hardlinks int64 `json:"hardlinks"`
	Nodes     int64 `json:"nodes"` // device nodes and fifos
	Whiteouts int64 `json:"whiteouts,omitempty"`
	// Bytes is the file content written (logical size, holes included).
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// Skipped entries were not created (device nodes when not root, unknown
	// types); Warnings says why, for the first few.
	Skipped  int64    `json:"skipped,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

const maxWarnings = 20

func (s *Stats) warn(format string, args ...any) {
	if len(s.Warnings) < maxWarnings {
		s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
	}
}

// Add accumulates o into s (for multi-layer images).
func (s *Stats) Add(o Stats) {
	s.Entries += o.Entries
	s.Files += o.Files
	s.Dirs += o.Dirs
	s.Symlinks += o.Symlinks
	s.Hardlinks += o.Hardlinks
	s.Nodes += o.Nodes
	s.Whiteouts += o.Whiteouts
	s.Bytes += o.Bytes
	s.Duration += o.Duration
	s.Skipped += o.Skipped
	for _, w := range o.Warnings {
		if len(s.Warnings) < maxWarnings {
			s.Warnings = append(s.Warnings, w)
		}
	}
}

// cleanName turns an archive member name into a path relative to the root.
// Absolute names and any ".." component are refused outright: a rootfs
// never needs them and GNU tar refuses them too.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", refuse(name, "empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", refuse(name, "absolute name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", refuse(name, "name contains ..")
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", refuse(name, "name contains NUL")
	}
	return path.Clean(name), nil
}

// EscapeError is an archive entry refused because it would land outside the
// root.
type EscapeError struct {
	Name   string
	Reason string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("archive entry %q refused: %s; nothing was written outside the root, but the root is partly extracted: fix the source and run the install phase again", e.Name, e.Reason)
}

func refuse(name, reason string) error {
	return exitcode.Wrap(exitcode.Usage, &EscapeError{Name: name, Reason: reason})
}
