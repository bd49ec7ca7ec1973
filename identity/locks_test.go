package identity

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// lockLog records what OnLock listeners are told.
type lockLog struct {
	mu     sync.Mutex
	emails []string
}

func (l *lockLog) add(email string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emails = append(l.emails, email)
}

func (l *lockLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.emails)
}

// TestUnlockedIsNotAUse: asking whether an ID is unlocked must not keep it
// unlocked, or the IMAP proxy's cache checks would defeat the idle expiry.
func TestUnlockedIsNotAUse(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.Remember = time.Hour; o.IdleTimeout = 10 * time.Minute })
	const alice = "alice@example.test"
	f.enroll(t, alice, "alice-id-password")
	if !f.svc.Unlocked(alice) || !f.svc.Unlocked("Alice@Example.TEST") {
		t.Fatal("just enrolled (and so unlocked), Unlocked says no")
	}
	if f.svc.Unlocked("bob@example.test") || f.svc.Unlocked("not an address") {
		t.Fatal("Unlocked says yes for a mailbox without an unlocked ID")
	}
	for range 9 {
		f.clk.Advance(time.Minute)
		if !f.svc.Unlocked(alice) {
			t.Fatal("locked before the 10 min idle limit")
		}
	}
	f.clk.Advance(time.Minute)
	if f.svc.Unlocked(alice) {
		t.Fatal("Unlocked calls pushed back the idle expiry")
	}
	if _, err := f.svc.DecryptionKeys(context.Background(), alice); err == nil {
		t.Fatal("keys usable after the idle expiry")
	}
}

// TestOnLockTold: every way a Digital ID locks tells the listeners its
// mailbox, once, and Unlocked is false from then on.
func TestOnLockTold(t *testing.T) {
	const alice = "alice@example.test"
	ctx := context.Background()
	const bob = "bob@example.test"
	cases := []struct {
		name     string
		want     []string // sorted
		bobStays bool     // bob's ID must stay unlocked
		lock     func(f *fixture) error
	}{
		{"Lock", []string{alice}, true, func(f *fixture) error { return f.svc.Lock(ctx, "ALICE@example.test") }},
		{"Revoke", []string{alice}, true, func(f *fixture) error { return f.svc.Revoke(ctx, alice) }},
		{"Close", []string{alice, bob}, false, func(f *fixture) error { return f.svc.Close() }},
		{"absolute expiry, sweeper", []string{alice, bob}, false, func(f *fixture) error {
			f.clk.Advance(31 * time.Minute)
			f.svc.cache.sweep()
			return nil
		}},
		{"idle expiry, noticed by a use", []string{alice}, false, func(f *fixture) error {
			f.clk.Advance(30 * time.Minute)
			_, err := f.svc.DecryptionKeys(ctx, alice)
			if err == nil {
				t.Error("keys usable after expiry")
			}
			return nil
		}},
		{"expiry, noticed by Unlocked", []string{alice}, false, func(f *fixture) error {
			f.clk.Advance(30 * time.Minute)
			f.svc.Unlocked(alice)
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.enroll(t, alice, "alice-id-password")
			f.enroll(t, bob, "bob-id-password")
			var log lockLog
			f.svc.OnLock(log.add)
			if got := log.get(); len(got) != 0 {
				t.Fatalf("told %q before anything locked", got)
			}
			if err := tc.lock(f); err != nil {
				t.Fatal(err)
			}
			got := log.get()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("listener told %q, want %q", got, tc.want)
			}
			if tc.bobStays && !f.svc.Unlocked(bob) {
				t.Error("locking alice locked bob")
			}
			if f.svc.Unlocked(alice) {
				t.Error("Unlocked still true")
			}
			f.svc.Lock(ctx, alice) // already locked (or revoked): nothing to tell
			if got2 := log.get(); len(got2) != len(got) {
				t.Errorf("locking an already locked ID told the listeners again: %q", got2)
			}
		})
	}
}
