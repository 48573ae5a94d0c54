package policydb

import (
	"context"
	"time"

	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/policy"
)

// Circuit breakers at the storage boundary: Guard, GuardKeys and
// GuardTenants decorate the policy core's store interfaces so that every
// call goes through the right breaker (lookups and loads through reads,
// transactions and other writes through writes) and an infrastructure
// failure, a call the breaker rejects or a deadline that runs out comes back
// as an error matching policy.ErrUnavailable that wraps the breaker's error
// (whose RetryAfter is the retry hint). Every other error passes
// through untouched, and the core's own answers (policy.IsDomainError)
// never count against the database, whatever the breaker's classifier says.
// A nil breaker lets its calls through unguarded.

// guard reports outcomes in the policy core's terms.
var guard = breaker.Guard{Domain: policy.IsDomainError, Unavailable: policy.ErrUnavailable}

// Guard returns s with its calls run through the breakers: FindTenant and
// LoadTenant through reads, Change through writes. Ping is not guarded (it
// is a probe of the database itself). The result unwraps to s and reports
// whether both breakers are closed (see policy.Store).
func Guard(s policy.Store, reads, writes *breaker.Breaker) policy.Store {
	return &guardedStore{s: s, reads: reads, writes: writes}
}

type guardedStore struct {
	s             policy.Store
	reads, writes *breaker.Breaker
}

var _ policy.Store = (*guardedStore)(nil)

// FindTenant implements policy.Store through the read breaker.
func (g *guardedStore) FindTenant(ctx context.Context, key policy.KeyHash) (id int64, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		id, found, err = g.s.FindTenant(ctx, key)
		return err
	})
	return id, found, err
}

// LoadTenant implements policy.Store through the read breaker.
func (g *guardedStore) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (snap policy.Snapshot, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		snap, found, err = g.s.LoadTenant(ctx, key, add)
		return err
	})
	return snap, found, err
}

// Change implements policy.Store through the write breaker.
func (g *guardedStore) Change(ctx context.Context, fn func(ctx context.Context, tx policy.Tx) error) error {
	return guard.Run(ctx, g.writes, func(ctx context.Context) error { return g.s.Change(ctx, fn) })
}

// Ping implements policy.Store, unguarded.
func (g *guardedStore) Ping(ctx context.Context) error { return g.s.Ping(ctx) }

// Unwrap returns the store without its breakers (for readiness checks).
func (g *guardedStore) Unwrap() policy.Store { return g.s }

// Available reports whether both breakers are closed.
func (g *guardedStore) Available() bool {
	return (g.reads == nil || g.reads.Available()) && (g.writes == nil || g.writes.Available())
}

// GuardKeys returns s with its calls run through the breakers: FindKey,
// ListTenants and ListKeys through reads; RotateKey, RevokeKeys,
// CreateTenant and TouchKey through writes.
func GuardKeys(s policy.KeyStore, reads, writes *breaker.Breaker) policy.KeyStore {
	return &guardedKeys{s: s, reads: reads, writes: writes}
}

type guardedKeys struct {
	s             policy.KeyStore
	reads, writes *breaker.Breaker
}

var _ policy.KeyStore = (*guardedKeys)(nil)

// FindKey implements policy.KeyStore through the read breaker.
func (g *guardedKeys) FindKey(ctx context.Context, key policy.KeyHash) (rec policy.KeyRecord, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		rec, found, err = g.s.FindKey(ctx, key)
		return err
	})
	return rec, found, err
}

// RotateKey implements policy.KeyStore through the write breaker.
func (g *guardedKeys) RotateKey(ctx context.Context, current, next policy.KeyHash, expires time.Time,
	audit func(ctx context.Context, handle policy.KeyHash) error) error {
	return guard.Run(ctx, g.writes, func(ctx context.Context) error {
		return g.s.RotateKey(ctx, current, next, expires, audit)
	})
}

// CreateTenant implements policy.KeyStore through the write breaker.
func (g *guardedKeys) CreateTenant(ctx context.Context, key policy.KeyHash) (id int64, err error) {
	err = guard.Run(ctx, g.writes, func(ctx context.Context) error {
		var err error
		id, err = g.s.CreateTenant(ctx, key)
		return err
	})
	return id, err
}

// RevokeKeys implements policy.KeyStore through the write breaker.
func (g *guardedKeys) RevokeKeys(ctx context.Context, sel policy.KeySelection, at time.Time,
	audit func(ctx context.Context, handle policy.KeyHash, revoked []policy.KeyHash) error) (revoked []policy.KeyHash, err error) {
	err = guard.Run(ctx, g.writes, func(ctx context.Context) error {
		var err error
		revoked, err = g.s.RevokeKeys(ctx, sel, at, audit)
		return err
	})
	return revoked, err
}

// ListTenants implements policy.KeyStore through the read breaker.
func (g *guardedKeys) ListTenants(ctx context.Context) (list []policy.TenantInfo, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		list, err = g.s.ListTenants(ctx)
		return err
	})
	return list, err
}

// ListKeys implements policy.KeyStore through the read breaker.
func (g *guardedKeys) ListKeys(ctx context.Context, tenantID int64) (list []policy.KeyRecord, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		list, found, err = g.s.ListKeys(ctx, tenantID)
		return err
	})
	return list, found, err
}

// TouchKey implements policy.KeyStore through the write breaker.
func (g *guardedKeys) TouchKey(ctx context.Context, key policy.KeyHash, at time.Time) error {
	return guard.Run(ctx, g.writes, func(ctx context.Context) error { return g.s.TouchKey(ctx, key, at) })
}

// GuardTenants returns s with its lookups run through the read breaker.
func GuardTenants(s policy.TenantStore, reads *breaker.Breaker) policy.TenantStore {
	return &guardedTenants{s: s, reads: reads}
}

type guardedTenants struct {
	s     policy.TenantStore
	reads *breaker.Breaker
}

var _ policy.TenantStore = (*guardedTenants)(nil)

// TenantByID implements policy.TenantStore through the read breaker.
func (g *guardedTenants) TenantByID(ctx context.Context, id int64) (info policy.TenantInfo, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		info, found, err = g.s.TenantByID(ctx, id)
		return err
	})
	return info, found, err
}

// TenantByHandle implements policy.TenantStore through the read breaker.
func (g *guardedTenants) TenantByHandle(ctx context.Context, handle policy.KeyHash) (info policy.TenantInfo, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		info, found, err = g.s.TenantByHandle(ctx, handle)
		return err
	})
	return info, found, err
}

// Revision implements policy.Store through the read breaker.
func (g *guardedStore) Revision(ctx context.Context, key policy.KeyHash) (id, rev int64, found bool, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		id, rev, found, err = g.s.Revision(ctx, key)
		return err
	})
	return id, rev, found, err
}

// ReadChanges implements policy.Store through the read breaker.
func (g *guardedStore) ReadChanges(ctx context.Context, tenantID int64, after policy.Position, limit int) (b policy.ChangeBatch, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		b, err = g.s.ReadChanges(ctx, tenantID, after, limit)
		return err
	})
	return b, err
}

// PurgeChanges implements policy.Store through the write breaker.
func (g *guardedStore) PurgeChanges(ctx context.Context, before time.Time) (n int64, err error) {
	err = guard.Run(ctx, g.writes, func(ctx context.Context) error {
		var err error
		n, err = g.s.PurgeChanges(ctx, before)
		return err
	})
	return n, err
}

// DueExpiries implements policy.Store through the read breaker.
func (g *guardedStore) DueExpiries(ctx context.Context, now time.Time, limit int) (d []policy.DueExpiry, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		d, err = g.s.DueExpiries(ctx, now, limit)
		return err
	})
	return d, err
}
