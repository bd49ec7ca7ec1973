package storetest

import (
	"testing"
	"time"

	"smimeproxy/store"
)

func testIdentities(t *testing.T, s store.Store) {
	if _, err := s.GetIdentity(ctx(t), "nope"); err != nil {
		wantErr(t, err, store.ErrNotFound, "get unknown identity")
	} else {
		t.Fatal("unknown identity found")
	}
	alice := newIdentity("id-alice", "Alice@Example.ORG")
	must(t, s.CreateIdentity(ctx(t), alice), "create alice")
	got, err := s.GetIdentity(ctx(t), "id-alice")
	must(t, err, "get alice")
	if got.Email != "alice@example.org" || got.Name != alice.Name || got.State != store.StatePendingTrust ||
		got.RootFingerprint != "ab12" {
		t.Fatalf("alice read back as %+v", got)
	}
	sameBytes(t, got.MasterKeyWrap, alice.MasterKeyWrap, "master key wrap")
	sameTime(t, got.CreatedAt, t0, "created")
	sameTime(t, got.UpdatedAt, t0, "updated")

	byMail, err := s.IdentityByEmail(ctx(t), " ALICE@example.org")
	must(t, err, "identity by mixed-case email")
	if byMail.ID != "id-alice" {
		t.Fatalf("by email: got %q", byMail.ID)
	}
	_, err = s.IdentityByEmail(ctx(t), "bob@example.org")
	wantErr(t, err, store.ErrNotFound, "identity of a mailbox without one")

	wantErr(t, s.CreateIdentity(ctx(t), newIdentity("id-alice", "other@example.org")), store.ErrConflict, "duplicate id")
	wantErr(t, s.CreateIdentity(ctx(t), newIdentity("id-alice2", "alice@example.org")), store.ErrConflict,
		"second live Digital ID for one mailbox")

	// Revoke, then a new Digital ID for the mailbox is allowed.
	got.State = store.StateRevoked
	got.UpdatedAt = t0.Add(time.Hour)
	must(t, s.UpdateIdentity(ctx(t), got), "revoke alice")
	_, err = s.IdentityByEmail(ctx(t), "alice@example.org")
	wantErr(t, err, store.ErrNotFound, "revoked identity by email")
	second := newIdentity("id-alice2", "alice@example.org")
	second.CreatedAt = t0.Add(2 * time.Hour)
	must(t, s.CreateIdentity(ctx(t), second), "new identity after revocation")

	// Update changes what it says, and only that.
	second.Name, second.State, second.MasterKeyWrap = "Alice at work", store.StateActive, blob("rewrapped")
	second.RootFingerprint, second.UpdatedAt = "cd34", t0.Add(3*time.Hour)
	second.Email, second.CreatedAt = "mallory@example.org", t0.Add(99*time.Hour)
	must(t, s.UpdateIdentity(ctx(t), second), "update")
	got, err = s.GetIdentity(ctx(t), "id-alice2")
	must(t, err, "get updated")
	if got.Name != "Alice at work" || got.State != store.StateActive || got.RootFingerprint != "cd34" ||
		got.Email != "alice@example.org" {
		t.Fatalf("updated identity read back as %+v", got)
	}
	sameBytes(t, got.MasterKeyWrap, blob("rewrapped"), "rewrapped master key")
	sameTime(t, got.UpdatedAt, t0.Add(3*time.Hour), "updated_at")
	sameTime(t, got.CreatedAt, t0.Add(2*time.Hour), "created_at kept")
	wantErr(t, s.UpdateIdentity(ctx(t), newIdentity("ghost", "g@example.org")), store.ErrNotFound, "update unknown")

	must(t, s.CreateIdentity(ctx(t), newIdentity("id-bob", "bob@example.org")), "create bob")
	list, err := s.ListIdentities(ctx(t))
	must(t, err, "list")
	var ids []string
	for _, id := range list {
		ids = append(ids, id.ID)
	}
	if want := "[id-alice id-alice2 id-bob]"; fmtSlice(ids) != want {
		t.Fatalf("list order %v, want %s", ids, want)
	}
}

func testKeyHistory(t *testing.T, s store.Store) {
	must(t, s.CreateIdentity(ctx(t), newIdentity("id-1", "u@example.org")), "create identity")
	wantErr(t, s.AddKey(ctx(t), newKey("k-x", "no-such-id", store.PurposeSign, t0)), store.ErrNotFound,
		"key of unknown Digital ID")
	must(t, s.AddKey(ctx(t), newKey("sign-1", "id-1", store.PurposeSign, t0)), "add sign-1")
	// Encryption keys added out of time order, two with the same time:
	// history is newest first, ties in insertion order reversed.
	must(t, s.AddKey(ctx(t), newKey("enc-2", "id-1", store.PurposeEncrypt, t0.Add(48*time.Hour))), "enc-2")
	must(t, s.AddKey(ctx(t), newKey("enc-1", "id-1", store.PurposeEncrypt, t0)), "enc-1")
	must(t, s.AddKey(ctx(t), newKey("enc-3a", "id-1", store.PurposeEncrypt, t0.Add(96*time.Hour))), "enc-3a")
	must(t, s.AddKey(ctx(t), newKey("enc-3b", "id-1", store.PurposeEncrypt, t0.Add(96*time.Hour))), "enc-3b")
	wantErr(t, s.AddKey(ctx(t), newKey("enc-1", "id-1", store.PurposeEncrypt, t0)), store.ErrConflict, "duplicate key id")

	enc, err := s.ListKeys(ctx(t), "id-1", store.PurposeEncrypt)
	must(t, err, "list encryption keys")
	if got := keyIDs(enc); got != "[enc-3b enc-3a enc-2 enc-1]" {
		t.Fatalf("encryption key history %s", got)
	}
	all, err := s.ListKeys(ctx(t), "id-1", "")
	must(t, err, "list all keys")
	if got := keyIDs(all); got != "[enc-3b enc-3a enc-2 enc-1 sign-1]" {
		t.Fatalf("all keys %s", got)
	}
	none, err := s.ListKeys(ctx(t), "other", "")
	must(t, err, "keys of unknown id")
	if len(none) != 0 {
		t.Fatalf("keys of an unknown Digital ID: %d", len(none))
	}

	k, err := s.GetKey(ctx(t), "enc-2")
	must(t, err, "get enc-2")
	want := newKey("enc-2", "id-1", store.PurposeEncrypt, t0.Add(48*time.Hour))
	if k.IdentityID != "id-1" || k.Purpose != store.PurposeEncrypt || k.Serial != want.Serial || k.Status != store.KeyCurrent {
		t.Fatalf("enc-2 read back as %+v", k)
	}
	sameBytes(t, k.CertDER, want.CertDER, "cert")
	sameBytes(t, k.SealedKey, want.SealedKey, "sealed key")
	sameTime(t, k.NotAfter, want.NotAfter, "not after")
	sameTime(t, k.CreatedAt, want.CreatedAt, "created")

	// Recovery: signing key superseded, old encryption key re-sealed.
	sign, _ := s.GetKey(ctx(t), "sign-1")
	sign.Status = store.KeySuperseded
	sign.CertDER = blob("ignored") // certificates are immutable
	must(t, s.UpdateKey(ctx(t), sign), "supersede sign-1")
	k.SealedKey = blob("resealed")
	must(t, s.UpdateKey(ctx(t), k), "reseal enc-2")
	sign, _ = s.GetKey(ctx(t), "sign-1")
	if sign.Status != store.KeySuperseded {
		t.Fatalf("sign-1 status %s", sign.Status)
	}
	sameBytes(t, sign.CertDER, blob("cert-sign-1"), "certificate kept")
	k, _ = s.GetKey(ctx(t), "enc-2")
	sameBytes(t, k.SealedKey, blob("resealed"), "resealed key")
	wantErr(t, s.UpdateKey(ctx(t), newKey("ghost", "id-1", store.PurposeSign, t0)), store.ErrNotFound, "update unknown key")
	_, err = s.GetKey(ctx(t), "ghost")
	wantErr(t, err, store.ErrNotFound, "get unknown key")
}

func testEscrow(t *testing.T, s store.Store) {
	must(t, s.CreateIdentity(ctx(t), newIdentity("id-1", "u@example.org")), "identity")
	must(t, s.AddKey(ctx(t), newKey("enc-1", "id-1", store.PurposeEncrypt, t0)), "key")
	wantErr(t, s.PutEscrow(ctx(t), store.Escrow{KeyID: "ghost", Envelope: blob("e"), CreatedAt: t0}),
		store.ErrNotFound, "escrow of unknown key")
	_, err := s.GetEscrow(ctx(t), "enc-1")
	wantErr(t, err, store.ErrNotFound, "escrow not yet stored")
	must(t, s.PutEscrow(ctx(t), store.Escrow{KeyID: "enc-1", Envelope: blob("env1"), CreatedAt: t0}), "put")
	e, err := s.GetEscrow(ctx(t), "enc-1")
	must(t, err, "get")
	sameBytes(t, e.Envelope, blob("env1"), "envelope")
	sameTime(t, e.CreatedAt, t0, "created")
	must(t, s.PutEscrow(ctx(t), store.Escrow{KeyID: "enc-1", Envelope: blob("env2"), CreatedAt: t0.Add(time.Hour)}), "replace")
	e, _ = s.GetEscrow(ctx(t), "enc-1")
	sameBytes(t, e.Envelope, blob("env2"), "replaced envelope")
}

func keyIDs(ks []store.Key) string {
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	return fmtSlice(ids)
}

func fmtSlice(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}
