package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"smimeproxy/crypto/smime"
)

func TestTokenRedemptionErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	req := func(tok Secret) EnrollRequest {
		return EnrollRequest{Email: alice, Token: tok, Name: "Alice", Password: "correct horse"}
	}

	good := f.token(t, alice, PurposeEnroll)
	// A typo: caught by the check symbol before any store lookup.
	typo := []byte(string(good))
	typo[3] = map[bool]byte{true: 'A', false: 'B'}[typo[3] != 'A']
	before := f.rec.tokenLookups.Load()
	if _, err := f.svc.Enroll(ctx, req(Secret(typo))); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("typo: %v", err)
	}
	if f.rec.tokenLookups.Load() != before {
		t.Fatal("a mistyped token reached the store")
	}
	unknown, _ := NewToken(nil)
	if _, err := f.svc.Enroll(ctx, req(unknown)); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	// Guessing from one address is slowed down; other addresses are not.
	guess := req(unknown)
	guess.ClientAddr = "203.0.113.9"
	f.svc.Enroll(ctx, guess)
	var re *RetryError
	if _, err := f.svc.Enroll(ctx, guess); !errors.As(err, &re) || re.After != time.Second {
		t.Fatalf("second unknown token from one address: %v", err)
	}
	f.clk.Advance(time.Second)
	bobs := f.token(t, "bob@example.test", PurposeEnroll)
	if _, err := f.svc.Enroll(ctx, req(bobs)); !errors.Is(err, ErrTokenWrongMailbox) {
		t.Fatalf("wrong mailbox: %v", err)
	}
	if _, err := f.svc.Recover(ctx, req(good)); !errors.Is(err, ErrTokenWrongPurpose) {
		t.Fatalf("wrong purpose: %v", err)
	}
	// Typed in lower case without dashes, with O for 0: still the token.
	typed := strings.ToLower(strings.ReplaceAll(string(good), "-", ""))
	typed = strings.ReplaceAll(typed, "0", "o")
	if _, err := f.svc.Enroll(ctx, req(Secret(typed))); err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if _, err := f.svc.Enroll(ctx, req(good)); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("replay: %v", err)
	}
	late := f.token(t, "carol@example.test", PurposeEnroll)
	f.clk.Advance(DefaultTokenTTL)
	r := req(late)
	r.Email = "Carol@Example.Test"
	if _, err := f.svc.Enroll(ctx, r); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	// The messages differ, so a user can tell what went wrong.
	seen := map[string]bool{}
	for _, e := range []error{ErrTokenMalformed, ErrTokenUnknown, ErrTokenUsed, ErrTokenExpired, ErrTokenWrongMailbox, ErrTokenWrongPurpose} {
		if seen[e.Error()] {
			t.Fatalf("two token errors read the same: %q", e)
		}
		seen[e.Error()] = true
	}
}

func TestEnrollPendingUntilRootAccepted(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	res, err := f.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeEnroll), Name: "Alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity.State != StatePending || res.RootAccepted {
		t.Fatalf("state %s, accepted %v: a fresh ID must wait for the root", res.Identity.State, res.RootAccepted)
	}
	if res.Root.Cert == nil || !res.Root.Cert.Equal(f.ca.Root()) || res.Root.Subject == "" ||
		len(res.Root.Fingerprint) != 95 {
		t.Fatalf("root shown: %+v", res.Root.Description)
	}
	id := res.Identity
	if id.SigningCert == nil || id.EncryptionCert == nil || id.SigningCert.Equal(id.EncryptionCert) || !id.Escrowed {
		t.Fatal("enrolment must give separate signing and encryption certificates, the latter escrowed")
	}
	if _, _, _, _, err := f.svc.SigningKey(ctx, alice); !errors.Is(err, ErrPendingTrust) {
		t.Fatalf("SigningKey while pending: %v", err)
	}
	if _, err := f.svc.DecryptionKeys(ctx, alice); !errors.Is(err, ErrPendingTrust) {
		t.Fatalf("DecryptionKeys while pending: %v", err)
	}
	if _, err := f.svc.RecipientCertificate(ctx, "", alice); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("a pending ID must not be offered to senders: %v", err)
	}
	// Declining = not accepting: still pending, resumable, not lost.
	if _, err := f.svc.AcceptRoot(ctx, alice, strings.Repeat("00:", 31)+"00"); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
	d, err := f.svc.Show(ctx, alice)
	if err != nil || d.Current.State != StatePending {
		t.Fatalf("after declining: %v %+v", err, d)
	}
	fp := strings.ToLower(strings.ReplaceAll(res.Root.Fingerprint, ":", ""))
	got, err := f.svc.AcceptRoot(ctx, alice, fp)
	if err != nil || got.State != StateActive {
		t.Fatalf("accept: %v %+v", err, got)
	}
	pool, err := f.svc.TrustPool(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.SigningCert.Verify(verifyOpts(pool, f.ca)); err != nil {
		t.Fatalf("accepted root not in the user's trust pool: %v", err)
	}
	other, _ := f.svc.TrustPool(ctx, "bob@example.test")
	if _, err := id.SigningCert.Verify(verifyOpts(other, f.ca)); err == nil {
		t.Fatal("alice's accepted root leaked into bob's trust pool")
	}

	// Usable now: unlocked since enrolment (remembered period).
	msg := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
	cert, key, chain, enc, err := f.svc.SigningKey(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	if err := smime.Sign(&signed, msg, smime.SignOptions{Cert: cert, Key: key, Chain: chain, EncryptionCert: enc}); err != nil {
		t.Fatal(err)
	}
	v, err := smime.Verify(signed.Bytes(), smime.VerifyOptions{Roots: pool, Now: f.clk.Now()})
	if err != nil || !v.Valid || !v.EncryptionCert.Equal(id.EncryptionCert) {
		t.Fatalf("signature by the enrolled ID: %v %+v", err, v)
	}
	rc, err := f.svc.RecipientCertificate(ctx, "bob@example.test", alice)
	if err != nil || !rc.Cert.Equal(id.EncryptionCert) || rc.Source != CertOurs || !smime.SupportsGCM(rc.Capabilities) {
		t.Fatalf("recipient certificate: %v %+v", err, rc)
	}
	der, err := smime.EncryptEntity([]byte("Content-Type: text/plain\r\n\r\nsecret\r\n"), []smime.Recipient{{Cert: rc.Cert}}, smime.EncryptOptions{Cipher: smime.AES256GCM})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := f.svc.DecryptionKeys(ctx, alice)
	if err != nil || len(keys) != 1 {
		t.Fatalf("decryption keys: %v (%d)", err, len(keys))
	}
	dec, err := smime.DecryptDER(der, keys)
	if err != nil || !bytes.Contains(dec.Entity, []byte("secret")) {
		t.Fatalf("decrypt: %v", err)
	}
	// A second enrolment of the same mailbox is refused.
	if _, err := f.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeEnroll), Name: "Again", Password: "correct horse"}); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Fatalf("second enrolment: %v", err)
	}
}

func TestEnrollValidatesInput(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	tok := f.token(t, "alice@example.test", PurposeEnroll)
	cases := []struct {
		req  EnrollRequest
		want error
	}{
		{EnrollRequest{Email: "Alice <alice@example.test>", Token: tok, Name: "A", Password: "long enough"}, ErrBadEmail},
		{EnrollRequest{Email: "alice@example.test", Token: tok, Name: "", Password: "long enough"}, ErrBadName},
		{EnrollRequest{Email: "alice@example.test", Token: tok, Name: "A\x00B", Password: "long enough"}, ErrBadName},
		{EnrollRequest{Email: "alice@example.test", Token: tok, Name: "A", Password: "short"}, ErrWeakPassword},
	}
	for _, c := range cases {
		if _, err := f.svc.Enroll(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%q/%q: got %v, want %v", c.req.Email, c.req.Name, err, c.want)
		}
	}
	if _, _, err := f.svc.CreateToken(ctx, "alice@example.test", "upgrade", 0); err == nil {
		t.Error("unknown purpose accepted")
	}
	f.svc.domains = []string{"example.org", "Example.Test."}
	if _, _, err := f.svc.CreateToken(ctx, "eve@elsewhere.test", PurposeEnroll, 0); !errors.Is(err, ErrDomain) {
		t.Errorf("token for a foreign domain: %v", err)
	}
	if _, _, err := f.svc.CreateToken(ctx, "carol@example.test", PurposeEnroll, 0); err != nil {
		t.Errorf("token for a listed domain: %v", err)
	}
	if false {
		t.Error("unknown purpose accepted")
	}
	if _, _, err := f.svc.CreateToken(ctx, "alice@example.test", PurposeEnroll, 365*24*time.Hour); err == nil {
		t.Error("a year-long token accepted")
	}
}

// Many redemptions of one token at once: exactly one enrolment.
func TestConcurrentRedemption(t *testing.T) {
	testConcurrentRedemption(t, newFixture(t, nil))
}

func testConcurrentRedemption(t *testing.T, f *fixture) {
	const n = 50
	ctx := context.Background()
	const dave = "dave@example.test"
	tok := f.token(t, dave, PurposeEnroll)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = f.svc.Enroll(ctx, EnrollRequest{Email: dave, Token: tok, Name: fmt.Sprint("ID ", i), Password: "correct horse"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsed), errors.Is(err, ErrAlreadyEnrolled):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d enrolments succeeded, want exactly 1", ok)
	}
	d, err := f.svc.Show(ctx, dave)
	if err != nil || d.Current == nil || len(d.Earlier) != 0 {
		t.Fatalf("mailbox holds %+v, %v; want one ID", d, err)
	}
}
