package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
)

const tenantUsage = `Usage:
  auth-server tenant create                      register a tenant and print its client key (shown once)
  auth-server tenant list                        list tenants (id, Casbin domain, handle fingerprint, created, active keys)
  auth-server tenant keys --tenant ID            list a tenant's keys (key id, state, created, expires, last use)
  auth-server tenant revoke KEY                  revoke a client key at once
  auth-server tenant revoke --key-id KEY_ID [--tenant ID]
                                                 revoke the key with this id (from tenant keys)
  auth-server tenant revoke --all --tenant ID    revoke every live key of a tenant
`

// tenantCommand runs `auth-server tenant …`.
func tenantCommand(ctx context.Context, args []string, cfg settings.Config, log *slog.Logger, db *sqldb.DB,
	store *policydb.Store, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("unknown tenant command\n\n%s", tenantUsage)
	}
	fs := flag.NewFlagSet("tenant "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tenantID := fs.Int64("tenant", 0, "tenant id (from tenant list)")
	keyID := fs.String("key-id", "", "key id (from tenant keys)")
	all := fs.Bool("all", false, "every live key of the tenant")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("tenant %s: %w\n\n%s", args[0], err, tenantUsage)
	}
	flags := 0
	fs.Visit(func(*flag.Flag) { flags++ })
	rest := fs.Args()
	if err := db.Current(ctx); err != nil {
		return err
	}
	keys := policy.NewKeys(store, policy.KeyOptions{})
	switch {
	case args[0] == "create" && flags == 0 && len(rest) == 0:
		key, id, err := keys.CreateTenant(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "tenant %d created\nclient key: %s\n(store it now: only its hash is kept)\n", id, key)
		return err
	case args[0] == "list" && flags == 0 && len(rest) == 0:
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		// DOMAIN is the tenant's Casbin domain in casbin_rule (v1 of its p
		// rules, v2 of its g rules), for Casbin tools.
		fmt.Fprintf(stdout, "%-8s %-8s %-18s %-25s %s\n", "ID", "DOMAIN", "HANDLE", "CREATED", "ACTIVE KEYS")
		for _, t := range list {
			fmt.Fprintf(stdout, "%-8d %-8s %-18s %-25s %d\n", t.ID, strconv.FormatInt(t.ID, 10), string(t.Handle)[:16],
				t.CreatedAt.UTC().Format(time.RFC3339), t.ActiveKeys)
		}
		return nil
	case args[0] == "keys" && *tenantID > 0 && flags == 1 && len(rest) == 0:
		return listKeys(ctx, keys, *tenantID, stdout)
	case args[0] == "revoke":
		return revokeKeys(ctx, cfg, log, db, store, revokeArgs{tenant: *tenantID, keyID: *keyID, all: *all, flags: flags, rest: rest}, stdout)
	}
	return fmt.Errorf("unknown tenant command\n\n%s", tenantUsage)
}

// listKeys prints a tenant's keys: never a key, only its id.
func listKeys(ctx context.Context, keys *policy.Keys, tenantID int64, stdout io.Writer) error {
	list, found, err := keys.ListKeys(ctx, tenantID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("keys: no tenant %d", tenantID)
	}
	now := time.Now()
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "%-14s %-8s %-21s %-21s %s\n", "KEY ID", "STATE", "CREATED", "EXPIRES", "LAST USED")
	for _, k := range list {
		created := k.CreatedAt
		fmt.Fprintf(stdout, "%-14s %-8s %-21s %-21s %s\n", policy.KeyID(k.Hash), k.State(now), at(&created), at(k.ExpiresAt), at(k.LastUsedAt))
	}
	return nil
}

// revokeArgs are the arguments of `tenant revoke`.
type revokeArgs struct {
	tenant int64
	keyID  string
	all    bool
	flags  int
	rest   []string
}

// revokeKeys runs `tenant revoke`: by key, by key id, or every key of a
// tenant. Revocations are audited like rotations (REVOKE_KEY, in the
// tenant's chain), so the audit key is needed.
func revokeKeys(ctx context.Context, cfg settings.Config, log *slog.Logger, db *sqldb.DB, store *policydb.Store,
	a revokeArgs, stdout io.Writer) error {
	byKey := a.flags == 0 && len(a.rest) == 1
	byID := a.keyID != "" && !a.all && len(a.rest) == 0 && a.flags == 1+btoi(a.tenant != 0)
	byTenant := a.all && a.tenant > 0 && a.keyID == "" && len(a.rest) == 0 && a.flags == 2
	if !byKey && !byID && !byTenant {
		return fmt.Errorf("unknown tenant command\n\n%s", tenantUsage)
	}
	var key policy.KeyHash
	if byKey {
		h, err := policy.ParseClientKey(a.rest[0])
		if err != nil {
			return errors.New("revoke: not a valid client key (a UUID4)")
		}
		key = h
	}
	if byID {
		if _, err := policy.ParseKeyID(a.keyID); err != nil {
			return fmt.Errorf("revoke: --key-id must be a key id from `tenant keys` (%d or more hexadecimal digits)", policy.KeyIDLen)
		}
	}
	ring, err := auditKeyring(cfg, log)
	if err != nil {
		return err
	}
	trail := audit.NewTrail(ring, auditdb.New(db, ring), nil, audit.TrailOptions{
		AfterCommit: sqldb.AfterCommit, SealResources: cfg.Crypto.Enabled,
	})
	keys := policy.NewKeys(store, policy.KeyOptions{Recorder: trail})
	const after = "servers stop accepting it within AUTH_KEY_CACHE_TTL"
	switch {
	case byKey:
		ok, err := keys.Revoke(ctx, key)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("revoke: no such active key")
		}
		_, err = fmt.Fprintf(stdout, "key revoked (%s)\n", after)
		return err
	case byID:
		ok, err := keys.RevokeID(ctx, a.keyID, a.tenant)
		if errors.Is(err, policy.ErrKeyIDAmbiguous) {
			return errors.New("revoke: the key id matches several keys: give more of it, or --tenant")
		}
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("revoke: no such active key")
		}
		_, err = fmt.Fprintf(stdout, "key %s revoked (%s)\n", strings.ToLower(a.keyID), after)
		return err
	default:
		if _, found, err := keys.ListKeys(ctx, a.tenant); err != nil {
			return err
		} else if !found {
			return fmt.Errorf("revoke: no tenant %d", a.tenant)
		}
		n, err := keys.RevokeAll(ctx, a.tenant)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%d key(s) of tenant %d revoked (servers stop accepting them within AUTH_KEY_CACHE_TTL)\n", n, a.tenant)
		return err
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tokenConfig is the JWT configuration; in development mode without a
// secret, tokens are signed with a random one that lives as long as the
// process.
func tokenConfig(cfg settings.Config, log *slog.Logger) (*api.TokenConfig, error) {
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
	return cfg.JWT.Tokens(secret), nil
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
