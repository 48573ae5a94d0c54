package policy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v3"
	"github.com/casbin/casbin/v3/model"
)

// tenant is the in-memory state of one tenant: its Casbin enforcer (loaded
// with a filtered load of its domain) and the indexes that answer the hot
// queries without scanning every rule.
type tenant struct {
	key KeyHash
	// writeMu serialises loads and changes of this tenant; it is held across
	// the database transaction and the memory update that follows it.
	// Waiting for it honours the waiter's context.
	writeMu writeLock
	// mu guards everything below; readers take it shared and only for the
	// time of a lookup, never across database work.
	mu      sync.RWMutex
	loaded  bool
	id      int64 // 0 until the tenant exists in the database
	dom     string
	version int64
	enf     *casbin.DistributedEnforcer
	roles   *oset // role names in creation order
	descs   map[string]*string
	// Indexes over the Casbin rules; subjects are Casbin subjects (users
	// as is, roles with rolePrefix), objects are permission names.
	grants   multimap // subject -> objects (p rules)
	holders  multimap // object -> subjects (p rules)
	memberOf multimap // user -> role names (g rules user -> role)
	members  multimap // role name -> users
	parents  multimap // role name -> parent role names (g rules role -> role)
	children multimap // role name -> child role names

	lastUsed atomic.Int64
	// cost is the estimated memory of this tenant as last accounted in
	// Service.bytes; guarded by Service.mu.
	cost int64
	// journal, while set, collects the operations a local change applies,
	// to be published to the other replicas.
	journal *[]Op
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

// build replaces the whole state from a loaded model and snapshot.
func (t *tenant) build(info modelInfo, m model.Model, snap Snapshot) error {
	enf, err := casbin.NewDistributedEnforcer(m)
	if err != nil {
		return fmt.Errorf("build enforcer: %w", err)
	}
	enf.EnableAutoSave(false)
	enf.EnableAutoNotifyWatcher(false)
	if err := enf.BuildRoleLinks(); err != nil {
		return fmt.Errorf("build role links: %w", err)
	}
	roles := newOset()
	descs := map[string]*string{}
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
	t.reindex()
	t.loaded = true
	return nil
}

// empty makes t the state of a tenant that does not exist yet.
func (t *tenant) empty(info modelInfo) error {
	m, err := model.NewModelFromString(info.text)
	if err != nil {
		return err
	}
	return t.build(info, m, Snapshot{})
}

// reindex rebuilds the indexes from the enforcer's rules.
func (t *tenant) reindex() {
	t.grants, t.holders = multimap{}, multimap{}
	t.memberOf, t.members = multimap{}, multimap{}
	t.parents, t.children = multimap{}, multimap{}
	p, _ := t.enf.GetPolicy()
	for _, r := range p {
		if len(r) >= 3 {
			t.indexGrant(r[0], r[2], true)
		}
	}
	g, _ := t.enf.GetGroupingPolicy()
	for _, r := range g {
		if len(r) >= 2 {
			t.indexLink(r[0], r[1], true)
		}
	}
}

func (t *tenant) indexGrant(sub, obj string, add bool) {
	if add {
		t.grants.add(sub, obj)
		t.holders.add(obj, sub)
		return
	}
	t.grants.remove(sub, obj)
	t.holders.remove(obj, sub)
}

func (t *tenant) indexLink(child, parent string, add bool) {
	if !isRoleSubject(parent) {
		return
	}
	p := roleName(parent)
	if isRoleSubject(child) {
		c := roleName(child)
		if add {
			t.parents.add(c, p)
			t.children.add(p, c)
		} else {
			t.parents.remove(c, p)
			t.children.remove(p, c)
		}
		return
	}
	if add {
		t.memberOf.add(child, p)
		t.members.add(p, child)
	} else {
		t.memberOf.remove(child, p)
		t.members.remove(p, child)
	}
}

// addRules applies committed rule additions to memory.
func (t *tenant) addRules(ptype string, rules [][]string) error {
	sec := ptype[:1]
	affected, err := t.enf.AddPoliciesSelf(nil, sec, ptype, rules)
	if err != nil {
		return err
	}
	for _, r := range affected {
		t.indexRule(sec, r, true)
	}
	return nil
}

// removeRules applies committed rule removals to memory.
func (t *tenant) removeRules(ptype string, rules [][]string) error {
	sec := ptype[:1]
	affected, err := t.enf.RemovePoliciesSelf(nil, sec, ptype, rules)
	if err != nil {
		return err
	}
	for _, r := range affected {
		t.indexRule(sec, r, false)
	}
	return nil
}

// removeFiltered applies a committed filtered removal to memory.
func (t *tenant) removeFiltered(ptype string, fieldIndex int, values ...string) error {
	sec := ptype[:1]
	affected, err := t.enf.RemoveFilteredPolicySelf(nil, sec, ptype, fieldIndex, values...)
	if err != nil {
		return err
	}
	for _, r := range affected {
		t.indexRule(sec, r, false)
	}
	return nil
}

func (t *tenant) indexRule(sec string, r []string, add bool) {
	switch {
	case sec == "p" && len(r) >= 3:
		t.indexGrant(r[0], r[2], add)
	case sec == "g" && len(r) >= 2:
		t.indexLink(r[0], r[1], add)
	}
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
			for _, p := range t.parents[r].list() {
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
			if s := t.children[r]; s != nil {
				for c := range s.seq {
					if !seen[c] {
						seen[c] = true
						out[c] = true
						next = append(next, c)
					}
				}
			}
		}
		level = next
	}
}

// height is the longest chain of parent links above role.
func (t *tenant) height(role string) int { return longestChain(role, t.parents, map[string]int{}) }

// depth is the longest chain of child links below role.
func (t *tenant) depth(role string) int { return longestChain(role, t.children, map[string]int{}) }

// longestChain is the number of links in the longest chain from role along
// next. Each role is measured once (memo), so a wide lattice of roles costs
// time linear in its links rather than one visit per path, which grows
// exponentially with the depth. A role met again on the current path (a
// cycle, which AddRoleParent never creates) counts as the end of the chain.
func longestChain(role string, next multimap, memo map[string]int) int {
	if n, ok := memo[role]; ok {
		return max(n, 0) // -1: on the current path
	}
	memo[role] = -1
	best := 0
	if s := next[role]; s != nil {
		for n := range s.seq {
			best = max(best, 1+longestChain(n, next, memo))
		}
	}
	memo[role] = best
	return best
}

// casbinMaxLinks is the depth to which Casbin's role manager follows g
// links (casbin.NewEnforcer builds it with NewRoleManager(10)).
const casbinMaxLinks = 10

// has reports whether subject holds permission obj in this tenant, exactly
// as Casbin's Enforce would decide it: some holder of obj is the subject or
// is reached from it through at most casbinMaxLinks g links. The links are
// walked on the index, which mirrors the enforcer's g rules, rather than
// through the role manager's HasLink once per holder: a permission held by
// many roles would otherwise cost one locked graph walk per role.
func (s *Service) has(t *tenant, subject, obj string) (bool, error) {
	if !s.model.fast {
		return t.enf.Enforce(subject, t.dom, obj)
	}
	hs := t.holders[obj]
	if hs == nil {
		return false, nil
	}
	if hs.has(subject) {
		return true, nil
	}
	// level holds the role names reached through exactly links links.
	var level []string
	links := 0
	if isRoleSubject(subject) {
		level = append(level, roleName(subject))
	} else if m := t.memberOf[subject]; m != nil {
		links = 1
		for r := range m.seq {
			level = append(level, r)
		}
	}
	var seen map[string]bool
	for len(level) > 0 && links <= casbinMaxLinks {
		var next []string
		for _, r := range level {
			if links > 0 && hs.has(rolePrefix+r) {
				return true, nil
			}
			ps := t.parents[r]
			if ps == nil || links == casbinMaxLinks {
				continue
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			for p := range ps.seq {
				if !seen[p] {
					seen[p] = true
					next = append(next, p)
				}
			}
		}
		level = next
		links++
	}
	return false, nil
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
		t.roles, t.descs = fresh.roles, fresh.descs
		t.grants, t.holders, t.memberOf, t.members = fresh.grants, fresh.holders, fresh.memberOf, fresh.members
		t.parents, t.children = fresh.parents, fresh.children
		missed := fresh.id != 0 && s.missed[fresh.id] > fresh.version
		t.mu.Unlock()
		s.mu.Unlock()
		if !missed || attempt == 3 {
			s.account(t)
			return nil
		}
	}
}

// readTenant reads a tenant's state from the store.
func (s *Service) readTenant(ctx context.Context, key KeyHash) (*tenant, error) {
	id, found, err := s.store.FindTenant(ctx, key)
	if err != nil {
		return nil, err
	}
	fresh := &tenant{key: key}
	if !found {
		if err := fresh.empty(s.model); err != nil {
			return nil, err
		}
		return fresh, nil
	}
	m, err := model.NewModelFromString(s.model.text)
	if err != nil {
		return nil, err
	}
	snap, err := s.store.LoadTenant(ctx, id, m)
	if err != nil {
		return nil, fmt.Errorf("load tenant %d: %w", id, err)
	}
	if err := fresh.build(s.model, m, snap); err != nil {
		return nil, fmt.Errorf("load tenant %d: %w", id, err)
	}
	return fresh, nil
}
