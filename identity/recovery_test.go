package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"smimeproxy/crypto/ca"
	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// encryptTo encrypts a small entity to cert, as a sender would.
func encryptTo(t *testing.T, cert *x509.Certificate, text string) []byte {
	t.Helper()
	der, err := smime.EncryptEntity([]byte("Content-Type: text/plain\r\n\r\n"+text+"\r\n"), []smime.Recipient{{Cert: cert}}, smime.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func decryptAs(t *testing.T, f *fixture, email string, der []byte) string {
	t.Helper()
	keys, err := f.svc.DecryptionKeys(context.Background(), email)
	if err != nil {
		t.Fatalf("decryption keys of %s: %v", email, err)
	}
	d, err := smime.DecryptDER(der, keys)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	return string(d.Entity)
}

// Recovery end to end: mail encrypted to the first encryption key still
// decrypts after recovery with a new token and a new password, twice over.
func TestRecoveryRestoresEncryptionHistory(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	first := f.enroll(t, alice, "first password")
	oldMail := encryptTo(t, first.Identity.EncryptionCert, "old secret")
	oldMaster := f.svc.cache.entries[first.Identity.ID].master

	// Forgotten password: recover with a recovery token.
	res, err := f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "Alice again", Password: "second password"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity.State != StateActive || !res.RootAccepted {
		t.Fatalf("the root was accepted before; recovered ID state %s", res.Identity.State)
	}
	if !bytes.Equal(oldMaster, make([]byte, len(oldMaster))) {
		t.Fatal("the superseded ID's master key is still in memory")
	}
	if !res.Identity.EncryptionCert.Equal(first.Identity.EncryptionCert) {
		t.Fatal("recovery must keep the escrowed encryption key current")
	}
	if res.Identity.SigningCert.Equal(first.Identity.SigningCert) {
		t.Fatal("recovery must issue a new signing certificate")
	}
	if got := decryptAs(t, f, alice, oldMail); !bytes.Contains([]byte(got), []byte("old secret")) {
		t.Fatalf("old mail after recovery: %q", got)
	}
	// The old password no longer opens anything; the new one does.
	f.svc.Lock(ctx, alice)
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "first password"}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password after recovery: %v", err)
	}
	f.clk.Advance(BackoffMax)
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "second password"}); err != nil {
		t.Fatal(err)
	}
	d, err := f.svc.Show(ctx, alice)
	if err != nil || len(d.Earlier) != 1 || d.Earlier[0].State != StateSuperseded ||
		!d.Earlier[0].SigningCert.Equal(first.Identity.SigningCert) {
		t.Fatalf("the old signing certificate must show as superseded: %v %+v", err, d)
	}

	// Revoked, then enrolled anew with fresh keys, then recovered: both
	// earlier encryption keys come back, the newest one current.
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	fresh := f.enroll(t, alice, "third password")
	newMail := encryptTo(t, fresh.Identity.EncryptionCert, "new secret")
	res, err = f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "Alice 3", Password: "fourth password"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Identity.EncryptionHistory) != 1 || !res.Identity.EncryptionCert.Equal(fresh.Identity.EncryptionCert) {
		t.Fatalf("history %d, current is the newest: %v", len(res.Identity.EncryptionHistory), res.Identity.EncryptionCert.Equal(fresh.Identity.EncryptionCert))
	}
	for _, m := range []struct {
		der  []byte
		want string
	}{{oldMail, "old secret"}, {newMail, "new secret"}} {
		if got := decryptAs(t, f, alice, m.der); !bytes.Contains([]byte(got), []byte(m.want)) {
			t.Fatalf("after second recovery: %q", got)
		}
	}
}

func TestRecoveryNeedsEscrowKey(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.CADir = t.TempDir() }) // no escrow.key there
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "first password")
	tok := f.token(t, alice, PurposeRecover)
	req := EnrollRequest{Email: alice, Token: tok, Name: "A", Password: "second password"}
	if _, err := f.svc.Recover(ctx, req); !errors.Is(err, ErrEscrowKey) {
		t.Fatalf("without the key-recovery key: %v", err)
	}
	// The operator brings the key; the same token works.
	f.svc.caDir = f.caDir
	if _, err := f.svc.Recover(ctx, req); err != nil {
		t.Fatalf("with the key back: %v", err)
	}
	if _, err := f.svc.Recover(ctx, EnrollRequest{Email: "bob@example.test", Token: f.token(t, "bob@example.test", PurposeRecover), Name: "B", Password: "second password"}); !errors.Is(err, ErrNoEscrow) {
		t.Fatalf("recovery for a mailbox that never enrolled: %v", err)
	}
}

// An administrator recovers an escrowed key offline with openssl and the
// key-recovery key, as the package documentation says.
func TestEscrowOpensWithOpenSSL(t *testing.T) {
	openssl := mailtest.LookTool(t, "openssl", "openssl")
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	res := f.enroll(t, alice, "first password")
	id, err := f.svc.liveIdentity(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := f.rec.Keys(ctx, id.ID)
	var escrow []byte
	for _, k := range keys {
		if k.Use == UseEncrypt {
			escrow = k.Escrow
		}
		if k.Use == UseSign && len(k.Escrow) > 0 {
			t.Fatal("signing keys must never be escrowed")
		}
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "escrow.der")
	out := filepath.Join(dir, "key.der")
	os.WriteFile(in, escrow, 0o600)
	cmd := exec.Command(openssl, "cms", "-decrypt", "-inform", "DER", "-in", in, "-binary",
		"-recip", filepath.Join(f.caDir, ca.EscrowCertFile), "-inkey", filepath.Join(f.caDir, ca.EscrowKeyFile), "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -decrypt: %v\n%s", err, b)
	}
	der, _ := os.ReadFile(out)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("openssl output is not a PKCS#8 key: %v", err)
	}
	if !publicKeyMatches(key, res.Identity.EncryptionCert.PublicKey) {
		t.Fatal("the escrowed key is not the encryption certificate's key")
	}
	// openssl pkey reads it too (the documented second step).
	if b, err := exec.Command(openssl, "pkey", "-inform", "DER", "-in", out, "-noout").CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, b)
	}
}
