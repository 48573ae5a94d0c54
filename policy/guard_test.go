package policy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// errConnRefused stands for an infrastructure failure of the database.
var errConnRefused = errors.New("dial tcp 127.0.0.1:5432: connection refused")

type outage int

const (
	up      outage = iota
	refused        // every call fails at once with errConnRefused
	hanging        // every call waits until its context ends (a black hole)
)

// outageStore is a real store that can be switched into an outage.
type outageStore struct {
	policy.Store
	mode  atomic.Int32
	calls atomic.Int64 // calls that reached the store during an outage
}

func (s *outageStore) fault(ctx context.Context) error {
	switch outage(s.mode.Load()) {
	case refused:
		s.calls.Add(1)
		return fmt.Errorf("find tenant: %w", errConnRefused)
	case hanging:
		s.calls.Add(1)
		<-ctx.Done()
		return fmt.Errorf("find tenant: %w", ctx.Err())
	}
	return nil
}

func (s *outageStore) FindTenant(ctx context.Context, key policy.KeyHash) (int64, bool, error) {
	if err := s.fault(ctx); err != nil {
		return 0, false, err
	}
	return s.Store.FindTenant(ctx, key)
}

func (s *outageStore) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (policy.Snapshot, bool, error) {
	if err := s.fault(ctx); err != nil {
		return policy.Snapshot{}, false, err
	}
	return s.Store.LoadTenant(ctx, key, add)
}

func (s *outageStore) Change(ctx context.Context, fn func(ctx context.Context, tx policy.Tx) error) error {
	if err := s.fault(ctx); err != nil {
		return err
	}
	return s.Store.Change(ctx, fn)
}

// guarded is a service over an outage store with breakers that count only
// errConnRefused and timeouts (as sqldb.Unavailable would).
type guarded struct {
	svc           *policy.Service
	store         *outageStore
	reads, writes *breaker.Breaker
}

func newGuarded(t *testing.T, errs int, open, timeout time.Duration, failure func(error) bool) guarded {
	t.Helper()
	if failure == nil {
		failure = func(err error) bool { return errors.Is(err, errConnRefused) }
	}
	store := &outageStore{Store: policydb.New(openSQLite(t))}
	o := breaker.Options{Errors: errs, Timeout: open, CallTimeout: timeout, Failure: failure}
	ro, wo := o, o
	ro.Name, wo.Name = "database_read", "database_write"
	g := guarded{store: store, reads: breaker.New(ro), writes: breaker.New(wo)}
	svc, err := policy.New(policydb.Guard(store, g.reads, g.writes), auth.DefaultModel, policy.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	g.svc = svc
	return g
}

func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// Writes fail with ErrUnavailable while the database refuses connections;
// after the threshold the breaker opens and writes fail at once, without
// reaching the store, with a retry hint.
func TestBreakerOpensAfterThresholdAndFailsFast(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t, 3, time.Minute, time.Second, nil)
	k := mustKey(t, keyA)
	populate(t, ctx, g.svc, k)
	g.store.mode.Store(int32(refused))

	for i := 1; i <= 3; i++ {
		ok, err := g.svc.Grant(ctx, k, "admin", fmt.Sprintf("p%d", i))
		if ok || !errors.Is(err, policy.ErrUnavailable) || !errors.Is(err, errConnRefused) {
			t.Fatalf("write %d during the outage = %v, %v; want false, ErrUnavailable wrapping the cause", i, ok, err)
		}
		if errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("write %d rejected before the threshold of 3", i)
		}
	}
	if got := g.writes.State(); got != breaker.Open {
		t.Fatalf("write breaker = %v after 3 failures, want open", got)
	}
	before := g.store.calls.Load()
	for i := 0; i < 50; i++ {
		start := time.Now()
		ok, err := g.svc.CreateRole(ctx, k, "late")
		took := time.Since(start)
		if ok || !errors.Is(err, policy.ErrUnavailable) || !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("write with the breaker open = %v, %v; want false, ErrUnavailable (open)", ok, err)
		}
		if took > 10*time.Millisecond {
			t.Errorf("rejected write took %v, want under 10ms", took)
		}
		if ra := retryAfter(err); ra < 30*time.Second || ra > time.Minute {
			t.Errorf("retry hint %v, want the rest of the minute the breaker stays open", ra)
		}
	}
	if n := g.store.calls.Load() - before; n != 0 {
		t.Errorf("%d writes reached the store while the breaker was open", n)
	}
	if got := g.writes.Rejected(); got != 50 {
		t.Errorf("Rejected = %d, want 50", got)
	}
}

// While the database is down, a loaded tenant answers every read from
// memory; a tenant not loaded fails fast with ErrUnavailable, never with a
// false or an empty answer.
func TestLoadedTenantsAnswerDuringOutage(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t, 1, time.Minute, time.Second, nil)
	loaded, cold := mustKey(t, keyA), mustKey(t, keyB)
	populate(t, ctx, g.svc, loaded)
	populate(t, ctx, g.svc, cold)
	// Drop cold from memory: a fresh service over the same store, which has
	// loaded only the first tenant.
	svc, err := policy.New(policydb.Guard(g.store, g.reads, g.writes), auth.DefaultModel, policy.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := svc.HasPermission(ctx, loaded, "alice", "read"); err != nil || !ok {
		t.Fatalf("HasPermission before the outage = %v, %v", ok, err)
	}
	g.store.mode.Store(int32(refused))

	reads := map[string]func(k policy.KeyHash) (any, error){
		"HasPermission":     func(k policy.KeyHash) (any, error) { return svc.HasPermission(ctx, k, "alice", "read") },
		"RoleHasPermission": func(k policy.KeyHash) (any, error) { return svc.RoleHasPermission(ctx, k, "admin", "write") },
		"IsMember":          func(k policy.KeyHash) (any, error) { return svc.IsMember(ctx, k, "alice", "admin") },
		"UserPermissions":   func(k policy.KeyHash) (any, error) { return svc.UserPermissions(ctx, k, "alice") },
		"UserRoles":         func(k policy.KeyHash) (any, error) { return svc.UserRoles(ctx, k, "alice") },
		"Members":           func(k policy.KeyHash) (any, error) { return svc.Members(ctx, k, "ops") },
		"ListRoles":         func(k policy.KeyHash) (any, error) { return svc.ListRoles(ctx, k) },
		"RolePermissions":   func(k policy.KeyHash) (any, error) { return svc.RolePermissions(ctx, k, "admin") },
		"WhichRolesCan":     func(k policy.KeyHash) (any, error) { return svc.WhichRolesCan(ctx, k, "read") },
		"WhichUsersCan":     func(k policy.KeyHash) (any, error) { return svc.WhichUsersCan(ctx, k, "read") },
		"RoleParents":       func(k policy.KeyHash) (any, error) { return svc.RoleParents(ctx, k, "admin") },
	}
	for name, call := range reads {
		got, err := call(loaded)
		if err != nil {
			t.Errorf("%s on a loaded tenant during the outage: %v", name, err)
		}
		if fmt.Sprint(got) == "false" || fmt.Sprint(got) == "[]" {
			t.Errorf("%s on a loaded tenant during the outage = %v, want its answer from memory", name, got)
		}
	}
	for name, call := range reads {
		start := time.Now()
		_, err := call(cold)
		if !errors.Is(err, policy.ErrUnavailable) {
			t.Errorf("%s on a tenant not loaded during the outage: %v, want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 10*time.Millisecond {
			t.Errorf("%s on a tenant not loaded took %v, want a fast failure", name, took)
		}
	}
	if got := g.reads.State(); got != breaker.Open {
		t.Errorf("read breaker = %v, want open", got)
	}
}

// A half-open breaker lets a probe through once its timeout has passed;
// when the database is back, writes succeed again and the breaker closes.
func TestBreakerRecoversThroughHalfOpen(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t, 2, 30*time.Millisecond, time.Second, nil)
	k := mustKey(t, keyA)
	populate(t, ctx, g.svc, k)
	g.store.mode.Store(int32(refused))
	for i := 0; i < 3; i++ {
		_, _ = g.svc.Grant(ctx, k, "admin", "x")
	}
	if got := g.writes.State(); got != breaker.Open {
		t.Fatalf("write breaker = %v, want open", got)
	}
	g.store.mode.Store(int32(up))
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := g.svc.Grant(ctx, k, "admin", "x")
		if err == nil {
			if !ok {
				t.Fatalf("Grant after recovery = false")
			}
			break
		}
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("Grant while recovering: %v, want only fast rejections", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not recover within 5s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := g.writes.State(); got != breaker.Closed {
		t.Errorf("write breaker after a successful probe = %v, want closed", got)
	}
	if ok, err := g.svc.HasPermission(ctx, k, "alice", "x"); err != nil || !ok {
		t.Errorf("the recovered write is not in memory: %v, %v", ok, err)
	}
}

// Domain results and validation errors never count against the database,
// even with a breaker that would count any error.
func TestDomainResultsDoNotTripBreaker(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t, 2, time.Minute, time.Second, func(error) bool { return true })
	k := mustKey(t, keyA)
	populate(t, ctx, g.svc, k)
	for _, tc := range []struct {
		name    string
		call    func() (bool, error)
		wantErr error
	}{
		{"grant to a missing role", func() (bool, error) { return g.svc.Grant(ctx, k, "ghost", "read") }, nil},
		{"member of a missing role", func() (bool, error) { return g.svc.AddMember(ctx, k, "zed", "ghost") }, nil},
		{"delete a missing role", func() (bool, error) { return g.svc.DeleteRole(ctx, k, "ghost") }, nil},
		{"inheritance cycle", func() (bool, error) { return g.svc.AddRoleParent(ctx, k, "viewer", "admin") }, policy.ErrRoleCycle},
		{"self parent", func() (bool, error) { return g.svc.AddRoleParent(ctx, k, "admin", "admin") }, policy.ErrRoleCycle},
		{"bad role name", func() (bool, error) { return g.svc.CreateRole(ctx, k, "no spaces") }, policy.ErrInvalidName},
		{"bad user name", func() (bool, error) { return g.svc.AddMember(ctx, k, "a/b", "admin") }, policy.ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 5; i++ {
				ok, err := tc.call()
				if ok {
					t.Fatalf("call %d = true, want false", i)
				}
				if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("call %d error = %v, want %v", i, err, tc.wantErr)
				}
			}
			if got := g.writes.State(); got != breaker.Closed {
				t.Errorf("write breaker = %v, want closed", got)
			}
			if got := g.writes.Failures(); got != 0 {
				t.Errorf("write breaker counted %d failures, want 0", got)
			}
		})
	}
}

// Against a black-holed database every write answers within the operation
// timeout, also when many writers queue on one tenant's lock (waiting for
// the lock is bounded, and not counted against the database); once the
// breaker is open they fail at once.
func TestBlackHoledStoreBoundsWrites(t *testing.T) {
	ctx := context.Background()
	const timeout = 100 * time.Millisecond
	g := newGuarded(t, 2, time.Minute, timeout, nil)
	k := mustKey(t, keyA)
	keys := []policy.KeyHash{k, mustKey(t, keyB),
		mustKey(t, "3c9a1f70-8e2b-4d61-a5f4-0b7e6c2d9a18"), mustKey(t, "b7e20d4c-61f9-4a3e-8c05-2d9f7a1e6b34")}
	for _, k := range keys {
		populate(t, ctx, g.svc, k)
	}
	g.store.mode.Store(int32(hanging))

	const writers = 20
	var wg sync.WaitGroup
	took := make([]time.Duration, writers)
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			// Five writers per tenant: one waits on the database, the
			// others on the tenant's lock.
			_, errs[i] = g.svc.Grant(ctx, keys[i%len(keys)], "admin", fmt.Sprintf("p%d", i))
			took[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	for i := range errs {
		if !errors.Is(errs[i], policy.ErrUnavailable) {
			t.Errorf("writer %d: %v, want ErrUnavailable", i, errs[i])
		}
		// The bound is the timeout plus scheduling slack, never a queue of
		// timeouts one after another.
		if took[i] > 10*timeout {
			t.Errorf("writer %d answered after %v, want within about %v", i, took[i], timeout)
		}
	}
	if got := g.writes.State(); got != breaker.Open {
		t.Errorf("write breaker = %v after timeouts, want open", got)
	}
	start := time.Now()
	if _, err := g.svc.Grant(ctx, k, "admin", "late"); !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("write with the breaker open: %v, want ErrOpen", err)
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("rejected write took %v", d)
	}
	// Reads of the loaded tenant never waited on the stuck writers.
	if ok, err := g.svc.HasPermission(ctx, k, "alice", "read"); err != nil || !ok {
		t.Errorf("HasPermission during the black hole = %v, %v", ok, err)
	}
}

// Ready checks past the breakers: it fails while the database is down,
// even with the breakers closed, and passes when it is back.
func TestReadyLooksPastBreakers(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Ready(ctx); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	_ = db.Close()
	if err := svc.Ready(ctx); err == nil {
		t.Errorf("Ready with the database closed = nil, want an error")
	}
}

// Ready looks past the store's breakers (the decorator unwraps): with the
// read breaker open and the database up it passes, while the service sees
// its store as down (and keeps its idle tenants).
func TestReadyLooksPastGuardedStore(t *testing.T) {
	ctx := context.Background()
	g := newGuarded(t, 1, time.Minute, time.Second, nil)
	if policy.StoreDown(g.svc) {
		t.Fatal("store down with both breakers closed")
	}
	g.store.mode.Store(int32(refused))
	if _, err := g.svc.HasPermission(ctx, mustKey(t, keyA), "alice", "read"); !errors.Is(err, policy.ErrUnavailable) {
		t.Fatalf("HasPermission of a tenant not loaded during the outage: %v, want ErrUnavailable", err)
	}
	if got := g.reads.State(); got != breaker.Open {
		t.Fatalf("read breaker = %v, want open", got)
	}
	if !policy.StoreDown(g.svc) {
		t.Error("store not down with the read breaker open")
	}
	g.store.mode.Store(int32(up))
	if err := g.svc.Ready(ctx); err != nil {
		t.Errorf("Ready with the database back and the read breaker still open = %v, want nil", err)
	}
}
