package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
)

// rateServer starts a SQLite server with the given settings (rate limits
// among them).
func rateServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServer(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), extra...))
}

// rateHeaders checks the RateLimit-* headers of a response.
func rateHeaders(t *testing.T, r response, limit, remaining int, policy string) {
	t.Helper()
	for _, h := range [][2]string{
		{"RateLimit-Limit", strconv.Itoa(limit)},
		{"RateLimit-Remaining", strconv.Itoa(remaining)},
		{"RateLimit-Policy", policy},
	} {
		if got := r.header.Get(h[0]); got != h[1] {
			t.Errorf("%s %s (%d): %s = %q, want %q", r.method, r.path, r.status, h[0], got, h[1])
		}
	}
	if reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset")); err != nil || reset < 0 {
		t.Errorf("%s %s: RateLimit-Reset = %q, want delta seconds", r.method, r.path, r.header.Get("RateLimit-Reset"))
	}
}

func noRateHeaders(t *testing.T, r response) {
	t.Helper()
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} {
		if v := r.header.Get(h); v != "" {
			t.Errorf("%s %s: %s = %q on a route without limits", r.method, r.path, h, v)
		}
	}
}

// A tenant spends its burst, gets 429 with the error envelope and the
// headers; another tenant is untouched; the operational routes have no
// limit.
func TestRateLimitPerTenant(t *testing.T) {
	s := rateServer(t, "RATE_LIMIT_DEFAULT=5 per minute; 100 per hour")
	a, b := s.client(newKey(t)), s.client(newKey(t))
	const policy = "5;w=60, 100;w=3600"
	for i := 0; i < 5; i++ {
		r := a.get(t, "/api/roles")
		expect(t, r, 200, res("[]"))
		rateHeaders(t, r, 5, 4-i, policy)
	}
	for _, r := range []response{a.get(t, "/api/roles"), a.post(t, "/api/v1/role/admin")} {
		expectError(t, r, 429, "Rate limit exceeded (5 per minute). Retry after 12 seconds.")
		rateHeaders(t, r, 5, 0, policy)
		if got := r.header.Get("Retry-After"); got != "12" {
			t.Errorf("%s %s: Retry-After = %q, want 12 (one emission interval of 5 per minute)", r.method, r.path, got)
		}
		if reset := r.header.Get("RateLimit-Reset"); reset != "60" && reset != "59" {
			t.Errorf("%s %s: RateLimit-Reset = %q, want 60 (the whole burst)", r.method, r.path, reset)
		}
	}
	r := b.get(t, "/api/roles")
	expect(t, r, 200, res("[]"))
	rateHeaders(t, r, 5, 4, policy)

	for i := 0; i < 20; i++ {
		for _, p := range []string{"/ping", "/health", "/ready"} {
			r := s.do(t, "GET", p)
			if r.status != 200 {
				t.Fatalf("GET %s after %d requests: %d, want 200 (not limited)", p, i, r.status)
			}
			noRateHeaders(t, r)
		}
	}
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="reads"}`); got != 1 {
		t.Errorf("reads rejections = %v, want 1", got)
	}
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="writes"}`); got != 1 {
		t.Errorf("writes rejections = %v, want 1", got)
	}
	if s.hasMetric(t, "auth_ratelimit_redis_up") {
		t.Error("auth_ratelimit_redis_up exported without Redis")
	}
}

// Reads and writes can have budgets of their own.
func TestRateLimitReadsAndWrites(t *testing.T) {
	s := rateServer(t, "RATE_LIMIT_DEFAULT=100 per minute", "AUTH_RATE_LIMIT_WRITES=2 per minute")
	c := s.client(newKey(t))
	for i := 0; i < 2; i++ {
		r := c.post(t, "/api/role/r"+strconv.Itoa(i))
		expect(t, r, 200, res("true"))
		rateHeaders(t, r, 2, 1-i, "2;w=60")
	}
	r := c.del(t, "/api/role/r0")
	expectError(t, r, 429, "Rate limit exceeded (2 per minute). Retry after 30 seconds.")
	for i := 0; i < 3; i++ {
		r := c.get(t, "/api/roles")
		expect(t, r, 200, res(`[{"description":null,"role":"r0"},{"description":null,"role":"r1"}]`))
		rateHeaders(t, r, 100, 99-i, "100;w=60")
	}
}

// A flood of bad keys from one address is limited by address: past the
// limit the gate's 401/400 becomes 429, and while the wait lasts the
// address gets 429 before any authentication work.
func TestRateLimitUnauthenticatedByIP(t *testing.T) {
	s := rateServer(t, "AUTH_RATE_LIMIT_UNAUTHENTICATED=3 per minute")
	bad := [][]string{
		nil, // no Authorization header
		{"Authorization: Basic Zm9vOmJhcg=="},
		{"Authorization: Bearer not-a-uuid"},
	}
	for i, h := range bad {
		r := s.do(t, "GET", "/api/roles", h...)
		if r.status != 401 && r.status != 400 {
			t.Fatalf("bad request %d: %d, want 401 or 400", i, r.status)
		}
		rateHeaders(t, r, 3, 2-i, "3;w=60")
	}
	for i := 0; i < 10; i++ {
		r := s.do(t, "GET", "/api/roles", "Authorization: Bearer 00000000-0000-0000-0000-000000000000")
		expectError(t, r, 429, "Rate limit exceeded (3 per minute). Retry after 20 seconds.")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	// The address is blocked as a whole while its wait lasts.
	expectError(t, s.client(newKey(t)).get(t, "/api/roles"), 429, "")
	if r := s.do(t, "GET", "/ping"); r.status != 200 {
		t.Errorf("GET /ping from a blocked address: %d, want 200", r.status)
	}
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="unauthenticated"}`); got != 11 {
		t.Errorf("unauthenticated rejections = %v, want 11", got)
	}
}

// X-Forwarded-For from an untrusted peer does not change the rate-limit
// key; from a trusted proxy it names the client.
func TestRateLimitForwardedFor(t *testing.T) {
	flood := func(t *testing.T, s *server, xff string, n int) []int {
		t.Helper()
		var got []int
		for i := 0; i < n; i++ {
			r := s.do(t, "GET", "/api/roles", "Authorization: Bearer nope", "X-Forwarded-For: "+xff)
			got = append(got, r.status)
		}
		return got
	}
	t.Run("untrusted peer", func(t *testing.T) {
		s := rateServer(t, "AUTH_RATE_LIMIT_UNAUTHENTICATED=2 per minute")
		var got []int
		for i := 0; i < 4; i++ {
			// A new address each time, as a spoofer would send.
			got = append(got, flood(t, s, fmt.Sprintf("203.0.113.%d", i+1), 1)...)
		}
		if want := []int{400, 400, 429, 429}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("statuses %v, want %v: the forwarded address must not change the key", got, want)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		s := rateServer(t, "AUTH_RATE_LIMIT_UNAUTHENTICATED=2 per minute", "AUTH_TRUSTED_PROXIES=127.0.0.1/32")
		if got, want := flood(t, s, "203.0.113.1", 3), []int{400, 400, 429}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client 203.0.113.1: %v, want %v", got, want)
		}
		// Another client behind the proxy has its own budget; the rightmost
		// untrusted address counts, not what the client put first.
		if got, want := flood(t, s, "198.51.100.7, 203.0.113.2", 2), []int{400, 400}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client 203.0.113.2: %v, want %v", got, want)
		}
		if got, want := flood(t, s, "203.0.113.1, 203.0.113.2", 1), []int{429}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client 203.0.113.2 claiming to forward for 203.0.113.1: %v, want %v", got, want)
		}
		// IPv6 clients are keyed by their /64.
		if got, want := flood(t, s, "2001:db8:1:2::1", 2), []int{400, 400}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client 2001:db8:1:2::1: %v, want %v", got, want)
		}
		if got, want := flood(t, s, "2001:db8:1:2:ffff::9", 1), []int{429}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client 2001:db8:1:2:ffff::9 (same /64): %v, want %v", got, want)
		}
	})
}

// statusCounts sends n GETs for one tenant concurrently, spread over
// servers, and counts the answers by status.
func statusCounts(t *testing.T, servers []*server, key string, n int) map[int]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
		errs   []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := servers[i%len(servers)].send("GET", "/api/has_permission/u/p", "Authorization: Bearer "+key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			counts[r.status]++
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return counts
}

// Three replicas sharing Redis hold one limit together.
func TestRateLimitSharedAcrossReplicas(t *testing.T) {
	url := testenv.RedisURL(t)
	var servers []*server
	for i := 0; i < 3; i++ {
		servers = append(servers, rateServer(t, "RATE_LIMIT_DEFAULT=50 per minute", "RATELIMIT_STORAGE_URL="+url))
	}
	key := newKey(t)
	start := time.Now()
	counts := statusCounts(t, servers, key, 150)
	elapsed := time.Since(start)
	// GCRA: a burst of 50, then one more per 1.2 s.
	most := 50 + int(elapsed/(1200*time.Millisecond))
	if counts[200] < 50 || counts[200] > most || counts[200]+counts[429] != 150 {
		t.Errorf("in %v: %v; want 50..%d answered 200 and the rest 429", elapsed, counts, most)
	}
	for _, s := range servers {
		if up := s.metricValue(t, "auth_ratelimit_redis_up"); up != 1 {
			t.Errorf("%s: auth_ratelimit_redis_up = %v, want 1", s.base, up)
		}
	}
}

// Redis goes away: local limits within a second and no 5xx; Redis comes
// back: shared limits again.
func TestRateLimitRedisOutage(t *testing.T) {
	testenv.RedisURL(t)
	proxy := testenv.NewProxy(t, testenv.RedisAddr(t))
	env := []string{"RATE_LIMIT_DEFAULT=20 per minute", "AUTH_RATE_LIMIT_REPLICAS=2", "RATELIMIT_STORAGE_URL=redis://" + proxy.Addr() + "/0"}
	s1, s2 := rateServer(t, env...), rateServer(t, env...)
	shared := func(c1, c2 client, from int) {
		t.Helper()
		for i := 0; i < 4; i++ {
			c := c1
			if i%2 == 1 {
				c = c2
			}
			r := c.get(t, "/api/roles")
			if r.status != 200 {
				t.Fatalf("shared request %d: %s", i, r)
			}
			rateHeaders(t, r, 20, from-1-i, "20;w=60")
		}
	}
	x := newKey(t)
	shared(s1.client(x), s2.client(x), 20)

	proxy.Cut()
	start := time.Now()
	r := s1.client(x).get(t, "/api/roles")
	if took := time.Since(start); took > time.Second {
		t.Errorf("first request with Redis gone took %v, want under 1s", took)
	}
	if r.status != 200 {
		t.Fatalf("first request with Redis gone: %s", r)
	}
	// Locally each of the 2 replicas allows half: 10 per minute, from a
	// fresh budget.
	rateHeaders(t, r, 10, 9, "10;w=60")
	got := map[int]int{200: 1}
	for i := 0; i < 12; i++ {
		got[s1.client(x).get(t, "/api/roles").status]++
	}
	if got[200] != 10 || got[429] != 3 {
		t.Errorf("with Redis gone: %v, want 10 answered 200 and 3 429 (local limit 10 per minute)", got)
	}
	if s1.metricValue(t, "auth_ratelimit_redis_up") != 0 || s1.metricValue(t, "auth_ratelimit_fallback_total") < 10 {
		t.Errorf("metrics during the outage: redis_up %v, fallback_total %v; want 0 and at least 10",
			s1.metricValue(t, "auth_ratelimit_redis_up"), s1.metricValue(t, "auth_ratelimit_fallback_total"))
	}

	proxy.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for s1.metricValue(t, "auth_ratelimit_redis_up") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("s1 did not go back to Redis within 5s of its return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// s2 has not used Redis during the outage: its first request finds it
	// back (or fails once, locally, and probes).
	for s2.client(newKey(t)).get(t, "/api/roles").status != 200 || s2.metricValue(t, "auth_ratelimit_redis_up") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("s2 is not on Redis 5s after its return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	y := newKey(t)
	shared(s1.client(y), s2.client(y), 20)
	if s1.metricValue(t, "auth_ratelimit_redis_outages_total") != 1 {
		t.Errorf("s1 outages = %v, want 1", s1.metricValue(t, "auth_ratelimit_redis_outages_total"))
	}
}
