package policy

import (
	"context"
	"fmt"
)

// Every valid client key names a tenant of its own, so unknown keys can
// make the service create tenants and hold them in memory. Two bounds keep
// that in check: an admission asked before a write creates a tenant
// (Options.Admit), and a budget on the estimated memory of the tenants
// held (Options.MemoryBudget), enforced by evicting the least recently
// used ones.

// Estimated memory of a loaded tenant under the default model:
// TenantBaseBytes for its index, roles and bookkeeping, plus RuleBytes for
// each Casbin rule and each role. Measured as live heap after a collection
// (BenchmarkHasPermission, BenchmarkColdLoad): 2.2 KB per tenant of 3 roles
// and 50 rules, 68 bytes per membership in a tenant of 1 000 000 (names of
// about 10 characters); RuleBytes leaves room for longer names. Under any
// other model a tenant also holds a Casbin enforcer with every rule, and
// the estimate is enforcerBaseBytes plus enforcerRuleBytes per rule or
// role (measured: 6.8 KB for one role, about 1 015 bytes per rule whose
// names are all distinct). The estimate is of live heap: the process's
// resident memory for it is up to about twice as much, the garbage
// collector's headroom (GOGC=100).
const (
	TenantBaseBytes = 2 << 10
	RuleBytes       = 128

	enforcerBaseBytes = 8 << 10
	enforcerRuleBytes = 1 << 10
)

// estimate is t's estimated memory. The caller holds t.mu.
func (t *tenant) estimate() int64 {
	if !t.loaded || t.idx == nil {
		return TenantBaseBytes
	}
	n := int64(t.idx.rules())
	if t.roles != nil {
		n += int64(len(t.roles.seq))
	}
	if t.enf != nil {
		return enforcerBaseBytes + n*enforcerRuleBytes
	}
	return TenantBaseBytes + n*RuleBytes
}

// admit asks Options.Admit whether a write may go on when it would create
// its tenant (no tenant has the key, in memory or in the database). A
// write to an existing tenant is not asked about.
func (s *Service) admit(ctx context.Context, key KeyHash) error {
	if s.opts.Admit == nil {
		return nil
	}
	s.mu.RLock()
	t := s.tenants[key]
	s.mu.RUnlock()
	if t != nil {
		t.mu.RLock()
		exists := t.loaded && t.id != 0
		t.mu.RUnlock()
		if exists {
			return nil
		}
	}
	_, found, err := s.store.FindTenant(ctx, key)
	if err != nil || found {
		return err
	}
	if err := s.opts.Admit(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrTenantCreationRefused, err)
	}
	return nil
}

// LoadedBytes is the estimated memory of the tenants held in memory (see
// TenantBaseBytes).
func (s *Service) LoadedBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bytes
}

// Evictions returns how many tenants left memory because they were idle
// and how many because the memory budget was exceeded.
func (s *Service) Evictions() (idle, budget uint64) {
	return s.idleEvictions.Load(), s.budgetEvictions.Load()
}

// account records t's current estimated memory and, over the budget,
// evicts least recently used tenants other than t.
func (s *Service) account(t *tenant) {
	t.mu.RLock()
	n := t.estimate()
	t.mu.RUnlock()
	s.mu.Lock()
	if s.tenants[t.key] == t {
		s.bytes += n - t.cost
		t.cost = n
	}
	over := s.opts.MemoryBudget > 0 && s.bytes > s.opts.MemoryBudget
	s.mu.Unlock()
	if over {
		s.evictLRU(t)
	}
}
