package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite"

	"github.com/ourway/auth/internal/testenv" // also registers the "pgx" driver
)

// factory starts a fresh server on a database of its own; extra settings
// (KEY=VALUE) win over the defaults.
type factory func(t *testing.T, extra ...string) *server

func sqliteServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServer(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), extra...))
}

func postgresServer(t *testing.T, extra ...string) *server {
	t.Helper()
	u := testenv.PostgresURL(t)
	return startServer(t, serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"),
		append([]string{"AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL=" + u}, extra...)...))
}

// skipHeavyInShort skips PostgreSQL and load tests in -short mode.
func skipHeavyInShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
}

// openDB opens the server's database directly. For SQLite, call it after
// the server has stopped.
func (s *server) openDB(t testing.TB) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch s.dbType {
	case "sqlite":
		if _, err := os.Stat(s.dbPath); err != nil {
			t.Fatalf("SQLite file: %v", err)
		}
		db, err = sql.Open("sqlite", "file:"+s.dbPath+"?_pragma=busy_timeout(10000)")
	case "postgresql":
		db, err = sql.Open("pgx", s.pgURL)
	default:
		t.Fatalf("unknown database type %q", s.dbType)
	}
	if err != nil {
		t.Fatalf("open %s database: %v", s.dbType, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("ping %s database: %v", s.dbType, err)
	}
	return db
}

func count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// tables lists the user tables of the database.
func tables(t testing.TB, db *sql.DB, dbType string) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if dbType == "postgresql" {
		q = `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
			WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no tables found")
	}
	return out
}

// cellTexts returns every value of every row of every table as text, with
// where it was found.
func cellTexts(t testing.TB, db *sql.DB, dbType string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range tables(t, db, dbType) {
		q := `SELECT * FROM "` + table + `"`
		if dbType == "postgresql" {
			// The whole row as text: every column, whatever its type.
			q = `SELECT t::text FROM ` + table + ` AS t`
		}
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			for i, v := range vals {
				var s string
				switch v := v.(type) {
				case nil:
					continue
				case []byte:
					s = string(v)
				default:
					s = fmt.Sprint(v)
				}
				out[table+"."+cols[i]] = append(out[table+"."+cols[i]], s)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
	}
	return out
}

// findInDB reports every cell that contains one of needles.
func findInDB(t testing.TB, db *sql.DB, dbType string, needles []string) []string {
	t.Helper()
	var found []string
	for where, cells := range cellTexts(t, db, dbType) {
		for _, c := range cells {
			for _, n := range needles {
				if strings.Contains(c, n) {
					found = append(found, fmt.Sprintf("%s holds %q", where, n))
				}
			}
		}
	}
	return found
}
