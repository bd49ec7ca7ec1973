package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smimeproxy/crypto/seal"
)

func TestUnlockLockAndExpiry(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) {
		o.Remember = 30 * time.Minute
		o.RememberMax = 5 * time.Hour
		o.IdleTimeout = 20 * time.Minute
	})
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	if _, err := f.svc.DecryptionKeys(ctx, alice); err != nil {
		t.Fatalf("unlocked after enrolment: %v", err)
	}
	if err := f.svc.Lock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := f.svc.SigningKey(ctx, alice); !errors.Is(err, ErrLocked) {
		t.Fatalf("after lock: %v", err)
	}
	if _, err := f.svc.DecryptionKeys(ctx, alice); !errors.Is(err, ErrLocked) {
		t.Fatalf("after lock: %v", err)
	}

	// Absolute expiry: the remembered period, even with steady use.
	until, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse", Remember: 15 * time.Minute})
	if err != nil || !until.Equal(f.clk.Now().Add(15*time.Minute)) {
		t.Fatalf("unlock: %v until %v", err, until)
	}
	for range 2 {
		f.clk.Advance(7 * time.Minute)
		if _, err := f.svc.DecryptionKeys(ctx, alice); err != nil {
			t.Fatalf("within the period: %v", err)
		}
	}
	f.clk.Advance(time.Minute)
	if _, err := f.svc.DecryptionKeys(ctx, alice); !errors.Is(err, ErrLocked) {
		t.Fatalf("after the remembered period: %v", err)
	}

	// Idle expiry: a 5 h period still locks after 20 min unused.
	until, err = f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse", Remember: 9 * time.Hour})
	if err != nil || !until.Equal(f.clk.Now().Add(20*time.Minute)) {
		t.Fatalf("unlock for 9h (capped at 5h, idle 20m): %v until %v", err, until)
	}
	f.clk.Advance(19 * time.Minute)
	if _, _, _, _, err := f.svc.SigningKey(ctx, alice); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(20 * time.Minute)
	if _, _, _, _, err := f.svc.SigningKey(ctx, alice); !errors.Is(err, ErrLocked) {
		t.Fatalf("after 20 min idle: %v", err)
	}
	// Shutdown wipes everything.
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	f.svc.Close()
	if _, err := f.svc.DecryptionKeys(ctx, alice); !errors.Is(err, ErrLocked) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestUnlockBackoff(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	f.enroll(t, "bob@example.test", "battery staple")
	wrong := UnlockRequest{Email: alice, Password: "wrong password", ClientAddr: "192.0.2.7"}
	if _, err := f.svc.Unlock(ctx, wrong); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	var re *RetryError
	if _, err := f.svc.Unlock(ctx, wrong); !errors.As(err, &re) || re.After != time.Second {
		t.Fatalf("second try at once: %v", err)
	}
	// Even the right password waits: the back-off is not an oracle.
	right := UnlockRequest{Email: alice, Password: "correct horse", ClientAddr: "192.0.2.7"}
	if _, err := f.svc.Unlock(ctx, right); !errors.As(err, &re) {
		t.Fatalf("right password during back-off: %v", err)
	}
	// The same client address is slowed down on another ID too.
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: "bob@example.test", Password: "battery staple", ClientAddr: "192.0.2.7"}); !errors.As(err, &re) {
		t.Fatalf("same address, other ID: %v", err)
	}
	// And the ID from another address.
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse", ClientAddr: "198.51.100.1"}); !errors.As(err, &re) {
		t.Fatalf("same ID, other address: %v", err)
	}
	waits := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i := 1; i < len(waits); i++ {
		f.clk.Advance(waits[i-1])
		if _, err := f.svc.Unlock(ctx, wrong); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("try %d: %v", i+1, err)
		}
		if _, err := f.svc.Unlock(ctx, wrong); !errors.As(err, &re) || re.After != waits[i] {
			t.Fatalf("after %d failures: %v, want wait %v", i+1, err, waits[i])
		}
	}
	f.clk.Advance(waits[len(waits)-1])
	if _, err := f.svc.Unlock(ctx, right); err != nil {
		t.Fatalf("right password after waiting: %v", err)
	}
	// Reset on success: the next wrong password waits 1 s again.
	f.svc.Unlock(ctx, wrong)
	if _, err := f.svc.Unlock(ctx, wrong); !errors.As(err, &re) || re.After != time.Second {
		t.Fatalf("after success the back-off restarts: %v", err)
	}
	if !errors.Is(re, ErrTooManyAttempts) {
		t.Fatal("RetryError is not ErrTooManyAttempts")
	}
}

func TestNoIdentityErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const nobody = "nobody@example.test"
	if _, _, _, _, err := f.svc.SigningKey(ctx, nobody); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("SigningKey: %v", err)
	}
	if _, err := f.svc.DecryptionKeys(ctx, nobody); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("DecryptionKeys: %v", err)
	}
	if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: nobody, Password: "x"}); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Unlock: %v", err)
	}
	if _, err := f.svc.Show(ctx, nobody); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Show: %v", err)
	}
	if err := f.svc.Revoke(ctx, nobody); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Revoke: %v", err)
	}
}

func TestRevokeWipesAndRefuses(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	id, _ := f.svc.liveIdentity(ctx, alice)
	raw := f.svc.cache.entries[id.ID].master
	if err := f.svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, b := range raw {
		if b != 0 {
			t.Fatal("revoke left the master key in memory")
		}
	}
	if _, err := f.svc.DecryptionKeys(ctx, alice); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("after revoke: %v", err)
	}
	ids, _ := f.svc.List(ctx)
	if len(ids) != 0 {
		t.Fatalf("List shows a revoked ID: %+v", ids)
	}
	d, err := f.svc.Show(ctx, alice)
	if err != nil || d.Current != nil || len(d.Earlier) != 1 || d.Earlier[0].State != StateRevoked {
		t.Fatalf("Show after revoke: %v %+v", err, d)
	}
	// A new enrolment is possible now.
	f.enroll(t, alice, "new password")
	var actions []string
	for _, a := range f.rec.records.(*memRecords).st.audit {
		actions = append(actions, strings.Fields(a)[1])
	}
	want := []string{"token.create", "identity.enroll", "trust.accept", "identity.revoke", "token.create", "identity.enroll"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit log %v, want %v", actions, want)
	}
}

// A burst of 100 unlocks runs at most the limiter's capacity of Argon2
// derivations at once, and every one of them succeeds.
func TestUnlockBurstBoundedByLimiter(t *testing.T) {
	lim := seal.NewLimiter(3)
	f := newFixture(t, nil, func(o *Options) { o.Limiter = lim })
	ctx := context.Background()
	const alice = "alice@example.test"
	f.enroll(t, alice, "correct horse")
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 100 {
		wg.Go(func() {
			if _, err := f.svc.Unlock(ctx, UnlockRequest{Email: alice, Password: "correct horse"}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d unlocks failed", failed.Load())
	}
	if lim.Peak() < 2 || lim.Peak() > 3 {
		t.Fatalf("peak concurrent derivations %d, want 2..3 (the limiter's capacity)", lim.Peak())
	}
}
