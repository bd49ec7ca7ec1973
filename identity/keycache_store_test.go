package identity

import (
	"context"
	"testing"
)

// testKeyCacheOtherInstance: two gateway instances (two Services) on one
// store. A change made by instance b reaches instance a's opened keys
// within KeyRecheck: revocation, and recovery (whose new ID is not
// unlocked at a). a and b have separate clocks; only a's is moved.
func testKeyCacheOtherInstance(t *testing.T, a, b *fixture) {
	ctx := context.Background()
	const alice, bob = "alice@example.test", "bob@example.test"
	a.enroll(t, alice, "alice password")
	a.enroll(t, bob, "bob password")
	openBoth(t, a.svc, alice)
	openBoth(t, a.svc, bob)

	if err := b.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	a.clk.Advance(KeyRecheck)
	bothFail(t, a.svc, alice, ErrNoIdentity)
	if a.svc.Unlocked(alice) {
		t.Fatal("instance a keeps the revoked ID unlocked")
	}

	if _, err := b.svc.Recover(ctx, EnrollRequest{Email: bob, Token: b.token(t, bob, PurposeRecover), Name: "Bob again", Password: "new bob password"}); err != nil {
		t.Fatal(err)
	}
	a.clk.Advance(KeyRecheck)
	bothFail(t, a.svc, bob, ErrLocked) // the new ID is unlocked at b only
	if got := cachedMailboxes(a.svc); len(got) != 0 {
		t.Fatalf("instance a still holds opened keys of %q", got)
	}
	if _, err := a.svc.Unlock(ctx, UnlockRequest{Email: bob, Password: "new bob password"}); err != nil {
		t.Fatal(err)
	}
	cert, _, _ := openBoth(t, a.svc, bob)
	d, err := b.svc.Show(ctx, bob)
	if err != nil || !cert.Equal(d.Current.SigningCert) {
		t.Fatalf("instance a signs with another key than the recovered ID's: %v", err)
	}
}

func TestKeyCacheOtherInstance(t *testing.T) {
	rec := newMemRecords()
	testKeyCacheOtherInstance(t, newFixture(t, rec), newFixture(t, rec))
}

func TestPostgresKeyCacheOtherInstance(t *testing.T) {
	dsn := pgCluster.Database(t)
	a := newFixture(t, storeRecords{openPostgres(t, dsn)})
	b := newFixture(t, storeRecords{openPostgres(t, dsn)})
	testKeyCacheOtherInstance(t, a, b)
}

func TestSQLiteKeyCache(t *testing.T) {
	f, _ := sqliteFixture(t)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	cert, _, _ := openBoth(t, f.svc, alice)
	before := f.rec.storeReads()
	openBoth(t, f.svc, alice)
	if f.rec.storeReads() != before {
		t.Fatal("cached keys read the store")
	}
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	bothFail(t, f.svc, alice, ErrNoIdentity)
	f.enroll(t, alice, "another password")
	if c2, _, _ := openBoth(t, f.svc, alice); c2.Equal(cert) {
		t.Fatal("the revoked ID's signing key after a new enrolment")
	}
}
