package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/settings"
)

// newRateLimiter builds the rate limiter of the configuration, with its
// metrics. Its Run (a part) probes Redis while Redis is away; close closes
// its Redis connections, once it no longer runs.
// The tenant-creation limits of tenants join the route classes' limits.
func newRateLimiter(cfg ratelimit.Config, tenants settings.Tenants, mx *metrics.Metrics, log *slog.Logger) (lim *ratelimit.Limiter, close func(), err error) {
	limits := cfg.ClassLimits()
	for class, l := range tenants.Limits() {
		limits[class] = l
	}
	opts := ratelimit.Options{Limits: limits, Replicas: cfg.Replicas, Logger: log}
	var rdb *ratelimit.Redis
	if cfg.StorageURL != "memory://" {
		if rdb, err = ratelimit.NewRedis(cfg.StorageURL, ratelimit.RedisOptions{}); err != nil {
			return nil, nil, err
		}
		opts.Shared = rdb
	}
	if lim, err = ratelimit.New(opts); err != nil {
		if rdb != nil {
			_ = rdb.Close()
		}
		return nil, nil, err
	}
	for _, class := range ratelimit.Classes {
		mx.CounterFuncWith("auth_ratelimit_rejections_total", "Requests refused with 429, by route class.",
			map[string]string{"route_class": class}, func() float64 { return float64(lim.Rejections(class)) })
	}
	if rdb != nil {
		mx.CounterFunc("auth_ratelimit_fallback_total", "Rate-limit decisions taken locally because Redis was unavailable.",
			func() float64 { return float64(lim.Fallbacks()) })
		mx.CounterFunc("auth_ratelimit_redis_outages_total", "Times the rate limiter lost Redis and switched to local limits.",
			func() float64 { return float64(lim.Outages()) })
		mx.GaugeFunc("auth_ratelimit_redis_up", "1 while rate limits are shared through Redis, 0 while local limits apply.",
			func() float64 {
				if lim.SharedUp() {
					return 1
				}
				return 0
			})
	}
	log.Info("rate limits", "reads", lim.Describe(ratelimit.Reads), "writes", lim.Describe(ratelimit.Writes),
		"unauthenticated", lim.Describe(ratelimit.Unauthenticated), "tenant_creation", tenants.CreationLimit,
		"tenant_creation_global", tenants.CreationLimitGlobal, "shared", rdb != nil)
	if rdb != nil {
		// Not fatal (Redis may come later: the first request that finds it
		// away switches to local limits), but a wrong address or password
		// should not go unnoticed.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := rdb.Ping(ctx); err != nil {
			log.Warn("rate-limit Redis (RATELIMIT_STORAGE_URL) does not answer at start; local limits apply while it does not", "err", err)
		}
	}
	return lim, func() {
		if rdb != nil {
			_ = rdb.Close()
		}
	}, nil
}
