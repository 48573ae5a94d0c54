package policy_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// TestColdCheckIsOneStatement: the first check of a tenant not in memory
// costs one statement and no transaction, with field encryption off and
// on, under the default model (with a described role and a time-bound
// grant) and under a pattern model; the loaded tenant answers as the one
// that wrote it.
func TestColdCheckIsOneStatement(t *testing.T) {
	for _, d := range backends {
		t.Run(d.name, func(t *testing.T) {
			db := d.open(t)
			count := testenv.CountStatements(t, db)
			for i, tc := range []struct {
				name      string
				encrypted bool
				model     string
			}{
				{"clear", false, auth.DefaultModel},
				{"encrypted", true, auth.DefaultModel},
				{"pattern model", false, readModel(t, "keymatch2.conf")},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx := context.Background()
					store := policydb.New(db)
					if tc.encrypted {
						keys, err := fieldcrypt.NewKeyring(benchEncryptionKey)
						if err != nil {
							t.Fatal(err)
						}
						store = store.WithEncryption(keys)
					}
					k := policy.KeyHash(fmt.Sprintf("%064x", i+1))
					writer := newServiceOn(t, store, tc.model)
					populate(t, ctx, writer, k)
					desc := "Operators"
					if _, _, err := writer.PutRole(ctx, k, "ops", true, &desc); err != nil {
						t.Fatal(err)
					}
					timed := tc.model == auth.DefaultModel
					if timed {
						until := time.Now().Add(time.Hour)
						if ok, err := writer.PutGrantUntil(ctx, k, "viewer", "export", &until); err != nil || !ok {
							t.Fatalf("PutGrantUntil = %v, %v", ok, err)
						}
					}

					cold := newServiceOn(t, store, tc.model)
					count.Take()
					if ok, err := cold.HasPermission(ctx, k, "alice", "read"); err != nil || !ok {
						t.Fatalf("cold HasPermission(alice, read) = %v, %v; want true", ok, err)
					}
					if pooled, begins, texts := count.Take(); pooled != 1 || begins != 0 || len(texts) != 1 {
						t.Errorf("a cold check ran %d statements and %d transactions: %q; want one statement, no transaction",
							pooled, begins, texts)
					}
					roles, err := cold.ListRoles(ctx, k)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for _, r := range roles {
						s := r.Name
						if r.Description != nil {
							s += "=" + *r.Description
						}
						got = append(got, s)
					}
					if want := "admin ops=Operators viewer"; strings.Join(got, " ") != want {
						t.Errorf("ListRoles = %q, want %q", got, want)
					}
					if timed {
						if ok, err := cold.HasPermission(ctx, k, "bob", "export"); err != nil || !ok {
							t.Errorf("HasPermission of a time-bound grant = %v, %v; want true", ok, err)
						}
					}
					if pooled, begins, _ := count.Take(); pooled != 0 || begins != 0 {
						t.Errorf("reads of the loaded tenant ran %d statements, %d transactions; want none", pooled, begins)
					}
				})
			}
		})
	}
}

func newServiceOn(t testing.TB, store policy.Store, modelText string) *policy.Service {
	t.Helper()
	s, err := policy.New(store, modelText, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	return s
}

// heldStore holds its first load until released.
type heldStore struct {
	policy.Store
	loads   atomic.Int64
	entered chan struct{} // closed when the first load begins
	release chan struct{} // closed to let it go on
}

func (s *heldStore) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (policy.Snapshot, bool, error) {
	if s.loads.Add(1) == 1 {
		close(s.entered)
		<-s.release
	}
	return s.Store.LoadTenant(ctx, key, add)
}

// waitingOnTenants returns how many goroutines wait for a tenant's lock.
func waitingOnTenants() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "policy.(*writeLock).lock(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestConcurrentColdReadsShareOneStatement: reads of one tenant that is
// not in memory, arriving while it loads, wait for that load and share
// it: one statement for all of them, whether the tenant exists or not. A
// tenant that does not exist is not kept in memory.
func TestConcurrentColdReadsShareOneStatement(t *testing.T) {
	const racers = 16
	for _, d := range backends {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			db := d.open(t)
			k := mustKey(t, keyA)
			populate(t, ctx, newService(t, db, auth.DefaultModel, policy.Options{}), k)
			count := testenv.CountStatements(t, db)
			for _, tc := range []struct {
				name   string
				key    policy.KeyHash
				want   bool
				loaded int
			}{
				{"existing tenant", k, true, 1},
				{"missing tenant", policy.KeyHash(strings.Repeat("e", 64)), false, 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					store := &heldStore{Store: policydb.New(db), entered: make(chan struct{}), release: make(chan struct{})}
					svc := newServiceOn(t, store, auth.DefaultModel)
					count.Take()
					answers := make(chan error, racers)
					check := func() {
						ok, err := svc.HasPermission(ctx, tc.key, "alice", "read")
						if err == nil && ok != tc.want {
							err = fmt.Errorf("answered %v", ok)
						}
						answers <- err
					}
					go check()
					<-store.entered
					var wg sync.WaitGroup
					for range racers - 1 {
						wg.Add(1)
						go func() { defer wg.Done(); check() }()
					}
					for waitingOnTenants() < racers-1 {
						runtime.Gosched()
					}
					close(store.release)
					wg.Wait()
					for range racers {
						if err := <-answers; err != nil {
							t.Errorf("HasPermission: %v; want %v", err, tc.want)
						}
					}
					if n := store.loads.Load(); n != 1 {
						t.Errorf("%d loads for %d concurrent first reads, want 1", n, racers)
					}
					if pooled, begins, texts := count.Take(); pooled != 1 || begins != 0 {
						t.Errorf("%d concurrent first reads ran %d statements and %d transactions: %q; want one statement",
							racers, pooled, begins, texts)
					}
					if n := svc.LoadedTenants(); n != tc.loaded {
						t.Errorf("LoadedTenants = %d, want %d", n, tc.loaded)
					}
				})
			}
		})
	}
}
