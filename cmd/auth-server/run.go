package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/lifecycle"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `auth-server: multi-tenant RBAC authorization service

Usage:
  auth-server [serve]    start the server (default)
  auth-server migrate    apply database migrations and exit
  auth-server tenant create|list|revoke KEY
                         register a tenant (prints its first key), list tenants, revoke a key
  auth-server tenant keys --tenant ID | revoke --key-id KEY_ID | revoke --all --tenant ID
                         list a tenant's keys, revoke a key by id, revoke all of a tenant's keys
  auth-server rekey      re-encrypt stored names to ENCRYPTION_KEY (or encrypt a
                         clear-text database); safe to run while servers serve
  auth-server audit verify [--tenant CLIENT_KEY] [--checkpoints FILE [--checkpoint-pubkey FILE]]
                         check the audit chains (exit 1 names each bad or missing chain)
  auth-server audit reset --tenant ID --yes [--note TEXT]
                         start a new chain for a tenant whose chain is missing (recorded)
  auth-server audit checkpoint [--sink FILE|stdout|log]
                         write signed checkpoints of every chain head now
  auth-server audit checkpoint-keygen --out FILE
                         make an Ed25519 checkpoint signing key (FILE, FILE.pub)
  auth-server version    print the version and exit
  auth-server help       show this help

Configuration comes from config.yaml (built in; AUTH_CONFIG names another
file) and environment variables, which win. See README.md for the table.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 && cmd != "audit" && cmd != "tenant" {
		return fmt.Errorf("unexpected argument %q\n\n%s", args[1], usage)
	}
	switch cmd {
	case "help", "-h", "--help", "-help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "version", "--version", "-v":
		_, err := fmt.Fprintln(stdout, "auth-server", buildVersion())
		return err
	case "serve", "migrate", "audit", "rekey", "tenant":
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	cfg, err := config.Load(auth.DefaultConfig, auth.DefaultModel, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	libraryLogs(log)
	if cmd == "audit" && len(args) > 1 && args[1] == "checkpoint-keygen" {
		return checkpointKeygen(args[2:], stdout)
	}
	var keys *audit.Keyring
	if cmd == "serve" {
		// Refuse a model the service cannot serve, or a missing audit key,
		// before touching the database.
		if _, err := policy.ParseModel(cfg.Policy.ModelText); err != nil {
			return modelError(cfg, err)
		}
		if keys, err = auditKeyring(cfg, log); err != nil {
			return err
		}
		// Checked here, before the database; serve builds it (and warns).
		if _, err := tokenConfig(cfg, nil); err != nil {
			return err
		}
		if cfg.Audit.CheckpointInterval > 0 {
			if _, err := checkpointSigner(cfg); err != nil {
				return err
			}
		}
	}
	db, err := sqldb.Open(ctx, sqldb.Options{
		Dialect: sqldb.Dialect(cfg.Database.Type), Path: cfg.Database.Path,
		URL: cfg.Database.PostgresURL.Reveal(), MaxOpenConns: cfg.Database.MaxOpenConns,
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if cmd == "migrate" {
		n, err := db.Migrate(ctx, log)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "database is up to date (%d migration(s) applied)\n", n)
		return err
	}
	if cmd == "audit" {
		return auditCommand(ctx, args[1:], cfg, db, log, stdout)
	}
	store, err := policyStore(cfg, db)
	if err != nil {
		return err
	}
	if cmd == "rekey" {
		return rekey(ctx, cfg, db, store, stdout)
	}
	if cmd == "tenant" {
		return tenantCommand(ctx, args[1:], cfg, log, db, store, stdout)
	}
	return serve(ctx, cfg, db, store, keys, log)
}

// policyStore is the policy store, encrypting names when encryption is on.
func policyStore(cfg config.Config, db *sqldb.DB) (*policydb.Store, error) {
	store := policydb.New(db)
	if !cfg.Crypto.Enabled {
		return store, nil
	}
	prev := make([]string, 0, len(cfg.Crypto.Previous))
	for _, p := range cfg.Crypto.Previous {
		prev = append(prev, p.Reveal())
	}
	keys, err := fieldcrypt.NewKeyring(cfg.Crypto.Key.Reveal(), prev...)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	return store.WithEncryption(keys), nil
}

// rekey runs `auth-server rekey`.
func rekey(ctx context.Context, cfg config.Config, db *sqldb.DB, store *policydb.Store, stdout io.Writer) error {
	if !cfg.Crypto.Enabled {
		return errors.New("rekey needs ENABLE_ENCRYPTION=true and ENCRYPTION_KEY (plus ENCRYPTION_KEY_PREVIOUS for data under an older key)")
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	st, err := store.Rekey(ctx, 500, func(st policydb.RekeyStats) {
		fmt.Fprintf(stdout, "re-encrypted %d rules, %d roles (%d duplicates merged)\n", st.Rules, st.Roles, st.Merged)
	})
	if err != nil {
		return fmt.Errorf("rekey stopped (run it again to resume): %w", err)
	}
	_, err = fmt.Fprintf(stdout, "rekey done: %d rules, %d roles re-encrypted, %d duplicates merged; every name is under the current key\n",
		st.Rules, st.Roles, st.Merged)
	return err
}

// serve runs the server until ctx ends (SIGTERM, SIGINT) or a part fails.
// The parts start in this order and stop in the reverse one, each after the
// ones started after it have returned: the audit queue, the scheduler (of
// every periodic job), the replica sync, the idle-tenant eviction, the
// rate-limit Redis probe, the identity provider's key refresh, the ops
// listener and the API listener. So on SIGTERM the API drains first (for
// AUTH_SHUTDOWN_TIMEOUT), the scheduler stops (the jobs under way end),
// the audit queue writes what it holds, and the database (closed by run)
// goes last.
func serve(ctx context.Context, cfg config.Config, db *sqldb.DB, store *policydb.Store, keys *audit.Keyring, log *slog.Logger) error {
	if err := prepareStorage(ctx, cfg, db, store, log); err != nil {
		return err
	}
	mx := metrics.New()
	reads, writes := dbBreakers(cfg, mx, log)
	trail, queue, auditStore := newAuditTrail(cfg, db, store, keys, reads, writes, mx, log)
	syncer := newReplicaSync(cfg, store, mx, log)
	sched, err := newScheduler(cfg, auditStore, keys, syncer, log)
	if err != nil {
		return err
	}
	limiter, closeRedis, err := newRateLimiter(cfg.RateLimit, cfg.Tenants, mx, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	svc, err := newPolicyService(cfg, store, trail, reads, writes, syncer, limiter, mx, log)
	if err != nil {
		return err
	}
	syncer.SetApplier(svc)
	srv, providerKeys, err := newAPI(cfg, db, store, svc, trail, reads, writes, limiter, mx, log)
	if err != nil {
		return err
	}
	web, addr, err := listeners(cfg, srv, log)
	if err != nil {
		return err
	}
	parts := []lifecycle.Part{
		{Name: "audit queue", Run: queue.Run},
		{Name: "scheduler", Run: sched.Run},
		{Name: "replica sync", Run: syncer.Run},
		{Name: "tenant eviction", Run: svc.Run},
		{Name: "rate-limit probe", Run: limiter.Run},
	}
	if providerKeys != nil {
		parts = append(parts, lifecycle.Part{Name: "identity provider keys", Run: providerKeys.Run})
	}
	log.Info("auth-server listening", "addr", addr, "db", cfg.Database.Type,
		"version", buildVersion(), "fast_path", svc.FastPath())
	if err := lifecycle.Run(ctx, log, append(parts, web...)...); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// modelError names the model file in a model error.
func modelError(cfg config.Config, err error) error {
	if cfg.Policy.ModelPath != "" {
		return fmt.Errorf("%w (AUTH_MODEL_PATH=%s)", err, cfg.Policy.ModelPath)
	}
	return err
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
