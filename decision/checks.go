package decision

import (
	"context"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Checks are the policy core's batch and explained permission checks.
type Checks interface {
	CheckBatch(ctx context.Context, key policy.KeyHash, checks []policy.Check) ([]bool, error)
	Explain(ctx context.Context, key policy.KeyHash, user, perm string) (policy.Explanation, error)
}

// CheckBatch answers every check of the batch, in order, and records each
// pair's decision as its own check (CHECK_PERMISSION), as HasPermission
// does. A refused batch (an invalid name) records nothing.
func (p *Policy) CheckBatch(ctx context.Context, key policy.KeyHash, checks []policy.Check) ([]bool, error) {
	out, err := p.core.CheckBatch(ctx, key, checks)
	if err != nil {
		return nil, err
	}
	for i, c := range checks {
		p.log.Checked(ctx, key, Question{Action: audit.CheckPermission, User: c.User, Resource: c.Permission}, out[i])
	}
	return out, nil
}

// Explain decides whether user holds perm and why, and records the check
// as HasPermission does.
func (p *Policy) Explain(ctx context.Context, key policy.KeyHash, user, perm string) (policy.Explanation, error) {
	e, err := p.core.Explain(ctx, key, user, perm)
	if err != nil {
		return policy.Explanation{}, err
	}
	p.log.Checked(ctx, key, Question{Action: audit.CheckPermission, User: user, Resource: perm}, e.Allowed)
	return e, nil
}

// PolicyFiles are the policy core's export and import of a tenant's policy
// as a Casbin policy file. An import is a change that the core records
// itself (IMPORT_POLICY); an export is not recorded, as the command line's
// is not.
type PolicyFiles interface {
	ExportPolicy(ctx context.Context, key policy.KeyHash) (policy.PolicyFile, error)
	ImportPolicy(ctx context.Context, key policy.KeyHash, f policy.PolicyFile, opts policy.ImportOptions) (policy.ImportResult, error)
}

// ExportPolicy returns the tenant's policy file.
func (p *Policy) ExportPolicy(ctx context.Context, key policy.KeyHash) (policy.PolicyFile, error) {
	return p.core.ExportPolicy(ctx, key)
}

// ImportPolicy applies a policy file to the tenant (recorded by the core).
func (p *Policy) ImportPolicy(ctx context.Context, key policy.KeyHash, f policy.PolicyFile, opts policy.ImportOptions) (policy.ImportResult, error) {
	return p.core.ImportPolicy(ctx, key, f, opts)
}

// Feed is the policy core's change feed. Reading it is not recorded: it
// states changes, each recorded when it was made, and answers no question
// about a user.
type Feed interface {
	Changes(ctx context.Context, key policy.KeyHash, from policy.Position, limit int, wait time.Duration) (policy.ChangePage, error)
}

// Changes returns a page of the tenant's change feed.
func (p *Policy) Changes(ctx context.Context, key policy.KeyHash, from policy.Position, limit int, wait time.Duration) (policy.ChangePage, error) {
	return p.core.Changes(ctx, key, from, limit, wait)
}
