package policy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
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

// TenantStore finds registered tenants by id or by handle. While it answers
// ErrUnavailable (policydb.GuardTenants), a reference resolves from its last
// lookup, however old.
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
}

// Tenants resolves references to tenants (the id `auth-server tenant
// create` prints, or the tenant's handle) as found in tokens of an
// external identity provider.
type Tenants struct {
	store TenantStore
	opts  TenantOptions
	now   func() time.Time

	cache *lookupCache[string, cachedTenant]
}

// cachedTenant is a tenant lookup: the tenant, if found.
type cachedTenant struct {
	info  TenantInfo
	found bool
}

// maxCachedTenants bounds the reference cache.
const maxCachedTenants = 10_000

// NewTenants returns a tenant resolver over store.
func NewTenants(store TenantStore, opts TenantOptions) *Tenants {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Second
	}
	return &Tenants{store: store, opts: opts, now: time.Now,
		cache: newLookupCache[string, cachedTenant](opts.CacheTTL, maxCachedTenants)}
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
	c, err := t.cache.get(ctx, ck, t.now(), func(ctx context.Context) (cachedTenant, error) {
		var (
			c   cachedTenant
			err error
		)
		if id > 0 {
			c.info, c.found, err = t.store.TenantByID(ctx, id)
		} else {
			c.info, c.found, err = t.store.TenantByHandle(ctx, handle)
		}
		return c, err
	})
	if err != nil {
		return "", err
	}
	switch {
	case !c.found:
		return "", ErrTenantUnknown
	case c.info.ActiveKeys == 0:
		return "", ErrTenantInactive
	}
	return c.info.Handle, nil
}
