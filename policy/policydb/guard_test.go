package policydb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// fakeStore implements every store interface of the policy core; each call
// is counted and fails with err.
type fakeStore struct {
	err   error
	calls atomic.Int64
}

func (f *fakeStore) hit() error { f.calls.Add(1); return f.err }

func (f *fakeStore) FindTenant(context.Context, policy.KeyHash) (int64, bool, error) {
	return 0, false, f.hit()
}
func (f *fakeStore) LoadTenant(context.Context, policy.KeyHash, policy.RuleFunc) (policy.Snapshot, bool, error) {
	return policy.Snapshot{}, false, f.hit()
}
func (f *fakeStore) Change(context.Context, func(context.Context, policy.Tx) error) error {
	return f.hit()
}
func (f *fakeStore) Ping(context.Context) error { return f.hit() }
func (f *fakeStore) Revision(context.Context, policy.KeyHash) (int64, int64, bool, error) {
	return 0, 0, false, f.hit()
}
func (f *fakeStore) ReadChanges(context.Context, int64, policy.Position, int) (policy.ChangeBatch, error) {
	return policy.ChangeBatch{}, f.hit()
}
func (f *fakeStore) PurgeChanges(context.Context, time.Time) (int64, error) { return 0, f.hit() }
func (f *fakeStore) DueExpiries(context.Context, time.Time, int) ([]policy.DueExpiry, error) {
	return nil, f.hit()
}
func (f *fakeStore) FindKey(context.Context, policy.KeyHash) (policy.KeyRecord, bool, error) {
	return policy.KeyRecord{}, false, f.hit()
}
func (f *fakeStore) RotateKey(context.Context, policy.KeyHash, policy.KeyHash, time.Time,
	func(context.Context, policy.KeyHash) error) error {
	return f.hit()
}
func (f *fakeStore) CreateTenant(context.Context, policy.KeyHash) (int64, error) { return 0, f.hit() }
func (f *fakeStore) RevokeKeys(context.Context, policy.KeySelection, time.Time,
	func(context.Context, policy.KeyHash, []policy.KeyHash) error) ([]policy.KeyHash, error) {
	return nil, f.hit()
}
func (f *fakeStore) ListTenants(context.Context) ([]policy.TenantInfo, error) { return nil, f.hit() }
func (f *fakeStore) ListKeys(context.Context, int64) ([]policy.KeyRecord, bool, error) {
	return nil, false, f.hit()
}
func (f *fakeStore) TouchKey(context.Context, policy.KeyHash, time.Time) error { return f.hit() }
func (f *fakeStore) TenantByID(context.Context, int64) (policy.TenantInfo, bool, error) {
	return policy.TenantInfo{}, false, f.hit()
}
func (f *fakeStore) TenantByHandle(context.Context, policy.KeyHash) (policy.TenantInfo, bool, error) {
	return policy.TenantInfo{}, false, f.hit()
}

// guardedCall is one method of a guarded store, and the breaker it must go
// through.
type guardedCall struct {
	name  string
	write bool
	call  func(ctx context.Context, f *fakeStore, reads, writes *breaker.Breaker) error
}

func guardedCalls() []guardedCall {
	const k = policy.KeyHash("k")
	store := func(f *fakeStore, r, w *breaker.Breaker) policy.Store { return policydb.Guard(f, r, w) }
	keys := func(f *fakeStore, r, w *breaker.Breaker) policy.KeyStore { return policydb.GuardKeys(f, r, w) }
	tenants := func(f *fakeStore, r, _ *breaker.Breaker) policy.TenantStore { return policydb.GuardTenants(f, r) }
	return []guardedCall{
		{"FindTenant", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := store(f, r, w).FindTenant(ctx, k)
			return err
		}},
		{"LoadTenant", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := store(f, r, w).LoadTenant(ctx, k, nil)
			return err
		}},
		{"Change", true, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			return store(f, r, w).Change(ctx, nil)
		}},
		{"FindKey", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := keys(f, r, w).FindKey(ctx, k)
			return err
		}},
		{"RotateKey", true, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			return keys(f, r, w).RotateKey(ctx, k, "n", time.Now(), nil)
		}},
		{"CreateTenant", true, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, err := keys(f, r, w).CreateTenant(ctx, k)
			return err
		}},
		{"RevokeKeys", true, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, err := keys(f, r, w).RevokeKeys(ctx, policy.KeySelection{Key: k}, time.Now(), nil)
			return err
		}},
		{"ListTenants", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, err := keys(f, r, w).ListTenants(ctx)
			return err
		}},
		{"ListKeys", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := keys(f, r, w).ListKeys(ctx, 1)
			return err
		}},
		{"TouchKey", true, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			return keys(f, r, w).TouchKey(ctx, k, time.Now())
		}},
		{"TenantByID", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := tenants(f, r, w).TenantByID(ctx, 1)
			return err
		}},
		{"TenantByHandle", false, func(ctx context.Context, f *fakeStore, r, w *breaker.Breaker) error {
			_, _, err := tenants(f, r, w).TenantByHandle(ctx, k)
			return err
		}},
	}
}

// newBreakers returns read and write breakers that open at the first
// counted failure; failure classifies errors (nil: every error counts).
func newBreakers(failure func(error) bool) (reads, writes *breaker.Breaker) {
	o := breaker.Options{Errors: 1, Timeout: time.Minute, Failure: failure}
	ro, wo := o, o
	ro.Name, wo.Name = "database_read", "database_write"
	return breaker.New(ro), breaker.New(wo)
}

// Every method goes through its breaker: an infrastructure failure comes
// back as policy.ErrUnavailable with the cause and a retry hint, counted by
// that breaker only; a database's own answer (a constraint) and a domain
// answer of the core pass through untouched and never count, even with a
// breaker that counts every error.
func TestGuardedStores(t *testing.T) {
	ctx := context.Background()
	refused := fmt.Errorf("dial tcp 127.0.0.1:5432: %w", syscall.ECONNREFUSED)
	constraint := errors.New("UNIQUE constraint failed: tenants.key_hash")
	for _, c := range guardedCalls() {
		for _, tc := range []struct {
			name        string
			err         error
			failure     func(error) bool
			unavailable bool
		}{
			{"infrastructure failure", refused, sqldb.Unavailable, true},
			{"constraint", constraint, sqldb.Unavailable, false},
			{"domain answer", policy.ErrKeyRotated, nil, false},
			{"role cycle", fmt.Errorf("link: %w", policy.ErrRoleCycle), nil, false},
		} {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				reads, writes := newBreakers(tc.failure)
				f := &fakeStore{err: tc.err}
				err := c.call(ctx, f, reads, writes)
				if f.calls.Load() != 1 {
					t.Fatalf("%d calls reached the store, want 1", f.calls.Load())
				}
				used, other := reads, writes
				if c.write {
					used, other = writes, reads
				}
				if !tc.unavailable {
					if err != tc.err {
						t.Errorf("%s = %v, want %v untouched", c.name, err, tc.err)
					}
					if used.Failures() != 0 || used.State() != breaker.Closed {
						t.Errorf("%s breaker: %d failures, %v; want none counted, closed", used.Name(), used.Failures(), used.State())
					}
					return
				}
				if !errors.Is(err, policy.ErrUnavailable) || !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("%s = %v, want policy.ErrUnavailable wrapping the cause", c.name, err)
				}
				if ra := retryAfter(err); ra < time.Second {
					t.Errorf("retry hint %v, want at least 1s", ra)
				}
				if used.Failures() != 1 || used.State() != breaker.Open {
					t.Errorf("%s breaker: %d failures, %v; want 1, open", used.Name(), used.Failures(), used.State())
				}
				if other.Failures() != 0 {
					t.Errorf("%s breaker counted %d failures of %s, want 0", other.Name(), other.Failures(), c.name)
				}
				// Open: the next call fails at once without reaching the
				// store, with the rest of the open period as its hint.
				err = c.call(ctx, f, reads, writes)
				if f.calls.Load() != 1 {
					t.Errorf("%s reached the store with its breaker open", c.name)
				}
				if !errors.Is(err, policy.ErrUnavailable) || !errors.Is(err, breaker.ErrOpen) {
					t.Fatalf("%s with the breaker open = %v, want a rejection matching policy.ErrUnavailable", c.name, err)
				}
				if ra := retryAfter(err); ra < 30*time.Second || ra > time.Minute {
					t.Errorf("retry hint %v with the breaker open, want the rest of its minute", ra)
				}
			})
		}
	}
}

// Ping is a probe of the database itself: not guarded. The guarded store
// unwraps to the store it decorates and is available only while both
// breakers are closed.
func TestGuardedStorePingUnwrapAvailable(t *testing.T) {
	ctx := context.Background()
	reads, writes := newBreakers(nil)
	f := &fakeStore{}
	g := policydb.Guard(f, reads, writes)
	a, ok := g.(interface{ Available() bool })
	if !ok || !a.Available() {
		t.Fatalf("guarded store with closed breakers: Available missing or false")
	}
	f.err = errors.New("down")
	_ = g.Change(ctx, nil) // opens the write breaker
	if a.Available() {
		t.Errorf("Available = true with the write breaker open")
	}
	if err := g.Ping(ctx); err != f.err || f.calls.Load() != 2 {
		t.Errorf("Ping with a breaker open = %v after %d calls, want the store's own answer", err, f.calls.Load())
	}
	u, ok := g.(interface{ Unwrap() policy.Store })
	if !ok || u.Unwrap() != policy.Store(f) {
		t.Errorf("Unwrap does not return the decorated store")
	}
}

// retryAfter is the retry hint an error carries (0: none), as the HTTP
// layer reads it.
func retryAfter(err error) time.Duration {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return h.RetryAfter()
	}
	return 0
}
