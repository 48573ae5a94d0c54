package main

import (
	"log/slog"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/internal/jwks"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/settings"
)

// providerConfig is the configuration of an external identity provider's
// tokens, and the key set to run in the background (both nil without
// AUTH_JWKS_URL).
func providerConfig(cfg settings.Config, mx *metrics.Metrics, log *slog.Logger) (*api.ProviderConfig, *jwks.Set, error) {
	if cfg.JWT.JWKSURL == "" {
		return nil, nil, nil
	}
	set, err := jwks.New(jwks.Options{URL: cfg.JWT.JWKSURL, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if mx != nil {
		mx.CounterFunc("auth_jwks_fetches_total", "Fetches of the identity provider's key set (AUTH_JWKS_URL), failed ones included.",
			func() float64 { return float64(set.Fetches()) })
	}
	log.Info("accepting the tokens of an identity provider", "jwks_url", cfg.JWT.JWKSURL,
		"issuer", cfg.JWT.JWKSIssuer, "audience", cfg.JWT.JWKSAudience, "tenant_claim", cfg.JWT.TenantClaim)
	return &api.ProviderConfig{
		Keys: set, Issuer: cfg.JWT.JWKSIssuer, Audience: cfg.JWT.JWKSAudience, TenantClaim: cfg.JWT.TenantClaim,
	}, set, nil
}
