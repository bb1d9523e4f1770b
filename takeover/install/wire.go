package install

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/carry"
)

// Agent verbs. VerbExtract streams: its stdin is the data; the others are
// ordinary agent verbs with a JSON request.
var (
	VerbExtract    = agent.StreamVerb[ExtractRequest, ExtractResult]{Name: "install-extract"}
	VerbFetch      = agent.Verb[FetchRequest, ExtractResult]{Name: "install-fetch"}
	VerbFinalize   = agent.Verb[FinalizeRequest, FinalizeResult]{Name: "install-finalize"}
	VerbBootloader = agent.Verb[BootloaderOptions, BootloaderResult]{Name: "install-bootloader"}
	VerbSecrets    = agent.Verb[SecretsRequest, SecretsResult]{Name: "install-secrets"}
)

// StateFile is written at the top of the target root while an extraction
// runs and stays when it fails (or a download's sha256 did not match):
// Finalize refuses a root that has it.
const StateFile = ".nivis-install-state"

// SpoolDir holds an image archive's blobs on the target disk while its
// layers are applied (an image arriving as one stream needs random access).
const SpoolDir = ".nivis-spool"

// ExtractRequest is install-extract's argument: what the stream on stdin is
// and where it goes. The stream may be compressed any way OpenSource knows;
// the client sends zstd (see Push).
type ExtractRequest struct {
	// Root is the mounted target root (tar, oci, layer).
	Root string `json:"root,omitempty"`
	// Format of the payload: auto, tar, oci (an OCI layout or docker-save
	// archive as one tar, spooled under Root) or raw.
	Format string `json:"format,omitempty"`
	// Layer, when set, says the payload is layer N of an image: OCI
	// whiteouts are applied. Send layers in order, 0 first.
	Layer *int `json:"layer,omitempty"`
	// Device is the block device a raw image is written to.
	Device string `json:"device,omitempty"`
	// Size is the decompressed size when known: a raw image larger than the
	// device is refused before anything is written.
	Size int64 `json:"size,omitempty"`
	// Arch picks the platform of a multi-platform image (default: the
	// agent's own).
	Arch string `json:"arch,omitempty"`
	// Overwrite-only extras (--extra-files) set this to keep the files'
	// ownership from the archive without touching the install state marker.
	Extra bool `json:"extra,omitempty"`
}

// ExtractResult is what install-extract and install-fetch return.
type ExtractResult struct {
	Kind        Kind        `json:"kind"`
	Compression Compression `json:"compression"`
	Stats       Stats       `json:"stats"`
	Raw         *RawStats   `json:"raw,omitempty"`
	// SHA256 of the bytes as downloaded (install-fetch only).
	SHA256 string `json:"sha256,omitempty"`
	// Received is the number of bytes read from the wire or the download.
	Received int64 `json:"received"`
}

// RawStats are the totals of writing a raw image to a device.
type RawStats struct {
	Device string `json:"device"`
	// Bytes is the image size; Zeroed of those were all-zero blocks not
	// written but zeroed (or punched) on the device.
	Bytes    int64 `json:"bytes"`
	Zeroed   int64 `json:"zeroed"`
	Duration int64 `json:"duration_ns"`
	// Reread is true when the kernel re-read the partition table.
	Reread bool `json:"reread"`
}

// FetchRequest is install-fetch's request: the host pulls the source itself.
type FetchRequest struct {
	ExtractRequest
	URL string `json:"url"`
	// SHA256 (hex) of the file at URL: required. The source is extracted
	// while it is hashed; on a mismatch the root is marked tainted
	// (StateFile) and the verb fails.
	SHA256 string `json:"sha256"`
	// CAPEM are extra trusted CA certificates, for a rescue system without a
	// CA bundle.
	CAPEM string `json:"ca_pem,omitempty"`
}

// FinalizeRequest is install-finalize's request (see FinalizeOptions).
type FinalizeRequest = FinalizeOptions

// FinalizeOptions says how to finish an extracted root.
type FinalizeOptions struct {
	Root     string `json:"root"`
	Hostname string `json:"hostname,omitempty"`
	// Fstab and Crypttab are the files' whole text (from the disk layout);
	// empty leaves the root's own.
	Fstab    string `json:"fstab,omitempty"`
	Crypttab string `json:"crypttab,omitempty"`
	// AuthorizedKeys are merged into root's authorized_keys.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
	// HostKeyDir, when set, holds ssh_host_*_key files copied into
	// /etc/ssh (--copy-host-keys; in the rescue system: carry.HostKeyDir).
	HostKeyDir string `json:"host_key_dir,omitempty"`
	// Network is "keep" (configure what was captured), "dhcp" (DHCP on
	// every ethernet port, by MAC) or "none".
	Network string `json:"network,omitempty"`
	// State is the captured network; nil with keep reads carry.File.
	State *carry.Network `json:"state,omitempty"`
	// Chown sets owners recursively after extra files were extracted.
	Chown []Chown `json:"chown,omitempty"`
	// MachineID keeps this id instead of a fresh one (rarely wanted).
	MachineID string `json:"machine_id,omitempty"`
}

// Chown is one --chown PATH UID:GID, PATH relative to the root.
type Chown struct {
	Path string `json:"path"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// FinalizeResult lists what Finalize wrote.
type FinalizeResult struct {
	Written  []string `json:"written"`
	Enabled  []string `json:"enabled,omitempty"`
	Renderer string   `json:"renderer,omitempty"` // networkd, netplan or ifupdown
	Warnings []string `json:"warnings,omitempty"`
}

// SecretsRequest is install-secrets' request: files written on the host
// (not in the root) before disko runs, e.g. LUKS key files.
type SecretsRequest struct {
	Files []SecretFile `json:"files"`
}

// SecretFile is one secret. Data never appears in logs: the type prints as
// redacted; only its JSON carries it.
type SecretFile struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
}

func (s SecretFile) String() string   { return fmt.Sprintf("{%s [redacted]}", s.Path) }
func (s SecretFile) GoString() string { return s.String() }

// SecretsResult lists the paths written.
type SecretsResult struct {
	Written []string `json:"written"`
}

// PushOptions tune Push.
type PushOptions struct {
	// OnRead is called with the running count of source bytes read, for a
	// progress bar against the source file's size.
	OnRead func(n int64)
	// Level is the zstd level on the wire (default zstd.SpeedBetterCompression:
	// the host, not the client, is the bottleneck, so fewer bytes to decrypt
	// win).
	Level zstd.EncoderLevel
}

// Push streams src to the host's install-extract verb over c: a zstd
// source goes as it is, anything else is decompressed here and zstd
// compressed for the wire.
func Push(ctx context.Context, c agent.Conn, req ExtractRequest, src io.Reader, o PushOptions) (*ExtractResult, error) {
	counted := &countingReader{r: src, fn: o.OnRead}
	wire, err := WireStream(counted, o.Level)
	if err != nil {
		return nil, err
	}
	defer wire.Close()
	return VerbExtract.Call(ctx, c, &req, wire)
}

type countingReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && n > 0 {
		c.fn(c.n)
	}
	return n, err
}

// WireStream returns src as zstd: unchanged when it already is, otherwise
// decompressed (gzip, xz, bzip2 are slow to decode on a small host) and
// compressed again at level (0 = SpeedBetterCompression) with every CPU.
func WireStream(src io.Reader, level zstd.EncoderLevel) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(8)
	comp := DetectCompression(head)
	if comp == CompressionZstd {
		return io.NopCloser(br), nil
	}
	var plain io.Reader = br
	if comp != CompressionNone {
		s, err := OpenSource(br, FormatTar) // the kind does not matter here
		if err != nil {
			return nil, err
		}
		plain = s
	}
	if level == 0 {
		level = zstd.SpeedBetterCompression
	}
	pr, pw := io.Pipe()
	enc, err := zstd.NewWriter(pw, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.NumCPU()))
	if err != nil {
		return nil, err
	}
	go func() {
		_, err := io.Copy(enc, plain)
		if cerr := enc.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}
