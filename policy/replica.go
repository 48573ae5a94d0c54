package policy

import (
	"context"
	"fmt"
	"strconv"
)

// OpKind names a memory operation of a committed change.
type OpKind string

// The operations a change applies to a tenant's memory.
const (
	OpAddRules       OpKind = "add_rules"
	OpRemoveRules    OpKind = "remove_rules"
	OpRemoveFiltered OpKind = "remove_filtered"
	OpAddRole        OpKind = "add_role"
	OpRemoveRole     OpKind = "remove_role"
	// OpSetDescription replaces a role's description (Description; nil
	// clears it).
	OpSetDescription OpKind = "set_description"
	// OpExpire removes rules that reached their end (the sweep's change):
	// to memory, a removal.
	OpExpire OpKind = "expire"
)

// Op is one memory operation of a committed change: exactly what the
// replica that made the change applied to its own memory, so that the
// others can apply the same (to memory only: never to the database).
type Op struct {
	Kind       OpKind
	Ptype      string
	Rules      [][]string
	FieldIndex int
	Values     []string
	Role       string
	// Description is the new description of OpSetDescription.
	Description *string
	// ExpiresAt is the end of the rules of OpAddRules in Unix nanoseconds
	// (0: permanent); it replaces the end they had.
	ExpiresAt int64
}

// Change is a committed change of one tenant, as replicas exchange it.
type Change struct {
	TenantID int64
	// Version is the tenant's policy version after the change.
	Version int64
	Ops     []Op
	// Reload says that the change's operations are not known (the replica
	// that made it found its memory behind the database and reloaded the
	// tenant instead): a replica behind Version reloads the tenant.
	Reload bool
}

// Domain is the Casbin domain of the change's tenant.
func (c Change) Domain() string { return domainOf(c.TenantID) }

// ParseDomain reads a tenant id from a Casbin domain.
func ParseDomain(dom string) (int64, error) {
	id, err := strconv.ParseInt(dom, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("policy: %q is not a tenant domain", dom)
	}
	return id, nil
}

// Publisher tells the other replicas about committed changes. It must not
// block for long: a lost message is repaired by Resync.
type Publisher interface {
	Publish(ctx context.Context, c Change) error
}

// applyOp applies one operation to t's memory. The caller holds t.mu.
func (t *tenant) applyOp(op Op) error {
	switch op.Kind {
	case OpAddRules:
		if err := t.addRules(op.Ptype, op.Rules); err != nil {
			return err
		}
		for _, r := range op.Rules {
			t.idx.setExpiry(op.Ptype[:1], r, op.ExpiresAt)
		}
		return nil
	case OpRemoveRules, OpExpire:
		return t.removeRules(op.Ptype, op.Rules)
	case OpRemoveFiltered:
		return t.removeFiltered(op.Ptype, op.FieldIndex, op.Values...)
	case OpAddRole:
		if t.roles.add(op.Role) {
			t.descs[op.Role] = nil
		}
		return nil
	case OpRemoveRole:
		t.roles.remove(op.Role)
		delete(t.descs, op.Role)
		return nil
	case OpSetDescription:
		if t.roles.has(op.Role) {
			t.descs[op.Role] = op.Description
		}
		return nil
	}
	return fmt.Errorf("policy: unknown operation %q", op.Kind)
}

// loadedByID returns the loaded tenant with this id, if any. When there is
// none while tenants are being loaded, it notes that version v of the tenant
// went by: a load in progress may have read the tenant before that change
// and must then read it again (see finishLoad).
func (s *Service) loadedByID(id, v int64) *tenant {
	s.idMu.Lock()
	t := s.byID[id]
	s.idMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t != nil && s.tenants[t.key] == t {
		t.mu.RLock()
		match := t.loaded && t.id == id
		t.mu.RUnlock()
		if match {
			return t
		}
	}
	if s.loads > 0 {
		if s.missed == nil {
			s.missed = map[int64]int64{}
		}
		s.missed[id] = max(s.missed[id], v)
	}
	return nil
}

// Outcome is what ApplyRemote did with another replica's change.
type Outcome int

// The outcomes of ApplyRemote.
const (
	// NotLoaded: the tenant is not in memory; it loads fresh on next use.
	NotLoaded Outcome = iota + 1
	// AlreadyApplied: memory already holds the change.
	AlreadyApplied
	// Applied: the change's operations were applied to memory.
	Applied
	// Reloaded: the tenant was reloaded from the database (a gap, or a
	// change whose operations are unknown).
	Reloaded
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case NotLoaded:
		return "not loaded"
	case AlreadyApplied:
		return "already applied"
	case Applied:
		return "applied"
	case Reloaded:
		return "reloaded"
	}
	return "unknown"
}

// ApplyRemote applies a change made by another replica to this replica's
// memory only. A tenant not in memory is skipped (it loads fresh on next
// use); a change already seen is ignored; a gap (a lost message) or a
// change whose operations are unknown makes the tenant reload from the
// database. It reports what it did.
func (s *Service) ApplyRemote(ctx context.Context, c Change) (Outcome, error) {
	s.feed.wake(c.TenantID)
	t := s.loadedByID(c.TenantID, c.Version)
	if t == nil {
		return NotLoaded, nil
	}
	if err := t.writeMu.lock(ctx); err != nil {
		return 0, err
	}
	defer t.writeMu.unlock()
	t.mu.Lock()
	switch {
	case !t.loaded || t.id != c.TenantID:
		t.mu.Unlock()
		return NotLoaded, nil
	case c.Version <= t.version:
		t.mu.Unlock()
		return AlreadyApplied, nil
	case c.Version == t.version+1 && !c.Reload:
		var err error
		for _, op := range c.Ops {
			if err = t.applyOp(op); err != nil {
				break
			}
		}
		if err == nil {
			t.version = c.Version
			t.revised()
			t.mu.Unlock()
			s.account(t)
			return Applied, nil
		}
		t.mu.Unlock()
		s.log.WarnContext(ctx, "apply remote change failed; reloading tenant", "tenant", c.TenantID, "err", err)
	default:
		t.mu.Unlock()
	}
	if err := s.loadTenant(ctx, t); err != nil {
		return 0, err
	}
	return Reloaded, nil
}

// VersionReader reads the policy versions of tenants from the database.
type VersionReader interface {
	Versions(ctx context.Context, ids []int64) (map[int64]int64, error)
}

// Resync compares every loaded tenant's version with the database and
// reloads the stale ones (anti-entropy: it repairs whatever pub/sub lost).
// A tenant held as not existing yet is reloaded once it exists. It returns
// how many tenants it reloaded.
//
// When vr also notes the changes made by other programs (ExternalChanges),
// Resync first records those in the audit trail (see RecordExternal); a
// failure there is logged and tried again on the next pass.
func (s *Service) Resync(ctx context.Context, vr VersionReader) (int, error) {
	if xc, ok := vr.(ExternalChanges); ok {
		if _, err := s.RecordExternal(ctx, xc); err != nil {
			s.log.WarnContext(ctx, "record changes made outside the service", "err", err)
		}
	}
	loaded := map[int64]*tenant{}
	var unborn []*tenant // loaded before the tenant existed
	for _, t := range s.heldTenants() {
		t.mu.RLock()
		switch {
		case t.loaded && t.id != 0:
			loaded[t.id] = t
		case t.loaded:
			unborn = append(unborn, t)
		}
		t.mu.RUnlock()
	}
	n := 0
	for _, t := range unborn {
		_, found, err := s.store.FindTenant(ctx, t.key)
		if err != nil {
			return n, err
		}
		if !found {
			continue
		}
		reloaded, err := s.reloadIf(ctx, t, func(t *tenant) bool { return t.loaded && t.id == 0 })
		if err != nil {
			return n, err
		}
		if reloaded {
			n++
		}
	}
	if len(loaded) == 0 {
		return n, nil
	}
	ids := make([]int64, 0, len(loaded))
	for id := range loaded {
		ids = append(ids, id)
	}
	versions, err := vr.Versions(ctx, ids)
	if err != nil {
		return n, err
	}
	for id, t := range loaded {
		v, ok := versions[id]
		reloaded, err := s.reloadIf(ctx, t, func(t *tenant) bool { return ok && t.loaded && t.id == id && v != t.version })
		if err != nil {
			return n, err
		}
		if reloaded {
			n++
		}
	}
	return n, nil
}

// reloadIf reloads t from the database when stale, checked under the
// tenant's write lock (so no local change runs in between), and says
// whether it did.
func (s *Service) reloadIf(ctx context.Context, t *tenant, stale func(t *tenant) bool) (bool, error) {
	if err := t.writeMu.lock(ctx); err != nil {
		return false, err
	}
	defer t.writeMu.unlock()
	t.mu.RLock()
	st := stale(t)
	t.mu.RUnlock()
	if !st {
		return false, nil
	}
	return true, s.loadTenant(ctx, t)
}

// heldTenants lists the tenants held in memory, read in batches of
// sweepBatch under one hold of s.mu each (so that checks never wait for a
// walk over every tenant). A tenant added or dropped meanwhile may be
// missed or listed twice: the callers run again.
func (s *Service) heldTenants() []*tenant {
	var out []*tenant
	for i := 0; ; i += sweepBatch {
		s.mu.RLock()
		if i >= len(s.ring) {
			s.mu.RUnlock()
			return out
		}
		out = append(out, s.ring[i:min(i+sweepBatch, len(s.ring))]...)
		s.mu.RUnlock()
	}
}
