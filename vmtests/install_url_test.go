//go:build linux

package vmtests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// guestHostAddr is the host as a QEMU user-network guest sees it: slirp
// forwards it to the host's 127.0.0.1.
const guestHostAddr = "10.0.2.2"

// TestInstallURL: the rescue system pulls the rootfs itself from an https
// URL (a server on the host's loopback, with a private CA the config names
// in system.caFile), checks its sha256 while extracting, and the install
// finishes (finalize and GRUB) in the target.
func TestInstallURL(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	sum, err := fileSHA256(rf.Path)
	if err != nil {
		t.Fatal(err)
	}
	cert, caPEM := selfSignedCA(t, net.ParseIP(guestHostAddr), net.ParseIP("127.0.0.1"))
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/rootfs.tar.zst" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, rf.Path)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	vm, _ := startInstallGuest(t)
	url := "https://" + guestHostAddr + ":" + port + "/rootfs.tar.zst"
	cfg := installConfig(t, "bios", rf, vm, "source: @ROOTFS@", "source: "+url+"\n  sha256: "+sum+"\n  caFile: "+caFile)
	out, errOut, code := installRun(t, nivis, vm, cfg, "--no-reboot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	if requests.Load() == 0 {
		t.Fatal("the host never fetched the URL")
	}
	if strings.Contains(errOut, "upload system") {
		t.Error("the rootfs was pushed from the client, not pulled by the host")
	}
	got, err := strictSSH(t, vm, false, "cat /mnt/etc/hostname; test -f /mnt/boot/grub/grub.cfg && echo grub-ok; test -f /mnt/bin/bash && echo bash-ok")
	if err != nil || !strings.Contains(got, "installed1") || !strings.Contains(got, "grub-ok") || !strings.Contains(got, "bash-ok") {
		t.Errorf("the target after a URL install: %v\n%s", err, got)
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// selfSignedCA returns a TLS certificate for ips that is its own CA, and
// that CA as PEM.
func selfSignedCA(t *testing.T, ips ...net.IP) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "nivis vmtests CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
