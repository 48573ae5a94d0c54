package policy_test

// What field encryption costs (for the README): a check, a write and a
// tenant's cold load, each timed with encryption off and on in alternating
// blocks on SQLite, reported as off-ns/op, on-ns/op and their ratio on/off:
//
//	go test -run '^$' -bench '^BenchmarkEncryption$' -benchtime 2s -count 5 ./policy/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

const benchEncryptionKey = "bench-7f3c9a1b5d2e8f4061c3b7a9d5e1f2a8"

// pair times the same operation with encryption off and on, in blocks of
// block operations that alternate between the two (and which goes first),
// so that a machine whose speed drifts (other load) slows both alike. It
// reports each one's time per operation and their ratio; op(on, i) runs
// operation i.
func pair(b *testing.B, block int, op func(on bool, i int) error) {
	b.Helper()
	var took [2]time.Duration
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(block, b.N-done)
		// Each goes first in every other round: neither gains from order.
		for _, m := range [2][2]int{{0, 1}, {1, 0}}[round%2] {
			start := time.Now()
			for i := done; i < done+n; i++ {
				if err := op(m == 1, i); err != nil {
					b.Fatal(err)
				}
			}
			took[m] += time.Since(start)
		}
		done += n
	}
	b.StopTimer()
	off, on := float64(took[0].Nanoseconds())/float64(b.N), float64(took[1].Nanoseconds())/float64(b.N)
	b.ReportMetric(0, "ns/op") // the pair's time: meaningless, not shown
	b.ReportMetric(off, "off-ns/op")
	b.ReportMetric(on, "on-ns/op")
	b.ReportMetric(on/off, "on/off")
}

// benchStore is the store over db, encrypting when on.
func benchStore(b *testing.B, db *sqldb.DB, on bool) *policydb.Store {
	b.Helper()
	s := policydb.New(db)
	if !on {
		return s
	}
	keys, err := fieldcrypt.NewKeyring(benchEncryptionKey)
	if err != nil {
		b.Fatal(err)
	}
	return s.WithEncryption(keys)
}

// benchTenantDB is a SQLite database holding one tenant; with on, its names
// are encrypted (seeded in clear, then encrypted by Rekey as a migration
// would).
func benchTenantDB(b *testing.B, name string, st *seedTenant, on bool) (*sqldb.DB, *policydb.Store) {
	b.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(b.TempDir(), name+".sqlite3")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx, nil); err != nil {
		b.Fatal(err)
	}
	seed(b, db, []*seedTenant{st})
	store := benchStore(b, db, on)
	if on {
		stats, err := store.Rekey(ctx, 1000, nil)
		if err != nil {
			b.Fatal(err)
		}
		if want := len(st.grants) + len(st.members); stats.Rules != want {
			b.Fatalf("Rekey encrypted %d rules, want %d", stats.Rules, want)
		}
	}
	if err := store.CheckEncryption(ctx); err != nil {
		b.Fatal(err)
	}
	return db, store
}

func BenchmarkEncryption(b *testing.B) {
	ctx := context.Background()
	// Checks are answered from memory, which holds clear names either way.
	b.Run("check", func(b *testing.B) {
		var svcs [2]*policy.Service
		var qs []query
		for m, on := range []bool{false, true} {
			st, q := genTenant(rand.New(rand.NewPCG(1000, 3)), 1_000)
			_, store := benchTenantDB(b, fmt.Sprint("check-", on), &st, on)
			svc, err := policy.New(store, auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			warm(b, svc, q, []*seedTenant{&st})
			svcs[m], qs = svc, q
		}
		pair(b, 1024, func(on bool, i int) error {
			q := qs[i%len(qs)]
			_, err := svcs[btoi(on)].HasPermission(ctx, q.key, q.user, q.perm)
			return err
		})
	})
	// One grant or revoke per operation: a transaction that encrypts the
	// rule's names (and, for revokes, matches every configured key).
	b.Run("grant", func(b *testing.B) {
		var svcs [2]*policy.Service
		k := mustKey(b, keyA)
		for m, on := range []bool{false, true} {
			store := benchStore(b, openSQLite(b), on)
			if err := store.CheckEncryption(ctx); err != nil {
				b.Fatal(err)
			}
			svc, err := policy.New(store, auth.DefaultModel, policy.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := svc.CreateRole(ctx, k, "writer"); err != nil || !ok {
				b.Fatalf("CreateRole = %v, %v", ok, err)
			}
			svcs[m] = svc
		}
		pair(b, 16, func(on bool, i int) error {
			perm := fmt.Sprintf("perm-%d", i%512)
			var err error
			if (i/512)%2 == 0 {
				_, err = svcs[btoi(on)].Grant(ctx, k, "writer", perm)
			} else {
				_, err = svcs[btoi(on)].Revoke(ctx, k, "writer", perm)
			}
			return err
		})
	})
	// A cold load of a tenant of 1 000 rules (900 grants, 100 memberships,
	// 10 roles): with encryption every name is decrypted.
	b.Run("load", func(b *testing.B) {
		var stores [2]*policydb.Store
		st, _ := genTenantShape(rand.New(rand.NewPCG(1000, 4)), 10, 90, 100, 50, 1)
		if n := len(st.grants) + len(st.members); n != 1_000 {
			b.Fatalf("the tenant has %d rules, want 1000", n)
		}
		for m, on := range []bool{false, true} {
			t := st
			_, stores[m] = benchTenantDB(b, fmt.Sprint("load-", on), &t, on)
		}
		pair(b, 1, func(on bool, _ int) error {
			// A new Service holds no tenant: the first request loads it.
			svc, err := policy.New(stores[btoi(on)], auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
			if err != nil {
				return err
			}
			roles, err := svc.ListRoles(ctx, st.key)
			if err == nil && len(roles) != len(st.roles) {
				err = fmt.Errorf("%d roles loaded, want %d", len(roles), len(st.roles))
			}
			return err
		})
	})
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}
