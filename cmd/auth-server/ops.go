package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/settings"
)

// dbBreakers are the circuit breakers of the database: one for lookups and
// tenant loads, one for transactions (the policy changes and the audit
// queue's batches), so that a database that still reads but no longer
// writes (a failover to a read-only standby, a full disk) keeps tenants
// loading. Only infrastructure failures count (sqldb.Unavailable). The
// stores are guarded by them at the storage boundary (policydb.Guard,
// GuardKeys, GuardTenants and auditdb.Guard).
func dbBreakers(cfg settings.Config, mx *metrics.Metrics, log *slog.Logger) (reads, writes *breaker.Breaker) {
	o := breaker.Options{
		Errors:      cfg.Ops.DBBreakerErrors,
		Timeout:     cfg.Ops.DBBreakerTimeout,
		CallTimeout: cfg.Ops.DBTimeout,
		Failure:     sqldb.Unavailable,
		Logger:      log,
	}
	ro, wo := o, o
	ro.Name, wo.Name = "database_read", "database_write"
	reads, writes = breaker.New(ro), breaker.New(wo)
	mx.Breaker(reads)
	mx.Breaker(writes)
	return reads, writes
}

// readiness is the /ready check: neither database breaker open, the
// database answering, the schema current and undamaged (casbin_rule as the
// service made it), and policies loadable (the model
// builds and a tenant lookup answers). The lookups go past the breakers, so
// that /ready sees a recovery as soon as it happens.
func readiness(db *sqldb.DB, svc *policy.Service, breakers ...*breaker.Breaker) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for _, b := range breakers {
			if b.State() == breaker.Open {
				return &api.NotReady{Check: "database", Err: fmt.Errorf("circuit breaker %s is open", b.Name())}
			}
		}
		if err := db.Ping(ctx); err != nil {
			return &api.NotReady{Check: "database", Err: err}
		}
		if err := db.Current(ctx); err != nil {
			return &api.NotReady{Check: "migrations", Err: err}
		}
		if err := db.CheckSchema(ctx); err != nil {
			return &api.NotReady{Check: "schema", Err: err}
		}
		if err := svc.Ready(ctx); err != nil {
			return &api.NotReady{Check: "policies", Err: err}
		}
		return nil
	}
}

// auditFlushGrace is how long the audit queue may still write, once the
// listeners have stopped, what it holds.
const auditFlushGrace = 5 * time.Second
