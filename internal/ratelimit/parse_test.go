package ratelimit_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/ratelimit"
)

func TestParseLimits(t *testing.T) {
	type L = ratelimit.Limit
	for _, tc := range []struct {
		in   string
		want []L // nil: an error
	}{
		{"1000 per hour", []L{{1000, time.Hour}}},
		{"1 per second", []L{{1, time.Second}}},
		{"60 per minute", []L{{60, time.Minute}}},
		{"5 per day", []L{{5, 24 * time.Hour}}},
		{"10/minute", []L{{10, time.Minute}}},
		{"10 / minute", []L{{10, time.Minute}}},
		{"10/hours", []L{{10, time.Hour}}},
		{"10 PER Hour", []L{{10, time.Hour}}},
		{"10 per seconds", []L{{10, time.Second}}},
		{"5 per 10 seconds", []L{{5, 10 * time.Second}}},
		{"100/2 hours", []L{{100, 2 * time.Hour}}},
		{"  7 per   minute  ", []L{{7, time.Minute}}},
		{"1 per day; 10 per hour", []L{{1, 24 * time.Hour}, {10, time.Hour}}},
		{"1 per day,10/hour", []L{{1, 24 * time.Hour}, {10, time.Hour}}},
		{"1 per day;", []L{{1, 24 * time.Hour}}},
		{"1000000000 per second", []L{{1_000_000_000, time.Second}}},
		{"1 per 1000 days", []L{{1, 1000 * 24 * time.Hour}}},
		{"", nil},
		{"   ", nil},
		{";", nil},
		{" ; , ", nil},
		{"per hour", nil},
		{"ten per hour", nil},
		{"0 per hour", nil},
		{"-1 per hour", nil},
		{"1000000001 per second", nil},
		{"99999999999999999999 per second", nil},
		{"10 per", nil},
		{"10 hour", nil},
		{"10 every hour", nil},
		{"10 per fortnight", nil},
		{"10 per 0 hours", nil},
		{"10 per -2 hours", nil},
		{"10 per 1001 hours", nil},
		{"10 per 2 3 hours", nil},
		{"10 per hourss", nil},
		{"10/", nil},
		{"/hour", nil},
		{"10/hour/day", nil},
		{"1.5 per hour", nil},
		{"1 per day; nonsense", nil},
		{"10 per hour\x00", nil},
	} {
		got, err := ratelimit.ParseLimits(tc.in)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("ParseLimits(%q) = %v, want an error", tc.in, got)
		case tc.want == nil && (strings.TrimSpace(err.Error()) == "" || got != nil):
			t.Errorf("ParseLimits(%q) = %v, %q; want nil and a message", tc.in, got, err)
		case tc.want != nil && err != nil:
			t.Errorf("ParseLimits(%q): %v", tc.in, err)
		case tc.want != nil && !reflect.DeepEqual(got, tc.want):
			t.Errorf("ParseLimits(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLimitString(t *testing.T) {
	for _, tc := range []struct {
		l    ratelimit.Limit
		want string
	}{
		{ratelimit.Limit{Count: 1000, Period: time.Hour}, "1000 per hour"},
		{ratelimit.Limit{Count: 5, Period: 10 * time.Second}, "5 per 10 seconds"},
		{ratelimit.Limit{Count: 5, Period: 120 * time.Minute}, "5 per 2 hours"},
		{ratelimit.Limit{Count: 1, Period: 48 * time.Hour}, "1 per 2 days"},
		{ratelimit.Limit{Count: 1, Period: 1500 * time.Millisecond}, "1 per 1.5s"},
	} {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.l, got, tc.want)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	for _, s := range []string{
		"1000 per hour", "10/minute", "5 per 10 seconds", "1 per day; 10 per hour", "1,2", "",
		"0 per hour", "10 per 1001 hours", "1000000000 per 1000 days", "9/ 9 9s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ratelimit.ParseLimits(s)
		if err != nil {
			if got != nil {
				t.Fatalf("ParseLimits(%q) returned limits %v with an error", s, got)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("ParseLimits(%q): empty error message", s)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseLimits(%q) accepted no limits", s)
		}
		var parts []string
		for _, l := range got {
			if l.Count < 1 || l.Period <= 0 {
				t.Fatalf("ParseLimits(%q) accepted %#v", s, l)
			}
			parts = append(parts, l.String())
		}
		// The canonical form reads back as the same limits.
		canon := strings.Join(parts, "; ")
		again, err := ratelimit.ParseLimits(canon)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("ParseLimits(%q) = %v; its canonical form %q reads back as %v, %v", s, got, canon, again, err)
		}
		_ = fmt.Sprint(got)
	})
}
