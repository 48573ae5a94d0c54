package ratelimit

import (
	"context"
	"math"
	"time"
)

// GCRA (the generic cell rate algorithm) is the algorithm of every store
// here. A limit of "N per period" has a burst of N and an emission interval
// E = period/N: a fresh key may spend N requests at once, then one more
// every E, and never more than N + elapsed/E in any span of time — there is
// no window edge at which two bursts can meet, as there is with the fixed
// windows of Flask-Limiter.
//
// A key keeps one number per limit, its theoretical arrival time (TAT). A
// request at time now is allowed by a limit iff
//
//	max(TAT, now) + E - N·E <= now
//
// and then TAT becomes max(TAT, now) + E. The arithmetic is done in float64
// microseconds since 2017-01-01, in the same order of operations in Go
// (Memory) and in the Lua script of Redis, so that both stores take the same
// decisions for the same sequence of requests. It is the arithmetic of
// github.com/go-redis/redis_rate (from rwz/redis-gcra), extended to check
// several limits atomically: a request denied by one limit spends nothing
// from the others.

// epoch2017 is the Unix time of 2017-01-01T00:00:00Z. Times are counted from
// it so that microseconds stay exact in a float64 (as in redis_rate).
const epoch2017 = 1483228800

// micros converts t to float64 microseconds since epoch2017, truncated to
// the microsecond as Redis TIME is.
func micros(t time.Time) float64 {
	return float64((t.Unix()-epoch2017)*1_000_000 + int64(t.Nanosecond()/1000))
}

// Result is the decision on one request.
type Result struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Limit is the limit reported to the client: the most restrictive one
	// (the one that denied it, or the one with the fewest requests left).
	Limit Limit
	// Remaining is how many more requests Limit allows right now.
	Remaining int
	// RetryAfter, when the request is denied, is how long until it would
	// be allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until Limit is back to its full burst.
	ResetAfter time.Duration
	// Policy lists every limit that applied (RateLimit-Policy syntax);
	// filled in by Limiter.
	Policy string
	// Local reports a decision taken by the local fallback because the
	// shared store was unavailable; filled in by Limiter.
	Local bool
}

// Store decides requests against a set of limits. Every limit applies;
// a request is allowed only if all allow it, and only then is it counted
// against each of them.
type Store interface {
	Allow(ctx context.Context, key string, limits []Limit) (Result, error)
}

// step is one limit's verdict on a request.
type step struct {
	allowed   bool
	remaining float64 // whole requests left after this one (when allowed)
	retry     float64 // µs until allowed (when denied)
	reset     float64 // µs until the limit is back to its full burst
	newTAT    float64 // the TAT to store when the request is allowed
}

// emission returns the emission interval E and the burst offset N·E of l,
// in microseconds. The two products are separate statements so that no
// compiler fuses them into one multiply-add: Lua computes them apart.
func emission(l Limit) (e, burst float64) {
	e = float64(l.Period/time.Microsecond) / float64(l.Count)
	burst = float64(e * float64(l.Count))
	return e, burst
}

// decide is GCRA for one limit; tat is the stored TAT (ok=false: none).
// The Lua script in redis.go is this function, line by line.
func decide(tat float64, ok bool, now float64, l Limit) step {
	e, burst := emission(l)
	if !ok || tat < now {
		tat = now
	}
	newTAT := float64(tat + e)
	allowAt := float64(newTAT - burst)
	diff := float64(now - allowAt)
	if diff < 0 {
		return step{retry: -diff, reset: float64(tat - now)}
	}
	return step{
		allowed:   true,
		remaining: math.Floor(diff / e),
		reset:     float64(newTAT - now),
		newTAT:    newTAT,
	}
}

// combine turns the steps of every limit into one Result: the request is
// allowed iff every limit allows it. The reported limit is, when denied,
// the denying limit with the longest wait; when allowed, the one with the
// fewest requests left (ties: the longest reset).
func combine(steps []step, limits []Limit) Result {
	allowed := true
	for _, s := range steps {
		if !s.allowed {
			allowed = false
			break
		}
	}
	best := -1
	for i, s := range steps {
		if allowed {
			if best < 0 || s.remaining < steps[best].remaining ||
				(s.remaining == steps[best].remaining && s.reset > steps[best].reset) {
				best = i
			}
		} else if !s.allowed && (best < 0 || s.retry > steps[best].retry) {
			best = i
		}
	}
	if best < 0 {
		return Result{}
	}
	s := steps[best]
	r := Result{Allowed: allowed, Limit: limits[best], ResetAfter: microsDuration(s.reset)}
	if allowed {
		r.Remaining = int(s.remaining)
	} else {
		r.RetryAfter = microsDuration(s.retry)
		if r.RetryAfter <= 0 {
			r.RetryAfter = time.Microsecond
		}
	}
	return r
}

// microsDuration converts float64 microseconds to a Duration, rounding up
// to the next microsecond (a client told to wait must not wait too little).
func microsDuration(us float64) time.Duration {
	if us <= 0 {
		return 0
	}
	if us > float64(math.MaxInt64/int64(time.Microsecond)) {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(us)) * time.Microsecond
}
