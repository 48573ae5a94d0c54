package api

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// namePolicy refuses every name as the policy core does, with err; a nil
// err answers every check true.
type namePolicy struct {
	Authorizer // nil: the methods not below are not used
	err        error
}

func (p namePolicy) check() (bool, error) { return p.err == nil, p.err }

func (p namePolicy) IsMember(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}
func (p namePolicy) AddMember(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}
func (p namePolicy) RoleHasPermission(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}
func (p namePolicy) Grant(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}
func (p namePolicy) HasPermission(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}
func (p namePolicy) Members(context.Context, policy.KeyHash, string) ([]string, error) {
	_, err := p.check()
	return nil, err
}
func (p namePolicy) AddRoleParent(context.Context, policy.KeyHash, string, string) (bool, error) {
	return p.check()
}

type nameWorkflows struct{ err error }

func (w nameWorkflows) UsersFor(context.Context, policy.KeyHash, string) ([]policy.Membership, error) {
	return nil, w.err
}
func (w nameWorkflows) CanRun(context.Context, policy.KeyHash, string, string) (bool, error) {
	return false, w.err
}

// The core's invalid-name error is answered 400 in the words of the route
// (README "Errors"): every message states the rule of the name's kind, and
// the /permission routes call a role a group.
func TestInvalidNameMessages(t *testing.T) {
	const (
		userRule     = ". User names must be 1-64 characters long and contain only alphanumeric, underscore, hyphen, or email characters (@ . +)."
		roleRule     = ". Role names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
		groupRule    = ". Group (role) names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
		permRule     = ". Permission names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
		workflowRule = ". Workflow names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
	)
	for _, tc := range []struct {
		method, path string
		kind, value  string
		want         string
		rule         string // the served model's rule (a pattern model)
	}{
		{"GET", "/api/membership/x/y", "user", "a b", "Invalid user name: a b" + userRule, ""},
		{"POST", "/api/v1/membership/x/y", "role", "a.b", "Invalid role name: a.b" + roleRule, ""},
		{"GET", "/api/permission/x/y", "role", "a.b", "Invalid group name: a.b" + groupRule, ""},
		{"POST", "/api/permission/x/y", "permission", "a:b", "Invalid permission name: a:b" + permRule, ""},
		{"GET", "/api/has_permission/x/y", "user", "a b", "Invalid user name: a b" + userRule, ""},
		{"GET", "/api/has_permission/x/y", "permission", "a*", "Invalid permission name: a*" + permRule, ""},
		{"GET", "/api/members/x", "role", "a.b", "Invalid role name: a.b" + roleRule, ""},
		{"POST", "/api/role/x/parents/y", "role", "a.b", "Invalid role name: a.b" + roleRule, ""},
		{"GET", "/api/workflow/user/x/can_run/y", "user", "a b", "Invalid user name: a b" + userRule, ""},
		{"GET", "/api/workflow/user/x/can_run/y", "workflow", "a.b", "Invalid workflow name: a.b" + workflowRule, ""},
		{"GET", "/api/workflow/users/y", "workflow", "a.b", "Invalid workflow name: a.b" + workflowRule, ""},
		{"GET", "/api/audit?user=a%20b", "", "", "Invalid user name: a b" + userRule, ""},
		// A pattern model states its own rule, on every route.
		{"GET", "/api/has_permission/x/y", "permission", "a b", "Invalid permission name: a b. Pattern rule.", "Pattern rule"},
		{"POST", "/api/permission/x/y", "permission", "a b", "Invalid permission name: a b. Pattern rule.", "Pattern rule"},
		{"GET", "/api/workflow/user/x/can_run/y", "workflow", "a b", "Invalid workflow name: a b. Pattern rule.", "Pattern rule"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.kind, func(t *testing.T) {
			ne := &policy.NameError{Kind: tc.kind, Value: tc.value, Rule: tc.rule}
			events := &eventLog{}
			s := opsServer(t, Config{}, Deps{Policy: namePolicy{err: ne}, Workflows: nameWorkflows{err: ne}, Audit: events})
			rec := opsDo(s, tc.method, tc.path, "Authorization: Bearer "+opsKey)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != 400 || body.Message != tc.want {
				t.Errorf("%d %q, want 400 %q", rec.Code, body.Message, tc.want)
			}
			if n := len(events.events); n != 1 {
				t.Errorf("%d audit events, want 1 (the refused request)", n)
			}
		})
	}
}

// An answered check is recorded by the decision layer, not by the HTTP
// layer: through the API it is recorded exactly once.
func TestAnsweredCheckIsNotRecordedByTheAPI(t *testing.T) {
	events := &eventLog{}
	s := opsServer(t, Config{}, Deps{Policy: namePolicy{}, Workflows: nameWorkflows{}, Audit: events})
	for _, path := range []string{"/api/has_permission/alice/read", "/api/membership/alice/admin",
		"/api/permission/admin/read", "/api/members/admin", "/api/workflow/users/deploy", "/api/workflow/user/alice/can_run/deploy"} {
		if rec := opsDo(s, "GET", path, "Authorization: Bearer "+opsKey); rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	if len(events.events) != 0 {
		t.Errorf("the API recorded %d events for answered checks, want 0: %+v", len(events.events), events.events)
	}
	// Its own events it still records: a read of the trail.
	events.Auditor = searchOnly{}
	if rec := opsDo(s, "GET", "/api/audit", "Authorization: Bearer "+opsKey); rec.Code != 200 {
		t.Fatalf("GET /api/audit: %d %s", rec.Code, rec.Body)
	}
	if len(events.events) != 1 || events.events[0].Action != audit.GetAudit {
		t.Errorf("events %+v, want one GET_AUDIT", events.events)
	}
}

// searchOnly is a trail with no records.
type searchOnly struct{ Auditor }

func (searchOnly) Search(context.Context, string, audit.Query) ([]audit.Record, int64, error) {
	return nil, 0, nil
}
