// Package policy is the authorization core: tenants, roles, grants and
// memberships over a Casbin model, with one enforcer per tenant and indexes
// that answer the hot queries without scanning every rule.
//
// Every change runs in one database transaction (rules, role rows, policy
// version and the audit record) and reaches memory only after the commit.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/breaker"
)

// Options tune a Service. Zero values take the documented defaults.
type Options struct {
	// IdleTimeout evicts a tenant's enforcer after this long unused
	// (default 10 minutes).
	IdleTimeout time.Duration
	// MaxRoleDepth bounds role-inheritance chains (default 8, at most 9 so
	// that a user's chain stays within Casbin's limit of 10 links).
	MaxRoleDepth int
	// Recorder records every change inside its transaction (default none).
	Recorder audit.Recorder
	// Publisher, when set, tells the other replicas about each committed
	// change.
	Publisher Publisher
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
	// Reads and Writes, when set, are the circuit breakers of the store's
	// tenant lookups and loads (Reads) and of its transactions (Writes):
	// while the database is down they fail fast with ErrUnavailable, and
	// tenants already loaded keep answering from memory (and are not
	// evicted).
	Reads, Writes *breaker.Breaker
	// Timeout bounds each operation that reaches the store, waiting for a
	// tenant's lock included (0: no bound).
	Timeout time.Duration
	// Admit, when set, is asked before a write creates a tenant (the first
	// write of a key no tenant has); a write to an existing tenant is not
	// asked about. Its error refuses the write, wrapped with
	// ErrTenantCreationRefused; ctx is the write's (the HTTP layer keeps the
	// client's address in it, see audit.RequestFrom).
	Admit func(ctx context.Context) error
	// MemoryBudget bounds the estimated memory of the tenants held in
	// memory (see TenantBaseBytes), in bytes: past it the least recently
	// used tenants are evicted (0: no bound).
	MemoryBudget int64
}

// Service answers and changes the policies of all tenants.
type Service struct {
	store Store
	base  Store // store without its circuit breakers (for readiness)
	model modelInfo
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	mu      sync.RWMutex
	tenants map[KeyHash]*tenant
	// loads counts tenant loads in progress; missed holds, while there are
	// any, the newest version of each tenant that another replica changed
	// while it was not loaded here (see loadedByID).
	loads  int
	missed map[int64]int64
	// bytes is the estimated memory of the tenants in the map (the sum of
	// their cost); overBudgetLogged notes that an eviction could not get
	// under the budget (logged once).
	bytes            int64
	overBudgetLogged bool

	evicting                       atomic.Bool // a budget sweep is under way
	idleEvictions, budgetEvictions atomic.Uint64
}

// New builds a Service over store with the model text (a model.conf). It
// fails, with Casbin's message, on a model it cannot serve.
func New(store Store, modelText string, opts Options) (*Service, error) {
	info, err := ParseModel(modelText)
	if err != nil {
		return nil, err
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.MaxRoleDepth <= 0 {
		opts.MaxRoleDepth = 8
	}
	if opts.MaxRoleDepth > 9 {
		opts.MaxRoleDepth = 9
	}
	if opts.Recorder == nil {
		opts.Recorder = audit.Nop{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	base := store
	if opts.Reads != nil || opts.Writes != nil {
		store = guardedStore{Store: store, reads: opts.Reads, writes: opts.Writes}
	}
	return &Service{
		store:   store,
		base:    base,
		model:   info,
		opts:    opts,
		log:     opts.Logger,
		now:     time.Now,
		tenants: map[KeyHash]*tenant{},
	}, nil
}

// FastPath reports whether decisions use the index (true) or Casbin's
// Enforce for every check (a model the index does not understand).
func (s *Service) FastPath() bool { return s.model.fast }

// Ping checks that the store answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// LoadedTenants is the number of tenants held in memory.
func (s *Service) LoadedTenants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tenants)
}

// tenant returns the loaded state of a tenant. For reads (create false) of a
// tenant that does not exist it returns nil: nothing is created.
func (s *Service) tenant(ctx context.Context, key KeyHash, create bool) (*tenant, error) {
	s.mu.RLock()
	t := s.tenants[key]
	s.mu.RUnlock()
	if t != nil {
		t.mu.RLock()
		loaded := t.loaded
		t.mu.RUnlock()
		if loaded {
			t.touch(s.now())
			return t, nil
		}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if t == nil && !create {
		_, found, err := s.store.FindTenant(ctx, key)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, nil
		}
	}
	s.mu.Lock()
	if t = s.tenants[key]; t == nil {
		t = &tenant{key: key}
		s.tenants[key] = t
	}
	s.mu.Unlock()
	if err := lockTenant(ctx, t); err != nil {
		return nil, err
	}
	defer t.writeMu.unlock()
	t.mu.RLock()
	loaded := t.loaded
	t.mu.RUnlock()
	if !loaded {
		if err := s.loadTenant(ctx, t); err != nil {
			s.mu.Lock()
			if s.tenants[key] == t {
				s.dropLocked(key, t)
			}
			s.mu.Unlock()
			return nil, err
		}
	}
	t.touch(s.now())
	return t, nil
}

// read runs fn on a tenant's state under its read lock; fn gets nil for a
// tenant that does not exist.
func (s *Service) read(ctx context.Context, key KeyHash, fn func(t *tenant) error) error {
	t, err := s.tenant(ctx, key, false)
	if err != nil {
		return err
	}
	if t == nil {
		return fn(nil)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return fn(t)
}

// change is one write: op runs inside the transaction and returns the
// result and the memory update to apply after the commit.
type change struct {
	action   audit.Action
	resource string
	user     string
	op       func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, func(t *tenant) error, error)
	// fresh says that op decides on the tenant's memory (not only on the
	// database), which must then be as new as the database: if another
	// process changed the tenant since it was loaded, the tenant is
	// reloaded and the change tried again.
	fresh bool
}

// errStale aborts a change whose tenant memory is older than the database.
var errStale = errors.New("policy: tenant changed by another process")

// maxStaleRetries bounds how often a change is retried after a reload.
const maxStaleRetries = 5

func (s *Service) write(ctx context.Context, key KeyHash, c change) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.admit(ctx, key); err != nil {
		return false, err
	}
	t, err := s.lockCurrent(ctx, key)
	if err != nil {
		return false, err
	}
	defer t.writeMu.unlock()
	defer s.account(t)
	var (
		result  bool
		apply   func(*tenant) error
		tid     int64
		version int64
	)
	for attempt := 1; ; attempt++ {
		err = s.store.Change(ctx, func(ctx context.Context, tx Tx) error {
			var err error
			if tid, err = tx.EnsureTenant(ctx, key); err != nil {
				return err
			}
			if version, err = tx.BumpVersion(ctx, tid); err != nil {
				return err
			}
			if c.fresh {
				t.mu.RLock()
				stale := t.version+1 != version || (t.id != 0 && t.id != tid)
				t.mu.RUnlock()
				if stale {
					return errStale
				}
			}
			if result, apply, err = c.op(ctx, tx, t, domainOf(tid)); err != nil {
				return err
			}
			return s.opts.Recorder.RecordChange(ctx, audit.Entry{
				Time:     s.now().UTC(),
				Tenant:   string(key),
				User:     c.user,
				Action:   c.action,
				Resource: c.resource,
				Success:  result,
				Details:  map[string]any{"result": result},
				Version:  version,
			})
		})
		if !errors.Is(err, errStale) {
			break
		}
		if attempt == maxStaleRetries {
			return false, fmt.Errorf("%w: tenant changed concurrently, try again", ErrUnavailable)
		}
		if err := s.loadTenant(ctx, t); err != nil {
			return false, err
		}
	}
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	stale := t.version+1 != version || (t.id != 0 && t.id != tid)
	if t.id == 0 {
		t.id, t.dom = tid, domainOf(tid)
	}
	var ops []Op
	if !stale && apply != nil {
		t.journal = &ops
		aerr := apply(t)
		t.journal = nil
		if aerr != nil {
			s.log.ErrorContext(ctx, "apply committed change to memory; reloading tenant", "tenant", tid, "err", aerr)
			stale = true
		}
	}
	t.version = version
	t.mu.Unlock()
	if stale {
		// Another process changed this tenant in between: read it afresh.
		if err := s.loadTenant(ctx, t); err != nil {
			t.mu.Lock()
			t.loaded = false
			t.mu.Unlock()
			s.log.ErrorContext(ctx, "reload tenant after change", "tenant", tid, "err", err)
		}
	}
	if s.opts.Publisher != nil {
		// Tell the other replicas, in order (the tenant is still locked),
		// outside the memory locks. Without the change's operations (memory
		// was behind), they reload the tenant if they are behind it. A lost
		// message is repaired by Resync.
		_ = s.opts.Publisher.Publish(ctx, Change{TenantID: tid, Version: version, Ops: ops, Reload: stale})
	}
	return result, nil
}

// lockCurrent returns the tenant's state, loaded, with its write lock held.
// A tenant evicted while the lock was awaited is not written to: the write
// takes the state now in memory (loaded again), so that no change is ever
// applied to a copy nobody reads.
func (s *Service) lockCurrent(ctx context.Context, key KeyHash) (*tenant, error) {
	for {
		t, err := s.tenant(ctx, key, true)
		if err != nil {
			return nil, err
		}
		if err := lockTenant(ctx, t); err != nil {
			return nil, err
		}
		s.mu.RLock()
		current := s.tenants[key] == t
		s.mu.RUnlock()
		if current {
			return t, nil
		}
		t.writeMu.unlock()
	}
}

// CreateRole creates a role. Creating an existing role succeeds and changes
// nothing.
func (s *Service) CreateRole(ctx context.Context, key KeyHash, role string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	return s.write(ctx, key, change{action: audit.CreateRole, resource: role,
		op: func(ctx context.Context, tx Tx, _ *tenant, _ string) (bool, func(*tenant) error, error) {
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			created, err := tx.CreateRole(ctx, tid, role)
			if err != nil || !created {
				return err == nil, nil, err
			}
			return true, func(t *tenant) error {
				return t.applyOp(Op{Kind: OpAddRole, Role: role})
			}, nil
		}})
}

// DeleteRole deletes a role with its grants, its members and its
// inheritance links. It answers false if the role did not exist.
func (s *Service) DeleteRole(ctx context.Context, key KeyHash, role string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	sub := roleSubject(role)
	return s.write(ctx, key, change{action: audit.DeleteRole, resource: role,
		op: func(ctx context.Context, tx Tx, _ *tenant, dom string) (bool, func(*tenant) error, error) {
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			deleted, err := tx.DeleteRole(ctx, tid, role)
			if err != nil || !deleted {
				return false, nil, err
			}
			filters := []ruleFilter{
				{"p", 0, []string{sub, dom}},     // its grants
				{"g", 1, []string{sub, dom}},     // its members and child roles
				{"g", 0, []string{sub, "", dom}}, // its own parent links
			}
			for _, f := range filters {
				if err := tx.RemoveFilteredRules(ctx, f.ptype, f.field, f.values...); err != nil {
					return false, nil, err
				}
			}
			return true, func(t *tenant) error {
				for _, f := range filters {
					if err := t.applyOp(Op{Kind: OpRemoveFiltered, Ptype: f.ptype, FieldIndex: f.field, Values: f.values}); err != nil {
						return err
					}
				}
				return t.applyOp(Op{Kind: OpRemoveRole, Role: role})
			}, nil
		}})
}

// ruleFilter selects rules of a ptype by their fields from field on.
type ruleFilter struct {
	ptype  string
	field  int
	values []string
}

// Grant gives a permission to a role. It answers false if the role does not
// exist.
func (s *Service) Grant(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if !s.ValidGrant(perm) {
		return false, &NameError{Kind: "permission", Value: perm}
	}
	return s.ruleChange(ctx, key, audit.AddPermission, role+":"+perm, "", role, true,
		"p", func(dom string) []string { return []string{roleSubject(role), dom, perm} })
}

// Revoke takes a permission from a role. It is idempotent.
func (s *Service) Revoke(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if !s.ValidGrant(perm) {
		return false, &NameError{Kind: "permission", Value: perm}
	}
	return s.ruleChange(ctx, key, audit.RemovePermission, role+":"+perm, "", role, false,
		"p", func(dom string) []string { return []string{roleSubject(role), dom, perm} })
}

// AddMember makes user a member of role. It answers false if the role does
// not exist.
func (s *Service) AddMember(ctx context.Context, key KeyHash, user, role string) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkRole(role); err != nil {
		return false, err
	}
	return s.ruleChange(ctx, key, audit.AddMembership, role, user, role, true,
		"g", func(dom string) []string { return []string{user, roleSubject(role), dom} })
}

// RemoveMember removes user from role. It is idempotent.
func (s *Service) RemoveMember(ctx context.Context, key KeyHash, user, role string) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkRole(role); err != nil {
		return false, err
	}
	return s.ruleChange(ctx, key, audit.RemoveMembership, role, user, role, false,
		"g", func(dom string) []string { return []string{user, roleSubject(role), dom} })
}

// ruleChange adds or removes one rule. Additions need the role to exist and
// answer false otherwise; removals always answer true.
func (s *Service) ruleChange(ctx context.Context, key KeyHash, action audit.Action, resource, user, role string,
	add bool, ptype string, rule func(dom string) []string) (bool, error) {
	return s.write(ctx, key, change{action: action, resource: resource, user: user,
		op: func(ctx context.Context, tx Tx, _ *tenant, dom string) (bool, func(*tenant) error, error) {
			r := [][]string{rule(dom)}
			if !add {
				if err := tx.RemoveRules(ctx, ptype, r); err != nil {
					return false, nil, err
				}
				return true, func(t *tenant) error { return t.applyOp(Op{Kind: OpRemoveRules, Ptype: ptype, Rules: r}) }, nil
			}
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			ok, err := tx.RoleExists(ctx, tid, role)
			if err != nil || !ok {
				return false, nil, err
			}
			if err := tx.AddRules(ctx, ptype, r); err != nil {
				return false, nil, err
			}
			return true, func(t *tenant) error { return t.applyOp(Op{Kind: OpAddRules, Ptype: ptype, Rules: r}) }, nil
		}})
}

// AddRoleParent makes role inherit every permission of parent. It answers
// false if either role does not exist, and fails with ErrRoleCycle or
// ErrRoleDepth if the link would form a cycle or too deep a chain.
func (s *Service) AddRoleParent(ctx context.Context, key KeyHash, role, parent string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := checkRole(parent); err != nil {
		return false, err
	}
	if role == parent {
		return false, ErrRoleCycle
	}
	return s.write(ctx, key, change{action: audit.AddRoleParent, resource: role + ":" + parent, fresh: true,
		op: func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, func(*tenant) error, error) {
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			for _, r := range []string{role, parent} {
				ok, err := tx.RoleExists(ctx, tid, r)
				if err != nil || !ok {
					return false, nil, err
				}
			}
			t.mu.RLock()
			cycle := false
			for _, a := range t.ancestors(parent, math.MaxInt) {
				if a == role {
					cycle = true
				}
			}
			chain := t.height(parent) + 1 + t.depth(role)
			t.mu.RUnlock()
			if cycle {
				return false, nil, ErrRoleCycle
			}
			if chain > s.opts.MaxRoleDepth {
				return false, nil, ErrRoleDepth
			}
			r := [][]string{{roleSubject(role), roleSubject(parent), dom}}
			if err := tx.AddRules(ctx, "g", r); err != nil {
				return false, nil, err
			}
			return true, func(t *tenant) error { return t.applyOp(Op{Kind: OpAddRules, Ptype: "g", Rules: r}) }, nil
		}})
}

// RemoveRoleParent removes an inheritance link. It is idempotent.
func (s *Service) RemoveRoleParent(ctx context.Context, key KeyHash, role, parent string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := checkRole(parent); err != nil {
		return false, err
	}
	return s.ruleChange(ctx, key, audit.RemoveRoleParent, role+":"+parent, "", role, false,
		"g", func(dom string) []string { return []string{roleSubject(role), roleSubject(parent), dom} })
}

// RoleParents lists the roles that role inherits from directly.
func (s *Service) RoleParents(ctx context.Context, key KeyHash, role string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil {
			out = t.parents[role].list()
		}
		return nil
	})
	return out, err
}

// ListRoles lists the tenant's roles in creation order.
func (s *Service) ListRoles(ctx context.Context, key KeyHash) ([]Role, error) {
	var out []Role
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		for _, r := range t.roles.list() {
			out = append(out, Role{Name: r, Description: t.descs[r]})
		}
		return nil
	})
	return out, err
}

// RoleHasPermission reports whether role holds perm (directly or through
// inheritance).
func (s *Service) RoleHasPermission(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := checkPermission(perm); err != nil {
		return false, err
	}
	var ok bool
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil || !t.roles.has(role) {
			return nil
		}
		var err error
		ok, err = s.has(t, roleSubject(role), perm)
		return err
	})
	return ok, err
}

// HasPermission reports whether user holds perm through any of their roles.
func (s *Service) HasPermission(ctx context.Context, key KeyHash, user, perm string) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkPermission(perm); err != nil {
		return false, err
	}
	var ok bool
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		var err error
		ok, err = s.has(t, user, perm)
		return err
	})
	return ok, err
}

// IsMember reports whether user is a direct member of role.
func (s *Service) IsMember(ctx context.Context, key KeyHash, user, role string) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkRole(role); err != nil {
		return false, err
	}
	var ok bool
	err := s.read(ctx, key, func(t *tenant) error {
		ok = t != nil && t.memberOf[user].has(role)
		return nil
	})
	return ok, err
}

// UserRoles lists the roles user is a direct member of, in the order the
// memberships were made.
func (s *Service) UserRoles(ctx context.Context, key KeyHash, user string) ([]string, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil {
			out = t.memberOf[user].list()
		}
		return nil
	})
	return out, err
}

// Members lists the direct members of role in the order they joined.
func (s *Service) Members(ctx context.Context, key KeyHash, role string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil {
			out = t.members[role].list()
		}
		return nil
	})
	return out, err
}

// permissionsOf lists the permissions granted to a subject and to every
// role it inherits, in grant order, one entry per (role, permission) so a
// permission held through two roles appears twice.
func (t *tenant) permissionsOf(subject string, roles []string) []string {
	out := append([]string(nil), t.grants[subject].list()...)
	for _, r := range roles {
		out = append(out, t.grants[roleSubject(r)].list()...)
	}
	return out
}

// implicitRoles returns the user's roles followed by every role they inherit.
func (t *tenant) implicitRoles(user string) []string {
	direct := t.memberOf[user].list()
	seen := map[string]bool{}
	var out []string
	for _, r := range direct {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, r := range direct {
		for _, a := range t.ancestors(r, casbinMaxLinks-1) {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// UserPermissions lists the permissions user holds through their roles
// (including inherited roles), one entry per role that grants it.
func (s *Service) UserPermissions(ctx context.Context, key KeyHash, user string) ([]string, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil {
			out = t.permissionsOf(user, t.implicitRoles(user))
		}
		return nil
	})
	return out, err
}

// RolePermissions lists the permissions of role: its own grants, then those
// it inherits.
func (s *Service) RolePermissions(ctx context.Context, key KeyHash, role string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil && t.roles.has(role) {
			out = t.permissionsOf(roleSubject(role), t.ancestors(role, casbinMaxLinks))
		}
		return nil
	})
	return out, err
}

// whichRoles returns the roles that hold perm, in creation order: on the
// index, those that reach a holder of perm through at most maxLinks links
// (Casbin follows casbinMaxLinks links from the subject, so a role's members
// reach one link less far than the role). The caller holds t.mu.
func (s *Service) whichRoles(t *tenant, perm string, maxLinks int) ([]string, error) {
	var out []string
	if !s.model.fast {
		for _, r := range t.roles.list() {
			ok, err := t.enf.Enforce(roleSubject(r), t.dom, perm)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, r)
			}
		}
		return out, nil
	}
	set := map[string]bool{}
	if hs := t.holders[perm]; hs != nil {
		for h := range hs.seq {
			if !isRoleSubject(h) {
				continue
			}
			r := roleName(h)
			set[r] = true
			t.descendants(r, maxLinks, set)
		}
	}
	for r := range set {
		if t.roles.has(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return t.roles.seq[out[i]] < t.roles.seq[out[j]] })
	return out, nil
}

// WhichRolesCan lists the roles that hold perm, directly or by inheritance.
func (s *Service) WhichRolesCan(ctx context.Context, key KeyHash, perm string) ([]string, error) {
	if err := checkPermission(perm); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		var err error
		out, err = s.whichRoles(t, perm, casbinMaxLinks)
		return err
	})
	return out, err
}

// Membership is a user's membership of a role.
type Membership struct {
	User string
	Role string
}

// WhichUsersCan lists, for every role that holds perm, its direct members:
// a user who holds perm through two roles appears once per role.
func (s *Service) WhichUsersCan(ctx context.Context, key KeyHash, perm string) ([]Membership, error) {
	if err := checkPermission(perm); err != nil {
		return nil, err
	}
	var out []Membership
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		roles, err := s.whichRoles(t, perm, casbinMaxLinks-1)
		if err != nil {
			return err
		}
		for _, r := range roles {
			for _, u := range t.members[r].list() {
				out = append(out, Membership{User: u, Role: r})
			}
		}
		return nil
	})
	return out, err
}

// Run evicts tenants that have been idle longer than the idle timeout until
// ctx ends.
func (s *Service) Run(ctx context.Context) error {
	every := s.opts.IdleTimeout / 2
	if every > time.Minute {
		every = time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !s.storeDown() { // an evicted tenant could not be loaded again
				s.EvictIdle()
			}
		}
	}
}

// EvictIdle drops from memory the tenants unused for longer than the idle
// timeout; they are loaded again on their next use.
func (s *Service) EvictIdle() int {
	cutoff := s.now().Add(-s.opts.IdleTimeout).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, t := range s.tenants {
		if t.lastUsed.Load() >= cutoff || !t.writeMu.tryLock() {
			continue
		}
		s.dropLocked(k, t)
		t.writeMu.unlock()
		n++
	}
	s.idleEvictions.Add(uint64(n))
	return n
}

// IsNameError reports whether err is a name-validation error.
func IsNameError(err error) bool { return errors.Is(err, ErrInvalidName) }
