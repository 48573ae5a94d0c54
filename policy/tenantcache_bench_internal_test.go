package policy

// Benchmarks of the tenant cache with many small tenants held in memory,
// over a store that lives in memory (no database, so that seeding 100 000
// tenants takes seconds):
//
//	go test -run '^$' -bench 'BenchmarkLoadedTenants' -benchtime 2s ./policy/
//	go test -run '^$' -bench 'BenchmarkEvictionStall' -benchtime 3000x ./policy/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth"
)

// memShape is the shape of a small tenant: roles, grants spread over the
// roles, and users with perUser memberships each.
type memShape struct {
	roles, grants, users, perUser int
}

// memRules is one tenant's rules as the database would hand them over.
type memRules struct {
	roles []Role
	p, g  [][]string
}

// memStore serves tenants from memory; each load copies every string, as a
// database driver allocates a fresh string per field read.
type memStore struct {
	Store // the methods the benchmarks do not use are nil
	keys  map[KeyHash]int64
	data  []memRules
}

func (m *memStore) FindTenant(_ context.Context, key KeyHash) (int64, bool, error) {
	id, ok := m.keys[key]
	return id, ok, nil
}

func (m *memStore) LoadTenant(_ context.Context, key KeyHash, add RuleFunc) (Snapshot, bool, error) {
	id, ok := m.keys[key]
	if !ok {
		return Snapshot{}, false, nil
	}
	d := m.data[id-1]
	snap := Snapshot{TenantID: id, Version: 1}
	for _, r := range d.roles {
		snap.Roles = append(snap.Roles, Role{Name: strings.Clone(r.Name)})
	}
	rule := make([]string, 3)
	for _, sec := range []string{"p", "g"} {
		rs := d.p
		if sec == "g" {
			rs = d.g
		}
		for _, r := range rs {
			for i := range r {
				rule[i] = r[i]
				if !(sec == "p" && i == 1 || sec == "g" && i == 2) { // the domain is one string per load
					rule[i] = strings.Clone(r[i])
				}
			}
			if err := add(sec, rule); err != nil {
				return Snapshot{}, false, err
			}
		}
	}
	return snap, true, nil
}

// memQuery is one check.
type memQuery struct {
	key        KeyHash
	user, perm string
}

// newMemTenants builds n tenants of shape sh in a memStore, their keys (in
// id order) and checks spread over all of them, about half allowed.
func newMemTenants(n int, sh memShape) (*memStore, []KeyHash, []memQuery) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	m := &memStore{keys: make(map[KeyHash]int64, n), data: make([]memRules, n)}
	keys := make([]KeyHash, n)
	var qs []memQuery
	for i := range n {
		id := int64(i + 1)
		dom := strconv.FormatInt(id, 10)
		k := KeyHash(fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()))
		keys[i] = k
		m.keys[k] = id
		var d memRules
		for r := range sh.roles {
			d.roles = append(d.roles, Role{Name: fmt.Sprintf("role-%d", r)})
		}
		for gi := range sh.grants {
			d.p = append(d.p, []string{rolePrefix + d.roles[gi%sh.roles].Name, dom, fmt.Sprintf("perm-%d", gi)})
		}
		for u := range sh.users {
			for j := range sh.perUser {
				d.g = append(d.g, []string{fmt.Sprintf("user-%d", u), rolePrefix + d.roles[(u+j)%sh.roles].Name, dom})
			}
		}
		m.data[i] = d
		for range max(2, 1024/n) {
			u := rng.IntN(sh.users)
			perm := fmt.Sprintf("perm-%d", rng.IntN(sh.grants))
			qs = append(qs, memQuery{k, fmt.Sprintf("user-%d", u), perm})
		}
	}
	rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	return m, keys, qs
}

// loadMemTenants loads every tenant of keys into svc.
func loadMemTenants(tb testing.TB, svc *Service, keys []KeyHash) {
	tb.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if _, err := svc.ListRoles(ctx, k); err != nil {
			tb.Fatal(err)
		}
	}
	if got := svc.LoadedTenants(); got != len(keys) {
		tb.Fatalf("%d tenants loaded, want %d", got, len(keys))
	}
}

// BenchmarkLoadedTenants is one check (HasPermission) of a random tenant of
// n loaded tenants of 3 roles, 30 grants and 10 users of 2 roles each: the
// cost of the cache misses a check takes once the tenants no longer fit in
// the processor's caches.
func BenchmarkLoadedTenants(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st, keys, qs := newMemTenants(n, memShape{3, 30, 10, 2})
			svc, err := New(st, auth.DefaultModel, Options{IdleTimeout: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			loadMemTenants(b, svc, keys)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := qs[i%len(qs)]
				if _, err := svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// checker checks tenant key of svc over and over until stop is closed,
// then sends its slowest check and the share of its checks that took longer
// than 100 µs.
func checker(svc *Service, key KeyHash, stop <-chan struct{}, done chan<- [2]float64) {
	ctx := context.Background()
	var worst time.Duration
	var n, slow int
	for {
		select {
		case <-stop:
			done <- [2]float64{float64(worst.Microseconds()), float64(slow) / float64(max(n, 1))}
			return
		default:
		}
		s := time.Now()
		_, _ = svc.HasPermission(ctx, key, "user-0", "perm-0")
		d := time.Since(s)
		worst = max(worst, d)
		n++
		if d > 100*time.Microsecond {
			slow++
		}
	}
}

// BenchmarkEvictionStall loads n tenants under a budget just at their
// estimate, then one new tenant per iteration, each of which goes over
// the budget (the first sweeps a tenth of the budget away). Meanwhile
// another goroutine checks a tenant that is never evicted: its slowest
// check (reported as worst-check-µs) is how long a sweep holds checks up.
func BenchmarkEvictionStall(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st, keys, _ := newMemTenants(n+b.N, memShape{3, 4, 3, 1})
			svc, err := New(st, auth.DefaultModel, Options{IdleTimeout: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			loadMemTenants(b, svc, keys[:n])
			svc.mu.Lock()
			svc.opts.MemoryBudget = svc.bytes
			svc.mu.Unlock()
			stop := make(chan struct{})
			done := make(chan [2]float64)
			go checker(svc, keys[n-1], stop, done) // used last: evicted last
			var slowest time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := svc.ListRoles(ctx, keys[n+i]); err != nil {
					b.Fatal(err)
				}
				slowest = max(slowest, time.Since(start))
			}
			b.StopTimer()
			close(stop)
			res := <-done
			b.ReportMetric(res[0], "worst-check-µs")
			b.ReportMetric(res[1]*100, "%checks>100µs")
			b.ReportMetric(float64(slowest.Microseconds()), "worst-load-µs")
			_, evicted := svc.Evictions()
			b.ReportMetric(float64(evicted), "evicted")
			b.ReportMetric(float64(svc.longestSweepHold.Load())/1e3, "longest-hold-µs")
			if got, budget := svc.LoadedBytes(), svc.opts.MemoryBudget; got > budget {
				b.Errorf("LoadedBytes() = %d over the budget %d", got, budget)
			}
		})
	}
}

// BenchmarkIdleSweepStall is the idle sweep of n loaded tenants, half of
// them idle, while another goroutine checks a tenant in use: its slowest
// check (worst-check-µs) is how long the sweep holds checks up.
func BenchmarkIdleSweepStall(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st, keys, _ := newMemTenants(n, memShape{3, 4, 3, 1})
			svc, err := New(st, auth.DefaultModel, Options{IdleTimeout: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			var worst, slow float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clock := time.Now()
				svc.now = func() time.Time { return clock }
				loadMemTenants(b, svc, keys[:n/2])
				clock = clock.Add(time.Hour)
				for _, k := range keys[n/2:] {
					if _, err := svc.ListRoles(ctx, k); err != nil {
						b.Fatal(err)
					}
				}
				stop := make(chan struct{})
				done := make(chan [2]float64)
				go checker(svc, keys[n-1], stop, done)
				b.StartTimer()
				if got := svc.EvictIdle(); got != n/2 {
					b.Errorf("EvictIdle() = %d, want %d", got, n/2)
				}
				b.StopTimer()
				close(stop)
				res := <-done
				worst, slow = max(worst, res[0]), max(slow, res[1])
				clock = clock.Add(2 * time.Hour)
				svc.EvictIdle()
			}
			b.ReportMetric(worst, "worst-check-µs")
			b.ReportMetric(slow*100, "%checks>100µs")
			b.ReportMetric(float64(svc.longestSweepHold.Load())/1e3, "longest-hold-µs")
		})
	}
}
