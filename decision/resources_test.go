package decision_test

import (
	"context"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

func (f fakeCore) RoleInfo(context.Context, policy.KeyHash, string) (policy.RoleInfo, error) {
	if f.err != nil {
		return policy.RoleInfo{}, f.err
	}
	return policy.RoleInfo{Name: "x"}, nil
}
func (f fakeCore) held() ([]policy.Held, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.Held{{Name: "x"}}, nil
}
func (f fakeCore) DirectGrants(context.Context, policy.KeyHash, string) ([]policy.Held, error) {
	return f.held()
}
func (f fakeCore) DirectMembers(context.Context, policy.KeyHash, string) ([]policy.Held, error) {
	return f.held()
}
func (f fakeCore) Changes(context.Context, policy.KeyHash, policy.Position, int, time.Duration) (policy.ChangePage, error) {
	return policy.ChangePage{}, f.err
}
func (f fakeCore) DirectParents(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) UserRoleTree(context.Context, policy.KeyHash, string) ([]policy.UserRole, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.UserRole{{Name: "x"}}, nil
}
func (f fakeCore) UserGrants(context.Context, policy.KeyHash, string) ([]policy.HeldPermission, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.HeldPermission{{Name: "p", Roles: []string{"x"}}}, nil
}
func (f fakeCore) PermissionRoles(context.Context, policy.KeyHash, string) ([]policy.RoleHolding, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.RoleHolding{{Name: "x"}}, nil
}

// resourceQueries are the listings of API v2's resources, each recorded
// like its v1 twin.
func resourceQueries() []query {
	first := func(v any, err error) (any, error) { return v, err }
	return []query{
		{"RoleInfo", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.RoleInfo(ctx, tenant, "editor"))
		}, audit.ListRoles, "", "role:editor", false},
		{"DirectGrants", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.DirectGrants(ctx, tenant, "editor"))
		}, audit.ListPermissions, "", "editor", false},
		{"DirectMembers", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.DirectMembers(ctx, tenant, "editor"))
		}, audit.ListMemberships, "", "editor", false},
		{"DirectParents", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.DirectParents(ctx, tenant, "editor"))
		}, audit.ListRoles, "", "parents:editor", false},
		{"UserRoleTree", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.UserRoleTree(ctx, tenant, "alice"))
		}, audit.ListMemberships, "alice", "", false},
		{"UserGrants", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.UserGrants(ctx, tenant, "alice"))
		}, audit.UserPermissions, "alice", "", false},
		{"PermissionRoles", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.PermissionRoles(ctx, tenant, "read"))
		}, audit.ListRoles, "", "read", false},
	}
}
