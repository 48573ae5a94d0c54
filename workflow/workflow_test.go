package workflow_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

// core answers as the policy core does: it validates names, then alice
// may run "deploy".
type core struct{}

func (core) HasPermission(_ context.Context, _ policy.KeyHash, user, perm string) (bool, error) {
	if !policy.ValidUser(user) {
		return false, &policy.NameError{Kind: "user", Value: user}
	}
	if !policy.ValidPermission(perm) {
		return false, &policy.NameError{Kind: "permission", Value: perm}
	}
	return user == "alice" && perm == "deploy", nil
}

func (core) WhichUsersCan(_ context.Context, _ policy.KeyHash, perm string) ([]policy.Membership, error) {
	if !policy.ValidPermission(perm) {
		return nil, &policy.NameError{Kind: "permission", Value: perm}
	}
	if perm != "deploy" {
		return nil, nil
	}
	return []policy.Membership{{User: "alice", Role: "ops"}}, nil
}

type sink struct{ entries []audit.Entry }

func (s *sink) RecordDecision(_ context.Context, e audit.Entry, _ bool) {
	s.entries = append(s.entries, e)
}

const tenant policy.KeyHash = "tenant-hash"

// A workflow question is recorded once, as a question about the workflow,
// whoever asks it.
func TestQuestionsAreRecorded(t *testing.T) {
	for _, tc := range []struct {
		name string
		ask  func(s *workflow.Service) (any, error)
		want any
		rec  audit.Entry
	}{
		{"can run", func(s *workflow.Service) (any, error) {
			return first(s.CanRun(context.Background(), tenant, "alice", "deploy"))
		}, true, audit.Entry{User: "alice", Action: audit.CheckPermission, Resource: "workflow:deploy",
			Details: map[string]any{"status_code": 200, "allowed": true}}},
		{"cannot run", func(s *workflow.Service) (any, error) {
			return first(s.CanRun(context.Background(), tenant, "bob", "deploy"))
		}, false, audit.Entry{User: "bob", Action: audit.CheckPermission, Resource: "workflow:deploy",
			Details: map[string]any{"status_code": 200, "allowed": false}}},
		{"users", func(s *workflow.Service) (any, error) {
			return first(s.UsersFor(context.Background(), tenant, "deploy"))
		}, []policy.Membership{{User: "alice", Role: "ops"}}, audit.Entry{Action: audit.ListMemberships,
			Resource: "workflow:deploy", Details: map[string]any{"status_code": 200}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sink{}
			got, err := tc.ask(workflow.New(core{}, decision.NewLog(rec)))
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("answer %v, %v; want %v, nil", got, err, tc.want)
			}
			if len(rec.entries) != 1 {
				t.Fatalf("%d records, want 1: %+v", len(rec.entries), rec.entries)
			}
			e := rec.entries[0]
			want := tc.rec
			want.Time, want.Tenant, want.Success = e.Time, string(tenant), true
			if !reflect.DeepEqual(e, want) {
				t.Errorf("recorded\n%+v, want\n%+v", e, want)
			}
		})
	}
}

// An invalid workflow name is the core's invalid permission name, called a
// workflow name; an invalid user name stays one. Neither is recorded.
func TestInvalidNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ask  func(s *workflow.Service) error
		want policy.NameError
	}{
		// can_run checks the workflow as a role name, as the original did.
		{"can run: workflow", func(s *workflow.Service) error {
			_, err := s.CanRun(context.Background(), tenant, "alice", "de ploy")
			return err
		}, policy.NameError{Kind: "role", Value: "de ploy"}},
		{"can run: workflow longer than a role", func(s *workflow.Service) error {
			_, err := s.CanRun(context.Background(), tenant, "alice", strings.Repeat("w", 65))
			return err
		}, policy.NameError{Kind: "role", Value: strings.Repeat("w", 65)}},
		{"can run: user", func(s *workflow.Service) error {
			_, err := s.CanRun(context.Background(), tenant, "al ice", "deploy")
			return err
		}, policy.NameError{Kind: "user", Value: "al ice"}},
		{"users: workflow", func(s *workflow.Service) error {
			_, err := s.UsersFor(context.Background(), tenant, "de/ploy")
			return err
		}, policy.NameError{Kind: "workflow", Value: "de/ploy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sink{}
			err := tc.ask(workflow.New(core{}, decision.NewLog(rec)))
			var ne *policy.NameError
			if !errors.As(err, &ne) || *ne != tc.want {
				t.Errorf("error %v, want %+v", err, tc.want)
			}
			if !errors.Is(err, policy.ErrInvalidName) {
				t.Errorf("errors.Is(%v, ErrInvalidName) is false", err)
			}
			if len(rec.entries) != 0 {
				t.Errorf("recorded %+v, want nothing", rec.entries)
			}
		})
	}
}

func first(v any, err error) (any, error) { return v, err }
