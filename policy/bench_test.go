package policy_test

// Benchmarks of the policy core (SPEC §11). They measure; they never assert
// a time. Large tenants are seeded in bulk straight into the database in one
// transaction, then loaded by the Service as in production.
//
//	go test -run '^$' -bench . -benchtime 2s ./policy/

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casbin/casbin/v3"
	"github.com/casbin/casbin/v3/model"
	"gorm.io/gorm"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// seedTenant is one tenant to write in bulk.
type seedTenant struct {
	key     policy.KeyHash
	roles   []string
	grants  [][2]string // role, permission
	members [][2]string // user, role
	dom     string      // filled in by seed
}

// query is one check of a benchmark.
type query struct {
	key        policy.KeyHash
	dom        string
	user, perm string
}

// genTenant builds a tenant with about n grants: n/100 roles (at least one)
// of up to 100 permissions each, drawn from a pool of n/10 permissions so
// that a permission is held by about ten roles whatever n is, and n/10
// users (at least ten) in two roles each.
func genTenant(rng *rand.Rand, n int) (seedTenant, []query) {
	perRole := min(100, n)
	return genTenantShape(rng, max(1, n/100), perRole, max(perRole, n/10), max(10, n/10), 1024)
}

// genTenantShape builds a tenant of nRoles roles with perRole permissions
// each out of pool, and nUsers users in up to two roles each, with nq
// checks of which half ask for a permission the user holds.
func genTenantShape(rng *rand.Rand, nRoles, perRole, pool, nUsers, nq int) (seedTenant, []query) {
	st := seedTenant{key: policy.KeyHash(fmt.Sprintf("%064x", rng.Uint64()))}
	have := make([][]string, nRoles)
	for i := range nRoles {
		r := fmt.Sprintf("role-%d", i)
		st.roles = append(st.roles, r)
		for _, j := range rng.Perm(pool)[:perRole] {
			p := fmt.Sprintf("perm-%d", j)
			st.grants = append(st.grants, [2]string{r, p})
			have[i] = append(have[i], p)
		}
	}
	userRoles := make([][]int, nUsers)
	for u := range nUsers {
		for _, i := range rng.Perm(nRoles)[:min(2, nRoles)] {
			st.members = append(st.members, [2]string{fmt.Sprintf("user-%d", u), st.roles[i]})
			userRoles[u] = append(userRoles[u], i)
		}
	}
	// Half the checks ask for a permission the user holds, half for a
	// random one (almost always denied, the slower case: no early exit).
	qs := make([]query, nq)
	for i := range qs {
		u := rng.IntN(nUsers)
		perm := fmt.Sprintf("perm-%d", rng.IntN(pool))
		if i%2 == 0 {
			ri := userRoles[u][rng.IntN(len(userRoles[u]))]
			perm = have[ri][rng.IntN(len(have[ri]))]
		}
		qs[i] = query{key: st.key, user: fmt.Sprintf("user-%d", u), perm: perm}
	}
	return st, qs
}

// seed writes the tenants, their roles and their Casbin rules in one
// transaction, and sets each tenant's domain.
func seed(tb testing.TB, db *sqldb.DB, tenants []*seedTenant) {
	tb.Helper()
	// The SQLite driver matches each bound value against the statement's
	// parameters one by one, a cost that grows with the square of the
	// statement's size: its statements are kept small.
	batch := 400
	if db.Dialect() == sqldb.SQLite {
		batch = 100
	}
	insert := func(tx *gorm.DB, head string, cols int, rows [][]any) error {
		for len(rows) > 0 {
			n := min(batch, len(rows))
			var sb strings.Builder
			sb.WriteString(head)
			args := make([]any, 0, n*cols)
			for i, r := range rows[:n] {
				if i > 0 {
					sb.WriteString(",")
				}
				sb.WriteString("(")
				for c := range cols {
					if c > 0 {
						sb.WriteString(",")
					}
					if db.Dialect() == sqldb.Postgres {
						fmt.Fprintf(&sb, "$%d", i*cols+c+1)
					} else {
						sb.WriteString("?")
					}
				}
				sb.WriteString(")")
				args = append(args, r...)
			}
			// Straight to the driver: gorm's statement building costs more
			// than the insert itself at this size.
			if _, err := tx.Statement.ConnPool.ExecContext(context.Background(), sb.String(), args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	}
	now := time.Now().UTC()
	// The service's own kind of transaction: the triggers that note rules
	// written by other programs leave the rows alone.
	err := db.InOwnTx(context.Background(), func(tx *gorm.DB) error {
		var rows [][]any
		for _, t := range tenants {
			rows = append(rows, []any{string(t.key), 1, now})
		}
		if err := insert(tx, "INSERT INTO tenants (key_hash, policy_version, created_at) VALUES ", 3, rows); err != nil {
			return err
		}
		var ids []struct {
			ID      int64
			KeyHash string
		}
		if err := tx.Raw("SELECT id, key_hash FROM tenants").Scan(&ids).Error; err != nil {
			return err
		}
		byKey := map[string]int64{}
		for _, x := range ids {
			byKey[x.KeyHash] = x.ID
		}
		var roles, rules [][]any
		for _, t := range tenants {
			id := byKey[string(t.key)]
			t.dom = fmt.Sprint(id)
			for _, r := range t.roles {
				roles = append(roles, []any{id, r, now})
			}
			for _, g := range t.grants {
				rules = append(rules, []any{"p", "role:" + g[0], t.dom, g[1]})
			}
			for _, m := range t.members {
				rules = append(rules, []any{"g", m[0], "role:" + m[1], t.dom})
			}
		}
		if err := insert(tx, "INSERT INTO roles (tenant_id, name, created_at) VALUES ", 3, roles); err != nil {
			return err
		}
		// Indexes are built faster once, after the rows, than row by row:
		// drop the table's indexes and re-create them as they were.
		var idx []struct{ Name, SQL string }
		q := "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'casbin_rule' AND sql IS NOT NULL"
		if db.Dialect() == sqldb.Postgres {
			q = "SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'casbin_rule' AND indexname NOT LIKE '%pkey'"
		}
		if err := tx.Raw(q).Scan(&idx).Error; err != nil {
			return err
		}
		for _, x := range idx {
			if err := tx.Exec("DROP INDEX " + x.Name).Error; err != nil {
				return err
			}
		}
		if err := insert(tx, "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ", 4, rules); err != nil {
			return err
		}
		for _, x := range idx {
			if err := tx.Exec(x.SQL).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("seed: %v", err)
	}
}

// warm loads every tenant into the Service.
func warm(tb testing.TB, svc *policy.Service, qs []query, tenants []*seedTenant) {
	tb.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	work := make(chan *seedTenant)
	errs := make(chan error, 1)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if _, err := svc.ListRoles(ctx, t.key); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, t := range tenants {
		work <- t
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatalf("load tenants: %v", err)
	default:
	}
	if n := svc.LoadedTenants(); n != len(tenants) {
		tb.Fatalf("%d tenants loaded, want %d", n, len(tenants))
	}
	// The checks must agree with a sample of expectations: half allowed.
	allowed := 0
	for _, q := range qs[:min(64, len(qs))] {
		ok, err := svc.HasPermission(ctx, q.key, q.user, q.perm)
		if err != nil {
			tb.Fatal(err)
		}
		if ok {
			allowed++
		}
	}
	if allowed < min(64, len(qs))/2 {
		tb.Fatalf("only %d of %d sample checks allowed; the benchmark data is wrong", allowed, min(64, len(qs)))
	}
}

// heapInUse is the live heap after two collections (the first moves what
// sync.Pools hold to their victim caches, the second frees it).
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// largeFixture is a Service over one SQLite database with one tenant of n
// grants, loaded; fixtures are built once per size and shared.
type largeFixture struct {
	svc    *policy.Service
	tenant *seedTenant
	qs     []query
	setup  time.Duration
}

// benchDir holds the databases shared by several benchmarks (TestMain).
var benchDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "policy-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	benchDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[int]*largeFixture{}
)

func benchTenant(b *testing.B, n int) *largeFixture {
	b.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := fixtures[n]; f != nil {
		return f
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	st, qs := genTenant(rng, n)
	// The database outlives this benchmark: other benchmarks reuse it.
	db, err := sqldb.Open(context.Background(), sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(benchDir, fmt.Sprintf("tenant-%d.sqlite3", n))})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Migrate(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	seed(b, db, []*seedTenant{&st})
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	before := heapInUse()
	warm(b, svc, qs, []*seedTenant{&st})
	heap := heapInUse() - before
	f := &largeFixture{svc: svc, tenant: &st, qs: qs, setup: time.Since(start)}
	b.Logf("%d grants, %d memberships, %d roles: set-up %v; %.1f MB in memory, %.0f bytes per rule",
		len(st.grants), len(st.members), len(st.roles), f.setup.Round(time.Millisecond),
		float64(heap)/(1<<20), float64(heap)/float64(len(st.grants)+len(st.members)))
	fixtures[n] = f
	return f
}

func BenchmarkHasPermission(b *testing.B) {
	ctx := context.Background()
	b.Run("grants", func(b *testing.B) {
		for _, n := range []int{10, 1_000, 100_000} {
			b.Run(fmt.Sprint(n), func(b *testing.B) {
				f := benchTenant(b, n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					q := f.qs[i%len(f.qs)]
					if _, err := f.svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
	b.Run("grants-parallel", func(b *testing.B) {
		for _, n := range []int{1_000, 100_000} {
			b.Run(fmt.Sprint(n), func(b *testing.B) {
				f := benchTenant(b, n)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := rand.IntN(len(f.qs))
					for pb.Next() {
						q := f.qs[i%len(f.qs)]
						i++
						if _, err := f.svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	})
	b.Run("consistency", benchConsistency)
	b.Run("tenants", func(b *testing.B) {
		for _, n := range []int{1, 10_000, 100_000} {
			b.Run(fmt.Sprint(n), func(b *testing.B) {
				f := benchTenants(b, n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					q := f.qs[i%len(f.qs)]
					if _, err := f.svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// consistencyGrants is the size of the tenant of the consistency
// benchmarks.
const consistencyGrants = 1_000

// benchConsistency is the cost of a read's consistency demand on a replica
// that is already current: the same checks as grants/1000 through a context
// without a receipt, with a minimize_latency receipt, and with an at_least
// receipt of the tenant's current revision (what a client with session
// consistency sends after its own write has arrived). The context is built
// once, as a request builds it once for all its reads.
func benchConsistency(b *testing.B) {
	f := benchTenant(b, consistencyGrants)
	// The tenant's current revision, as a read states it.
	probe := &policy.Receipt{}
	q0 := f.qs[0]
	if _, err := f.svc.HasPermission(policy.WithReceipt(context.Background(), probe), q0.key, q0.user, q0.perm); err != nil {
		b.Fatal(err)
	}
	current := probe.Revision
	if current <= 0 {
		b.Fatalf("the tenant is at revision %d; want a positive revision", current)
	}
	cases := []struct {
		name    string
		receipt *policy.Receipt // nil: no receipt
	}{
		{"none", nil},
		{"minimize_latency", &policy.Receipt{Need: policy.Consistency{Mode: policy.MinimizeLatency}}},
		{"at_least", &policy.Receipt{Need: policy.Consistency{Mode: policy.AtLeast, Revision: current}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			if c.receipt != nil {
				ctx = policy.WithReceipt(ctx, c.receipt)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := f.qs[i%len(f.qs)]
				if _, err := f.svc.HasPermission(ctx, q.key, q.user, q.perm); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if c.receipt != nil && c.receipt.Revision != current {
				b.Fatalf("the checks were answered at revision %d, want %d", c.receipt.Revision, current)
			}
		})
	}
}

var manyFixtures = map[int]*largeFixture{}

// benchTenants is a Service with n typical tenants (3 roles of 10 grants,
// 10 users), all loaded, and checks spread over all of them.
func benchTenants(b *testing.B, n int) *largeFixture {
	b.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := manyFixtures[n]; f != nil {
		return f
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(uint64(n), 2))
	db, err := sqldb.Open(context.Background(), sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(benchDir, fmt.Sprintf("tenants-%d.sqlite3", n))})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Migrate(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	tenants := make([]*seedTenant, n)
	var qs []query
	for i := range tenants {
		st, tq := genTenantShape(rng, 3, 10, 15, 10, max(2, 1024/n))
		tenants[i] = &st
		qs = append(qs, tq...)
	}
	seed(b, db, tenants)
	seeded := time.Since(start)
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	before := heapInUse()
	warm(b, svc, qs, tenants)
	loaded := time.Since(start) - seeded
	heap := heapInUse() - before
	// The seed data is live at both readings: freed between them, it
	// would be subtracted from the tenants' memory.
	runtime.KeepAlive(tenants)
	rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	f := &largeFixture{svc: svc, qs: qs, setup: time.Since(start)}
	b.Logf("%d tenants: seeded in %v, loaded in %v; %.1f MB in memory, %.1f KB per tenant",
		n, seeded.Round(time.Millisecond), loaded.Round(time.Millisecond), float64(heap)/(1<<20), float64(heap)/1024/float64(n))
	manyFixtures[n] = f
	return f
}

// BenchmarkEnforceBaseline is Casbin's own Enforce over the same rules, in a
// plain enforcer holding only the tenant's rules: the cost the index saves.
func BenchmarkEnforceBaseline(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("grants/%d", n), func(b *testing.B) {
			f := benchTenant(b, n)
			m, err := model.NewModelFromString(auth.DefaultModel)
			if err != nil {
				b.Fatal(err)
			}
			e, err := casbin.NewEnforcer(m)
			if err != nil {
				b.Fatal(err)
			}
			var p, g [][]string
			for _, x := range f.tenant.grants {
				p = append(p, []string{"role:" + x[0], f.tenant.dom, x[1]})
			}
			for _, x := range f.tenant.members {
				g = append(g, []string{x[0], "role:" + x[1], f.tenant.dom})
			}
			if _, err := e.AddPolicies(p); err != nil {
				b.Fatal(err)
			}
			if _, err := e.AddGroupingPolicies(g); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := f.qs[i%len(f.qs)]
				if _, err := e.Enforce(q.user, f.tenant.dom, q.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWhichUsersCan(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("grants/%d", n), func(b *testing.B) {
			f := benchTenant(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := f.qs[i%len(f.qs)]
				if _, err := f.svc.WhichUsersCan(ctx, q.key, q.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUserPermissions(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("grants/%d", n), func(b *testing.B) {
			f := benchTenant(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := f.qs[i%len(f.qs)]
				if _, err := f.svc.UserPermissions(ctx, q.key, q.user); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite is one grant (a transaction with the tenant's version bump)
// per operation, alternately granting and revoking.
func BenchmarkWrite(b *testing.B) {
	dbs := []struct {
		name string
		open func(testing.TB) *sqldb.DB
	}{
		{"sqlite", openSQLite},
		{"postgres", openPostgres},
	}
	for _, d := range dbs {
		b.Run(d.name, func(b *testing.B) {
			ctx := context.Background()
			svc := newService(b, d.open(b), auth.DefaultModel, policy.Options{})
			k := mustKey(b, keyA)
			if ok, err := svc.CreateRole(ctx, k, "writer"); err != nil || !ok {
				b.Fatalf("CreateRole = %v, %v", ok, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				perm := fmt.Sprintf("perm-%d", i%512)
				var err error
				if (i/512)%2 == 0 {
					_, err = svc.Grant(ctx, k, "writer", perm)
				} else {
					_, err = svc.Revoke(ctx, k, "writer", perm)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
