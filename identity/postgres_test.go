package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"smimeproxy/internal/mailtest"
	"smimeproxy/store/postgres"
)

// pgCluster is one throwaway PostgreSQL cluster for this package's tests
// (started on first use, stopped in TestMain); each test gets a database.
var pgCluster mailtest.PostgresCluster

func openPostgres(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func postgresFixture(t *testing.T) *fixture {
	return newFixture(t, storeRecords{openPostgres(t, pgCluster.Database(t))})
}

// 50 concurrent redemptions of one token spread over two gateway
// instances (two Services, two connection pools, one database): exactly
// one enrolment.
func TestPostgresConcurrentRedemption(t *testing.T) {
	dsn := pgCluster.Database(t)
	a := newFixture(t, storeRecords{openPostgres(t, dsn)})
	b := newFixture(t, storeRecords{openPostgres(t, dsn)})
	ctx := context.Background()
	const dave = "dave@example.test"
	tok := a.token(t, dave, PurposeEnroll)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range errs {
		svc := a.svc
		if i%2 == 1 {
			svc = b.svc
		}
		wg.Go(func() {
			_, errs[i] = svc.Enroll(ctx, EnrollRequest{Email: dave, Token: tok, Name: fmt.Sprint("ID ", i), Password: "correct horse"})
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
	for _, f := range []*fixture{a, b} {
		d, err := f.svc.Show(ctx, dave)
		if err != nil || d.Current == nil || len(d.Earlier) != 0 {
			t.Fatalf("mailbox holds %+v, %v; want one ID", d, err)
		}
	}
}

func TestPostgresEnrolmentFailureLeavesNothing(t *testing.T) {
	testEnrolmentFailure(t, postgresFixture)
}

func TestPostgresRecovery(t *testing.T) {
	f := postgresFixture(t)
	ctx := context.Background()
	const alice = "alice@example.test"
	first := f.enroll(t, alice, "first password")
	oldMail := encryptTo(t, first.Identity.EncryptionCert, "old secret")
	if _, err := f.svc.Recover(ctx, EnrollRequest{Email: alice, Token: f.token(t, alice, PurposeRecover), Name: "Alice again", Password: "second password"}); err != nil {
		t.Fatal(err)
	}
	if got := decryptAs(t, f, alice, oldMail); !bytes.Contains([]byte(got), []byte("old secret")) {
		t.Fatalf("old mail after recovery: %q", got)
	}
	// Token errors come through the SQL store as distinct as from memory.
	if _, err := f.svc.Enroll(ctx, EnrollRequest{Email: alice, Token: f.token(t, "bob@example.test", PurposeEnroll), Name: "x", Password: "long enough"}); !errors.Is(err, ErrTokenWrongMailbox) {
		t.Fatalf("wrong mailbox: %v", err)
	}
}
