package storetest

import (
	"errors"
	"testing"
	"time"

	"smimeproxy/store"
)

// enrol is what an enrolment writes, all through one transaction.
func enrol(t *testing.T, tx store.Tx, tok store.Token, id string) error {
	t.Helper()
	if _, err := tx.ConsumeToken(ctx(t), store.TokenUse{Hash: tok.Hash, Email: tok.Email,
		Purpose: tok.Purpose, UsedBy: id, At: t0.Add(time.Hour)}); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return tx.CreateIdentity(ctx(t), newIdentity(id, tok.Email)) },
		func() error { return tx.AddKey(ctx(t), newKey(id+"-sign", id, store.PurposeSign, t0)) },
		func() error { return tx.AddKey(ctx(t), newKey(id+"-enc", id, store.PurposeEncrypt, t0)) },
		func() error {
			return tx.PutEscrow(ctx(t), store.Escrow{KeyID: id + "-enc", Envelope: blob("escrow"), CreatedAt: t0})
		},
		func() error {
			return tx.PutCert(ctx(t), store.DirectoryCert{Email: tok.Email, CertDER: blob("cert-" + id + "-enc"),
				Source: store.SourceEnrolled, LastSeen: t0})
		},
		func() error {
			return tx.Audit(ctx(t), store.AuditEntry{Time: t0, Actor: tok.Email, Action: "identity.enroll", Subject: id})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// checkNothingLeft asserts a failed enrolment left no trace and its token
// is still unused.
func checkNothingLeft(t *testing.T, s store.Store, tok store.Token, id string) {
	t.Helper()
	if _, err := s.GetIdentity(ctx(t), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("identity after rollback: %v", err)
	}
	for _, k := range []string{id + "-sign", id + "-enc"} {
		if _, err := s.GetKey(ctx(t), k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key %s after rollback: %v", k, err)
		}
	}
	if _, err := s.GetEscrow(ctx(t), id+"-enc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("escrow after rollback: %v", err)
	}
	if certs, _ := s.CertsByEmail(ctx(t), tok.Email, ""); len(certs) != 0 {
		t.Fatalf("%d directory certificates after rollback", len(certs))
	}
	if entries, _ := s.ListAudit(ctx(t), store.AuditFilter{}); len(entries) != 0 {
		t.Fatalf("%d audit entries after rollback", len(entries))
	}
	got, err := s.GetToken(ctx(t), tok.Hash)
	must(t, err, "token after rollback")
	if got.Used() {
		t.Fatal("token spent by a rolled-back enrolment")
	}
}

func testTxRollback(t *testing.T, s store.Store) {
	tok := newToken("t", "u@example.org", store.TokenEnroll, 72*time.Hour)
	must(t, s.CreateToken(ctx(t), tok), "create token")
	boom := errors.New("certificate issuance failed")

	err := s.Tx(ctx(t), func(tx store.Tx) error {
		if err := enrol(t, tx, tok, "id-1"); err != nil {
			return err
		}
		// Inside the transaction its own writes are visible.
		if _, err := tx.GetIdentity(ctx(t), "id-1"); err != nil {
			t.Errorf("own write not visible inside the transaction: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	checkNothingLeft(t, s, tok, "id-1")

	// A panic rolls back too, and goes on to the caller.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic inside Tx was swallowed")
			}
		}()
		_ = s.Tx(ctx(t), func(tx store.Tx) error {
			if err := enrol(t, tx, tok, "id-2"); err != nil {
				return err
			}
			panic("crash mid-enrolment")
		})
	}()
	checkNothingLeft(t, s, tok, "id-2")

	// A write error inside rolls back the earlier writes as well.
	must(t, s.CreateIdentity(ctx(t), newIdentity("id-taken", "x@example.org")), "identity")
	err = s.Tx(ctx(t), func(tx store.Tx) error {
		if _, err := tx.ConsumeToken(ctx(t), store.TokenUse{Hash: tok.Hash, Email: tok.Email,
			Purpose: tok.Purpose, UsedBy: "id-taken", At: t0}); err != nil {
			return err
		}
		return tx.CreateIdentity(ctx(t), newIdentity("id-taken", tok.Email))
	})
	wantErr(t, err, store.ErrConflict, "enrolment onto a taken id")
	if got, _ := s.GetToken(ctx(t), tok.Hash); got.Used() {
		t.Fatal("token spent by a transaction that failed on a conflict")
	}

	// After all that the token still enrols.
	must(t, s.Tx(ctx(t), func(tx store.Tx) error { return enrol(t, tx, tok, "id-3") }), "enrol after rollbacks")
}

func testTxCommit(t *testing.T, s store.Store) {
	tok := newToken("t", "u@example.org", store.TokenEnroll, 72*time.Hour)
	must(t, s.CreateToken(ctx(t), tok), "create token")
	must(t, s.Tx(ctx(t), func(tx store.Tx) error { return enrol(t, tx, tok, "id-1") }), "enrol")
	if _, err := s.GetIdentity(ctx(t), "id-1"); err != nil {
		t.Fatalf("identity after commit: %v", err)
	}
	keys, _ := s.ListKeys(ctx(t), "id-1", "")
	if len(keys) != 2 {
		t.Fatalf("%d keys after commit", len(keys))
	}
	if _, err := s.GetEscrow(ctx(t), "id-1-enc"); err != nil {
		t.Fatalf("escrow after commit: %v", err)
	}
	if got, _ := s.GetToken(ctx(t), tok.Hash); got.UsedBy != "id-1" {
		t.Fatalf("token used by %q", got.UsedBy)
	}
	// A second enrolment with the spent token fails as a whole.
	err := s.Tx(ctx(t), func(tx store.Tx) error { return enrol(t, tx, tok, "id-2") })
	wantErr(t, err, store.ErrTokenUsed, "second enrolment")
	if _, err := s.GetIdentity(ctx(t), "id-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second enrolment left an identity: %v", err)
	}
}
