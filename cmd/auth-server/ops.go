package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
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
// loading. Only infrastructure failures count (sqldb.Unavailable).
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
// database answering, the schema current, and policies loadable (the model
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
		if err := svc.Ready(ctx); err != nil {
			return &api.NotReady{Check: "policies", Err: err}
		}
		return nil
	}
}

// auditFlushGrace is how long the audit queue may still write after the
// shutdown timeout ran out with requests in flight.
const auditFlushGrace = 5 * time.Second

// guardedAudit reads the audit trail (GET /api/audit) through the read
// breaker, so that a database outage answers 503 at once rather than hang.
type guardedAudit struct {
	*audit.Trail
	reads *breaker.Breaker
}

func (g guardedAudit) Search(ctx context.Context, tenant string, q audit.Query) (recs []audit.Record, next int64, err error) {
	err = g.reads.Run(ctx, func(ctx context.Context) error {
		var err error
		recs, next, err = g.Trail.Search(ctx, tenant, q)
		return err
	})
	if errors.Is(err, breaker.ErrUnavailable) {
		err = fmt.Errorf("%w: %w", policy.ErrUnavailable, err)
	}
	return recs, next, err
}

// serveOps serves h (/metrics, /health, /ready) on AUTH_OPS_ADDR. The
// listener's failure arrives on the channel; the returned function stops it
// at once (scrapes and probes have nothing worth waiting for).
func serveOps(cfg settings.Config, h http.Handler, log *slog.Logger) (func(), <-chan error, error) {
	ln, err := net.Listen("tcp", cfg.Ops.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (AUTH_OPS_ADDR): %w", cfg.Ops.Addr, err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    api.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("ops listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("ops listener (AUTH_OPS_ADDR): %w", err)
		}
	}()
	return func() { _ = hs.Close() }, errc, nil
}
