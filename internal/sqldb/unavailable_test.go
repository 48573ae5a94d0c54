package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// codeErr is an error with a SQLite result code, as glebarez/go-sqlite's.
type codeErr int

func (e codeErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codeErr) Code() int     { return int(e) }

func TestUnavailable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("add rules: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"deadline", wrap(context.DeadlineExceeded), true},
		{"caller canceled", wrap(context.Canceled), false},
		{"bad conn", driver.ErrBadConn, true},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), true},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"reset", wrap(syscall.ECONNRESET), true},
		{"pgx conn closed", wrap(pgconn.ErrConnClosed), true},
		{"pg connection failure 08006", wrap(&pgconn.PgError{Code: "08006"}), true},
		{"pg too many connections 53300", &pgconn.PgError{Code: "53300"}, true},
		{"pg admin shutdown 57P01", &pgconn.PgError{Code: "57P01"}, true},
		{"pg statement timeout 57014", &pgconn.PgError{Code: "57014"}, true},
		{"pg read-only standby 25006", &pgconn.PgError{Code: "25006"}, true},
		{"pg unique violation 23505", wrap(&pgconn.PgError{Code: "23505"}), false},
		{"pg serialization failure 40001", &pgconn.PgError{Code: "40001"}, false},
		{"pg syntax error 42601", &pgconn.PgError{Code: "42601"}, false},
		{"sqlite busy", wrap(codeErr(5)), true},
		{"sqlite ioerr extended", codeErr(10 | 3<<8), true},
		{"sqlite full", codeErr(13), true},
		{"sqlite constraint", codeErr(19), false},
		{"record not found", wrap(gorm.ErrRecordNotFound), false},
		{"duplicated key", gorm.ErrDuplicatedKey, false},
		{"plain error", errors.New("policydb: empty rule field"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unavailable(tc.err); got != tc.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestWithConnectTimeout(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		name, dsn, env, want string
	}{
		{"url without query", "postgres://u@h:5432/db", "", "postgres://u@h:5432/db?connect_timeout=5"},
		{"url with query", "postgresql://u:p%40ss@h/db?sslmode=require", "", "postgresql://u:p%40ss@h/db?sslmode=require&connect_timeout=5"},
		{"url with the caller's value", "postgres://h/db?connect_timeout=30", "", "postgres://h/db?connect_timeout=30"},
		{"key=value", "host=h dbname=db sslmode=disable", "", "host=h dbname=db sslmode=disable connect_timeout=5"},
		{"key=value with the caller's value", "host=h connect_timeout=2", "", "host=h connect_timeout=2"},
		{"PGCONNECT_TIMEOUT set", "postgres://h/db", "9", "postgres://h/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := none
			if tc.env != "" {
				getenv = func(k string) string {
					if k == "PGCONNECT_TIMEOUT" {
						return tc.env
					}
					return ""
				}
			}
			if got := withConnectTimeout(tc.dsn, getenv); got != tc.want {
				t.Errorf("withConnectTimeout(%q) = %q, want %q", tc.dsn, got, tc.want)
			}
		})
	}
}

// A SQLite writer waiting for the write lock gives up when its context
// ends instead of waiting for a stuck writer.
func TestInTxWaitHonoursContext(t *testing.T) {
	db, err := Open(context.Background(), Options{Dialect: SQLite, Path: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holding := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(context.Background(), func(*gorm.DB) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = db.InTx(ctx, func(*gorm.DB) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("InTx while another writer holds the lock = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("InTx waited %v past its deadline", took)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.InTx(context.Background(), func(*gorm.DB) error { return nil }); err != nil {
		t.Errorf("InTx after the writer finished: %v", err)
	}
}
