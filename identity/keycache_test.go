package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"smimeproxy/crypto/smime"
	"smimeproxy/internal/mailtest"
)

// cachedMailboxes lists the mailboxes whose opened keys the service holds.
func cachedMailboxes(s *Service) []string {
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	var out []string
	for e := range s.keys.entries {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// openBoth asks for the signing and the decryption keys of email.
func openBoth(t *testing.T, s *Service, email string) (*x509.Certificate, crypto.Signer, []smime.KeyPair) {
	t.Helper()
	ctx := context.Background()
	cert, signer, _, _, err := s.SigningKey(ctx, email)
	if err != nil {
		t.Fatalf("SigningKey(%s): %v", email, err)
	}
	dec, err := s.DecryptionKeys(ctx, email)
	if err != nil {
		t.Fatalf("DecryptionKeys(%s): %v", email, err)
	}
	return cert, signer, dec
}

// bothFail checks that SigningKey and DecryptionKeys both fail with want.
func bothFail(t *testing.T, s *Service, email string, want error) {
	t.Helper()
	ctx := context.Background()
	if _, _, _, _, err := s.SigningKey(ctx, email); !errors.Is(err, want) {
		t.Errorf("SigningKey: %v, want %v", err, want)
	}
	if _, err := s.DecryptionKeys(ctx, email); !errors.Is(err, want) {
		t.Errorf("DecryptionKeys: %v, want %v", err, want)
	}
}

// Once opened, the keys of an unlocked ID are served without touching the
// store, as the same key objects, within KeyRecheck; after it one read of
// the ID record (not of its keys) renews them.
func TestKeyCacheServesFromMemory(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	cert, signer, dec := openBoth(t, f.svc, alice)
	if got := cachedMailboxes(f.svc); !slices.Equal(got, []string{alice}) {
		t.Fatalf("cached mailboxes %q", got)
	}
	before, keysBefore := f.rec.storeReads(), f.rec.keyReads.Load()
	for range 20 {
		f.clk.Advance(KeyRecheck / 10)
		c2, s2, _, _, err := f.svc.SigningKey(ctx, "Alice@Example.test")
		if err != nil || c2 != cert || s2 != signer {
			t.Fatalf("second SigningKey: %v, same cert %v, same key %v", err, c2 == cert, s2 == signer)
		}
		d2, err := f.svc.DecryptionKeys(ctx, alice)
		if err != nil || len(d2) != len(dec) || d2[0].Key != dec[0].Key {
			t.Fatalf("second DecryptionKeys: %v", err)
		}
	}
	// 20 steps of KeyRecheck/10: two rechecks, each one ID read.
	if got, keys := f.rec.storeReads()-before, f.rec.keyReads.Load()-keysBefore; got != 2 || keys != 0 {
		t.Fatalf("%d store reads (%d of keys) in 40 cached calls, want 2 reads of the ID", got, keys)
	}
	// The cached key still signs, verifiably.
	digest := sha256.Sum256([]byte("message"))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(x509.ECDSAWithSHA256, []byte("message"), sig); err != nil {
		t.Fatalf("signature by the cached key: %v", err)
	}
}

// TestKeyCacheDroppedOnLockEvents: after every lock event the opened keys
// are gone from memory and a locked ID is never served from them.
func TestKeyCacheDroppedOnLockEvents(t *testing.T) {
	ctx := context.Background()
	const alice, bob = "alice@example.test", "bob@example.test"
	const kept, dropped, either = "kept", "dropped", ""
	cases := []struct {
		name string
		want error
		// bob: what alice's event does to bob's opened keys.
		bob   string
		event func(t *testing.T, f *fixture)
	}{
		{"Lock", ErrLocked, kept, func(t *testing.T, f *fixture) {
			if err := f.svc.Lock(ctx, alice); err != nil {
				t.Fatal(err)
			}
		}},
		{"Revoke", ErrNoIdentity, kept, func(t *testing.T, f *fixture) {
			if err := f.svc.Revoke(ctx, alice); err != nil {
				t.Fatal(err)
			}
		}},
		{"absolute expiry, sweeper", ErrLocked, dropped, func(_ *testing.T, f *fixture) {
			f.clk.Advance(DefaultRemember)
			f.svc.cache.sweep()
		}},
		// bob's expiry is noticed by his next use or the sweeper.
		{"absolute expiry, noticed by Unlocked", ErrLocked, either, func(_ *testing.T, f *fixture) {
			f.clk.Advance(DefaultRemember)
			f.svc.Unlocked(alice)
		}},
		{"Close", ErrLocked, dropped, func(_ *testing.T, f *fixture) { f.svc.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.enroll(t, alice, "alice-id-password")
			f.enroll(t, bob, "bob-id-password")
			openBoth(t, f.svc, alice)
			openBoth(t, f.svc, bob)
			tc.event(t, f)
			got := cachedMailboxes(f.svc)
			if slices.Contains(got, alice) {
				t.Fatal("alice's opened keys outlived the event")
			}
			if has := slices.Contains(got, bob); tc.bob != either && has != (tc.bob == kept) {
				t.Fatalf("bob's opened keys cached: %v, want them %s", has, tc.bob)
			}
			bothFail(t, f.svc, alice, tc.want)
		})
	}
}

// Idle expiry is noticed by the next use: served until then, refused from
// then on, and cached uses count as uses (they keep the ID unlocked as
// opening the keys did).
func TestKeyCacheIdleExpiry(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.Remember = time.Hour; o.IdleTimeout = 10 * time.Minute })
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	openBoth(t, f.svc, alice)
	for range 5 {
		f.clk.Advance(9 * time.Minute)
		openBoth(t, f.svc, alice) // each a use: 45 min, never 10 idle
	}
	f.clk.Advance(10 * time.Minute)
	bothFail(t, f.svc, alice, ErrLocked)
	if got := cachedMailboxes(f.svc); len(got) != 0 {
		t.Fatalf("opened keys of an expired ID still held: %q", got)
	}
}

// unlock, use, lock, use: ErrLocked; unlock again: the keys come back.
func TestKeyCacheLockUnlockCycle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	for i := range 3 {
		cert, _, _ := openBoth(t, f.svc, alice)
		openBoth(t, f.svc, alice)
		if err := f.svc.Lock(ctx, alice); err != nil {
			t.Fatal(err)
		}
		bothFail(t, f.svc, alice, ErrLocked)
		if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse"}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if c2, _, _ := openBoth(t, f.svc, alice); !c2.Equal(cert) {
			t.Fatal("another certificate after unlocking again")
		}
	}
}

// Recovery, and a new enrolment or an import after revocation, give the
// new keys at once, never the opened ones of the ID before.
func TestKeyCacheNewKeysAfterChange(t *testing.T) {
	ctx := context.Background()
	const alice = "alice@example.test"
	f := newFixture(t, nil)
	first := f.enroll(t, alice, "first password")
	oldCert, _, oldDec := openBoth(t, f.svc, alice)

	rec, err := f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "Again", Password: "second password"})
	if err != nil {
		t.Fatal(err)
	}
	cert, signer, dec := openBoth(t, f.svc, alice)
	if cert.Equal(oldCert) || !cert.Equal(rec.Identity.SigningCert) || !publicKeyMatches(signer, cert.PublicKey) {
		t.Fatal("after recovery SigningKey is not the new signing key")
	}
	// The restored encryption key is the same key, opened anew from the new ID.
	if len(dec) != 1 || !dec[0].Cert.Equal(first.Identity.EncryptionCert) || dec[0].Key == oldDec[0].Key {
		t.Fatalf("after recovery: %d decryption keys, or the old ID's opened key", len(dec))
	}

	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	bothFail(t, f.svc, alice, ErrNoIdentity)
	again := f.enroll(t, alice, "third password")
	cert, _, dec = openBoth(t, f.svc, alice)
	if !cert.Equal(again.Identity.SigningCert) || !dec[0].Cert.Equal(again.Identity.EncryptionCert) {
		t.Fatal("after a new enrolment the keys are not the new ID's")
	}

	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	ext := importExternal(t, f, alice, func() { bothFail(t, f.svc, alice, ErrPendingTrust) })
	cert, _, dec = openBoth(t, f.svc, alice)
	if !cert.Equal(ext.SignCert) || len(dec) != 1 || !dec[0].Cert.Equal(ext.SignCert) {
		t.Fatal("after an import the keys are not the imported ones")
	}
}

// importExternal imports a dual-use certificate from another CA (with an
// intermediate) for email, runs pending while the ID waits for its root,
// and accepts the root.
func importExternal(t *testing.T, f *fixture, email string, pending func()) *mailtest.User {
	t.Helper()
	ctx := context.Background()
	ext := mailtest.NewPKI(t).User(t, email, mailtest.P256, mailtest.DualUse)
	p12, err := pkcs12.Modern.Encode(ext.SignKey, ext.SignCert, ext.Chain, "p12pw")
	if err != nil {
		t.Fatal(err)
	}
	imp, err := f.svc.ImportPKCS12(ctx, ImportRequest{Email: email, PKCS12: p12, PKCS12Password: "p12pw", Name: "External", Password: "import password"})
	if err != nil {
		t.Fatal(err)
	}
	pending()
	if _, err := f.svc.AcceptRoot(ctx, email, imp.Root.Fingerprint); err != nil {
		t.Fatal(err)
	}
	return ext
}

// Trust changes drop every opened key (they cost one opening each).
func TestKeyCacheDroppedOnTrustChange(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	openBoth(t, f.svc, alice)
	pki := mailtest.NewPKI(t)
	added, err := f.svc.TrustAdd(ctx, pki.Root)
	if err != nil {
		t.Fatal(err)
	}
	if got := cachedMailboxes(f.svc); len(got) != 0 {
		t.Fatalf("after TrustAdd: %q cached", got)
	}
	openBoth(t, f.svc, alice)
	if err := f.svc.TrustRemove(ctx, added.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if got := cachedMailboxes(f.svc); len(got) != 0 {
		t.Fatalf("after TrustRemove: %q cached", got)
	}
}

// TestKeyCacheLockDuringOpening: a lock that happens while keys are being
// opened (here: while the store reads them) lets that call finish, as it
// did before the cache, but the opened keys are not kept, and the next
// call is refused.
func TestKeyCacheLockDuringOpening(t *testing.T) {
	ctx := context.Background()
	const alice = "alice@example.test"
	for _, kind := range []string{"sign", "decrypt"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, nil)
			f.enroll(t, alice, "correct horse")
			var once sync.Once
			lock := func() {
				once.Do(func() {
					if err := f.svc.Lock(ctx, alice); err != nil {
						t.Error(err)
					}
				})
			}
			f.rec.onKeys.Store(&lock)
			var err error
			if kind == "sign" {
				_, _, _, _, err = f.svc.SigningKey(ctx, alice)
			} else {
				_, err = f.svc.DecryptionKeys(ctx, alice)
			}
			if err != nil {
				t.Fatalf("the call under way when the lock came: %v", err)
			}
			if got := cachedMailboxes(f.svc); len(got) != 0 {
				t.Fatalf("keys opened across a lock were kept: %q", got)
			}
			bothFail(t, f.svc, alice, ErrLocked)
		})
	}
}

// Callers own the slices they get: changing them changes nothing for the
// next caller.
func TestKeyCacheSlicesAreCallers(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	importExternal(t, f, alice, func() {})
	openBoth(t, f.svc, alice) // the slices below come from the cache
	_, _, chain, _, err := f.svc.SigningKey(ctx, alice)
	if err != nil || len(chain) == 0 {
		t.Fatalf("SigningKey: %v, chain of %d", err, len(chain))
	}
	dec, err := f.svc.DecryptionKeys(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	chain[0] = nil
	dec[0] = smime.KeyPair{}
	_, _, chain2, _, _ := f.svc.SigningKey(ctx, alice)
	dec2, _ := f.svc.DecryptionKeys(ctx, alice)
	if chain2[0] == nil || dec2[0].Key == nil || dec2[0].Cert == nil {
		t.Fatal("a caller's change to its slice reached the cache")
	}
}

// Many callers at once while the ID is locked and unlocked over and over
// (run with -race): each call gets working keys or ErrLocked, nothing else,
// and once locked for good nothing is served.
func TestKeyCacheConcurrentUseAndLock(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	res := f.enroll(t, alice, "correct horse")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					cert, signer, _, _, err := f.svc.SigningKey(ctx, alice)
					if err == nil && (!cert.Equal(res.Identity.SigningCert) || !publicKeyMatches(signer, cert.PublicKey)) {
						t.Error("SigningKey gave keys that do not belong together")
					} else if err != nil && !errors.Is(err, ErrLocked) {
						t.Error(err)
					}
				} else {
					dec, err := f.svc.DecryptionKeys(ctx, alice)
					if err == nil && (len(dec) != 1 || !publicKeyMatches(dec[0].Key, dec[0].Cert.PublicKey)) {
						t.Error("DecryptionKeys gave a wrong key")
					} else if err != nil && !errors.Is(err, ErrLocked) {
						t.Error(err)
					}
				}
			}
		})
	}
	for range 20 {
		time.Sleep(time.Millisecond)
		f.svc.Lock(ctx, alice)
		time.Sleep(time.Millisecond)
		if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse"}); err != nil {
			t.Fatal(err)
		}
	}
	f.svc.Lock(ctx, alice)
	close(stop)
	wg.Wait()
	if got := cachedMailboxes(f.svc); len(got) != 0 {
		t.Fatalf("opened keys left after the last lock: %q", got)
	}
	bothFail(t, f.svc, alice, ErrLocked)
}
