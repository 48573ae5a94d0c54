package policydb

import (
	"context"
	"testing"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// The rule triggers: a change of the service bumps the tenant's version
// once (its own bump) and is not noted as external; every rule row another
// program writes bumps the version of the tenant of its domain and is
// counted, once, for the first claim; rows of other domains, or of no
// tenant, are ignored.
func TestExternalRuleChanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := New(db)
		ctx := context.Background()
		id, dom := tenantID(t, s, 1)
		other, _ := tenantID(t, s, 2)
		change(t, s, func(ctx context.Context, tx policy.Tx) error {
			if _, err := tx.BumpVersion(ctx, id); err != nil {
				return err
			}
			return tx.AddRules(ctx, "p", [][]string{{"role:admin", dom, "read"}, {"role:admin", dom, "write"}})
		})
		version := func(id int64) int64 {
			v, err := s.Versions(ctx, []int64{id})
			if err != nil {
				t.Fatal(err)
			}
			return v[id]
		}
		claim := func() []policy.ExternalChange {
			var got []policy.ExternalChange
			if err := s.ClaimExternalChanges(ctx, func(_ context.Context, cs []policy.ExternalChange) error {
				got = cs
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		if v := version(id); v != 1 {
			t.Fatalf("version after one change of the service = %d, want 1", v)
		}
		if cs := claim(); len(cs) != 0 {
			t.Fatalf("a change of the service noted as external: %+v", cs)
		}

		insertRule(t, db, "p", "role:admin", dom, "delete")
		insertRule(t, db, "g", "alice", "role:admin", dom)
		insertRule(t, db, "p", "role:admin", "999999", "x") // no such tenant
		insertRule(t, db, "p", "role:admin", dom+"x", "x")  // not a tenant domain
		exec(t, db, "UPDATE casbin_rule SET v2 = 'remove' WHERE v2 = 'write'")
		exec(t, db, "DELETE FROM casbin_rule WHERE v2 = 'read'")
		if v := version(id); v != 1+5 {
			t.Errorf("version after 5 external row changes = %d, want 6", v)
		}
		if v := version(other); v != 0 {
			t.Errorf("version of another tenant = %d, want 0", v)
		}
		want := policy.ExternalChange{TenantID: id, Tenant: tenantKey(1), Added: 3, Removed: 2, FirstVersion: 2, Version: 6}
		if cs := claim(); len(cs) != 1 || cs[0] != want {
			t.Errorf("claimed %+v, want [%+v]", cs, want)
		}
		if cs := claim(); len(cs) != 0 {
			t.Errorf("claimed again: %+v, want nothing", cs)
		}
		// A failed claim leaves the changes for the next one.
		insertRule(t, db, "p", "role:admin", dom, "again")
		if err := s.ClaimExternalChanges(ctx, func(context.Context, []policy.ExternalChange) error {
			return context.Canceled
		}); err == nil {
			t.Fatal("ClaimExternalChanges did not return fn's error")
		}
		if cs := claim(); len(cs) != 1 || cs[0].Added != 1 {
			t.Errorf("claim after a failed one = %+v, want the change kept", cs)
		}
	})
}
