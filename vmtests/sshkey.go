//go:build linux

package vmtests

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// testKeyName is the harness's SSH key in the cache directory. It is made
// once; every image authorizes it for root.
const testKeyName = "id_ed25519"

// ensureTestKey returns the private key file and its authorized_keys line,
// generating the pair on first use.
func ensureTestKey(ctx context.Context, cache string) (keyFile, authorized string, err error) {
	keyFile = filepath.Join(cache, testKeyName)
	lock, err := lockFile(ctx, keyFile+".lock")
	if err != nil {
		return "", "", err
	}
	defer lock.unlock()
	if pub, err := os.ReadFile(keyFile + ".pub"); err == nil {
		if _, err := os.Stat(keyFile); err == nil {
			return keyFile, strings.TrimSpace(string(pub)), nil
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "nivis-vmtests")
	if err != nil {
		return "", "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", err
	}
	authorized = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " nivis-vmtests"
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", "", fmt.Errorf("write test key: %w", err)
	}
	if err := writeFileAtomic(keyFile+".pub", []byte(authorized+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("write test key: %w", err)
	}
	return keyFile, authorized, nil
}

// writeFileAtomic writes to a temporary name in the same directory and
// renames, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
