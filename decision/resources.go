package decision

import (
	"context"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// ResourceQueries are the listings of API v2's resources: sorted lists and
// role descriptions that fail with policy.RoleNotFoundError for a missing
// role.
type ResourceQueries interface {
	RoleInfo(ctx context.Context, key policy.KeyHash, role string) (policy.RoleInfo, error)
	DirectGrants(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error)
	DirectMembers(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error)
	DirectParents(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	UserRoleTree(ctx context.Context, key policy.KeyHash, user string) ([]policy.UserRole, error)
	UserGrants(ctx context.Context, key policy.KeyHash, user string) ([]policy.HeldPermission, error)
	PermissionRoles(ctx context.Context, key policy.KeyHash, perm string) ([]policy.RoleHolding, error)
}

// ResourceCommands are the changes of API v2's resources: each answers
// whether it changed anything, and those on a role that must exist fail
// with policy.RoleNotFoundError.
type ResourceCommands interface {
	CreateRoleDescribed(ctx context.Context, key policy.KeyHash, role string, desc *string) (bool, error)
	PutRole(ctx context.Context, key policy.KeyHash, role string, setDesc bool, desc *string) (bool, *string, error)
	PutGrant(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error)
	PutGrantUntil(ctx context.Context, key policy.KeyHash, role, perm string, until *time.Time) (bool, error)
	DeleteGrant(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error)
	PutMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error)
	PutMemberUntil(ctx context.Context, key policy.KeyHash, user, role string, until *time.Time) (bool, error)
	DeleteMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error)
	PutParent(ctx context.Context, key policy.KeyHash, role, parent string) (bool, error)
	DeleteParent(ctx context.Context, key policy.KeyHash, role, parent string) (bool, error)
	DeleteUser(ctx context.Context, key policy.KeyHash, user string) (int, error)
}

// RoleInfo describes role, and records the listing like GET /roles
// (LIST_ROLES, resource "role:<role>").
func (p *Policy) RoleInfo(ctx context.Context, key policy.KeyHash, role string) (policy.RoleInfo, error) {
	info, err := p.core.RoleInfo(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: "role:" + role}, info, err)
}

// DirectGrants lists role's own grants, and records the listing like
// RolePermissions.
func (p *Policy) DirectGrants(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error) {
	list, err := p.core.DirectGrants(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListPermissions, Resource: role}, list, err)
}

// DirectMembers lists role's members, and records the listing like Members.
func (p *Policy) DirectMembers(ctx context.Context, key policy.KeyHash, role string) ([]policy.Held, error) {
	list, err := p.core.DirectMembers(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListMemberships, Resource: role}, list, err)
}

// DirectParents lists role's parents, and records the listing like
// RoleParents.
func (p *Policy) DirectParents(ctx context.Context, key policy.KeyHash, role string) ([]string, error) {
	list, err := p.core.DirectParents(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: "parents:" + role}, list, err)
}

// UserRoleTree lists user's direct and inherited roles, and records the
// listing like UserRoles.
func (p *Policy) UserRoleTree(ctx context.Context, key policy.KeyHash, user string) ([]policy.UserRole, error) {
	list, err := p.core.UserRoleTree(ctx, key, user)
	return listed(ctx, p.log, key, Question{Action: audit.ListMemberships, User: user}, list, err)
}

// UserGrants lists user's permissions with their roles, and records the
// listing like UserPermissions.
func (p *Policy) UserGrants(ctx context.Context, key policy.KeyHash, user string) ([]policy.HeldPermission, error) {
	list, err := p.core.UserGrants(ctx, key, user)
	return listed(ctx, p.log, key, Question{Action: audit.UserPermissions, User: user}, list, err)
}

// PermissionRoles lists the roles holding perm, and records the listing
// like WhichRolesCan.
func (p *Policy) PermissionRoles(ctx context.Context, key policy.KeyHash, perm string) ([]policy.RoleHolding, error) {
	list, err := p.core.PermissionRoles(ctx, key, perm)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: perm}, list, err)
}
