package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"sync"
	"time"

	"smimeproxy/crypto/smime"
)

// KeyRecheck bounds how long opened keys are served from memory without
// looking at the Digital ID's record in the store again. Changes made
// through this Service drop the opened keys at once; the recheck is for
// changes made by another gateway instance sharing a PostgreSQL store
// (revocation, recovery): those take effect here within KeyRecheck. A
// recheck is one read of the ID's record by its id, once per KeyRecheck
// per mailbox, not per message.
const KeyRecheck = 5 * time.Second

// keyCache keeps the opened key material of unlocked, active Digital IDs,
// so that SigningKey and DecryptionKeys, called for every message, do not
// read the store, unseal and parse the private keys each time.
//
// An entry is only a shortcut for the success case: it is served when the
// unlock cache still holds the ID (checked, and counted as a use, on every
// hit) and the store showed the ID active less than KeyRecheck ago. Any
// doubt falls back to the full path, so errors are the same as without the
// cache. Entries are dropped on every lock event (OnLock's list: Lock,
// expiry, Revoke, recovery, Close) and after every write of an ID's state
// or keys by this Service.
//
// What dropping clears: the references. The unsealed PKCS#8 bytes are
// wiped right after parsing (openKey) and never kept. The parsed keys
// (*rsa.PrivateKey, *ecdsa.PrivateKey) hold their secrets in big.Int and
// in crypto/rsa's and crypto/ecdsa's unexported precomputed values, which
// Go gives no way to wipe reliably (copies are made during parsing and
// arithmetic, and the garbage collector moves nothing but frees memory
// without zeroing it); and the same key objects were handed to callers,
// who may be signing with them at that moment, so overwriting them would
// corrupt a concurrent operation. They become garbage once the entry and
// the callers' references are gone.
type keyCache struct {
	mu sync.Mutex
	// gen counts drops. Opening keys takes a while; an opener records gen
	// before it reads the store and the unlock cache, and its result is
	// kept only if no drop happened meanwhile, so a lock or a change that
	// raced the opening cannot leave keys behind.
	gen     uint64
	closed  bool
	entries map[string]*openedKeys // by mailbox (NormalizeEmail)
}

// openedKeys is the opened material of one mailbox's Digital ID. Fields
// are filled on demand (signing and decryption separately) and never
// changed once set, so what a caller got stays valid.
type openedKeys struct {
	id      string    // the Digital ID the keys belong to
	checked time.Time // when the store last showed that ID active
	sign    *signingKeys
	dec     []smime.KeyPair // current first, then history newest first
	decOpen bool            // dec is filled (it may be empty)
}

// signingKeys is what SigningKey returns.
type signingKeys struct {
	cert   *x509.Certificate
	signer crypto.Signer
	chain  []*x509.Certificate
	enc    *x509.Certificate
}

func newKeyCache() *keyCache {
	return &keyCache{entries: map[string]*openedKeys{}}
}

// generation is what an opener records before it starts.
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// lookup returns a snapshot of email's entry.
func (c *keyCache) lookup(email string) (openedKeys, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[email]
	if !ok {
		return openedKeys{}, false
	}
	return *e, true
}

// update runs fn on email's entry for Digital ID id, creating it when
// missing or for another ID, unless a drop happened since gen (or the
// cache is closed): then nothing is kept. checked is when the caller read
// the ID's record from the store (before gen was recorded is not allowed).
func (c *keyCache) update(gen uint64, email, id string, checked time.Time, fn func(*openedKeys)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.gen != gen {
		return
	}
	e, ok := c.entries[email]
	if !ok || e.id != id {
		e = &openedKeys{id: id}
		c.entries[email] = e
	}
	if checked.After(e.checked) {
		e.checked = checked
	}
	fn(e)
}

// rechecked notes that the store showed id active at checked.
func (c *keyCache) rechecked(email, id string, checked time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[email]; ok && e.id == id && checked.After(e.checked) {
		e.checked = checked
	}
}

// drop forgets email's opened keys and makes any opening in progress
// discard its result.
func (c *keyCache) drop(email string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.entries[email]; ok {
		*e = openedKeys{} // no reference left behind in a stray pointer
		delete(c.entries, email)
	}
}

// dropAll forgets everything; with closing set, nothing is kept any more.
func (c *keyCache) dropAll(closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.closed = c.closed || closing
	for email, e := range c.entries {
		*e = openedKeys{}
		delete(c.entries, email)
	}
}

// cachedKeys returns email's (normalized) opened keys when they may be
// served: the ID is still unlocked (this counts as a use for the idle
// expiry, as opening the keys would) and was seen active in the store
// less than KeyRecheck ago, or is seen so now. Otherwise ok is false and
// the caller takes the full path, which gives the right error.
func (s *Service) cachedKeys(ctx context.Context, email string) (openedKeys, bool) {
	e, ok := s.keys.lookup(email)
	if !ok {
		return openedKeys{}, false
	}
	if !s.cache.use(e.id) {
		// Locked or expired: the unlock cache told OnLock (which dropped
		// the entry) unless it had already done so.
		s.keys.drop(email)
		return openedKeys{}, false
	}
	now := s.clock.Now()
	if age := now.Sub(e.checked); age >= 0 && age < KeyRecheck {
		return e, true
	}
	r, err := s.rec.Identity(ctx, e.id)
	if err != nil || r.State != StateActive {
		// Changed by another gateway instance (or the store failed): the
		// full path reads everything again and reports what is wrong.
		s.keys.drop(email)
		if err == nil && !r.State.live() {
			// Revoked or superseded there: its master key is of no use
			// here either, and OnLock listeners drop what they keep.
			s.cache.lock(e.id)
		}
		return openedKeys{}, false
	}
	s.keys.rechecked(email, e.id, now)
	return e, true
}
