// Package sqldb opens the service's database (pure-Go SQLite or PostgreSQL)
// through gorm, runs its versioned migrations and runs work in transactions.
package sqldb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names a supported database.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgresql"
)

// Options say which database to open.
type Options struct {
	Dialect Dialect
	// Path is the SQLite file.
	Path string
	// URL is the PostgreSQL DSN (URL or key=value form); its sslmode is kept.
	URL string
	// MaxOpenConns bounds the pool (default 16).
	MaxOpenConns int
}

// DB is an open database.
type DB struct {
	gorm    *gorm.DB
	dialect Dialect
	// writeSem (one token) serialises write transactions on SQLite, which
	// allows only one writer at a time: waiting here is cheaper and fairer
	// than spinning on SQLITE_BUSY. Other processes are still covered by
	// busy_timeout. Waiting for it honours the caller's context.
	writeSem chan struct{}
	// readSem (GOMAXPROCS tokens, SQLite only) bounds the reads run at
	// once through Read. SQLite runs in this process: more concurrent
	// reads than processors gain no throughput, and unbounded, the few
	// that lose the race for its internal locks wait tens of milliseconds
	// while the others pass.
	readSem chan struct{}
}

// ErrNotMigrated is returned when the schema is older than this binary.
var ErrNotMigrated = errors.New("database schema is not up to date: run `auth-server migrate`")

// Open connects to the database described by o. It does not migrate.
func Open(ctx context.Context, o Options) (*DB, error) {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 16
	}
	var dial gorm.Dialector
	switch o.Dialect {
	case SQLite:
		if dir := filepath.Dir(o.Path); dir != "" && dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// The file holds every tenant's policies: readable by its owner only.
		if f, err := os.OpenFile(o.Path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			_ = f.Close()
		}
		dial = sqlite.Open(SQLiteDSN(o.Path))
	case Postgres:
		dial = postgres.New(postgres.Config{DSN: withConnectTimeout(o.URL, os.Getenv)})
	default:
		return nil, fmt.Errorf("unknown database type %q", o.Dialect)
	}
	g, err := gorm.Open(dial, &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", o.Dialect, redact(err, o.URL))
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(o.MaxOpenConns)
	sqlDB.SetMaxIdleConns(o.MaxOpenConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", o.Dialect, redact(err, o.URL))
	}
	d := &DB{gorm: g, dialect: o.Dialect, writeSem: make(chan struct{}, 1)}
	if o.Dialect == SQLite {
		d.readSem = make(chan struct{}, runtime.GOMAXPROCS(0))
	}
	return d, nil
}

// SQLiteDSN is the DSN for a SQLite file: WAL, a busy timeout, immediate
// write transactions and foreign keys.
func SQLiteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// redact removes a DSN (which may hold a password) from an error text.
func redact(err error, dsn string) error {
	if dsn == "" || err == nil {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, dsn) {
		return errors.New(strings.ReplaceAll(msg, dsn, "[POSTGRESQL_URL]"))
	}
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(msg, p) {
			return errors.New(strings.ReplaceAll(msg, p, "REDACTED"))
		}
	}
	return err
}

// Gorm returns the gorm handle (for stores in this module).
func (d *DB) Gorm() *gorm.DB { return d.gorm }

// Dialect returns which database this is.
func (d *DB) Dialect() Dialect { return d.dialect }

// Close closes the pool.
func (d *DB) Close() error {
	sqlDB, err := d.gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	sqlDB, err := d.gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// InTx runs fn in one write transaction: it commits when fn returns nil and
// rolls back otherwise.
func (d *DB) InTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if d.dialect == SQLite {
		select {
		case d.writeSem <- struct{}{}:
			defer func() { <-d.writeSem }()
		case <-ctx.Done():
			return fmt.Errorf("wait for the database write lock: %w", ctx.Err())
		}
	}
	return d.gorm.WithContext(ctx).Transaction(fn)
}

// Read runs fn, a read outside any transaction (one statement is one
// consistent snapshot on both databases), with the pool bound to ctx. It
// takes no write lock; on SQLite it waits, honouring ctx, while as many
// reads as there are processors run (see readSem).
func (d *DB) Read(ctx context.Context, fn func(g *gorm.DB) error) error {
	if d.readSem != nil {
		select {
		case d.readSem <- struct{}{}:
			defer func() { <-d.readSem }()
		case <-ctx.Done():
			return fmt.Errorf("wait to read the database: %w", ctx.Err())
		}
	}
	return fn(d.gorm.WithContext(ctx))
}

//go:embed migrations
var migrationFS embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the migrations for a dialect in version order.
func Migrations(d Dialect) ([]Migration, error) {
	dir := "migrations/sqlite"
	if d == Postgres {
		dir = "migrations/postgres"
	}
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", name)
		}
		b, err := fs.ReadFile(migrationFS, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrationLockID is the PostgreSQL advisory-lock key that serialises
// migrations across replicas started at the same time.
const migrationLockID = 0x61757468 // "auth"

// Migrate applies every migration not yet applied, each in its own
// transaction, and returns how many it applied. It repairs nothing (see
// MigrateAndRepair): a schema damaged by another program is left for the
// operator to repair, after CheckSchema has said what changed. Concurrent
// callers (several replicas starting at once) are serialised: on
// PostgreSQL by an advisory lock, on SQLite by the immediate write lock of
// the transaction.
func (d *DB) Migrate(ctx context.Context, log *slog.Logger) (int, error) {
	n, _, err := d.upgrade(ctx, log, false)
	return n, err
}

// MigrateAndRepair is Migrate followed, in one more transaction under the
// same lock, by the repair of whatever other programs changed in
// casbin_rule since (column widths, defaults and nullability, indexes,
// triggers: see CheckSchema), keeping every rule. It is what `auth-server
// migrate` runs, and works as well when no migration is due. It returns
// how many migrations it applied and what it repaired.
func (d *DB) MigrateAndRepair(ctx context.Context, log *slog.Logger) (int, []string, error) {
	return d.upgrade(ctx, log, true)
}

func (d *DB) upgrade(ctx context.Context, log *slog.Logger, repair bool) (int, []string, error) {
	migs, err := Migrations(d.dialect)
	if err != nil {
		return 0, nil, err
	}
	if d.dialect == Postgres {
		conn, err := d.gorm.DB()
		if err != nil {
			return 0, nil, err
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return 0, nil, err
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
			return 0, nil, fmt.Errorf("take migration lock: %w", err)
		}
		defer func() {
			_, _ = c.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockID)
		}()
	}
	applied := 0
	for _, m := range migs {
		done := false
		err := d.InTx(ctx, func(tx *gorm.DB) error {
			if err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at TIMESTAMP NOT NULL)`).Error; err != nil {
				return err
			}
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.Version).Scan(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				done = true
				return nil
			}
			for _, stmt := range splitSQL(m.SQL) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %s: %w", m.Name, err)
				}
			}
			if m.Version == ruleTriggersVersion {
				if err := d.createRuleTriggers(tx); err != nil {
					return fmt.Errorf("migration %s: %w", m.Name, err)
				}
			}
			return tx.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, time.Now().UTC()).Error
		})
		if err != nil {
			return applied, nil, err
		}
		if !done {
			applied++
			if log != nil {
				log.InfoContext(ctx, "migration applied", "version", m.Version, "name", m.Name)
			}
		}
	}
	if !repair {
		return applied, nil, nil
	}
	var repaired []string
	err = d.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		repaired, err = d.repair(tx)
		return err
	})
	if err != nil {
		return applied, nil, fmt.Errorf("repair casbin_rule: %w", err)
	}
	return applied, repaired, nil
}

// Current reports whether every migration of this binary has been applied.
func (d *DB) Current(ctx context.Context) error {
	migs, err := Migrations(d.dialect)
	if err != nil {
		return err
	}
	var n int64
	if err := d.gorm.WithContext(ctx).Raw("SELECT COUNT(*) FROM schema_migrations").Scan(&n).Error; err != nil {
		return ErrNotMigrated
	}
	if int(n) < len(migs) {
		return ErrNotMigrated
	}
	return nil
}

// splitSQL splits a migration file into statements on ";" at line ends.
func splitSQL(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

type txKey struct{}

// txState is the transaction carried in a context, with the work to run
// once it has committed.
type txState struct {
	tx          *gorm.DB
	afterCommit []func()
}

// InTxContext runs fn in one write transaction, like InTx, and hands it a
// context that carries the transaction: stores called with that context
// (an audit sink, say) write inside the same transaction, and functions
// registered with AfterCommit run once it has committed.
func (d *DB) InTxContext(ctx context.Context, fn func(ctx context.Context, tx *gorm.DB) error) error {
	st := &txState{}
	err := d.InTx(ctx, func(tx *gorm.DB) error {
		st.tx = tx
		return fn(context.WithValue(ctx, txKey{}, st), tx)
	})
	if err != nil {
		return err
	}
	for _, f := range st.afterCommit {
		f()
	}
	return nil
}

// TxFrom returns the transaction carried by ctx, or nil.
func TxFrom(ctx context.Context) *gorm.DB {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return nil
}

// AfterCommit runs f once the transaction carried by ctx has committed (not
// at all if it rolls back), or at once when ctx carries none.
func AfterCommit(ctx context.Context, f func()) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		st.afterCommit = append(st.afterCommit, f)
		return
	}
	f()
}

// Conn returns the transaction carried by ctx, or d's pool when there is
// none, bound to ctx.
func (d *DB) Conn(ctx context.Context) *gorm.DB {
	if tx := TxFrom(ctx); tx != nil {
		return tx.WithContext(ctx)
	}
	return d.gorm.WithContext(ctx)
}
