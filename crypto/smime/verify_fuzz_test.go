package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

// Stored signed samples (testdata/verify, rewritten with -update) seed
// FuzzVerify without generating keys in every fuzz worker, and guard
// against regressions in reading what we and OpenSSL wrote earlier.
const sampleDir = "testdata/verify"

func TestVerifySamples(t *testing.T) {
	if *update {
		writeVerifySamples(t)
	}
	roots, now := sampleRoots(t)
	files, _ := filepath.Glob(filepath.Join(sampleDir, "*.eml"))
	if len(files) == 0 {
		t.Fatal("no samples; run go test -run TestVerifySamples -update")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Verify(msg, VerifyOptions{Roots: roots, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Valid || !res.FromMatches {
				t.Fatalf("Valid=%v FromMatches=%v reasons %v", res.Valid, res.FromMatches, res.Reasons)
			}
			if weak := strings.Contains(f, "sha1"); weak != (len(res.Weak) > 0) {
				t.Errorf("Weak = %v", res.Weak)
			}
		})
	}
}

func sampleRoots(t testing.TB) (*x509.CertPool, time.Time) {
	data, err := os.ReadFile(filepath.Join(sampleDir, "root.pem"))
	if err != nil {
		t.Fatalf("%v (run go test -run TestVerifySamples -update)", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("root.pem: no PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	// Inside every sample certificate's validity.
	return pool, root.NotBefore.Add(2 * time.Hour)
}

func writeVerifySamples(t *testing.T) {
	pki, err := mailtest.GeneratePKI("smimeproxy samples")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sampleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(sampleDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root.pem", mailtest.CertPEM(pki.Root))
	rsa := pki.User(t, "alice@example.test", mailtest.RSA)
	ec := pki.User(t, "alice@example.test", mailtest.P256)
	write("ours-detached-rsa.eml", signed(t, rsa, msgNested, false))
	write("ours-opaque-p256.eml", signed(t, ec, msg8bit, true))
	bin := mailtest.LookTool(t, "openssl", "openssl")
	files := writeSigFiles(t, pki, rsa)
	content := []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\nHello from OpenSSL\r\n")
	for name, extra := range map[string][]string{
		"openssl-detached-sha1.eml": {"-md", "sha1"},
		"openssl-opaque.eml":        {"-nodetach"},
	} {
		args := append([]string{"cms", "-sign", "-signer", files.user.SignCert, "-inkey", files.user.SignKey, "-certfile", files.user.Chain}, extra...)
		out, err := sigOpenSSL(t, bin, content, args...)
		if err != nil {
			t.Fatal(err)
		}
		write(name, append([]byte("From: alice@example.test\r\nSubject: openssl sample\r\n"), out...))
	}
}

// FuzzVerify feeds damaged signed messages to Verify. Whatever it returns
// must be coherent: a valid result names a signer and a chain, an invalid
// one says why.
func FuzzVerify(f *testing.F) {
	roots, now := sampleRoots(f)
	files, _ := filepath.Glob(filepath.Join(sampleDir, "*.eml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x\r\nContent-Type: application/pkcs7-signature\r\n\r\nMAA=\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, err := Verify(msg, VerifyOptions{Roots: roots, Now: now})
		if err != nil {
			return
		}
		if res.Valid && (res.Signer == nil || len(res.Chain) == 0) {
			t.Fatal("valid without signer or chain")
		}
		if !res.Valid && len(res.Reasons) == 0 {
			t.Fatal("invalid without a reason")
		}
		if res.Valid && !bytes.Equal(res.Entity, ToCRLF(res.Entity)) {
			t.Fatal("entity with bare LF")
		}
	})
}
