package smime

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// sampleKeys loads the throwaway recipient keys the committed OpenSSL
// samples in testdata/ are encrypted to (see testdata/README.md).
func sampleKeys(t testing.TB) (rsaPair, ecPair KeyPair) {
	t.Helper()
	load := func(name string) KeyPair {
		crtPEM, err := os.ReadFile(filepath.Join("testdata", name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := os.ReadFile(filepath.Join("testdata", name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := pem.Decode(crtPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			t.Fatalf("%s: no PEM block", name)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return KeyPair{Cert: cert, Key: key}
	}
	return load("recipient-rsa"), load("recipient-p256")
}

// samples lists the committed OpenSSL outputs and what each exercises.
var samples = []struct {
	file    string
	cipher  Cipher
	km      string
	ec      bool
	alsoRSA bool // encrypted to the RSA recipient too
}{
	{"enc-aes256cbc-openssl.p7m", AES256CBC, "rsa-pkcs1v15", false, false},
	{"enc-aes256cbc-ber-stream-openssl.p7m", AES256CBC, "rsa-pkcs1v15", false, false},
	{"enc-aes128cbc-openssl.p7m", AES128CBC, "rsa-pkcs1v15", false, false},
	{"enc-des3-openssl.p7m", DES3CBC, "rsa-pkcs1v15", false, false},
	{"enc-aes256gcm-openssl.p7m", AES256GCM, "rsa-pkcs1v15", false, false},
	{"enc-aes128gcm-ber-stream-openssl.p7m", AES128GCM, "rsa-pkcs1v15", false, false},
	{"enc-oaep-sha1-openssl.p7m", AES256CBC, "rsa-oaep-sha1", false, false},
	{"enc-oaep-sha256-openssl.p7m", AES256CBC, "rsa-oaep-sha256", false, false},
	{"enc-ecdh-sha1kdf-openssl.p7m", AES256CBC, "ecdh-sha1kdf", true, false},
	{"enc-ecdh-sha256kdf-openssl.p7m", AES128CBC, "ecdh-sha256kdf", true, false},
	{"enc-ecdh-gcm-openssl.p7m", AES256GCM, "ecdh-sha1kdf", true, false},
	{"enc-ecdh-des3wrap-openssl.p7m", DES3CBC, "ecdh-sha1kdf", true, false},
	{"enc-two-recipients-ber-stream-openssl.p7m", AES256CBC, "ecdh-sha1kdf", true, true},
	{"enc-ski-openssl.p7m", AES256CBC, "ecdh-sha1kdf", true, true},
}

// TestDecryptOpenSSLSamples reads every committed OpenSSL sample without
// needing openssl installed.
func TestDecryptOpenSSLSamples(t *testing.T) {
	rsaPair, ecPair := sampleKeys(t)
	want, err := os.ReadFile(filepath.Join("testdata", "sample-entity.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		t.Run(s.file, func(t *testing.T) {
			der, err := os.ReadFile(filepath.Join("testdata", s.file))
			if err != nil {
				t.Fatal(err)
			}
			pair := rsaPair
			if s.ec {
				pair = ecPair
			}
			d, err := DecryptDER(der, []KeyPair{pair})
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Entity) != string(want) || d.Cipher != s.cipher || d.KeyManagement != s.km {
				t.Fatalf("got %q %s %s", d.Entity, d.Cipher, d.KeyManagement)
			}
			if s.alsoRSA {
				if d, err := DecryptDER(der, []KeyPair{rsaPair}); err != nil || string(d.Entity) != string(want) {
					t.Fatalf("RSA recipient: %v", err)
				}
			}
			// DecryptDER must leave the caller's buffer alone.
			again, _ := os.ReadFile(filepath.Join("testdata", s.file))
			if string(again) != string(der) {
				t.Fatal("DecryptDER modified its input")
			}
		})
	}
}
