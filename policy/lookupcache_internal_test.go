package policy

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// With many more keys in use than the cache holds, the cache stays within
// its bound and the keys used often stay cached: each is looked up once.
func TestLookupCacheKeepsKeysInUse(t *testing.T) {
	ctx := context.Background()
	const bound, hot, cold = 1000, 100, 20_000
	c := newLookupCache[int, int](time.Hour, bound)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	loads := map[int]int{}
	get := func(key int) {
		t.Helper()
		v, err := c.get(ctx, key, now, func(context.Context) (int, error) { loads[key]++; return key * 2, nil })
		if err != nil || v != key*2 {
			t.Fatalf("get(%d) = %d, %v", key, v, err)
		}
	}
	for i := range cold {
		get(hot + i) // every cold key once
		if i%50 == 0 {
			for h := range hot {
				get(h)
			}
		}
		if i%997 == 0 {
			if n := c.len(); n > bound {
				t.Fatalf("after %d keys: %d cached, over the bound %d", hot+i, n, bound)
			}
		}
	}
	for h := range hot {
		if loads[h] != 1 {
			t.Fatalf("key in use %d looked up %d times, want once", h, loads[h])
		}
	}
	// A key cached long ago and unused since is gone; forget drops a key
	// from either generation.
	if _, ok, _ := c.load(hot); ok {
		t.Errorf("the first cold key is still cached after %d others", cold)
	}
	c.forget(0)
	if _, ok, _ := c.load(0); ok {
		t.Errorf("a forgotten key is still cached")
	}
}

// TestLookupCacheMemory measures the heap an entry of the key cache takes
// (a registered key: its own hash and its tenant's, both strings, times,
// a last use), as
// the lookupCache doc states it.
func TestLookupCacheMemory(t *testing.T) {
	const n = 50_000
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newLookupCache[KeyHash, cachedKey](time.Hour, 2*n)
	before := liveHeapBytes()
	for i := range n {
		k := KeyHash(fmt.Sprintf("%064x", i))
		used := now
		rec := KeyRecord{Handle: KeyHash(fmt.Sprintf("%064x", n+i)), TenantID: int64(i), CreatedAt: now, LastUsedAt: &used}
		c.mu.Lock()
		c.store(k, cachedLookup[cachedKey]{v: cachedKey{rec: rec, found: true}, checked: now})
		c.mu.Unlock()
	}
	per := float64(liveHeapBytes()-before) / n
	runtime.KeepAlive(c)
	t.Logf("%.0f bytes of heap per cached key", per)
	if per > 600 {
		t.Errorf("%.0f bytes per cached key, the doc says about 400", per)
	}
}

func liveHeapBytes() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
