package policy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/policy"
)

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// admission counts the times it is asked and refuses once its budget is
// spent.
type admission struct {
	mu     sync.Mutex
	budget int
	asked  int
}

var errNoBudget = errors.New("no budget left")

func (a *admission) admit(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked++
	if a.budget == 0 {
		return errNoBudget
	}
	a.budget--
	return nil
}

func (a *admission) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked
}

// Only a write that creates a tenant is asked about: not a second write,
// not a write to a tenant another process created, not a read of an
// unknown tenant (which creates nothing). A refused write creates nothing,
// in the database or in memory.
func TestAdmissionOnlyForCreatingWrites(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	adm := &admission{budget: 1}
	svc := newService(t, db, auth.DefaultModel, policy.Options{Admit: adm.admit})
	other := newService(t, db, auth.DefaultModel, policy.Options{})
	a, b, c := mustKey(t, keyA), mustKey(t, keyB), mustKey(t, "5b0f2a8c-3d6e-4f71-a9b2-c4d5e6f70812")
	if _, err := other.CreateRole(ctx, c, "made-elsewhere"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		what    string
		call    func() error
		asked   int
		refused bool
	}{
		{"read of an unknown tenant", func() error { _, err := svc.HasPermission(ctx, a, "u", "p"); return err }, 0, false},
		{"list of an unknown tenant", func() error { _, err := svc.ListRoles(ctx, a); return err }, 0, false},
		{"first write creates the tenant", func() error { _, err := svc.CreateRole(ctx, a, "admin"); return err }, 1, false},
		{"second write to it", func() error { _, err := svc.Grant(ctx, a, "admin", "read"); return err }, 1, false},
		{"write that answers false still existing", func() error { _, err := svc.AddMember(ctx, a, "u", "nope"); return err }, 1, false},
		{"write to a tenant created elsewhere, not loaded here", func() error { _, err := svc.CreateRole(ctx, c, "x"); return err }, 1, false},
		{"write that would create another tenant, budget spent", func() error { _, err := svc.CreateRole(ctx, b, "admin"); return err }, 2, true},
		{"idempotent delete on an unknown tenant is a creation too", func() error { _, err := svc.RemoveMember(ctx, b, "u", "r"); return err }, 3, true},
	}
	for _, s := range steps {
		err := s.call()
		if s.refused {
			if !errors.Is(err, policy.ErrTenantCreationRefused) || !errors.Is(err, errNoBudget) {
				t.Errorf("%s: err = %v, want ErrTenantCreationRefused wrapping the admission's error", s.what, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", s.what, err)
		}
		if got := adm.count(); got != s.asked {
			t.Errorf("after %s: admission asked %d times, want %d", s.what, got, s.asked)
		}
	}
	if _, found := tenantDomain(t, db, b); found {
		t.Errorf("a refused write created its tenant in the database")
	}
	if _, found := tenantDomain(t, db, a); !found {
		t.Errorf("an admitted write did not create its tenant")
	}
	if got := svc.LoadedTenants(); got != 2 {
		t.Errorf("LoadedTenants() = %d, want 2 (a refused creation holds no memory)", got)
	}
	if roles, err := svc.ListRoles(ctx, b); err != nil || len(roles) != 0 {
		t.Errorf("ListRoles of the refused tenant = %v, %v; want none", roles, err)
	}
}

// tenantCost is the estimate of a tenant with one role and no rules.
const tenantCost = policy.TenantBaseBytes + policy.RuleBytes

// Past the budget, the least recently used tenants leave memory (not only
// idle ones), keeping the estimate within the budget and the tenants held
// bounded; an evicted tenant answers as before, loaded again.
func TestMemoryBudgetEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	const budget = 10*tenantCost + tenantCost/2 // room for 10 tenants
	clk := newTestClock()
	svc := newService(t, db, auth.DefaultModel, policy.Options{MemoryBudget: budget, IdleTimeout: time.Hour})
	policy.SetClock(svc, clk.now)
	rng := rand.New(rand.NewPCG(7, 7))
	keys := make([]policy.KeyHash, 40)
	for i := range keys {
		keys[i] = mustKey(t, randomKey(rng))
	}
	use := func(i int) {
		t.Helper()
		clk.advance(2 * time.Second) // uses are recorded to the second
		if ok, err := svc.CreateRole(ctx, keys[i], "r"); err != nil || !ok {
			t.Fatalf("CreateRole(tenant %d) = %v, %v", i, ok, err)
		}
	}
	for i := range 10 {
		use(i)
	}
	if got, want := svc.LoadedBytes(), int64(10*tenantCost); got != want {
		t.Fatalf("LoadedBytes() with 10 tenants of one role = %d, want %d", got, want)
	}
	if idle, evicted := svc.Evictions(); idle+evicted != 0 {
		t.Fatalf("evictions under the budget: %d idle, %d budget", idle, evicted)
	}
	// Tenant 0 is used again: it is now the most recent of the first ten.
	clk.advance(2 * time.Second)
	if _, err := svc.HasPermission(ctx, keys[0], "u", "p"); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < len(keys); i++ {
		use(i)
		if got := svc.LoadedBytes(); got > budget {
			t.Fatalf("after tenant %d: LoadedBytes() = %d, over the budget %d", i, got, budget)
		}
		if got := svc.LoadedTenants(); got > 10 {
			t.Fatalf("after tenant %d: %d tenants loaded, want at most 10", i, got)
		}
	}
	_, evicted := svc.Evictions()
	if evicted < uint64(len(keys)-10) {
		t.Errorf("budget evictions = %d, want at least %d", evicted, len(keys)-10)
	}
	// Every tenant, evicted or not, answers from the database's state.
	for i, k := range keys {
		clk.advance(2 * time.Second)
		roles, err := svc.ListRoles(ctx, k)
		if err != nil || len(roles) != 1 || roles[0].Name != "r" {
			t.Fatalf("ListRoles(tenant %d) after evictions = %v, %v; want [r]", i, roles, err)
		}
		if got := svc.LoadedBytes(); got > budget {
			t.Fatalf("reading tenant %d: LoadedBytes() = %d, over the budget %d", i, got, budget)
		}
	}
	// The estimate is the sum over the tenants held: evicting them all
	// brings it to zero.
	clk.advance(2 * time.Hour)
	svc.EvictIdle()
	if got, n := svc.LoadedBytes(), svc.LoadedTenants(); got != 0 || n != 0 {
		t.Errorf("after evicting every tenant: LoadedBytes() = %d with %d tenants, want 0", got, n)
	}
}

// The order of eviction is by last use: of ten tenants, the one used most
// recently stays when the eleventh arrives and the sweep makes room.
func TestMemoryBudgetKeepsRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	const budget = 10*tenantCost + tenantCost/2
	clk := newTestClock()
	svc := newService(t, db, auth.DefaultModel, policy.Options{MemoryBudget: budget, IdleTimeout: time.Hour})
	policy.SetClock(svc, clk.now)
	rng := rand.New(rand.NewPCG(8, 8))
	keys := make([]policy.KeyHash, 11)
	for i := range keys {
		keys[i] = mustKey(t, randomKey(rng))
	}
	for i := range 10 {
		clk.advance(2 * time.Second)
		if _, err := svc.CreateRole(ctx, keys[i], "r"); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(2 * time.Second)
	if _, err := svc.HasPermission(ctx, keys[0], "u", "p"); err != nil { // 0 is now the most recent
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	if _, err := svc.CreateRole(ctx, keys[10], "r"); err != nil { // over the budget: a sweep
		t.Fatal(err)
	}
	// The sweep goes down to nine tenths of the budget: two tenants leave,
	// the two least recently used (1 and 2).
	if got := svc.LoadedTenants(); got != 9 {
		t.Fatalf("after the sweep %d tenants loaded, want 9", got)
	}
	// Reading a held tenant loads nothing; reading an evicted one loads it
	// (one more tenant, still within the budget: no sweep).
	for _, tc := range []struct {
		i    int
		held bool
	}{{0, true}, {3, true}, {9, true}, {10, true}, {1, false}} {
		before := svc.LoadedTenants()
		if roles, err := svc.ListRoles(ctx, keys[tc.i]); err != nil || len(roles) != 1 {
			t.Fatalf("ListRoles(tenant %d) = %v, %v", tc.i, roles, err)
		}
		after := svc.LoadedTenants()
		if held := after == before; held != tc.held {
			t.Errorf("tenant %d held = %v, want %v (%d tenants before the read, %d after)", tc.i, held, tc.held, before, after)
		}
	}
}

// Many tenants through a small budget: the estimate stays within it, the
// tenants held stay bounded, and so does the live heap they take.
func TestMemoryBudgetBoundsManyTenants(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	const n = 1500
	rng := rand.New(rand.NewPCG(9, 9))
	keys := make([]policy.KeyHash, n)
	for i := range keys {
		keys[i] = mustKey(t, randomKey(rng))
	}
	writer := newService(t, db, auth.DefaultModel, policy.Options{MemoryBudget: 1 << 20})
	for _, k := range keys {
		if _, err := writer.CreateRole(ctx, k, "r"); err != nil {
			t.Fatal(err)
		}
	}
	const budget = 1 << 20
	maxHeld := int(budget / tenantCost)
	svc := newService(t, db, auth.DefaultModel, policy.Options{MemoryBudget: budget, IdleTimeout: time.Hour})
	before := heapInUse()
	for i, k := range keys {
		if _, err := svc.HasPermission(ctx, k, "u", "p"); err != nil {
			t.Fatal(err)
		}
		if got := svc.LoadedBytes(); got > budget {
			t.Fatalf("after %d tenants: LoadedBytes() = %d, over the budget %d", i+1, got, budget)
		}
		if got := svc.LoadedTenants(); got > maxHeld {
			t.Fatalf("after %d tenants: %d held, want at most %d", i+1, got, maxHeld)
		}
	}
	grown := heapInUse() - before
	// Unbounded, these tenants take about n × 6.8 KB ≈ 10 MB of heap.
	const allowance = 3 << 20
	if grown > budget+allowance {
		t.Errorf("live heap grew by %.1f MiB loading %d tenants with a budget of %.1f MiB (allowance %.1f MiB)",
			float64(grown)/(1<<20), n, float64(budget)/(1<<20), float64(allowance)/(1<<20))
	}
	t.Logf("%d tenants through a %d KiB budget: %d held, %d KiB estimated, live heap +%d KiB",
		n, budget>>10, svc.LoadedTenants(), svc.LoadedBytes()>>10, grown>>10)
	_, evicted := svc.Evictions()
	if evicted == 0 {
		t.Errorf("no budget evictions")
	}
}

// Evictions by budget run while other requests check and change the same
// tenants: nothing fails, and every tenant ends as the database has it (a
// change is never applied to an evicted copy).
func TestMemoryBudgetConcurrentReadsWrites(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	rng := rand.New(rand.NewPCG(10, 10))
	keys := make([]policy.KeyHash, 4)
	for i := range keys {
		keys[i] = mustKey(t, randomKey(rng))
	}
	setup := newService(t, db, auth.DefaultModel, policy.Options{})
	for _, k := range keys {
		populate(t, ctx, setup, k)
	}
	// Room for about two of these tenants: most loads evict another.
	svc := newService(t, db, auth.DefaultModel, policy.Options{MemoryBudget: 2*policy.TenantBaseBytes + 24*policy.RuleBytes})
	stop := make(chan struct{})
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(n+g)%len(keys)]
				var err error
				switch n % 3 {
				case 0:
					_, err = svc.HasPermission(ctx, k, "alice", "read")
				case 1:
					_, err = svc.UserPermissions(ctx, k, "bob")
				case 2:
					_, err = svc.WhichUsersCan(ctx, k, "deploy")
				}
				if err != nil {
					report(err)
				}
			}
		}()
	}
	for i := range 80 {
		k := keys[i%len(keys)]
		perm, user := fmt.Sprintf("p%d", i%7), fmt.Sprintf("u%d", i%5)
		var err error
		switch i % 4 {
		case 0:
			_, err = svc.Grant(ctx, k, "ops", perm)
		case 1:
			_, err = svc.AddMember(ctx, k, user, "ops")
		case 2:
			_, err = svc.Revoke(ctx, k, "ops", perm)
		case 3:
			_, err = svc.RemoveMember(ctx, k, user, "ops")
		}
		if err != nil {
			report(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	if _, evicted := svc.Evictions(); evicted == 0 {
		t.Errorf("no budget evictions: the test did not exercise them")
	}
	fresh := newService(t, db, auth.DefaultModel, policy.Options{})
	for i, k := range keys {
		if got, want := answers(t, ctx, svc, k), answers(t, ctx, fresh, k); got != want {
			t.Errorf("tenant %d after concurrent use, answers:\n%s\nwant (from the database):\n%s", i, got, want)
		}
	}
}
