package policy

import "context"

// ChildRoles lists, sorted, the roles that inherit directly from role (its
// children: the roles that have it as a parent); it fails with
// RoleNotFoundError if there is no such role.
func (s *Service) ChildRoles(ctx context.Context, key KeyHash, role string) ([]string, error) {
	return s.roleList(ctx, key, role, func(t *tenant) []string { return t.idx.childrenOf(roleSubject(role)) })
}

// GrantedPermissions lists, sorted, every permission granted to at least
// one role of the tenant (as granted: a pattern under a pattern model).
func (s *Service) GrantedPermissions(ctx context.Context, key KeyHash) ([]string, error) {
	var out []string
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		x := t.idx
		for o, hs := range x.holders {
			for _, h := range hs {
				if isRoleSubject(x.subs.strs[h]) {
					out = append(out, x.objs.strs[o])
					break
				}
			}
		}
		return nil
	})
	return sorted(out), err
}
