package mailtest_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"smimeproxy/internal/mailtest"

	"software.sslmate.com/src/go-pkcs12"
)

func verifyEmail(p *mailtest.PKI, c *x509.Certificate) error {
	_, err := c.Verify(x509.VerifyOptions{
		Roots:         p.Roots(),
		Intermediates: poolOf(p.Intermediate),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	return err
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

func TestUserCertificates(t *testing.T) {
	p := mailtest.NewPKI(t)
	tests := []struct {
		kt    mailtest.KeyType
		curve elliptic.Curve
		encKU x509.KeyUsage
	}{
		{mailtest.RSA, nil, x509.KeyUsageKeyEncipherment},
		{mailtest.P256, elliptic.P256(), x509.KeyUsageKeyAgreement | x509.KeyUsageKeyEncipherment},
		{mailtest.P384, elliptic.P384(), x509.KeyUsageKeyAgreement | x509.KeyUsageKeyEncipherment},
	}
	for _, tc := range tests {
		t.Run(tc.kt.String(), func(t *testing.T) {
			u := p.User(t, "alice@example.test", tc.kt)
			if u.SignCert.Equal(u.EncCert) {
				t.Fatal("signing and encryption certificates are the same without DualUse")
			}
			for _, c := range []*x509.Certificate{u.SignCert, u.EncCert} {
				if err := verifyEmail(p, c); err != nil {
					t.Errorf("%s: chain with emailProtection: %v", c.Subject, err)
				}
				if len(c.EmailAddresses) != 1 || c.EmailAddresses[0] != "alice@example.test" {
					t.Errorf("%s: rfc822Name = %v", c.Subject, c.EmailAddresses)
				}
				if len(c.SubjectKeyId) != 20 {
					t.Errorf("%s: subjectKeyIdentifier has %d bytes", c.Subject, len(c.SubjectKeyId))
				}
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment; u.SignCert.KeyUsage != want {
				t.Errorf("signing keyUsage = %b, want %b", u.SignCert.KeyUsage, want)
			}
			if u.EncCert.KeyUsage != tc.encKU {
				t.Errorf("encryption keyUsage = %b, want %b", u.EncCert.KeyUsage, tc.encKU)
			}
			switch k := u.EncKey.(type) {
			case *rsa.PrivateKey:
				if tc.kt != mailtest.RSA || k.N.BitLen() != 2048 {
					t.Errorf("RSA key of %d bits for %v", k.N.BitLen(), tc.kt)
				}
			case *ecdsa.PrivateKey:
				if k.Curve != tc.curve {
					t.Errorf("curve %v for %v", k.Curve.Params().Name, tc.kt)
				}
			default:
				t.Errorf("encryption key type %T", k)
			}
			if !u.EncKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(u.EncCert.PublicKey) {
				t.Error("encryption key does not match its certificate")
			}
			if !u.SignKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(u.SignCert.PublicKey) {
				t.Error("signing key does not match its certificate")
			}
			if again := p.User(t, "alice@example.test", tc.kt); again != u {
				t.Error("second User call made a new user instead of reusing the first")
			}
		})
	}
}

func TestUserOptions(t *testing.T) {
	p := mailtest.NewPKI(t)
	dual := p.User(t, "dual@example.test", mailtest.RSA, mailtest.DualUse)
	if !dual.SignCert.Equal(dual.EncCert) || dual.SignKey != dual.EncKey {
		t.Error("DualUse: separate certificates or keys")
	}
	if dual.SignCert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 || dual.SignCert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("DualUse keyUsage = %b", dual.SignCert.KeyUsage)
	}
	if err := verifyEmail(p, p.User(t, "x@example.test", mailtest.P256, mailtest.Expired).SignCert); err == nil ||
		!strings.Contains(err.Error(), "expired") {
		t.Errorf("Expired: verify error = %v, want expiry", err)
	}
	noEKU := p.User(t, "x@example.test", mailtest.RSA, mailtest.NoEKU)
	if len(noEKU.SignCert.ExtKeyUsage) != 0 {
		t.Errorf("NoEKU: EKU %v", noEKU.SignCert.ExtKeyUsage)
	}
	if err := verifyEmail(p, p.User(t, "x@example.test", mailtest.RSA, mailtest.WrongEKU).SignCert); err == nil {
		t.Error("WrongEKU: certificate verifies for emailProtection")
	}
	noMail := p.User(t, "x@example.test", mailtest.P256, mailtest.NoEmail)
	if len(noMail.SignCert.EmailAddresses) != 0 || strings.Contains(noMail.SignCert.Subject.String(), "@") {
		t.Errorf("NoEmail: addresses %v, subject %s", noMail.SignCert.EmailAddresses, noMail.SignCert.Subject)
	}
	if err := verifyEmail(mailtest.OtherPKI(t), p.User(t, "alice@example.test", mailtest.RSA).SignCert); err == nil {
		t.Error("certificate of one PKI verifies against the other PKI's root")
	}
}

func TestWriteFiles(t *testing.T) {
	p := mailtest.NewPKI(t)
	dir := t.TempDir()
	pf, err := p.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	u := p.User(t, "bob@example.test", mailtest.P256)
	uf, err := u.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(uf.SignCert) != "bob-p256-sign.crt" {
		t.Errorf("signing cert file %s", uf.SignCert)
	}
	chain, _ := os.ReadFile(pf.Chain)
	if want := append(mailtest.CertPEM(p.Intermediate), mailtest.CertPEM(p.Root)...); !bytes.Equal(chain, want) {
		t.Error("chain.pem is not intermediate then root")
	}
	key, _ := os.ReadFile(uf.EncKey)
	if !bytes.Contains(key, []byte("BEGIN PRIVATE KEY")) {
		t.Error("encryption key is not PKCS#8 PEM")
	}

	p12 := filepath.Join(dir, "alice.p12")
	alice := p.User(t, "alice@example.test", mailtest.RSA)
	if err := alice.WriteP12Legacy(p12, "p12pw", mailtest.Encryption); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p12)
	k, c, cas, err := pkcs12.DecodeChain(data, "p12pw")
	if err != nil {
		t.Fatalf("decode PKCS#12: %v", err)
	}
	if !c.Equal(alice.EncCert) || !k.(*rsa.PrivateKey).Equal(alice.EncKey) || len(cas) != 2 {
		t.Errorf("PKCS#12 holds cert %s and %d CA certs, want the encryption pair and 2", c.Subject, len(cas))
	}

	// OpenSSL is the independent judge of the purposes its S/MIME code checks.
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	for _, tc := range []struct{ purpose, cert string }{
		{"smimesign", uf.SignCert},
		{"smimeencrypt", uf.EncCert},
	} {
		out, err := exec.Command(openssl, "verify", "-CAfile", pf.Root, "-untrusted", pf.Intermediate,
			"-purpose", tc.purpose, tc.cert).CombinedOutput()
		if err != nil {
			t.Errorf("openssl verify -purpose %s %s: %v\n%s", tc.purpose, tc.cert, err, out)
		}
	}
	out, err := exec.Command(openssl, "pkcs12", "-info", "-noout", "-legacy", "-in", p12, "-passin", "pass:p12pw").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC")) {
		t.Errorf("openssl pkcs12 -info: %v\n%s", err, out)
	}
}
