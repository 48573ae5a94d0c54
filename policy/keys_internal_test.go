package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
)

// fakeKeyStore is an in-memory KeyStore that counts lookups and can fail.
type fakeKeyStore struct {
	mu      sync.Mutex
	keys    map[KeyHash]KeyRecord
	finds   int
	findErr error
	rotErr  error
	// rotations records the arguments of RotateKey.
	rotations []rotation
	nextID    int64
}

type rotation struct {
	current, next KeyHash
	expires       time.Time
}

func newFakeKeyStore() *fakeKeyStore { return &fakeKeyStore{keys: map[KeyHash]KeyRecord{}} }

func (s *fakeKeyStore) FindKey(_ context.Context, key KeyHash) (KeyRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finds++
	if s.findErr != nil {
		return KeyRecord{}, false, s.findErr
	}
	r, ok := s.keys[key]
	return r, ok, nil
}

func (s *fakeKeyStore) RotateKey(ctx context.Context, current, next KeyHash, expires time.Time,
	record func(ctx context.Context, handle KeyHash) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rotErr != nil {
		return s.rotErr
	}
	cur, ok := s.keys[current]
	if !ok {
		return errors.New("fake: no such key")
	}
	// Like a transaction: nothing changes when the audit record fails.
	if err := record(ctx, cur.Handle); err != nil {
		return err
	}
	s.rotations = append(s.rotations, rotation{current, next, expires})
	s.keys[next] = KeyRecord{Handle: cur.Handle, TenantID: cur.TenantID}
	if cur.ExpiresAt == nil || cur.ExpiresAt.After(expires) {
		e := expires
		cur.ExpiresAt = &e
	}
	s.keys[current] = cur
	return nil
}

func (s *fakeKeyStore) CreateTenant(_ context.Context, key KeyHash) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.keys[key] = KeyRecord{Handle: key, TenantID: s.nextID}
	return s.nextID, nil
}

func (s *fakeKeyStore) RevokeKey(_ context.Context, key KeyHash) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.keys[key]
	if !ok || r.RevokedAt != nil {
		return false, nil
	}
	now := time.Now()
	r.RevokedAt = &now
	s.keys[key] = r
	return true, nil
}

func (s *fakeKeyStore) ListTenants(context.Context) ([]TenantInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TenantInfo
	for k, r := range s.keys {
		if k == r.Handle {
			out = append(out, TenantInfo{ID: r.TenantID, Handle: k, ActiveKeys: 1})
		}
	}
	return out, nil
}

func (s *fakeKeyStore) set(key KeyHash, r KeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = r
}

func (s *fakeKeyStore) findCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finds
}

// clock is a settable time source for Keys.now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }
func newTestKeys(s KeyStore, o KeyOptions, c *clock) *Keys {
	k := NewKeys(s, o)
	k.now = c.now
	return k
}

// hashOf returns the hash of a fresh client key.
func hashOf(t *testing.T) KeyHash {
	t.Helper()
	_, h, err := NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	handle, other := hashOf(t), hashOf(t)
	unknown := hashOf(t)
	past := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	future := time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC)
	cases := []struct {
		name           string
		rec            *KeyRecord // nil: not stored
		registeredOnly bool
		want           KeyHash
		wantErr        error
	}{
		{"unknown key is its own namespace", nil, false, unknown, nil},
		{"unknown key with registered keys only", nil, true, "", ErrKeyUnknown},
		{"registered key resolves to its tenant", &KeyRecord{Handle: handle}, false, handle, nil},
		{"registered key with registered keys only", &KeyRecord{Handle: handle}, true, handle, nil},
		{"rotated key resolves to the original handle", &KeyRecord{Handle: other}, true, other, nil},
		{"revoked", &KeyRecord{Handle: handle, RevokedAt: &past}, false, "", ErrKeyRevoked},
		{"revoked in the future is still revoked", &KeyRecord{Handle: handle, RevokedAt: &future}, false, "", ErrKeyRevoked},
		{"expired", &KeyRecord{Handle: handle, ExpiresAt: &past}, false, "", ErrKeyRevoked},
		{"expires later", &KeyRecord{Handle: handle, ExpiresAt: &future}, true, handle, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeKeyStore()
			if tc.rec != nil {
				st.set(unknown, *tc.rec)
			}
			k := newTestKeys(st, KeyOptions{RegisteredOnly: tc.registeredOnly}, newClock())
			got, err := k.Resolve(ctx, unknown)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("Resolve = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestResolveCacheTTL(t *testing.T) {
	ctx := context.Background()
	const ttl = 100 * time.Millisecond
	st := newFakeKeyStore()
	clk := newClock()
	k := newTestKeys(st, KeyOptions{CacheTTL: ttl, RegisteredOnly: true}, clk)
	key := hashOf(t)
	st.set(key, KeyRecord{Handle: key})

	resolve := func(step string, wantErr error, wantFinds int) {
		t.Helper()
		_, err := k.Resolve(ctx, key)
		if !errors.Is(err, wantErr) {
			t.Errorf("%s: Resolve error = %v, want %v", step, err, wantErr)
		}
		if got := st.findCount(); got != wantFinds {
			t.Errorf("%s: store lookups = %d, want %d", step, got, wantFinds)
		}
	}
	resolve("first use", nil, 1)
	clk.advance(ttl / 2)
	resolve("within the TTL", nil, 1)

	// Revoked elsewhere (another replica, the CLI): seen once the TTL ends.
	now := clk.now()
	st.set(key, KeyRecord{Handle: key, RevokedAt: &now})
	clk.advance(ttl / 2)
	resolve("at the TTL (inclusive)", nil, 1)
	clk.advance(time.Nanosecond)
	resolve("just past the TTL", ErrKeyRevoked, 2)
	resolve("revocation cached", ErrKeyRevoked, 2)

	// An unknown key is cached as unknown too, for no longer than the TTL.
	newKey := hashOf(t)
	if _, err := k.Resolve(ctx, newKey); !errors.Is(err, ErrKeyUnknown) {
		t.Fatalf("unknown key: %v, want ErrKeyUnknown", err)
	}
	st.set(newKey, KeyRecord{Handle: newKey})
	clk.advance(ttl + time.Nanosecond)
	if got, err := k.Resolve(ctx, newKey); err != nil || got != newKey {
		t.Errorf("registered key after the TTL: %q, %v; want it resolved", got, err)
	}
}

func TestResolveExpiryNotCached(t *testing.T) {
	// The cache keeps the record, not the verdict: a key whose grace period
	// ends while cached is refused at once, whatever the cache TTL.
	ctx := context.Background()
	st := newFakeKeyStore()
	clk := newClock()
	k := newTestKeys(st, KeyOptions{CacheTTL: time.Hour}, clk)
	key := hashOf(t)
	expires := clk.now().Add(time.Second)
	st.set(key, KeyRecord{Handle: key, ExpiresAt: &expires})
	if _, err := k.Resolve(ctx, key); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clk.advance(time.Second - time.Nanosecond)
	if _, err := k.Resolve(ctx, key); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clk.advance(time.Nanosecond)
	if _, err := k.Resolve(ctx, key); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("at expiry: %v, want ErrKeyRevoked", err)
	}
	if got := st.findCount(); got != 1 {
		t.Errorf("store lookups = %d, want 1 (served from the cache)", got)
	}
}

func TestResolveStoreError(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	clk := newClock()
	k := newTestKeys(st, KeyOptions{}, clk)
	key := hashOf(t)
	boom := errors.New("database down")
	st.findErr = boom
	if got, err := k.Resolve(ctx, key); !errors.Is(err, boom) || got != "" {
		t.Fatalf("Resolve = %q, %v; want the store's error", got, err)
	}
	// A failure is not cached: the next request asks again.
	st.findErr = nil
	if got, err := k.Resolve(ctx, key); err != nil || got != key {
		t.Errorf("after recovery: %q, %v; want %q", got, err, key)
	}
	if got := st.findCount(); got != 2 {
		t.Errorf("store lookups = %d, want 2", got)
	}
}

func TestResolveCacheBounded(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	k := newTestKeys(st, KeyOptions{}, newClock())
	for i := 0; i < maxCachedKeys; i++ {
		k.cache[KeyHash(fmt.Sprint(i))] = cachedKey{}
	}
	if _, err := k.Resolve(ctx, hashOf(t)); err != nil {
		t.Fatal(err)
	}
	if got := len(k.cache); got != 1 {
		t.Errorf("cache size after overflow = %d, want 1 (reset)", got)
	}
}

// recorder collects the audit entries of rotations.
type recorder struct {
	entries []audit.Entry
	err     error
}

func (r *recorder) RecordChange(_ context.Context, e audit.Entry) error {
	if r.err != nil {
		return r.err
	}
	r.entries = append(r.entries, e)
	return nil
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	for _, grace := range []time.Duration{0, time.Second, 30 * time.Minute} {
		t.Run(fmt.Sprint("grace ", grace), func(t *testing.T) {
			st := newFakeKeyStore()
			clk := newClock()
			rec := &recorder{}
			k := newTestKeys(st, KeyOptions{RotationGrace: grace, CacheTTL: time.Hour, Recorder: rec}, clk)
			handle := hashOf(t)
			st.set(handle, KeyRecord{Handle: handle, TenantID: 7})
			// Cached as usable before the rotation.
			if _, err := k.Resolve(ctx, handle); err != nil {
				t.Fatal(err)
			}
			plain, expires, err := k.Rotate(ctx, handle)
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			next, err := ParseClientKey(plain)
			if err != nil {
				t.Fatalf("new key %q is not a UUID4: %v", plain, err)
			}
			if next == handle {
				t.Fatalf("new key is the old key")
			}
			if want := clk.now().Add(grace); !expires.Equal(want) {
				t.Errorf("old key expires at %v, want %v", expires, want)
			}
			if len(st.rotations) != 1 || st.rotations[0] != (rotation{handle, next, expires}) {
				t.Errorf("store rotations = %+v, want one of %v -> %v until %v", st.rotations, handle, next, expires)
			}
			if len(rec.entries) != 1 {
				t.Fatalf("audit entries = %+v, want one", rec.entries)
			}
			e := rec.entries[0]
			if e.Action != audit.RotateKey || e.Tenant != string(handle) || !e.Success || e.Resource != "client_key" {
				t.Errorf("audit entry = %+v, want a successful ROTATE_KEY of the tenant", e)
			}
			if got, want := e.Details["grace_seconds"], int64(grace/time.Second); got != want {
				t.Errorf("audit grace_seconds = %v, want %v", got, want)
			}
			if got, err := k.Resolve(ctx, next); err != nil || got != handle {
				t.Errorf("new key resolves to %q, %v; want the tenant handle %q", got, err, handle)
			}
			// The old key's cache entry was dropped: its expiry applies now.
			_, err = k.Resolve(ctx, handle)
			if grace == 0 && !errors.Is(err, ErrKeyRevoked) {
				t.Errorf("old key right after a rotation without grace: %v, want ErrKeyRevoked", err)
			}
			if grace > 0 {
				if err != nil {
					t.Errorf("old key within the grace period: %v", err)
				}
				clk.advance(grace)
				if _, err := k.Resolve(ctx, handle); !errors.Is(err, ErrKeyRevoked) {
					t.Errorf("old key after the grace period: %v, want ErrKeyRevoked", err)
				}
				if _, err := k.Resolve(ctx, next); err != nil {
					t.Errorf("new key after the grace period: %v", err)
				}
			}
		})
	}
}

func TestRotateErrors(t *testing.T) {
	ctx := context.Background()
	clkTime := newClock().now()
	past := clkTime.Add(-time.Minute)
	boom := errors.New("database down")
	cases := []struct {
		name    string
		rec     *KeyRecord
		findErr error
		rotErr  error
		recErr  error
		wantErr error
	}{
		{"tenant without data", nil, nil, nil, nil, ErrKeyUnknown},
		{"revoked key", &KeyRecord{RevokedAt: &past}, nil, nil, nil, ErrKeyRevoked},
		{"expired key", &KeyRecord{ExpiresAt: &past}, nil, nil, nil, ErrKeyRevoked},
		{"lookup fails", &KeyRecord{}, boom, nil, nil, boom},
		{"store fails", &KeyRecord{}, nil, boom, nil, boom},
		{"audit record fails", &KeyRecord{}, nil, nil, boom, boom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeKeyStore()
			key := hashOf(t)
			if tc.rec != nil {
				r := *tc.rec
				r.Handle = key
				st.set(key, r)
			}
			st.findErr, st.rotErr = tc.findErr, tc.rotErr
			rec := &recorder{err: tc.recErr}
			k := newTestKeys(st, KeyOptions{Recorder: rec}, newClock())
			plain, expires, err := k.Rotate(ctx, key)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Rotate error = %v, want %v", err, tc.wantErr)
			}
			if plain != "" || !expires.IsZero() {
				t.Errorf("Rotate returned a key (%q, %v) with its error", plain, expires)
			}
			if len(st.rotations) != 0 || len(rec.entries) != 0 {
				t.Errorf("failed rotation left rotations %v, audit %v", st.rotations, rec.entries)
			}
		})
	}
}

func TestCreateTenantRevokeList(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	clk := newClock()
	k := newTestKeys(st, KeyOptions{RegisteredOnly: true, CacheTTL: time.Hour}, clk)
	plain, id, err := k.CreateTenant(ctx)
	if err != nil || id != 1 {
		t.Fatalf("CreateTenant = %q, %d, %v", plain, id, err)
	}
	h, err := ParseClientKey(plain)
	if err != nil {
		t.Fatalf("tenant key %q: %v", plain, err)
	}
	if got, err := k.Resolve(ctx, h); err != nil || got != h {
		t.Fatalf("new tenant's key resolves to %q, %v", got, err)
	}
	list, err := k.List(ctx)
	if err != nil || len(list) != 1 || list[0].Handle != h || list[0].ID != 1 {
		t.Errorf("List = %+v, %v; want the one tenant", list, err)
	}
	ok, err := k.Revoke(ctx, h)
	if !ok || err != nil {
		t.Fatalf("Revoke = %v, %v", ok, err)
	}
	// Revoke drops this process's cache entry: refused at once here.
	if _, err := k.Resolve(ctx, h); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("after Revoke: %v, want ErrKeyRevoked", err)
	}
	if ok, err := k.Revoke(ctx, h); ok || err != nil {
		t.Errorf("second Revoke = %v, %v; want false, nil", ok, err)
	}
	if _, _, err := k.Rotate(ctx, h); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Rotate of a revoked key: %v, want ErrKeyRevoked", err)
	}
}

func TestNewClientKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		plain, h, err := NewClientKey()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseClientKey(plain)
		if err != nil || got != h {
			t.Fatalf("NewClientKey = %q, %q; ParseClientKey = %q, %v", plain, h, got, err)
		}
		if plain[14] != '4' || !(plain[19] == '8' || plain[19] == '9' || plain[19] == 'a' || plain[19] == 'b') {
			t.Fatalf("%q is not a version 4, RFC variant UUID", plain)
		}
		if seen[plain] {
			t.Fatalf("duplicate key %q", plain)
		}
		seen[plain] = true
	}
}
