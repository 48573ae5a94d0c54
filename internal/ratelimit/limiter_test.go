package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ourway/auth/internal/ratelimit"
)

// A class without limits of its own falls back to Default; with no Default
// either it allows everything without counting, while a class with limits
// of its own is still limited.
func TestLimiterClassesWithoutLimits(t *testing.T) {
	hour := func(n int) []ratelimit.Limit { return []ratelimit.Limit{lim(n, time.Hour)} }
	for _, tc := range []struct {
		name    string
		limits  map[string][]ratelimit.Limit
		limited map[string]int // class -> requests allowed before a refusal; 0: never refused
	}{
		{"no default", map[string][]ratelimit.Limit{ratelimit.Unauthenticated: hour(3)},
			map[string]int{ratelimit.Reads: 0, ratelimit.Writes: 0, ratelimit.Unauthenticated: 3}},
		{"default only", map[string][]ratelimit.Limit{ratelimit.Default: hour(2)},
			map[string]int{ratelimit.Reads: 2, ratelimit.Writes: 2, ratelimit.Unauthenticated: 2}},
		{"writes only", map[string][]ratelimit.Limit{ratelimit.Writes: hour(4)},
			map[string]int{ratelimit.Reads: 0, ratelimit.Writes: 4, ratelimit.Unauthenticated: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ratelimit.New(ratelimit.Options{Limits: tc.limits, Now: newClock().Now})
			if err != nil {
				t.Fatal(err)
			}
			for class, n := range tc.limited {
				if got := l.Limited(class); got != (n > 0) {
					t.Errorf("Limited(%s) = %v, want %v", class, got, n > 0)
				}
				want := "unlimited"
				if n > 0 {
					want = fmt.Sprintf("%d per hour", n)
				}
				if got := l.Describe(class); got != want {
					t.Errorf("Describe(%s) = %q, want %q", class, got, want)
				}
				tries := n + 1
				if n == 0 {
					tries = 5000 // far past 1000 per hour
				}
				for i := 0; i < tries; i++ {
					r := l.Allow(context.Background(), class, "k:"+class)
					if want := n == 0 || i < n; r.Allowed != want {
						t.Fatalf("%s request %d: allowed %v, want %v", class, i+1, r.Allowed, want)
					}
					if n == 0 && r.Limit.Count != 0 {
						t.Fatalf("%s: an unlimited class reports limit %v", class, r.Limit)
					}
				}
			}
		})
	}
}

// A limit that allows nothing is refused by New.
func TestLimiterRefusesEmptyLimit(t *testing.T) {
	_, err := ratelimit.New(ratelimit.Options{Limits: map[string][]ratelimit.Limit{ratelimit.Reads: {{Count: 0, Period: time.Second}}}})
	if err == nil {
		t.Fatal("New accepted a limit of 0 requests")
	}
}
