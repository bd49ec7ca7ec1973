package imap

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// benchCrypto makes the S/MIME messages of the benchmark (AES-256-CBC
// enveloped to alice's RSA-2048 encryption certificate) and the viewer
// that opens them. The proxy child process loads the same key from the
// files the parent writes (IMAP_BENCH_KEYS).
type benchCrypto struct {
	cacheBytes int64
	keys       []smime.KeyPair
}

const benchCacheBytes = 256 << 20

func newBenchCrypto(tb testing.TB) *benchCrypto {
	bc := &benchCrypto{cacheBytes: benchCacheBytes}
	if dir := os.Getenv("IMAP_BENCH_KEYS"); dir != "" {
		certPEM, err := os.ReadFile(filepath.Join(dir, "enc.crt"))
		if err != nil {
			tb.Fatal(err)
		}
		keyPEM, err := os.ReadFile(filepath.Join(dir, "enc.key"))
		if err != nil {
			tb.Fatal(err)
		}
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			tb.Fatal("bench keys: no PEM")
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		bc.keys = []smime.KeyPair{{Cert: cert, Key: key}}
		return bc
	}
	u := mailtest.NewPKI(tb).User(tb, testUser, mailtest.RSA)
	bc.keys = []smime.KeyPair{{Cert: u.EncCert, Key: u.EncKey}}
	return bc
}

// writeKeys puts the key where a child process finds it.
func (bc *benchCrypto) writeKeys(tb testing.TB) string {
	dir := tb.TempDir()
	keyPEM, err := mailtest.KeyPEM(bc.keys[0].Key)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enc.crt"), mailtest.CertPEM(bc.keys[0].Cert), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enc.key"), keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func (bc *benchCrypto) encrypt(tb testing.TB, subject string, size int) []byte {
	inner := plainMessage(subject, benchBody(size*3/4, len(subject)))
	var out bytes.Buffer
	if err := smime.Encrypt(&out, inner, []smime.Recipient{{Cert: bc.keys[0].Cert}}, smime.EncryptOptions{}); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

func (bc *benchCrypto) viewer(tb testing.TB) Viewer {
	v, err := NewSMIMEViewer(ViewerOptions{Keys: &svKeys{keys: bc.keys, roots: x509.NewCertPool()}, CacheBytes: bc.cacheBytes})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}
