package policy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ourway/auth/audit"
)

// Errors of client-key resolution and management.
var (
	// ErrKeyUnknown: the key is not registered (with registered keys only).
	ErrKeyUnknown = errors.New("policy: client key is not registered")
	// ErrKeyRevoked: the key was revoked, or its rotation grace period ended.
	ErrKeyRevoked = errors.New("policy: client key has been revoked or has expired")
	// ErrKeyRotated: the key was already rotated away (by a concurrent
	// rotation, or earlier and it is in its grace period). Rotating it again
	// is refused, so that one key has at most one successor.
	ErrKeyRotated = errors.New("policy: client key has already been rotated")
	// ErrKeyInGrace: the key was rotated away and is in its grace period. It
	// still authenticates ordinary calls but may not issue tokens or revoke
	// keys.
	ErrKeyInGrace = errors.New("policy: client key has been rotated and is in its grace period")
	// ErrKeyIDAmbiguous: a key id matches more than one key.
	ErrKeyIDAmbiguous = errors.New("policy: key id matches more than one key")
	// ErrInvalidKeyID: a key id is not 12 to 64 hexadecimal digits.
	ErrInvalidKeyID = errors.New("policy: key id must be 12 to 64 hexadecimal digits")
)

// KeyState is the state of a stored client key at some instant.
type KeyState string

// The states of a stored client key.
const (
	// KeyActive: usable for everything, never rotated away.
	KeyActive KeyState = "active"
	// KeyGrace: rotated away, usable for ordinary calls until it expires.
	KeyGrace KeyState = "grace"
	// KeyExpired: rotated away and past its grace period.
	KeyExpired KeyState = "expired"
	// KeyRevoked: revoked.
	KeyRevoked KeyState = "revoked"
)

// KeyIDLen is the length of the key id shown to operators: the start of the
// key's SHA-256 (which the database holds anyway), never the key.
const KeyIDLen = 12

// KeyID returns the operator-facing id of a key hash.
func KeyID(h KeyHash) string {
	if len(h) < KeyIDLen {
		return string(h)
	}
	return string(h[:KeyIDLen])
}

// ParseKeyID checks an operator-supplied key id (the start of a key hash,
// at least KeyIDLen hexadecimal digits) and returns it in lower case.
func ParseKeyID(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < KeyIDLen || len(s) > 64 {
		return "", ErrInvalidKeyID
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", ErrInvalidKeyID
		}
	}
	return s, nil
}

// KeyRecord is a stored client key.
type KeyRecord struct {
	// Hash is the key's own hash (set by listings).
	Hash KeyHash
	// Handle is the key hash the tenant was created with: the tenant's
	// identity everywhere else (policies, audit), whatever key is used.
	Handle    KeyHash
	TenantID  int64
	CreatedAt time.Time
	// ExpiresAt is set when the key is rotated away: the end of its grace.
	ExpiresAt *time.Time
	RevokedAt *time.Time
	// LastUsedAt is when the key was last seen in use, to within
	// KeyOptions.UseInterval (nil: never).
	LastUsedAt *time.Time
}

// usable reports whether the key may be used at t.
func (r KeyRecord) usable(t time.Time) bool {
	return r.RevokedAt == nil && (r.ExpiresAt == nil || t.Before(*r.ExpiresAt))
}

// State returns the key's state at t.
func (r KeyRecord) State(t time.Time) KeyState {
	switch {
	case r.RevokedAt != nil:
		return KeyRevoked
	case r.ExpiresAt == nil:
		return KeyActive
	case t.Before(*r.ExpiresAt):
		return KeyGrace
	default:
		return KeyExpired
	}
}

// TenantInfo describes a tenant for operators.
type TenantInfo struct {
	ID         int64
	Handle     KeyHash
	CreatedAt  time.Time
	ActiveKeys int
}

// KeySelection chooses the keys RevokeKeys revokes: Key; or ID, within
// TenantID when that is set; or, with TenantID alone, every live (active or
// grace) key of the tenant except Except.
type KeySelection struct {
	// Key is one key by its hash.
	Key KeyHash
	// ID is one key by its id (the start of its hash, see ParseKeyID).
	ID string
	// TenantID restricts ID to a tenant or, alone, selects its live keys.
	TenantID int64
	// Except, with a tenant's keys, is kept: it must be an active key of
	// that tenant, which the revoking transaction checks (ErrKeyInGrace or
	// ErrKeyRevoked otherwise, and nothing is revoked).
	Except KeyHash
}

// KeyStore persists client keys (hashes only). While its lookups answer
// ErrUnavailable (policydb.GuardKeys), a key resolves from its last lookup,
// however old, so that loaded tenants keep answering checks from memory.
type KeyStore interface {
	// FindKey returns the stored key with this hash.
	FindKey(ctx context.Context, key KeyHash) (KeyRecord, bool, error)
	// RotateKey adds next to the tenant of current and makes current expire
	// at expires, in one transaction with the record written by audit. It
	// is a compare-and-swap on current's state: only an active key (never
	// rotated, not revoked) is rotated; otherwise nothing changes and the
	// error is ErrKeyRotated or ErrKeyRevoked.
	RotateKey(ctx context.Context, current, next KeyHash, expires time.Time, audit func(ctx context.Context, handle KeyHash) error) error
	// CreateTenant registers a new tenant whose first key is key.
	CreateTenant(ctx context.Context, key KeyHash) (int64, error)
	// RevokeKeys revokes, at at, the keys sel chooses that are not revoked
	// yet, in one transaction with the record written by audit (called once
	// the tenant is known, with the hashes revoked, possibly none), and
	// returns those hashes. A selection matching no key revokes nothing.
	RevokeKeys(ctx context.Context, sel KeySelection, at time.Time,
		audit func(ctx context.Context, handle KeyHash, revoked []KeyHash) error) ([]KeyHash, error)
	// ListTenants lists every tenant.
	ListTenants(ctx context.Context) ([]TenantInfo, error)
	// ListKeys lists a tenant's keys, oldest first, with Hash set; false if
	// there is no such tenant.
	ListKeys(ctx context.Context, tenantID int64) ([]KeyRecord, bool, error)
	// TouchKey records that key was used at at (never moving it back).
	TouchKey(ctx context.Context, key KeyHash, at time.Time) error
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
	// Recorder records rotations and revocations inside their transaction.
	Recorder audit.Recorder
	// UseInterval is how often, at most, a key's last use is written to
	// the database (default one minute): never a write per request.
	UseInterval time.Duration
}

// maxTouches bounds the last-use writes in flight; while they are all busy
// a use is not recorded (a later one will be).
const maxTouches = 4

// Keys resolves client keys to tenants, rotates and revokes them.
type Keys struct {
	store KeyStore
	opts  KeyOptions
	now   func() time.Time

	cache *lookupCache[KeyHash, cachedKey]

	// touches holds a token per last-use write in flight; touching counts
	// them (tests wait on it).
	touches  chan struct{}
	touching sync.WaitGroup
}

// cachedKey is a key lookup: the stored key, if found.
type cachedKey struct {
	rec   KeyRecord
	found bool
	// retryAt holds back the next last-use write after a failed one, so
	// that a database outage is not met with a write per request.
	retryAt time.Time
}

// touchRetry is how long after a failed last-use write the next one may
// be tried (at most UseInterval).
const touchRetry = 5 * time.Second

// maxCachedKeys bounds the resolution cache.
const maxCachedKeys = 100_000 // about 40 MB (see lookupCache)

// NewKeys returns a key resolver over store.
func NewKeys(store KeyStore, opts KeyOptions) *Keys {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Second
	}
	if opts.Recorder == nil {
		opts.Recorder = audit.Nop{}
	}
	if opts.UseInterval <= 0 {
		opts.UseInterval = time.Minute
	}
	return &Keys{store: store, opts: opts, now: time.Now,
		cache:   newLookupCache[KeyHash, cachedKey](opts.CacheTTL, maxCachedKeys),
		touches: make(chan struct{}, maxTouches)}
}

// Resolve returns the tenant handle for a client key: the handle of the
// tenant it belongs to, or the key itself for an unregistered key (a new
// namespace) unless only registered keys are allowed.
func (k *Keys) Resolve(ctx context.Context, key KeyHash) (KeyHash, error) {
	now := k.now()
	// A lookup older than the TTL is made again; while the database is
	// unavailable the last one stands (expiry is still checked against the
	// clock below).
	c, err := k.cache.get(ctx, key, now, func(ctx context.Context) (cachedKey, error) {
		rec, found, err := k.store.FindKey(ctx, key)
		return cachedKey{rec: rec, found: found}, err
	})
	if err != nil {
		return "", err
	}
	switch {
	case !c.found && k.opts.RegisteredOnly:
		return "", ErrKeyUnknown
	case !c.found:
		return key, nil
	case !c.rec.usable(now):
		return "", ErrKeyRevoked
	}
	if c.touchDue(now, k.opts.UseInterval) {
		k.touch(ctx, key, now)
	}
	return c.rec.Handle, nil
}

// touchDue reports whether a use at now should be written: the last
// recorded use is UseInterval old or more, and no failed write is
// holding the next one back.
func (c *cachedKey) touchDue(now time.Time, every time.Duration) bool {
	if now.Before(c.retryAt) {
		return false
	}
	return c.rec.LastUsedAt == nil || now.Sub(*c.rec.LastUsedAt) >= every
}

// touch records a use of key in the background: at most once per
// UseInterval per key and process (the cached record remembers it), and
// with at most maxTouches writes in flight. It is best effort: a failed
// write is retried on a use touchRetry later or more.
func (k *Keys) touch(ctx context.Context, key KeyHash, now time.Time) {
	at := now
	var prev *time.Time
	claimed := k.cache.update(key, func(c *cachedKey) bool {
		if !c.touchDue(now, k.opts.UseInterval) {
			return false // another request got here first
		}
		select {
		case k.touches <- struct{}{}:
		default:
			return false // every write slot is busy: a later use records it
		}
		prev = c.rec.LastUsedAt
		c.rec.LastUsedAt = &at
		return true
	})
	if !claimed {
		return
	}
	k.touching.Add(1)
	go func() {
		defer k.touching.Done()
		defer func() { <-k.touches }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := k.store.TouchKey(ctx, key, at.UTC()); err != nil {
			// Not recorded: put the stored use back and let a use
			// touchRetry later try again.
			k.cache.update(key, func(c *cachedKey) bool {
				if c.rec.LastUsedAt == nil || !c.rec.LastUsedAt.Equal(at) {
					return false
				}
				c.rec.LastUsedAt = prev
				c.retryAt = at.Add(min(touchRetry, k.opts.UseInterval))
				return true
			})
		}
	}()
}

// Forget drops a key from the cache.
func (k *Keys) Forget(key KeyHash) {
	k.cache.forget(key)
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
// Only an active key rotates, and the store checks that in the rotating
// transaction, so concurrent rotations of one key yield one new key: the
// others fail with ErrKeyRotated, as does a key in its grace period. It
// fails with ErrKeyUnknown for a key that has no tenant yet and with
// ErrKeyRevoked for a revoked or expired key. The key's state is read from
// the database, never from the resolution cache.
func (k *Keys) Rotate(ctx context.Context, current KeyHash) (string, time.Time, error) {
	rec, found, err := k.find(ctx, current)
	if err != nil {
		return "", time.Time{}, err
	}
	now := k.now()
	if !found {
		return "", time.Time{}, ErrKeyUnknown
	}
	if err := stateError(rec.State(now), ErrKeyRotated); err != nil {
		return "", time.Time{}, err
	}
	plain, next, err := NewClientKey()
	if err != nil {
		return "", time.Time{}, err
	}
	expires := now.Add(k.opts.RotationGrace).UTC()
	err = k.store.RotateKey(ctx, current, next, expires, func(ctx context.Context, handle KeyHash) error {
		return k.opts.Recorder.RecordChange(ctx, audit.Entry{
			Time: now.UTC(), Tenant: string(handle), Action: audit.RotateKey, Resource: "client_key",
			Success: true, Details: map[string]any{"grace_seconds": int64(k.opts.RotationGrace / time.Second),
				"key_id": KeyID(current), "new_key_id": KeyID(next)},
		})
	})
	k.Forget(current)
	if err != nil {
		return "", time.Time{}, err
	}
	k.Forget(next)
	return plain, expires, nil
}

// find looks a key up in the database, past the cache.
func (k *Keys) find(ctx context.Context, key KeyHash) (KeyRecord, bool, error) {
	return k.store.FindKey(ctx, key)
}

// stateError is the error of a key in state st doing what only an active
// key may; inGrace is the error for a key in its grace period.
func stateError(st KeyState, inGrace error) error {
	switch st {
	case KeyActive:
		return nil
	case KeyGrace:
		return inGrace
	default:
		return ErrKeyRevoked
	}
}

// CheckActive reports, from the database (not the cache), whether key may
// do what only an active key may, such as issuing tokens: ErrKeyInGrace for
// a key rotated away, ErrKeyRevoked for a revoked or expired one. An
// unregistered key is its own namespace and active, unless only registered
// keys are allowed (ErrKeyUnknown).
func (k *Keys) CheckActive(ctx context.Context, key KeyHash) error {
	rec, found, err := k.find(ctx, key)
	switch {
	case err != nil:
		return err
	case !found && k.opts.RegisteredOnly:
		return ErrKeyUnknown
	case !found:
		return nil
	}
	return stateError(rec.State(k.now()), ErrKeyInGrace)
}

// RevokeOthers revokes every other live key of key's tenant, in one
// transaction that first checks that key is active (ErrKeyInGrace or
// ErrKeyRevoked otherwise), audited as REVOKE_KEY; it returns how many keys
// it revoked. A key without a tenant has no other keys: ErrKeyUnknown.
func (k *Keys) RevokeOthers(ctx context.Context, key KeyHash) (int, error) {
	rec, found, err := k.find(ctx, key)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, ErrKeyUnknown
	}
	if err := stateError(rec.State(k.now()), ErrKeyInGrace); err != nil {
		return 0, err
	}
	return k.revoke(ctx, KeySelection{TenantID: rec.TenantID, Except: key}, "api")
}

// Revoke revokes a client key at once, audited as REVOKE_KEY; false if
// there is no such key not revoked yet.
func (k *Keys) Revoke(ctx context.Context, key KeyHash) (bool, error) {
	n, err := k.revoke(ctx, KeySelection{Key: key}, "cli")
	return n > 0, err
}

// RevokeID revokes the key with this id (see ParseKeyID), within tenant
// tenantID unless it is 0; false if there is no such key not revoked yet,
// ErrKeyIDAmbiguous if the id names several keys.
func (k *Keys) RevokeID(ctx context.Context, id string, tenantID int64) (bool, error) {
	id, err := ParseKeyID(id)
	if err != nil {
		return false, err
	}
	n, err := k.revoke(ctx, KeySelection{ID: id, TenantID: tenantID}, "cli")
	return n > 0, err
}

// RevokeAll revokes every live key of a tenant and returns how many.
func (k *Keys) RevokeAll(ctx context.Context, tenantID int64) (int, error) {
	if tenantID <= 0 {
		return 0, fmt.Errorf("policy: no tenant %d", tenantID)
	}
	return k.revoke(ctx, KeySelection{TenantID: tenantID}, "cli")
}

// revoke revokes the keys sel chooses, audited as REVOKE_KEY with the ids
// of the keys and who asked (by), and drops them from this process's cache
// (other processes stop accepting them within the cache TTL).
func (k *Keys) revoke(ctx context.Context, sel KeySelection, by string) (int, error) {
	now := k.now().UTC()
	revoked, err := k.store.RevokeKeys(ctx, sel, now, func(ctx context.Context, handle KeyHash, hashes []KeyHash) error {
		if len(hashes) == 0 && sel.Except == "" {
			return nil // nothing changed; a caller's request to revoke the others is recorded even so
		}
		ids := make([]string, len(hashes))
		for i, h := range hashes {
			ids[i] = KeyID(h)
		}
		return k.opts.Recorder.RecordChange(ctx, audit.Entry{
			Time: now, Tenant: string(handle), Action: audit.RevokeKey, Resource: "client_key",
			Success: true, Details: map[string]any{"revoked": len(hashes), "key_ids": ids, "by": by},
		})
	})
	if err != nil {
		return 0, err
	}
	for _, h := range revoked {
		k.Forget(h)
	}
	return len(revoked), nil
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

// List lists the tenants.
func (k *Keys) List(ctx context.Context) ([]TenantInfo, error) { return k.store.ListTenants(ctx) }

// ListKeys lists a tenant's keys, oldest first; false if there is no such
// tenant.
func (k *Keys) ListKeys(ctx context.Context, tenantID int64) ([]KeyRecord, bool, error) {
	return k.store.ListKeys(ctx, tenantID)
}
