package main

import (
	"log/slog"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/jwks"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

// newAPI builds the HTTP API over the policy core, issuing and checking
// tokens per tokenCfg, and the identity provider's key set to refresh in
// the background (nil without AUTH_JWKS_URL).
func newAPI(cfg settings.Config, db *sqldb.DB, store *policydb.Store, svc *policy.Service, decisions *decision.Log, wf workflows,
	trail *audit.Trail, tokenCfg *api.TokenConfig,
	reads, writes *breaker.Breaker, limiter *ratelimit.Limiter, mx *metrics.Metrics, log *slog.Logger) (*api.Server, *jwks.Set, error) {
	providerCfg, providerKeys, err := providerConfig(cfg, mx, log)
	if err != nil {
		return nil, nil, err
	}
	srv := api.New(api.Config{
		AllowCORS: cfg.Server.AllowCORS, CORSOrigins: cfg.Server.Origins(), TrustedProxies: cfg.Server.Proxies,
		MetricsToken: cfg.Ops.MetricsToken.Reveal(), SeparateOps: cfg.Ops.Addr != "",
	}, api.Deps{
		Policy:    decision.New(svc, decisions),
		Workflows: wf.service,
		Registry:  wf.registry,
		Ready:     readiness(db, svc, reads, writes),
		Audit:     trail,
		Metrics:   mx,
		Keys: policy.NewKeys(policydb.GuardKeys(store, reads, writes), policy.KeyOptions{
			RegisteredOnly: cfg.Keys.RegisteredOnly, RotationGrace: cfg.Keys.RotationGrace,
			CacheTTL: cfg.Keys.CacheTTL, Recorder: trail,
		}),
		Tokens:      tokenCfg,
		Provider:    providerCfg,
		Tenants:     policy.NewTenants(policydb.GuardTenants(store, reads), policy.TenantOptions{CacheTTL: cfg.Keys.CacheTTL}),
		RateLimiter: limiter,
		Logger:      log,
	})
	return srv, providerKeys, nil
}
