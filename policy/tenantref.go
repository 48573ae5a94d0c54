package policy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ourway/auth/internal/breaker"
)

// Errors of tenant references.
var (
	// ErrTenantUnknown: no tenant has this id or handle (or the reference
	// is neither).
	ErrTenantUnknown = errors.New("policy: no such tenant")
	// ErrTenantInactive: the tenant has no usable client key left (every
	// one revoked or expired), which is how an operator switches it off.
	ErrTenantInactive = errors.New("policy: tenant has no active client key")
)

// TenantStore finds registered tenants by id or by handle.
type TenantStore interface {
	// TenantByID returns the tenant with this id.
	TenantByID(ctx context.Context, id int64) (TenantInfo, bool, error)
	// TenantByHandle returns the tenant with this handle.
	TenantByHandle(ctx context.Context, handle KeyHash) (TenantInfo, bool, error)
}

// TenantOptions tune Tenants.
type TenantOptions struct {
	// CacheTTL bounds how long a lookup is reused (default 5s).
	CacheTTL time.Duration
	// Reads, when set, is the circuit breaker of lookups; while the
	// database is unavailable a reference resolves from its last lookup.
	Reads *breaker.Breaker
}

// Tenants resolves references to tenants (the id `auth-server tenant
// create` prints, or the tenant's handle) as found in tokens of an
// external identity provider.
type Tenants struct {
	store TenantStore
	opts  TenantOptions
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedTenant
}

type cachedTenant struct {
	info    TenantInfo
	found   bool
	checked time.Time
}

// maxCachedTenants bounds the reference cache.
const maxCachedTenants = 10_000

// NewTenants returns a tenant resolver over store.
func NewTenants(store TenantStore, opts TenantOptions) *Tenants {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Second
	}
	return &Tenants{store: store, opts: opts, now: time.Now, cache: map[string]cachedTenant{}}
}

// ParseTenantRef reads a tenant reference: a tenant id (a positive decimal
// number without leading zeros) or a handle (64 hexadecimal digits, any
// case). ok is false for anything else.
func ParseTenantRef(ref string) (id int64, handle KeyHash, ok bool) {
	if len(ref) == 64 {
		h := strings.ToLower(ref)
		for i := 0; i < len(h); i++ {
			if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return 0, "", false
			}
		}
		return 0, KeyHash(h), true
	}
	if ref == "" || len(ref) > 18 || ref[0] == '0' {
		return 0, "", false
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] < '0' || ref[i] > '9' {
			return 0, "", false
		}
	}
	n, err := strconv.ParseInt(ref, 10, 64)
	return n, "", err == nil
}

// Resolve returns the handle of the tenant ref names. It fails with
// ErrTenantUnknown for a reference that names no tenant, and with
// ErrTenantInactive for a tenant without an active client key.
func (t *Tenants) Resolve(ctx context.Context, ref string) (KeyHash, error) {
	id, handle, ok := ParseTenantRef(ref)
	if !ok {
		return "", ErrTenantUnknown
	}
	ck := string(handle)
	if id > 0 {
		ck = strconv.FormatInt(id, 10)
	}
	now := t.now()
	t.mu.Lock()
	c, cached := t.cache[ck]
	t.mu.Unlock()
	if !cached || now.Sub(c.checked) > t.opts.CacheTTL {
		var (
			info  TenantInfo
			found bool
		)
		err := guard(ctx, t.opts.Reads, func(ctx context.Context) error {
			var err error
			if id > 0 {
				info, found, err = t.store.TenantByID(ctx, id)
			} else {
				info, found, err = t.store.TenantByHandle(ctx, handle)
			}
			return err
		})
		switch {
		case err != nil && cached && errors.Is(err, ErrUnavailable):
			// Stale if unavailable: the last lookup stands.
		case err != nil:
			return "", err
		default:
			c = cachedTenant{info: info, found: found, checked: now}
			t.mu.Lock()
			if len(t.cache) >= maxCachedTenants {
				t.cache = map[string]cachedTenant{}
			}
			t.cache[ck] = c
			t.mu.Unlock()
		}
	}
	switch {
	case !c.found:
		return "", ErrTenantUnknown
	case c.info.ActiveKeys == 0:
		return "", ErrTenantInactive
	}
	return c.info.Handle, nil
}
