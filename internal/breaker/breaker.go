// Package breaker wraps github.com/eapache/go-resiliency/breaker for calls to
// a dependency such as the database: it gives every call a deadline, counts
// only the failures a classifier calls infrastructure failures (never a
// domain result, a validation error or a caller that went away), lets one
// probe at a time through while half-open, and answers at once with an
// error carrying a retry hint while open.
//
// The underlying breaker's semantics (go-resiliency v1.7.0): closed, it
// opens after Errors counted failures none of which is more than Timeout
// after the previous one (successes in between do not reset the count);
// open, it rejects every call for Timeout and then goes half-open; half-open,
// one failure opens it again and Successes successes close it. Half-open
// lets every caller through, which against a black-holed database would
// make all of them wait for their deadline: this wrapper lets a single
// probe through and rejects the others.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eapache/go-resiliency/breaker"
)

// ErrUnavailable is matched (errors.Is) by every error of this package: a
// rejected call, and a call that failed in a way that counts against the
// dependency.
var ErrUnavailable = errors.New("dependency unavailable")

// ErrOpen is matched by the error of a call that was rejected without
// running because the breaker is open (or half-open with its probe busy).
var ErrOpen = errors.New("circuit breaker open")

// State is a breaker's state, numbered as exported in metrics.
type State int

// The states.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	default:
		return "open"
	}
}

// Options tune a Breaker. Zero values take the defaults.
type Options struct {
	// Name identifies the breaker in errors and metrics.
	Name string
	// Errors is the number of counted failures that opens the breaker
	// (default 5).
	Errors int
	// Successes is the number of successful probes that closes a
	// half-open breaker (default 1).
	Successes int
	// Timeout is how long the breaker stays open before it lets a probe
	// through, and the longest gap between two failures counted together
	// (default 5s).
	Timeout time.Duration
	// CallTimeout is the deadline given to every call (0: none).
	CallTimeout time.Duration
	// Failure reports whether an error is an infrastructure failure that
	// counts against the dependency (nil: every error counts). Whatever it
	// says, a call whose caller's context ended before it failed with
	// context.Canceled is not counted.
	Failure func(error) bool
	// Logger, when set, is told when the breaker opens and when a probe
	// closes it.
	Logger *slog.Logger
}

// Breaker guards calls to one dependency.
type Breaker struct {
	opts     Options
	cb       *breaker.Breaker
	probe    chan struct{} // one token: the half-open probe
	openedAt atomic.Int64  // UnixNano of the last opening we saw
	rejected atomic.Int64
	failures atomic.Int64
}

// New returns a closed breaker.
func New(o Options) *Breaker {
	if o.Errors <= 0 {
		o.Errors = 5
	}
	if o.Successes <= 0 {
		o.Successes = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Failure == nil {
		o.Failure = func(error) bool { return true }
	}
	return &Breaker{
		opts:  o,
		cb:    breaker.New(o.Errors, o.Successes, o.Timeout),
		probe: make(chan struct{}, 1),
	}
}

// Name is the breaker's name.
func (b *Breaker) Name() string { return b.opts.Name }

// State is the breaker's current state.
func (b *Breaker) State() State {
	switch b.cb.GetState() {
	case breaker.Closed:
		return Closed
	case breaker.HalfOpen:
		return HalfOpen
	default:
		return Open
	}
}

// Available reports whether calls are let through (the breaker is closed).
func (b *Breaker) Available() bool { return b.cb.GetState() == breaker.Closed }

// Rejected is the number of calls rejected without running.
func (b *Breaker) Rejected() int64 { return b.rejected.Load() }

// Failures is the number of calls that failed and were counted.
func (b *Breaker) Failures() int64 { return b.failures.Load() }

// Error is the error of a rejected call or of a counted failure.
type Error struct {
	Breaker string
	// Rejected is true when the call did not run.
	Rejected bool
	// Retry is how long the caller should wait before trying again.
	Retry time.Duration
	// Err is the failure of a call that ran (nil when rejected).
	Err error
}

func (e *Error) Error() string {
	if e.Rejected {
		return fmt.Sprintf("%s: circuit breaker open", e.Breaker)
	}
	return fmt.Sprintf("%s: %v", e.Breaker, e.Err)
}

// Unwrap returns the call's failure.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrUnavailable always and ErrOpen for a rejected call.
func (e *Error) Is(target error) bool {
	return target == ErrUnavailable || (target == ErrOpen && e.Rejected)
}

// RetryAfter is the retry hint (for a Retry-After header).
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// Run calls fn through the breaker with a context bounded by CallTimeout. It
// returns fn's error unchanged when it does not count against the
// dependency, an *Error wrapping it when it does, and an *Error matching
// ErrOpen, at once and without calling fn, when the breaker is open.
func (b *Breaker) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	probing := false
	if b.cb.GetState() != breaker.Closed {
		// Open or half-open: only the holder of the probe token may try.
		select {
		case b.probe <- struct{}{}:
			defer func() { <-b.probe }()
			probing = true
		default:
			return b.reject()
		}
	}
	var callErr error
	counted := false
	err := b.cb.Run(func() error {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if b.opts.CallTimeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, b.opts.CallTimeout)
		}
		defer cancel()
		callErr = fn(cctx)
		if callErr == nil || !b.counts(ctx, callErr) {
			return nil
		}
		counted = true
		return callErr
	})
	if errors.Is(err, breaker.ErrBreakerOpen) {
		return b.reject()
	}
	if !counted {
		if probing && callErr == nil && b.cb.GetState() == breaker.Closed && b.opts.Logger != nil {
			b.opts.Logger.Info("circuit breaker closed", "breaker", b.opts.Name)
		}
		return callErr
	}
	b.failures.Add(1)
	if b.cb.GetState() == breaker.Open {
		b.noteOpen(callErr)
	}
	return &Error{Breaker: b.opts.Name, Err: callErr, Retry: time.Second}
}

// counts reports whether a call's error counts against the dependency.
func (b *Breaker) counts(ctx context.Context, err error) bool {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return false // the caller went away; the dependency did nothing wrong
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true // our deadline (or the caller's): the dependency was too slow
	}
	return b.opts.Failure(err)
}

// noteOpen records when the breaker (last) opened, for the retry hint, and
// logs the opening with the failure that caused it.
func (b *Breaker) noteOpen(cause error) {
	now := time.Now().UnixNano()
	for {
		old := b.openedAt.Load()
		if now-old < int64(b.opts.Timeout) {
			return // this opening is already noted
		}
		if b.openedAt.CompareAndSwap(old, now) {
			if b.opts.Logger != nil {
				b.opts.Logger.Warn("circuit breaker opened: failing fast", "breaker", b.opts.Name,
					"for", b.opts.Timeout.String(), "err", cause)
			}
			return
		}
	}
}

func (b *Breaker) reject() error {
	b.rejected.Add(1)
	retry := time.Second
	if at := b.openedAt.Load(); at != 0 {
		if left := time.Duration(at + int64(b.opts.Timeout) - time.Now().UnixNano()); left > retry {
			retry = left
		}
	}
	return &Error{Breaker: b.opts.Name, Rejected: true, Retry: retry}
}
