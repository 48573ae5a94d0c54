package dataset_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

func TestGenerateShape(t *testing.T) {
	cases := []struct {
		name  string
		shape dataset.Shape
	}{
		{"http tenant", dataset.Shape{Users: 1000, Roles: 100, Permissions: 200, Grants: 1000, Memberships: 2000}},
		{"uneven", dataset.Shape{Users: 7, Roles: 3, Permissions: 5, Grants: 11, Memberships: 10}},
		{"dense", dataset.Shape{Users: 4, Roles: 4, Permissions: 4, Grants: 16, Memberships: 16}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn, err := dataset.Generate(tc.shape, 1)
			if err != nil {
				t.Fatal(err)
			}
			grants, members := tn.Rules()
			if grants != tc.shape.Grants || members != tc.shape.Memberships {
				t.Errorf("Rules() = %d grants, %d memberships, want %d, %d", grants, members, tc.shape.Grants, tc.shape.Memberships)
			}
			for r, ps := range tn.RolePerms {
				if !slices.IsSorted(ps) || len(slices.Compact(slices.Clone(ps))) != len(ps) {
					t.Errorf("role %d permissions %v: not sorted and distinct", r, ps)
				}
			}
			if _, err := policy.ParseClientKey(tn.Key); err != nil {
				t.Errorf("Key %q: %v", tn.Key, err)
			}
			again, _ := dataset.Generate(tc.shape, 1)
			if again.Key != tn.Key || !slices.EqualFunc(again.UserRoles, tn.UserRoles, slices.Equal[[]int32]) {
				t.Error("the same seed gave another tenant")
			}
		})
	}
}

// TestUserPermissionsPerGrantingRole checks the v1 listing's shape: a
// permission that two of the user's roles grant is listed twice.
func TestUserPermissionsPerGrantingRole(t *testing.T) {
	tn := &dataset.Tenant{
		Shape:     dataset.Shape{Users: 1, Roles: 2, Permissions: 3},
		RolePerms: [][]int32{{0, 1}, {1, 2}},
		UserRoles: [][]int32{{0, 1}},
	}
	got := tn.UserPermissions(0)
	want := []string{"perm-0", "perm-1", "perm-1", "perm-2"}
	if !slices.Equal(got, want) {
		t.Errorf("UserPermissions(0) = %v, want %v", got, want)
	}
}

func TestGenerateRefusesImpossibleShapes(t *testing.T) {
	for _, s := range []dataset.Shape{
		{Users: 0, Roles: 1, Permissions: 1},
		{Users: 1, Roles: 2, Permissions: 2, Grants: 5},
		{Users: 2, Roles: 2, Permissions: 2, Memberships: 5},
	} {
		if _, err := dataset.Generate(s, 1); err == nil {
			t.Errorf("Generate(%+v) succeeded, want an error", s)
		}
	}
}

func TestPairsAnswers(t *testing.T) {
	tn, err := dataset.Generate(dataset.Shape{Users: 100, Roles: 10, Permissions: 50, Grants: 100, Memberships: 200}, 2)
	if err != nil {
		t.Fatal(err)
	}
	tr := tn.Truth()
	pairs, want := tn.Pairs(rand.New(rand.NewPCG(1, 2)), 400)
	allowed := 0
	for i, p := range pairs {
		got, ok := tr.Allowed(p.User, p.Permission)
		if !ok || got != want[i] {
			t.Errorf("Truth.Allowed(%v) = %v, %v; Pairs said %v", p, got, ok, want[i])
		}
		if got {
			allowed++
		}
		perms, _ := tr.UserPermissions(p.User)
		if _, in := slices.BinarySearch(perms, p.Permission); in != got {
			t.Errorf("UserPermissions(%s) has %s = %v, Allowed = %v", p.User, p.Permission, in, got)
		}
		if !slices.IsSorted(perms) {
			t.Errorf("UserPermissions(%s) = %v, not sorted", p.User, perms)
		}
	}
	// Every other pair is one the user holds.
	if allowed < len(pairs)/2 {
		t.Errorf("%d of %d pairs allowed, want at least half", allowed, len(pairs))
	}
	if _, ok := tr.Allowed("nobody", "perm-1"); ok {
		t.Error("Truth.Allowed of an unknown user is ok")
	}
}

// TestLoad writes a tenant into a migrated database and reads it back
// through the service: every decision agrees with the generator's, the
// service's own key lookup finds the tenant, and the load is not taken
// for another program's change.
func TestLoad(t *testing.T) {
	dbs := []struct {
		name string
		open func(testing.TB) *sqldb.DB
		bulk bool // SQLite: drop and re-create indexes and triggers
	}{
		{"sqlite", testenv.SQLite, false},
		{"sqlite bulk", testenv.SQLite, true},
		{"postgres", testenv.Postgres, false},
	}
	for _, d := range dbs {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			db := d.open(t)
			if d.bulk {
				t.Cleanup(dataset.SetBulkRows(10))
			}
			tn, err := dataset.Generate(dataset.Shape{Users: 50, Roles: 8, Permissions: 30, Grants: 60, Memberships: 90}, 3)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := audit.NewKeyring([]byte("dataset-test-7c1e9a4b2d6f8e0a3c5b7d9f1e3a5c7b"))
			if err != nil {
				t.Fatal(err)
			}
			id, err := dataset.Load(ctx, db, keys, tn)
			if err != nil {
				t.Fatal(err)
			}
			var external int64
			if err := db.Gorm().Raw("SELECT COUNT(*) FROM casbin_rule_external").Scan(&external).Error; err != nil {
				t.Fatal(err)
			}
			if external != 0 {
				t.Errorf("%d rows in casbin_rule_external: the load was taken for another program's change", external)
			}
			// The tenant's audit chain starts with the import, and verifies.
			tenantFP := keys.TenantFingerprint(tn.KeyHash())
			store := auditdb.New(db, keys)
			if n, err := store.Verify(ctx, tenantFP); err != nil || n != 1 {
				t.Errorf("Verify = %d records, %v; want 1, nil", n, err)
			}
			if n, err := store.Count(ctx, tenantFP, string(audit.ImportPolicy)); err != nil || n != 1 {
				t.Errorf("Count(IMPORT_POLICY) = %d, %v; want 1", n, err)
			}
			// The schema is intact: same indexes and triggers, and the
			// triggers still note another program's change.
			if err := db.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema after the load: %v", err)
			}
			if err := db.Gorm().Exec("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'role:role-0', ?, 'extra')", fmt.Sprint(id)).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Gorm().Raw("SELECT COUNT(*) FROM casbin_rule_external").Scan(&external).Error; err != nil {
				t.Fatal(err)
			}
			if external != 1 {
				t.Errorf("%d rows in casbin_rule_external after another program's insert, want 1", external)
			}
			if err := db.Gorm().Exec("DELETE FROM casbin_rule WHERE v2 = 'extra'").Error; err != nil {
				t.Fatal(err)
			}
			svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			key, err := policy.ParseClientKey(tn.Key)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok, err := policydb.New(db).FindTenant(ctx, key); err != nil || !ok || got != id {
				t.Fatalf("FindTenant = %d, %v, %v; want %d", got, ok, err, id)
			}
			roles, err := svc.ListRoles(ctx, key)
			if err != nil || len(roles) != 8 {
				t.Fatalf("ListRoles = %d roles, %v; want 8", len(roles), err)
			}
			for u := range tn.Shape.Users {
				for p := range tn.Shape.Permissions {
					got, err := svc.HasPermission(ctx, key, dataset.User(u), dataset.Permission(p))
					if err != nil {
						t.Fatal(err)
					}
					if want := tn.Allowed(u, p); got != want {
						t.Fatalf("HasPermission(%s, %s) = %v, want %v", dataset.User(u), dataset.Permission(p), got, want)
					}
				}
			}
		})
	}
}
