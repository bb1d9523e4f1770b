//go:build linux

package install

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The two layers of TestExtractWhiteouts, as an image.
func testLayers(t *testing.T) [][]byte {
	l1 := tarBytes(t, dir("etc"), file("etc/a", "a"), file("etc/b", "b"), dir("opt/d"), file("opt/d/x", "x"), file("opt/d/y", "y"), dir("var/cache/big"), file("var/cache/big/f", "f"))
	l2 := tarBytes(t, file("etc/.wh.a", ""), dir("opt/d"), file("opt/d/z", "z"), file("opt/d/.wh..wh..opq", ""), file("var/cache/.wh.big", ""), file("new", "n"))
	return [][]byte{compress(t, CompressionGzip, l1), compress(t, CompressionZstd, l2)}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociLayout writes an OCI image layout with a two-platform index.
func ociLayout(t *testing.T, dirPath string) {
	t.Helper()
	blobs := filepath.Join(dirPath, "blobs/sha256")
	os.MkdirAll(blobs, 0o755)
	put := func(b []byte) string {
		d := digest(b)
		os.WriteFile(filepath.Join(blobs, d[len("sha256:"):]), b, 0o644)
		return d
	}
	var layers []map[string]any
	for i, l := range testLayers(t) {
		mt := "application/vnd.oci.image.layer.v1.tar+gzip"
		if i == 1 {
			mt = "application/vnd.oci.image.layer.v1.tar+zstd"
		}
		layers = append(layers, map[string]any{"mediaType": mt, "digest": put(l), "size": len(l)})
	}
	cfg := put([]byte(`{"architecture":"amd64","os":"linux"}`))
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg}, "layers": layers})
	other, _ := json.Marshal(map[string]any{"schemaVersion": 2, "layers": []any{}})
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{
		map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(other), "platform": map[string]string{"architecture": "riscv64", "os": "linux"}},
		map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest), "platform": map[string]string{"architecture": "amd64", "os": "linux"}},
		map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(other), "platform": map[string]string{"architecture": "unknown", "os": "unknown"}},
	}})
	os.WriteFile(filepath.Join(dirPath, "index.json"), index, 0o644)
	os.WriteFile(filepath.Join(dirPath, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// dockerSave writes a legacy `docker save` tarball, its second layer a
// symlink to a copy of the first's directory as docker does for duplicates.
func dockerSave(t *testing.T) []byte {
	ls := testLayers(t)
	id1, id2 := digest(ls[0])[7:], digest(ls[1])[7:]
	manifest, _ := json.Marshal([]map[string]any{{"Config": "cfg.json", "RepoTags": []string{"x:latest"}, "Layers": []string{id1 + "/layer.tar", id2 + "/layer.tar"}}})
	return tarBytes(t,
		dir(id1+"/"), entry{hdr: tar.Header{Name: id1 + "/layer.tar"}, body: string(ls[0])},
		dir(id2+"/"), entry{hdr: tar.Header{Name: "shared/layer.tar"}, body: string(ls[1])},
		symlink(id2+"/layer.tar", "../shared/layer.tar"),
		file("cfg.json", "{}"),
		file("manifest.json", string(manifest)),
	)
}

func applyImage(t *testing.T, im *Image, root string) {
	t.Helper()
	if len(im.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(im.Layers))
	}
	for _, l := range im.Layers {
		rc, err := l.Open()
		if err != nil {
			t.Fatal(err)
		}
		src, err := OpenSource(rc, FormatTar)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Extract(context.Background(), tar.NewReader(src), root, ExtractOptions{Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
		src.Close()
		rc.Close()
	}
}

func TestOpenImageLayout(t *testing.T) {
	layout := t.TempDir()
	ociLayout(t, layout)
	im, err := OpenImage(layout, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	root := t.TempDir()
	applyImage(t, im, root)
	checkLayered(t, root)
	if _, err := OpenImage(layout, "arm64"); err == nil {
		t.Error("an arm64 image was found in an amd64+riscv64 index")
	}
}

func TestOpenImageDockerSave(t *testing.T) {
	p := filepath.Join(t.TempDir(), "image.tar")
	os.WriteFile(p, dockerSave(t), 0o644)
	im, err := OpenImage(p, "")
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	root := t.TempDir()
	applyImage(t, im, root)
	checkLayered(t, root)
}

// TestExtractImageStream sends whole image archives as one stream (what
// install-fetch gets) through the spool, in both layouts.
func TestExtractImageStream(t *testing.T) {
	layout := t.TempDir()
	ociLayout(t, layout)
	var ociTar bytes.Buffer
	tw := tar.NewWriter(&ociTar)
	if err := tw.AddFS(os.DirFS(layout)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	for name, data := range map[string][]byte{"oci": ociTar.Bytes(), "docker-save": dockerSave(t)} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			src, err := OpenSource(bytes.NewReader(compress(t, CompressionZstd, data)), FormatAuto)
			if err != nil {
				t.Fatal(err)
			}
			if src.Kind != KindImage {
				t.Fatalf("detected %s", src.Kind)
			}
			if _, err := ExtractImage(context.Background(), src, root, "amd64", ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			checkLayered(t, root)
			if _, err := os.Stat(filepath.Join(root, SpoolDir)); err == nil {
				t.Error("spool left behind")
			}
		})
	}
}
