package imap

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"
)

// DefaultCacheBytes bounds the decrypted views kept in memory when
// ViewerOptions.CacheBytes is zero.
const DefaultCacheBytes = 256 << 20

// viewEntryOverhead approximates what an entry costs besides the view's
// bytes (list element, map slot, key strings), so that many tiny views
// cannot exceed the bound either.
const viewEntryOverhead = 256

// viewCache keeps decrypted views in memory only, least recently used
// first out, bounded by bytes. Nothing is ever written to disk: a
// decrypted message exists in clear only in this process.
type viewCache struct {
	mu    sync.Mutex
	limit int64
	used  int64
	lru   *list.List // front: most recently used; values *cacheEntry
	items map[MessageKey]*list.Element
}

type cacheEntry struct {
	key     MessageKey
	view    *View
	size    int64
	needKey bool // the view needed the user's key: hidden while it is locked
}

func newViewCache(limit int64) *viewCache {
	return &viewCache{limit: limit, lru: list.New(), items: map[MessageKey]*list.Element{}}
}

// cacheUser is the form of a login the cache keys on, so that Wipe finds
// every view of a mailbox however the client spelled its login.
func cacheUser(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

func normKey(k MessageKey) MessageKey {
	k.User = cacheUser(k.User)
	return k
}

// get returns the view for k and marks it recently used.
func (c *viewCache) get(k MessageKey) (*cacheEntry, bool) {
	k = normKey(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry), true
}

// put stores a view, evicting the least recently used ones until the
// total fits. A view larger than the whole limit is not kept.
func (c *viewCache) put(k MessageKey, v *View, needKey bool) {
	k = normKey(k)
	size := int64(len(v.Raw)) + int64(len(k.User)+len(k.Mailbox)) + viewEntryOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeLocked(el)
	}
	if size > c.limit {
		return
	}
	for c.used+size > c.limit {
		c.removeLocked(c.lru.Back())
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, view: v, size: size, needKey: needKey})
	c.used += size
}

func (c *viewCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.used -= e.size
}

// wipe drops every view of user.
func (c *viewCache) wipe(user string) {
	user = cacheUser(user)
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).key.User == user {
			c.removeLocked(el)
		}
		el = next
	}
}

// stats reports the bytes in use and the number of views.
func (c *viewCache) stats() (used int64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, len(c.items)
}

// Lookup implements Viewer.
func (v *SMIMEViewer) Lookup(key MessageKey) *View {
	if v.cache == nil {
		return nil
	}
	e, ok := v.cache.get(key)
	if !ok {
		return nil
	}
	if e.needKey && !v.stillUnlocked(key.User) {
		v.Wipe(key.User)
		return nil
	}
	return e.view
}

// stillUnlocked reports whether user's Digital ID is still unlocked, so
// that a decrypted view may be served from the cache.
func (v *SMIMEViewer) stillUnlocked(user string) bool {
	if ur, ok := v.keys.(UnlockReporter); ok {
		return ur.Unlocked(user)
	}
	u, now := cacheUser(user), v.now()
	v.mu.Lock()
	seen, ok := v.keysSeen[u]
	v.mu.Unlock()
	if ok && v.recheck > 0 && now.Sub(seen) < v.recheck && !now.Before(seen) {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v.keys.DecryptionKeys(ctx, user); err != nil {
		return false
	}
	v.keysUsed(user)
	return true
}

// keysUsed notes that user's keys were just available.
func (v *SMIMEViewer) keysUsed(user string) {
	now := v.now()
	v.mu.Lock()
	v.keysSeen[cacheUser(user)] = now
	v.mu.Unlock()
}

// Wipe implements Viewer: every cached view of user is dropped.
func (v *SMIMEViewer) Wipe(user string) {
	v.mu.Lock()
	delete(v.keysSeen, cacheUser(user))
	v.mu.Unlock()
	if v.cache != nil {
		v.cache.wipe(user)
	}
}

// CacheStats reports the bytes the view cache holds and how many views.
func (v *SMIMEViewer) CacheStats() (bytes int64, views int) {
	if v.cache == nil {
		return 0, 0
	}
	return v.cache.stats()
}
