package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"smimeproxy/internal/mailtest"
	"smimeproxy/store"
	"smimeproxy/store/storetest"
)

// cluster is one throwaway PostgreSQL cluster for this package's tests;
// each test gets its own database in it.
var cluster mailtest.PostgresCluster

func TestMain(m *testing.M) {
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop postgres:", err)
	}
	os.Exit(code)
}

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite with a fresh schema per subtest (a
// fresh database each costs about a second on a loaded machine).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, cluster.Schema(t)) })
}

// TestSeveralInstances: instances starting together on one database run
// each migration once, and 50 redemptions of one token spread over them
// still give exactly one success.
func TestSeveralInstances(t *testing.T) {
	dsn := cluster.Database(t)
	const instances = 3
	stores := make([]*Store, instances)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
			if err != nil {
				t.Errorf("instance %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range stores {
		t.Cleanup(func() { s.Close() })
	}
	var applied int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_version`).Scan(&applied); err != nil || applied != 1 {
		t.Fatalf("schema_version has %d rows (%v), want 1", applied, err)
	}

	ctx := context.Background()
	tok := store.Token{Hash: []byte("shared-token"), Email: "u@example.org", Purpose: store.TokenEnroll,
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := stores[0].CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	results := make([]error, 50)
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("id-%d", i)
			results[i] = stores[i%instances].Tx(ctx, func(tx store.Tx) error {
				if _, err := tx.ConsumeToken(ctx, store.TokenUse{Hash: tok.Hash, Email: tok.Email,
					Purpose: store.TokenEnroll, UsedBy: id}); err != nil {
					return err
				}
				return tx.CreateIdentity(ctx, store.Identity{ID: id, Email: tok.Email, Name: "x", State: store.StatePendingTrust})
			})
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrTokenUsed):
			t.Fatalf("redemption %d: %v", i, err)
		}
	}
	ids, _ := stores[1].ListIdentities(ctx)
	if wins != 1 || len(ids) != 1 {
		t.Fatalf("%d successful redemptions, %d Digital IDs; want 1 and 1", wins, len(ids))
	}
}
