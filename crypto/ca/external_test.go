package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeCACert self-signs a certificate for key; isCA false makes a leaf.
func makeCACert(t *testing.T, key crypto.Signer, isCA bool, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{Organization: []string{"Operator"}, CommonName: "Operator CA"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(t *testing.T, key crypto.Signer, form string) []byte {
	t.Helper()
	var (
		der []byte
		err error
	)
	switch form {
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: form, Bytes: der})
}

func TestOperatorCA(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, ecKey := mustKey(t, KeyRSA2048), mustKey(t, KeyP256)
	year := time.Now().Add(365 * 24 * time.Hour)
	tests := []struct {
		name    string
		key     []byte
		cert    []byte
		wantErr error  // nil: must open
		wantMsg string // part of the error text
	}{
		{"rsa pkcs1", keyPEM(t, rsaKey, "RSA PRIVATE KEY"), makeCACert(t, rsaKey, true, year), nil, ""},
		{"ec sec1", append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), keyPEM(t, ecKey, "EC PRIVATE KEY")...), makeCACert(t, ecKey, true, year), nil, ""},
		{"ec pkcs8", keyPEM(t, ecKey, "PRIVATE KEY"), makeCACert(t, ecKey, true, year), nil, ""},
		{"ed25519 pkcs8", keyPEM(t, edKey, "PRIVATE KEY"), makeCACert(t, edKey, true, year), nil, ""},
		{"mismatched key", keyPEM(t, rsaKey, "PRIVATE KEY"), makeCACert(t, ecKey, true, year), ErrKeyMismatch, "private key does not match certificate"},
		{"leaf, not a CA", keyPEM(t, ecKey, "PRIVATE KEY"), makeCACert(t, ecKey, false, year), ErrNotCA, "CA:TRUE is missing"},
		{"expired", keyPEM(t, ecKey, "PRIVATE KEY"), makeCACert(t, ecKey, true, time.Now().Add(-time.Hour)), nil, "expired"},
		{"encrypted key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), makeCACert(t, ecKey, true, year), nil, "encrypted"},
		{"no key", []byte("not a key"), makeCACert(t, ecKey, true, year), nil, "no PEM private key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			keyFile := writePEM(t, filepath.Join(tmp, "op.key"), tc.key)
			certFile := writePEM(t, filepath.Join(tmp, "op.crt"), tc.cert)
			fastEscrowKey(t, filepath.Join(tmp, "ca"))
			c, err := Open(filepath.Join(tmp, "ca"), Options{KeyFile: keyFile, CertFile: certFile})
			if tc.wantErr == nil && tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if c.Root().Subject.CommonName != "Operator CA" {
					t.Errorf("root %v, want the operator's", c.Root().Subject)
				}
				user, err := c.IssueSigning(mustKey(t, KeyP256).Public(), "u@example.test", "U")
				if err != nil {
					t.Fatal(err)
				}
				if err := user.CheckSignatureFrom(c.Root()); err != nil {
					t.Errorf("user certificate not issued by operator CA: %v", err)
				}
				if err := c.EscrowCertificate().CheckSignatureFrom(c.Root()); err != nil {
					t.Errorf("escrow certificate not issued by operator CA: %v", err)
				}
				if ok, _ := exists(filepath.Join(tmp, "ca", RootKeyFile)); ok {
					t.Error("a built-in root key was created next to an operator's CA")
				}
				return
			}
			if err == nil {
				t.Fatal("Open accepted it")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "op.") {
				t.Errorf("error %q should say %q and name the files", err, tc.wantMsg)
			}
		})
	}
	t.Run("only one file", func(t *testing.T) {
		if _, err := Open(t.TempDir(), Options{KeyFile: "x.key"}); err == nil || !strings.Contains(err.Error(), "both") {
			t.Errorf("err %v", err)
		}
	})
}

// TestEscrowFollowsCA: switching to an operator's CA re-certifies the
// existing escrow key under it, so escrowed keys stay recoverable with the
// same escrow.key.
func TestEscrowFollowsCA(t *testing.T) {
	c, dir := openFastCA(t, Options{RootKeyType: KeyP256})
	before := c.EscrowCertificate()
	tmp := t.TempDir()
	opKey := mustKey(t, KeyP256)
	keyFile := writePEM(t, filepath.Join(tmp, "op.key"), keyPEM(t, opKey, "PRIVATE KEY"))
	certFile := writePEM(t, filepath.Join(tmp, "op.crt"), makeCACert(t, opKey, true, time.Now().Add(time.Hour*24*400)))
	op, err := Open(dir, Options{KeyFile: keyFile, CertFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	after := op.EscrowCertificate()
	if err := after.CheckSignatureFrom(op.Root()); err != nil {
		t.Errorf("escrow certificate not re-issued by the new CA: %v", err)
	}
	if !samePublicKey(after.PublicKey, before.PublicKey) {
		t.Error("escrow key changed; keys escrowed before could not be recovered")
	}
	if after.NotAfter.After(op.Root().NotAfter) {
		t.Error("escrow certificate outlives its CA")
	}
}
