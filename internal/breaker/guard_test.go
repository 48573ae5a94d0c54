package breaker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// errOutage is a domain's own "unavailable" sentinel in these tests.
var errOutage = errors.New("domain: storage unavailable")

var testGuard = Guard{Domain: func(err error) bool { return errors.Is(err, errDomain) }, Unavailable: errOutage}

// retryHint is the hint an error carries (0: none).
func retryHint(err error) time.Duration {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return h.RetryAfter()
	}
	return 0
}

func TestGuardRun(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	other := errors.New("constraint failed")
	for _, tc := range []struct {
		name string
		// failure is the breaker's classifier (nil: every error counts).
		failure     func(error) bool
		nilBreaker  bool
		open        bool // open the breaker first
		ctx         context.Context
		err         error // fn's error
		wantSame    bool  // the error comes back unchanged
		wantOutage  bool
		wantOpen    bool // the error matches ErrOpen
		wantRetry   time.Duration
		wantCounted int64
		wantCalled  bool
	}{
		{name: "success", failure: infra, wantCalled: true},
		{name: "infrastructure failure", failure: infra, err: errDown, wantOutage: true, wantRetry: time.Second,
			wantCounted: 1, wantCalled: true},
		{name: "domain answer with a breaker counting every error", err: errDomain, wantSame: true, wantCalled: true},
		{name: "error the classifier does not count", failure: infra, err: other, wantSame: true, wantCalled: true},
		{name: "breaker open", failure: infra, open: true, err: errDown, wantOutage: true, wantOpen: true,
			wantRetry: time.Minute, wantCounted: 1},
		{name: "deadline already passed", failure: infra, ctx: expired, wantOutage: true},
		{name: "no breaker: infrastructure failure unchanged", nilBreaker: true, err: errDown, wantSame: true, wantCalled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b *Breaker
			if !tc.nilBreaker {
				b = New(Options{Name: "db", Errors: 1, Timeout: time.Minute, Failure: tc.failure})
			}
			if tc.open {
				_ = b.Run(context.Background(), fail(errDown))
				if b.State() != Open {
					t.Fatalf("state = %v after a counted failure, want open", b.State())
				}
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			called := false
			err := testGuard.Run(ctx, b, func(context.Context) error { called = true; return tc.err })
			if called != tc.wantCalled {
				t.Errorf("fn called = %v, want %v", called, tc.wantCalled)
			}
			switch {
			case tc.wantSame:
				if err != tc.err {
					t.Errorf("Run = %v, want %v unchanged", err, tc.err)
				}
			case tc.wantOutage:
				if !errors.Is(err, errOutage) {
					t.Fatalf("Run = %v, want the domain's unavailable error", err)
				}
				if tc.err != nil && !tc.open && !errors.Is(err, tc.err) {
					t.Errorf("Run = %v, want it to wrap the cause %v", err, tc.err)
				}
				if got := errors.Is(err, ErrOpen); got != tc.wantOpen {
					t.Errorf("errors.Is(%v, ErrOpen) = %v, want %v", err, got, tc.wantOpen)
				}
				retry := retryHint(err)
				if tc.wantRetry == time.Minute {
					if retry < 30*time.Second || retry > time.Minute {
						t.Errorf("retry hint %v, want the rest of the minute the breaker stays open", retry)
					}
				} else if retry != tc.wantRetry {
					t.Errorf("retry hint %v, want %v", retry, tc.wantRetry)
				}
			default:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			}
			if b != nil {
				if got := b.Failures(); got != tc.wantCounted {
					t.Errorf("Failures = %d, want %d", got, tc.wantCounted)
				}
			}
		})
	}
}
