package policy

import (
	"context"

	"github.com/ourway/auth/audit"
)

// ExternalChange is a change of one tenant's rules made by another program
// writing the database (a Casbin tool), as the database noted it: every
// rule such a program adds or removes bumps the tenant's policy version,
// so that replicas reload the tenant, and is counted here.
type ExternalChange struct {
	TenantID int64
	// Tenant is the tenant's handle (the hash of its first client key),
	// which names its audit chain.
	Tenant KeyHash
	// Added and Removed count rule rows (an updated row counts as one of
	// each).
	Added, Removed int64
	// FirstVersion and Version are the first and the last policy versions
	// these changes produced.
	FirstVersion, Version int64
}

// ExternalChanges is the database's note of changes made by other
// programs. Claim runs fn, in one write transaction carried by the context
// it is given, with the changes not yet claimed, and removes them from the
// note when fn succeeds: of several replicas claiming at once, each change
// goes to exactly one. With nothing to claim, fn is not called. The claim
// also gives each tenant a new revision whose one change-feed item,
// ChangeExternal, tells a feed consumer to resynchronise from an export.
type ExternalChanges interface {
	ClaimExternalChanges(ctx context.Context, fn func(ctx context.Context, cs []ExternalChange) error) error
}

// RecordExternal records, in each tenant's audit trail, the changes made by
// other programs that no replica has recorded yet (audit action
// EXTERNAL_CHANGE, with the counts of rules added and removed), once each,
// and returns how many it recorded. Resync calls it when its version
// reader also notes external changes.
func (s *Service) RecordExternal(ctx context.Context, src ExternalChanges) (int, error) {
	n := 0
	err := src.ClaimExternalChanges(ctx, func(ctx context.Context, cs []ExternalChange) error {
		n = 0
		for _, c := range cs {
			if err := s.opts.Recorder.RecordChange(ctx, audit.Entry{
				Time:     s.now().UTC(),
				Tenant:   string(c.Tenant),
				Action:   audit.ExternalChange,
				Resource: "casbin_rule",
				Success:  true,
				Details: map[string]any{
					"source": "database", "added": c.Added, "removed": c.Removed,
					"from_version": c.FirstVersion, "to_version": c.Version,
				},
				Version: c.Version,
			}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.log.InfoContext(ctx, "changes made outside the service recorded in the audit trail", "tenants", n)
	}
	return n, nil
}
