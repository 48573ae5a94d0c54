package policy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// smallShape is the shape of the tenants of a memory measure: grants spread
// over the roles in turn (grant i is perm-i of role i mod roles), and users
// each a member of perUser consecutive roles.
type smallShape struct {
	roles, grants, users, perUser int
}

func (sh smallShape) memberships() int { return sh.users * sh.perUser }

func (sh smallShape) rules() int { return sh.grants + sh.memberships() }

// genSmall builds n tenants of shape sh and two checks per tenant, the
// first allowed, the second (a permission no role holds) denied.
func genSmall(n int, sh smallShape, salt uint64) ([]*seedTenant, []query) {
	tenants := make([]*seedTenant, n)
	qs := make([]query, 0, 2*n)
	for i := range tenants {
		st := &seedTenant{key: policy.KeyHash(fmt.Sprintf("%016x%016x%032x", salt, uint64(i), 0))}
		for r := range sh.roles {
			st.roles = append(st.roles, fmt.Sprintf("role-%d", r))
		}
		for g := range sh.grants {
			st.grants = append(st.grants, [2]string{st.roles[g%sh.roles], fmt.Sprintf("perm-%d", g)})
		}
		for u := range sh.users {
			for j := range sh.perUser {
				st.members = append(st.members, [2]string{fmt.Sprintf("user-%d", u), st.roles[(u+j)%sh.roles]})
			}
		}
		tenants[i] = st
		u := i % sh.users
		qs = append(qs,
			query{key: st.key, user: fmt.Sprintf("user-%d", u), perm: fmt.Sprintf("perm-%d", u%sh.roles)},
			query{key: st.key, user: fmt.Sprintf("user-%d", u), perm: "perm-none"})
	}
	return tenants, qs
}

// tenantMemory is a Service holding n loaded tenants of one shape, and
// what they take.
type tenantMemory struct {
	svc *policy.Service
	qs  []query
	// perTenant is the growth of the live heap per loaded tenant, and
	// estimate the Service's own estimate per tenant (LoadedBytes), which
	// the memory budget is counted in.
	perTenant, estimate float64
}

var memoryFixtures = map[string]*tenantMemory{}

// measureTenants seeds n tenants of shape sh into a fresh SQLite database,
// loads them all into a fresh Service and returns the live heap they take.
// The seed data stays live across both readings, so that only the loaded
// tenants count.
func measureTenants(b *testing.B, n int, sh smallShape) *tenantMemory {
	b.Helper()
	name := fmt.Sprintf("memory-%d-%d-%d-%d-%d", n, sh.roles, sh.grants, sh.users, sh.perUser)
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := memoryFixtures[name]; f != nil {
		return f
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(benchDir, name+".sqlite3")})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Migrate(ctx, nil); err != nil {
		b.Fatal(err)
	}
	tenants, qs := genSmall(n, sh, uint64(len(memoryFixtures)+1))
	seed(b, db, tenants)
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	// One tenant first: what the first load allocates once (prepared
	// statements, the driver's buffers) is not a tenant's.
	if _, err := svc.ListRoles(ctx, tenants[0].key); err != nil {
		b.Fatal(err)
	}
	before := heapInUse()
	warm(b, svc, qs, tenants) // the first is loaded already
	after := heapInUse()
	runtime.KeepAlive(tenants)
	f := &tenantMemory{svc: svc, qs: qs,
		perTenant: float64(after-before) / float64(n-1),
		estimate:  float64(svc.LoadedBytes()) / float64(n)}
	b.Logf("%d tenants of %d roles, %d grants, %d memberships: %.0f bytes per tenant (estimate %.0f)",
		n, sh.roles, sh.grants, sh.memberships(), f.perTenant, f.estimate)
	memoryFixtures[name] = f
	return f
}

// BenchmarkTenantMemory is the live heap of small tenants loaded from
// SQLite: per tenant of 10, 100 and 1 000 rules (half grants, half
// memberships), and per membership (members: tenants of the 10-rule shape
// with 40 more users of one role each, against the 10-rule tenants). Each
// also times checks spread over its tenants (ns/op). Metrics: B/tenant (live
// heap), est-B/tenant (the Service's estimate, which the memory budget
// counts), B/membership.
//
//	go test -run '^$' -bench BenchmarkTenantMemory -benchtime 1000x ./policy/
func BenchmarkTenantMemory(b *testing.B) {
	ten := smallShape{roles: 3, grants: 5, users: 5, perUser: 1}
	cases := []struct {
		name    string
		tenants int
		shape   smallShape
	}{
		{"rules=10", 10_000, ten},
		{"rules=100", 1_000, smallShape{roles: 10, grants: 50, users: 25, perUser: 2}},
		{"rules=1000", 100, smallShape{roles: 50, grants: 500, users: 250, perUser: 2}},
	}
	ctx := context.Background()
	checks := func(b *testing.B, f *tenantMemory) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			q := f.qs[(i*7919)%len(f.qs)]
			if _, err := f.svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := measureTenants(b, c.tenants, c.shape)
			checks(b, f)
			b.ReportMetric(f.perTenant, "B/tenant")
			b.ReportMetric(f.estimate, "est-B/tenant")
			b.ReportMetric(float64(c.shape.memberships()), "memberships/tenant")
		})
	}
	b.Run("members", func(b *testing.B) {
		const extra = 40
		more := ten
		more.users += extra
		base := measureTenants(b, 2_000, ten)
		f := measureTenants(b, 2_000, more)
		checks(b, f)
		b.ReportMetric((f.perTenant-base.perTenant)/extra, "B/membership")
		b.ReportMetric(f.perTenant, "B/tenant")
	})
}
