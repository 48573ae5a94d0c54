// Package workflow answers workflow questions: a workflow name is a
// permission name, so "who may run workflow W" is "who holds permission W".
package workflow

import (
	"context"

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
}

// New returns a Service over the policy core.
func New(p checker) *Service { return &Service{policy: p} }

// UsersFor lists, for every role that may run the workflow, its members.
func (s *Service) UsersFor(ctx context.Context, key policy.KeyHash, workflow string) ([]policy.Membership, error) {
	return s.policy.WhichUsersCan(ctx, key, workflow)
}

// CanRun reports whether user may run the workflow.
func (s *Service) CanRun(ctx context.Context, key policy.KeyHash, user, workflow string) (bool, error) {
	return s.policy.HasPermission(ctx, key, user, workflow)
}
