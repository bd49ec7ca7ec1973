package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestCA(t *testing.T, opts Options) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if opts.Org == "" {
		opts.Org = "Example Org"
	}
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c, dir
}

// openFastCA is openTestCA for tests that do not look at the escrow
// certificate: a P-256 escrow.key placed beforehand spares the RSA-3072
// key generation, which dominates the package's test time.
func openFastCA(t *testing.T, opts Options) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	fastEscrowKey(t, dir)
	if opts.Org == "" {
		opts.Org = "Example Org"
	}
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c, dir
}

func fastEscrowKey(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := MarshalPrivateKeyPEM(mustKey(t, KeyP256))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, EscrowKeyFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustKey(t *testing.T, kind KeyType) crypto.Signer {
	t.Helper()
	k, err := GenerateKey(kind)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOpenCreatesRootAndEscrow(t *testing.T) {
	c, dir := openTestCA(t, Options{})
	root := c.Root()
	if !root.IsCA || !root.BasicConstraintsValid || !root.MaxPathLenZero {
		t.Errorf("root basic constraints: IsCA=%v valid=%v maxPathLenZero=%v", root.IsCA, root.BasicConstraintsValid, root.MaxPathLenZero)
	}
	if root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root key usage %v", root.KeyUsage)
	}
	if len(root.SubjectKeyId) == 0 {
		t.Error("root has no subject key identifier")
	}
	if got := root.Subject.String(); got != "CN=Example Org smimeproxy Root CA,O=Example Org" {
		t.Errorf("root subject %q", got)
	}
	if k, ok := root.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 3072 {
		t.Errorf("root key %T, want RSA-3072", root.PublicKey)
	}
	if years := root.NotAfter.Sub(root.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("root valid for %.2f years", years)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}

	esc := c.EscrowCertificate()
	if k, ok := esc.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 3072 {
		t.Errorf("escrow key %T, want RSA-3072", esc.PublicKey)
	}
	if esc.KeyUsage != x509.KeyUsageKeyEncipherment || esc.IsCA {
		t.Errorf("escrow key usage %v, IsCA %v", esc.KeyUsage, esc.IsCA)
	}
	if len(esc.ExtKeyUsage) != 0 || len(esc.UnknownExtKeyUsage) != 1 || !esc.UnknownExtKeyUsage[0].Equal(OIDKeyRecoveryAgent) {
		t.Errorf("escrow EKU %v %v, want only Key Recovery Agent", esc.ExtKeyUsage, esc.UnknownExtKeyUsage)
	}
	if err := esc.CheckSignatureFrom(root); err != nil {
		t.Errorf("escrow not issued by root: %v", err)
	}

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for name, mode := range map[string]os.FileMode{RootKeyFile: 0o600, EscrowKeyFile: 0o600, RootCertFile: 0o644, EscrowCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestReopenLoadsSameRoot(t *testing.T) {
	c, dir := openTestCA(t, Options{RootKeyType: KeyP384})
	again, err := Open(dir, Options{}) // no org needed once the root exists
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(again.Root()) != Fingerprint(c.Root()) {
		t.Error("reopened CA has a different root")
	}
	if Fingerprint(again.EscrowCertificate()) != Fingerprint(c.EscrowCertificate()) {
		t.Error("reopened CA has a different escrow certificate")
	}
	// Moving escrow.key offline must not stop the CA.
	if err := os.Remove(filepath.Join(dir, EscrowKeyFile)); err != nil {
		t.Fatal(err)
	}
	third, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open without escrow.key: %v", err)
	}
	if Fingerprint(third.EscrowCertificate()) != Fingerprint(c.EscrowCertificate()) {
		t.Error("escrow certificate changed after escrow.key was removed")
	}
}

func TestConcurrentFirstOpenAgreesOnOneRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	fastEscrowKey(t, dir)
	const n = 4
	var wg sync.WaitGroup
	cas := make([]*CA, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { cas[i], errs[i] = Open(dir, Options{Org: "Race Org", RootKeyType: KeyP256}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		if Fingerprint(cas[i].Root()) != Fingerprint(cas[0].Root()) || Fingerprint(cas[i].EscrowCertificate()) != Fingerprint(cas[0].EscrowCertificate()) {
			t.Errorf("Open %d ended with a different root or escrow certificate", i)
		}
	}
}

var oidEmailAddressAttr = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func TestIssueUserCertificates(t *testing.T) {
	c, _ := openFastCA(t, Options{RootKeyType: KeyP384})
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	tests := []struct {
		kind      KeyType
		signing   bool
		wantUsage x509.KeyUsage
	}{
		{KeyRSA2048, true, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
		{KeyRSA2048, false, x509.KeyUsageKeyEncipherment},
		{KeyP256, true, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
		{KeyP256, false, x509.KeyUsageKeyAgreement},
		{KeyP384, false, x509.KeyUsageKeyAgreement},
		{KeyRSA3072, false, x509.KeyUsageKeyEncipherment},
	}
	for _, tc := range tests {
		name := string(tc.kind) + map[bool]string{true: "/signing", false: "/encryption"}[tc.signing]
		t.Run(name, func(t *testing.T) {
			key := mustKey(t, tc.kind)
			issue := c.IssueEncryption
			if tc.signing {
				issue = c.IssueSigning
			}
			before := time.Now()
			cert, err := issue(key.Public(), "alice@example.test", "Alice Example")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
				t.Errorf("verify for emailProtection: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("user certificate verifies for serverAuth")
			}
			if cert.KeyUsage != tc.wantUsage {
				t.Errorf("key usage %v, want %v", cert.KeyUsage, tc.wantUsage)
			}
			if len(cert.EmailAddresses) != 1 || cert.EmailAddresses[0] != "alice@example.test" {
				t.Errorf("rfc822Name SAN %v", cert.EmailAddresses)
			}
			if cert.Subject.CommonName != "Alice Example" {
				t.Errorf("CN %q", cert.Subject.CommonName)
			}
			checkEmailAttributeIA5(t, cert, "alice@example.test")
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Error("user certificate must carry CA:FALSE")
			}
			if len(cert.SubjectKeyId) != 20 || string(cert.AuthorityKeyId) != string(c.Root().SubjectKeyId) {
				t.Errorf("SKI %x AKI %x, root SKI %x", cert.SubjectKeyId, cert.AuthorityKeyId, c.Root().SubjectKeyId)
			}
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 || cert.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %v has %d bits", cert.SerialNumber, cert.SerialNumber.BitLen())
			}
			if !cert.NotBefore.Before(before.Add(-time.Minute)) {
				t.Errorf("NotBefore %v not backdated before %v", cert.NotBefore, before)
			}
			if d := cert.NotAfter.Sub(before); d < DefaultValidity-time.Minute || d > DefaultValidity+time.Minute {
				t.Errorf("validity %v, want %v", d, DefaultValidity)
			}
		})
	}
}

// rawAttrSET is one RDN with its values undecoded (the SET suffix makes
// encoding/asn1 expect a SET).
type rawAttrSET []struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// checkEmailAttributeIA5 finds emailAddress in the raw subject and checks
// it is an IA5String, as PKCS#9 requires.
func checkEmailAttributeIA5(t *testing.T, cert *x509.Certificate, want string) {
	t.Helper()
	var rdns []rawAttrSET
	if _, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil {
		t.Fatalf("parse subject: %v", err)
	}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			if atv.Type.Equal(oidEmailAddressAttr) {
				if atv.Value.Tag != asn1.TagIA5String || string(atv.Value.Bytes) != want {
					t.Errorf("emailAddress tag %d value %q", atv.Value.Tag, atv.Value.Bytes)
				}
				return
			}
		}
	}
	t.Error("subject has no emailAddress")
}

func TestIssueRefuses(t *testing.T) {
	c, _ := openFastCA(t, Options{RootKeyType: KeyP256})
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := mustKey(t, KeyP256).Public()
	ed, _, _ := ed25519GenerateKey()
	tests := []struct {
		name  string
		issue func() error
		want  error
	}{
		{"rsa1024", func() error { _, err := c.IssueSigning(&small.PublicKey, "a@example.test", "A"); return err }, ErrUnsupportedKey},
		{"p224", func() error { _, err := c.IssueEncryption(&p224.PublicKey, "a@example.test", "A"); return err }, ErrUnsupportedKey},
		{"ed25519 encryption", func() error { _, err := c.IssueEncryption(ed, "a@example.test", "A"); return err }, ErrUnsupportedKey},
		{"display name", func() error { _, err := c.IssueSigning(good, "A <a@example.test>", "A"); return err }, ErrBadName},
		{"no at", func() error { _, err := c.IssueSigning(good, "a.example.test", "A"); return err }, ErrBadName},
		{"non-ascii", func() error { _, err := c.IssueSigning(good, "jürgen@example.test", "J"); return err }, ErrBadName},
		{"long name", func() error {
			_, err := c.IssueSigning(good, "a@example.test", string(make([]byte, 65)))
			return err
		}, ErrBadName},
		{"bad host", func() error { _, err := c.IssueTLSServer(good, []string{"bad host"}); return err }, ErrBadName},
	}
	for _, tc := range tests {
		if err := tc.issue(); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := c.IssueSigning(ed, "a@example.test", ""); err != nil {
		t.Errorf("Ed25519 signing certificate: %v", err)
	}
}

func TestValidityLimits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	fastEscrowKey(t, dir)
	if _, err := Open(dir, Options{Org: "O", Validity: MaxValidity + 24*time.Hour}); err == nil {
		t.Fatal("validity over 825 days accepted")
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	c, err := Open(dir, Options{Org: "O", Validity: MaxValidity, RootKeyType: KeyP256, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, KeyP256)
	cert, err := c.IssueSigning(key.Public(), "a@example.test", "A")
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.NotAfter.Sub(t0); got != MaxValidity {
		t.Errorf("validity %v, want %v", got, MaxValidity)
	}
	if got := t0.Sub(cert.NotBefore); got != clockSkew {
		t.Errorf("backdated by %v, want %v", got, clockSkew)
	}
	// Near the root's end, certificates stop with the root.
	now = c.Root().NotAfter.Add(-100 * 24 * time.Hour)
	cert, err = c.IssueSigning(key.Public(), "a@example.test", "A")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(c.Root().NotAfter) {
		t.Errorf("NotAfter %v outlives root %v", cert.NotAfter, c.Root().NotAfter)
	}
}

func TestFingerprintFormat(t *testing.T) {
	c, _ := openFastCA(t, Options{RootKeyType: KeyP256})
	fp := Fingerprint(c.Root())
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("fingerprint %q", fp)
	}
	d := Describe(c.Root())
	if d.Fingerprint != fp || d.Subject != "CN=Example Org smimeproxy Root CA,O=Example Org" {
		t.Errorf("Describe = %+v", d)
	}
	if s := d.String(); !regexp.MustCompile(`^CN=Example Org smimeproxy Root CA,O=Example Org \(SHA-256 fingerprint [0-9A-F:]{95}\)$`).MatchString(s) {
		t.Errorf("Describe string %q", s)
	}
}

func TestParseCertificatesPEM(t *testing.T) {
	c, _ := openTestCA(t, Options{RootKeyType: KeyP256})
	key, err := GenerateKey(KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	keyBlock, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	root, esc := c.Root(), c.EscrowCertificate()
	mixed := slices.Concat([]byte("comment\n"), keyBlock, certPEM(root), []byte("between\n"), certPEM(esc))
	got, err := ParseCertificatesPEM(mixed)
	if err != nil || len(got) != 2 || !got[0].Equal(root) || !got[1].Equal(esc) {
		t.Fatalf("mixed PEM: %d certificates, %v", len(got), err)
	}
	if got, err := ParseCertificatesPEM(keyBlock); err != nil || len(got) != 0 {
		t.Errorf("key only: %d certificates, %v", len(got), err)
	}
	if got, err := ParseCertificatesPEM(root.Raw); err != nil || len(got) != 0 {
		t.Errorf("DER: %d certificates, %v (DER is the caller's business)", len(got), err)
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw[:len(root.Raw)-1]})
	if _, err := ParseCertificatesPEM(slices.Concat(certPEM(root), bad)); err == nil || !strings.Contains(err.Error(), "certificate 2") {
		t.Errorf("damaged second certificate: %v", err)
	}
}
