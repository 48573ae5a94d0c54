package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/schedule"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policysync"
	"github.com/ourway/auth/settings"
)

// retentionEvery is how often the audit retention purge runs.
const retentionEvery = time.Hour

// newScheduler is the one scheduler of the periodic jobs: the replica
// anti-entropy pass, the signed audit checkpoints (with
// AUTH_AUDIT_CHECKPOINT_INTERVAL), the hourly audit retention purge (with
// AUTH_AUDIT_RETENTION_DAYS) and, added by the workflow dispatcher, the
// tenants' workflows. It waits for jobs under way for at most the shutdown
// timeout.
func newScheduler(cfg settings.Config, store *auditdb.Store, keys *audit.Keyring, signer *audit.CheckpointSigner,
	syncer *policysync.Sync, log *slog.Logger) (*schedule.Scheduler, error) {
	s := schedule.New(schedule.Options{Logger: log, StopTimeout: cfg.Server.ShutdownTimeout})
	if err := s.Add(syncer.Job()); err != nil {
		return nil, err
	}
	if signer != nil { // with AUTH_AUDIT_CHECKPOINT_INTERVAL
		w := &checkpointWriter{store: store, keys: keys, signer: signer, sink: cfg.Audit.CheckpointSink,
			stdout: os.Stdout, log: log, now: time.Now}
		if err := s.Add(schedule.Job{Name: "audit checkpoints", Every: cfg.Audit.CheckpointInterval,
			Immediately: true, Run: w.job}); err != nil {
			return nil, err
		}
	}
	if cfg.Audit.RetentionDays > 0 {
		if err := s.Add(retentionJob(cfg.Audit.RetentionDays, store, log)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// retentionJob purges, every hour (and at start), the audit records older
// than days.
func retentionJob(days int, store *auditdb.Store, log *slog.Logger) schedule.Job {
	keep := time.Duration(days) * 24 * time.Hour
	return schedule.Job{Name: "audit retention", Every: retentionEvery, Immediately: true, Run: func(ctx context.Context) {
		// A purge under way finishes (within the scheduler's stop timeout)
		// rather than stop between tenants when the server shuts down.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		n, err := store.Purge(ctx, time.Now().Add(-keep))
		if err != nil {
			// Chains that do not verify are left alone (as evidence); the
			// others were purged.
			log.Error("audit retention purge failed", "deleted", n, "err", err)
			return
		}
		log.Info("audit retention purge", "deleted", n, "retention_days", days)
	}}
}

// changesPurgeEvery is how often the change feed's retention purge runs.
const changesPurgeEvery = time.Hour

// addPolicyJobs adds the policy core's periodic jobs: the expiry sweep
// (every AUTH_EXPIRY_SWEEP_INTERVAL, at start too) and the change feed's
// hourly retention purge.
func addPolicyJobs(s *schedule.Scheduler, cfg settings.Config, svc *policy.Service, log *slog.Logger) error {
	err := s.Add(schedule.Job{Name: "expiry sweep", Every: cfg.Policy.ExpirySweepInterval, Immediately: true,
		Run: func(ctx context.Context) {
			n, err := svc.SweepExpired(ctx)
			if err != nil {
				log.Warn("expiry sweep failed; the next pass tries again", "removed", n, "err", err)
				return
			}
			if n > 0 {
				log.Info("expiry sweep", "removed", n)
			}
		}})
	if err != nil {
		return err
	}
	return s.Add(schedule.Job{Name: "change feed retention", Every: changesPurgeEvery, Immediately: true,
		Run: func(ctx context.Context) {
			n, err := svc.PurgeChanges(ctx)
			if err != nil {
				log.Warn("change feed retention purge failed", "err", err)
				return
			}
			if n > 0 {
				log.Info("change feed retention purge", "deleted", n, "retention", cfg.Policy.ChangesRetention.String())
			}
		}})
}
