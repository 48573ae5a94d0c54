package breaker

import (
	"context"
	"errors"
	"fmt"
)

// Guard says, in the terms of the domain a store serves, what a call
// through a breaker came to. Store decorators (policydb.Guard,
// auditdb.Guard) use one so that the domain sees only its own errors.
type Guard struct {
	// Domain reports whether an error is an answer of the domain (a refused
	// change, a state conflict) rather than a failure of the dependency:
	// it never counts against the dependency, whatever the breaker's
	// classifier says, and is returned unchanged (nil: no error is).
	Domain func(error) bool
	// Unavailable is the domain's own sentinel for a dependency that cannot
	// serve the call now.
	Unavailable error
}

// Run calls fn through b, or directly when b is nil. A call the breaker
// rejected, a failure it counted and a deadline that ran out come back as
// an error that matches g.Unavailable and wraps the breaker's error (its
// RetryAfter is the hint for the caller); a domain answer and any other
// error come back unchanged.
func (g Guard) Run(ctx context.Context, b *Breaker, fn func(ctx context.Context) error) error {
	if b == nil {
		return fn(ctx)
	}
	var domain error
	err := b.Run(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		if err != nil && g.Domain != nil && g.Domain(err) {
			domain = err
			return nil // the dependency did its job
		}
		return err
	})
	if domain != nil {
		return domain
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", g.Unavailable, err)
	}
	return err
}
