package client_test

import (
	"context"

	"github.com/ourway/auth/client"
)

// call is one method of the client with fixed arguments.
type call struct {
	name string
	post bool // sent as POST, so never retried
	fn   func(ctx context.Context, c *client.Client) (any, error)
}

func value[T any](v T, err error) (any, error) { return v, err }

// calls is every method of the client.
var calls = []call{
	{"Ping", false, func(ctx context.Context, c *client.Client) (any, error) { return nil, c.Ping(ctx) }},
	{"Health", false, func(ctx context.Context, c *client.Client) (any, error) { return nil, c.Health(ctx) }},
	{"Ready", false, func(ctx context.Context, c *client.Client) (any, error) { return nil, c.Ready(ctx) }},
	{"CreateRole", true, func(ctx context.Context, c *client.Client) (any, error) { return value(c.CreateRole(ctx, "admin")) }},
	{"DeleteRole", false, func(ctx context.Context, c *client.Client) (any, error) { return value(c.DeleteRole(ctx, "admin")) }},
	{"ListRoles", false, func(ctx context.Context, c *client.Client) (any, error) { return value(c.ListRoles(ctx)) }},
	{"AddPermission", true, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.AddPermission(ctx, "admin", "read"))
	}},
	{"RemovePermission", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RemovePermission(ctx, "admin", "read"))
	}},
	{"RoleHasPermission", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RoleHasPermission(ctx, "admin", "read"))
	}},
	{"AddMembership", true, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.AddMembership(ctx, "john", "admin"))
	}},
	{"RemoveMembership", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RemoveMembership(ctx, "john", "admin"))
	}},
	{"HasMembership", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.HasMembership(ctx, "john", "admin"))
	}},
	{"HasPermission", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.HasPermission(ctx, "john", "read"))
	}},
	{"UserPermissions", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.UserPermissions(ctx, "john"))
	}},
	{"RolePermissions", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RolePermissions(ctx, "admin"))
	}},
	{"UserRoles", false, func(ctx context.Context, c *client.Client) (any, error) { return value(c.UserRoles(ctx, "john")) }},
	{"RoleMembers", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RoleMembers(ctx, "admin"))
	}},
	{"WhichRolesCan", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.WhichRolesCan(ctx, "read"))
	}},
	{"WhichUsersCan", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.WhichUsersCan(ctx, "read"))
	}},
	{"WorkflowUsers", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.WorkflowUsers(ctx, "read"))
	}},
	{"CanRunWorkflow", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.CanRunWorkflow(ctx, "john", "read"))
	}},
	{"RoleParents", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RoleParents(ctx, "admin"))
	}},
	{"AddRoleParent", true, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.AddRoleParent(ctx, "admin", "base"))
	}},
	{"RemoveRoleParent", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.RemoveRoleParent(ctx, "admin", "base"))
	}},
	{"Audit", false, func(ctx context.Context, c *client.Client) (any, error) {
		return value(c.Audit(ctx, client.AuditQuery{Limit: 10}))
	}},
}
