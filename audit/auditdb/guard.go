package auditdb

import (
	"context"
	"errors"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/sqldb"
)

// guard reports outcomes in the audit trail's terms: a record refused
// because its tenant's chain is missing is an answer, never a failure of
// the database.
var guard = breaker.Guard{
	Domain:      func(err error) bool { return errors.Is(err, audit.ErrChainMissing) },
	Unavailable: audit.ErrUnavailable,
}

// Guard returns s with its calls run through circuit breakers: List through
// reads, Append through writes, so that a database outage fails fast with an
// error matching audit.ErrUnavailable that wraps the breaker's error (whose
// RetryAfter is the retry hint) rather than hang. Every other error
// passes through untouched. An Append inside a transaction carried by ctx
// (a change's record) is not guarded on its own: the transaction it joins
// is, by its own store's breaker. A nil breaker lets its calls through.
func Guard(s audit.Store, reads, writes *breaker.Breaker) audit.Store {
	return &guarded{s: s, reads: reads, writes: writes}
}

type guarded struct {
	s             audit.Store
	reads, writes *breaker.Breaker
}

var _ audit.Store = (*guarded)(nil)

// Append implements audit.Store through the write breaker, outside a
// transaction.
func (g *guarded) Append(ctx context.Context, recs []audit.Record) error {
	if sqldb.TxFrom(ctx) != nil {
		return g.s.Append(ctx, recs)
	}
	return guard.Run(ctx, g.writes, func(ctx context.Context) error { return g.s.Append(ctx, recs) })
}

// List implements audit.Store through the read breaker.
func (g *guarded) List(ctx context.Context, tenantFP, userFP string, q audit.Query) (recs []audit.Record, next int64, err error) {
	err = guard.Run(ctx, g.reads, func(ctx context.Context) error {
		var err error
		recs, next, err = g.s.List(ctx, tenantFP, userFP, q)
		return err
	})
	return recs, next, err
}
