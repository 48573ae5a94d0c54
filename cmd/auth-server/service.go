package main

import (
	"log/slog"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/policy/policysync"
	"github.com/ourway/auth/settings"
)

// newPolicyService builds the policy core over the store, recording into
// trail and publishing its changes through syncer, with its metrics. Its
// Run (a part) evicts idle tenants.
func newPolicyService(cfg settings.Config, store *policydb.Store, trail *audit.Trail, reads, writes *breaker.Breaker,
	syncer *policysync.Sync, limiter *ratelimit.Limiter, mx *metrics.Metrics, log *slog.Logger) (*policy.Service, error) {
	svc, err := policy.New(policydb.Guard(store, reads, writes), cfg.Policy.ModelText, policy.Options{
		IdleTimeout:  cfg.Policy.TenantIdleTimeout,
		MaxRoleDepth: cfg.Policy.MaxRoleDepth,
		Recorder:     trail,
		Timeout:      cfg.Ops.DBTimeout,
		Publisher:    syncer,
		Logger:       log,
		Admit:        api.TenantAdmission(limiter),
		MemoryBudget: cfg.Tenants.MemoryBytes,
		ConsistencyWait:  consistencyWait(cfg.Policy.ConsistencyWait),
		ChangesRetention: cfg.Policy.ChangesRetention,
	})
	if err != nil {
		return nil, modelError(cfg, err)
	}
	mx.GaugeFunc("auth_tenants_loaded", "Tenants whose policies are in memory.", func() float64 { return float64(svc.LoadedTenants()) })
	registerTenantMetrics(mx, svc)
	return svc, nil
}

// consistencyWait is the core's option for the setting: the setting's 0
// (reload at once) is the core's negative (its 0 is its default).
func consistencyWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
