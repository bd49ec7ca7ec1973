package imap

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"smimeproxy/crypto/smime"
)

func cacheView(n int) *View { return &View{Raw: bytes.Repeat([]byte("x"), n)} }

func TestViewCacheBoundAndEviction(t *testing.T) {
	const viewBytes = 1000
	entry := int64(viewBytes + len("bob@example.test") + len("INBOX") + viewEntryOverhead)
	c := newViewCache(3 * entry)
	for uid := uint32(1); uid <= 3; uid++ {
		c.put(svKey(uid), cacheView(viewBytes), true)
	}
	if used, n := c.stats(); n != 3 || used != 3*entry {
		t.Fatalf("3 views: %d bytes, %d views; want %d, 3", used, n, 3*entry)
	}
	// UID 1 becomes the most recently used; UID 2 is then the oldest.
	if _, ok := c.get(svKey(1)); !ok {
		t.Fatal("UID 1 missing")
	}
	c.put(svKey(4), cacheView(viewBytes), true)
	if _, ok := c.get(svKey(2)); ok {
		t.Fatal("least recently used view (UID 2) not evicted")
	}
	for _, uid := range []uint32{1, 3, 4} {
		if _, ok := c.get(svKey(uid)); !ok {
			t.Fatalf("UID %d evicted", uid)
		}
	}
	// A view larger than the bound is not kept and evicts nothing.
	c.put(svKey(5), cacheView(int(4*entry)), true)
	if _, ok := c.get(svKey(5)); ok {
		t.Fatal("oversized view kept")
	}
	if used, n := c.stats(); n != 3 || used > 3*entry {
		t.Fatalf("after oversized put: %d bytes, %d views", used, n)
	}
	// Replacing a view accounts its new size once.
	c.put(svKey(4), cacheView(10), true)
	if used, _ := c.stats(); used != 2*entry+entry-viewBytes+10 {
		t.Fatalf("after replacing: %d bytes", used)
	}
}

func TestViewCacheKeyParts(t *testing.T) {
	c := newViewCache(1 << 20)
	base := MessageKey{User: "Bob@Example.test", Mailbox: "INBOX", UIDValidity: 1, UID: 9}
	c.put(base, cacheView(1), false)
	same := base
	same.User = " bob@example.TEST"
	if _, ok := c.get(same); !ok {
		t.Fatal("login spelling changed the key")
	}
	for _, other := range []MessageKey{
		{User: "alice@example.test", Mailbox: "INBOX", UIDValidity: 1, UID: 9},
		{User: base.User, Mailbox: "Archive", UIDValidity: 1, UID: 9},
		{User: base.User, Mailbox: "INBOX", UIDValidity: 2, UID: 9},
		{User: base.User, Mailbox: "INBOX", UIDValidity: 1, UID: 10},
	} {
		if _, ok := c.get(other); ok {
			t.Fatalf("%+v hit the view of %+v", other, base)
		}
	}
}

func TestViewCacheWipe(t *testing.T) {
	c := newViewCache(1 << 20)
	for uid := imap.UID(1); uid <= 50; uid++ {
		c.put(MessageKey{User: "bob@example.test", Mailbox: "INBOX", UIDValidity: 1, UID: uid}, cacheView(100), true)
		c.put(MessageKey{User: "alice@example.test", Mailbox: "INBOX", UIDValidity: 1, UID: uid}, cacheView(100), true)
	}
	c.wipe("BOB@example.test")
	used, n := c.stats()
	if n != 50 || used == 0 {
		t.Fatalf("%d views (%d bytes) after wiping bob, want alice's 50", n, used)
	}
	if _, ok := c.get(MessageKey{User: "bob@example.test", Mailbox: "INBOX", UIDValidity: 1, UID: 3}); ok {
		t.Fatal("bob's view survived the wipe")
	}
	c.wipe("alice@example.test")
	if used, n = c.stats(); used != 0 || n != 0 {
		t.Fatalf("after wiping everyone: %d bytes, %d views", used, n)
	}
}

func TestViewCacheConcurrent(t *testing.T) {
	c := newViewCache(50 * (100 + viewEntryOverhead + 32))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := MessageKey{User: fmt.Sprint("u", g%2), Mailbox: "INBOX", UIDValidity: 1, UID: imap.UID(i % 97)}
				c.put(k, cacheView(100), true)
				c.get(k)
				if i%100 == 0 {
					c.wipe(k.User)
				}
			}
		}()
	}
	wg.Wait()
	if used, _ := c.stats(); used > c.limit {
		t.Fatalf("%d bytes used, bound %d", used, c.limit)
	}
}

// The viewer serves a decrypted view from the cache without asking for
// the key again, forgets it on Wipe, and — when the key source reports
// locks — hides it once the Digital ID locked by itself.
func TestViewerCacheHitsAndLock(t *testing.T) {
	w := newSVWorld(t)
	v, err := NewSMIMEViewer(ViewerOptions{Keys: svReporter{w.keys}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	raw := svEncrypt(t, svPlain("alice@example.test"), smime.AES256GCM, w.bob)
	view, err := v.View(ctx, svKey(1), raw)
	if err != nil {
		t.Fatal(err)
	}
	if hit := v.Lookup(svKey(1)); hit == nil || !bytes.Equal(hit.Raw, view.Raw) {
		t.Fatal("no cache hit after View")
	}
	v.Wipe("bob@example.test")
	if v.Lookup(svKey(1)) != nil {
		t.Fatal("cache hit after Wipe")
	}
	if _, err := v.View(ctx, svKey(1), raw); err != nil {
		t.Fatal(err)
	}
	// A signed-only view needs no key and stays while locked.
	if _, err := v.View(ctx, svKey(2), svSign(t, w.alice, svPlain("alice@example.test"), false)); err != nil {
		t.Fatal(err)
	}
	w.keys.setLocked(true)
	if v.Lookup(svKey(1)) != nil {
		t.Fatal("decrypted view served while the Digital ID is locked")
	}
	if _, n := v.CacheStats(); n != 0 {
		t.Fatalf("%d views left after the lock was noticed; want all of bob's wiped", n)
	}
}

func TestViewerCacheDisabled(t *testing.T) {
	w := newSVWorld(t)
	v := w.viewer(t, -1)
	if _, err := v.View(context.Background(), svKey(1), svEncrypt(t, svPlain("a@example.test"), smime.AES256GCM, w.bob)); err != nil {
		t.Fatal(err)
	}
	if v.Lookup(svKey(1)) != nil {
		t.Fatal("hit with the cache disabled")
	}
}

type svClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *svClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *svClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Without an UnlockReporter, a Digital ID that locked by itself (idle
// expiry, nothing tells the viewer) stops the decrypted views within
// KeyRecheck: the hit after that asks for the keys, finds them locked
// and wipes the user's views.
func TestViewerCacheRechecksKeys(t *testing.T) {
	w := newSVWorld(t)
	clock := &svClock{now: time.Now()}
	v, err := NewSMIMEViewer(ViewerOptions{Keys: w.keys, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.View(ctx, svKey(1), svEncrypt(t, svPlain("alice@example.test"), smime.AES256GCM, w.bob)); err != nil {
		t.Fatal(err)
	}
	calls := w.keys.keyCalls
	for range 100 {
		if v.Lookup(svKey(1)) == nil {
			t.Fatal("no hit")
		}
	}
	if w.keys.keyCalls != calls {
		t.Fatalf("hits within KeyRecheck asked for the keys %d times", w.keys.keyCalls-calls)
	}
	clock.advance(DefaultKeyRecheck + time.Second)
	if v.Lookup(svKey(1)) == nil || w.keys.keyCalls != calls+1 {
		t.Fatalf("after KeyRecheck: want a hit after one key check, got %d checks", w.keys.keyCalls-calls)
	}
	w.keys.setLocked(true) // locks by itself: no Wipe
	clock.advance(DefaultKeyRecheck + time.Second)
	if v.Lookup(svKey(1)) != nil {
		t.Fatal("decrypted view served after the Digital ID locked")
	}
	if _, n := v.CacheStats(); n != 0 {
		t.Fatalf("%d views kept after the lock was noticed", n)
	}
}
