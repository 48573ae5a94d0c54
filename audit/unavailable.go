package audit

import (
	"errors"
	"time"
)

// ErrUnavailable is matched by every error of a store operation that could
// not be served now (see UnavailableError): the HTTP layer answers it with
// 503 and Retry-After, and the queue retries its batch.
var ErrUnavailable = errors.New("audit: storage unavailable")

// UnavailableError is the error of a store operation that could not be
// served now: the database is unreachable or too slow (a circuit breaker
// rejected the call or counted its failure). It matches ErrUnavailable and
// wraps its cause.
type UnavailableError struct {
	Err error
	// Retry is how long the caller should wait before trying again (0: no
	// hint).
	Retry time.Duration
}

func (e *UnavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is matches ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// RetryAfter is the retry hint (for a Retry-After header).
func (e *UnavailableError) RetryAfter() time.Duration { return e.Retry }
