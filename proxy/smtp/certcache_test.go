package smtp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smimeproxy/crypto/smime"
	"smimeproxy/identity"
	"smimeproxy/policy"
)

// countingKeys answers RecipientCertificate from a map and counts calls.
type countingKeys struct {
	mu    sync.Mutex
	calls int
	certs map[string]*identity.Recipient
	fail  error // returned instead, when set
}

func (k *countingKeys) SigningKey(context.Context, string) (*x509.Certificate, crypto.Signer, []*x509.Certificate, *x509.Certificate, error) {
	return nil, nil, nil, nil, identity.ErrNoIdentity
}

func (k *countingKeys) RecipientCertificate(_ context.Context, _, email string) (*identity.Recipient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.fail != nil {
		return nil, k.fail
	}
	if rc := k.certs[email]; rc != nil {
		return rc, nil
	}
	return nil, fmt.Errorf("%w: %s", identity.ErrNoCertificate, email)
}

func (k *countingKeys) set(email string, rc *identity.Recipient) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if rc == nil {
		delete(k.certs, email)
	} else {
		k.certs[email] = rc
	}
}

// fakeClock is a clock tests move by hand; safe for concurrent sessions.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestCertCacheExpiry(t *testing.T) {
	bobCert := &identity.Recipient{Cert: &x509.Certificate{Raw: []byte("bob")}}
	const ttl = 5 * time.Second
	type step struct {
		advance   time.Duration
		change    func(k *countingKeys) // the directory changes before the lookup
		email     string
		wantCert  bool
		wantCalls int // cumulative calls to Keys
	}
	tests := []struct {
		name  string
		ttl   time.Duration
		steps []step
	}{
		{"reused within TTL", ttl, []step{
			{email: bob, wantCert: true, wantCalls: 1},
			{advance: ttl - time.Millisecond, email: bob, wantCert: true, wantCalls: 1},
		}},
		{"asked again at TTL", ttl, []step{
			{email: bob, wantCert: true, wantCalls: 1},
			{advance: ttl, email: bob, wantCert: true, wantCalls: 2},
		}},
		{"removal visible after TTL, not before", ttl, []step{
			{email: bob, wantCert: true, wantCalls: 1},
			{advance: time.Second, change: func(k *countingKeys) { k.set(bob, nil) }, email: bob, wantCert: true, wantCalls: 1},
			{advance: ttl, email: bob, wantCert: false, wantCalls: 2},
		}},
		{"none known is cached too, new certificate seen after TTL", ttl, []step{
			{email: dave, wantCert: false, wantCalls: 1},
			{change: func(k *countingKeys) { k.set(dave, bobCert) }, email: dave, wantCert: false, wantCalls: 1},
			{advance: ttl, email: dave, wantCert: true, wantCalls: 2},
		}},
		{"addresses cached apart", ttl, []step{
			{email: bob, wantCert: true, wantCalls: 1},
			{email: dave, wantCert: false, wantCalls: 2},
			{email: bob, wantCert: true, wantCalls: 2},
		}},
		{"no TTL, no cache", -1, []step{
			{email: bob, wantCert: true, wantCalls: 1},
			{email: bob, wantCert: true, wantCalls: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &countingKeys{certs: map[string]*identity.Recipient{bob: bobCert}}
			clk := newFakeClock()
			c := newCertCache(k, tt.ttl, clk.now)
			for i, s := range tt.steps {
				clk.advance(s.advance)
				if s.change != nil {
					s.change(k)
				}
				rc, err := c.RecipientCertificate(context.Background(), alice, s.email)
				switch {
				case s.wantCert && (err != nil || rc != bobCert):
					t.Fatalf("step %d: got %v, %v; want bob's certificate", i, rc, err)
				case !s.wantCert && !errors.Is(err, identity.ErrNoCertificate):
					t.Fatalf("step %d: got %v, %v; want ErrNoCertificate", i, rc, err)
				}
				if k.calls != s.wantCalls {
					t.Fatalf("step %d: %d lookups, want %d", i, k.calls, s.wantCalls)
				}
			}
		})
	}
}

// TestCertCacheLookupErrorsNotCached: a failing store is asked again on the
// next message, not remembered for the TTL.
func TestCertCacheLookupErrorsNotCached(t *testing.T) {
	storeDown := errors.New("store unavailable")
	k := &countingKeys{certs: map[string]*identity.Recipient{}, fail: storeDown}
	c := newCertCache(k, time.Minute, newFakeClock().now)
	for i := range 2 {
		if _, err := c.RecipientCertificate(context.Background(), alice, bob); !errors.Is(err, storeDown) {
			t.Fatalf("lookup %d: %v, want the store's error", i, err)
		}
	}
	if k.calls != 2 {
		t.Fatalf("%d lookups, want 2", k.calls)
	}
}

func TestCertCacheBounded(t *testing.T) {
	k := &countingKeys{certs: map[string]*identity.Recipient{}}
	c := newCertCache(k, time.Minute, newFakeClock().now)
	for i := range maxCertCacheEntries + 10 {
		c.RecipientCertificate(context.Background(), alice, fmt.Sprintf("r%d@example.test", i))
	}
	if n := len(c.entries); n > maxCertCacheEntries {
		t.Fatalf("%d entries, limit %d", n, maxCertCacheEntries)
	}
}

// TestRevokedRecipientAfterCertCacheTTL: through the proxy with the real
// identity service, a revoked recipient's certificate is still used within
// the TTL (the documented staleness) and no longer once it has passed: bob
// then gets the signed-only copy of encrypt = "when-possible".
func TestRevokedRecipientAfterCertCacheTTL(t *testing.T) {
	e := newEnv(t, envOptions{})
	clk := newFakeClock()
	e.proxy.certs.now = clk.now // before any session exists
	c := e.client(alice)
	sendToBob := func(subject string) []byte {
		t.Helper()
		before := len(e.up.Envelopes())
		if err := send(c, alice, []string{bob}, compose(alice, bob, "", "", subject, "body "+subject)); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return copyFor(t, e.up.Envelopes()[before:], bob).Data
	}
	// Only the outer Content-Type is read: bob's keys go with his ID.
	encrypted := func(raw []byte) bool {
		t.Helper()
		_, entity, err := smime.SplitMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.HasPrefix(bytes.ToLower(entity), []byte("content-type: application/pkcs7-mime"))
	}
	if !encrypted(sendToBob("before")) {
		t.Fatal("bob's copy before revocation not encrypted")
	}
	if err := e.ids.Revoke(e.ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ids.RecipientCertificate(e.ctx, alice, bob); !errors.Is(err, identity.ErrNoCertificate) {
		t.Fatalf("identity after revocation: %v, want ErrNoCertificate", err)
	}
	clk.advance(DefaultCertCacheTTL - time.Second)
	if !encrypted(sendToBob("within-ttl")) {
		t.Fatal("within the TTL the cached certificate should still be used")
	}
	clk.advance(time.Second)
	if o := e.open(sendToBob("after-ttl"), bob); o.encrypted || !o.valid {
		t.Fatalf("after the TTL: encrypted=%v validly signed=%v, want the signed-only copy", o.encrypted, o.valid)
	}
	if e.proxy.opts.Policy.Encrypt != policy.WhenPossible {
		t.Fatalf("test assumes encrypt = when-possible, have %s", e.proxy.opts.Policy.Encrypt)
	}
}
