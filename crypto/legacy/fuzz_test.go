package legacy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// selfSigned makes a throwaway P-256 key and certificate for encoders.
func selfSigned(tb testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(1),
		Subject:        pkix.Name{CommonName: "Fuzz"},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{"fuzz@example.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

// encoders are go-pkcs12's writers, a third implementation besides
// OpenSSL and ours; iteration count 1 keeps fuzzing fast.
var encoders = []struct {
	name string
	enc  *pkcs12.Encoder
}{
	{"LegacyRC2", pkcs12.LegacyRC2},
	{"LegacyDES", pkcs12.LegacyDES},
	{"Modern2023", pkcs12.Modern2023},
}

// FuzzRead feeds arbitrary bytes to Read. Whatever it returns must be
// consistent: an error, or a bundle whose keys and certificates pair up
// without contradiction.
func FuzzRead(f *testing.F) {
	key, cert := selfSigned(f)
	for _, e := range encoders {
		p12, err := e.enc.WithIterations(1).Encode(key, cert, nil, "pw")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p12, "pw")
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	sec1, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	f.Add(append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), certPEM...), "")
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "")
	//lint:ignore SA1019 the legacy format is what is being read
	enc, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", sec1, []byte("pw"), x509.PEMCipherAES128) //nolint:staticcheck
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(enc), "pw")
	f.Add(cert.Raw, "")
	f.Add(pkcs8, "")
	f.Add([]byte{0x30, 0x80, 0x02, 0x01, 0x03, 0x00, 0x00}, "x")
	f.Add(readSample(f, "rfc9579-a1-pbmac1-sha256.p12"), "1234")
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		// A lower iteration cap than Read's keeps mutated iteration
		// counts from stalling the fuzzer.
		b, err := read(data, passphrase{text: password, maxIterations: 100})
		if err != nil {
			if b != nil {
				t.Fatal("bundle returned with an error")
			}
			if errors.Is(err, ErrWrongPassword) && errors.Is(err, ErrUnrecognized) {
				t.Fatalf("contradictory error %v", err)
			}
			return
		}
		if len(b.Keys) == 0 && len(b.Certs) == 0 {
			t.Fatal("empty bundle without error")
		}
		m := b.Pairs()
		if len(m.Pairs)+len(m.Loose) != len(b.Certs) {
			t.Fatalf("%d pairs + %d loose != %d certificates", len(m.Pairs), len(m.Loose), len(b.Certs))
		}
		for _, p := range m.Pairs {
			if !samePublicKey(p.Key.Public(), p.Cert.PublicKey) {
				t.Fatal("pair with a foreign key")
			}
		}
	})
}

// TestGoPKCS12Encoders reads what go-pkcs12 writes with each of its
// algorithm sets, and refuses a wrong password for each.
func TestGoPKCS12Encoders(t *testing.T) {
	key, cert := selfSigned(t)
	for _, e := range encoders {
		t.Run(e.name, func(t *testing.T) {
			p12, err := e.enc.Encode(key, cert, nil, "pässword")
			if err != nil {
				t.Fatal(err)
			}
			b, err := Read(p12, "pässword")
			if err != nil {
				t.Fatal(err)
			}
			m := b.Pairs()
			if len(m.Pairs) != 1 || !m.Pairs[0].Cert.Equal(cert) || !samePublicKey(m.Pairs[0].Key.Public(), &key.PublicKey) {
				t.Fatalf("pairs %+v", m.Pairs)
			}
			if m.Signing != &m.Pairs[0] || m.Encryption != &m.Pairs[0] {
				t.Error("dual-use certificate not chosen for both purposes")
			}
			if _, err := Read(p12, "password"); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}
