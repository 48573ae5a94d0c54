package policy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// lookupCache remembers database lookups for a while: a lookup younger
// than ttl is reused, an older one is made again, and while the store
// answers ErrUnavailable the last lookup stands, however old (stale if
// unavailable), so that loaded tenants keep answering. At max entries the
// cache starts afresh.
type lookupCache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[K]cachedLookup[V]
}

type cachedLookup[V any] struct {
	v       V
	checked time.Time
}

func newLookupCache[K comparable, V any](ttl time.Duration, max int) *lookupCache[K, V] {
	return &lookupCache[K, V]{ttl: ttl, max: max, entries: map[K]cachedLookup[V]{}}
}

// get returns the value of key at now: the cached one while it is fresh,
// else what load returns (and remembers).
func (c *lookupCache[K, V]) get(ctx context.Context, key K, now time.Time, load func(ctx context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
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
	if len(c.entries) >= c.max {
		c.entries = map[K]cachedLookup[V]{}
	}
	c.entries[key] = cachedLookup[V]{v: v, checked: now}
	c.mu.Unlock()
	return v, nil
}

// update applies fn to the cached value of key, if there is one, under the
// cache's lock; fn reports whether it changed the value.
func (c *lookupCache[K, V]) update(key K, fn func(v *V) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !fn(&e.v) {
		return false
	}
	c.entries[key] = e
	return true
}

// forget drops key.
func (c *lookupCache[K, V]) forget(key K) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}
