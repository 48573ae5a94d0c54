package policy

import (
	"context"
	"errors"
	"sort"
)

// RoleParents lists the roles that role inherits from directly.
func (s *Service) RoleParents(ctx context.Context, key KeyHash, role string) ([]string, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t != nil {
			out = t.idx.upOf(roleSubject(role))
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
	if err := s.checkCheck(perm); err != nil {
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
	if err := s.checkCheck(perm); err != nil {
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
		ok = t != nil && t.idx.linked(user, roleSubject(role))
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
			out = t.idx.upOf(user)
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
			out = t.idx.membersOf(roleSubject(role))
		}
		return nil
	})
	return out, err
}

// permissionsOf lists the permissions granted to a subject and to every
// role it inherits, in grant order, one entry per (role, permission) so a
// permission held through two roles appears twice.
func (t *tenant) permissionsOf(subject string, roles []string) []string {
	out := t.idx.grantsOf(subject)
	for _, r := range roles {
		out = append(out, t.idx.grantsOf(roleSubject(r))...)
	}
	return out
}

// implicitRoles returns the user's roles followed by every role they inherit.
func (t *tenant) implicitRoles(user string) []string {
	direct := t.idx.upOf(user)
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
	for _, h := range t.idx.holdersOf(perm) {
		if !isRoleSubject(h) {
			continue
		}
		r := roleName(h)
		set[r] = true
		t.descendants(r, maxLinks, set)
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
	if err := s.checkCheck(perm); err != nil {
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
	if err := s.checkCheck(perm); err != nil {
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
			for _, u := range t.idx.membersOf(roleSubject(r)) {
				out = append(out, Membership{User: u, Role: r})
			}
		}
		return nil
	})
	return out, err
}

// IsNameError reports whether err is a name-validation error.
func IsNameError(err error) bool { return errors.Is(err, ErrInvalidName) }
