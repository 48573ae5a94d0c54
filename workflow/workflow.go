// Package workflow answers workflow questions and runs workflows on
// schedules. A workflow is run by the holders of a permission: the one it
// was registered with, or, for a name no tenant registered, the permission
// of the same name, so "who may run workflow W" is "who holds W". Every
// answer is recorded in the audit trail as a question about the workflow
// (resource "workflow:W").
//
// A Scheduler re-evaluates, on each workflow's schedule, who may run it and
// what changed since its previous run; with the server's database several
// processes share the work and each scheduled run happens once. A Registry
// keeps the tenants' workflows and their runs, and a Dispatcher keeps the
// process's Scheduler in step with the Registry and sends the signed
// webhooks.
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

// permissions finds the permission a tenant registered a workflow with.
type permissions interface {
	GetWorkflow(ctx context.Context, tenant policy.KeyHash, name string) (Stored, bool, error)
}

// Service answers workflow questions for a tenant.
type Service struct {
	policy checker
	log    *decision.Log
	reg    permissions // nil: every workflow is its own permission
}

// New returns a Service over the policy core p, recording its answers in
// log. p is the core itself, not a decision.Policy: a workflow question is
// recorded once, as a question about the workflow.
func New(p checker, log *decision.Log) *Service { return &Service{policy: p, log: log} }

// WithRegistry returns a Service that answers for a registered workflow
// through the permission it was registered with.
func (s *Service) WithRegistry(store Store) *Service {
	return &Service{policy: s.policy, log: s.log, reg: store}
}

// permission is the permission that runs the tenant's workflow.
func (s *Service) permission(ctx context.Context, key policy.KeyHash, workflow string) (string, error) {
	if s.reg == nil || !policy.ValidRole(workflow) {
		// Registered names follow the role rule: another name is not
		// registered (and the core says what is wrong with it).
		return workflow, nil
	}
	w, found, err := s.reg.GetWorkflow(ctx, key, workflow)
	if err != nil {
		return "", err
	}
	if !found {
		return workflow, nil
	}
	return w.Permission, nil
}

// UsersFor lists, for every role that may run the workflow, its members.
func (s *Service) UsersFor(ctx context.Context, key policy.KeyHash, workflow string) ([]policy.Membership, error) {
	perm, err := s.permission(ctx, key, workflow)
	if err != nil {
		return nil, err
	}
	return s.usersHolding(ctx, key, workflow, perm)
}

// usersHolding lists the members of every role holding perm, recorded as
// the question who may run workflow.
func (s *Service) usersHolding(ctx context.Context, key policy.KeyHash, workflow, perm string) ([]policy.Membership, error) {
	list, err := s.policy.WhichUsersCan(ctx, key, perm)
	if err != nil {
		if perm == workflow {
			return nil, named(err)
		}
		return nil, err
	}
	s.log.Listed(ctx, key, decision.Question{Action: audit.ListMemberships, Resource: "workflow:" + workflow})
	return list, nil
}

// patternModel is a policy core that says whether its model compares
// permissions by pattern.
type patternModel interface{ PatternModel() bool }

// CanRun reports whether user may run the workflow. As the original route
// did, it checks the workflow name as a role name (the rule of registered
// workflows), except under a pattern model, whose permissions, and so
// workflow names, follow the model's own rule.
func (s *Service) CanRun(ctx context.Context, key policy.KeyHash, user, workflow string) (bool, error) {
	if pm, ok := s.policy.(patternModel); (!ok || !pm.PatternModel()) && !policy.ValidRole(workflow) {
		if !policy.ValidUser(user) {
			return false, &policy.NameError{Kind: "user", Value: user}
		}
		return false, &policy.NameError{Kind: "role", Value: workflow}
	}
	perm, err := s.permission(ctx, key, workflow)
	if err != nil {
		return false, err
	}
	has, err := s.policy.HasPermission(ctx, key, user, perm)
	if err != nil {
		if perm == workflow {
			return false, named(err)
		}
		return false, err
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
