package sshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/pkg/sftp"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/progress"
)

// UploadMethod chooses how Upload moves bytes.
type UploadMethod int

const (
	// UploadExec streams into `cat` over an exec session (the default: as
	// fast as OpenSSH's own `ssh host 'cat > f'`, and needs no sftp).
	UploadExec UploadMethod = iota
	// UploadSFTP writes through the sftp subsystem with concurrent writes.
	UploadSFTP
)

func (m UploadMethod) String() string {
	if m == UploadSFTP {
		return "sftp"
	}
	return "exec"
}

// Upload writes exactly size bytes from r to remotePath with mode,
// atomically: into a temporary file next to it, renamed over it only when
// complete, so a reader never sees half a file. Parent directories are
// created. Progress goes to Options.Progress.
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, remotePath string, mode os.FileMode) error {
	return c.UploadWith(ctx, UploadExec, r, size, remotePath, mode)
}

// UploadWith is Upload with a chosen method (the benchmark compares them).
func (c *Client) UploadWith(ctx context.Context, m UploadMethod, r io.Reader, size int64, remotePath string, mode os.FileMode) error {
	if size < 0 {
		return errors.New("upload: size must be known (it guards against a truncated file being renamed into place)")
	}
	if remotePath == "" || strings.HasSuffix(remotePath, "/") {
		return exitcode.Errorf(exitcode.Usage, "upload: remote path %q must name a file", remotePath)
	}
	bar := progress.New(c.opts.Progress, "upload "+path.Base(remotePath), size)
	src := bar.Reader(r)
	var err error
	switch m {
	case UploadSFTP:
		err = c.uploadSFTP(ctx, src, size, remotePath, mode)
	default:
		err = c.uploadExec(ctx, src, size, remotePath, mode)
	}
	bar.Finish(err)
	if err != nil {
		return fmt.Errorf("upload to %s:%s: %w", c, remotePath, err)
	}
	return nil
}

// uploadScript receives stdin into a temp file, checks its size (a local
// read error must never end as a short file renamed into place), sets the
// mode and renames. $1 path, $2 mode, $3 size.
const uploadScript = `set -e
umask 077 2>/dev/null || true
d="${1%/*}"
[ -z "$d" ] || mkdir -p "$d"
t="$1.nivis-upload.$$"
trap 'rm -f "$t"' EXIT
cat > "$t"
n=$(wc -c < "$t")
if [ $n -ne "$3" ]; then echo "received $n of $3 bytes" >&2; exit 3; fi
chmod "$2" "$t"
mv "$t" "$1"
trap - EXIT`

func (c *Client) uploadExec(ctx context.Context, r io.Reader, size int64, remotePath string, mode os.FileMode) error {
	cmd := "sh -c " + ShellQuote(uploadScript) + " nivis-upload " + ShellQuote(remotePath) + " " + fmt.Sprintf("%04o", mode.Perm()) + " " + fmt.Sprint(size)
	var stderr strings.Builder
	// LimitReader: never send more than announced; a short reader is
	// caught by the remote size check, and its error reported here.
	src := &errReader{r: io.LimitReader(r, size)}
	err := c.Run(ctx, cmd, src, nil, &stderr)
	if rerr := src.failure(); rerr != nil {
		return fmt.Errorf("read source: %w", rerr)
	}
	if err != nil {
		var ee *agent.ExitError
		if errors.As(err, &ee) {
			return exitcode.Errorf(exitcode.Change, "remote write failed (exit %d): %s", ee.Status, strings.TrimSpace(stderr.String()))
		}
		return err
	}
	return nil
}

func (c *Client) uploadSFTP(ctx context.Context, r io.Reader, size int64, remotePath string, mode os.FileMode) error {
	sc, err := sftp.NewClient(c.ssh, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		return exitcode.Wrap(exitcode.Connection, fmt.Errorf("start sftp: %w", err))
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	if err := sc.MkdirAll(path.Dir(remotePath)); err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("mkdir %s: %w", path.Dir(remotePath), err))
	}
	tmp := fmt.Sprintf("%s.nivis-upload.%d", remotePath, os.Getpid())
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("create %s: %w", tmp, err))
	}
	n, err := f.ReadFrom(io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("source ended after %d of %d bytes", n, size)
	}
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = sc.PosixRename(tmp, remotePath)
	}
	if err != nil {
		_ = sc.Remove(tmp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return exitcode.Wrap(exitcode.Change, err)
	}
	return nil
}

// errReader remembers the source's read error, which Run's stdin copy
// would otherwise swallow.
type errReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *errReader) failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// ShellQuote quotes s for a POSIX shell: 'it'\”s'.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
