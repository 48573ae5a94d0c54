package testenv

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/ourway/auth/internal/sqldb"
)

// Statements counts what a database is asked to do through its gorm
// handle: the statements sent outside a transaction, the transactions
// begun, and every statement gorm runs (inside transactions too), by text.
// Each of the first two is a round trip of its own (a transaction is two
// more, its BEGIN and its COMMIT).
type Statements struct {
	mu     sync.Mutex
	pooled int // statements sent outside a transaction
	begins int
	texts  []string
}

// CountStatements makes db count its statements until the test ends.
func CountStatements(t testing.TB, db *sqldb.DB) *Statements {
	t.Helper()
	s := &Statements{}
	g := db.Gorm()
	sqlDB, err := g.DB()
	if err != nil {
		t.Fatal(err)
	}
	pool := &countingPool{db: sqlDB, s: s}
	g.Config.ConnPool = pool
	g.Statement.ConnPool = pool
	t.Cleanup(func() {
		g.Config.ConnPool = sqlDB
		g.Statement.ConnPool = sqlDB
	})
	note := func(tx *gorm.DB) {
		s.mu.Lock()
		s.texts = append(s.texts, tx.Statement.SQL.String())
		s.mu.Unlock()
	}
	cb := g.Callback()
	for _, err := range []error{
		cb.Query().After("gorm:query").Register("testenv:count", note),
		cb.Row().After("gorm:row").Register("testenv:count", note),
		cb.Raw().After("gorm:raw").Register("testenv:count", note),
		cb.Create().After("gorm:create").Register("testenv:count", note),
		cb.Update().After("gorm:update").Register("testenv:count", note),
		cb.Delete().After("gorm:delete").Register("testenv:count", note),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Take returns the counts since the last Take and starts afresh: the
// statements sent outside a transaction, the transactions begun, and the
// texts of the statements gorm ran.
func (s *Statements) Take() (pooled, begins int, texts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pooled, begins, texts = s.pooled, s.begins, s.texts
	s.pooled, s.begins, s.texts = 0, 0, nil
	return pooled, begins, texts
}

func (s *Statements) add(pooled, begins int) {
	s.mu.Lock()
	s.pooled += pooled
	s.begins += begins
	s.mu.Unlock()
}

// countingPool is the connection pool as gorm sees it, counting.
type countingPool struct {
	db *sql.DB
	s  *Statements
}

var (
	_ gorm.ConnPool       = (*countingPool)(nil)
	_ gorm.TxBeginner     = (*countingPool)(nil)
	_ gorm.GetDBConnector = (*countingPool)(nil)
)

func (p *countingPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.db.PrepareContext(ctx, query)
}

func (p *countingPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p.s.add(1, 0)
	return p.db.ExecContext(ctx, query, args...)
}

func (p *countingPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	p.s.add(1, 0)
	return p.db.QueryContext(ctx, query, args...)
}

func (p *countingPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	p.s.add(1, 0)
	return p.db.QueryRowContext(ctx, query, args...)
}

func (p *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	p.s.add(0, 1)
	return p.db.BeginTx(ctx, opts)
}

func (p *countingPool) GetDBConn() (*sql.DB, error) { return p.db, nil }
