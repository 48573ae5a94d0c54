package testenv

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ourway/auth/internal/sqldb"
)

// OpenDB opens the database o names and applies the migrations; it is
// closed when the test ends.
func OpenDB(t testing.TB, o sqldb.Options) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, o)
	if err != nil {
		t.Fatalf("open %s: %v", o.Dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx, nil); err != nil {
		t.Fatalf("migrate %s: %v", o.Dialect, err)
	}
	return db
}

// SQLite opens and migrates a fresh SQLite file in a temporary directory.
func SQLite(t testing.TB) *sqldb.DB {
	t.Helper()
	return OpenDB(t, sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(t.TempDir(), "auth.sqlite3")})
}

// Postgres opens and migrates a fresh PostgreSQL database of its own
// (PostgresURL: skipped, or failed with AUTH_TEST_REQUIRE_SERVICES=1, when
// PostgreSQL is not reachable).
func Postgres(t testing.TB) *sqldb.DB {
	t.Helper()
	return OpenDB(t, sqldb.Options{Dialect: sqldb.Postgres, URL: PostgresURL(t)})
}
