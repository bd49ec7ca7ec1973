package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"smimeproxy/store"
)

func newToken(tag, email string, purpose store.TokenPurpose, ttl time.Duration) store.Token {
	return store.Token{Hash: blob("hmac-" + tag), Email: email, Purpose: purpose, CreatedAt: t0, ExpiresAt: t0.Add(ttl)}
}

func testTokens(t *testing.T, s store.Store) {
	tok := newToken("a", "User@Example.org", store.TokenEnroll, 72*time.Hour)
	must(t, s.CreateToken(ctx(t), tok), "create")
	wantErr(t, s.CreateToken(ctx(t), tok), store.ErrConflict, "same hash twice")
	_, err := s.GetToken(ctx(t), blob("hmac-none"))
	wantErr(t, err, store.ErrNotFound, "get unknown")
	got, err := s.GetToken(ctx(t), tok.Hash)
	must(t, err, "get")
	if got.Email != "user@example.org" || got.Purpose != store.TokenEnroll || got.Used() || got.UsedBy != "" {
		t.Fatalf("token read back as %+v", got)
	}
	sameTime(t, got.CreatedAt, t0, "created")
	sameTime(t, got.ExpiresAt, t0.Add(72*time.Hour), "expires")

	must(t, s.CreateToken(ctx(t), newToken("b", "other@example.org", store.TokenRecover, time.Hour)), "create b")
	list, err := s.ListTokens(ctx(t), "USER@example.org")
	must(t, err, "list")
	if len(list) != 1 || string(list[0].Hash) != string(tok.Hash) {
		t.Fatalf("tokens of user: %d", len(list))
	}
	if all, _ := s.ListTokens(ctx(t), ""); len(all) != 2 {
		t.Fatalf("all tokens: %d", len(all))
	}

	at := t0.Add(time.Hour)
	used, err := s.ConsumeToken(ctx(t), store.TokenUse{Hash: tok.Hash, Email: "user@EXAMPLE.org",
		Purpose: store.TokenEnroll, UsedBy: "id-1", At: at})
	must(t, err, "consume")
	if !used.Used() || used.UsedBy != "id-1" {
		t.Fatalf("consumed token %+v", used)
	}
	sameTime(t, used.UsedAt, at, "used_at")
	again, _ := s.GetToken(ctx(t), tok.Hash)
	sameTime(t, again.UsedAt, at, "used_at stored")
}

// testTokenRefusals: each way a redemption can fail is told apart, and a
// refusal spends nothing.
func testTokenRefusals(t *testing.T, s store.Store) {
	live := newToken("live", "u@example.org", store.TokenEnroll, 72*time.Hour)
	short := newToken("short", "u@example.org", store.TokenEnroll, time.Minute)
	spent := newToken("spent", "u@example.org", store.TokenRecover, 72*time.Hour)
	for _, tk := range []store.Token{live, short, spent} {
		must(t, s.CreateToken(ctx(t), tk), "create")
	}
	now := t0.Add(time.Hour)
	_, err := s.ConsumeToken(ctx(t), store.TokenUse{Hash: spent.Hash, Email: "u@example.org",
		Purpose: store.TokenRecover, UsedBy: "id-0", At: now})
	must(t, err, "spend the recover token")

	cases := []struct {
		name string
		use  store.TokenUse
		want error
	}{
		{"unknown", store.TokenUse{Hash: blob("mistyped"), Email: "u@example.org", Purpose: store.TokenEnroll}, store.ErrTokenNotFound},
		{"wrong mailbox", store.TokenUse{Hash: live.Hash, Email: "v@example.org", Purpose: store.TokenEnroll}, store.ErrTokenMailbox},
		{"wrong purpose", store.TokenUse{Hash: live.Hash, Email: "u@example.org", Purpose: store.TokenRecover}, store.ErrTokenPurpose},
		{"expired", store.TokenUse{Hash: short.Hash, Email: "u@example.org", Purpose: store.TokenEnroll}, store.ErrTokenExpired},
		{"replayed", store.TokenUse{Hash: spent.Hash, Email: "u@example.org", Purpose: store.TokenRecover}, store.ErrTokenUsed},
	}
	for _, c := range cases {
		c.use.At, c.use.UsedBy = now, "id-x"
		_, err := s.ConsumeToken(ctx(t), c.use)
		wantErr(t, err, c.want, "%s", c.name)
		for _, other := range []error{store.ErrTokenNotFound, store.ErrTokenMailbox, store.ErrTokenPurpose,
			store.ErrTokenExpired, store.ErrTokenUsed} {
			if other != c.want && errors.Is(err, other) {
				t.Fatalf("%s: error %v also matches %v", c.name, err, other)
			}
		}
	}
	// Expiry is exclusive: at the expiry instant the token is dead.
	_, err = s.ConsumeToken(ctx(t), store.TokenUse{Hash: live.Hash, Email: "u@example.org",
		Purpose: store.TokenEnroll, UsedBy: "id-1", At: live.ExpiresAt})
	wantErr(t, err, store.ErrTokenExpired, "at the expiry instant")
	// None of the refusals spent the live token.
	got, _ := s.GetToken(ctx(t), live.Hash)
	if got.Used() {
		t.Fatal("a refused redemption spent the token")
	}
	_, err = s.ConsumeToken(ctx(t), store.TokenUse{Hash: live.Hash, Email: "u@example.org",
		Purpose: store.TokenEnroll, UsedBy: "id-1", At: now})
	must(t, err, "live token after the refusals")
}

const concurrentRedemptions = 50

// testTokenConcurrentRedemption: 50 simultaneous redemptions of one token,
// exactly one wins, the others are told it is used.
func testTokenConcurrentRedemption(t *testing.T, s store.Store) {
	tok := newToken("race", "u@example.org", store.TokenEnroll, 72*time.Hour)
	must(t, s.CreateToken(ctx(t), tok), "create")
	results := race(concurrentRedemptions, func(i int) error {
		_, err := s.ConsumeToken(ctx(t), store.TokenUse{Hash: tok.Hash, Email: "u@example.org",
			Purpose: store.TokenEnroll, UsedBy: fmt.Sprintf("id-%d", i), At: t0.Add(time.Hour)})
		return err
	})
	winner := checkOneWinner(t, results)
	got, _ := s.GetToken(ctx(t), tok.Hash)
	if got.UsedBy != fmt.Sprintf("id-%d", winner) {
		t.Fatalf("token used by %q, winner was %d", got.UsedBy, winner)
	}
}

// testTokenConcurrentEnrolment: 50 simultaneous enrolments with one token,
// each a transaction that redeems it and writes a Digital ID with keys:
// exactly one Digital ID results.
func testTokenConcurrentEnrolment(t *testing.T, s store.Store) {
	tok := newToken("enrol", "u@example.org", store.TokenEnroll, 72*time.Hour)
	must(t, s.CreateToken(ctx(t), tok), "create")
	results := race(concurrentRedemptions, func(i int) error {
		id := fmt.Sprintf("id-%d", i)
		return s.Tx(ctx(t), func(tx store.Tx) error {
			if _, err := tx.ConsumeToken(ctx(t), store.TokenUse{Hash: tok.Hash, Email: "u@example.org",
				Purpose: store.TokenEnroll, UsedBy: id, At: t0.Add(time.Hour)}); err != nil {
				return err
			}
			if err := tx.CreateIdentity(ctx(t), newIdentity(id, "u@example.org")); err != nil {
				return err
			}
			return tx.AddKey(ctx(t), newKey("enc-"+id, id, store.PurposeEncrypt, t0))
		})
	})
	winner := checkOneWinner(t, results)
	ids, err := s.ListIdentities(ctx(t))
	must(t, err, "list")
	if len(ids) != 1 || ids[0].ID != fmt.Sprintf("id-%d", winner) {
		t.Fatalf("%d Digital IDs after the race, want only the winner's", len(ids))
	}
	keys, _ := s.ListKeys(ctx(t), ids[0].ID, "")
	if len(keys) != 1 {
		t.Fatalf("winner has %d keys", len(keys))
	}
}

// race runs fn n times at once, released together, and returns each error.
func race(n int, fn func(i int) error) []error {
	results := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return results
}

func checkOneWinner(t *testing.T, results []error) (winner int) {
	t.Helper()
	winner = -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("redemptions %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrTokenUsed):
			t.Fatalf("redemption %d: %v, want ErrTokenUsed", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no redemption succeeded")
	}
	return winner
}

func testPruneTokens(t *testing.T, s store.Store) {
	old := newToken("old", "u@example.org", store.TokenEnroll, time.Hour)
	oldUsed := newToken("old-used", "u@example.org", store.TokenEnroll, 2*time.Hour)
	fresh := newToken("fresh", "u@example.org", store.TokenEnroll, 72*time.Hour)
	freshUsed := newToken("fresh-used", "u@example.org", store.TokenRecover, 72*time.Hour)
	for _, tk := range []store.Token{old, oldUsed, fresh, freshUsed} {
		must(t, s.CreateToken(ctx(t), tk), "create")
	}
	for _, tk := range []store.Token{oldUsed, freshUsed} {
		_, err := s.ConsumeToken(ctx(t), store.TokenUse{Hash: tk.Hash, Email: tk.Email, Purpose: tk.Purpose, At: t0})
		must(t, err, "consume")
	}
	n, err := s.PruneTokens(ctx(t), t0.Add(2*time.Hour))
	must(t, err, "prune")
	if n != 2 {
		t.Fatalf("pruned %d tokens, want 2", n)
	}
	for _, tk := range []store.Token{old, oldUsed} {
		_, err := s.GetToken(ctx(t), tk.Hash)
		wantErr(t, err, store.ErrNotFound, "pruned token")
	}
	for _, tk := range []store.Token{fresh, freshUsed} {
		_, err := s.GetToken(ctx(t), tk.Hash)
		must(t, err, "token kept")
	}
	if n, _ := s.PruneTokens(ctx(t), t0.Add(2*time.Hour)); n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
}
