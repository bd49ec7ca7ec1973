package storetest

import (
	"sync"
	"testing"
	"time"

	"smimeproxy/store"
)

func testDirectory(t *testing.T, s store.Store) {
	orgCert := store.DirectoryCert{Email: "Bob@Example.org", CertDER: blob("bob-enrolled"), Source: store.SourceEnrolled,
		Capabilities: blob("caps-1"), FirstSeen: t0, LastSeen: t0}
	harvested := store.DirectoryCert{Email: "bob@example.org", CertDER: blob("bob-harvested"), Source: store.SourceHarvested,
		FirstSeen: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour), Owner: "Alice@example.org"}
	carols := store.DirectoryCert{Email: "bob@example.org", CertDER: blob("bob-from-carol"), Source: store.SourceHarvested,
		LastSeen: t0.Add(2 * time.Hour), Owner: "carol@example.org"}
	for _, c := range []store.DirectoryCert{orgCert, harvested, carols} {
		must(t, s.PutCert(ctx(t), c), "put %s", c.CertDER)
	}
	alice, err := s.CertsByEmail(ctx(t), "BOB@example.org", "alice@EXAMPLE.org")
	must(t, err, "alice's view")
	if len(alice) != 2 || string(alice[0].CertDER) != string(harvested.CertDER) || string(alice[1].CertDER) != string(orgCert.CertDER) {
		t.Fatalf("alice sees %d certificates, want harvested then org-wide", len(alice))
	}
	if alice[1].Fingerprint != store.Fingerprint(orgCert.CertDER) || alice[1].Email != "bob@example.org" ||
		alice[1].Owner != "" || alice[1].Source != store.SourceEnrolled {
		t.Fatalf("org-wide certificate read back as %+v", alice[1])
	}
	sameBytes(t, alice[1].Capabilities, blob("caps-1"), "capabilities")
	sameTime(t, alice[1].FirstSeen, t0, "first seen")
	if alice[0].Owner != "alice@example.org" {
		t.Fatalf("owner %q", alice[0].Owner)
	}
	dave, _ := s.CertsByEmail(ctx(t), "bob@example.org", "dave@example.org")
	if len(dave) != 1 {
		t.Fatalf("dave sees %d certificates, want the org-wide one only", len(dave))
	}
	if none, _ := s.CertsByEmail(ctx(t), "nobody@example.org", ""); len(none) != 0 {
		t.Fatalf("%d certificates for an unknown address", len(none))
	}

	// Seen again: LastSeen moves, FirstSeen stays, capabilities kept when
	// none came along, replaced when new ones did.
	again := orgCert
	again.Capabilities, again.FirstSeen, again.LastSeen = nil, t0.Add(5*time.Hour), t0.Add(5*time.Hour)
	must(t, s.PutCert(ctx(t), again), "seen again")
	got, _ := s.CertsByEmail(ctx(t), "bob@example.org", "")
	if len(got) != 1 {
		t.Fatalf("%d org-wide certificates after re-put", len(got))
	}
	sameTime(t, got[0].FirstSeen, t0, "first seen kept")
	sameTime(t, got[0].LastSeen, t0.Add(5*time.Hour), "last seen moved")
	sameBytes(t, got[0].Capabilities, blob("caps-1"), "capabilities kept")
	again.Capabilities = blob("caps-2")
	must(t, s.PutCert(ctx(t), again), "new capabilities")
	got, _ = s.CertsByEmail(ctx(t), "bob@example.org", "")
	sameBytes(t, got[0].Capabilities, blob("caps-2"), "capabilities replaced")

	must(t, s.DeleteCert(ctx(t), "alice@example.org", store.Fingerprint(harvested.CertDER)), "delete")
	if alice, _ := s.CertsByEmail(ctx(t), "bob@example.org", "alice@example.org"); len(alice) != 1 {
		t.Fatalf("alice sees %d after delete", len(alice))
	}
	wantErr(t, s.DeleteCert(ctx(t), "alice@example.org", "00"), store.ErrNotFound, "delete unknown")
}

func testTrust(t *testing.T, s store.Store) {
	org := store.TrustRoot{CertDER: blob("org-root"), Scope: store.ScopeOrg, AcceptedAt: t0}
	user := store.TrustRoot{CertDER: blob("user-root"), Scope: "Alice@Example.org", AcceptedAt: t0.Add(time.Hour)}
	must(t, s.AddTrustRoot(ctx(t), org), "org root")
	must(t, s.AddTrustRoot(ctx(t), user), "user root")
	orgs, err := s.ListTrustRoots(ctx(t), store.ScopeOrg)
	must(t, err, "list org")
	if len(orgs) != 1 || orgs[0].Fingerprint != store.Fingerprint(org.CertDER) {
		t.Fatalf("org roots %+v", orgs)
	}
	sameBytes(t, orgs[0].CertDER, org.CertDER, "org root DER")
	sameTime(t, orgs[0].AcceptedAt, t0, "accepted")
	alices, _ := s.ListTrustRoots(ctx(t), "alice@example.org")
	if len(alices) != 1 || alices[0].Scope != "alice@example.org" {
		t.Fatalf("alice's roots %+v", alices)
	}
	// Accepting again refreshes, never duplicates.
	user.AcceptedAt = t0.Add(2 * time.Hour)
	must(t, s.AddTrustRoot(ctx(t), user), "accept again")
	all, _ := s.ListTrustRoots(ctx(t), "")
	if len(all) != 2 {
		t.Fatalf("%d roots in all scopes, want 2", len(all))
	}
	alices, _ = s.ListTrustRoots(ctx(t), "alice@example.org")
	sameTime(t, alices[0].AcceptedAt, t0.Add(2*time.Hour), "accepted again")

	must(t, s.RemoveTrustRoot(ctx(t), "ALICE@example.org", store.Fingerprint(user.CertDER)), "remove")
	if alices, _ := s.ListTrustRoots(ctx(t), "alice@example.org"); len(alices) != 0 {
		t.Fatal("root still trusted after removal")
	}
	wantErr(t, s.RemoveTrustRoot(ctx(t), store.ScopeOrg, "00"), store.ErrNotFound, "remove unknown")
}

func testUpgrade(t *testing.T, s store.Store) {
	_, err := s.GetUpgrade(ctx(t), "carol@example.org")
	wantErr(t, err, store.ErrNotFound, "no upgrade state yet")
	must(t, s.SetUpgrade(ctx(t), store.Upgrade{Email: "Carol@example.org", State: store.UpgradePending, UpdatedAt: t0}), "pending")
	must(t, s.SetUpgrade(ctx(t), store.Upgrade{Email: "carol@example.org", State: store.UpgradeCanceled, UpdatedAt: t0.Add(time.Minute)}), "cancel")
	u, err := s.GetUpgrade(ctx(t), "CAROL@example.org")
	must(t, err, "get")
	if u.State != store.UpgradeCanceled || u.Email != "carol@example.org" {
		t.Fatalf("upgrade %+v", u)
	}
	sameTime(t, u.UpdatedAt, t0.Add(time.Minute), "updated")
}

func testSettings(t *testing.T, s store.Store) {
	_, err := s.GetSetting(ctx(t), "token_hmac_key")
	wantErr(t, err, store.ErrNotFound, "unset")
	must(t, s.PutSetting(ctx(t), "k", blob("v1")), "put")
	must(t, s.PutSetting(ctx(t), "k", blob("v2")), "overwrite")
	v, err := s.GetSetting(ctx(t), "k")
	must(t, err, "get")
	sameBytes(t, v, blob("v2"), "value")
	must(t, s.PutSetting(ctx(t), "empty", nil), "empty value")
	if v, err := s.GetSetting(ctx(t), "empty"); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %x, %v", v, err)
	}

	// Instances starting together: every one ends up with the same secret.
	results := make([][]byte, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			v, err := s.InitSetting(ctx(t), "token_hmac_key", blob(string(rune('a'+i))))
			if err != nil {
				t.Errorf("init %d: %v", i, err)
			}
			results[i] = v
		})
	}
	wg.Wait()
	stored, _ := s.GetSetting(ctx(t), "token_hmac_key")
	for i, v := range results {
		sameBytes(t, v, stored, "InitSetting result "+string(rune('0'+i)))
	}
}

func testAudit(t *testing.T, s store.Store) {
	entries := []store.AuditEntry{
		{Time: t0, Actor: "admin", Action: "token.create", Subject: "u@example.org"},
		{Time: t0.Add(time.Minute), Actor: "u@example.org", Action: "identity.enroll", Subject: "id-1"},
		{Time: t0.Add(2 * time.Minute), Actor: "u@example.org", Action: "trust.accept", Subject: "u@example.org"},
	}
	for _, e := range entries {
		must(t, s.Audit(ctx(t), e), "audit %s", e.Action)
	}
	all, err := s.ListAudit(ctx(t), store.AuditFilter{})
	must(t, err, "list")
	if len(all) != 3 || all[0].Action != "trust.accept" || all[2].Action != "token.create" {
		t.Fatalf("audit log not newest first: %+v", all)
	}
	if all[0].Seq <= all[1].Seq || all[1].Seq <= all[2].Seq {
		t.Fatal("sequence numbers not increasing")
	}
	sameTime(t, all[2].Time, t0, "time")
	if all[2].Actor != "admin" || all[2].Subject != "u@example.org" {
		t.Fatalf("entry read back as %+v", all[2])
	}
	bySubject, _ := s.ListAudit(ctx(t), store.AuditFilter{Subject: "u@example.org"})
	if len(bySubject) != 2 {
		t.Fatalf("%d entries for the subject", len(bySubject))
	}
	since, _ := s.ListAudit(ctx(t), store.AuditFilter{Since: t0.Add(time.Minute)})
	if len(since) != 2 {
		t.Fatalf("%d entries since t0+1m", len(since))
	}
	limited, _ := s.ListAudit(ctx(t), store.AuditFilter{Limit: 1})
	if len(limited) != 1 || limited[0].Action != "trust.accept" {
		t.Fatalf("limit 1: %+v", limited)
	}
}
