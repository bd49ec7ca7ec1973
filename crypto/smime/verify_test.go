package smime

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
)

// TestVerifyFlagsShortRSAKey: a signature by an RSA-1024 key verifies but
// is flagged weak.
func TestVerifyFlagsShortRSAKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(7),
		Subject:        pkix.Name{CommonName: "short key"},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{"alice@example.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	var b bytes.Buffer
	if err := Sign(&b, []byte(msgPlainLF), SignOptions{Cert: cert, Key: key}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	res, err := Verify(b.Bytes(), VerifyOptions{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || !slices.Equal(res.Weak, []string{"RSA-1024 key"}) {
		t.Fatalf("Valid=%v Weak=%v reasons %v", res.Valid, res.Weak, res.Reasons)
	}
}

// TestVerifyOpaqueVariants: the spellings older clients use for opaque
// signed-data all verify.
func TestVerifyOpaqueVariants(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	opaque := signed(t, u, msgPlainLF, true)
	ct := []byte(`Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"`)
	tests := []struct {
		name string
		msg  []byte
	}{
		{"x-pkcs7-mime", bytes.Replace(opaque, ct, []byte(`Content-Type: application/x-pkcs7-mime; smime-type=signed-data; name="smime.p7m"`), 1)},
		{"no smime-type", bytes.Replace(opaque, ct, []byte(`Content-Type: application/x-pkcs7-mime; name=smime.p7m`), 1)},
		{"upper case", bytes.Replace(opaque, ct, []byte(`Content-Type: Application/PKCS7-MIME; Smime-Type=Signed-Data`), 1)},
		{"LF line ends", bytes.ReplaceAll(opaque, []byte("\r\n"), []byte("\n"))},
		{"base64 in one line", oneLineBase64(t, opaque)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Verify(tt.msg, VerifyOptions{Roots: pki.Roots()})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Valid || !res.Opaque {
				t.Fatalf("Valid=%v Opaque=%v reasons %v", res.Valid, res.Opaque, res.Reasons)
			}
		})
	}
}

func oneLineBase64(t *testing.T, m []byte) []byte {
	j := bytes.Index(m, []byte("\r\n\r\n")) + 4 // the header block ends, the base64 starts
	return append(bytes.Clone(m[:j]), append(bytes.ReplaceAll(m[j:], []byte("\r\n"), nil), "\r\n"...)...)
}

func TestVerifyWarnsSigningTimeOutsideValidity(t *testing.T) {
	pki := mailtest.NewPKI(t)
	u := pki.User(t, "alice@example.test", mailtest.RSA)
	opts := signOpts(u, false)
	opts.Now = func() time.Time { return u.SignCert.NotBefore.Add(-24 * time.Hour) }
	var b bytes.Buffer
	if err := Sign(&b, []byte(msgPlainLF), opts); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(b.Bytes(), VerifyOptions{Roots: pki.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || !strings.Contains(strings.Join(res.Reasons, ";"), "signing time lies outside") {
		t.Fatalf("Valid=%v reasons %v", res.Valid, res.Reasons)
	}
}

// TestVerifyDeepBERRefused: a signature of a million nested
// indefinite-length SEQUENCEs is refused at the nesting limit, quickly.
func TestVerifyDeepBERRefused(t *testing.T) {
	n := 1000000
	der := append(bytes.Repeat([]byte{0x30, 0x80}, n), bytes.Repeat([]byte{0, 0}, n)...)
	msg := "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(der) + "\r\n"
	// "Quickly" is measured in bytes allocated, which load does not change:
	// refusing at the limit costs the decoded input and little else.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Verify([]byte(msg), VerifyOptions{})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformedSignature) {
		t.Fatalf("err = %v, want ErrMalformedSignature", err)
	}
	alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(8*len(msg))
	t.Logf("allocated %d bytes for a %d-byte message in %v", alloc, len(msg), took)
	if alloc > limit {
		t.Fatalf("allocated %d bytes for a %d-byte message (bound %d), in %v", alloc, len(msg), limit, took)
	}
}
