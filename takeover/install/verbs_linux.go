//go:build linux

package install

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{
		agent.HandleStream(VerbExtract, serveExtract),
		agent.Handle(VerbFetch, serveFetch),
		agent.Handle(VerbFinalize, serveFinalize),
		agent.Handle(VerbBootloader, serveBootloader),
		agent.Handle(VerbSecrets, serveSecrets),
		agent.Handle(VerbKexecBoot, serveKexecBoot),
	}
}

func serveExtract(ctx context.Context, reqp *ExtractRequest, data io.Reader, ev *agent.Emitter) (*ExtractResult, error) {
	req := *reqp
	cr := &countingReader{r: data}
	res, err := ExtractStream(ctx, cr, req, ev)
	if res != nil {
		res.Received = cr.n
	}
	return res, err
}

// ExtractStream opens r as a source (any compression) and installs it as
// req says: a tar or an image layer into req.Root, an image archive through
// the spool, a raw image onto req.Device. Progress goes to ev.
func ExtractStream(ctx context.Context, r io.Reader, req ExtractRequest, ev *agent.Emitter) (*ExtractResult, error) {
	format := req.Format
	if req.Layer != nil {
		format = FormatTar
	}
	src, err := OpenSource(r, format)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	res := &ExtractResult{Kind: src.Kind, Compression: src.Compression}
	if src.Kind == KindRaw {
		if req.Device == "" {
			return res, exitcode.Errorf(exitcode.Usage, "a raw image needs a target device")
		}
		ev.Step("raw", fmt.Sprintf("writing a raw image to %s", req.Device))
		st, err := WriteRaw(ctx, src, req.Device, req.Size, func(done int64) {
			ev.Emit(agent.Event{Kind: "progress", Step: "raw", Done: done, Total: req.Size})
		})
		res.Raw = &st
		return res, err
	}
	if req.Root == "" {
		return res, exitcode.Errorf(exitcode.Usage, "no target root given")
	}
	if fi, err := os.Stat(req.Root); err != nil || !fi.IsDir() {
		return res, exitcode.Errorf(exitcode.Precondition, "target root %s is not a directory: mount the target first", req.Root)
	}
	if !req.Extra {
		what := "extracting"
		if req.Layer != nil {
			what = fmt.Sprintf("extracting layer %d", *req.Layer)
		}
		if err := setState(req.Root, what); err != nil {
			return res, err
		}
	}
	opts := ExtractOptions{
		Whiteouts: req.Layer != nil,
		Protect:   []string{StateFile, SpoolDir},
		OnProgress: func(s Stats) {
			ev.Emit(agent.Event{Kind: "progress", Step: "extract", Done: s.Bytes, Fields: map[string]any{"entries": s.Entries}})
		},
	}
	switch src.Kind {
	case KindImage:
		ev.Step("extract", "spooling the image archive, then applying its layers")
		res.Stats, err = ExtractImage(ctx, src, req.Root, req.Arch, opts)
	default:
		res.Stats, err = Extract(ctx, tar.NewReader(src), req.Root, opts)
	}
	if err != nil {
		return res, err
	}
	if err := syncRoot(req.Root); err != nil {
		return res, err
	}
	if !req.Extra {
		if err := os.Remove(stateFile(req.Root)); err != nil && !os.IsNotExist(err) {
			return res, exitcode.Wrap(exitcode.Change, err)
		}
	}
	return res, nil
}

func stateFile(root string) string { return strings.TrimSuffix(root, "/") + "/" + StateFile }

// setState records an unfinished or untrusted root (see StateFile).
func setState(root, what string) error {
	b, _ := json.Marshal(map[string]string{"state": what, "at": time.Now().UTC().Format(time.RFC3339)})
	r, err := os.OpenRoot(root)
	if err != nil {
		return exitcode.Wrap(exitcode.Precondition, err)
	}
	defer r.Close()
	if err := r.WriteFile(StateFile, append(b, '\n'), 0o600); err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("marking %s as being installed: %w", root, err))
	}
	return nil
}

// syncRoot flushes the target filesystem: the data must be on disk before
// anyone reboots.
func syncRoot(root string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return exitcode.Wrap(exitcode.Change, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("syncfs %s: %w", root, err))
	}
	return nil
}

func serveFetch(ctx context.Context, reqp *FetchRequest, ev *agent.Emitter) (*ExtractResult, error) {
	req := *reqp
	return Fetch(ctx, req, ev)
}

// Fetch downloads req.URL on the host and installs it as it arrives, hashing
// the bytes on the way. The sha256 is only known at the end: on a mismatch
// the root is marked tainted (StateFile; Finalize then refuses it) or the
// raw device is reported as holding unverified data, and Fetch fails.
func Fetch(ctx context.Context, req FetchRequest, ev *agent.Emitter) (*ExtractResult, error) {
	u, err := url.Parse(req.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, exitcode.Errorf(exitcode.Usage, "system.source %q: only https URLs are fetched (or give a local path to push it)", req.URL)
	}
	want := strings.ToLower(strings.TrimPrefix(req.SHA256, "sha256:"))
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		return nil, exitcode.Errorf(exitcode.Usage, "system.sha256 must be the 64 hex digits of the file at %s", req.URL)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if req.CAPEM != "" && !pool.AppendCertsFromPEM([]byte(req.CAPEM)) {
		return nil, exitcode.Errorf(exitcode.Usage, "ca_pem holds no certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client := &http.Client{Transport: tr}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	ev.Step("fetch", "downloading "+req.URL)
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("the host cannot download %s: %w (no route or DNS in the rescue system? a private CA? push the file from here instead)", req.URL, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, exitcode.Errorf(exitcode.Precondition, "download %s: %s", req.URL, resp.Status)
	}
	h := sha256.New()
	var last time.Time
	body := &countingReader{r: io.TeeReader(resp.Body, h), fn: func(n int64) {
		if time.Since(last) >= 500*time.Millisecond {
			last = time.Now()
			ev.Emit(agent.Event{Kind: "progress", Step: "fetch", Done: n, Total: resp.ContentLength})
		}
	}}
	res, err := ExtractStream(ctx, body, req.ExtractRequest, ev)
	if err != nil {
		return res, err
	}
	// The archive may end before the file does (tar padding): hash it all.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return res, exitcode.Wrap(exitcode.Change, fmt.Errorf("download %s: %w", req.URL, err))
	}
	res.Received = body.n
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if res.SHA256 != want {
		msg := fmt.Sprintf("sha256 mismatch for %s: got %s, want %s", req.URL, res.SHA256, want)
		if res.Kind == KindRaw {
			return res, exitcode.Errorf(exitcode.Change, "%s; %s now holds unverified data: do not boot it", msg, req.Device)
		}
		if req.Root != "" {
			_ = setState(req.Root, "tainted: "+msg)
		}
		return res, exitcode.Errorf(exitcode.Change, "%s; the root %s was extracted from it and is marked tainted: fix the URL or checksum and run the install phase again", msg, req.Root)
	}
	return res, nil
}

func serveFinalize(ctx context.Context, reqp *FinalizeRequest, ev *agent.Emitter) (*FinalizeResult, error) {
	req := *reqp
	res, err := Finalize(req)
	if res != nil {
		for _, w := range res.Warnings {
			ev.Logf("warning", "%s", w)
		}
	}
	return res, err
}

func serveBootloader(ctx context.Context, reqp *BootloaderOptions, ev *agent.Emitter) (*BootloaderResult, error) {
	req := *reqp
	ev.Step("bootloader", "installing "+req.Kind)
	return InstallBootloader(ctx, req, ev.OpLog())
}

func serveSecrets(ctx context.Context, reqp *SecretsRequest, ev *agent.Emitter) (*SecretsResult, error) {
	req := *reqp
	done, err := WriteSecrets(req.Files)
	return &SecretsResult{Written: done}, err
}
