package main

import (
	"log/slog"

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
	})
	if err != nil {
		return nil, modelError(cfg, err)
	}
	mx.GaugeFunc("auth_tenants_loaded", "Tenants whose policies are in memory.", func() float64 { return float64(svc.LoadedTenants()) })
	registerTenantMetrics(mx, svc)
	return svc, nil
}
