// Package workflow answers workflow questions: a workflow name is a
// permission name, so "who may run workflow W" is "who holds permission W".
// Every answer is recorded in the audit trail as a question about the
// workflow (resource "workflow:W").
package workflow

import (
	"context"
	"errors"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

// checker is what workflows need from the policy core.
type checker interface {
	HasPermission(ctx context.Context, key policy.KeyHash, user, perm string) (bool, error)
	WhichUsersCan(ctx context.Context, key policy.KeyHash, perm string) ([]policy.Membership, error)
}

// Service answers workflow questions for a tenant.
type Service struct {
	policy checker
	log    *decision.Log
}

// New returns a Service over the policy core p, recording its answers in
// log. p is the core itself, not a decision.Policy: a workflow question is
// recorded once, as a question about the workflow.
func New(p checker, log *decision.Log) *Service { return &Service{policy: p, log: log} }

// UsersFor lists, for every role that may run the workflow, its members.
func (s *Service) UsersFor(ctx context.Context, key policy.KeyHash, workflow string) ([]policy.Membership, error) {
	list, err := s.policy.WhichUsersCan(ctx, key, workflow)
	if err != nil {
		return nil, named(err)
	}
	s.log.Listed(ctx, key, decision.Question{Action: audit.ListMemberships, Resource: "workflow:" + workflow})
	return list, nil
}

// CanRun reports whether user may run the workflow.
func (s *Service) CanRun(ctx context.Context, key policy.KeyHash, user, workflow string) (bool, error) {
	has, err := s.policy.HasPermission(ctx, key, user, workflow)
	if err != nil {
		return false, named(err)
	}
	s.log.Checked(ctx, key, decision.Question{Action: audit.CheckPermission, User: user, Resource: "workflow:" + workflow}, has)
	return has, nil
}

// named calls an invalid permission name what it is here: a workflow name.
func named(err error) error {
	var ne *policy.NameError
	if errors.As(err, &ne) && ne.Kind == "permission" {
		return &policy.NameError{Kind: "workflow", Value: ne.Value, Rule: ne.Rule}
	}
	return err
}
