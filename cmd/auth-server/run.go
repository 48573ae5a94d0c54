package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/lifecycle"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/profiling"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/settings"
	"github.com/ourway/auth/workflow/workflowdb"
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
  auth-server policy export --tenant ID [--out FILE]
                         write a tenant's roles and rules as a Casbin policy file (CSV)
  auth-server policy import --tenant ID [--merge] [--dry-run] FILE|-
                         replace (--merge: add to) a tenant's roles and rules from a
                         policy file, validated first, in one audited change
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
file) and environment variables, which win. See docs/configuration.md for the table.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 && cmd != "audit" && cmd != "tenant" && cmd != "policy" {
		return fmt.Errorf("unexpected argument %q\n\n%s", args[1], usage)
	}
	switch cmd {
	case "help", "-h", "--help", "-help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "version", "--version", "-v":
		_, err := fmt.Fprintln(stdout, "auth-server", buildVersion())
		return err
	case "serve", "migrate", "audit", "rekey", "tenant", "policy":
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	cfg, err := settings.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	libraryLogs(log)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	if cmd == "audit" && len(args) > 1 && args[1] == "checkpoint-keygen" {
		return checkpointKeygen(args[2:], stdout)
	}
	var st startup
	if cmd == "serve" {
		// Refuse a missing audit key, JWT secret or checkpoint key before
		// touching the database (the model was checked when the settings
		// were loaded).
		if st, err = prepare(cfg, log); err != nil {
			return err
		}
	}
	db, err := sqldb.Open(ctx, cfg.Database.Options())
	if err != nil {
		return err
	}
	defer db.Close()
	if cmd == "migrate" {
		n, repaired, err := db.MigrateAndRepair(ctx, log)
		if err != nil {
			return err
		}
		for _, r := range repaired {
			fmt.Fprintf(stdout, "repaired: %s\n", r)
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
	if cmd == "policy" {
		return policyCommand(ctx, args[1:], cfg, log, db, store, os.Stdin, stdout)
	}
	return serve(ctx, cfg, db, store, st, log)
}

// startup is what serve needs from secrets and key files, read before the
// database is touched.
type startup struct {
	keys   *audit.Keyring
	tokens *api.TokenConfig
	signer *audit.CheckpointSigner // nil without checkpoints
}

// prepare reads the keys serve needs.
func prepare(cfg settings.Config, log *slog.Logger) (startup, error) {
	var st startup
	var err error
	if st.keys, err = auditKeyring(cfg, log); err != nil {
		return st, err
	}
	if cfg.Development() && cfg.Audit.Key.Reveal() == "" && cfg.Audit.KeyFile == "" {
		log.Warn("development mode: using a local audit key; set AUTH_AUDIT_KEY in production")
	}
	if st.tokens, err = tokenConfig(cfg, log); err != nil {
		return st, err
	}
	if cfg.Audit.CheckpointInterval > 0 {
		if st.signer, err = checkpointSigner(cfg); err != nil {
			return st, err
		}
	}
	return st, nil
}

// policyStore is the policy store, encrypting names when encryption is on.
func policyStore(cfg settings.Config, db *sqldb.DB) (*policydb.Store, error) {
	store := policydb.New(db)
	if keys := cfg.Crypto.Keyring(); keys != nil {
		return store.WithEncryption(keys), nil
	}
	return store, nil
}

// rekey runs `auth-server rekey`: the policy's names, then the workflow
// registry's values and the runs' user lists.
func rekey(ctx context.Context, cfg settings.Config, db *sqldb.DB, store *policydb.Store, stdout io.Writer) error {
	if !cfg.Crypto.Enabled {
		return errors.New("rekey needs ENABLE_ENCRYPTION=true and ENCRYPTION_KEY (plus ENCRYPTION_KEY_PREVIOUS for data under an older key)")
	}
	if err := db.Current(ctx); err != nil {
		return err
	}
	workflows := workflowdb.New(db).WithEncryption(cfg.Crypto.Keyring())
	st, err := store.Rekey(ctx, 500, func(st policydb.RekeyStats) {
		fmt.Fprintf(stdout, "re-encrypted %d rules, %d roles%s (%d duplicates merged)\n", st.Rules, st.Roles, workflowRows(st), st.Merged)
	}, workflows.Rekey)
	if err != nil {
		return fmt.Errorf("rekey stopped (run it again to resume): %w", err)
	}
	_, err = fmt.Fprintf(stdout, "rekey done: %d rules, %d roles%s re-encrypted, %d duplicates merged; every name is under the current key\n",
		st.Rules, st.Roles, workflowRows(st), st.Merged)
	return err
}

// workflowRows is the count of change-log and workflow rows in rekey's
// report (each left out when there were none).
func workflowRows(st policydb.RekeyStats) string {
	out := ""
	if st.Changes > 0 {
		out += fmt.Sprintf(", %d change-log rows", st.Changes)
	}
	if st.Other > 0 {
		out += fmt.Sprintf(", %d workflow rows", st.Other)
	}
	return out
}

// serve runs the server until ctx ends (SIGTERM, SIGINT) or a part fails.
// The parts start in this order and stop in the reverse one, each after the
// ones started after it have returned: the audit queue, the scheduler (of
// every periodic job), the workflow dispatcher, the replica sync, the idle-tenant eviction, the
// rate-limit Redis probe, the identity provider's key refresh, the ops
// listener and the API listener. So on SIGTERM the API drains first (for
// AUTH_SHUTDOWN_TIMEOUT), the scheduler stops (the jobs under way end),
// the audit queue writes what it holds, and the database (closed by run)
// goes last.
func serve(ctx context.Context, cfg settings.Config, db *sqldb.DB, store *policydb.Store, st startup, log *slog.Logger) error {
	if err := prepareStorage(ctx, cfg, db, store, log); err != nil {
		return err
	}
	mx := metrics.New()
	reads, writes := dbBreakers(cfg, mx, log)
	trail, queue, auditStore := newAuditTrail(cfg, db, store, st.keys, reads, writes, mx, log)
	syncer := newReplicaSync(cfg, store, mx, log)
	sched, err := newScheduler(cfg, auditStore, st.keys, st.signer, syncer, log)
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
	if err := addPolicyJobs(sched, cfg, svc, log); err != nil {
		return err
	}
	// Checks and listings are recorded below the API, whoever asks them.
	decisions := decision.NewLog(trail)
	wf, err := newWorkflows(cfg, db, svc, decisions, sched, mx, log)
	if err != nil {
		return err
	}
	srv, providerKeys, err := newAPI(cfg, db, store, svc, decisions, wf, trail, st.tokens, reads, writes, limiter, mx, log)
	if err != nil {
		return err
	}
	handler, err := withConsole(cfg, srv, st.tokens, svc, decisions, trail, auditStore, log)
	if err != nil {
		return err
	}
	web, addr, err := listeners(cfg, srv, handler, log)
	if err != nil {
		return err
	}
	parts := []lifecycle.Part{
		{Name: "audit queue", Run: queue.Run},
		{Name: "scheduler", Run: sched.Run},
		{Name: "workflows", Run: wf.dispatcher.Run},
		{Name: "replica sync", Run: syncer.Run},
		{Name: "tenant eviction", Run: svc.Run},
		{Name: "rate-limit probe", Run: limiter.Run},
	}
	if providerKeys != nil {
		parts = append(parts, lifecycle.Part{Name: "identity provider keys", Run: providerKeys.Run})
	}
	if cfg.Ops.PprofAddr != "" {
		prof, err := profiling.Listen(cfg.Ops.Config, log)
		if err != nil {
			return err
		}
		parts = append(parts, lifecycle.Part{Name: "profiling listener", Run: prof.Run})
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
func modelError(cfg settings.Config, err error) error {
	if cfg.Policy.ModelPath != "" {
		return fmt.Errorf("%w (AUTH_MODEL_PATH=%s)", err, cfg.Policy.ModelPath)
	}
	return err
}

func newLogger(c settings.Log, w io.Writer) *slog.Logger {
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
