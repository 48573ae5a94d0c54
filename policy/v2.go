package policy

import (
	"time"
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/ourway/auth/audit"
)

// RoleNotFoundError is the error of an operation on a role that must exist
// and does not.
type RoleNotFoundError struct{ Role string }

func (e *RoleNotFoundError) Error() string {
	return fmt.Sprintf("policy: role %q does not exist", e.Role)
}

// RoleInfo describes one role: its description, how many direct grants
// and direct members it has, and the roles it inherits from directly.
type RoleInfo struct {
	Name        string
	Description *string
	Permissions int
	Members     int
	Parents     []string
}

// UserRole is a role of a user: a direct membership, or a role inherited
// through the direct role Via.
type UserRole struct {
	Name      string
	Inherited bool
	Via       string
}

// HeldPermission is a permission a user holds, with every role of theirs
// (direct or inherited) that grants it.
type HeldPermission struct {
	Name  string
	Roles []string
}

// RoleHolding is a role that holds a permission, by its own grant or only
// through a parent (Inherited).
type RoleHolding struct {
	Name      string
	Inherited bool
}

// mustExist fails with RoleNotFoundError for the first of roles the tenant
// does not have. The caller holds t.mu (t may be nil: no tenant yet).
func mustExist(t *tenant, roles ...string) error {
	for _, r := range roles {
		if t == nil || !t.roles.has(r) {
			return &RoleNotFoundError{Role: r}
		}
	}
	return nil
}

// CreateRoleDescribed creates a role with a description (nil: none) in one
// change. It answers false, changing nothing, if the role exists.
func (s *Service) CreateRoleDescribed(ctx context.Context, key KeyHash, role string, desc *string) (bool, error) {
	created, _, err := s.putRole(ctx, key, role, desc != nil, desc, true)
	return created, err
}

// PutRole creates role if it does not exist and, when setDesc is true,
// sets its description to desc (nil clears it). It answers whether the role
// was created and its description now. Creating is recorded as CREATE_ROLE, a description set on an
// existing role as UPDATE_ROLE.
func (s *Service) PutRole(ctx context.Context, key KeyHash, role string, setDesc bool, desc *string) (bool, *string, error) {
	return s.putRole(ctx, key, role, setDesc, desc, false)
}

func (s *Service) putRole(ctx context.Context, key KeyHash, role string, setDesc bool, desc *string, onlyCreate bool) (bool, *string, error) {
	if err := checkRole(role); err != nil {
		return false, nil, err
	}
	var created bool
	var now *string
	action := audit.CreateRole
	_, err := s.write(ctx, key, change{action: audit.CreateRole, resource: role, fresh: true,
		actionOf: func() audit.Action { return action },
		op: func(ctx context.Context, tx Tx, t *tenant, _ string) (bool, []Op, error) {
			created, action = false, audit.CreateRole
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			t.mu.RLock()
			exists := t.roles.has(role)
			now = t.descs[role]
			t.mu.RUnlock()
			if exists && (onlyCreate || !setDesc) {
				return false, nil, nil
			}
			if setDesc {
				now = desc
			}
			var ops []Op
			if !exists {
				if created, err = tx.CreateRole(ctx, tid, role); err != nil {
					return false, nil, err
				}
				ops = append(ops, Op{Kind: OpAddRole, Role: role})
			} else {
				action = audit.UpdateRole
			}
			if setDesc {
				if _, err := tx.SetRoleDescription(ctx, tid, role, desc); err != nil {
					return false, nil, err
				}
				ops = append(ops, Op{Kind: OpSetDescription, Role: role, Description: desc})
			}
			return true, ops, nil
		}})
	if err != nil {
		return false, nil, err
	}
	return created, now, nil
}

// PutGrant gives perm to role, answering whether the grant is new. It fails
// with RoleNotFoundError if the role does not exist.
func (s *Service) PutGrant(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	return s.PutGrantUntil(ctx, key, role, perm, nil)
}

// PutGrantUntil gives perm to role until the instant until (nil: for
// good), answering whether the grant is new. An existing grant takes the
// new end (it is extended, shortened or made permanent). The end must be
// in the future (an *ExpiryError otherwise) and needs the default model
// (ErrExpiryUnsupported otherwise); it is kept to the microsecond.
func (s *Service) PutGrantUntil(ctx context.Context, key KeyHash, role, perm string, until *time.Time) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := s.checkGrant(perm); err != nil {
		return false, err
	}
	at, err := s.expiryNanos(until)
	if err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.AddPermission, role+":"+perm, "", []string{role}, true, at, "p",
		func(t *tenant) bool { return t.idx.holds(roleSubject(role), perm) },
		func(dom string) []string { return []string{roleSubject(role), dom, perm} }, nil)
}

// DeleteGrant takes perm from role, answering whether role had it. It
// fails with RoleNotFoundError if the role does not exist.
func (s *Service) DeleteGrant(ctx context.Context, key KeyHash, role, perm string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := s.checkGrant(perm); err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.RemovePermission, role+":"+perm, "", []string{role}, false, 0, "p",
		func(t *tenant) bool { return t.idx.holds(roleSubject(role), perm) },
		func(dom string) []string { return []string{roleSubject(role), dom, perm} }, nil)
}

// PutMember makes user a member of role, answering whether the membership
// is new. It fails with RoleNotFoundError if the role does not exist.
func (s *Service) PutMember(ctx context.Context, key KeyHash, user, role string) (bool, error) {
	return s.PutMemberUntil(ctx, key, user, role, nil)
}

// PutMemberUntil makes user a member of role until the instant until (nil:
// for good), answering whether the membership is new; an existing
// membership takes the new end, as PutGrantUntil describes.
func (s *Service) PutMemberUntil(ctx context.Context, key KeyHash, user, role string, until *time.Time) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkRole(role); err != nil {
		return false, err
	}
	at, err := s.expiryNanos(until)
	if err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.AddMembership, role, user, []string{role}, true, at, "g",
		func(t *tenant) bool { return t.idx.linked(user, roleSubject(role)) },
		func(dom string) []string { return []string{user, roleSubject(role), dom} }, nil)
}

// DeleteMember removes user from role, answering whether they were a
// member. It fails with RoleNotFoundError if the role does not exist.
func (s *Service) DeleteMember(ctx context.Context, key KeyHash, user, role string) (bool, error) {
	if err := checkUser(user); err != nil {
		return false, err
	}
	if err := checkRole(role); err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.RemoveMembership, role, user, []string{role}, false, 0, "g",
		func(t *tenant) bool { return t.idx.linked(user, roleSubject(role)) },
		func(dom string) []string { return []string{user, roleSubject(role), dom} }, nil)
}

// PutParent makes role inherit from parent, answering whether the link is
// new. It fails with RoleNotFoundError if either role does not exist, and
// with ErrRoleCycle or ErrRoleDepth like AddRoleParent.
func (s *Service) PutParent(ctx context.Context, key KeyHash, role, parent string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := checkRole(parent); err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.AddRoleParent, role+":"+parent, "", []string{role, parent}, true, 0, "g",
		func(t *tenant) bool { return t.idx.linked(roleSubject(role), roleSubject(parent)) },
		func(dom string) []string { return []string{roleSubject(role), roleSubject(parent), dom} },
		func(t *tenant) error {
			if role == parent {
				return ErrRoleCycle
			}
			for _, a := range t.ancestors(parent, math.MaxInt) {
				if a == role {
					return ErrRoleCycle
				}
			}
			if t.height(parent)+1+t.depth(role) > s.opts.MaxRoleDepth {
				return ErrRoleDepth
			}
			return nil
		})
}

// DeleteParent removes the link from role to parent, answering whether
// there was one. It fails with RoleNotFoundError if either role does not
// exist.
func (s *Service) DeleteParent(ctx context.Context, key KeyHash, role, parent string) (bool, error) {
	if err := checkRole(role); err != nil {
		return false, err
	}
	if err := checkRole(parent); err != nil {
		return false, err
	}
	return s.link(ctx, key, audit.RemoveRoleParent, role+":"+parent, "", []string{role, parent}, false, 0, "g",
		func(t *tenant) bool { return t.idx.linked(roleSubject(role), roleSubject(parent)) },
		func(dom string) []string { return []string{roleSubject(role), roleSubject(parent), dom} }, nil)
}

// link adds (add) or removes one rule and answers whether it changed
// anything: the rule was absent (add) or present (remove). An addition
// gives the rule the end at (Unix nanoseconds, 0: permanent); a rule
// already there whose end differs takes the new one (answering false, but
// a change all the same). The roles must exist; allowed, when set, may
// refuse an addition. The decision is taken on memory that is as new as
// the database (a fresh change).
func (s *Service) link(ctx context.Context, key KeyHash, action audit.Action, resource, user string, roles []string,
	add bool, at int64, ptype string, present func(*tenant) bool, rule func(dom string) []string, allowed func(*tenant) error) (bool, error) {
	details := map[string]any{}
	if at != 0 {
		details["expires_at"] = time.Unix(0, at).UTC().Format(time.RFC3339Nano)
	}
	return s.write(ctx, key, change{action: action, resource: resource, user: user, fresh: true, details: details,
		op: func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, []Op, error) {
			r := [][]string{rule(dom)}
			t.mu.RLock()
			err := mustExist(t, roles...)
			was := err == nil && present(t)
			var had int64
			if was {
				had = t.idx.expiryOf(ptype[:1], r[0])
			}
			if err == nil && add && !was && allowed != nil {
				err = allowed(t)
			}
			t.mu.RUnlock()
			if err != nil {
				return false, nil, err
			}
			if add && (!was || had != at) {
				tid, err := ParseDomain(dom)
				if err != nil {
					return false, nil, err
				}
				op, err := addRules(ctx, tx, tid, ptype, r, at)
				if err != nil {
					return false, nil, err
				}
				return !was, []Op{op}, nil
			}
			if was == add {
				return false, nil, nil
			}
			if err := tx.RemoveRules(ctx, ptype, r); err != nil {
				return false, nil, err
			}
			return true, []Op{{Kind: OpRemoveRules, Ptype: ptype, Rules: r}}, nil
		}})
}

// DeleteUser removes user from every role in one change (one audit record,
// DELETE_USER) and answers how many memberships were removed.
func (s *Service) DeleteUser(ctx context.Context, key KeyHash, user string) (int, error) {
	if err := checkUser(user); err != nil {
		return 0, err
	}
	var n int
	details := map[string]any{}
	// The resource is not the user: users are kept as fingerprints only.
	_, err := s.write(ctx, key, change{action: audit.DeleteUser, resource: "memberships", user: user, fresh: true,
		details: details,
		op: func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, []Op, error) {
			t.mu.RLock()
			n = t.idx.upCount(user)
			t.mu.RUnlock()
			details["memberships_removed"] = n
			if n == 0 {
				return false, nil, nil
			}
			f := ruleFilter{"g", 0, []string{user, "", dom}}
			if err := tx.RemoveFilteredRules(ctx, f.ptype, f.field, f.values...); err != nil {
				return false, nil, err
			}
			return true, []Op{{Kind: OpRemoveFiltered, Ptype: f.ptype, FieldIndex: f.field, Values: f.values}}, nil
		}})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RoleInfo describes role; it fails with RoleNotFoundError if there is no
// such role.
func (s *Service) RoleInfo(ctx context.Context, key KeyHash, role string) (RoleInfo, error) {
	if err := checkRole(role); err != nil {
		return RoleInfo{}, err
	}
	var out RoleInfo
	err := s.read(ctx, key, func(t *tenant) error {
		if err := mustExist(t, role); err != nil {
			return err
		}
		out = RoleInfo{Name: role, Description: t.descs[role], Permissions: t.idx.grantCount(roleSubject(role)),
			Members: t.idx.memberCount(roleSubject(role)), Parents: sorted(t.idx.upOf(roleSubject(role)))}
		return nil
	})
	return out, err
}

// Held is a permission a role is granted, or a member of a role, with the
// end of a time-bound grant or membership (nil: permanent).
type Held struct {
	Name      string
	ExpiresAt *time.Time
}

// DirectGrants lists, sorted, the permissions granted to role itself; it
// fails with RoleNotFoundError if there is no such role.
func (s *Service) DirectGrants(ctx context.Context, key KeyHash, role string) ([]Held, error) {
	return s.heldList(ctx, key, role, func(t *tenant) []string { return t.idx.grantsOf(roleSubject(role)) },
		func(dom, perm string) (string, []string) { return "p", []string{roleSubject(role), dom, perm} })
}

// DirectMembers lists, sorted, the direct members of role; it fails with
// RoleNotFoundError if there is no such role.
func (s *Service) DirectMembers(ctx context.Context, key KeyHash, role string) ([]Held, error) {
	return s.heldList(ctx, key, role, func(t *tenant) []string { return t.idx.membersOf(roleSubject(role)) },
		func(dom, user string) (string, []string) { return "g", []string{user, roleSubject(role), dom} })
}

// heldList lists the names list gives for role, sorted, each with the end
// of its rule (as rule states it).
func (s *Service) heldList(ctx context.Context, key KeyHash, role string, list func(*tenant) []string,
	rule func(dom, name string) (string, []string)) ([]Held, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []Held
	err := s.read(ctx, key, func(t *tenant) error {
		if err := mustExist(t, role); err != nil {
			return err
		}
		names := sorted(list(t))
		out = make([]Held, len(names))
		for i, n := range names {
			out[i].Name = n
			if t.idx.exp.at == nil {
				continue
			}
			if at := t.idx.expiryOf(rule(t.dom, n)); at != 0 {
				e := time.Unix(0, at).UTC()
				out[i].ExpiresAt = &e
			}
		}
		return nil
	})
	return out, err
}

// DirectParents lists the roles role inherits from directly; it fails with
// RoleNotFoundError if there is no such role.
func (s *Service) DirectParents(ctx context.Context, key KeyHash, role string) ([]string, error) {
	return s.roleList(ctx, key, role, func(t *tenant) []string { return t.idx.upOf(roleSubject(role)) })
}

func (s *Service) roleList(ctx context.Context, key KeyHash, role string, list func(*tenant) []string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if err := mustExist(t, role); err != nil {
			return err
		}
		out = sorted(list(t))
		return nil
	})
	return out, err
}

// UserRoleTree lists the roles of user sorted by name: their direct
// memberships, then every role inherited through them (as far as a check
// follows links), each once. An inherited role names the direct role it is
// inherited through (the first by name when there are several); a role
// that is also direct is listed as direct.
func (s *Service) UserRoleTree(ctx context.Context, key KeyHash, user string) ([]UserRole, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var out []UserRole
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		direct := sorted(t.idx.upOf(user))
		seen := map[string]bool{}
		for _, r := range direct {
			seen[r] = true
			out = append(out, UserRole{Name: r})
		}
		for _, d := range direct {
			for _, a := range t.ancestors(d, casbinMaxLinks-1) {
				if !seen[a] {
					seen[a] = true
					out = append(out, UserRole{Name: a, Inherited: true, Via: d})
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	return out, err
}

// UserGrants lists, sorted by name, each permission user holds through
// their roles (as granted: a pattern under a pattern model) once, with the
// roles of the user (direct or inherited) that grant it, sorted.
func (s *Service) UserGrants(ctx context.Context, key KeyHash, user string) ([]HeldPermission, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var out []HeldPermission
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		by := map[string][]string{}
		for _, r := range t.implicitRoles(user) {
			for _, p := range t.idx.grantsOf(roleSubject(r)) {
				by[p] = append(by[p], r)
			}
		}
		for p, roles := range by {
			out = append(out, HeldPermission{Name: p, Roles: sorted(roles)})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	return out, err
}

// PermissionRoles lists, sorted by name, the roles that hold perm: by a
// grant of their own, or only through a parent (Inherited). Under a model
// that is not plain RBAC, a role's own grant counts as such when it names
// perm exactly or when none of the role's parents holds perm.
func (s *Service) PermissionRoles(ctx context.Context, key KeyHash, perm string) ([]RoleHolding, error) {
	if err := s.checkCheck(perm); err != nil {
		return nil, err
	}
	var out []RoleHolding
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		roles, err := s.whichRoles(t, perm, casbinMaxLinks)
		if err != nil {
			return err
		}
		holds := map[string]bool{}
		for _, r := range roles {
			holds[r] = true
		}
		for _, r := range roles {
			own := t.idx.holds(roleSubject(r), perm)
			if !own && !s.model.fast {
				own = true
				for _, p := range t.idx.upOf(roleSubject(r)) {
					if holds[p] {
						own = false
					}
				}
			}
			out = append(out, RoleHolding{Name: r, Inherited: !own})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	return out, err
}

// sorted sorts list in place and returns it.
func sorted(list []string) []string {
	sort.Strings(list)
	return list
}
