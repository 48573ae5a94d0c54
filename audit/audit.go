// Package audit defines the vocabulary of the audit trail: what is recorded
// for each change and check, and the request facts that travel with it.
//
// The policy core calls a Recorder inside the database transaction of every
// change, so that a change and its record commit together or not at all.
package audit

import (
	"context"
	"time"
)

// Action names what happened, in the vocabulary of the original service.
type Action string

// The actions of the compatible API.
const (
	CreateRole       Action = "CREATE_ROLE"
	DeleteRole       Action = "DELETE_ROLE"
	AddPermission    Action = "ADD_PERMISSION"
	RemovePermission Action = "REMOVE_PERMISSION"
	AddMembership    Action = "ADD_MEMBERSHIP"
	RemoveMembership Action = "REMOVE_MEMBERSHIP"
	CheckPermission  Action = "CHECK_PERMISSION"
	CheckMembership  Action = "CHECK_MEMBERSHIP"
	ListRoles        Action = "LIST_ROLES"
	ListPermissions  Action = "LIST_PERMISSIONS"
	ListMemberships  Action = "LIST_MEMBERSHIPS"
	UserPermissions  Action = "USER_PERMISSIONS"
	AddRoleParent    Action = "ADD_ROLE_PARENT"
	RemoveRoleParent Action = "REMOVE_ROLE_PARENT"
	GetAudit         Action = "GET_AUDIT"
	RotateKey        Action = "ROTATE_KEY"
	IssueToken       Action = "ISSUE_TOKEN"
	RevokeKey        Action = "REVOKE_KEY"
	// ExternalChange records a change of a tenant's rules made by another
	// program writing the database (a Casbin tool), as the database's rule
	// triggers noted it: how many rules were added and removed, and the
	// policy versions it produced.
	ExternalChange Action = "EXTERNAL_CHANGE"
	// ImportPolicy is a policy file imported into a tenant (one entry for
	// the whole import).
	ImportPolicy Action = "IMPORT_POLICY"
	// ResetChain is the first record of a chain an operator started anew
	// with `auth-server audit reset` after the previous one went missing.
	ResetChain Action = "AUDIT_RESET"
	// UpdateRole is a change of a role's description.
	UpdateRole Action = "UPDATE_ROLE"
	// DeleteUser is a user removed from every role at once (one entry for
	// all the memberships removed).
	DeleteUser Action = "DELETE_USER"
	// ListWorkflows is a read of the workflow registry or of a
	// workflow's runs (recorded when refused).
	ListWorkflows Action = "LIST_WORKFLOWS"
	// PutWorkflow registers a workflow or replaces its definition.
	PutWorkflow Action = "PUT_WORKFLOW"
	// DeleteWorkflow removes a workflow and its runs.
	DeleteWorkflow Action = "DELETE_WORKFLOW"
	// RotateWorkflowSecret gives a workflow a new webhook signing secret.
	RotateWorkflowSecret Action = "ROTATE_WORKFLOW_SECRET"
	// RunWorkflow is a run of a workflow asked for through the API (the
	// users it found are recorded as a listing, LIST_MEMBERSHIPS).
	RunWorkflow Action = "RUN_WORKFLOW"
	// ExpireMembership is a time-bound membership removed by the expiry
	// sweep once it ended.
	ExpireMembership Action = "EXPIRE_MEMBERSHIP"
	// ExpirePermission is a time-bound grant removed by the expiry sweep
	// once it ended.
	ExpirePermission Action = "EXPIRE_PERMISSION"
)

// Actions lists every action, for validating query filters.
var Actions = []Action{CreateRole, DeleteRole, AddPermission, RemovePermission, AddMembership,
	RemoveMembership, CheckPermission, CheckMembership, ListRoles, ListPermissions, ListMemberships,
	UserPermissions, AddRoleParent, RemoveRoleParent, GetAudit, RotateKey, IssueToken, RevokeKey, ExternalChange, ImportPolicy, ResetChain,
	UpdateRole, DeleteUser, ListWorkflows, PutWorkflow, DeleteWorkflow, RotateWorkflowSecret, RunWorkflow,
	ExpireMembership, ExpirePermission}

// Entry is one audit record as the policy core describes it. Tenant and user
// are the raw values; a Recorder fingerprints them before they are stored.
type Entry struct {
	Time time.Time
	// Tenant identifies the tenant (its key hash); the trail stores only a
	// keyed fingerprint of it.
	Tenant string
	// User is the user the entry is about, if any; the trail stores only a
	// keyed fingerprint, and prefixes the resource with it.
	User     string
	Action   Action
	Resource string
	// Success is whether a change took effect (a write answered with
	// {"result": false} is not a success) or whether a check was answered.
	Success bool
	Details map[string]any
	// Version is the tenant's policy version after the change, as read in
	// the change's transaction (0 for entries that do not bump it). A
	// version above 1 proves the tenant changed before, so its audit
	// chain must exist already.
	Version int64
}

// Recorder writes audit entries. RecordChange is called inside the change's
// transaction (the transaction travels in ctx); an error rolls the change back.
type Recorder interface {
	RecordChange(ctx context.Context, e Entry) error
}

// Nop is a Recorder that records nothing.
type Nop struct{}

// RecordChange implements Recorder.
func (Nop) RecordChange(context.Context, Entry) error { return nil }

// Request is what the HTTP layer knows about the request behind an entry.
type Request struct {
	ID        string
	IP        string
	UserAgent string
}

type requestKey struct{}

// WithRequest returns a context carrying r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request facts carried by ctx, if any.
func RequestFrom(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}
