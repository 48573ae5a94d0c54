package settings_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ourway/auth/internal/config"
)

// POSTGRESQL_URL is checked at load: the error names the variable, says
// what is wrong, and never shows the password.
func TestPostgresURLShape(t *testing.T) {
	const password = "s3cretPassw0rd"
	for _, tc := range []struct {
		name, url string
		want      string // "" for accepted
	}{
		{"URL", "postgres://auth:" + password + "@db:5432/auth?sslmode=disable", ""},
		{"postgresql scheme", "postgresql://auth:" + password + "@db/auth", ""},
		{"unix socket in the query", "postgres:///auth?host=/var/run/postgresql", ""},
		{"database in the query", "postgres://db:5432?dbname=auth", ""},
		{"key=value", "host=db port=5432 dbname=auth user=auth password=" + password, ""},
		{"key=value with quotes", "host=db dbname='my db' password='a b " + password + "'", ""},
		{"key=value with hostaddr", "hostaddr=10.0.0.1 dbname=auth", ""},
		{"no scheme", "auth:" + password + "@db:5432/auth", "has no scheme: it must be a URL starting with postgres:// or postgresql://"},
		{"bare host", "localhost", "has no scheme"},
		{"wrong scheme", "mysql://auth:" + password + "@db/auth", `must start with postgres:// or postgresql:// (it starts with "mysql"://)`},
		{"scheme-like password", "auth:" + password + "://x@db/auth", "must start with postgres:// or postgresql:// (it starts with something else://)"},
		{"no host", "postgres:///auth", "names no host"},
		{"no database", "postgres://auth:" + password + "@db:5432", "names no database: add /dbname after the host"},
		{"no database, slash only", "postgres://auth:" + password + "@db:5432/", "names no database"},
		{"bad percent escape", "postgres://auth:%zz" + password + "@db/auth", "is not a valid URL: percent-encode special characters"},
		{"key=value without host", "dbname=auth user=auth password=" + password, "names no host: add host="},
		{"key=value without database", "host=db user=auth password=" + password, "names no database: add dbname="},
		{"key=value open quote", "host=db dbname='auth password=" + password, "the value of dbname has an opening quote and no closing one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, "AUTH_DB_TYPE", "postgresql", "POSTGRESQL_URL", tc.url)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Setting != "POSTGRESQL_URL" {
				t.Fatalf("error %v, want one naming POSTGRESQL_URL", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "connect_timeout") {
				t.Errorf("error %q shows the password or libpq's words", err)
			}
		})
	}
}

// postgres is another name of postgresql; any other type is refused with
// a message that lists both.
func TestDatabaseTypeAlias(t *testing.T) {
	for _, tc := range []struct {
		typ, want string
	}{
		{"postgresql", "postgresql"},
		{"postgres", "postgresql"},
		{"POSTGRES", "postgresql"},
		{"sqlite", "sqlite"},
	} {
		c, err := load(t, "AUTH_DB_TYPE", tc.typ, "POSTGRESQL_URL", "postgres://db/auth")
		if err != nil {
			t.Fatalf("AUTH_DB_TYPE=%s: %v", tc.typ, err)
		}
		if c.Database.Type != tc.want {
			t.Errorf("AUTH_DB_TYPE=%s: type %s, want %s", tc.typ, c.Database.Type, tc.want)
		}
	}
	_, err := load(t, "AUTH_DB_TYPE", "pg")
	if err == nil || !strings.Contains(err.Error(), "postgres is accepted as another name of postgresql") {
		t.Errorf("AUTH_DB_TYPE=pg: %v, want an error naming the alias", err)
	}
	_, err = load(t, "AUTH_DB_TYPE", "postgres")
	if err == nil || !strings.Contains(err.Error(), "POSTGRESQL_URL: is required when AUTH_DB_TYPE=postgresql (or its other name, postgres)") {
		t.Errorf("AUTH_DB_TYPE=postgres without URL: %v", err)
	}
}

// A PostgreSQL URL set while the database is SQLite is pointed out.
func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"none", nil, nil},
		{"URL with sqlite", []string{"POSTGRESQL_URL", "postgres://u:pw@db/auth", "AUTH_DB_PATH", "/data/auth.db"},
			[]string{"POSTGRESQL_URL: is set but AUTH_DB_TYPE is sqlite, so it is not used: the SQLite database /data/auth.db is; set AUTH_DB_TYPE=postgresql to use PostgreSQL"}},
		{"URL with postgresql", []string{"POSTGRESQL_URL", "postgres://u:pw@db/auth", "AUTH_DB_TYPE", "postgres"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Warnings(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Warnings() = %q, want %q", got, tc.want)
			}
		})
	}
}
