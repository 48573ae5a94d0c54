package policy

import (
	"context"
	"testing"
	"time"

	"github.com/ourway/auth"
)

// checkRing fails unless the ring holds exactly the tenants of the map,
// each at its slot, and the estimate is the sum of their costs.
func checkRing(t *testing.T, svc *Service) {
	t.Helper()
	svc.mu.RLock()
	defer svc.mu.RUnlock()
	if len(svc.ring) != len(svc.tenants) {
		t.Fatalf("ring holds %d tenants, map %d", len(svc.ring), len(svc.tenants))
	}
	var sum int64
	for i, tn := range svc.ring {
		if tn.slot != i {
			t.Fatalf("ring[%d] has slot %d", i, tn.slot)
		}
		if svc.tenants[tn.key] != tn {
			t.Fatalf("ring[%d] is not the map's tenant of its key", i)
		}
		sum += tn.cost
	}
	if sum != svc.bytes {
		t.Fatalf("LoadedBytes %d, sum of the costs held %d", svc.bytes, sum)
	}
}

// newClockedService is a Service over n tenants in memory with a clock that
// moves only when told.
func newClockedService(t *testing.T, n int, opts Options) (*Service, []KeyHash, *time.Time) {
	t.Helper()
	st, keys, _ := newMemTenants(n, memShape{3, 4, 3, 1})
	svc, err := New(st, auth.DefaultModel, opts)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	svc.now = func() time.Time { return clock }
	return svc, keys, &clock
}

// With more tenants than the sample, the budget sweep is approximate but
// keeps the budget, goes down to about nine tenths of it, and evicts only
// tenants older than the recently used ones.
func TestSampledBudgetEviction(t *testing.T) {
	ctx := context.Background()
	const n = 4000
	svc, keys, clock := newClockedService(t, n+1, Options{IdleTimeout: time.Hour})
	for i, k := range keys[:n] {
		*clock = clock.Add(2 * time.Second) // each tenant used at its own second
		if _, err := svc.ListRoles(ctx, k); err != nil {
			t.Fatalf("tenant %d: %v", i, err)
		}
	}
	checkRing(t, svc)
	svc.mu.Lock()
	budget := svc.bytes
	svc.opts.MemoryBudget = budget
	svc.mu.Unlock()
	*clock = clock.Add(2 * time.Second)
	if _, err := svc.ListRoles(ctx, keys[n]); err != nil { // over the budget: a sweep
		t.Fatal(err)
	}
	checkRing(t, svc)
	got := svc.LoadedBytes()
	if got > budget {
		t.Fatalf("LoadedBytes() = %d over the budget %d", got, budget)
	}
	if low := budget - budget/10 - budget/50; got < low {
		t.Errorf("LoadedBytes() = %d: the sweep went far below nine tenths of the budget (%d)", got, low)
	}
	_, evicted := svc.Evictions()
	if evicted == 0 {
		t.Fatal("no budget eviction")
	}
	// The evicted tenants are old ones: the newest 80 % all stay (the
	// sample estimates the oldest tenth within a few hundredths).
	svc.mu.RLock()
	defer svc.mu.RUnlock()
	for i := n / 5; i <= n; i++ {
		if svc.tenants[keys[i]] == nil {
			t.Fatalf("tenant %d of %d (used recently) was evicted; %d evicted", i, n, evicted)
		}
	}
}

// The idle sweep, walking the tenants in batches, evicts exactly the idle
// ones, however many.
func TestBatchedIdleEviction(t *testing.T) {
	ctx := context.Background()
	const n = 1000 // many batches
	svc, keys, clock := newClockedService(t, n, Options{IdleTimeout: time.Minute})
	for i, k := range keys {
		if i == n/2 {
			*clock = clock.Add(time.Hour)
		}
		if _, err := svc.ListRoles(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got := svc.EvictIdle(); got != n/2 {
		t.Fatalf("EvictIdle() = %d, want %d", got, n/2)
	}
	checkRing(t, svc)
	for i, k := range keys {
		svc.mu.RLock()
		held := svc.tenants[k] != nil
		svc.mu.RUnlock()
		if want := i >= n/2; held != want {
			t.Fatalf("tenant %d held = %v, want %v", i, held, want)
		}
	}
	*clock = clock.Add(time.Hour)
	if got := svc.EvictIdle(); got != n/2 {
		t.Fatalf("second EvictIdle() = %d, want %d", got, n/2)
	}
	checkRing(t, svc)
	if got := svc.LoadedBytes(); got != 0 {
		t.Errorf("LoadedBytes() with no tenant = %d", got)
	}
}

// A loaded tenant is found by its id (for other replicas' change
// messages) without a walk over every tenant, until it leaves memory; a
// reload files it again.
func TestLoadedByID(t *testing.T) {
	ctx := context.Background()
	svc, keys, clock := newClockedService(t, 3, Options{IdleTimeout: time.Minute})
	for _, k := range keys {
		if _, err := svc.ListRoles(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	found := func(k KeyHash) bool {
		svc.mu.RLock()
		tn := svc.tenants[k]
		svc.mu.RUnlock()
		if tn == nil {
			return false
		}
		tn.mu.RLock()
		id := tn.id
		tn.mu.RUnlock()
		return svc.loadedByID(id, 0) == tn
	}
	for i, k := range keys {
		if !found(k) {
			t.Fatalf("tenant %d is not found by its id", i)
		}
	}
	*clock = clock.Add(2 * time.Minute)
	if n := svc.EvictIdle(); n != len(keys) {
		t.Fatalf("EvictIdle() = %d, want %d", n, len(keys))
	}
	svc.idMu.Lock()
	left := len(svc.byID)
	svc.idMu.Unlock()
	if left != 0 {
		t.Fatalf("%d tenants still filed by id after eviction", left)
	}
	if _, err := svc.ListRoles(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	if !found(keys[1]) {
		t.Fatal("a reloaded tenant is not found by its id")
	}
	checkRing(t, svc)
}
