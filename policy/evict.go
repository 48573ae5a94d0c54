package policy

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"
)

// Eviction never holds the service lock (Service.mu) for a time that grows
// with the number of tenants held: the tenants are also kept in a dense
// slice (Service.ring, each tenant knowing its slot), which a sweep walks
// in batches of sweepBatch tenants, taking the lock once per batch, from
// where the previous sweep stopped (Service.hand). A check of another
// tenant waits at most for one batch.

// sweepBatch is how many tenants a sweep looks at per hold of the service
// lock.
const sweepBatch = 64

// lruSample is how many tenants, drawn at random, estimate the age past
// which a budget sweep evicts (see evictLRU). Up to this many tenants held,
// the sweep is an exact least-recently-used order.
const lruSample = 256

// addLocked adds t to the tenants held. The caller holds s.mu.
func (s *Service) addLocked(t *tenant) {
	s.tenants[t.key] = t
	t.slot = len(s.ring)
	s.ring = append(s.ring, t)
}

// dropLocked removes a tenant from memory. The caller holds s.mu.
func (s *Service) dropLocked(key KeyHash, t *tenant) {
	delete(s.tenants, key)
	last := len(s.ring) - 1
	if i := t.slot; i >= 0 && i <= last && s.ring[i] == t {
		moved := s.ring[last]
		s.ring[i], moved.slot = moved, i
		s.ring[last] = nil
		s.ring = s.ring[:last]
	}
	t.slot = -1
	s.bytes -= t.cost
	t.cost = 0
	s.unindex(t)
}

// indexID files t under id for loadedByID.
func (s *Service) indexID(t *tenant, id int64) {
	if id == 0 {
		return
	}
	s.idMu.Lock()
	s.byID[id] = t
	t.filedID = id
	s.idMu.Unlock()
}

// unindex removes t from the ids' index, unless another tenant of the same
// id replaced it there.
func (s *Service) unindex(t *tenant) {
	s.idMu.Lock()
	if id := t.filedID; id != 0 && s.byID[id] == t {
		delete(s.byID, id)
	}
	s.idMu.Unlock()
}

// sweep evicts the tenants evict selects, other than one being loaded or
// changed (its write lock is held), and returns how many. It looks at
// every tenant held when it starts at most once, in batches of sweepBatch
// under one hold of s.mu each, and stops early when enough (if set)
// reports true (called with s.mu held). The tenants added meanwhile may or
// may not be looked at.
func (s *Service) sweep(evict func(t *tenant) bool, enough func() bool) int {
	s.mu.RLock()
	left := len(s.ring)
	s.mu.RUnlock()
	n := 0
	for left > 0 {
		s.mu.Lock()
		start := time.Now()
		for k := 0; k < sweepBatch && left > 0; k++ {
			if enough != nil && enough() {
				left = 0
				break
			}
			// The hand walks down: dropping the tenant at the hand moves
			// the last one, already looked at, into its slot.
			if s.hand--; s.hand < 0 || s.hand >= len(s.ring) {
				s.hand = len(s.ring) - 1
			}
			left--
			if s.hand < 0 {
				left = 0
				break
			}
			t := s.ring[s.hand]
			if !evict(t) || !t.writeMu.tryLock() {
				continue
			}
			s.dropLocked(t.key, t)
			t.writeMu.unlock()
			n++
		}
		hold := time.Since(start)
		s.mu.Unlock()
		if d := int64(hold); d > s.longestSweepHold.Load() {
			s.longestSweepHold.Store(d) // racy max: a statistic
		}
	}
	return n
}

// evictLRU evicts the least recently used tenants (by their last use,
// recorded to the second) until the estimate is down to nine tenths of
// the budget, so that a flood of new tenants pays for one sweep every
// tenth of the budget rather than one per tenant. keep (the tenant just
// used) stays, and so does a tenant being loaded or changed (its write
// lock is held): as with idle eviction, an evicted tenant is simply loaded
// again on its next use. While the database is down nothing is evicted:
// an evicted tenant could not be loaded again.
//
// With at most lruSample tenants held the order is exact. With more, the
// order is approximate: a random sample of lruSample tenants estimates the
// last use before which the tenants hold the memory to free, and a sweep
// evicts the tenants used before it until the estimate is met (then,
// should that not do, again with a new estimate).
func (s *Service) evictLRU(keep *tenant) {
	if s.storeDown() || !s.evicting.CompareAndSwap(false, true) {
		return // another sweep is under way
	}
	defer s.evicting.Store(false)
	budget := s.opts.MemoryBudget
	target := budget - budget/10
	enough := func() bool { return s.bytes <= target }
	for pass := 0; pass < 4; pass++ {
		s.mu.Lock()
		if s.bytes <= budget && pass == 0 || s.bytes <= target {
			s.mu.Unlock()
			return
		}
		if len(s.ring) <= lruSample {
			s.evictExactLocked(keep, target)
			s.mu.Unlock()
			break
		}
		cutoff := s.lruCutoffLocked(keep, target)
		s.mu.Unlock()
		n := s.sweep(func(t *tenant) bool { return t != keep && t.lastUsed.Load() <= cutoff }, enough)
		s.budgetEvictions.Add(uint64(n))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes > budget && !s.overBudgetLogged {
		s.overBudgetLogged = true
		s.log.Warn("tenants in memory exceed AUTH_TENANT_MEMORY_BUDGET even after eviction (a tenant larger than the budget, or all busy)",
			"estimated_bytes", s.bytes, "budget_bytes", budget, "tenants", len(s.tenants))
	}
}

// lruCandidate is a tenant held, as a budget sweep sees it.
type lruCandidate struct {
	used int64
	t    *tenant
}

// evictExactLocked evicts the least recently used tenants other than keep
// until the estimate is down to target. The caller holds s.mu; there are
// few tenants (at most lruSample).
func (s *Service) evictExactLocked(keep *tenant, target int64) {
	cands := make([]lruCandidate, 0, len(s.ring))
	for _, t := range s.ring {
		if t != keep {
			cands = append(cands, lruCandidate{t.lastUsed.Load(), t})
		}
	}
	slices.SortStableFunc(cands, func(a, b lruCandidate) int { return cmp.Compare(a.used, b.used) })
	for _, c := range cands {
		if s.bytes <= target {
			break
		}
		if !c.t.writeMu.tryLock() {
			continue
		}
		s.dropLocked(c.t.key, c.t)
		c.t.writeMu.unlock()
		s.budgetEvictions.Add(1)
	}
}

// lruCutoffLocked estimates, from a random sample of the tenants held, the
// last use at or before which the tenants hold the memory to free to get
// down to target. The caller holds s.mu; there are more than lruSample
// tenants.
func (s *Service) lruCutoffLocked(keep *tenant, target int64) int64 {
	sample := make([]lruCandidate, 0, lruSample)
	var total int64
	for range lruSample {
		t := s.ring[rand.IntN(len(s.ring))]
		if t == keep {
			continue
		}
		sample = append(sample, lruCandidate{t.lastUsed.Load(), t})
		total += t.cost
	}
	slices.SortFunc(sample, func(a, b lruCandidate) int { return cmp.Compare(a.used, b.used) })
	// The share of the memory to free, as a share of the sample's cost.
	want := float64(s.bytes-target) / float64(s.bytes) * float64(total)
	var acc int64
	for _, c := range sample {
		acc += c.t.cost
		if float64(acc) >= want {
			return c.used
		}
	}
	if len(sample) == 0 {
		return 0
	}
	return sample[len(sample)-1].used
}
