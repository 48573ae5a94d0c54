package ratelimit_test

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/internal/testenv"
)

// testPrefix is a key prefix of this test alone.
func testPrefix(t *testing.T) string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return "auth:test:" + hex.EncodeToString(b[:]) + ":"
}

// newRedis returns a Redis store on the test Redis, with keys of its own
// that are deleted when the test ends; now (nil: Redis TIME) is its clock.
func newRedis(t *testing.T, url string, prefix string, now func() time.Time) *ratelimit.Redis {
	t.Helper()
	r, err := ratelimit.NewRedis(url, ratelimit.RedisOptions{Prefix: prefix, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Clear(ctx); err != nil {
			t.Errorf("delete test keys %s*: %v", prefix, err)
		}
		_ = r.Close()
	})
	return r
}

// The Redis store takes the same decisions as the memory store, value for
// value, over random traffic on several keys and sets of limits.
func TestRedisDecidesLikeMemory(t *testing.T) {
	url := testenv.RedisURL(t)
	clk := newClock()
	mem := ratelimit.NewMemory(clk.Now, 0)
	rdb := newRedis(t, url, testPrefix(t), clk.Now)
	// Emission intervals of 10 s or more: Redis expires keys in real time,
	// which must not overtake the test's clock.
	sets := [][]ratelimit.Limit{
		{lim(3, time.Minute)},
		{lim(5, 10*time.Minute), lim(2, 30*time.Second)},
		{lim(10, time.Hour), lim(4, 2*time.Minute), lim(7, 5*time.Minute)},
		{lim(1, time.Hour)},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	allowed, refused := 0, 0
	for i := 0; i < 600; i++ {
		if rng.IntN(3) == 0 {
			clk.Advance(time.Duration(rng.Int64N(int64(20 * time.Second))))
		}
		set := rng.IntN(len(sets))
		key := fmt.Sprintf("k%d-%d", set, rng.IntN(3))
		want, _ := mem.Allow(ctx, key, sets[set])
		got, err := rdb.Allow(ctx, key, sets[set])
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got != want {
			t.Fatalf("request %d (%s, %v): Redis decided %+v, memory %+v", i, key, sets[set], got, want)
		}
		if got.Allowed {
			allowed++
		} else {
			refused++
		}
	}
	if allowed == 0 || refused == 0 {
		t.Errorf("%d allowed, %d refused: the traffic does not exercise both outcomes", allowed, refused)
	}
}

// With Redis's own clock (as in production): a burst, then refusals with a
// wait of at most one emission interval.
func TestRedisTime(t *testing.T) {
	url := testenv.RedisURL(t)
	rdb := newRedis(t, url, testPrefix(t), nil)
	l := []ratelimit.Limit{lim(5, time.Minute)}
	for i := 0; i < 5; i++ {
		r, err := rdb.Allow(context.Background(), "k", l)
		if err != nil {
			t.Fatal(err)
		}
		// The clock moves between requests: remaining may be one higher.
		if !r.Allowed || r.Remaining < 4-i || r.Remaining > 5-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, r, 4-i)
		}
	}
	r, err := rdb.Allow(context.Background(), "k", l)
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 12*time.Second || r.ResetAfter > time.Minute {
		t.Fatalf("request 6: %+v, want refused with a wait in (0, 12s] and a reset within a minute", r)
	}
}

// freePort returns a local port with nothing listening on it.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// An unreachable Redis costs the first request at most its timeout; then
// local limits apply, and no request fails.
func TestLimiterFallsBackWhenRedisIsUnreachable(t *testing.T) {
	rdb, err := ratelimit.NewRedis("redis://"+freePort(t)+"/0", ratelimit.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{ratelimit.Default: {lim(4, time.Minute)}},
		Shared: rdb, Replicas: 2, // locally: 2 per minute
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := l.Allow(context.Background(), ratelimit.Reads, "t:a")
	if took := time.Since(start); took > time.Second {
		t.Errorf("first decision took %v with Redis down, want under 1s", took)
	}
	if !r.Allowed || !r.Local {
		t.Fatalf("first request: %+v, want allowed locally", r)
	}
	if l.SharedUp() || l.Outages() != 1 {
		t.Errorf("SharedUp=%v Outages=%d, want false and 1", l.SharedUp(), l.Outages())
	}
	start = time.Now()
	var got []bool
	for i := 0; i < 3; i++ {
		r := l.Allow(context.Background(), ratelimit.Reads, "t:a")
		got = append(got, r.Allowed)
		if !r.Local {
			t.Errorf("request %d decided by Redis while it is down", i+2)
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("three decisions took %v once Redis was known down: each still waits for it", took)
	}
	if want := []bool{true, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("local decisions %v, want %v (4 per minute over 2 replicas: 2 each)", got, want)
	}
	if l.Fallbacks() != 3 || l.Rejections(ratelimit.Reads) != 2 {
		t.Errorf("Fallbacks=%d Rejections(reads)=%d, want 3 (the last refusal is remembered, not decided) and 2", l.Fallbacks(), l.Rejections(ratelimit.Reads))
	}
}

// Redis goes away and comes back: local limits within a second, no
// failure, then shared limits again (the other replica's requests count).
func TestLimiterReturnsToRedis(t *testing.T) {
	url := testenv.RedisURL(t)
	proxy := testenv.NewProxy(t, testenv.RedisAddr(t))
	prefix := testPrefix(t)
	viaProxy := newRedis(t, "redis://"+proxy.Addr()+"/0", prefix, nil)
	direct := newRedis(t, url, prefix, nil)
	limits := map[string][]ratelimit.Limit{ratelimit.Default: {lim(10, time.Hour)}}
	a, err := ratelimit.New(ratelimit.Options{Limits: limits, Shared: viaProxy, ProbeInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ratelimit.New(ratelimit.Options{Limits: limits, Shared: direct})
	if err != nil {
		t.Fatal(err)
	}
	runLimiter(t, a)
	ctx := context.Background()
	allow := func(l *ratelimit.Limiter) ratelimit.Result { return l.Allow(ctx, ratelimit.Writes, "t:x") }

	for i, want := range []int{9, 8, 7} {
		l := a
		if i == 1 {
			l = b
		}
		if r := allow(l); !r.Allowed || r.Local || r.Remaining != want {
			t.Fatalf("shared request %d: %+v, want allowed by Redis with %d left", i, r, want)
		}
	}

	proxy.Cut()
	start := time.Now()
	r := allow(a)
	if took := time.Since(start); took > time.Second {
		t.Errorf("decision during the outage took %v, want under 1s", took)
	}
	if !r.Allowed || !r.Local || r.Remaining != 9 {
		t.Fatalf("during the outage: %+v, want allowed locally from a fresh local budget (9 left)", r)
	}
	if a.SharedUp() || a.Fallbacks() != 1 {
		t.Errorf("SharedUp=%v Fallbacks=%d during the outage, want false and 1", a.SharedUp(), a.Fallbacks())
	}
	// The other replica still reaches Redis: the shared count goes on.
	if r := allow(b); r.Local || r.Remaining != 6 {
		t.Fatalf("other replica during the outage: %+v, want shared with 6 left", r)
	}

	proxy.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for !a.SharedUp() {
		if time.Now().After(deadline) {
			t.Fatal("the limiter did not go back to Redis within 5s of its return")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := allow(a); !r.Allowed || r.Local || r.Remaining != 5 {
		t.Fatalf("after Redis came back: %+v, want shared with 5 left", r)
	}
	if a.Outages() != 1 {
		t.Errorf("Outages=%d, want 1", a.Outages())
	}
}

func TestLimiterClasses(t *testing.T) {
	clk := newClock()
	l, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{
			ratelimit.Default: {lim(2, time.Minute)},
			ratelimit.Writes:  {lim(1, time.Minute)},
		},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, tc := range []struct {
		class, subject string
		allowed        bool
		limit          ratelimit.Limit
		policy         string
	}{
		{ratelimit.Reads, "t:a", true, lim(2, time.Minute), "2;w=60"},
		// Unauthenticated has no limits of its own either: it shares the
		// default bucket by name, but its subjects are IPs.
		{ratelimit.Unauthenticated, "t:a", true, lim(2, time.Minute), "2;w=60"},
		{ratelimit.Reads, "t:a", false, lim(2, time.Minute), "2;w=60"},
		{ratelimit.Writes, "t:a", true, lim(1, time.Minute), "1;w=60"}, // own budget
		{ratelimit.Writes, "t:a", false, lim(1, time.Minute), "1;w=60"},
		{ratelimit.Reads, "t:b", true, lim(2, time.Minute), "2;w=60"},
	} {
		r := l.Allow(ctx, tc.class, tc.subject)
		if r.Allowed != tc.allowed || r.Limit != tc.limit || r.Policy != tc.policy {
			t.Errorf("request %d (%s %s): %+v, want allowed=%v limit=%v policy=%q", i, tc.class, tc.subject, r, tc.allowed, tc.limit, tc.policy)
		}
	}
	if got := l.Rejections(ratelimit.Reads) + l.Rejections(ratelimit.Writes); got != 2 {
		t.Errorf("%d rejections counted, want 2", got)
	}
}

// The tenant-creation classes never borrow the default limits: unset, they
// allow everything; set, they have buckets of their own.
func TestLimiterTenantCreationClasses(t *testing.T) {
	ctx := context.Background()
	unset, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{ratelimit.Default: {lim(1, time.Minute)}},
		Now:    newClock().Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for _, class := range []string{ratelimit.TenantCreation, ratelimit.TenantCreationGlobal} {
			if r := unset.Allow(ctx, class, "ip:1"); !r.Allowed {
				t.Errorf("unset %s, request %d refused: %+v", class, i, r)
			}
		}
	}
	if r := unset.Allow(ctx, ratelimit.Unauthenticated, "ip:1"); !r.Allowed {
		t.Errorf("the default bucket of ip:1 was spent by the tenant-creation classes: %+v", r)
	}

	set, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{
			ratelimit.Default:              {lim(1, time.Minute)},
			ratelimit.TenantCreation:       {lim(2, time.Minute)},
			ratelimit.TenantCreationGlobal: {lim(3, time.Minute)},
		},
		Now: newClock().Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		class, subject string
		allowed        bool
	}{
		{ratelimit.TenantCreation, "ip:1", true},
		{ratelimit.TenantCreation, "ip:1", true},
		{ratelimit.TenantCreation, "ip:1", false},
		{ratelimit.TenantCreation, "ip:2", true},
		{ratelimit.Unauthenticated, "ip:1", true}, // the default bucket is untouched
		{ratelimit.TenantCreationGlobal, "all", true},
		{ratelimit.TenantCreationGlobal, "all", true},
		{ratelimit.TenantCreationGlobal, "all", true},
		{ratelimit.TenantCreationGlobal, "all", false},
	} {
		if r := set.Allow(ctx, tc.class, tc.subject); r.Allowed != tc.allowed {
			t.Errorf("request %d (%s %s): %+v, want allowed=%v", i, tc.class, tc.subject, r, tc.allowed)
		}
	}
	if got := set.Rejections(ratelimit.TenantCreation); got != 1 {
		t.Errorf("%d tenant_creation rejections, want 1", got)
	}
	if got := set.Rejections(ratelimit.TenantCreationGlobal); got != 1 {
		t.Errorf("%d tenant_creation_global rejections, want 1", got)
	}
}

// A refused subject is known to be blocked, without a store, until its
// wait has passed.
func TestLimiterBlocked(t *testing.T) {
	clk := newClock()
	l, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{ratelimit.Default: {lim(1, 10*time.Second)}},
		Now:    clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, blocked := l.Blocked(ratelimit.Unauthenticated, "ip:1"); blocked {
		t.Fatal("blocked before any request")
	}
	l.Allow(ctx, ratelimit.Unauthenticated, "ip:1")
	if _, blocked := l.Blocked(ratelimit.Unauthenticated, "ip:1"); blocked {
		t.Fatal("blocked while within its limit")
	}
	if r := l.Allow(ctx, ratelimit.Unauthenticated, "ip:1"); r.Allowed {
		t.Fatal("second request allowed")
	}
	clk.Advance(4 * time.Second)
	r, blocked := l.Blocked(ratelimit.Unauthenticated, "ip:1")
	if !blocked || r.RetryAfter != 6*time.Second || r.ResetAfter != 6*time.Second || r.Remaining != 0 {
		t.Fatalf("4s later: blocked=%v %+v, want blocked for 6s more", blocked, r)
	}
	if _, blocked := l.Blocked(ratelimit.Unauthenticated, "ip:2"); blocked {
		t.Fatal("another IP is blocked")
	}
	clk.Advance(6 * time.Second)
	if _, blocked := l.Blocked(ratelimit.Unauthenticated, "ip:1"); blocked {
		t.Fatal("still blocked after the wait")
	}
	if r := l.Allow(ctx, ratelimit.Unauthenticated, "ip:1"); !r.Allowed {
		t.Fatalf("refused after the wait: %+v", r)
	}
}

// runLimiter runs l's probe until the test ends.
func runLimiter(t *testing.T, l *ratelimit.Limiter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
