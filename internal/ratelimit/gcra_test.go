package ratelimit_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/ratelimit"
)

// clock is a settable clock for the stores.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	// Not on a whole second, to catch rounding that assumes one.
	return &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 123_456_000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func lim(count int, period time.Duration) ratelimit.Limit {
	return ratelimit.Limit{Count: count, Period: period}
}

// want is the part of a Result a step of a table checks.
type want struct {
	allowed   bool
	remaining int
	retry     time.Duration // RetryAfter
	reset     time.Duration // ResetAfter
	limit     ratelimit.Limit
}

type event struct {
	advance time.Duration // before the request
	want    want
}

func check(t *testing.T, i int, got ratelimit.Result, w want) {
	t.Helper()
	if got.Allowed != w.allowed || got.Remaining != w.remaining || got.RetryAfter != w.retry ||
		got.ResetAfter != w.reset || got.Limit != w.limit {
		t.Errorf("request %d: got allowed=%v remaining=%d retry=%v reset=%v limit=%v; want allowed=%v remaining=%d retry=%v reset=%v limit=%v",
			i, got.Allowed, got.Remaining, got.RetryAfter, got.ResetAfter, got.Limit,
			w.allowed, w.remaining, w.retry, w.reset, w.limit)
	}
}

func TestMemoryGCRA(t *testing.T) {
	s10 := lim(10, 10*time.Second) // burst 10, one more every second
	two := lim(2, time.Second)     // burst 2, one every 500 ms
	five := lim(5, time.Minute)    // burst 5, one every 12 s
	ok := func(rem int, reset time.Duration, l ratelimit.Limit) want {
		return want{allowed: true, remaining: rem, reset: reset, limit: l}
	}
	no := func(retry, reset time.Duration, l ratelimit.Limit) want {
		return want{retry: retry, reset: reset, limit: l}
	}
	for _, tc := range []struct {
		name   string
		limits []ratelimit.Limit
		events []event
	}{
		{
			name:   "burst then one per emission interval",
			limits: []ratelimit.Limit{s10},
			events: []event{
				{0, ok(9, 1*time.Second, s10)},
				{0, ok(8, 2*time.Second, s10)},
				{0, ok(7, 3*time.Second, s10)},
				{0, ok(6, 4*time.Second, s10)},
				{0, ok(5, 5*time.Second, s10)},
				{0, ok(4, 6*time.Second, s10)},
				{0, ok(3, 7*time.Second, s10)},
				{0, ok(2, 8*time.Second, s10)},
				{0, ok(1, 9*time.Second, s10)},
				{0, ok(0, 10*time.Second, s10)},
				{0, no(time.Second, 10*time.Second, s10)},
				{400 * time.Millisecond, no(600*time.Millisecond, 9600*time.Millisecond, s10)},
				{600 * time.Millisecond, ok(0, 10*time.Second, s10)},
				{0, no(time.Second, 10*time.Second, s10)},
				{time.Second, ok(0, 10*time.Second, s10)},
				// Idle for longer than the period: a full burst again, no more.
				{time.Hour, ok(9, time.Second, s10)},
			},
		},
		{
			name:   "a refused request costs nothing",
			limits: []ratelimit.Limit{lim(1, time.Second)},
			events: []event{
				{0, ok(0, time.Second, lim(1, time.Second))},
				{100 * time.Millisecond, no(900*time.Millisecond, 900*time.Millisecond, lim(1, time.Second))},
				{100 * time.Millisecond, no(800*time.Millisecond, 800*time.Millisecond, lim(1, time.Second))},
				{800 * time.Millisecond, ok(0, time.Second, lim(1, time.Second))},
			},
		},
		{
			name:   "several limits: all apply, the most restrictive is reported",
			limits: []ratelimit.Limit{five, two},
			events: []event{
				{0, ok(1, 500*time.Millisecond, two)},
				{0, ok(0, time.Second, two)},
				// Refused by 2/s: the per-minute budget is not spent.
				{0, no(500*time.Millisecond, time.Second, two)},
				{0, no(500*time.Millisecond, time.Second, two)},
				{500 * time.Millisecond, ok(0, time.Second, two)},
				{500 * time.Millisecond, ok(0, time.Second, two)},
				// 5 per minute: the fourth of five left 1, the fifth 0.
				{500 * time.Millisecond, ok(0, 60*time.Second-1500*time.Millisecond, five)},
				{500 * time.Millisecond, no(12*time.Second-2000*time.Millisecond, 60*time.Second-2000*time.Millisecond, five)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			m := ratelimit.NewMemory(clk.Now, 0)
			for i, ev := range tc.events {
				clk.Advance(ev.advance)
				got, err := m.Allow(context.Background(), "k", tc.limits)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				check(t, i, got, ev.want)
			}
		})
	}
}

// A fixed window lets 2N requests through around a window edge (N just
// before it, N just after). GCRA does not: after a burst, only what the
// emission interval has earned since.
func TestMemoryNoDoubleBurstAtWindowEdge(t *testing.T) {
	l := lim(100, time.Minute) // one every 600 ms
	clk := newClock()
	m := ratelimit.NewMemory(clk.Now, 0)
	spend := func() int {
		n := 0
		for i := 0; i < 300; i++ {
			if r, _ := m.Allow(context.Background(), "k", []ratelimit.Limit{l}); r.Allowed {
				n++
			}
		}
		return n
	}
	clk.Advance(59*time.Second + 900*time.Millisecond)
	if got := spend(); got != 100 {
		t.Fatalf("first burst: %d allowed, want 100", got)
	}
	clk.Advance(200 * time.Millisecond) // across the minute
	if got := spend(); got != 0 {
		t.Errorf("200 ms after a full burst, across a window edge: %d allowed, want 0", got)
	}
	clk.Advance(time.Second) // 1.2 s after the burst: two intervals earned
	if got := spend(); got != 2 {
		t.Errorf("1.2 s after a full burst: %d allowed, want 2", got)
	}
}

// Over random traffic, no span of time [a, b] between two allowed requests
// holds more than N + (b-a)/E allowed requests: the GCRA bound.
func TestMemoryGCRABound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 10; trial++ {
		l := lim(1+rng.IntN(20), time.Duration(1+rng.IntN(60))*time.Second)
		e := l.Period / time.Duration(l.Count)
		clk := newClock()
		m := ratelimit.NewMemory(clk.Now, 0)
		var at []time.Time
		for i := 0; i < 1000; i++ {
			clk.Advance(time.Duration(rng.Int64N(int64(3 * e / 2))))
			r, _ := m.Allow(context.Background(), "k", []ratelimit.Limit{l})
			if r.Allowed {
				at = append(at, clk.Now())
			} else if r.RetryAfter <= 0 || r.RetryAfter > e {
				t.Fatalf("%v: refused with RetryAfter %v, want in (0, %v]", l, r.RetryAfter, e)
			}
		}
		for i := range at {
			for j := i; j < len(at); j++ {
				span := at[j].Sub(at[i])
				if n, bound := j-i+1, l.Count+int(span/e); n > bound {
					t.Fatalf("%v: %d requests allowed within %v, bound %d", l, n, span, bound)
				}
			}
		}
	}
}

func TestMemoryKeysAreIndependentAndForgotten(t *testing.T) {
	clk := newClock()
	m := ratelimit.NewMemory(clk.Now, 0)
	l := []ratelimit.Limit{lim(2, time.Minute)}
	ctx := context.Background()
	for i, tc := range []struct {
		key     string
		advance time.Duration
		allowed bool
	}{
		{"a", 0, true},
		{"a", 0, true},
		{"a", 0, false},
		{"b", 0, true}, // a's refusals do not touch b
		{"a", 2 * time.Minute, true},
		{"a", 0, true}, // a full burst again after the period
		{"a", 0, false},
	} {
		clk.Advance(tc.advance)
		if r, _ := m.Allow(ctx, tc.key, l); r.Allowed != tc.allowed {
			t.Errorf("request %d on %s: allowed=%v, want %v", i, tc.key, r.Allowed, tc.allowed)
		}
	}
}

func TestMemoryMaxKeys(t *testing.T) {
	clk := newClock()
	m := ratelimit.NewMemory(clk.Now, 64*4)
	l := []ratelimit.Limit{lim(1, time.Hour)}
	for i := 0; i < 10_000; i++ {
		_, _ = m.Allow(context.Background(), string(rune(i)), l)
	}
	if got := m.Len(); got > 64*4 {
		t.Errorf("%d keys held, want at most %d", got, 64*4)
	}
}

// The cost a limit adds to a request with memory://: one decision per
// request, for one tenant or spread over many.
func BenchmarkLimiterAllow(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Options{
		Limits: map[string][]ratelimit.Limit{ratelimit.Default: {lim(1_000_000_000, time.Second), lim(1_000_000_000, time.Hour)}},
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "t:" + strconv.Itoa(i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(context.Background(), ratelimit.Reads, keys[i%len(keys)])
			i++
		}
	})
}
