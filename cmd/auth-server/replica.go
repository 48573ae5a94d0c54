package main

import (
	"bytes"
	"log"
	"log/slog"

	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy/policysync"
)

// syncLogs sends the messages that go-redis and redis-watcher write on
// their own (a failed dial or publish: one line each, in plain text, on
// stderr) to logger at debug level; the replica sync reports outages
// itself, once each. It affects the whole process: the standard library's
// log package goes to debug, and slog's default logger becomes logger (it
// would otherwise write through the log package).
func syncLogs(logger *slog.Logger, redisURL string) {
	if redisURL == "" {
		return
	}
	ratelimit.LogRedisTo(logger)
	slog.SetDefault(logger)
	log.SetFlags(0)
	log.SetOutput(debugWriter{logger})
}

// debugWriter writes each line as a debug record.
type debugWriter struct{ log *slog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(bytes.TrimSpace(p)), "log", "stdlib")
	return len(p), nil
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
