package policydb

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// loaded is what one LoadTenant returned, in a comparable form.
type loaded struct {
	Found    bool
	Version  int64
	Roles    []string // name=description, in creation order
	Rules    []string // ptype:fields, in the order they came
	Expiries []policy.Expiry
}

func loadByKey(t *testing.T, s *Store, key policy.KeyHash) loaded {
	t.Helper()
	var out loaded
	snap, found, err := s.LoadTenant(context.Background(), key, func(ptype string, r []string) error {
		out.Rules = append(out.Rules, ptype+":"+strings.Join(r, ","))
		return nil
	})
	if err != nil {
		t.Fatalf("LoadTenant: %v", err)
	}
	out.Found, out.Version, out.Expiries = found, snap.Version, sortedEnds(snap.Expiries)
	for _, r := range snap.Roles {
		name := r.Name
		if r.Description != nil {
			name += "=" + *r.Description
		}
		out.Roles = append(out.Roles, name)
	}
	if found && snap.TenantID == 0 {
		t.Errorf("LoadTenant found a tenant of id 0")
	}
	return out
}

// TestLoadTenant: one statement, without a transaction, reads a tenant by
// its key hash: its version, its roles with their descriptions in creation
// order, its p and g rules (fields beyond the third included) in the order
// they were written, and the ends of its time-bound rules only when it has
// had any; a key no tenant has is reported as not found. With field
// encryption on, the same comes back in clear.
func TestLoadTenant(t *testing.T) {
	for _, enc := range []struct {
		name string
		keys []string
	}{{"clear", nil}, {"encrypted", []string{keyA}}} {
		t.Run(enc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				s := storeWith(t, db, enc.keys...)
				// Tenant 1: descriptions, a parent link, a rule of four
				// fields and two time-bound rules. Tenant 2: no time-bound
				// rule, but a stray end in the table (has_expiries unset).
				// Tenant 3: exists, empty.
				id1, dom1 := tenantID(t, s, 1)
				id2, dom2 := tenantID(t, s, 2)
				tenantID(t, s, 3)
				seedTenant(t, s, id1, []string{secretRole, "viewer", secretParent},
					[][2]string{{secretRole, secretPerm}, {"viewer", "docs:read"}},
					[][2]string{{secretUser, secretRole}, {"bob", "viewer"}},
					[][2]string{{secretRole, secretParent}})
				seedTenant(t, s, id2, []string{"viewer"}, [][2]string{{"viewer", "docs:read"}}, [][2]string{{"carol", "viewer"}}, nil)
				end := time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)
				grant := []string{"role:" + secretRole, dom1, secretPerm}
				member := []string{secretUser, "role:" + secretRole, dom1}
				desc := secretDesc
				change(t, s, func(ctx context.Context, tx policy.Tx) error {
					if _, err := tx.BumpVersion(ctx, id1); err != nil {
						return err
					}
					if _, err := tx.SetRoleDescription(ctx, id1, secretRole, &desc); err != nil {
						return err
					}
					if err := tx.AddRules(ctx, "p", [][]string{{"role:viewer", dom1, "docs:write", "deny"}}); err != nil {
						return err
					}
					if err := tx.SetExpiry(ctx, id1, "p", [][]string{grant}, &end); err != nil {
						return err
					}
					return tx.SetExpiry(ctx, id1, "g", [][]string{member}, &end)
				})
				exec(t, db, "INSERT INTO rule_expiries (tenant_id, ptype, v0, v1, v2, expires_at) VALUES (?, 'p', 'x', ?, 'y', 1)", id2, dom2)

				count := testenv.CountStatements(t, db)
				for _, tc := range []struct {
					name string
					key  policy.KeyHash
					want loaded
				}{
					{"tenant with descriptions and expiries", tenantKey(1), loaded{
						Found:   true,
						Version: 1,
						Roles:   []string{secretRole + "=" + secretDesc, "viewer", secretParent},
						Rules: []string{
							"p:role:" + secretRole + "," + dom1 + "," + secretPerm,
							"p:role:viewer," + dom1 + ",docs:read",
							"p:role:viewer," + dom1 + ",docs:write,deny",
							"g:" + secretUser + ",role:" + secretRole + "," + dom1,
							"g:bob,role:viewer," + dom1,
							"g:role:" + secretRole + ",role:" + secretParent + "," + dom1,
						},
						Expiries: []policy.Expiry{{Ptype: "g", Rule: member, At: end}, {Ptype: "p", Rule: grant, At: end}},
					}},
					{"tenant without expiries", tenantKey(2), loaded{
						Found: true,
						Roles: []string{"viewer"},
						Rules: []string{"p:role:viewer," + dom2 + ",docs:read", "g:carol,role:viewer," + dom2},
					}},
					{"empty tenant", tenantKey(3), loaded{Found: true}},
					{"missing tenant", tenantKey(4), loaded{}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						count.Take()
						got := loadByKey(t, s, tc.key)
						if !reflect.DeepEqual(got, tc.want) {
							t.Errorf("LoadTenant =\n%+v\nwant\n%+v", got, tc.want)
						}
						pooled, begins, texts := count.Take()
						if pooled != 1 || begins != 0 || len(texts) != 1 {
							t.Errorf("LoadTenant ran %d statements and %d transactions: %q; want one statement, no transaction",
								pooled, begins, texts)
						}
					})
				}
				_ = ctx
			})
		})
	}
}

// TestLoadTenantFailsOnUndecryptable: with encryption on, a stored name
// that does not decrypt fails the load; it is never taken as a name.
func TestLoadTenantFailsOnUndecryptable(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := storeWith(t, db, keyA)
		id, dom := tenantID(t, s, 1)
		seedTenant(t, s, id, []string{"viewer"}, nil, nil, nil)
		insertRule(t, db, "p", "role:viewer", dom, "docs:read") // in clear
		_, _, err := s.LoadTenant(context.Background(), tenantKey(1), func(string, []string) error { return nil })
		if err == nil {
			t.Fatal("LoadTenant of a rule in clear with encryption on: no error")
		}
		if !strings.Contains(err.Error(), fmt.Sprint(id)) {
			t.Errorf("error %q does not name the tenant", err)
		}
	})
}
