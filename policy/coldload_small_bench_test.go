package policy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// smallTenants builds n small tenants (3 roles, 4 grants, 3 memberships)
// and, for each, a check that user-0 is allowed.
func smallTenants(n int) ([]*seedTenant, []query) {
	rng := rand.New(rand.NewPCG(5, 5))
	tenants := make([]*seedTenant, n)
	qs := make([]query, n)
	for i := range tenants {
		st, _ := genTenantShape(rng, 3, 1, 4, 3, 1)
		st.grants = append(st.grants, [2]string{st.roles[0], "perm-extra"})
		st.members = st.members[:0]
		for u := range 3 {
			st.members = append(st.members, [2]string{fmt.Sprintf("user-%d", u), st.roles[u]})
		}
		tenants[i] = &st
		qs[i] = query{key: st.key, user: "user-0", perm: "perm-extra"}
	}
	return tenants, qs
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*q))]
}

// BenchmarkColdLoadSmall times the first check of a small tenant (3 roles,
// 4 grants, 3 memberships) that is not in memory, on SQLite and
// PostgreSQL, by one goroutine and by 16 at once, each operation a tenant
// not loaded yet (a fresh Service every 3 000). It reports the latency's
// median and 99th percentile in microseconds (p50-us, p99-us); ns/op is the
// wall time divided by the operations (with 16 loaders, the inverse of the
// throughput).
//
//	go test -run '^$' -bench ColdLoadSmall -benchtime 2000x ./policy/
func BenchmarkColdLoadSmall(b *testing.B) {
	const pool = 3000 // tenants in the database
	for _, d := range backends {
		b.Run(d.name, func(b *testing.B) {
			ctx := context.Background()
			db := d.open(b)
			tenants, qs := smallTenants(pool)
			seed(b, db, tenants)
			newSvc := func() *policy.Service {
				svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				// Warm the connection pool (and its statement caches) on
				// a few tenants the round does not time.
				var wg sync.WaitGroup
				for _, q := range qs[pool-16:] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				return svc
			}
			for _, loaders := range []int{1, 16} {
				b.Run(fmt.Sprintf("loaders=%d", loaders), func(b *testing.B) {
					ds := make([]time.Duration, b.N)
					b.ResetTimer()
					for start := 0; start < b.N; start += pool - 16 {
						b.StopTimer()
						svc := newSvc()
						round := min(pool-16, b.N-start)
						b.StartTimer()
						var next atomic.Int64
						var wg sync.WaitGroup
						for range loaders {
							wg.Add(1)
							go func() {
								defer wg.Done()
								for {
									i := int(next.Add(1)) - 1
									if i >= round {
										return
									}
									q := qs[i]
									t0 := time.Now()
									ok, err := svc.HasPermission(ctx, q.key, q.user, q.perm)
									ds[start+i] = time.Since(t0)
									if err != nil || !ok {
										b.Errorf("cold check = %v, %v; want true", ok, err)
										return
									}
								}
							}()
						}
						wg.Wait()
					}
					b.StopTimer()
					b.ReportMetric(float64(quantile(ds, .5).Nanoseconds())/1e3, "p50-us")
					b.ReportMetric(float64(quantile(ds, .99).Nanoseconds())/1e3, "p99-us")
				})
			}
		})
	}
}
