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
// unavailable), so that loaded tenants keep answering. At max entries the
// cache starts afresh.
//
// Reads take no lock and write nothing shared (every request of every
// tenant resolves its key here): the entries are a sync.Map; writers (a
// lookup made again, an update, a forget) are serialised by mu.
type lookupCache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu      sync.Mutex // held by writers
	entries atomic.Pointer[sync.Map]
	n       atomic.Int64 // entries in *entries (an upper bound)
}

type cachedLookup[V any] struct {
	v       V
	checked time.Time
}

func newLookupCache[K comparable, V any](ttl time.Duration, max int) *lookupCache[K, V] {
	c := &lookupCache[K, V]{ttl: ttl, max: max}
	c.entries.Store(new(sync.Map))
	return c
}

// load returns the cached lookup of key.
func (c *lookupCache[K, V]) load(key K) (cachedLookup[V], bool) {
	e, ok := c.entries.Load().Load(key)
	if !ok {
		return cachedLookup[V]{}, false
	}
	return e.(cachedLookup[V]), true
}

// store remembers e for key, starting afresh at max entries; mu is held.
func (c *lookupCache[K, V]) store(key K, e cachedLookup[V]) {
	m := c.entries.Load()
	if _, ok := m.Load(key); !ok {
		if c.n.Load() >= int64(c.max) {
			m = new(sync.Map)
			c.entries.Store(m)
			c.n.Store(0)
		}
		c.n.Add(1)
	}
	m.Store(key, e)
}

// get returns the value of key at now: the cached one while it is fresh,
// else what load returns (and remembers).
func (c *lookupCache[K, V]) get(ctx context.Context, key K, now time.Time, load func(ctx context.Context) (V, error)) (V, error) {
	e, ok := c.load(key)
	if ok && now.Sub(e.checked) <= c.ttl {
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
	e, ok := c.load(key)
	if !ok || !fn(&e.v) {
		return false
	}
	c.store(key, e)
	return true
}

// forget drops key.
func (c *lookupCache[K, V]) forget(key K) {
	c.mu.Lock()
	if _, loaded := c.entries.Load().LoadAndDelete(key); loaded {
		c.n.Add(-1)
	}
	c.mu.Unlock()
}

// len is the number of entries (for tests).
func (c *lookupCache[K, V]) len() int {
	n := 0
	c.entries.Load().Range(func(any, any) bool { n++; return true })
	return n
}
