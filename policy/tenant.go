package policy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v3"
	"github.com/casbin/casbin/v3/model"
)

// tenant is the in-memory state of one tenant: an index of its rules that
// answers the queries without scanning every rule and, for a model the
// index does not decide (see modelInfo.fast), its Casbin enforcer (loaded
// with a filtered load of its domain).
type tenant struct {
	// mu guards the tenant's state (loaded, version, idx, id, dom, enf,
	// roles, descs, next); readers take it shared and only for the time of
	// a lookup, never across database work. A check reads mu, loaded,
	// version, idx and lastUsed: they come first, to share one cache line.
	mu      sync.RWMutex
	loaded  bool
	version int64
	// idx holds the rules of the tenant's domain; subjects are Casbin
	// subjects (users as is, roles with rolePrefix), objects are
	// permission names.
	idx      *ruleIndex
	lastUsed atomic.Int64

	key KeyHash
	// writeMu serialises loads and changes of this tenant; it is held across
	// the database transaction and the memory update that follows it.
	// Waiting for it honours the waiter's context.
	writeMu writeLock
	id      int64 // 0 until the tenant exists in the database
	dom     string
	// enf decides under a model other than plain RBAC with domains; nil
	// under that model, whose decisions the index makes.
	enf   *casbin.DistributedEnforcer
	roles *oset // role names in creation order
	descs map[string]*string
	// cost is the estimated memory of this tenant as last accounted in
	// Service.bytes, and slot its place in Service.ring (-1 once dropped);
	// both guarded by Service.mu.
	cost int64
	slot int
	// filedID is the id t is filed under in Service.byID (0: none;
	// guarded by Service.idMu).
	filedID int64
	// next is closed when the revision changes (see awaitRevision).
	next chan struct{}
}

func domainOf(id int64) string { return strconv.FormatInt(id, 10) }

// touch records a use. It writes at most once a second, so that checks
// running in parallel on one tenant do not all write the same cache line.
func (t *tenant) touch(now time.Time) {
	n := now.UnixNano()
	if n-t.lastUsed.Load() >= int64(time.Second) {
		t.lastUsed.Store(n)
	}
}

// build replaces the whole state from a loaded snapshot and index; m holds
// the same rules for a model that needs an enforcer (nil otherwise).
func (t *tenant) build(m model.Model, idx *ruleIndex, snap Snapshot) error {
	var enf *casbin.DistributedEnforcer
	if m != nil {
		var err error
		if enf, err = casbin.NewDistributedEnforcer(m); err != nil {
			return fmt.Errorf("build enforcer: %w", err)
		}
		enf.EnableAutoSave(false)
		enf.EnableAutoNotifyWatcher(false)
		if err := enf.BuildRoleLinks(); err != nil {
			return fmt.Errorf("build role links: %w", err)
		}
	}
	roles := newOset()
	descs := make(map[string]*string, len(snap.Roles))
	for _, r := range snap.Roles {
		roles.add(r.Name)
		descs[r.Name] = r.Description
	}
	t.enf = enf
	t.id = snap.TenantID
	t.dom = domainOf(snap.TenantID)
	t.version = snap.Version
	t.roles = roles
	t.descs = descs
	t.idx = idx
	t.loaded = true
	t.revised()
	return nil
}

// empty makes t the state of a tenant that does not exist yet.
func (t *tenant) empty(info modelInfo) error {
	var m model.Model
	if !info.fast {
		var err error
		if m, err = model.NewModelFromString(info.text); err != nil {
			return err
		}
	}
	return t.build(m, newRuleIndex(), Snapshot{})
}

// indexRule adds (add) or removes a rule of section sec ("p" or "g") to or
// from the index, and reports whether it changed it.
func (x *ruleIndex) indexRule(sec string, r []string, add bool) bool {
	switch {
	case sec == "p" && len(r) >= 3:
		if add {
			return x.addGrant(r[0], r[2])
		}
		return x.removeGrant(r[0], r[2])
	case sec == "g" && len(r) >= 2:
		if add {
			return x.addLink(r[0], r[1])
		}
		return x.removeLink(r[0], r[1])
	}
	return false
}

// addRules applies committed rule additions to memory.
func (t *tenant) addRules(ptype string, rules [][]string) error {
	sec := ptype[:1]
	if t.enf == nil {
		for _, r := range rules {
			t.idx.indexRule(sec, r, true)
		}
		return nil
	}
	affected, err := t.enf.AddPoliciesSelf(nil, sec, ptype, rules)
	if err != nil {
		return err
	}
	for _, r := range affected {
		t.idx.indexRule(sec, r, true)
	}
	return nil
}

// removeRules applies committed rule removals to memory.
func (t *tenant) removeRules(ptype string, rules [][]string) error {
	sec := ptype[:1]
	if t.enf == nil {
		for _, r := range rules {
			t.idx.indexRule(sec, r, false)
		}
		return nil
	}
	affected, err := t.enf.RemovePoliciesSelf(nil, sec, ptype, rules)
	if err != nil {
		return err
	}
	for _, r := range affected {
		t.idx.indexRule(sec, r, false)
	}
	return nil
}

// removeFiltered applies a committed filtered removal to memory: the rules
// whose fields from fieldIndex on equal values ("" matches anything), as
// Casbin's RemoveFilteredPolicy selects them.
func (t *tenant) removeFiltered(ptype string, fieldIndex int, values ...string) error {
	sec := ptype[:1]
	if t.enf != nil {
		affected, err := t.enf.RemoveFilteredPolicySelf(nil, sec, ptype, fieldIndex, values...)
		if err != nil {
			return err
		}
		for _, r := range affected {
			t.idx.indexRule(sec, r, false)
		}
		return nil
	}
	// Collect first (the walk must not see its own removals), without
	// building every rule of a large tenant.
	var matched [][]string
	r := make([]string, 3)
	note := func(a, b string) {
		if sec == "p" {
			r[0], r[1], r[2] = a, t.dom, b
		} else {
			r[0], r[1], r[2] = a, b, t.dom
		}
		if matchesFilter(r, fieldIndex, values) {
			matched = append(matched, slices.Clone(r))
		}
	}
	if sec == "p" {
		t.idx.forEachGrant(note)
	} else {
		t.idx.forEachLink(note)
	}
	for _, r := range matched {
		t.idx.indexRule(sec, r, false)
	}
	return nil
}

// matchesFilter reports whether rule r's fields from fieldIndex on equal
// values, "" matching anything.
func matchesFilter(r []string, fieldIndex int, values []string) bool {
	for i, v := range values {
		if v == "" {
			continue
		}
		if j := fieldIndex + i; j < 0 || j >= len(r) || r[j] != v {
			return false
		}
	}
	return true
}

// rules returns the tenant's rules of section sec ("p" or "g") as Casbin
// holds them: p rules (subject, domain, permission), g rules (child,
// parent, domain).
func (t *tenant) rules(sec string) [][]string {
	if t.enf != nil {
		var out [][]string
		if sec == "p" {
			out, _ = t.enf.GetPolicy()
		} else {
			out, _ = t.enf.GetGroupingPolicy()
		}
		return out
	}
	var out [][]string
	if sec == "p" {
		out = make([][]string, 0, t.idx.nP)
		t.idx.forEachGrant(func(sub, obj string) { out = append(out, []string{sub, t.dom, obj}) })
	} else {
		out = make([][]string, 0, t.idx.nG+len(t.idx.others))
		t.idx.forEachLink(func(child, parent string) { out = append(out, []string{child, parent, t.dom}) })
	}
	return out
}

// ancestors returns the roles that role inherits from through at most
// maxLinks links, nearest first.
func (t *tenant) ancestors(role string, maxLinks int) []string {
	var out []string
	seen := map[string]bool{role: true}
	level := []string{role}
	for links := 1; links <= maxLinks && len(level) > 0; links++ {
		var next []string
		for _, r := range level {
			for _, p := range t.idx.upOf(roleSubject(r)) {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
					next = append(next, p)
				}
			}
		}
		level = next
	}
	return out
}

// descendants adds to out the roles that inherit from role through at most
// maxLinks links.
func (t *tenant) descendants(role string, maxLinks int, out map[string]bool) {
	seen := map[string]bool{role: true}
	level := []string{role}
	for links := 1; links <= maxLinks && len(level) > 0; links++ {
		var next []string
		for _, r := range level {
			for _, c := range t.idx.childrenOf(roleSubject(r)) {
				if !seen[c] {
					seen[c] = true
					out[c] = true
					next = append(next, c)
				}
			}
		}
		level = next
	}
}

// height is the longest chain of parent links above role.
func (t *tenant) height(role string) int {
	return longestChain(role, func(r string) []string { return t.idx.upOf(roleSubject(r)) }, map[string]int{})
}

// depth is the longest chain of child links below role.
func (t *tenant) depth(role string) int {
	return longestChain(role, func(r string) []string { return t.idx.childrenOf(roleSubject(r)) }, map[string]int{})
}

// longestChain is the number of links in the longest chain from role along
// next. Each role is measured once (memo), so a wide lattice of roles costs
// time linear in its links rather than one visit per path, which grows
// exponentially with the depth. A role met again on the current path (a
// cycle, which AddRoleParent never creates) counts as the end of the chain.
func longestChain(role string, next func(string) []string, memo map[string]int) int {
	if n, ok := memo[role]; ok {
		return max(n, 0) // -1: on the current path
	}
	memo[role] = -1
	best := 0
	for _, n := range next(role) {
		best = max(best, 1+longestChain(n, next, memo))
	}
	memo[role] = best
	return best
}

// casbinMaxLinks is the depth to which Casbin's role manager follows g
// links (casbin.NewEnforcer builds it with NewRoleManager(10)).
const casbinMaxLinks = 10

// has reports whether subject holds permission obj in this tenant, exactly
// as Casbin's Enforce would decide it: some holder of obj is the subject or
// is reached from it through at most casbinMaxLinks g links. Under plain
// RBAC with domains the links are walked on the index (see
// ruleIndex.allows); under any other model Enforce decides.
func (s *Service) has(t *tenant, subject, obj string) (bool, error) {
	if t.enf != nil {
		return t.enf.Enforce(subject, t.dom, obj)
	}
	return t.idx.allows(subject, obj), nil
}

// loadTenant reads a tenant from the store into t. The caller holds t.writeMu.
// If another replica's change to the tenant went by while it was being
// read (see loadedByID), it reads the tenant again.
func (s *Service) loadTenant(ctx context.Context, t *tenant) error {
	s.mu.Lock()
	s.loads++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.loads--; s.loads == 0 {
			s.missed = nil
		}
		s.mu.Unlock()
	}()
	for attempt := 1; ; attempt++ {
		fresh, err := s.readTenant(ctx, t.key)
		if err != nil {
			return err
		}
		s.mu.Lock()
		t.mu.Lock()
		t.loaded, t.id, t.dom, t.version, t.enf = fresh.loaded, fresh.id, fresh.dom, fresh.version, fresh.enf
		t.roles, t.descs, t.idx = fresh.roles, fresh.descs, fresh.idx
		t.revised()
		if s.tenants[t.key] == t {
			s.indexID(t, fresh.id)
		}
		missed := fresh.id != 0 && s.missed[fresh.id] > fresh.version
		t.mu.Unlock()
		s.mu.Unlock()
		if !missed || attempt == 3 {
			s.account(t)
			return nil
		}
	}
}

// readTenant reads a tenant's state from the store: one call, which finds
// the tenant by its key and reads it (a tenant the store does not have is
// read as empty, with id 0).
func (s *Service) readTenant(ctx context.Context, key KeyHash) (*tenant, error) {
	fresh := &tenant{key: key}
	// The rules go straight into the index (and, for a model that needs
	// one, into the enforcer's model) as the store reads them.
	idx := newRuleIndex()
	var m model.Model
	if !s.model.fast {
		var err error
		if m, err = model.NewModelFromString(s.model.text); err != nil {
			return nil, err
		}
	}
	snap, found, err := s.store.LoadTenant(ctx, key, func(ptype string, rule []string) error {
		sec := ptype[:1]
		if m != nil {
			if ok, _ := m.HasPolicy(sec, ptype, rule); ok {
				return nil
			}
			if err := m.AddPolicy(sec, ptype, slices.Clone(rule)); err != nil {
				return err
			}
		}
		idx.indexRule(sec, rule, true)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load tenant: %w", err)
	}
	if !found {
		if err := fresh.build(m, newRuleIndex(), Snapshot{}); err != nil {
			return nil, err
		}
		return fresh, nil
	}
	for _, e := range snap.Expiries {
		if len(e.Rule) > 0 && (e.Ptype == "p" || e.Ptype == "g") {
			idx.setExpiry(e.Ptype, e.Rule, e.At.UnixNano())
		}
	}
	if err := fresh.build(m, idx, snap); err != nil {
		return nil, fmt.Errorf("load tenant %d: %w", snap.TenantID, err)
	}
	return fresh, nil
}
