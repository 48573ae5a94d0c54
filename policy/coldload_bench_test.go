package policy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// genMembers builds one tenant of nRoles roles with perRole permissions
// each (out of a pool of 10*perRole) and nMembers memberships: nMembers/2
// users in two distinct roles each.
func genMembers(rng *rand.Rand, nRoles, perRole, nMembers int) (seedTenant, []query) {
	st := seedTenant{key: policy.KeyHash(fmt.Sprintf("%064x", rng.Uint64()))}
	pool := 10 * perRole
	for i := range nRoles {
		r := fmt.Sprintf("role-%d", i)
		st.roles = append(st.roles, r)
		for _, j := range rng.Perm(pool)[:perRole] {
			st.grants = append(st.grants, [2]string{r, fmt.Sprintf("perm-%d", j)})
		}
	}
	st.members = make([][2]string, 0, nMembers)
	for u := 0; len(st.members) < nMembers; u++ {
		user := fmt.Sprintf("user-%d", u)
		a := rng.IntN(nRoles)
		b := (a + 1 + rng.IntN(nRoles-1)) % nRoles
		st.members = append(st.members, [2]string{user, st.roles[a]})
		if len(st.members) < nMembers {
			st.members = append(st.members, [2]string{user, st.roles[b]})
		}
	}
	qs := make([]query, 1024)
	for i := range qs {
		m := st.members[rng.IntN(len(st.members))]
		qs[i] = query{key: st.key, user: m[0], perm: fmt.Sprintf("perm-%d", rng.IntN(pool))}
	}
	return st, qs
}

// BenchmarkColdLoad times the first check of a tenant that is not in memory
// (read from the database, indexes built), one fresh Service per operation,
// and reports the live heap the loaded tenant takes per membership. The
// tenant is seeded once per database in one bulk transaction. The
// 1 000 000-membership sizes are skipped with -short.
//
//	go test -run '^$' -bench ColdLoad -benchtime 3x ./policy/
func BenchmarkColdLoad(b *testing.B) {
	dbs := []struct {
		name string
		open func(testing.TB) *sqldb.DB
	}{
		{"sqlite", openSQLite},
		{"postgres", openPostgres},
	}
	for _, n := range []int{100_000, 1_000_000} {
		for _, d := range dbs {
			b.Run(fmt.Sprintf("memberships=%d/%s", n, d.name), func(b *testing.B) {
				if n > 100_000 && testing.Short() {
					b.Skip("large tenant skipped with -short")
				}
				ctx := context.Background()
				db := d.open(b)
				start := time.Now()
				st, qs := genMembers(rand.New(rand.NewPCG(uint64(n), 3)), 1000, 10, n)
				seed(b, db, []*seedTenant{&st})
				b.Logf("%d memberships, %d grants, %d roles: seeded in %v",
					len(st.members), len(st.grants), len(st.roles), time.Since(start).Round(time.Millisecond))
				members, rules := len(st.members), len(st.members)+len(st.grants)
				st.members, st.grants = nil, nil // not part of the measured heap
				q := qs[0]
				var perMember, perRule float64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
					if err != nil {
						b.Fatal(err)
					}
					before := heapInUse()
					b.StartTimer()
					if _, err := svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					heap := heapInUse() - before
					perMember = float64(heap) / float64(members)
					perRule = float64(heap) / float64(rules)
					if svc.LoadedTenants() != 1 {
						b.Fatalf("%d tenants loaded, want 1", svc.LoadedTenants())
					}
					b.StartTimer()
				}
				b.ReportMetric(perMember, "B/membership")
				b.ReportMetric(perRule, "B/rule")
			})
		}
	}
}
