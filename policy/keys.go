package policy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/breaker"
)

// Errors of client-key resolution.
var (
	// ErrKeyUnknown: the key is not registered (with registered keys only).
	ErrKeyUnknown = errors.New("policy: client key is not registered")
	// ErrKeyRevoked: the key was revoked, or its rotation grace period ended.
	ErrKeyRevoked = errors.New("policy: client key has been revoked or has expired")
)

// KeyRecord is a stored client key.
type KeyRecord struct {
	// Handle is the key hash the tenant was created with: the tenant's
	// identity everywhere else (policies, audit), whatever key is used.
	Handle    KeyHash
	TenantID  int64
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// usable reports whether the key may be used at t.
func (r KeyRecord) usable(t time.Time) bool {
	return r.RevokedAt == nil && (r.ExpiresAt == nil || t.Before(*r.ExpiresAt))
}

// TenantInfo describes a tenant for operators.
type TenantInfo struct {
	ID         int64
	Handle     KeyHash
	CreatedAt  time.Time
	ActiveKeys int
}

// KeyStore persists client keys (hashes only).
type KeyStore interface {
	// FindKey returns the stored key with this hash.
	FindKey(ctx context.Context, key KeyHash) (KeyRecord, bool, error)
	// RotateKey adds next to the tenant of current and makes current expire
	// at expires, in one transaction with the record written by audit.
	RotateKey(ctx context.Context, current, next KeyHash, expires time.Time, audit func(ctx context.Context, handle KeyHash) error) error
	// CreateTenant registers a new tenant whose first key is key.
	CreateTenant(ctx context.Context, key KeyHash) (int64, error)
	// RevokeKey revokes a key; false if there is no such key.
	RevokeKey(ctx context.Context, key KeyHash) (bool, error)
	// ListTenants lists every tenant.
	ListTenants(ctx context.Context) ([]TenantInfo, error)
}

// KeyOptions tune Keys.
type KeyOptions struct {
	// RegisteredOnly refuses keys that are not registered (bank
	// deployments); otherwise any UUID4 is its own namespace.
	RegisteredOnly bool
	// RotationGrace is how long a rotated-away key keeps working.
	RotationGrace time.Duration
	// CacheTTL bounds how long a resolution is reused before the database
	// is asked again (so a revocation elsewhere takes effect within it).
	CacheTTL time.Duration
	// Recorder records rotations inside their transaction.
	Recorder audit.Recorder
	// Reads, when set, is the circuit breaker of key lookups. While the
	// database is unavailable a key resolves from its last lookup (however
	// old), so that loaded tenants keep answering checks from memory.
	Reads *breaker.Breaker
	// Writes, when set, is the circuit breaker of rotations.
	Writes *breaker.Breaker
}

// Keys resolves client keys to tenants and rotates them.
type Keys struct {
	store KeyStore
	opts  KeyOptions
	now   func() time.Time

	mu    sync.Mutex
	cache map[KeyHash]cachedKey
}

type cachedKey struct {
	rec     KeyRecord
	found   bool
	checked time.Time
}

// maxCachedKeys bounds the resolution cache.
const maxCachedKeys = 100_000

// NewKeys returns a key resolver over store.
func NewKeys(store KeyStore, opts KeyOptions) *Keys {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Second
	}
	if opts.Recorder == nil {
		opts.Recorder = audit.Nop{}
	}
	return &Keys{store: store, opts: opts, now: time.Now, cache: map[KeyHash]cachedKey{}}
}

// Resolve returns the tenant handle for a client key: the handle of the
// tenant it belongs to, or the key itself for an unregistered key (a new
// namespace) unless only registered keys are allowed.
func (k *Keys) Resolve(ctx context.Context, key KeyHash) (KeyHash, error) {
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[key]
	k.mu.Unlock()
	if !ok || now.Sub(c.checked) > k.opts.CacheTTL {
		var (
			rec   KeyRecord
			found bool
		)
		err := guard(ctx, k.opts.Reads, func(ctx context.Context) error {
			var err error
			rec, found, err = k.store.FindKey(ctx, key)
			return err
		})
		switch {
		case err != nil && ok && errors.Is(err, ErrUnavailable):
			// Stale if unavailable: the last lookup stands (expiry is still
			// checked against the clock below).
		case err != nil:
			return "", err
		default:
			c = cachedKey{rec: rec, found: found, checked: now}
			k.mu.Lock()
			if len(k.cache) >= maxCachedKeys {
				k.cache = map[KeyHash]cachedKey{}
			}
			k.cache[key] = c
			k.mu.Unlock()
		}
	}
	switch {
	case !c.found && k.opts.RegisteredOnly:
		return "", ErrKeyUnknown
	case !c.found:
		return key, nil
	case !c.rec.usable(now):
		return "", ErrKeyRevoked
	}
	return c.rec.Handle, nil
}

// Forget drops a key from the cache.
func (k *Keys) Forget(key KeyHash) {
	k.mu.Lock()
	delete(k.cache, key)
	k.mu.Unlock()
}

// NewClientKey returns a fresh random UUID4 and its hash.
func NewClientKey() (string, KeyHash, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	h, err := ParseClientKey(s)
	return s, h, err
}

// Rotate issues a new client key for the tenant of current, without
// touching its rules; current keeps working for the rotation grace period.
// It fails with ErrKeyUnknown for a key that has no tenant yet.
func (k *Keys) Rotate(ctx context.Context, current KeyHash) (string, time.Time, error) {
	var (
		rec   KeyRecord
		found bool
	)
	err := guard(ctx, k.opts.Reads, func(ctx context.Context) error {
		var err error
		rec, found, err = k.store.FindKey(ctx, current)
		return err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	now := k.now()
	if !found {
		return "", time.Time{}, ErrKeyUnknown
	}
	if !rec.usable(now) {
		return "", time.Time{}, ErrKeyRevoked
	}
	plain, next, err := NewClientKey()
	if err != nil {
		return "", time.Time{}, err
	}
	expires := now.Add(k.opts.RotationGrace).UTC()
	err = guard(ctx, k.opts.Writes, func(ctx context.Context) error {
		return k.store.RotateKey(ctx, current, next, expires, func(ctx context.Context, handle KeyHash) error {
			return k.opts.Recorder.RecordChange(ctx, audit.Entry{
				Time: now.UTC(), Tenant: string(handle), Action: audit.RotateKey, Resource: "client_key",
				Success: true, Details: map[string]any{"grace_seconds": int64(k.opts.RotationGrace / time.Second)},
			})
		})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	k.Forget(current)
	k.Forget(next)
	return plain, expires, nil
}

// CreateTenant registers a new tenant and returns its first client key.
func (k *Keys) CreateTenant(ctx context.Context) (string, int64, error) {
	plain, h, err := NewClientKey()
	if err != nil {
		return "", 0, err
	}
	id, err := k.store.CreateTenant(ctx, h)
	return plain, id, err
}

// Revoke revokes a client key at once.
func (k *Keys) Revoke(ctx context.Context, key KeyHash) (bool, error) {
	ok, err := k.store.RevokeKey(ctx, key)
	k.Forget(key)
	return ok, err
}

// List lists the tenants.
func (k *Keys) List(ctx context.Context) ([]TenantInfo, error) { return k.store.ListTenants(ctx) }
