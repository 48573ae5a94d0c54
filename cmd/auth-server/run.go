package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/policy/policysync"
	"github.com/ourway/auth/settings"
	"github.com/ourway/auth/workflow"
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
	cfg, err := settings.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
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

// rekey runs `auth-server rekey`.
func rekey(ctx context.Context, cfg settings.Config, db *sqldb.DB, store *policydb.Store, stdout io.Writer) error {
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

func serve(ctx context.Context, cfg settings.Config, db *sqldb.DB, store *policydb.Store, st startup, log *slog.Logger) error {
	keys := st.keys
	if cfg.Database.MigrateOnStart {
		if _, err := db.Migrate(ctx, log); err != nil {
			return err
		}
	} else if err := db.Current(ctx); err != nil {
		return err
	}
	if err := store.CheckEncryption(ctx); err != nil {
		return err
	}
	mx := metrics.New()
	reads, writes := dbBreakers(cfg, mx, log)
	// A tenant that has changed before must have an audit chain: a
	// missing one is not restarted behind the operator's back.
	var trail *audit.Trail
	auditStore := auditdb.NewWithOptions(db, keys, auditdb.Options{History: func(ctx context.Context, tenantFP string) (bool, error) {
		handle, ok := trail.Handle(tenantFP)
		if !ok {
			return false, nil // records come through the trail, which knows every tenant's handle
		}
		return store.Changed(ctx, policy.KeyHash(handle))
	}})
	queue := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error {
		return writes.Run(ctx, func(ctx context.Context) error { return trail.WriteBatch(ctx, recs) })
	}, audit.QueueOptions{Size: cfg.Audit.QueueSize, Overflow: audit.Overflow(cfg.Audit.Overflow),
		BlockTimeout: cfg.Ops.AuditBlockTimeout, Logger: log})
	trail = audit.NewTrail(keys, auditStore, queue, audit.TrailOptions{
		Decisions:   audit.Decisions(cfg.Audit.Decisions),
		Stream:      log.With("log", "audit"),
		AfterCommit: sqldb.AfterCommit,
		// With encryption on, names must not reach the database in clear
		// through the audit trail either.
		SealResources: cfg.Crypto.Enabled,
		Logger:        log,
	})
	mx.GaugeFunc("auth_audit_queue_depth", "Audit records waiting to be written.", func() float64 { return float64(queue.Depth()) })
	mx.CounterFunc("auth_audit_dropped_total", "Audit records of checks dropped because the queue was full (overflow=drop, or block past its timeout or while the database is down).",
		func() float64 { return float64(queue.Dropped()) })
	mx.CounterFunc("auth_audit_write_failures_total", "Failed audit batch writes (each is retried).",
		func() float64 { return float64(queue.WriteFailures()) })
	mx.CounterFunc("auth_audit_written_total", "Audit records of checks and listings written.",
		func() float64 { return float64(queue.Written()) })
	mx.CounterFunc("auth_audit_chain_missing_total", "Audit records refused because their tenant has changed before but its audit chain is missing (changes refused with 500, check records not written); `auth-server audit reset` starts a new chain.",
		func() float64 { return float64(trail.ChainMissing()) })
	qctx, cancelQ := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelQ()
	go queue.Run(qctx)
	var cpw *checkpointWriter
	if st.signer != nil {
		cpw = &checkpointWriter{store: auditStore, keys: keys, signer: st.signer, sink: cfg.Audit.CheckpointSink,
			stdout: os.Stdout, log: log, now: time.Now}
	}
	sched, err := startAuditJobs(cfg, auditStore, cpw, log)
	if err != nil {
		return err
	}
	if sched != nil {
		defer func() { _ = sched.Shutdown() }()
	}
	syncRedis := policysync.RedisURLFor(cfg.Replica.RedisURL, cfg.RateLimit.StorageURL)
	syncLogs(log, syncRedis)
	syncer := policysync.New(store, policysync.Options{
		RedisURL: syncRedis, Channel: cfg.Replica.Channel, Interval: cfg.Replica.SyncInterval, Logger: log,
	})
	limiter, closeLimiter, err := newRateLimiter(cfg.RateLimit, cfg.Tenants, mx, log)
	if err != nil {
		return err
	}
	defer closeLimiter()
	svc, err := policy.New(store, cfg.Policy.ModelText, policy.Options{
		IdleTimeout:  cfg.Policy.TenantIdleTimeout,
		MaxRoleDepth: cfg.Policy.MaxRoleDepth,
		Recorder:     trail,
		Reads:        reads,
		Writes:       writes,
		Timeout:      cfg.Ops.DBTimeout,
		Publisher:    syncer,
		Logger:       log,
		Admit:        api.TenantAdmission(limiter),
		MemoryBudget: cfg.Tenants.MemoryBytes,
	})
	if err != nil {
		return modelError(cfg, err)
	}
	if err := syncer.Start(ctx, svc); err != nil {
		return err
	}
	defer syncer.Stop()
	registerSyncMetrics(mx, syncer)
	keyring := policy.NewKeys(store, policy.KeyOptions{
		RegisteredOnly: cfg.Keys.RegisteredOnly, RotationGrace: cfg.Keys.RotationGrace,
		CacheTTL: cfg.Keys.CacheTTL, Recorder: trail, Reads: reads, Writes: writes,
	})
	tokenCfg := st.tokens
	providerCfg, providerKeys, err := providerConfig(cfg, mx, log)
	if err != nil {
		return err
	}
	mx.GaugeFunc("auth_tenants_loaded", "Tenants whose policies are in memory.", func() float64 { return float64(svc.LoadedTenants()) })
	registerTenantMetrics(mx, svc)
	srv := api.New(api.Config{
		AllowCORS: cfg.Server.AllowCORS, CORSOrigins: cfg.Server.Origins(), TrustedProxies: cfg.Server.Proxies,
		MetricsToken: cfg.Ops.MetricsToken.Reveal(), SeparateOps: cfg.Ops.Addr != "",
	}, api.Deps{
		Policy:      svc,
		Workflows:   workflow.New(svc),
		Ready:       readiness(db, svc, reads, writes),
		Audit:       guardedAudit{Trail: trail, reads: reads},
		Metrics:     mx,
		Keys:        keyring,
		Tokens:      tokenCfg,
		Provider:    providerCfg,
		Tenants:     policy.NewTenants(store, policy.TenantOptions{CacheTTL: cfg.Keys.CacheTTL, Reads: reads}),
		RateLimiter: limiter,
		Logger:      log,
	})
	ln, err := net.Listen("tcp", cfg.Server.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s (SERVER_HOST/SERVER_PORT): %w", cfg.Server.Addr(), err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    api.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var opsErr <-chan error // nil without an ops listener: never ready
	if cfg.Ops.Addr != "" {
		stopOps, errc, err := serveOps(cfg, srv.OpsHandler(), log)
		if err != nil {
			return err
		}
		defer stopOps()
		opsErr = errc
	}
	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBG()
	go func() { _ = svc.Run(bg) }()
	if providerKeys != nil {
		go func() { _ = providerKeys.Run(bg) }()
	}

	log.Info("auth-server listening", "addr", ln.Addr().String(), "db", cfg.Database.Type,
		"version", buildVersion(), "fast_path", svc.FastPath())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case err := <-opsErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	shutdownErr := hs.Shutdown(sctx)
	if shutdownErr != nil {
		log.Error("requests still in flight at the shutdown timeout", "err", shutdownErr)
		// Still write what the audit queue holds, for a little longer.
		var cancel2 context.CancelFunc
		sctx, cancel2 = context.WithTimeout(context.Background(), auditFlushGrace)
		defer cancel2()
	}
	// Every request has answered: write what the audit queue still holds.
	if err := queue.Close(sctx); err != nil {
		log.Error("audit queue not flushed before the shutdown timeout", "waiting", queue.Depth(), "err", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
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
