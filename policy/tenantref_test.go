package policy_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

func TestParseTenantRef(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ref    string
		id     int64
		handle policy.KeyHash
		ok     bool
	}{
		{"7", 7, "", true},
		{"123456789012345678", 123456789012345678, "", true},
		{h, 0, policy.KeyHash(h), true},
		{strings.ToUpper(h), 0, policy.KeyHash(h), true},
		{"", 0, "", false},
		{"0", 0, "", false},
		{"07", 0, "", false},
		{"-7", 0, "", false},
		{"+7", 0, "", false},
		{"7.0", 0, "", false},
		{" 7", 0, "", false},
		{"1234567890123456789", 0, "", false},
		{h[:63], 0, "", false},
		{h[:63] + "g", 0, "", false},
		{"3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", 0, "", false},
	} {
		id, handle, ok := policy.ParseTenantRef(tc.ref)
		if id != tc.id || handle != tc.handle || ok != tc.ok {
			t.Errorf("ParseTenantRef(%q) = %d, %q, %v; want %d, %q, %v", tc.ref, id, handle, ok, tc.id, tc.handle, tc.ok)
		}
	}
}

func TestTenantsSQLite(t *testing.T) { testTenants(t, openSQLite(t)) }

func TestTenantsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL skipped in -short mode")
	}
	testTenants(t, openPostgres(t))
}

// testTenants resolves tenants by the id `tenant create` prints and by
// handle, on the real store: unknown ones and those whose every key is
// revoked are refused; rotation keeps a tenant active.
func testTenants(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	store := policydb.New(db)
	keys := policy.NewKeys(store, policy.KeyOptions{RotationGrace: time.Hour})
	plain, id, err := keys.CreateTenant(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := mustKey(t, plain)
	tenants := policy.NewTenants(store, policy.TenantOptions{CacheTTL: time.Nanosecond})
	for _, ref := range []string{strconv.FormatInt(id, 10), string(first), strings.ToUpper(string(first))} {
		if h, err := tenants.Resolve(ctx, ref); err != nil || h != first {
			t.Errorf("Resolve(%q) = %q, %v; want the tenant's handle", ref, h, err)
		}
	}
	for _, ref := range []string{strconv.FormatInt(id+1000, 10), strings.Repeat("0", 64), "tenant-7", ""} {
		if _, err := tenants.Resolve(ctx, ref); !errors.Is(err, policy.ErrTenantUnknown) {
			t.Errorf("Resolve(%q) = %v, want ErrTenantUnknown", ref, err)
		}
	}
	// Rotation: the handle stays, the tenant stays active.
	next, _, err := keys.Rotate(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Revoke(ctx, first); err != nil {
		t.Fatal(err)
	}
	if h, err := tenants.Resolve(ctx, strconv.FormatInt(id, 10)); err != nil || h != first {
		t.Errorf("after rotation: %q, %v", h, err)
	}
	// Every key revoked: the tenant is switched off.
	if ok, err := keys.Revoke(ctx, mustKey(t, next)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, ref := range []string{strconv.FormatInt(id, 10), string(first)} {
		if _, err := tenants.Resolve(ctx, ref); !errors.Is(err, policy.ErrTenantInactive) {
			t.Errorf("Resolve(%q) with every key revoked = %v, want ErrTenantInactive", ref, err)
		}
	}
}

// countingTenants counts lookups and can fail.
type countingTenants struct {
	lookups int
	err     error
}

func (c *countingTenants) TenantByID(_ context.Context, id int64) (policy.TenantInfo, bool, error) {
	c.lookups++
	if c.err != nil {
		return policy.TenantInfo{}, false, c.err
	}
	return policy.TenantInfo{ID: id, Handle: policy.KeyHash(strings.Repeat("a", 64)), ActiveKeys: 1}, true, nil
}

func (c *countingTenants) TenantByHandle(_ context.Context, h policy.KeyHash) (policy.TenantInfo, bool, error) {
	c.lookups++
	return policy.TenantInfo{}, false, c.err
}

// TestTenantsCache: lookups are reused within CacheTTL; a failing store
// is an error, not an unknown tenant.
func TestTenantsCache(t *testing.T) {
	ctx := context.Background()
	store := &countingTenants{}
	tenants := policy.NewTenants(store, policy.TenantOptions{CacheTTL: time.Hour})
	for i := 0; i < 10; i++ {
		if _, err := tenants.Resolve(ctx, "7"); err != nil {
			t.Fatal(err)
		}
		if _, err := tenants.Resolve(ctx, strings.Repeat("b", 64)); !errors.Is(err, policy.ErrTenantUnknown) {
			t.Fatal(err)
		}
	}
	if store.lookups != 2 {
		t.Errorf("%d lookups for 20 resolutions of 2 references, want 2", store.lookups)
	}
	down := &countingTenants{err: errors.New("connection refused")}
	if _, err := policy.NewTenants(down, policy.TenantOptions{}).Resolve(ctx, "7"); err == nil ||
		errors.Is(err, policy.ErrTenantUnknown) || errors.Is(err, policy.ErrTenantInactive) {
		t.Errorf("store failure: %v, want the store's error", err)
	}
}
