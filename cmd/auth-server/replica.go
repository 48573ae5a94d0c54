package main

import (
	"log/slog"

	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/policy/policysync"
	"github.com/ourway/auth/settings"
)

// newReplicaSync builds the replica sync of the configuration (Redis:
// AUTH_WATCHER_REDIS_URL, else a Redis RATELIMIT_STORAGE_URL, else none),
// with its metrics. It is a part; its anti-entropy pass is a job of the
// scheduler.
func newReplicaSync(cfg settings.Config, store *policydb.Store, mx *metrics.Metrics, log *slog.Logger) *policysync.Sync {
	s := policysync.New(store, policysync.Options{
		RedisURL: policysync.RedisURLFor(cfg.Replica.RedisURL, cfg.RateLimit.StorageURL),
		Channel:  cfg.Replica.Channel, Interval: cfg.Replica.SyncInterval, Logger: log,
	})
	registerSyncMetrics(mx, s)
	return s
}

// registerSyncMetrics exports the replica-sync counters.
func registerSyncMetrics(mx *metrics.Metrics, s *policysync.Sync) {
	mx.CounterFunc("auth_replica_published_total", "Policy changes published to the other replicas.",
		func() float64 { return float64(s.Stats().Published) })
	mx.CounterFunc("auth_replica_publish_failures_total", "Policy changes that could not be published (repaired by anti-entropy).",
		func() float64 { return float64(s.Stats().PublishFailures) })
	mx.CounterFunc("auth_replica_applied_total", "Policy changes of other replicas applied to memory.",
		func() float64 { return float64(s.Stats().Applied) })
	mx.CounterFunc("auth_replica_reloads_total", "Tenants reloaded because memory was behind the database.",
		func() float64 { return float64(s.Stats().Reloads) })
	mx.GaugeFunc("auth_replica_redis_connected", "1 when the replica sync is connected to Redis.", func() float64 {
		if s.Stats().Connected {
			return 1
		}
		return 0
	})
}
