package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says that the database could not be used
// (an infrastructure failure: no connection, a broken or timed-out
// connection, a server shutting down or out of resources, a full or
// unreadable SQLite file) as opposed to a query that the database answered
// with an error of its own (a constraint, a missing row), which says nothing
// about its health. Circuit breakers count only the former.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT),
		pgconn.Timeout(err):
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgUnavailable(pgErr.Code)
	}
	var sqliteErr interface{ Code() int }
	if errors.As(err, &sqliteErr) {
		return sqliteUnavailable(sqliteErr.Code())
	}
	return false
}

// pgUnavailable classifies a PostgreSQL SQLSTATE.
func pgUnavailable(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case strings.HasPrefix(code, "53"): // insufficient resources (disk full, too many connections)
		return true
	case strings.HasPrefix(code, "58"): // system error (I/O)
		return true
	case code == "57P01", code == "57P02", code == "57P03": // admin/crash shutdown, cannot connect now
		return true
	case code == "57014": // query_canceled (statement_timeout)
		return true
	case code == "25006": // read_only_sql_transaction: a failover left us on a standby
		return true
	case code == "XX000", code == "XX001", code == "XX002": // internal error, data corrupted, index corrupted
		return true
	}
	return false
}

// sqliteUnavailable classifies a SQLite result code (its primary code is
// the low byte).
func sqliteUnavailable(code int) bool {
	switch code & 0xff {
	case 5, // SQLITE_BUSY: another process holds the lock past busy_timeout
		6,  // SQLITE_LOCKED
		7,  // SQLITE_NOMEM
		8,  // SQLITE_READONLY
		9,  // SQLITE_INTERRUPT (a deadline)
		10, // SQLITE_IOERR
		11, // SQLITE_CORRUPT
		13, // SQLITE_FULL
		14, // SQLITE_CANTOPEN
		15, // SQLITE_PROTOCOL
		26: // SQLITE_NOTADB
		return true
	}
	return false
}

// defaultConnectTimeout is the connect_timeout (seconds) added to a
// PostgreSQL DSN that has none, so that a black-holed server cannot hang
// a new connection for the kernel's TCP timeout (minutes).
const defaultConnectTimeout = "5"

// withConnectTimeout adds connect_timeout to a PostgreSQL DSN (URL or
// key=value form) unless it, or PGCONNECT_TIMEOUT, already sets one: the
// caller's value is kept, and the rest of the DSN is left as written.
func withConnectTimeout(dsn string, getenv func(string) string) string {
	if dsn == "" || strings.Contains(dsn, "connect_timeout") || getenv("PGCONNECT_TIMEOUT") != "" {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		base, frag, hasFrag := strings.Cut(dsn, "#")
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		out := base + sep + "connect_timeout=" + defaultConnectTimeout
		if hasFrag {
			out += "#" + frag
		}
		return out
	}
	return strings.TrimSpace(dsn) + " connect_timeout=" + defaultConnectTimeout
}
