package audit

import "errors"

// ErrUnavailable is matched by the error of a store operation that could
// not be served now: the database is unreachable or too slow (a circuit
// breaker rejected the call or counted its failure; see auditdb.Guard). The
// HTTP layer answers it with 503 and Retry-After, and the queue retries its
// batch.
var ErrUnavailable = errors.New("audit: storage unavailable")
