package smtp

import (
	"context"
	"errors"
	"sync"
	"time"

	"smimeproxy/identity"
)

// DefaultCertCacheTTL is how long a recipient certificate lookup is reused.
const DefaultCertCacheTTL = 5 * time.Second

// maxCertCacheEntries bounds the cache; when full, expired entries go first,
// then everything (a burst of distinct recipients just costs lookups).
const maxCertCacheEntries = 4096

// certCache reuses RecipientCertificate answers for a few seconds. Each
// lookup is a few store queries plus certificate parsing, paid for the
// sender and every recipient of every message; a client sending many
// messages to the same people would otherwise repeat them all. Only public
// data is held (certificates, capabilities, "none known"); signing keys are
// never cached here (SigningKey is asked once per message).
//
// The price is staleness bounded by the TTL: a revoked Digital ID or a
// removed certificate can still be encrypted to for up to TTL after the
// change, and a newly enrolled or imported certificate is used up to TTL
// late. Lookup errors other than identity.ErrNoCertificate are not cached.
type certCache struct {
	keys Keys
	ttl  time.Duration // ≤ 0: every call goes to keys
	now  func() time.Time

	mu      sync.Mutex
	entries map[certKey]certEntry
}

type certKey struct{ owner, email string }

type certEntry struct {
	rc      *identity.Recipient // shared between sessions: read only
	err     error               // nil or wrapping identity.ErrNoCertificate
	expires time.Time
}

func newCertCache(keys Keys, ttl time.Duration, now func() time.Time) *certCache {
	if now == nil {
		now = time.Now
	}
	return &certCache{keys: keys, ttl: ttl, now: now, entries: map[certKey]certEntry{}}
}

// RecipientCertificate answers like Keys.RecipientCertificate, from the
// cache while the last answer for (owner, email) is younger than the TTL.
// email and owner are expected lower case, as the session passes them.
func (c *certCache) RecipientCertificate(ctx context.Context, owner, email string) (*identity.Recipient, error) {
	if c.ttl <= 0 {
		return c.keys.RecipientCertificate(ctx, owner, email)
	}
	k := certKey{owner, email}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rc, e.err
	}
	rc, err := c.keys.RecipientCertificate(ctx, owner, email)
	if err != nil && !errors.Is(err, identity.ErrNoCertificate) {
		return rc, err
	}
	c.mu.Lock()
	if len(c.entries) >= maxCertCacheEntries {
		c.pruneLocked(now)
	}
	c.entries[k] = certEntry{rc: rc, err: err, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return rc, err
}

func (c *certCache) pruneLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) >= maxCertCacheEntries {
		clear(c.entries)
	}
}
