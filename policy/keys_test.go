package policy_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

func TestKeyStoreSQLite(t *testing.T) { testKeyStore(t, openSQLite(t)) }

func TestKeyStorePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL skipped in -short mode")
	}
	testKeyStore(t, openPostgres(t))
}

// testKeyStore runs client-key management on the real store: rotation adds
// a key to the same tenant without touching its rules, expiry is never
// pushed back, revocation and listing.
func testKeyStore(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	store := policydb.New(db)
	svc := newService(t, db, auth.DefaultModel, policy.Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	k1 := mustKey(t, randomKey(rng))

	for _, step := range []func() (bool, error){
		func() (bool, error) { return svc.CreateRole(ctx, k1, "admin") },
		func() (bool, error) { return svc.Grant(ctx, k1, "admin", "read") },
		func() (bool, error) { return svc.AddMember(ctx, k1, "john", "admin") },
	} {
		if ok, err := step(); !ok || err != nil {
			t.Fatalf("write: %v, %v", ok, err)
		}
	}
	pBefore, gBefore := dbRules(t, db)

	rec, found, err := store.FindKey(ctx, k1)
	if err != nil || !found || rec.Handle != k1 || rec.ExpiresAt != nil || rec.RevokedAt != nil {
		t.Fatalf("FindKey(first key) = %+v, %v, %v; want the tenant's own active key", rec, found, err)
	}
	tenantID := rec.TenantID

	keys := policy.NewKeys(store, policy.KeyOptions{RotationGrace: time.Hour, RegisteredOnly: true})
	plain2, exp1, err := keys.Rotate(ctx, k1)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if d := time.Until(exp1); d < 59*time.Minute || d > time.Hour {
		t.Errorf("old key expires in %v, want about 1h", d)
	}
	k2 := mustKey(t, plain2)
	rec2, found, err := store.FindKey(ctx, k2)
	if err != nil || !found || rec2.Handle != k1 || rec2.TenantID != tenantID || rec2.ExpiresAt != nil {
		t.Fatalf("FindKey(new key) = %+v, %v, %v; want an active key of tenant %d with handle %s", rec2, found, err, tenantID, k1)
	}
	rec, _, _ = store.FindKey(ctx, k1)
	if rec.ExpiresAt == nil || !sameInstant(*rec.ExpiresAt, exp1) {
		t.Errorf("stored expiry of the old key = %v, want %v (time zone or precision lost?)", rec.ExpiresAt, exp1)
	}
	for _, k := range []policy.KeyHash{k1, k2} {
		if got, err := keys.Resolve(ctx, k); err != nil || got != k1 {
			t.Errorf("Resolve(%s…) = %q, %v; want the handle", k[:8], got, err)
		}
	}
	if pAfter, gAfter := dbRules(t, db); !reflect.DeepEqual(pAfter, pBefore) || !reflect.DeepEqual(gAfter, gBefore) {
		t.Errorf("rules changed by the rotation:\nbefore p=%v g=%v\nafter  p=%v g=%v", pBefore, gBefore, pAfter, gAfter)
	}
	if has, err := svc.HasPermission(ctx, k1, "john", "read"); !has || err != nil {
		t.Errorf("after rotation, john can read = %v, %v; want true", has, err)
	}

	// A second rotation of the old key with a longer grace does not push
	// its expiry back; one with no grace ends it now.
	longer := policy.NewKeys(store, policy.KeyOptions{RotationGrace: 48 * time.Hour})
	plain3, _, err := longer.Rotate(ctx, k1)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	rec, _, _ = store.FindKey(ctx, k1)
	if rec.ExpiresAt == nil || !sameInstant(*rec.ExpiresAt, exp1) {
		t.Errorf("after a rotation with a longer grace, old key expires at %v, want still %v", rec.ExpiresAt, exp1)
	}
	now := policy.NewKeys(store, policy.KeyOptions{})
	if _, _, err := now.Rotate(ctx, k1); err != nil {
		t.Fatalf("third Rotate: %v", err)
	}
	if _, err := now.Resolve(ctx, k1); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("old key after a rotation without grace: %v, want ErrKeyRevoked", err)
	}
	if _, _, err := now.Rotate(ctx, k1); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("rotating an expired key: %v, want ErrKeyRevoked", err)
	}

	// Revocation.
	k3 := mustKey(t, plain3)
	if ok, err := keys.Revoke(ctx, k3); !ok || err != nil {
		t.Errorf("Revoke(k3) = %v, %v; want true", ok, err)
	}
	if ok, err := keys.Revoke(ctx, k3); ok || err != nil {
		t.Errorf("Revoke(k3) again = %v, %v; want false", ok, err)
	}
	unknown := mustKey(t, randomKey(rng))
	if ok, err := keys.Revoke(ctx, unknown); ok || err != nil {
		t.Errorf("Revoke(unknown) = %v, %v; want false", ok, err)
	}
	if _, err := keys.Resolve(ctx, k3); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("revoked key: %v, want ErrKeyRevoked", err)
	}
	if _, err := keys.Resolve(ctx, unknown); !errors.Is(err, policy.ErrKeyUnknown) {
		t.Errorf("unknown key with registered keys only: %v, want ErrKeyUnknown", err)
	}
	if _, _, err := keys.Rotate(ctx, unknown); !errors.Is(err, policy.ErrKeyUnknown) {
		t.Errorf("rotating an unknown key: %v, want ErrKeyUnknown", err)
	}

	// A registered tenant without data, and the listing.
	plain5, id5, err := keys.CreateTenant(ctx)
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	k5 := mustKey(t, plain5)
	if got, err := keys.Resolve(ctx, k5); err != nil || got != k5 {
		t.Errorf("Resolve(created key) = %q, %v", got, err)
	}
	list, err := keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Tenant 1: k1 expired, k3 revoked, k2 and the third rotation's key
	// active.
	want := []policy.TenantInfo{{ID: tenantID, Handle: k1, ActiveKeys: 2}, {ID: id5, Handle: k5, ActiveKeys: 1}}
	if len(list) != len(want) {
		t.Fatalf("List = %+v, want %d tenants", list, len(want))
	}
	for i, w := range want {
		g := list[i]
		if g.ID != w.ID || g.Handle != w.Handle || g.ActiveKeys != w.ActiveKeys {
			t.Errorf("List[%d] = %+v, want %+v", i, g, w)
		}
		if time.Since(g.CreatedAt) > time.Hour || time.Since(g.CreatedAt) < -time.Minute {
			t.Errorf("List[%d].CreatedAt = %v, want about now", i, g.CreatedAt)
		}
	}
}

func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}
