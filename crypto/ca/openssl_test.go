package ca

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"
)

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writePEM(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpenSSLAcceptsIssuedCertificates checks the profile with an
// independent implementation: openssl verify with the S/MIME signing
// purpose, and openssl x509 -text for the extensions.
func TestOpenSSLAcceptsIssuedCertificates(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	c, dir := openFastCA(t, Options{})
	tmp := t.TempDir()
	rsaKey, ecKey := mustKey(t, KeyRSA2048), mustKey(t, KeyP256)
	sign, err := c.IssueSigning(rsaKey.Public(), "alice@example.test", "Alice Example")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.IssueEncryption(rsaKey.Public(), "alice@example.test", "Alice Example")
	if err != nil {
		t.Fatal(err)
	}
	ecSign, err := c.IssueSigning(ecKey.Public(), "bob@example.test", "Bob Example")
	if err != nil {
		t.Fatal(err)
	}
	ecEnc, err := c.IssueEncryption(ecKey.Public(), "bob@example.test", "Bob Example")
	if err != nil {
		t.Fatal(err)
	}
	signPath := writePEM(t, filepath.Join(tmp, "sign.crt"), certPEM(sign))
	encPath := writePEM(t, filepath.Join(tmp, "enc.crt"), certPEM(enc))
	ecSignPath := writePEM(t, filepath.Join(tmp, "ecsign.crt"), certPEM(ecSign))
	ecEncPath := writePEM(t, filepath.Join(tmp, "ecenc.crt"), certPEM(ecEnc))
	root := filepath.Join(dir, RootCertFile)

	out := runTool(t, openssl, "verify", "-CAfile", root, "-purpose", "smimesign", signPath, ecSignPath)
	if strings.Count(out, ": OK") != 2 {
		t.Errorf("openssl verify -purpose smimesign:\n%s", out)
	}
	out = runTool(t, openssl, "verify", "-CAfile", root, "-purpose", "smimeencrypt", encPath)
	if !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify -purpose smimeencrypt (RSA):\n%s", out)
	}
	// A signing certificate must not pass as a TLS server.
	if out, err := exec.Command(openssl, "verify", "-CAfile", root, "-purpose", "sslserver", signPath).CombinedOutput(); err == nil {
		t.Errorf("signing certificate verified for sslserver:\n%s", out)
	}

	for _, tc := range []struct {
		path string
		want []string
	}{
		{signPath, []string{"Digital Signature, Non Repudiation", "E-mail Protection", "email:alice@example.test", "CA:FALSE", "emailAddress = alice@example.test", "X509v3 Authority Key Identifier"}},
		{encPath, []string{"Key Encipherment", "E-mail Protection", "email:alice@example.test", "X509v3 Subject Key Identifier"}},
		{ecEncPath, []string{"Key Agreement", "E-mail Protection", "email:bob@example.test"}},
		{root, []string{"CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign", "Public-Key: (3072 bit)", "O = Example Org, CN = Example Org smimeproxy Root CA"}},
	} {
		out := runTool(t, openssl, "x509", "-noout", "-text", "-in", tc.path)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: openssl x509 -text lacks %q:\n%s", filepath.Base(tc.path), w, out)
			}
		}
	}

	// Our fingerprint is openssl's.
	out = runTool(t, openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", root)
	if want := "sha256 Fingerprint=" + Fingerprint(c.Root()); !strings.Contains(out, want) {
		t.Errorf("openssl fingerprint %q, ours %q", strings.TrimSpace(out), want)
	}
}

// TestEscrowOfflineRecoveryWithOpenSSL proves the documented offline
// path: data encrypted to escrow.crt comes back with openssl cms -decrypt
// and the files in the CA directory.
func TestEscrowOfflineRecoveryWithOpenSSL(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	_, dir := openTestCA(t, Options{RootKeyType: KeyP256})
	tmp := t.TempDir()
	secret := make([]byte, 1200)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	in := writePEM(t, filepath.Join(tmp, "user.key.der"), secret)
	p7m := filepath.Join(tmp, "escrowed.p7m")
	runTool(t, openssl, "cms", "-encrypt", "-binary", "-aes-256-cbc", "-in", in, "-outform", "DER", "-out", p7m, filepath.Join(dir, EscrowCertFile))
	out := filepath.Join(tmp, "recovered.key")
	runTool(t, openssl, "cms", "-decrypt", "-inform", "DER", "-in", p7m,
		"-recip", filepath.Join(dir, EscrowCertFile), "-inkey", filepath.Join(dir, EscrowKeyFile), "-out", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Errorf("recovered %d bytes differ from the %d escrowed", len(got), len(secret))
	}
}
