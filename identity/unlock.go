package identity

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Clock gives the time; tests inject one they move by hand.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Unlock defaults; config's [keys] section overrides the first two.
const (
	DefaultRemember    = 30 * time.Minute
	DefaultMaxRemember = 5 * time.Hour
	// BackoffBase is the wait after the first wrong password; it doubles
	// with each further one, up to BackoffMax.
	BackoffBase = time.Second
	BackoffMax  = 5 * time.Minute
)

// Unlock errors.
var (
	ErrLocked        = errors.New("the Digital ID is locked: unlock it with its password")
	ErrWrongPassword = errors.New("wrong Digital ID password")
	// ErrTooManyAttempts comes wrapped in a *RetryError saying when to try again.
	ErrTooManyAttempts = errors.New("too many wrong passwords")
)

// RetryError says how long a caller must wait before the next password try.
type RetryError struct{ After time.Duration }

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v: try again in %s", ErrTooManyAttempts, e.After.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrTooManyAttempts) hold.
func (e *RetryError) Unwrap() error { return ErrTooManyAttempts }

// unlockCache holds the master keys of unlocked Digital IDs. It is the
// authority on whether an ID is unlocked: the opened private keys kept by
// keyCache are served only while an entry here lives. An entry dies at its
// absolute expiry (the remembered period) or after idle time without use,
// whichever comes first; dying, locking and shutdown zero the key bytes.
type unlockCache struct {
	clock Clock
	idle  time.Duration
	// gone, when set, is told the mailbox of every entry that dies (lock,
	// expiry, shutdown). It runs after mu is released, so it may call back.
	gone func(email string)

	mu      sync.Mutex
	entries map[string]*unlocked // by Digital ID id
	byEmail map[string]string    // mailbox → Digital ID id of its entry
}

type unlocked struct {
	email    string
	master   []byte
	lastUse  time.Time
	deadline time.Time // absolute expiry
}

func newUnlockCache(clock Clock, idle time.Duration) *unlockCache {
	return &unlockCache{clock: clock, idle: idle, entries: map[string]*unlocked{}, byEmail: map[string]string{}}
}

// put takes ownership of master; the cache wipes it when the entry dies.
// email is the mailbox of the Digital ID (for unlocked and gone).
func (c *unlockCache) put(id, email string, master []byte, remember time.Duration) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[id]; ok {
		clear(old.master)
	}
	c.entries[id] = &unlocked{email: email, master: master, lastUse: now, deadline: now.Add(remember)}
	c.byEmail[email] = id
}

// removeLocked wipes and drops one entry (c.mu held) and returns its
// mailbox.
func (c *unlockCache) removeLocked(id string, e *unlocked) string {
	clear(e.master)
	delete(c.entries, id)
	if c.byEmail[e.email] == id {
		delete(c.byEmail, e.email)
	}
	return e.email
}

// tell reports dead entries' mailboxes to gone; c.mu must not be held.
func (c *unlockCache) tell(emails ...string) {
	if c.gone == nil {
		return
	}
	for _, e := range emails {
		c.gone(e)
	}
}

// get returns a copy of the master key of an unlocked ID (the caller wipes
// it after use) and counts as a use for the idle expiry. An expired entry is
// wiped and ErrLocked returned.
func (c *unlockCache) get(id string) ([]byte, error) {
	now := c.clock.Now()
	c.mu.Lock()
	e, ok := c.entries[id]
	if !ok {
		c.mu.Unlock()
		return nil, ErrLocked
	}
	if c.expired(e, now) {
		email := c.removeLocked(id, e)
		c.mu.Unlock()
		c.tell(email)
		return nil, ErrLocked
	}
	e.lastUse = now
	out := append([]byte(nil), e.master...)
	c.mu.Unlock()
	return out, nil
}

// use counts a use of an unlocked ID for the idle expiry, like get, without
// copying its key; it reports whether the ID is unlocked. An expired entry
// is wiped.
func (c *unlockCache) use(id string) bool {
	now := c.clock.Now()
	c.mu.Lock()
	e, ok := c.entries[id]
	if !ok {
		c.mu.Unlock()
		return false
	}
	if c.expired(e, now) {
		email := c.removeLocked(id, e)
		c.mu.Unlock()
		c.tell(email)
		return false
	}
	e.lastUse = now
	c.mu.Unlock()
	return true
}

// unlocked reports whether email's Digital ID has a live entry. It is not a
// use: the idle expiry is not pushed back. An entry found expired dies here.
func (c *unlockCache) unlocked(email string) bool {
	now := c.clock.Now()
	c.mu.Lock()
	id, ok := c.byEmail[email]
	if !ok {
		c.mu.Unlock()
		return false
	}
	e := c.entries[id]
	if !c.expired(e, now) {
		c.mu.Unlock()
		return true
	}
	c.removeLocked(id, e)
	c.mu.Unlock()
	c.tell(email)
	return false
}

// until tells when an unlocked ID locks by itself if not used before.
func (c *unlockCache) until(id string) (time.Time, bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || c.expired(e, now) {
		return time.Time{}, false
	}
	if c.idle > 0 && e.lastUse.Add(c.idle).Before(e.deadline) {
		return e.lastUse.Add(c.idle), true
	}
	return e.deadline, true
}

func (c *unlockCache) expired(e *unlocked, now time.Time) bool {
	return !now.Before(e.deadline) || (c.idle > 0 && !now.Before(e.lastUse.Add(c.idle)))
}

// lock wipes one ID's key at once; it reports whether it was unlocked.
func (c *unlockCache) lock(id string) bool {
	c.mu.Lock()
	e, ok := c.entries[id]
	if !ok {
		c.mu.Unlock()
		return false
	}
	email := c.removeLocked(id, e)
	c.mu.Unlock()
	c.tell(email)
	return true
}

// sweep wipes every expired entry, so expired keys do not linger in memory
// until someone asks for them.
func (c *unlockCache) sweep() {
	now := c.clock.Now()
	var gone []string
	c.mu.Lock()
	for id, e := range c.entries {
		if c.expired(e, now) {
			gone = append(gone, c.removeLocked(id, e))
		}
	}
	c.mu.Unlock()
	c.tell(gone...)
}

// wipeAll locks everything (shutdown).
func (c *unlockCache) wipeAll() {
	var gone []string
	c.mu.Lock()
	for id, e := range c.entries {
		gone = append(gone, c.removeLocked(id, e))
	}
	c.mu.Unlock()
	c.tell(gone...)
}

// backoff slows down password guessing: after the n-th wrong password in a
// row for a key (a Digital ID, or a client address), the next try is refused
// for BackoffBase·2^(n-1), capped at BackoffMax. Success resets the key.
type backoff struct {
	clock Clock
	base  time.Duration
	max   time.Duration

	mu    sync.Mutex
	state map[string]*failures
}

type failures struct {
	n     int
	until time.Time
}

// backoffPrune is the table size at which forgotten entries are dropped, so
// a flood of client addresses cannot grow it without bound.
const backoffPrune = 4096

func newBackoff(clock Clock, base, max time.Duration) *backoff {
	return &backoff{clock: clock, base: base, max: max, state: map[string]*failures{}}
}

// wait returns how long the caller must still wait before trying any of keys
// (the longest of them), or 0.
func (b *backoff) wait(keys ...string) time.Duration {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var w time.Duration
	for _, k := range keys {
		if f, ok := b.state[k]; ok && now.Before(f.until) {
			w = max(w, f.until.Sub(now))
		}
	}
	return w
}

// fail records a wrong password against every key.
func (b *backoff) fail(keys ...string) {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.state) >= backoffPrune {
		for k, f := range b.state {
			// Forget entries whose last wait ended a full cap ago.
			if now.Sub(f.until) > b.max {
				delete(b.state, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := b.state[k]
		if !ok {
			f = &failures{}
			b.state[k] = f
		}
		f.n++
		d := b.max
		if f.n <= 30 { // beyond, the shift overflows; the cap applies anyway
			d = min(b.base<<(f.n-1), b.max)
		}
		f.until = now.Add(d)
	}
}

// reset forgets the failures of keys after a correct password.
func (b *backoff) reset(keys ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		delete(b.state, k)
	}
}
