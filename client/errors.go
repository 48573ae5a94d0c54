package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Use errors.Is to test for them: an *APIError matches the
// sentinel of its status code, and a failure to get any answer at all (a
// refused or dropped connection, a timeout, an open circuit breaker) always
// matches ErrUnavailable.
//
// None of them is a denial. A check such as HasPermission reports a denial
// only as (false, nil); any non-nil error means that no decision was made,
// and the caller must fail closed.
var (
	// ErrUnauthorized matches an answer of 401 or 403: the credential was
	// missing, malformed or refused.
	ErrUnauthorized = errors.New("auth: unauthorized")
	// ErrRateLimited matches an answer of 429 Too Many Requests.
	ErrRateLimited = errors.New("auth: rate limited")
	// ErrUnavailable matches a transport failure (no answer), an open
	// circuit breaker, and answers of 502, 503 and 504.
	ErrUnavailable = errors.New("auth: service unavailable")
	// ErrConsistencyUnavailable matches an answer of 503 with Reason
	// ReasonConsistencyUnavailable: the replica was behind the revision a
	// read asked for (AtLeast, Full or session consistency) and could not
	// reach its database in time. It also matches ErrUnavailable; retrying
	// is safe, and idempotent reads are retried.
	ErrConsistencyUnavailable = errors.New("auth: consistency unavailable")
	// ErrRevisionAhead matches an answer of 400 with Reason
	// ReasonRevisionAhead: a read asked for a revision newer than the
	// tenant's latest (Details["revision"] and Details["latest"]), one that
	// the service never returned for this tenant.
	ErrRevisionAhead = errors.New("auth: revision ahead of the tenant's latest")
	// ErrChangesExpired matches an answer of 410 with Reason
	// ReasonChangesExpired: the change feed no longer holds the changes
	// after the position asked for (Details["oldest"] is the oldest revision
	// it still has). Resynchronise from V2.ExportPolicy and follow the feed
	// from the export's Revision.
	ErrChangesExpired = errors.New("auth: changes expired: resynchronise from the policy export")
)

// APIError is a non-2xx answer of the service.
type APIError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Message is the "message" field of the service's JSON error envelope,
	// or the status text when the body is not such an envelope.
	Message string
	// Reason is the envelope's details.reason: a stable, machine-readable
	// cause such as ReasonRoleNotFound (API v2 answers always carry one;
	// "" when the answer has none). Branch on it, never on Message.
	Reason string
	// Details is the envelope's details object (reason included), with the
	// reason's extra fields such as "role", "max" or "errors"; nil when the
	// answer has none.
	Details map[string]any
	// Body is the raw body of the answer (at most 1 MiB of it).
	Body []byte
	// Method and Path say which request got the answer.
	Method, Path string
}

// Error describes the answer and the request that got it.
func (e *APIError) Error() string {
	return fmt.Sprintf("auth: %s %s: %d %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// Is reports whether target is the sentinel error of e's status code:
// ErrUnauthorized for 401 and 403, ErrRateLimited for 429 and
// ErrUnavailable for 502, 503 and 504; or of its status and reason:
// ErrConsistencyUnavailable, ErrRevisionAhead and ErrChangesExpired.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrConsistencyUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable && e.Reason == ReasonConsistencyUnavailable
	case ErrRevisionAhead:
		return e.StatusCode == http.StatusBadRequest && e.Reason == ReasonRevisionAhead
	case ErrChangesExpired:
		return e.StatusCode == http.StatusGone && e.Reason == ReasonChangesExpired
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusServiceUnavailable ||
			e.StatusCode == http.StatusGatewayTimeout
	}
	return false
}

// retryableStatus reports whether an idempotent request that got status may
// be sent again.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// breakerStatus reports whether an answer with status counts as a failure
// of the service for the circuit breaker: 5xx and 429 do, 4xx never.
func breakerStatus(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests
}
