//go:build linux

package install

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// localAgent serves the agent verbs in-process, through the same table and
// protocol encoding as `nivis agent-stream` on a host.
func localAgent(onEvent func(agent.Event)) agent.Conn {
	return &agent.Local{Table: agent.NewTable(Handlers()), OnEvent: onEvent}
}

func TestPushTarball(t *testing.T) {
	root := t.TempDir()
	data := tarBytes(t, dir("etc"), file("etc/os-release", "ID=debian\n"), symlink("bin", "usr/bin"), file("usr/bin/sh", strings.Repeat("#", 100000)))
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		var read int64
		var events int
		la := localAgent(func(agent.Event) { events++ })
		res, err := Push(context.Background(), la, ExtractRequest{Root: root, Format: FormatAuto}, bytes.NewReader(compress(t, c, data)), PushOptions{
			OnRead: func(n int64) { read = n },
		})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		// Whatever the source, zstd on the wire.
		if res.Compression != CompressionZstd || res.Kind != KindTar || res.Stats.Files != 2 || res.Stats.Bytes != 100000+10 {
			t.Errorf("%s: result %+v", c, res)
		}
		if read != int64(len(compress(t, c, data))) || res.Received == 0 {
			t.Errorf("%s: read %d received %d", c, read, res.Received)
		}
		if events == 0 {
			t.Errorf("%s: no progress events", c)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/bin/sh")); len(b) != 100000 {
		t.Error("content")
	}
	if _, err := os.Stat(filepath.Join(root, StateFile)); err == nil {
		t.Error("state marker left after a successful extraction")
	}
}

func TestPushHostileIsRefused(t *testing.T) {
	tmp := t.TempDir()
	root, sentinel := filepath.Join(tmp, "root"), filepath.Join(tmp, "sentinel")
	os.Mkdir(root, 0o755)
	os.Mkdir(sentinel, 0o755)
	data := tarBytes(t, file("ok", "fine"), symlink("evil", sentinel), file("evil/file", "pwned"))
	_, err := Push(context.Background(), localAgent(nil), ExtractRequest{Root: root}, bytes.NewReader(data), PushOptions{})
	var re *agent.RemoteError
	if !errors.As(err, &re) || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), `"evil/file" refused`) {
		t.Fatalf("got %v", err)
	}
	if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
		t.Fatal("wrote outside the root")
	}
	// The root stays marked as unfinished: finalize refuses it.
	if _, err := Finalize(FinalizeOptions{Root: root, Network: NetworkNone}); exitcode.Of(err) != exitcode.Precondition {
		t.Fatalf("finalize after a refused extraction: %v", err)
	}
}

func TestPushLayers(t *testing.T) {
	layout := t.TempDir()
	ociLayout(t, layout)
	im, err := OpenImage(layout, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	root := t.TempDir()
	for i, l := range im.Layers {
		rc, _ := l.Open()
		n := i
		if _, err := Push(context.Background(), localAgent(nil), ExtractRequest{Root: root, Layer: &n}, rc, PushOptions{}); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	checkLayered(t, root)
}

// rawImage is 8 MiB: data, a long zero run, data, zeros at the end.
func rawImage() []byte {
	img := make([]byte, 8<<20)
	img[510], img[511] = 0x55, 0xaa
	rand.Read(img[1<<20 : 1<<20+70000])
	rand.Read(img[5<<20 : 6<<20])
	return img
}

func TestWriteRawToFile(t *testing.T) {
	img := rawImage()
	dev := filepath.Join(t.TempDir(), "disk")
	// Old content everywhere: zero runs must really become zeros.
	os.WriteFile(dev, bytes.Repeat([]byte{0xff}, 10<<20), 0o644)
	res, err := Push(context.Background(), localAgent(nil), ExtractRequest{Format: FormatAuto, Device: dev, Size: int64(len(img))}, bytes.NewReader(img), PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != KindRaw || res.Raw == nil || res.Raw.Bytes != int64(len(img)) || res.Raw.Zeroed < 6<<20 {
		t.Fatalf("result %+v %+v", res, res.Raw)
	}
	got, _ := os.ReadFile(dev)
	if !bytes.Equal(got, img) {
		t.Fatal("device content differs from the image")
	}
	var st unix.Stat_t
	unix.Stat(dev, &st)
	if st.Blocks*512 > 3<<20 {
		t.Errorf("%d bytes allocated: zero runs were written", st.Blocks*512)
	}
	// Announced size larger than what arrives.
	if _, err := WriteRaw(context.Background(), bytes.NewReader(img[:4096]), dev, 8192, nil); exitcode.Of(err) != exitcode.Change {
		t.Errorf("short stream: %v", err)
	}
}

func TestWriteRawToLoopDevice(t *testing.T) {
	requireRoot(t)
	backing := filepath.Join(t.TempDir(), "backing")
	os.WriteFile(backing, bytes.Repeat([]byte{0xee}, 8<<20), 0o644)
	out, err := exec.Command("losetup", "-f", "--show", backing).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	img := rawImage()
	if _, err := WriteRaw(context.Background(), bytes.NewReader(img), loop, int64(len(img))+1, nil); exitcode.Of(err) != exitcode.Precondition {
		t.Fatalf("an image larger than the device: %v", err)
	}
	st, err := WriteRaw(context.Background(), bytes.NewReader(img), loop, int64(len(img)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(loop)
	if !bytes.Equal(got, img) || st.Zeroed < 6<<20 {
		t.Fatalf("loop content differs (zeroed %d)", st.Zeroed)
	}
}

func TestFetch(t *testing.T) {
	payload := compress(t, CompressionZstd, tarBytes(t, file("etc/os-release", "ID=debian\n"), file("big", strings.Repeat("z", 1<<20))))
	sum := sha256.Sum256(payload)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(payload)
	}))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	ctx := context.Background()

	root := t.TempDir()
	res, err := Fetch(ctx, FetchRequest{ExtractRequest: ExtractRequest{Root: root}, URL: srv.URL + "/rootfs.tar.zst", SHA256: hex.EncodeToString(sum[:]), CAPEM: ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Received != int64(len(payload)) || res.Stats.Files != 2 {
		t.Errorf("result %+v", res)
	}
	if _, err := Finalize(FinalizeOptions{Root: root, Network: NetworkNone}); err != nil {
		t.Fatalf("a verified root must finalize: %v", err)
	}

	root = t.TempDir()
	_, err = Fetch(ctx, FetchRequest{ExtractRequest: ExtractRequest{Root: root}, URL: srv.URL + "/rootfs.tar.zst", SHA256: strings.Repeat("0", 64), CAPEM: ca}, nil)
	if exitcode.Of(err) != exitcode.Change || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("mismatch: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, StateFile)); !strings.Contains(string(b), "tainted") {
		t.Fatalf("root not marked tainted: %q", b)
	}
	if _, err := Finalize(FinalizeOptions{Root: root, Network: NetworkNone}); exitcode.Of(err) != exitcode.Precondition {
		t.Fatalf("finalize of a tainted root: %v", err)
	}

	for _, bad := range []FetchRequest{
		{URL: "http://example.com/x.tar", SHA256: strings.Repeat("0", 64)},
		{URL: srv.URL, SHA256: ""},
	} {
		if _, err := Fetch(ctx, bad, nil); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	// Without the CA the server is not trusted.
	if _, err := Fetch(ctx, FetchRequest{ExtractRequest: ExtractRequest{Root: t.TempDir()}, URL: srv.URL, SHA256: hex.EncodeToString(sum[:])}, nil); exitcode.Of(err) != exitcode.Precondition {
		t.Errorf("untrusted certificate: %v", err)
	}
}

func TestPushExtraFiles(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/ssh/sshd_config.d-extra"), []byte("Port 2222\n"), 0o600)
	os.Symlink("sshd_config.d-extra", filepath.Join(src, "etc/ssh/link"))
	os.Lchown(filepath.Join(src, "etc/ssh/sshd_config.d-extra"), 1000, 1000) // the operator's uid
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "keep"), []byte("k"), 0o644)
	if _, err := Push(context.Background(), localAgent(nil), ExtractRequest{Root: root, Extra: true}, ExtraFilesTar(src), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config.d-extra")); string(b) != "Port 2222\n" || mode(t, root, "etc/ssh/sshd_config.d-extra") != 0o600 {
		t.Fatal("extra file")
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/ssh/link")); l != "sshd_config.d-extra" {
		t.Fatal("extra symlink")
	}
	if os.Geteuid() == 0 {
		if s := lstat(t, filepath.Join(root, "etc/ssh/sshd_config.d-extra")); s.Uid != 0 || s.Gid != 0 {
			t.Errorf("owner %d:%d, want root", s.Uid, s.Gid)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "keep")); err != nil {
		t.Fatal("extra files must not clear the root")
	}
}
