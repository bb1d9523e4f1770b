//go:build linux

package vmtests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// OCI layer contents the install tests look for: the second layer adds
// OCIMarker and deletes OCIWhiteout with a whiteout entry.
const (
	OCIMarker   = "/etc/nivis-oci-layer2"
	OCIWhiteout = "/etc/motd"
)

// OCILayout returns an OCI image layout (cached beside the rootfs it is
// made of) with two layers: the rootfs tarball as a zstd layer, and a
// small gzip layer that adds OCIMarker and whites out OCIWhiteout.
func OCILayout(ctx context.Context, rf *Rootfs) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "oci-"+rf.Key)
	lock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", err
	}
	defer lock.unlock()
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", err
	}
	put := func(data []byte) (string, int64, error) {
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		return "sha256:" + d, int64(len(data)), os.WriteFile(filepath.Join(blobs, d), data, 0o644)
	}

	// Layer 0: the rootfs tarball itself (already zstd), linked in.
	f, err := os.Open(rf.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	compressed, plain := sha256.New(), sha256.New()
	zr, err := zstd.NewReader(io.TeeReader(f, compressed))
	if err != nil {
		return "", err
	}
	_, err = io.Copy(plain, zr)
	zr.Close()
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(compressed, f); err != nil { // what the decoder did not read
		return "", err
	}
	l0 := hex.EncodeToString(compressed.Sum(nil))
	if err := os.Link(rf.Path, filepath.Join(blobs, l0)); err != nil {
		return "", err
	}

	// Layer 1: a marker file and a whiteout.
	tb, gz, err := markerLayer()
	if err != nil {
		return "", err
	}
	l1plain := sha256.Sum256(tb)
	l1, l1size, err := put(gz)
	if err != nil {
		return "", err
	}

	type desc struct {
		MediaType string            `json:"mediaType"`
		Digest    string            `json:"digest"`
		Size      int64             `json:"size"`
		Platform  map[string]string `json:"platform,omitempty"`
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{
			"sha256:" + hex.EncodeToString(plain.Sum(nil)), "sha256:" + hex.EncodeToString(l1plain[:]),
		}},
	})
	cd, cs, err := put(cfg)
	if err != nil {
		return "", err
	}
	st, _ := os.Stat(rf.Path)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: cs},
		"layers": []desc{
			{MediaType: "application/vnd.oci.image.layer.v1.tar+zstd", Digest: "sha256:" + l0, Size: st.Size()},
			{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: l1, Size: l1size},
		},
	})
	md, ms, err := put(man)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return "", err
	}
	idx, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []desc{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: md, Size: ms,
			Platform: map[string]string{"architecture": "amd64", "os": "linux"}}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json.tmp"), idx, 0o644); err != nil {
		return "", err
	}
	return dir, os.Rename(filepath.Join(dir, "index.json.tmp"), filepath.Join(dir, "index.json"))
}

// markerLayer is the second layer: OCIMarker added, OCIWhiteout whited
// out; it returns the tar and its gzip.
func markerLayer() (plain, gzipped []byte, err error) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	marker := []byte("added by the second OCI layer\n")
	for _, h := range []*tar.Header{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: OCIMarker[1:], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(marker))},
		{Name: filepath.Join(filepath.Dir(OCIWhiteout[1:]), ".wh."+filepath.Base(OCIWhiteout)), Typeflag: tar.TypeReg, Mode: 0o644},
	} {
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			return nil, nil, err
		}
		if h.Size > 0 {
			tw.Write(marker)
		}
	}
	tw.Close()
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(tb.Bytes())
	gw.Close()
	return tb.Bytes(), gz.Bytes(), nil
}

// TestOCI returns the cached two-layer OCI layout of the install rootfs.
func TestOCI(t testing.TB, rf *Rootfs) string {
	t.Helper()
	start := time.Now()
	dir, err := OCILayout(context.Background(), rf)
	if err != nil {
		t.Fatalf("OCI layout: %v", err)
	}
	t.Logf("stage oci layout: %s in %s", dir, time.Since(start).Round(time.Millisecond))
	return dir
}
