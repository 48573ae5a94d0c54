package decision_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

// fakeCore answers every query with allowed (checks) or one item
// (listings), or fails every query with err.
type fakeCore struct {
	decision.Commands    // nil: changes are not used
	decision.PolicyFiles // nil: not used
	allowed              bool
	err                  error
}

func (f fakeCore) check() (bool, error) { return f.allowed && f.err == nil, f.err }

func (f fakeCore) list() ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []string{"x"}, nil
}

func (f fakeCore) RoleHasPermission(context.Context, policy.KeyHash, string, string) (bool, error) {
	return f.check()
}
func (f fakeCore) IsMember(context.Context, policy.KeyHash, string, string) (bool, error) {
	return f.check()
}
func (f fakeCore) HasPermission(context.Context, policy.KeyHash, string, string) (bool, error) {
	return f.check()
}
func (f fakeCore) UserPermissions(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) RolePermissions(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) UserRoles(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) Members(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) ListRoles(context.Context, policy.KeyHash) ([]policy.Role, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.Role{{Name: "x"}}, nil
}
func (f fakeCore) WhichRolesCan(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) WhichUsersCan(context.Context, policy.KeyHash, string) ([]policy.Membership, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []policy.Membership{{User: "u", Role: "x"}}, nil
}
func (f fakeCore) RoleParents(context.Context, policy.KeyHash, string) ([]string, error) {
	return f.list()
}
func (f fakeCore) CheckBatch(_ context.Context, _ policy.KeyHash, checks []policy.Check) ([]bool, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]bool, len(checks))
	for i := range out {
		// Alternate so that each record's decision is its own pair's.
		out[i] = f.allowed != (i%2 == 1)
	}
	return out, nil
}
func (f fakeCore) Explain(context.Context, policy.KeyHash, string, string) (policy.Explanation, error) {
	ok, err := f.check()
	return policy.Explanation{Allowed: ok}, err
}

// sink keeps what it is given, with the context's request facts.
type sink struct {
	entries  []audit.Entry
	allowed  []bool
	requests []audit.Request
	live     []bool // whether the context could still be cancelled
}

func (s *sink) RecordDecision(ctx context.Context, e audit.Entry, allowed bool) {
	req, _ := audit.RequestFrom(ctx)
	s.entries = append(s.entries, e)
	s.allowed = append(s.allowed, allowed)
	s.requests = append(s.requests, req)
	s.live = append(s.live, ctx.Done() != nil)
}

const tenant policy.KeyHash = "tenant-hash"

// query is one query of the layer and the record it makes: the action,
// user, resource and details the HTTP middleware recorded for the route
// that asks it.
type query struct {
	name     string
	ask      func(ctx context.Context, p *decision.Policy) (answer any, err error)
	action   audit.Action
	user     string
	resource string
	check    bool // a check: details carry "allowed"
}

func queries() []query {
	first := func(v any, err error) (any, error) { return v, err }
	return append([]query{
		{"RoleHasPermission", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.RoleHasPermission(ctx, tenant, "editor", "read"))
		}, audit.CheckPermission, "", "editor:read", true},
		{"IsMember", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.IsMember(ctx, tenant, "alice", "editor"))
		}, audit.CheckMembership, "alice", "editor", true},
		{"HasPermission", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.HasPermission(ctx, tenant, "alice", "read"))
		}, audit.CheckPermission, "alice", "read", true},
		{"UserPermissions", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.UserPermissions(ctx, tenant, "alice"))
		}, audit.UserPermissions, "alice", "", false},
		{"RolePermissions", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.RolePermissions(ctx, tenant, "editor"))
		}, audit.ListPermissions, "", "editor", false},
		{"UserRoles", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.UserRoles(ctx, tenant, "alice"))
		}, audit.ListMemberships, "alice", "", false},
		{"Members", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.Members(ctx, tenant, "editor"))
		}, audit.ListMemberships, "", "editor", false},
		{"ListRoles", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.ListRoles(ctx, tenant))
		}, audit.ListRoles, "", "all", false},
		{"WhichRolesCan", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.WhichRolesCan(ctx, tenant, "read"))
		}, audit.ListRoles, "", "read", false},
		{"WhichUsersCan", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.WhichUsersCan(ctx, tenant, "read"))
		}, audit.ListMemberships, "", "read", false},
		{"RoleParents", func(ctx context.Context, p *decision.Policy) (any, error) {
			return first(p.RoleParents(ctx, tenant, "editor"))
		}, audit.ListRoles, "", "parents:editor", false},
		{"Explain", func(ctx context.Context, p *decision.Policy) (any, error) {
			e, err := p.Explain(ctx, tenant, "alice", "read")
			return e.Allowed, err
		}, audit.CheckPermission, "alice", "read", true},
		{"CheckBatch of one", func(ctx context.Context, p *decision.Policy) (any, error) {
			out, err := p.CheckBatch(ctx, tenant, []policy.Check{{User: "alice", Permission: "read"}})
			if err != nil {
				return nil, err
			}
			return out[0], nil
		}, audit.CheckPermission, "alice", "read", true},
	}, resourceQueries()...)
}

// A batch check records one CHECK_PERMISSION per pair, in order, each with
// its own user, permission and decision.
func TestBatchRecordsEveryPair(t *testing.T) {
	s := &sink{}
	p := decision.New(fakeCore{allowed: true}, decision.NewLog(s))
	checks := []policy.Check{{User: "alice", Permission: "read"}, {User: "bob", Permission: "write"}, {User: "carol", Permission: "read"}}
	got, err := p.CheckBatch(context.Background(), tenant, checks)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.entries) != len(checks) {
		t.Fatalf("%d records, want %d", len(s.entries), len(checks))
	}
	for i, c := range checks {
		e := s.entries[i]
		if e.Action != audit.CheckPermission || e.User != c.User || e.Resource != c.Permission ||
			e.Details["allowed"] != got[i] || s.allowed[i] != got[i] {
			t.Errorf("record %d = %+v (allowed %v), want CHECK_PERMISSION %s %s allowed=%v", i, e, s.allowed[i], c.User, c.Permission, got[i])
		}
	}
}

// Every answered check and listing is recorded once, as the HTTP
// middleware recorded it: action, user, resource, details, the decision,
// and the request facts of the context; the answer passes unchanged.
func TestAnswersAreRecorded(t *testing.T) {
	req := audit.Request{ID: "req-1", IP: "192.0.2.7", UserAgent: "batch/1.0"}
	for _, q := range queries() {
		for _, allowed := range []bool{true, false} {
			t.Run(q.name, func(t *testing.T) {
				s := &sink{}
				p := decision.New(fakeCore{allowed: allowed}, decision.NewLog(s))
				ctx, cancel := context.WithCancel(audit.WithRequest(context.Background(), req))
				defer cancel()
				got, err := q.ask(ctx, p)
				if err != nil {
					t.Fatalf("%s: %v", q.name, err)
				}
				if len(s.entries) != 1 {
					t.Fatalf("%s: %d records, want 1", q.name, len(s.entries))
				}
				e := s.entries[0]
				wantDetails := map[string]any{"status_code": 200}
				wantAllowed := true
				if q.check {
					wantDetails["allowed"] = allowed
					wantAllowed = allowed
					if got != allowed {
						t.Errorf("%s = %v, want %v", q.name, got, allowed)
					}
				}
				want := audit.Entry{Time: e.Time, Tenant: string(tenant), User: q.user, Action: q.action,
					Resource: q.resource, Success: true, Details: wantDetails}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("%s recorded\n%+v, want\n%+v", q.name, e, want)
				}
				if e.Time.IsZero() || e.Time.Location() != time.UTC {
					t.Errorf("%s: record time %v, want a UTC time", q.name, e.Time)
				}
				if s.allowed[0] != wantAllowed {
					t.Errorf("%s: recorded as allowed=%v, want %v", q.name, s.allowed[0], wantAllowed)
				}
				if s.requests[0] != req {
					t.Errorf("%s: request facts %+v, want %+v", q.name, s.requests[0], req)
				}
				if s.live[0] {
					t.Errorf("%s: recorded with a context the caller can cancel: the record of a given answer could be dropped", q.name)
				}
			})
		}
	}
}

// A question the core refuses is not recorded (its caller records the
// failure) and its error passes unchanged.
func TestRefusalsAreNotRecorded(t *testing.T) {
	for _, cause := range []error{&policy.NameError{Kind: "user", Value: "a b"}, policy.ErrUnavailable} {
		for _, q := range queries() {
			s := &sink{}
			p := decision.New(fakeCore{err: cause}, decision.NewLog(s))
			if _, err := q.ask(context.Background(), p); !errors.Is(err, cause) {
				t.Errorf("%s: error %v, want %v", q.name, err, cause)
			}
			if len(s.entries) != 0 {
				t.Errorf("%s failing with %v: recorded %+v, want nothing", q.name, cause, s.entries)
			}
		}
	}
}

// A Log without a sink records nothing and does not fail.
func TestLogWithoutSink(t *testing.T) {
	p := decision.New(fakeCore{allowed: true}, decision.NewLog(nil))
	if ok, err := p.HasPermission(context.Background(), tenant, "alice", "read"); err != nil || !ok {
		t.Errorf("HasPermission = %v, %v; want true, nil", ok, err)
	}
}
