package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smimeproxy/crypto/ca"
	"smimeproxy/identity"
	"smimeproxy/internal/mailtest"
)

// TestAdminCLIEscrowOpenSSL is the offline recovery of identity's package
// documentation end to end: `admin ids escrow` fetches carol's escrowed key
// from a running admin endpoint, and `openssl cms -decrypt` with the CA
// directory's key-recovery key turns it into the private key of her
// encryption certificate.
func TestAdminCLIEscrowOpenSSL(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	svc, cfg, _ := adminServer(t)
	caDir := filepath.Join(filepath.Dir(cfg), "ca")
	ctx := context.Background()
	const carol = "carol@example.test"
	tok, _, err := svc.CreateToken(ctx, carol, identity.PurposeEnroll, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Enroll(ctx, identity.EnrollRequest{Email: carol, Token: tok, Name: "Carol", Password: "carol id password"})
	if err != nil {
		t.Fatal(err)
	}
	encCert := res.Identity.EncryptionCert

	out := filepath.Join(t.TempDir(), "export")
	code, stdout, errs := runAdminCLI(t, "-config", cfg, "ids", "escrow", carol, "-out", out)
	if code != exitOK {
		t.Fatalf("ids escrow: %d %q %q", code, stdout, errs)
	}
	ders, _ := filepath.Glob(filepath.Join(out, "*.der"))
	if len(ders) != 1 || !strings.Contains(stdout, ders[0]) || !strings.Contains(stdout, encCert.SerialNumber.Text(16)) {
		t.Fatalf("files %q, output %q", ders, stdout)
	}
	if fi, err := os.Stat(ders[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", ders[0], fi.Mode(), err)
	}
	keyDER := filepath.Join(t.TempDir(), "key.der")
	cmd := exec.Command(openssl, "cms", "-decrypt", "-inform", "DER", "-in", ders[0], "-binary",
		"-recip", filepath.Join(caDir, ca.EscrowCertFile), "-inkey", filepath.Join(caDir, ca.EscrowKeyFile), "-out", keyDER)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -decrypt: %v\n%s", err, b)
	}
	der, err := os.ReadFile(keyDER)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("openssl gave no PKCS#8 key: %v", err)
	}
	got, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	want, _ := x509.MarshalPKIXPublicKey(encCert.PublicKey)
	if !bytes.Equal(got, want) {
		t.Fatal("the recovered key is not carol's encryption key")
	}
	// The certificate saved next to it is hers.
	crt, err := os.ReadFile(strings.TrimSuffix(ders[0], ".der") + ".crt")
	if err != nil || !bytes.Equal(bytes.TrimSpace(crt), bytes.TrimSpace(mailtest.CertPEM(encCert))) {
		t.Fatalf("certificate file: %v", err)
	}

	// A second export into the same directory overwrites nothing.
	code, _, errs = runAdminCLI(t, "-config", cfg, "ids", "escrow", "-out", out, carol)
	if code != exitFailed || !strings.Contains(errs, "exists already") {
		t.Fatalf("second export: %d %q", code, errs)
	}
	// No Digital ID: the server's sentence, exit 1.
	code, _, errs = runAdminCLI(t, "-config", cfg, "ids", "escrow", "nobody@example.test", "-out", t.TempDir())
	if code != exitFailed || !strings.Contains(errs, "no_identity") {
		t.Fatalf("no identity: %d %q", code, errs)
	}
}

func TestFlagsFirst(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"a@b", "-out", "D"}, []string{"-out", "D", "--", "a@b"}},
		{[]string{"-out", "D", "a@b"}, []string{"-out", "D", "--", "a@b"}},
		{[]string{"a@b", "-out=D", "-json"}, []string{"-out=D", "-json", "--", "a@b"}},
		{[]string{"-json", "--", "-weird"}, []string{"-json", "--", "-weird"}},
		{[]string{"-json"}, []string{"-json"}},
	} {
		if got := flagsFirst(tc.in, "out"); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
