package benchsuite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/settings"
)

// commonEnv are the settings of every auth-server the suite starts, shown
// in the report (the secrets are random per run and shown as such).
func commonEnv() []string {
	return []string{
		"SERVER_HOST=127.0.0.1",
		"SERVER_PORT=(a free port)",
		"AUTH_LOG_FORMAT=json",
		"AUTH_AUDIT_KEY=(random per run; the generated tenants' audit chains are sealed with it)",
		"JWT_SECRET_KEY=(random per run)",
		"(rate limits as shipped: tenants are not limited)",
		"AUTH_DB_TYPE=sqlite with AUTH_DB_PATH=(fresh file), or postgresql with POSTGRESQL_URL=(fresh database)",
		"AUTH_AUDIT_DECISIONS=all or none, as each table says",
	}
}

// randomSecret is 48 random hex digits.
func randomSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// baseEnv is the process environment without any setting of auth-server.
func baseEnv() []string { return settings.Unconfigured(os.Environ()) }

// database is a fresh database holding one generated tenant.
type database struct {
	kind    string // benchreport.SQLite or benchreport.Postgres
	env     []string
	cleanup func() error
	seed    time.Duration // how long writing the tenant took
}

// newDatabase creates a fresh database, migrates it and writes t into it.
func (s *suite) newDatabase(ctx context.Context, kind, name string, t *dataset.Tenant) (*database, error) {
	d := &database{kind: kind, cleanup: func() error { return nil }}
	var opts sqldb.Options
	switch kind {
	case benchreport.SQLite:
		path := filepath.Join(s.tmp, name+".sqlite3")
		opts = sqldb.Options{Dialect: sqldb.SQLite, Path: path}
		d.env = []string{"AUTH_DB_TYPE=sqlite", "AUTH_DB_PATH=" + path}
		d.cleanup = func() error {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
					return err
				}
			}
			return nil
		}
	case benchreport.Postgres:
		u, drop, err := s.createPostgres(ctx)
		if err != nil {
			return nil, err
		}
		opts = sqldb.Options{Dialect: sqldb.Postgres, URL: u}
		d.env = []string{"AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL=" + u}
		d.cleanup = drop
	default:
		return nil, fmt.Errorf("unknown database %q", kind)
	}
	db, err := sqldb.Open(ctx, opts)
	if err != nil {
		_ = d.cleanup()
		return nil, err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx, nil); err != nil {
		_ = d.cleanup()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	start := time.Now()
	if _, err := dataset.Load(ctx, db, s.auditKeys, t); err != nil {
		_ = d.cleanup()
		return nil, err
	}
	d.seed = time.Since(start)
	return d, nil
}

// createPostgres creates a database of its own next to the admin URL's and
// returns its URL and the function that drops it.
func (s *suite) createPostgres(ctx context.Context) (string, func() error, error) {
	admin, err := sql.Open("pgx", s.cfg.PostgresURL)
	if err != nil {
		return "", nil, err
	}
	name := "auth_bench_" + randomSecret()[:12]
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() error {
		defer admin.Close()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	u, err := url.Parse(s.cfg.PostgresURL)
	if err != nil {
		_ = drop()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// startServer starts auth-server on d with the decision audit setting and
// extra settings.
func (s *suite) startServer(ctx context.Context, name string, d *database, audit string, extra ...string) (*process, error) {
	env := append(baseEnv(),
		"SERVER_HOST=127.0.0.1",
		"SERVER_PORT="+PortPlaceholder,
		"AUTH_LOG_FORMAT=json",
		"AUTH_AUDIT_KEY="+s.auditKey,
		"JWT_SECRET_KEY=bench-"+randomSecret(),
		"AUTH_AUDIT_DECISIONS="+audit,
	)
	env = append(append(env, d.env...), extra...)
	return startProcess(ctx, "auth-server ("+name+")", s.server, []string{"serve"}, env, filepath.Join(s.tmp, name+".log"))
}
