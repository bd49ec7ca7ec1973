package legacy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleFiles are the real files in testdata/ with their passwords
// (documented in testdata/README.md) and what they must yield.
var sampleFiles = []struct {
	name, password     string
	keys, certs, pairs int
	dual               bool
}{
	{"legacy-3des-rc2-sha1mac.p12", "legacy-p12", 1, 2, 1, true},
	{"modern-pbes2-aes256-sha256mac.p12", "modern-p12", 1, 2, 1, true},
	{"multikey-sign-3des-rc2-enc-pbes2.p12", "multi-p12", 2, 3, 2, false},
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSampleFiles(t *testing.T) {
	for _, s := range sampleFiles {
		t.Run(s.name, func(t *testing.T) {
			data := readSample(t, s.name)
			b, err := Read(data, s.password)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Keys) != s.keys || len(b.Certs) != s.certs {
				t.Fatalf("%d keys %d certificates, want %d and %d", len(b.Keys), len(b.Certs), s.keys, s.certs)
			}
			m := b.Pairs()
			if len(m.Pairs) != s.pairs || m.Signing == nil || m.Encryption == nil {
				t.Fatalf("%d pairs, signing %v, encryption %v", len(m.Pairs), m.Signing != nil, m.Encryption != nil)
			}
			if (m.Signing == m.Encryption) != s.dual {
				t.Errorf("signing and encryption pair the same: %v, want %v", m.Signing == m.Encryption, s.dual)
			}
			for _, p := range m.Pairs {
				if len(p.Chain) != 1 || p.Chain[0].Subject.CommonName != "Testdata Root CA" {
					t.Errorf("pair %q: chain %v", p.Name, p.Chain)
				}
				if got := p.Cert.EmailAddresses; len(got) != 1 || got[0] != "carol@example.test" {
					t.Errorf("pair %q: addresses %v", p.Name, got)
				}
				if !strings.HasPrefix(p.Name, "Carol") {
					t.Errorf("friendly name %q", p.Name)
				}
			}
			if _, err := Read(data, ""); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("empty password: %v, want ErrWrongPassword", err)
			}
		})
	}
}

// TestDamagedInput feeds truncated and foreign data: each gives an
// error that says what is wrong, never a wrong-password verdict for a
// damaged file that could not be checked, and never a panic.
func TestDamagedInput(t *testing.T) {
	p12 := readSample(t, "modern-pbes2-aes256-sha256mac.p12")
	legacy := readSample(t, "legacy-3des-rc2-sha1mac.p12")
	tests := []struct {
		name string
		data []byte
		want string
		is   error
	}{
		{"empty", nil, "empty file", ErrUnrecognized},
		{"text", []byte("Dear Carol,\nhere is my key.\n"), "not a recognised", ErrUnrecognized},
		{"pfx header only", p12[:8], "PKCS#12 structure", nil},
		{"pfx half", p12[:len(p12)/2], "PKCS#12 structure", nil},
		{"pfx minus one byte", p12[:len(p12)-1], "PKCS#12 structure", nil},
		{"legacy pfx half", legacy[:len(legacy)/2], "PKCS#12 structure", nil},
		{"pfx trailing garbage", append(append([]byte{}, p12...), 0, 1, 2), "trailing data", nil},
		{"pem without end", []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n"), "damaged PEM", ErrUnrecognized},
		{"pem broken key", []byte("-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n"), "PKCS#8", nil},
		{"der junk", []byte{0x30, 0x03, 0x02, 0x01, 0x07}, "not a recognised", ErrUnrecognized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(tc.data, "modern-p12")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if errors.Is(err, ErrWrongPassword) {
				t.Errorf("damaged input reported as a wrong password: %v", err)
			}
		})
	}
}

// TestPBMAC1 reads the RFC 9579 appendix A test vectors: a PKCS#12 file
// with a PBMAC1 (PBKDF2 + HMAC-SHA-256) MAC, which OpenSSL 3.0 cannot
// check, and one whose PBMAC1 parameters omit the key length, which must
// be refused as damaged rather than as a wrong password.
func TestPBMAC1(t *testing.T) {
	good := readSample(t, "rfc9579-a1-pbmac1-sha256.p12")
	b, err := Read(good, "1234")
	if err != nil {
		t.Fatal(err)
	}
	if m := b.Pairs(); len(m.Pairs) != 1 || m.Pairs[0].Cert.Subject.CommonName != "tt" {
		t.Errorf("pairs %+v", m.Pairs)
	}
	if _, err := Read(good, "12345"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	_, err = Read(readSample(t, "rfc9579-a6-pbmac1-no-keylength.p12"), "1234")
	if err == nil || errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "key length") {
		t.Errorf("missing PBMAC1 key length: %v", err)
	}
}
