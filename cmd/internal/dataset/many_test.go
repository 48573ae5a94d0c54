package dataset_test

import (
	"context"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

func TestSmallKey(t *testing.T) {
	seen := map[string]bool{}
	for i := range 1000 {
		k := dataset.SmallKey(i)
		if _, err := policy.ParseClientKey(k); err != nil {
			t.Fatalf("SmallKey(%d) = %q: %v", i, k, err)
		}
		if seen[k] {
			t.Fatalf("SmallKey(%d) = %q repeats an earlier key", i, k)
		}
		seen[k] = true
	}
	if dataset.SmallKey(7) != dataset.SmallKey(7) {
		t.Error("SmallKey is not deterministic")
	}
}

// TestLoadMany loads small tenants and checks every decision of each through
// the service, with keys resolved as the server resolves them, and that the
// load was not taken for another program's change.
func TestLoadMany(t *testing.T) {
	dbs := []struct {
		name string
		open func(testing.TB) *sqldb.DB
	}{
		{"sqlite", testenv.SQLite},
		{"postgres", testenv.Postgres},
	}
	const n = 40
	for _, d := range dbs {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			db := d.open(t)
			var progressed int
			if err := dataset.LoadMany(ctx, db, n, func(done int) { progressed = done }); err != nil {
				t.Fatal(err)
			}
			if d.name == "postgres" && progressed != n {
				t.Errorf("progress reported %d tenants, want %d", progressed, n)
			}
			var external int64
			if err := db.Gorm().Raw("SELECT COUNT(*) FROM casbin_rule_external").Scan(&external).Error; err != nil {
				t.Fatal(err)
			}
			if external != 0 {
				t.Errorf("%d rows in casbin_rule_external: the load was taken for another program's change", external)
			}
			if err := db.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema after the load: %v", err)
			}
			store := policydb.New(db)
			keys := policy.NewKeys(store, policy.KeyOptions{RegisteredOnly: true})
			svc, err := policy.New(store, auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				h, err := policy.ParseClientKey(dataset.SmallKey(i))
				if err != nil {
					t.Fatal(err)
				}
				handle, err := keys.Resolve(ctx, h)
				if err != nil || handle != h {
					t.Fatalf("tenant %d: Resolve = %q, %v; want its own hash", i, handle, err)
				}
				for u := range dataset.SmallRoles + 1 {
					for p := range dataset.SmallPerms + 1 {
						got, err := svc.HasPermission(ctx, h, dataset.User(u), dataset.Permission(p))
						if err != nil {
							t.Fatal(err)
						}
						if want := dataset.SmallAllowed(i, u, p); got != want {
							t.Fatalf("tenant %d: HasPermission(%s, %s) = %v, want %v", i, dataset.User(u), dataset.Permission(p), got, want)
						}
					}
				}
			}
			if got := svc.LoadedTenants(); got != n {
				t.Errorf("%d tenants loaded, want %d", got, n)
			}
		})
	}
}
