package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

const tenantUsage = `Usage:
  auth-server tenant create          register a tenant and print its client key (shown once)
  auth-server tenant list            list tenants (id, handle fingerprint, created, active keys)
  auth-server tenant revoke KEY      revoke a client key at once
`

// tenantCommand runs `auth-server tenant …`.
func tenantCommand(ctx context.Context, args []string, db *sqldb.DB, store *policydb.Store, stdout io.Writer) error {
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys := policy.NewKeys(store, policy.KeyOptions{})
	switch {
	case len(args) == 1 && args[0] == "create":
		key, id, err := keys.CreateTenant(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "tenant %d created\nclient key: %s\n(store it now: only its hash is kept)\n", id, key)
		return err
	case len(args) == 1 && args[0] == "list":
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-8s %-18s %-25s %s\n", "ID", "HANDLE", "CREATED", "ACTIVE KEYS")
		for _, t := range list {
			fmt.Fprintf(stdout, "%-8d %-18s %-25s %d\n", t.ID, string(t.Handle)[:16], t.CreatedAt.UTC().Format(time.RFC3339), t.ActiveKeys)
		}
		return nil
	case len(args) == 2 && args[0] == "revoke":
		h, err := policy.ParseClientKey(args[1])
		if err != nil {
			return errors.New("revoke: not a valid client key (a UUID4)")
		}
		ok, err := keys.Revoke(ctx, h)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("revoke: no such active key")
		}
		_, err = fmt.Fprintln(stdout, "key revoked (servers stop accepting it within AUTH_KEY_CACHE_TTL)")
		return err
	}
	return fmt.Errorf("unknown tenant command\n\n%s", tenantUsage)
}

// tokenConfig is the JWT configuration; in development mode without a
// secret, tokens are signed with a random one that lives as long as the
// process.
func tokenConfig(cfg config.Config, log *slog.Logger) (*api.TokenConfig, error) {
	secret := []byte(cfg.JWT.Secret.Reveal())
	if len(secret) == 0 {
		if !cfg.Development() {
			return nil, errors.New("JWT_SECRET_KEY is required outside development mode (AUTH_ENV=development): " +
				"set it to at least 32 random characters, e.g. `openssl rand -hex 32`")
		}
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		secret = []byte(hex.EncodeToString(b[:]))
		if log != nil {
			log.Warn("development mode: JWT_SECRET_KEY not set; tokens are signed with a key that ends with this process")
		}
	}
	return &api.TokenConfig{
		Secret: secret, Algorithm: cfg.JWT.Algorithm,
		TTL:    time.Duration(cfg.JWT.AccessTokenExpireMin) * time.Minute,
		Issuer: cfg.JWT.Issuer, Audience: cfg.JWT.Audience,
	}, nil
}

// registerTenantMetrics exposes the memory held by loaded tenants and the
// evictions that bound it.
func registerTenantMetrics(mx *metrics.Metrics, svc *policy.Service) {
	mx.GaugeFunc("auth_tenants_loaded_bytes", "Estimated memory of the tenants in memory (bounded by AUTH_TENANT_MEMORY_BUDGET).",
		func() float64 { return float64(svc.LoadedBytes()) })
	for _, reason := range []string{"idle", "memory"} {
		mx.CounterFuncWith("auth_tenant_evictions_total", "Tenants evicted from memory, by reason: idle (AUTH_TENANT_IDLE_TIMEOUT) or memory (AUTH_TENANT_MEMORY_BUDGET).",
			map[string]string{"reason": reason}, func() float64 {
				idle, budget := svc.Evictions()
				if reason == "idle" {
					return float64(idle)
				}
				return float64(budget)
			})
	}
}
