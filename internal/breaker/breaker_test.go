package breaker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	errDown   = errors.New("connection refused")
	errDomain = errors.New("role does not exist")
)

func infra(err error) bool { return errors.Is(err, errDown) }

// waitState polls until b is in state want or the deadline passes.
func waitState(t *testing.T, b *Breaker, want State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker state = %v after %v, want %v", b.State(), within, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func fail(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func TestOpensAfterThresholdOfCountedFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		wantOpen bool
	}{
		{"infrastructure failures open it", errDown, true},
		{"domain errors do not count", errDomain, false},
		{"successes do not count", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(Options{Name: "db", Errors: 3, Timeout: time.Minute, Failure: infra})
			for i := 0; i < 10; i++ {
				err := b.Run(context.Background(), fail(tc.err))
				if tc.err == nil && err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if errors.Is(err, ErrOpen) {
					break
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("call %d: error %v does not wrap %v", i, err, tc.err)
				}
				if got, want := errors.Is(err, ErrUnavailable), tc.wantOpen; got != want {
					t.Fatalf("call %d: errors.Is(err, ErrUnavailable) = %v, want %v", i, got, want)
				}
			}
			if got := b.State() == Open; got != tc.wantOpen {
				t.Errorf("open = %v, want %v (state %v)", got, tc.wantOpen, b.State())
			}
		})
	}
}

func TestOpenRejectsFastWithoutCalling(t *testing.T) {
	b := New(Options{Name: "db", Errors: 2, Timeout: time.Minute, Failure: infra})
	for i := 0; i < 2; i++ {
		_ = b.Run(context.Background(), fail(errDown))
	}
	if b.State() != Open {
		t.Fatalf("state = %v after 2 failures, want open", b.State())
	}
	called := false
	start := time.Now()
	err := b.Run(context.Background(), func(context.Context) error { called = true; return nil })
	took := time.Since(start)
	if called {
		t.Error("open breaker called the function")
	}
	if !errors.Is(err, ErrOpen) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v, want ErrOpen and ErrUnavailable", err)
	}
	var be *Error
	if !errors.As(err, &be) || be.RetryAfter() < 30*time.Second || be.RetryAfter() > time.Minute {
		t.Errorf("retry hint = %v, want about the remaining open time (≤ 1m, > 30s)", be.RetryAfter())
	}
	if took > 10*time.Millisecond {
		t.Errorf("rejection took %v, want under 10ms", took)
	}
	if got := b.Rejected(); got != 1 {
		t.Errorf("Rejected = %d, want 1", got)
	}
	if got := b.Failures(); got != 2 {
		t.Errorf("Failures = %d, want 2", got)
	}
}

func TestHalfOpenLetsOneProbeThroughAndRecovers(t *testing.T) {
	const timeout = 30 * time.Millisecond
	b := New(Options{Name: "db", Errors: 1, Timeout: timeout, Failure: infra})
	_ = b.Run(context.Background(), fail(errDown))
	waitState(t, b, HalfOpen, time.Second)

	// The probe blocks; every other caller is rejected meanwhile.
	release := make(chan struct{})
	probing := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Run(context.Background(), func(context.Context) error {
			close(probing)
			<-release
			return nil
		})
	}()
	<-probing
	var ran atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Run(context.Background(), func(context.Context) error { ran.Add(1); return nil })
			if !errors.Is(err, ErrOpen) {
				t.Errorf("concurrent call during the probe: %v, want ErrOpen", err)
			}
		}()
	}
	wg.Wait()
	if n := ran.Load(); n != 0 {
		t.Errorf("%d calls ran beside the half-open probe, want 0", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if b.State() != Closed {
		t.Fatalf("state after a successful probe = %v, want closed", b.State())
	}
	if err := b.Run(context.Background(), fail(nil)); err != nil {
		t.Errorf("call after recovery: %v", err)
	}
}

func TestHalfOpenFailureReopens(t *testing.T) {
	b := New(Options{Name: "db", Errors: 1, Timeout: 20 * time.Millisecond, Failure: infra})
	_ = b.Run(context.Background(), fail(errDown))
	waitState(t, b, HalfOpen, time.Second)
	if err := b.Run(context.Background(), fail(errDown)); !errors.Is(err, errDown) {
		t.Fatalf("probe error = %v, want the failure", err)
	}
	if b.State() != Open {
		t.Fatalf("state after a failed probe = %v, want open", b.State())
	}
	waitState(t, b, HalfOpen, time.Second)
}

func TestCallDeadline(t *testing.T) {
	b := New(Options{Name: "db", Errors: 2, Timeout: time.Minute, CallTimeout: 20 * time.Millisecond,
		Failure: func(error) bool { return false }})
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for i := 0; i < 2; i++ {
		start := time.Now()
		err := b.Run(context.Background(), hang)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("call took %v despite a 20ms deadline", took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error = %v, want a counted deadline", err)
		}
	}
	if b.State() != Open {
		t.Errorf("state after 2 timeouts = %v, want open (timeouts always count)", b.State())
	}
}

func TestCallerCancellationDoesNotCount(t *testing.T) {
	b := New(Options{Name: "db", Errors: 1, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	err := b.Run(ctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v, want context.Canceled not counted", err)
	}
	if b.State() != Closed {
		t.Errorf("state = %v, want closed", b.State())
	}
	if err := b.Run(ctx, fail(nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("call with an ended context = %v, want context.Canceled", err)
	}
}

func TestFailuresSpreadOverTimeoutDoNotOpen(t *testing.T) {
	b := New(Options{Name: "db", Errors: 2, Timeout: 20 * time.Millisecond, Failure: infra})
	_ = b.Run(context.Background(), fail(errDown))
	time.Sleep(40 * time.Millisecond) // a failure-free period longer than Timeout
	_ = b.Run(context.Background(), fail(errDown))
	if b.State() != Closed {
		t.Errorf("state = %v, want closed: the count resets after an error-free Timeout", b.State())
	}
}

func TestStateString(t *testing.T) {
	for _, tc := range []struct {
		s    State
		want string
		num  int
	}{{Closed, "closed", 0}, {HalfOpen, "half-open", 1}, {Open, "open", 2}} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String(%d) = %q, want %q", tc.s, got, tc.want)
		}
		if int(tc.s) != tc.num {
			t.Errorf("%s = %d, want %d", tc.want, tc.s, tc.num)
		}
	}
}
