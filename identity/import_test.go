package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

func TestImportPKCS12(t *testing.T) {
	pki := mailtest.NewPKI(t)
	ctx := context.Background()
	dual := pki.User(t, "erin@example.test", mailtest.RSA, mailtest.DualUse)
	p12, err := pkcs12.Modern.Encode(dual.SignKey, dual.SignCert, dual.Chain, "p12pw")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	req := ImportRequest{Email: dual.Email, PKCS12: p12, PKCS12Password: "p12pw", Name: "Erin external", Password: "correct horse"}

	bad := req
	bad.PKCS12Password = "wrong"
	if _, err := f.svc.ImportPKCS12(ctx, bad); !errors.Is(err, ErrBadPKCS12) {
		t.Fatalf("wrong PKCS#12 password: %v", err)
	}
	other := req
	other.Email = "mallory@example.test"
	if _, err := f.svc.ImportPKCS12(ctx, other); !errors.Is(err, ErrBadPKCS12) {
		t.Fatalf("someone else's certificate: %v", err)
	}

	res, err := f.svc.ImportPKCS12(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Identity
	if id.Source != SourceImport || id.Escrowed || id.State != StatePending {
		t.Fatalf("imported ID: source %s escrowed %v state %s", id.Source, id.Escrowed, id.State)
	}
	if !id.SigningCert.Equal(dual.SignCert) || !id.EncryptionCert.Equal(dual.SignCert) {
		t.Fatal("a dual-use certificate must serve both uses")
	}
	if res.Root.Cert == nil || !res.Root.Cert.Equal(pki.Root) {
		t.Fatal("the root to accept must be the file's root")
	}
	if _, err := f.svc.AcceptRoot(ctx, dual.Email, res.Root.Fingerprint); err != nil {
		t.Fatal(err)
	}
	cert, key, chain, enc, err := f.svc.SigningKey(ctx, dual.Email)
	if err != nil || !cert.Equal(dual.SignCert) || !enc.Equal(dual.SignCert) || len(chain) != 1 || !chain[0].Equal(pki.Intermediate) {
		t.Fatalf("signing key of the import: %v", err)
	}
	if !publicKeyMatches(key, dual.SignCert.PublicKey) {
		t.Fatal("signer is not the imported key")
	}
	der := encryptTo(t, dual.SignCert, "to the imported key")
	if got := decryptAs(t, f, dual.Email, der); !bytes.Contains([]byte(got), []byte("to the imported key")) {
		t.Fatal("decrypt with the imported key")
	}
	// No escrow, so no recovery.
	if _, err := f.svc.Recover(ctx, EnrollRequest{Email: dual.Email, Token: f.token(t, dual.Email, PurposeRecover), Name: "x", Password: "another password"}); !errors.Is(err, ErrNoEscrow) {
		t.Fatalf("recovery of an import: %v", err)
	}
	if _, err := f.svc.ImportPKCS12(ctx, req); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Fatalf("second import: %v", err)
	}
	// Separate signing and encryption certificates (here as a PEM bundle,
	// which the reader takes as well as PKCS#12).
	split := pki.User(t, "frank@example.test", mailtest.P256)
	var bundle []byte
	for _, k := range []any{split.SignKey, split.EncKey} {
		p, err := mailtest.KeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, p...)
	}
	bundle = append(bundle, mailtest.CertPEM(split.SignCert, split.EncCert, pki.Intermediate, pki.Root)...)
	res, err = f.svc.ImportPKCS12(ctx, ImportRequest{Email: split.Email, PKCS12: bundle, Name: "Frank", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Identity.SigningCert.Equal(split.SignCert) || !res.Identity.EncryptionCert.Equal(split.EncCert) || res.RootAccepted {
		t.Fatalf("split import: sign %v enc %v, root accepted by erin counts for frank: %v", res.Identity.SigningCert.Subject, res.Identity.EncryptionCert.Subject, res.RootAccepted)
	}
	if _, err := f.svc.AcceptRoot(ctx, split.Email, res.Root.Fingerprint); err != nil {
		t.Fatal(err)
	}
	der = encryptTo(t, split.EncCert, "to frank")
	if got := decryptAs(t, f, split.Email, der); !bytes.Contains([]byte(got), []byte("to frank")) {
		t.Fatal("decrypt with the imported encryption key")
	}
	// A signing-only certificate is not enough.
	split = pki.User(t, "heidi@example.test", mailtest.P256)
	signOnly, _ := pkcs12.Modern.Encode(split.SignKey, split.SignCert, split.Chain, "pw")
	if _, err := f.svc.ImportPKCS12(ctx, ImportRequest{Email: split.Email, PKCS12: signOnly, PKCS12Password: "pw", Name: "F", Password: "correct horse"}); !errors.Is(err, ErrBadPKCS12) {
		t.Fatalf("signing-only import: %v", err)
	}
}

func TestHarvestAndDirectory(t *testing.T) {
	pki := mailtest.NewPKI(t)
	ctx := context.Background()
	f := newFixture(t, nil)
	sender := pki.User(t, "grace@partner.test", mailtest.RSA)
	msg := []byte("From: grace@partner.test\r\nTo: alice@example.test\r\nSubject: s\r\n\r\nbody\r\n")
	var signed bytes.Buffer
	if err := smime.Sign(&signed, msg, smime.SignOptions{Cert: sender.SignCert, Key: sender.SignKey, Chain: sender.Chain[:1], EncryptionCert: sender.EncCert}); err != nil {
		t.Fatal(err)
	}
	const alice = "alice@example.test"
	// Not trusted yet: the signature is not valid, nothing is harvested.
	v, err := smime.Verify(signed.Bytes(), smime.VerifyOptions{Roots: mustPool(t, f, alice), Now: f.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Harvest(ctx, alice, v); len(got) != 0 || v.Valid {
		t.Fatalf("harvested from an untrusted signature: %v", got)
	}
	if _, err := f.svc.TrustAdd(ctx, pki.Root); err != nil {
		t.Fatal(err)
	}
	v, err = smime.Verify(signed.Bytes(), smime.VerifyOptions{Roots: mustPool(t, f, alice), Now: f.clk.Now()})
	if err != nil || !v.Valid {
		t.Fatalf("verify with the org root: %v %v", err, v.Reasons)
	}
	got, err := f.svc.Harvest(ctx, alice, v)
	if err != nil || len(got) != 1 || got[0] != "grace@partner.test" {
		t.Fatalf("harvest: %v %v", got, err)
	}
	rc, err := f.svc.RecipientCertificate(ctx, alice, "Grace@Partner.test")
	if err != nil || !rc.Cert.Equal(sender.EncCert) || rc.Source != CertHarvested || !smime.SupportsGCM(rc.Capabilities) {
		t.Fatalf("recipient certificate for alice: %v %+v", err, rc)
	}
	// Harvested by alice, not visible to bob.
	if _, err := f.svc.RecipientCertificate(ctx, "bob@example.test", "grace@partner.test"); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("bob sees alice's harvest: %v", err)
	}
	// Org-wide import: visible to everyone, harvest preferred for alice.
	if _, err := f.svc.ImportCertificate(ctx, sender.SignCert, nil); err == nil {
		t.Fatal("a signing-only certificate imported as a recipient certificate")
	}
	other := pki.User(t, "grace@partner.test", mailtest.P256)
	if _, err := f.svc.ImportCertificate(ctx, other.EncCert, nil); err != nil {
		t.Fatal(err)
	}
	if rc, err := f.svc.RecipientCertificate(ctx, "bob@example.test", "grace@partner.test"); err != nil || !rc.Cert.Equal(other.EncCert) || rc.Source != CertImported {
		t.Fatalf("bob gets the org-wide import: %v", err)
	}
	if rc, _ := f.svc.RecipientCertificate(ctx, alice, "grace@partner.test"); !rc.Cert.Equal(sender.EncCert) {
		t.Fatal("alice's own harvest comes before org-wide imports")
	}
	// Trust list and removal.
	roots, _ := f.svc.TrustList(ctx, "")
	if len(roots) != 1 || !roots[0].Cert.Equal(pki.Root) {
		t.Fatalf("trust list: %+v", roots)
	}
	if err := f.svc.TrustRemove(ctx, roots[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.TrustRemove(ctx, roots[0].Fingerprint); !errors.Is(err, ErrNotTrusted) {
		t.Fatalf("removing twice: %v", err)
	}
}

func mustPool(t *testing.T, f *fixture, email string) *x509.CertPool {
	t.Helper()
	p, err := f.svc.TrustPool(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
