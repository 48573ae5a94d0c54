package policy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// lookupCache remembers database lookups for a while: a lookup younger
// than ttl is reused, an older one is made again, and while the store
// answers ErrUnavailable the last lookup stands, however old (stale if
// unavailable), so that loaded tenants keep answering.
//
// It holds at most max entries, in two generations of at most max/2: new
// lookups go into the current one; when it is full it becomes the previous
// one and the one before is dropped whole (no scan). A lookup found in the
// previous generation is copied into the current one, so that an entry in
// use survives and only the entries unused for a whole generation go: with
// more keys in use than max, the keys used often stay cached rather than
// the whole cache starting afresh every max new keys.
//
// Reads take no lock and write nothing shared (every request of every
// tenant resolves its key here), but for that copy, once per key and
// generation: the entries are sync.Maps; writers (a lookup made again, an
// update, a forget, a copy) are serialised by mu.
//
// An entry of the key cache (Keys) takes about 400 bytes of heap, the
// key's hash and its tenant's included (TestLookupCacheMemory measures
// it), so its bound of 100 000 keys is about 40 MB.
type lookupCache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu   sync.Mutex // held by writers
	gens atomic.Pointer[cacheGens]
	n    atomic.Int64 // entries in the current generation (an upper bound)
}

// cacheGens are the two generations of a lookupCache.
type cacheGens struct {
	cur, prev *sync.Map
}

type cachedLookup[V any] struct {
	v       V
	checked time.Time
}

func newLookupCache[K comparable, V any](ttl time.Duration, max int) *lookupCache[K, V] {
	c := &lookupCache[K, V]{ttl: ttl, max: max}
	c.gens.Store(&cacheGens{cur: new(sync.Map), prev: new(sync.Map)})
	return c
}

// load returns the cached lookup of key; old says it is in the previous
// generation only.
func (c *lookupCache[K, V]) load(key K) (e cachedLookup[V], ok, old bool) {
	g := c.gens.Load()
	if v, ok := g.cur.Load(key); ok {
		return v.(cachedLookup[V]), true, false
	}
	if v, ok := g.prev.Load(key); ok {
		return v.(cachedLookup[V]), true, true
	}
	return cachedLookup[V]{}, false, false
}

// store remembers e for key in the current generation, which, when full,
// first becomes the previous one; mu is held.
func (c *lookupCache[K, V]) store(key K, e cachedLookup[V]) {
	g := c.gens.Load()
	if _, ok := g.cur.Load(key); !ok {
		if c.n.Load() >= int64(max(c.max/2, 1)) {
			g = &cacheGens{cur: new(sync.Map), prev: g.cur}
			c.gens.Store(g)
			c.n.Store(0)
		}
		c.n.Add(1)
	}
	g.cur.Store(key, e)
}

// get returns the value of key at now: the cached one while it is fresh,
// else what load returns (and remembers).
func (c *lookupCache[K, V]) get(ctx context.Context, key K, now time.Time, load func(ctx context.Context) (V, error)) (V, error) {
	e, ok, old := c.load(key)
	if ok && now.Sub(e.checked) <= c.ttl {
		if old {
			c.mu.Lock()
			if _, _, stillOld := c.load(key); stillOld {
				c.store(key, e) // in use: keep it into the next generation
			}
			c.mu.Unlock()
		}
		return e.v, nil
	}
	v, err := load(ctx)
	switch {
	case err != nil && ok && errors.Is(err, ErrUnavailable):
		return e.v, nil
	case err != nil:
		var zero V
		return zero, err
	}
	c.mu.Lock()
	c.store(key, cachedLookup[V]{v: v, checked: now})
	c.mu.Unlock()
	return v, nil
}

// update applies fn to the cached value of key, if there is one, with the
// writers' lock held; fn reports whether it changed the value.
func (c *lookupCache[K, V]) update(key K, fn func(v *V) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok, _ := c.load(key)
	if !ok || !fn(&e.v) {
		return false
	}
	c.store(key, e)
	return true
}

// forget drops key.
func (c *lookupCache[K, V]) forget(key K) {
	c.mu.Lock()
	g := c.gens.Load()
	if _, loaded := g.cur.LoadAndDelete(key); loaded {
		c.n.Add(-1)
	}
	g.prev.Delete(key)
	c.mu.Unlock()
}

// len is the number of keys cached (for tests).
func (c *lookupCache[K, V]) len() int {
	g := c.gens.Load()
	n := 0
	g.cur.Range(func(any, any) bool { n++; return true })
	g.prev.Range(func(k, _ any) bool {
		if _, ok := g.cur.Load(k); !ok {
			n++
		}
		return true
	})
	return n
}
