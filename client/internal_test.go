package client

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffIsFullJitterUnderAnExponentialCeiling(t *testing.T) {
	c := &Client{baseDelay: 10 * time.Millisecond, maxDelay: 200 * time.Millisecond}
	for n, ceil := range []time.Duration{10, 20, 40, 80, 160, 200, 200, 200} {
		ceil *= time.Millisecond
		if n >= 5 {
			ceil = 200 * time.Millisecond
		}
		low, high := false, false
		for i := 0; i < 2000; i++ {
			d := c.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			low = low || d < ceil/4
			high = high || d > ceil*3/4
		}
		if !low || !high {
			t.Errorf("backoff(%d): 2000 draws did not spread over [0, %v] (low %v, high %v)", n, ceil, low, high)
		}
	}
	if d := c.backoff(1000); d < 0 || d > c.maxDelay {
		t.Errorf("backoff(1000) = %v, want within [0, %v]", d, c.maxDelay)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		in       string
		min, max time.Duration
		ok       bool
	}{
		{"", 0, 0, false},
		{"junk", 0, 0, false},
		{"-1", 0, 0, false},
		{"0", 0, 0, true},
		{"3", 3 * time.Second, 3 * time.Second, true},
		{" 7 ", 7 * time.Second, 7 * time.Second, true},
		{"99999999999", 24 * time.Hour, 24 * time.Hour, true},
		{future, 85 * time.Second, 91 * time.Second, true},
		{past, 0, 0, true},
	}
	for _, tc := range tests {
		got, ok := retryAfter(tc.in)
		if ok != tc.ok || got < tc.min || got > tc.max {
			t.Errorf("retryAfter(%q) = %v, %v; want %v in [%v, %v]", tc.in, got, ok, tc.ok, tc.min, tc.max)
		}
	}
}

func TestAPIErrorMatchesSentinels(t *testing.T) {
	for status := 100; status < 600; status++ {
		e := &APIError{StatusCode: status}
		tests := []struct {
			target error
			want   bool
		}{
			{ErrUnauthorized, status == 401 || status == 403},
			{ErrRateLimited, status == 429},
			{ErrUnavailable, status == 502 || status == 503 || status == 504},
		}
		for _, tc := range tests {
			if got := e.Is(tc.target); got != tc.want {
				t.Errorf("APIError{%d}.Is(%v) = %v, want %v", status, tc.target, got, tc.want)
			}
		}
	}
}
