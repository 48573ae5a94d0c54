package policy

import (
	"context"
	"math"

	"github.com/ourway/auth/audit"
)

// CreateRole creates a role. Creating an existing role succeeds and changes
// nothing.
func (s *Service) CreateRole(ctx context.Context, key KeyHash, role string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	return s.write(ctx, key, change{action: audit.CreateRole, resource: role,
		op: func(ctx context.Context, tx Tx, _ *tenant, _ string) (bool, []Op, error) {
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			created, err := tx.CreateRole(ctx, tid, role)
			if err != nil || !created {
				return err == nil, nil, err
			}
			return true, []Op{{Kind: OpAddRole, Role: role}}, nil
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
		op: func(ctx context.Context, tx Tx, _ *tenant, dom string) (bool, []Op, error) {
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
			ops := make([]Op, 0, len(filters)+1)
			for _, f := range filters {
				ops = append(ops, Op{Kind: OpRemoveFiltered, Ptype: f.ptype, FieldIndex: f.field, Values: f.values})
			}
			return true, append(ops, Op{Kind: OpRemoveRole, Role: role}), nil
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
	if err := s.checkGrant(perm); err != nil {
		return false, err
	}
	return s.ruleChange(ctx, key, audit.AddPermission, role+":"+perm, "", role, true,
		"p", func(dom string) []string { return []string{roleSubject(role), dom, perm} })
}

// Revoke takes a permission from a role. It is idempotent.
func (s *Service) Revoke(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := s.checkGrant(perm); err != nil {
		return false, err
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
		op: func(ctx context.Context, tx Tx, _ *tenant, dom string) (bool, []Op, error) {
			r := [][]string{rule(dom)}
			if !add {
				if err := tx.RemoveRules(ctx, ptype, r); err != nil {
					return false, nil, err
				}
				return true, []Op{{Kind: OpRemoveRules, Ptype: ptype, Rules: r}}, nil
			}
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			ok, err := tx.RoleExists(ctx, tid, role)
			if err != nil || !ok {
				return false, nil, err
			}
			op, err := addRules(ctx, tx, tid, ptype, r, 0)
			if err != nil {
				return false, nil, err
			}
			return true, []Op{op}, nil
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
		op: func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, []Op, error) {
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
			return true, []Op{{Kind: OpAddRules, Ptype: "g", Rules: r}}, nil
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

// EnsureTenant creates the tenant of key if it does not exist yet, so that
// other stores can keep data of it (its workflows). A tenant it would
// create is admitted like one a write would create (Options.Admit).
func (s *Service) EnsureTenant(ctx context.Context, key KeyHash) error {
	if err := s.admit(ctx, key); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.store.Change(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.EnsureTenant(ctx, key)
		return err
	})
}
