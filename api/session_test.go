package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
)

func TestOpenSession(t *testing.T) {
	hA := unitHash(t, keyA)
	keys := &fakeKeys{handles: map[policy.KeyHash]policy.KeyHash{}, errs: map[policy.KeyHash]error{}}
	s := unitServer(keys, true)
	r := httptest.NewRequest(http.MethodPost, "/console/signin", nil)
	full, check := token(t, s, ""), token(t, s, `{"scope":"check"}`)

	tests := []struct {
		name     string
		cred     string
		ttl      time.Duration
		readOnly bool
		maxTTL   time.Duration
	}{
		{"client key", keyA, 5 * time.Minute, false, 5 * time.Minute},
		{"client key, ttl past the token lifetime", keyA, 10 * unitTTL, false, unitTTL},
		{"full token", full, 5 * time.Minute, false, 5 * time.Minute},
		{"check token keeps its scope", check, 5 * time.Minute, true, 5 * time.Minute},
		{"token: no longer than the token itself", full, 10 * unitTTL, false, unitTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			sess, err := s.OpenSession(r, tc.cred, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if sess.Tenant != hA || sess.ReadOnly != tc.readOnly {
				t.Errorf("session %+v, want tenant %s, read-only %v", sess.Identity, hA, tc.readOnly)
			}
			if life := sess.Expires.Sub(before); life > tc.maxTTL+time.Second || life < tc.maxTTL-2*time.Second {
				t.Errorf("session lives %v, want %v", life, tc.maxTTL)
			}
			c, err := s.tokens.parse(sess.Token)
			if err != nil || c.ExpiresAt.Time.After(sess.Expires.Add(time.Second)) {
				t.Fatalf("session token %+v, %v: not a token of this service ending with the session", c, err)
			}
			// The session token authenticates as the credential did.
			id, err := s.Authenticate(r, sess.Token)
			if err != nil || id.Tenant != hA || id.ReadOnly != tc.readOnly {
				t.Errorf("Authenticate(session) = %+v, %v", id, err)
			}
		})
	}

	refusals := []struct {
		name   string
		cred   string
		setup  func()
		status int
	}{
		{"bad key", "not-a-key", func() {}, http.StatusBadRequest},
		{"forged token", full[:len(full)-2] + "xx", func() {}, http.StatusUnauthorized},
		{"revoked key", keyA, func() { keys.errs[hA] = policy.ErrKeyRevoked }, http.StatusUnauthorized},
		{"key in its grace period", keyA, func() { keys.errs = map[policy.KeyHash]error{}; keys.activeErr = policy.ErrKeyInGrace }, http.StatusForbidden},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			_, err := s.OpenSession(r, tc.cred, time.Minute)
			if code, _ := ErrorStatus(err); err == nil || code != tc.status {
				t.Fatalf("OpenSession = %v (status %d), want %d", err, code, tc.status)
			}
		})
	}
}

func TestOpenSessionWithoutTokens(t *testing.T) {
	s := unitServer(&fakeKeys{}, false)
	r := httptest.NewRequest(http.MethodPost, "/console/signin", nil)
	if _, err := s.OpenSession(r, keyA, time.Minute); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("OpenSession without tokens = %v, want ErrNoTokens", err)
	}
}

// TestAdmitRead: a console page view counts against the tenant's read
// budget, the one its /api reads count against.
func TestAdmitRead(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lim, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{ratelimit.Reads: {{Count: 2, Period: time.Minute}}},
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, Deps{RateLimiter: lim, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r := httptest.NewRequest(http.MethodGet, "/console/roles", nil)
	hA, hB := unitHash(t, keyA), unitHash(t, keyB)
	for i, tc := range []struct {
		tenant policy.KeyHash
		status int
	}{{hA, 0}, {hA, 0}, {hA, http.StatusTooManyRequests}, {hB, 0}} {
		err := s.AdmitRead(r, tc.tenant)
		code := 0
		if err != nil {
			code, _ = ErrorStatus(err)
		}
		if code != tc.status {
			t.Errorf("read %d: status %d (%v), want %d", i, code, err, tc.status)
		}
	}
	// The API's own reads share the budget: tenant A is over it there too.
	if rr := call(s, "GET", "/api/roles", "", "Bearer "+keyA); rr.status != http.StatusTooManyRequests {
		t.Errorf("GET /api/roles after the console's reads: %d, want 429", rr.status)
	}
}

// TestWithRequestFacts: a request served beside the API (the console)
// carries the audit facts the API's own requests carry: the caller's id
// when well formed, the client's address behind a trusted proxy only.
func TestWithRequestFacts(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{TrustedProxies: proxies}, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, tc := range []struct {
		name, peer, xff, id string
		wantIP              string
		keepID              bool
	}{
		{"direct", "192.0.2.7:5000", "", "req-1", "192.0.2.7", true},
		{"trusted proxy", "10.1.2.3:5000", "198.51.100.9", "req-2", "198.51.100.9", true},
		{"untrusted peer's forwarding header", "192.0.2.7:5000", "198.51.100.9", "", "192.0.2.7", false},
		{"malformed id", "192.0.2.7:5000", "", "bad id!", "192.0.2.7", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/console/roles", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("User-Agent", "ua-test")
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.id != "" {
				r.Header.Set("X-Request-ID", tc.id)
			}
			r2, id := s.WithRequestFacts(r)
			f, ok := audit.RequestFrom(r2.Context())
			if !ok || f.IP != tc.wantIP || f.UserAgent != "ua-test" || f.ID != id {
				t.Fatalf("facts %+v (ok %v), id %q; want IP %s", f, ok, id, tc.wantIP)
			}
			if (id == tc.id) != tc.keepID || len(id) == 0 {
				t.Errorf("id %q for the caller's %q: kept %v, want %v", id, tc.id, id == tc.id, tc.keepID)
			}
		})
	}
}
