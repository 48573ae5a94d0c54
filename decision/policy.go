package decision

import (
	"context"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Queries are the checks and listings of the policy core.
type Queries interface {
	RoleHasPermission(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error)
	IsMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error)
	HasPermission(ctx context.Context, key policy.KeyHash, user, perm string) (bool, error)
	UserPermissions(ctx context.Context, key policy.KeyHash, user string) ([]string, error)
	RolePermissions(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	UserRoles(ctx context.Context, key policy.KeyHash, user string) ([]string, error)
	Members(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	ListRoles(ctx context.Context, key policy.KeyHash) ([]policy.Role, error)
	WhichRolesCan(ctx context.Context, key policy.KeyHash, perm string) ([]string, error)
	WhichUsersCan(ctx context.Context, key policy.KeyHash, perm string) ([]policy.Membership, error)
	RoleParents(ctx context.Context, key policy.KeyHash, role string) ([]string, error)
	ResourceQueries
}

// Commands are the changes of the policy core; the core records each one
// inside its own transaction.
type Commands interface {
	CreateRole(ctx context.Context, key policy.KeyHash, role string) (bool, error)
	DeleteRole(ctx context.Context, key policy.KeyHash, role string) (bool, error)
	Grant(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error)
	Revoke(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error)
	AddMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error)
	RemoveMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error)
	AddRoleParent(ctx context.Context, key policy.KeyHash, role, parent string) (bool, error)
	RemoveRoleParent(ctx context.Context, key policy.KeyHash, role, parent string) (bool, error)
	ResourceCommands
}

// Core is the policy core: its changes and its queries.
type Core interface {
	Commands
	Queries
	Checks
	PolicyFiles
	Feed
}

var (
	_ Core = (*policy.Service)(nil)
	_ Core = (*Policy)(nil)
)

// Policy is the policy core with every answered check and listing recorded
// in the audit trail. Its changes are the core's own.
type Policy struct {
	Commands
	core Core
	log  *Log
}

// New returns the core with its answers recorded through log.
func New(core Core, log *Log) *Policy { return &Policy{Commands: core, core: core, log: log} }

// RoleHasPermission reports whether role holds perm, and records the check.
func (p *Policy) RoleHasPermission(ctx context.Context, key policy.KeyHash, role, perm string) (bool, error) {
	has, err := p.core.RoleHasPermission(ctx, key, role, perm)
	return checked(ctx, p.log, key, Question{Action: audit.CheckPermission, Resource: role + ":" + perm}, has, err)
}

// IsMember reports whether user is a direct member of role, and records
// the check.
func (p *Policy) IsMember(ctx context.Context, key policy.KeyHash, user, role string) (bool, error) {
	has, err := p.core.IsMember(ctx, key, user, role)
	return checked(ctx, p.log, key, Question{Action: audit.CheckMembership, User: user, Resource: role}, has, err)
}

// HasPermission reports whether user holds perm, and records the check.
func (p *Policy) HasPermission(ctx context.Context, key policy.KeyHash, user, perm string) (bool, error) {
	has, err := p.core.HasPermission(ctx, key, user, perm)
	return checked(ctx, p.log, key, Question{Action: audit.CheckPermission, User: user, Resource: perm}, has, err)
}

// UserPermissions lists the permissions user holds, and records the listing.
func (p *Policy) UserPermissions(ctx context.Context, key policy.KeyHash, user string) ([]string, error) {
	list, err := p.core.UserPermissions(ctx, key, user)
	return listed(ctx, p.log, key, Question{Action: audit.UserPermissions, User: user}, list, err)
}

// RolePermissions lists the permissions of role, and records the listing.
func (p *Policy) RolePermissions(ctx context.Context, key policy.KeyHash, role string) ([]string, error) {
	list, err := p.core.RolePermissions(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListPermissions, Resource: role}, list, err)
}

// UserRoles lists the roles user is a member of, and records the listing.
func (p *Policy) UserRoles(ctx context.Context, key policy.KeyHash, user string) ([]string, error) {
	list, err := p.core.UserRoles(ctx, key, user)
	return listed(ctx, p.log, key, Question{Action: audit.ListMemberships, User: user}, list, err)
}

// Members lists the members of role, and records the listing.
func (p *Policy) Members(ctx context.Context, key policy.KeyHash, role string) ([]string, error) {
	list, err := p.core.Members(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListMemberships, Resource: role}, list, err)
}

// ListRoles lists the tenant's roles, and records the listing.
func (p *Policy) ListRoles(ctx context.Context, key policy.KeyHash) ([]policy.Role, error) {
	list, err := p.core.ListRoles(ctx, key)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: "all"}, list, err)
}

// WhichRolesCan lists the roles that hold perm, and records the listing.
func (p *Policy) WhichRolesCan(ctx context.Context, key policy.KeyHash, perm string) ([]string, error) {
	list, err := p.core.WhichRolesCan(ctx, key, perm)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: perm}, list, err)
}

// WhichUsersCan lists the members of every role that holds perm, and
// records the listing.
func (p *Policy) WhichUsersCan(ctx context.Context, key policy.KeyHash, perm string) ([]policy.Membership, error) {
	list, err := p.core.WhichUsersCan(ctx, key, perm)
	return listed(ctx, p.log, key, Question{Action: audit.ListMemberships, Resource: perm}, list, err)
}

// RoleParents lists the roles role inherits from directly, and records the
// listing.
func (p *Policy) RoleParents(ctx context.Context, key policy.KeyHash, role string) ([]string, error) {
	list, err := p.core.RoleParents(ctx, key, role)
	return listed(ctx, p.log, key, Question{Action: audit.ListRoles, Resource: "parents:" + role}, list, err)
}

// checked records an answered check and passes the answer on.
func checked(ctx context.Context, l *Log, key policy.KeyHash, q Question, has bool, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	l.Checked(ctx, key, q, has)
	return has, nil
}

// listed records an answered listing and passes the answer on.
func listed[T any](ctx context.Context, l *Log, key policy.KeyHash, q Question, v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	l.Listed(ctx, key, q)
	return v, nil
}
