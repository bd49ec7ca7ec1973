package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"smimeproxy/crypto/smime"
)

// TestEscrowedKeysExport: after enrolment, revocation, a fresh enrolment
// and a recovery, the export holds each escrowed encryption key once,
// oldest first, only the live ID's key marked current, and each envelope
// opens with the key-recovery key to the certificate's private key.
func TestEscrowedKeysExport(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	if _, err := f.svc.EscrowedKeys(ctx, alice); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("before enrolment: %v, want ErrNoIdentity", err)
	}
	first := f.enroll(t, alice, "first password")
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	second := f.enroll(t, alice, "second password")
	if _, err := f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "A", Password: "third password"}); err != nil {
		t.Fatal(err)
	}
	esc, err := f.svc.EscrowedKeys(ctx, "Alice@Example.test")
	if err != nil {
		t.Fatal(err)
	}
	if esc.Email != alice || !esc.RecoveryCert.Equal(f.ca.EscrowCertificate()) {
		t.Fatalf("export for %s to %v", esc.Email, esc.RecoveryCert.Subject)
	}
	want := []*x509.Certificate{first.Identity.EncryptionCert, second.Identity.EncryptionCert}
	if len(esc.Keys) != len(want) {
		t.Fatalf("%d escrowed keys, want %d (each once)", len(esc.Keys), len(want))
	}
	rcert, rkey, err := f.svc.escrowKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range esc.Keys {
		if !k.Cert.Equal(want[i]) {
			t.Errorf("key %d is %s, want %s", i, k.Cert.SerialNumber, want[i].SerialNumber)
		}
		if k.Current != (i == 1) {
			t.Errorf("key %d current %v", i, k.Current)
		}
		dec, err := smime.DecryptDER(k.Envelope, []smime.KeyPair{{Cert: rcert, Key: rkey}})
		if err != nil {
			t.Fatalf("key %d: envelope does not open with the key-recovery key: %v", i, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(dec.Entity)
		if err != nil || !publicKeyMatches(priv, k.Cert.PublicKey) {
			t.Fatalf("key %d: envelope holds no key of its certificate (%v)", i, err)
		}
	}
	if n := countAudit(t, f, "escrow.export"); n != 1 {
		t.Errorf("%d escrow.export audit records, want 1", n)
	}
}

// countAudit counts the in-memory store's audit records of action.
func countAudit(t *testing.T, f *fixture, action string) int {
	t.Helper()
	m := f.rec.records.(*memRecords)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.st.audit {
		if strings.Contains(a, " "+action+" ") {
			n++
		}
	}
	return n
}
