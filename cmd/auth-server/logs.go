package main

import (
	"bytes"
	"log"
	"log/slog"

	"github.com/ourway/auth/internal/ratelimit"
)

// libraryLogs sends what libraries log on their own to logger at debug
// level, once for the process (whatever the configuration): go-redis
// through its global logger, and the standard library's log package, which
// github.com/casbin/redis-watcher writes to (a failed dial or publish, one
// line each, in plain text) and which has no logger option. The replica
// sync and the rate limiter report outages themselves, once each, through
// the logger they are given. slog's default logger is left alone: every
// component is given its logger.
func libraryLogs(logger *slog.Logger) {
	ratelimit.LogRedisTo(logger)
	log.SetFlags(0)
	log.SetOutput(debugWriter{logger})
}

// debugWriter writes each line as a debug record.
type debugWriter struct{ log *slog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(bytes.TrimSpace(p)), "log", "stdlib")
	return len(p), nil
}
