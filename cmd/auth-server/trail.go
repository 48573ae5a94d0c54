package main

import (
	"context"
	"log/slog"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

// newAuditTrail builds the audit trail over the database, its store
// guarded by the database breakers (searches by the read one, appends by the
// write one), with its decision queue and their metrics. The queue is a part: it writes once it runs.
func newAuditTrail(cfg settings.Config, db *sqldb.DB, store *policydb.Store, keys *audit.Keyring,
	reads, writes *breaker.Breaker, mx *metrics.Metrics, log *slog.Logger) (*audit.Trail, *audit.Queue, *auditdb.Store) {
	// A tenant that has changed before must have an audit chain: a
	// missing one is not restarted behind the operator's back.
	var trail *audit.Trail
	auditStore := auditdb.NewWithOptions(db, keys, auditdb.Options{History: func(ctx context.Context, tenantFP string) (bool, error) {
		handle, ok := trail.Handle(tenantFP)
		if !ok {
			return false, nil // records come through the trail, which knows every tenant's handle
		}
		return store.Changed(ctx, policy.KeyHash(handle))
	}})
	queue := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error {
		return trail.WriteBatch(ctx, recs)
	}, audit.QueueOptions{Size: cfg.Audit.QueueSize, Overflow: audit.Overflow(cfg.Audit.Overflow),
		BlockTimeout: cfg.Ops.AuditBlockTimeout, FlushTimeout: auditFlushGrace, Logger: log})
	var stream *slog.Logger
	if cfg.Audit.Log != audit.LogNone {
		stream = log.With("log", "audit")
	}
	trail = audit.NewTrail(keys, auditdb.Guard(auditStore, reads, writes), queue, audit.TrailOptions{
		Decisions:         audit.Decisions(cfg.Audit.Decisions),
		Stream:            stream,
		StreamChangesOnly: cfg.Audit.Log == audit.LogChanges,
		AfterCommit:       sqldb.AfterCommit,
		// With encryption on, names must not reach the database in clear
		// through the audit trail either.
		SealResources: cfg.Crypto.Enabled,
		Logger:        log,
	})
	mx.GaugeFunc("auth_audit_queue_depth", "Audit records waiting to be written.", func() float64 { return float64(queue.Depth()) })
	mx.CounterFunc("auth_audit_dropped_total", "Audit records of checks dropped because the queue was full (overflow=drop, or block past its timeout or while the database is down).",
		func() float64 { return float64(queue.Dropped()) })
	mx.CounterFunc("auth_audit_write_failures_total", "Failed audit batch writes (each is retried).",
		func() float64 { return float64(queue.WriteFailures()) })
	mx.CounterFunc("auth_audit_written_total", "Audit records of checks and listings written.",
		func() float64 { return float64(queue.Written()) })
	mx.CounterFunc("auth_audit_chain_missing_total", "Audit records refused because their tenant has changed before but its audit chain is missing (changes refused with 500, check records not written); `auth-server audit reset` starts a new chain.",
		func() float64 { return float64(trail.ChainMissing()) })
	return trail, queue, auditStore
}
