package smime

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testKey is a generated certificate + key for the envelope tests. The
// shared PKI of internal/mailtest is not used here so that this package's
// tests stand alone; keys are generated once per test binary.
type testKey struct {
	name string
	cert *x509.Certificate
	key  crypto.Signer
}

var (
	testKeysOnce sync.Once
	testKeysVal  map[string]testKey
	testCA       *x509.Certificate
)

func testKeys(t testing.TB) map[string]testKey {
	t.Helper()
	testKeysOnce.Do(func() {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{Organization: []string{"smimeproxy test"}, CommonName: "Envelope Test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
		if err != nil {
			panic(err)
		}
		testCA, _ = x509.ParseCertificate(caDER)
		testKeysVal = map[string]testKey{}
		gen := map[string]func() (crypto.Signer, error){
			"rsa":  func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
			"rsa2": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
			"p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			"p384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		}
		serial := int64(100)
		for _, name := range []string{"rsa", "rsa2", "p256", "p384"} {
			k, err := gen[name]()
			if err != nil {
				panic(err)
			}
			pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
			ski := sha1.Sum(pubDER)
			serial++
			leaf := &x509.Certificate{
				SerialNumber:   big.NewInt(serial),
				Subject:        pkix.Name{CommonName: name + " user", Organization: []string{"smimeproxy test"}},
				EmailAddresses: []string{name + "@example.test"},
				NotBefore:      time.Now().Add(-time.Hour),
				NotAfter:       time.Now().Add(24 * time.Hour),
				KeyUsage:       x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
				ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
				SubjectKeyId:   ski[:],
			}
			der, err := x509.CreateCertificate(rand.Reader, leaf, testCA, k.Public(), caKey)
			if err != nil {
				panic(err)
			}
			cert, _ := x509.ParseCertificate(der)
			testKeysVal[name] = testKey{name: name, cert: cert, key: k}
		}
	})
	return testKeysVal
}

func (k testKey) pair() KeyPair { return KeyPair{Cert: k.cert, Key: k.key} }
