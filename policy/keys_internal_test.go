package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// touches records the keys of TouchKey calls; touchErr fails them.
	touches  []KeyHash
	touchErr error
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
	switch {
	case !ok:
		return errors.New("fake: no such key")
	case cur.RevokedAt != nil:
		return ErrKeyRevoked
	case cur.ExpiresAt != nil:
		return ErrKeyRotated
	}
	// Like a transaction: nothing changes when the audit record fails.
	if err := record(ctx, cur.Handle); err != nil {
		return err
	}
	s.rotations = append(s.rotations, rotation{current, next, expires})
	s.keys[next] = KeyRecord{Handle: cur.Handle, TenantID: cur.TenantID}
	e := expires
	cur.ExpiresAt = &e
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

func (s *fakeKeyStore) RevokeKeys(ctx context.Context, sel KeySelection, at time.Time,
	record func(ctx context.Context, handle KeyHash, revoked []KeyHash) error) ([]KeyHash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		handle KeyHash
		out    []KeyHash
	)
	for h, r := range s.keys {
		pick := false
		switch {
		case sel.Key != "":
			pick = h == sel.Key
		case sel.ID != "":
			pick = strings.HasPrefix(string(h), sel.ID) && (sel.TenantID == 0 || r.TenantID == sel.TenantID)
		default:
			pick = r.TenantID == sel.TenantID && h != sel.Except && r.usable(at)
		}
		if pick {
			handle = r.Handle
			if r.RevokedAt == nil {
				out = append(out, h)
			}
		}
	}
	if sel.Except != "" {
		r, ok := s.keys[sel.Except]
		if !ok || r.TenantID != sel.TenantID {
			return nil, ErrKeyRevoked
		}
		if err := stateError(r.State(at), ErrKeyInGrace); err != nil {
			return nil, err
		}
		handle = r.Handle
	}
	if handle == "" {
		return nil, nil
	}
	if err := record(ctx, handle, out); err != nil {
		return nil, err
	}
	for _, h := range out {
		r := s.keys[h]
		t := at
		r.RevokedAt = &t
		s.keys[h] = r
	}
	return out, nil
}

func (s *fakeKeyStore) ListKeys(_ context.Context, id int64) ([]KeyRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []KeyRecord
	for h, r := range s.keys {
		if r.TenantID == id {
			r.Hash = h
			out = append(out, r)
		}
	}
	return out, len(out) > 0, nil
}

func (s *fakeKeyStore) TouchKey(_ context.Context, key KeyHash, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touches = append(s.touches, key)
	if s.touchErr != nil {
		return s.touchErr
	}
	r := s.keys[key]
	r.LastUsedAt = &at
	s.keys[key] = r
	return nil
}

func (s *fakeKeyStore) touchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.touches)
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

// Past its bound the cache does not start afresh: a key in use stays
// cached while new keys keep coming.
func TestResolveCacheBounded(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	k := newTestKeys(st, KeyOptions{}, newClock())
	hot := hashOf(t)
	if _, err := k.Resolve(ctx, hot); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2*maxCachedKeys; i++ {
		k.cache.mu.Lock()
		k.cache.store(KeyHash(fmt.Sprint(i)), cachedLookup[cachedKey]{checked: k.now()})
		k.cache.mu.Unlock()
		if i%(maxCachedKeys/4) == 0 {
			if _, err := k.Resolve(ctx, hot); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := k.cache.len(); got > maxCachedKeys {
		t.Errorf("cache size = %d, over the bound %d", got, maxCachedKeys)
	}
	if got := st.findCount(); got != 1 {
		t.Errorf("store lookups of the key in use = %d, want 1 (it stays cached)", got)
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

// A key rotated away cannot rotate again, whatever the cache says: one key,
// one successor.
func TestRotateRotatedKey(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	clk := newClock()
	k := newTestKeys(st, KeyOptions{RotationGrace: time.Hour, CacheTTL: time.Hour}, clk)
	handle := hashOf(t)
	st.set(handle, KeyRecord{Handle: handle, TenantID: 7})
	plain, _, err := k.Rotate(ctx, handle)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if p, _, err := k.Rotate(ctx, handle); !errors.Is(err, ErrKeyRotated) || p != "" {
			t.Errorf("rotation %d of a key in its grace period = %q, %v; want ErrKeyRotated", i+2, p, err)
		}
	}
	if len(st.rotations) != 1 {
		t.Errorf("store rotations = %d, want 1", len(st.rotations))
	}
	// Still usable for ordinary calls during the grace period.
	if h, err := k.Resolve(ctx, handle); err != nil || h != handle {
		t.Errorf("old key in grace resolves to %q, %v", h, err)
	}
	// The store's compare-and-swap is what decides: a key the lookup saw
	// active but that another process rotated meanwhile is refused.
	next, _ := ParseClientKey(plain)
	st.rotErr = ErrKeyRotated
	if _, _, err := k.Rotate(ctx, next); !errors.Is(err, ErrKeyRotated) {
		t.Errorf("rotation lost to another process: %v, want ErrKeyRotated", err)
	}
	st.rotErr = nil
	if _, _, err := k.Rotate(ctx, next); err != nil {
		t.Errorf("the new key rotates: %v", err)
	}
}

// CheckActive reads the database, not the cache: a key cached as active
// but rotated elsewhere is in its grace period.
func TestCheckActive(t *testing.T) {
	ctx := context.Background()
	past, future := newClock().now().Add(-time.Minute), newClock().now().Add(time.Minute)
	cases := []struct {
		name           string
		rec            *KeyRecord
		registeredOnly bool
		want           error
	}{
		{"active", &KeyRecord{}, false, nil},
		{"grace", &KeyRecord{ExpiresAt: &future}, false, ErrKeyInGrace},
		{"expired", &KeyRecord{ExpiresAt: &past}, false, ErrKeyRevoked},
		{"revoked", &KeyRecord{RevokedAt: &past}, false, ErrKeyRevoked},
		{"unregistered namespace", nil, false, nil},
		{"unregistered, registered keys only", nil, true, ErrKeyUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeKeyStore()
			key := hashOf(t)
			k := newTestKeys(st, KeyOptions{CacheTTL: time.Hour, RegisteredOnly: tc.registeredOnly}, newClock())
			st.set(key, KeyRecord{Handle: key})
			if _, err := k.Resolve(ctx, key); err != nil {
				t.Fatal(err)
			}
			if tc.rec != nil {
				r := *tc.rec
				r.Handle = key
				st.set(key, r)
			} else {
				st.mu.Lock()
				delete(st.keys, key)
				st.mu.Unlock()
			}
			if err := k.CheckActive(ctx, key); !errors.Is(err, tc.want) {
				t.Errorf("CheckActive = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRevokeOthers(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	future := clk.now().Add(time.Minute)
	past := clk.now().Add(-time.Minute)
	st := newFakeKeyStore()
	rec := &recorder{}
	k := newTestKeys(st, KeyOptions{CacheTTL: time.Hour, Recorder: rec}, clk)
	caller, grace, other, expired, foreign := hashOf(t), hashOf(t), hashOf(t), hashOf(t), hashOf(t)
	st.set(caller, KeyRecord{Handle: grace, TenantID: 1})
	st.set(grace, KeyRecord{Handle: grace, TenantID: 1, ExpiresAt: &future})
	st.set(other, KeyRecord{Handle: grace, TenantID: 1})
	st.set(expired, KeyRecord{Handle: grace, TenantID: 1, ExpiresAt: &past})
	st.set(foreign, KeyRecord{Handle: foreign, TenantID: 2})
	for _, h := range []KeyHash{grace, other} {
		if _, err := k.Resolve(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	// A key in its grace period may not.
	if n, err := k.RevokeOthers(ctx, grace); !errors.Is(err, ErrKeyInGrace) || n != 0 {
		t.Fatalf("RevokeOthers by a key in grace = %d, %v; want ErrKeyInGrace", n, err)
	}
	n, err := k.RevokeOthers(ctx, caller)
	if err != nil || n != 2 {
		t.Fatalf("RevokeOthers = %d, %v; want the grace key and the other active key", n, err)
	}
	// Dropped from the cache at once here.
	for _, h := range []KeyHash{grace, other} {
		if _, err := k.Resolve(ctx, h); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("revoked key: %v, want ErrKeyRevoked", err)
		}
	}
	for _, h := range []KeyHash{caller, foreign} {
		if _, err := k.Resolve(ctx, h); err != nil {
			t.Errorf("kept key: %v", err)
		}
	}
	if len(rec.entries) != 1 || rec.entries[0].Action != audit.RevokeKey || rec.entries[0].Tenant != string(grace) ||
		rec.entries[0].Details["revoked"] != 2 || rec.entries[0].Details["by"] != "api" {
		t.Errorf("audit = %+v, want one REVOKE_KEY of 2 keys by the api", rec.entries)
	}
	// Nothing left to revoke: zero, still recorded (the caller asked).
	if n, err := k.RevokeOthers(ctx, caller); err != nil || n != 0 || len(rec.entries) != 2 {
		t.Errorf("second RevokeOthers = %d, %v (%d records); want 0, recorded", n, err, len(rec.entries))
	}
	if _, err := k.RevokeOthers(ctx, hashOf(t)); !errors.Is(err, ErrKeyUnknown) {
		t.Errorf("RevokeOthers by an unregistered key: %v, want ErrKeyUnknown", err)
	}
}

func TestRevokeByIDAndAll(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	rec := &recorder{}
	k := newTestKeys(st, KeyOptions{Recorder: rec}, newClock())
	a, b, c := hashOf(t), hashOf(t), hashOf(t)
	st.set(a, KeyRecord{Handle: a, TenantID: 1})
	st.set(b, KeyRecord{Handle: a, TenantID: 1})
	st.set(c, KeyRecord{Handle: c, TenantID: 2})
	for _, bad := range []string{"", "abc", KeyID(a)[:KeyIDLen-1], "zzzzzzzzzzzz", strings.Repeat("a", 65)} {
		if ok, err := k.RevokeID(ctx, bad, 0); !errors.Is(err, ErrInvalidKeyID) || ok {
			t.Errorf("RevokeID(%q) = %v, %v; want ErrInvalidKeyID", bad, ok, err)
		}
	}
	if ok, err := k.RevokeID(ctx, KeyID(a), 2); ok || err != nil {
		t.Errorf("RevokeID in the wrong tenant = %v, %v; want false", ok, err)
	}
	if ok, err := k.RevokeID(ctx, strings.ToUpper(KeyID(a)), 0); !ok || err != nil {
		t.Errorf("RevokeID = %v, %v; want true", ok, err)
	}
	if ok, err := k.RevokeID(ctx, KeyID(a), 0); ok || err != nil {
		t.Errorf("RevokeID again = %v, %v; want false", ok, err)
	}
	if n, err := k.RevokeAll(ctx, 1); n != 1 || err != nil {
		t.Errorf("RevokeAll = %d, %v; want the one key left", n, err)
	}
	if n, err := k.RevokeAll(ctx, 0); n != 0 || err == nil {
		t.Errorf("RevokeAll(0) = %d, %v; want an error", n, err)
	}
	if _, err := k.Resolve(ctx, c); err != nil {
		t.Errorf("other tenant's key: %v", err)
	}
	// Two records (the no-op revocation changed nothing and is not one).
	if len(rec.entries) != 2 {
		t.Errorf("audit entries = %+v, want 2", rec.entries)
	}
	for _, e := range rec.entries {
		if e.Action != audit.RevokeKey || e.Tenant != string(a) || e.Details["by"] != "cli" {
			t.Errorf("audit entry %+v, want REVOKE_KEY of tenant a by the cli", e)
		}
	}
}

func TestParseKeyID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"0123456789ab", "0123456789ab", nil},
		{" 0123456789AB ", "0123456789ab", nil},
		{strings.Repeat("f", 64), strings.Repeat("f", 64), nil},
		{"0123456789a", "", ErrInvalidKeyID},
		{"0123456789ag", "", ErrInvalidKeyID},
		{strings.Repeat("f", 65), "", ErrInvalidKeyID},
		{"0123-456789ab", "", ErrInvalidKeyID},
	} {
		got, err := ParseKeyID(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseKeyID(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// A key's last use is written at most once per UseInterval, in the
// background; a failed write is retried on a use touchRetry later, not
// on every use while the database is down.
func TestResolveRecordsUse(t *testing.T) {
	ctx := context.Background()
	st := newFakeKeyStore()
	clk := newClock()
	const every = time.Minute
	k := newTestKeys(st, KeyOptions{CacheTTL: time.Hour, UseInterval: every}, clk)
	key := hashOf(t)
	st.set(key, KeyRecord{Handle: key})
	resolve := func(step string, want int) {
		t.Helper()
		for i := 0; i < 5; i++ {
			if _, err := k.Resolve(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		k.touching.Wait()
		if got := st.touchCount(); got != want {
			t.Errorf("%s: %d last-use writes, want %d", step, got, want)
		}
	}
	resolve("first uses", 1)
	clk.advance(every - time.Nanosecond)
	resolve("within the interval", 1)
	clk.advance(time.Nanosecond)
	st.touchErr = errors.New("database down")
	resolve("after the interval, the write fails", 2)
	clk.advance(touchRetry - time.Nanosecond)
	resolve("no retry before touchRetry, even with the database down", 2)
	st.touchErr = nil
	clk.advance(time.Nanosecond)
	resolve("a failed write is retried", 3)
	st.mu.Lock()
	last := st.keys[key].LastUsedAt
	st.mu.Unlock()
	if last == nil || !last.Equal(clk.now()) {
		t.Errorf("stored last use = %v, want %v", last, clk.now())
	}
	// An unregistered key (a namespace) has no row: nothing to record.
	if _, err := k.Resolve(ctx, hashOf(t)); err != nil {
		t.Fatal(err)
	}
	k.touching.Wait()
	if got := st.touchCount(); got != 3 {
		t.Errorf("unregistered key: %d writes, want still 3", got)
	}
}
