package identity

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"smimeproxy/store/sqlite"
)

// openSQLite opens a fresh SQLite store file in a temp dir.
func openSQLite(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smimeproxy.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func sqliteFixture(t testing.TB, opts ...func(*Options)) (*fixture, string) {
	st, path := openSQLite(t)
	return newFixture(t, storeRecords{st}, opts...), path
}

func TestSQLiteConcurrentRedemption(t *testing.T) {
	f, _ := sqliteFixture(t)
	testConcurrentRedemption(t, f)
}

func TestSQLiteEnrolmentFailureLeavesNothing(t *testing.T) {
	testEnrolmentFailure(t, func(t *testing.T) *fixture { f, _ := sqliteFixture(t); return f })
}

// The whole life cycle through the SQL store: enrol, accept, recover, and
// old mail still decrypts.
func TestSQLiteRecovery(t *testing.T) {
	f, _ := sqliteFixture(t)
	ctx := context.Background()
	const alice = "alice@example.test"
	first := f.enroll(t, alice, "first password")
	oldMail := encryptTo(t, first.Identity.EncryptionCert, "old secret")
	res, err := f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "Alice again", Password: "second password"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity.State != StateActive || res.Identity.SigningCert.Equal(first.Identity.SigningCert) {
		t.Fatalf("recovered ID: %+v", res.Identity)
	}
	if got := decryptAs(t, f, alice, oldMail); !bytes.Contains([]byte(got), []byte("old secret")) {
		t.Fatalf("old mail after recovery: %q", got)
	}
	d, err := f.svc.Show(ctx, alice)
	if err != nil || len(d.Earlier) != 1 || d.Earlier[0].State != StateSuperseded || d.Current.Source != SourceCA {
		t.Fatalf("Show: %v %+v", err, d)
	}
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	d, _ = f.svc.Show(ctx, alice)
	states := map[State]int{}
	for _, e := range d.Earlier {
		states[e.State]++
	}
	if d.Current != nil || len(d.Earlier) != 2 || states[StateRevoked] != 1 || states[StateSuperseded] != 1 {
		t.Fatalf("after revoke: %+v", d)
	}
}

// After enrolment neither the password nor any private key (DER, bare
// numbers, base64, hex) is in the database file or its WAL, the logs or
// the reply.
func TestSQLiteNoSecretsInDatabaseFile(t *testing.T) {
	f, path := sqliteFixture(t, func(o *Options) { o.KeyType = "" }) // RSA: the default
	const alice = "alice@example.test"
	const pw Secret = "very secret password 42"
	res := f.enroll(t, alice, pw)
	secrets := secretsOf(t, f, alice, pw)
	var raw []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err == nil {
			raw = append(raw, b...)
		}
	}
	if !bytes.Contains(raw, res.Identity.EncryptionCert.Raw) {
		t.Fatal("database bytes lack the certificate; the scan proves nothing")
	}
	secretScan(t, "the database file", raw, secrets)
	secretScan(t, "the logs", f.logs.Bytes(), secrets)
}

// Two different enrol tokens for one mailbox redeemed at once: one
// Digital ID; the loser's transaction rolls back, so its token stays
// unused (and redeemable after a revocation).
func TestSQLiteTwoTokensOneMailbox(t *testing.T) {
	f, _ := sqliteFixture(t)
	ctx := context.Background()
	const alice = "alice@example.test"
	toks := []Secret{f.token(t, alice, PurposeEnroll), f.token(t, alice, PurposeEnroll)}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() {
			_, errs[i] = f.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: tok, Name: "A", Password: "correct horse"})
		})
	}
	wg.Wait()
	loser := -1
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrAlreadyEnrolled):
			loser = i
		default:
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if loser < 0 {
		t.Fatal("both enrolments succeeded for one mailbox")
	}
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: toks[loser], Name: "A", Password: "correct horse"}); err != nil {
		t.Fatalf("the losing token was spent: %v", err)
	}
}
