package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smimeproxy/store"
	"smimeproxy/store/storetest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "smimeproxy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, openTemp) }

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopenKeepsDataAndSchema: migrations run once; a reopened file has
// its data, WAL mode and foreign keys on.
func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSetting(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != 1 {
		t.Fatalf("schema version %d, %v", v, err)
	}
	var rows int
	if err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_version`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("schema_version rows %d, %v: migration applied twice?", rows, err)
	}
	if v, err := s.GetSetting(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("setting after reopen: %q, %v", v, err)
	}
	var mode string
	var fk int
	s.db.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode)
	s.db.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || fk != 1 {
		t.Fatalf("journal_mode %q, foreign_keys %d", mode, fk)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(t.Context(), `INSERT INTO schema_version VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("a database from a newer build was opened")
	}
}

// TestTwoHandlesOneFile: two Stores on one file (two processes, say)
// queue on the busy timeout, and 50 redemptions of one token spread over
// them give exactly one success.
func TestTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	now := time.Now()
	tok := store.Token{Hash: []byte("tok"), Email: "u@example.org", Purpose: store.TokenEnroll, ExpiresAt: now.Add(time.Hour)}
	if err := stores[0].CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var wins, used atomic.Int32
	for i := range 50 {
		wg.Go(func() {
			id := fmt.Sprintf("id-%d", i)
			err := stores[i%2].Tx(t.Context(), func(tx store.Tx) error {
				if _, err := tx.ConsumeToken(t.Context(), store.TokenUse{Hash: tok.Hash, Email: tok.Email,
					Purpose: tok.Purpose, UsedBy: id, At: now}); err != nil {
					return err
				}
				return tx.CreateIdentity(t.Context(), store.Identity{ID: id, Email: tok.Email, State: store.StatePendingTrust})
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrTokenUsed):
				used.Add(1)
			default:
				t.Errorf("redemption %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || used.Load() != 49 {
		t.Fatalf("%d successes, %d told used; want 1 and 49", wins.Load(), used.Load())
	}
}
