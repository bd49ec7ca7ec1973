// Package storetest is the conformance suite every store.Store
// implementation passes: CRUD of each entity, key history order,
// single-use tokens under concurrency, refusals told apart, transactions
// that leave nothing behind, pruning.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"smimeproxy/store"
)

// Opener returns a fresh, empty store for one subtest; it arranges its own
// cleanup.
type Opener func(t *testing.T) store.Store

// t0 is a fixed instant with microsecond precision, what stores keep.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// Run runs the whole suite against stores from open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Identities", testIdentities},
		{"KeyHistory", testKeyHistory},
		{"Escrow", testEscrow},
		{"Tokens", testTokens},
		{"TokenRefusals", testTokenRefusals},
		{"TokenConcurrentRedemption", testTokenConcurrentRedemption},
		{"TokenConcurrentEnrolment", testTokenConcurrentEnrolment},
		{"PruneTokens", testPruneTokens},
		{"TxRollback", testTxRollback},
		{"TxCommit", testTxCommit},
		{"Directory", testDirectory},
		{"Trust", testTrust},
		{"Upgrade", testUpgrade},
		{"Settings", testSettings},
		{"Audit", testAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func must(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

func wantErr(t *testing.T, err, want error, what string, args ...any) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", fmt.Sprintf(what, args...), err, want)
	}
}

func sameTime(t *testing.T, got, want time.Time, what string) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func sameBytes(t *testing.T, got, want []byte, what string) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", what, got, want)
	}
}

// blob is distinct binary content including bytes text columns would mangle.
func blob(tag string) []byte { return append([]byte{0, 0xff, 0x80, '\n'}, tag...) }

func newIdentity(id, email string) store.Identity {
	return store.Identity{
		ID: id, Email: email, Name: "Digital ID " + id, State: store.StatePendingTrust,
		MasterKeyWrap: blob("wrap-" + id), RootFingerprint: "ab12", CreatedAt: t0, UpdatedAt: t0,
	}
}

func newKey(id, identityID string, purpose store.KeyPurpose, created time.Time) store.Key {
	return store.Key{
		ID: id, IdentityID: identityID, Purpose: purpose, CertDER: blob("cert-" + id),
		SealedKey: blob("sealed-" + id), Serial: "0a" + id, NotAfter: created.Add(825 * 24 * time.Hour),
		Status: store.KeyCurrent, CreatedAt: created,
	}
}
