package policy_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
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

	// The old key, now in its grace period, cannot rotate again (that
	// minted a key per call): its expiry stays as it was, with or without
	// grace.
	longer := policy.NewKeys(store, policy.KeyOptions{RotationGrace: 48 * time.Hour})
	now := policy.NewKeys(store, policy.KeyOptions{})
	for _, ks := range []*policy.Keys{longer, now, keys} {
		if p, _, err := ks.Rotate(ctx, k1); !errors.Is(err, policy.ErrKeyRotated) || p != "" {
			t.Errorf("rotating a key in its grace period: %q, %v; want ErrKeyRotated", p, err)
		}
	}
	rec, _, _ = store.FindKey(ctx, k1)
	if rec.ExpiresAt == nil || !sameInstant(*rec.ExpiresAt, exp1) {
		t.Errorf("after refused rotations, old key expires at %v, want still %v", rec.ExpiresAt, exp1)
	}
	if err := keys.CheckActive(ctx, k1); !errors.Is(err, policy.ErrKeyInGrace) {
		t.Errorf("CheckActive(key in grace) = %v, want ErrKeyInGrace", err)
	}
	if err := keys.CheckActive(ctx, k2); err != nil {
		t.Errorf("CheckActive(new key) = %v", err)
	}
	// The new key rotates without grace: it ends now.
	plain3, _, err := now.Rotate(ctx, k2)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if _, err := now.Resolve(ctx, k2); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("old key after a rotation without grace: %v, want ErrKeyRevoked", err)
	}
	if _, _, err := now.Rotate(ctx, k2); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("rotating an expired key: %v, want ErrKeyRevoked", err)
	}
	// k3 below is the key of the third rotation.
	if plain3, _, err = now.Rotate(ctx, mustKey(t, plain3)); err != nil {
		t.Fatalf("third Rotate: %v", err)
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
	// Tenant 1: k1 in grace and counted live, k2 and the second
	// rotation's key expired, k3 (the third's) revoked.
	want := []policy.TenantInfo{{ID: tenantID, Handle: k1, ActiveKeys: 1}, {ID: id5, Handle: k5, ActiveKeys: 1}}
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

func TestKeyConcurrencySQLite(t *testing.T) { testKeyConcurrency(t, openSQLite(t)) }

func TestKeyConcurrencyPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL skipped in -short mode")
	}
	testKeyConcurrency(t, openPostgres(t))
}

// testKeyConcurrency: 50 concurrent rotations of one key (each through its
// own Keys, as on 50 replicas) yield exactly one new key, with or without
// grace; the others fail with ErrKeyRotated or, once it expired,
// ErrKeyRevoked. Then listing, last use, and the revocations.
func testKeyConcurrency(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	store := policydb.New(db)
	svc := newService(t, db, auth.DefaultModel, policy.Options{})
	rng := rand.New(rand.NewPCG(21, 22))
	for _, grace := range []time.Duration{0, time.Hour} {
		k := mustKey(t, randomKey(rng))
		if ok, err := svc.CreateRole(ctx, k, "admin"); !ok || err != nil {
			t.Fatalf("write: %v, %v", ok, err)
		}
		rec, _, err := store.FindKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			errs    = map[string]int{}
		)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys := policy.NewKeys(store, policy.KeyOptions{RotationGrace: grace})
				<-start
				plain, _, err := keys.Rotate(ctx, k)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, plain)
				case errors.Is(err, policy.ErrKeyRotated), errors.Is(err, policy.ErrKeyRevoked) && grace == 0:
					errs[err.Error()]++
				default:
					t.Errorf("grace %v: concurrent Rotate: %v", grace, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("grace %v: %d of %d concurrent rotations succeeded, want exactly 1 (refusals %v)", grace, len(winners), n, errs)
		}
		list, found, err := store.ListKeys(ctx, rec.TenantID)
		if err != nil || !found || len(list) != 2 {
			t.Fatalf("grace %v: ListKeys = %d keys, %v, %v; want the old key and one new key", grace, len(list), found, err)
		}
		want := map[policy.KeyHash]policy.KeyState{k: policy.KeyExpired, mustKey(t, winners[0]): policy.KeyActive}
		if grace > 0 {
			want[k] = policy.KeyGrace
		}
		for _, r := range list {
			if st := r.State(time.Now()); st != want[r.Hash] || r.Handle != k || r.TenantID != rec.TenantID {
				t.Errorf("grace %v: key %s: state %s, handle %s…; want %s of tenant %s…", grace, policy.KeyID(r.Hash), st, r.Handle[:8], want[r.Hash], k[:8])
			}
		}
	}

	// Last use: written through TouchKey, never moved back.
	k := mustKey(t, randomKey(rng))
	if ok, err := svc.CreateRole(ctx, k, "admin"); !ok || err != nil {
		t.Fatalf("write: %v, %v", ok, err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	for _, ts := range []time.Time{at, at.Add(-time.Hour)} {
		if err := store.TouchKey(ctx, k, ts); err != nil {
			t.Fatal(err)
		}
	}
	rec, _, err := store.FindKey(ctx, k)
	if err != nil || rec.LastUsedAt == nil || !sameInstant(*rec.LastUsedAt, at) {
		t.Fatalf("last use = %v, %v; want %v", rec.LastUsedAt, err, at)
	}

	// Revocations: by id, the caller's others (only by an active key), all.
	recorded := 0
	keys := policy.NewKeys(store, policy.KeyOptions{RotationGrace: time.Hour, Recorder: countRecorder{&recorded}})
	p2, _, err := keys.Rotate(ctx, k) // k in grace
	if err != nil {
		t.Fatal(err)
	}
	k2 := mustKey(t, p2)
	p3, _, err := keys.Rotate(ctx, k2) // k2 in grace
	if err != nil {
		t.Fatal(err)
	}
	k3 := mustKey(t, p3)
	if n, err := keys.RevokeOthers(ctx, k2); !errors.Is(err, policy.ErrKeyInGrace) || n != 0 {
		t.Errorf("RevokeOthers by a key in grace = %d, %v; want ErrKeyInGrace", n, err)
	}
	if ok, err := keys.RevokeID(ctx, policy.KeyID(k2), rec.TenantID+1000); ok || err != nil {
		t.Errorf("RevokeID in another tenant = %v, %v; want false", ok, err)
	}
	if ok, err := keys.RevokeID(ctx, policy.KeyID(k2), 0); !ok || err != nil {
		t.Errorf("RevokeID = %v, %v; want true", ok, err)
	}
	if n, err := keys.RevokeOthers(ctx, k3); err != nil || n != 1 {
		t.Errorf("RevokeOthers = %d, %v; want 1 (k in grace; k2 already revoked)", n, err)
	}
	for _, h := range []policy.KeyHash{k, k2} {
		if r, _, _ := store.FindKey(ctx, h); r.State(time.Now()) != policy.KeyRevoked {
			t.Errorf("key %s after revocation: %s", policy.KeyID(h), r.State(time.Now()))
		}
	}
	if n, err := keys.RevokeAll(ctx, rec.TenantID); err != nil || n != 1 {
		t.Errorf("RevokeAll = %d, %v; want 1 (k3)", n, err)
	}
	if _, err := keys.Resolve(ctx, k3); !errors.Is(err, policy.ErrKeyRevoked) {
		t.Errorf("k3 after RevokeAll: %v", err)
	}
	// Two rotations and three revocations, each with its record.
	if recorded != 5 {
		t.Errorf("%d audit records, want 5", recorded)
	}
}

// countRecorder counts the changes recorded.
type countRecorder struct{ n *int }

func (c countRecorder) RecordChange(context.Context, audit.Entry) error {
	*c.n++
	return nil
}
