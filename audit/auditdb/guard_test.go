package auditdb_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
)

// fakeAuditStore counts its calls and fails them with err.
type fakeAuditStore struct {
	err   error
	calls atomic.Int64
}

func (f *fakeAuditStore) Append(context.Context, []audit.Record) error {
	f.calls.Add(1)
	return f.err
}

func (f *fakeAuditStore) List(context.Context, string, string, audit.Query) ([]audit.Record, int64, error) {
	f.calls.Add(1)
	return nil, 0, f.err
}

func auditBreakers(failure func(error) bool) (reads, writes *breaker.Breaker) {
	o := breaker.Options{Errors: 1, Timeout: time.Minute, Failure: failure}
	ro, wo := o, o
	ro.Name, wo.Name = "database_read", "database_write"
	return breaker.New(ro), breaker.New(wo)
}

// Append goes through the write breaker and List through the read one: an
// infrastructure failure becomes audit.ErrUnavailable with the cause and a
// retry hint, counted by that breaker only; a constraint and a missing
// chain pass through untouched and never count.
func TestGuardedAuditStore(t *testing.T) {
	ctx := context.Background()
	refused := fmt.Errorf("dial tcp 127.0.0.1:5432: %w", syscall.ECONNREFUSED)
	missing := &audit.ChainMissingError{Tenant: "t_x"}
	for _, c := range []struct {
		name  string
		write bool
		call  func(s audit.Store) error
	}{
		{"Append", true, func(s audit.Store) error { return s.Append(ctx, []audit.Record{{Tenant: "t_x"}}) }},
		{"List", false, func(s audit.Store) error { _, _, err := s.List(ctx, "t_x", "", audit.Query{}); return err }},
	} {
		for _, tc := range []struct {
			name        string
			err         error
			failure     func(error) bool
			unavailable bool
		}{
			{"infrastructure failure", refused, sqldb.Unavailable, true},
			{"constraint", errors.New("UNIQUE constraint failed: audit_log.seq"), sqldb.Unavailable, false},
			{"chain missing", missing, nil, false},
		} {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				reads, writes := auditBreakers(tc.failure)
				f := &fakeAuditStore{err: tc.err}
				g := auditdb.Guard(f, reads, writes)
				err := c.call(g)
				used, other := reads, writes
				if c.write {
					used, other = writes, reads
				}
				if !tc.unavailable {
					if err != tc.err {
						t.Errorf("%s = %v, want %v untouched", c.name, err, tc.err)
					}
					if used.Failures() != 0 || used.State() != breaker.Closed {
						t.Errorf("%s breaker: %d failures, %v; want none, closed", used.Name(), used.Failures(), used.State())
					}
					return
				}
				if !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("%s = %v, want audit.ErrUnavailable wrapping the cause", c.name, err)
				}
				if ra := retryAfter(err); ra < time.Second {
					t.Errorf("retry hint %v, want at least 1s", ra)
				}
				if used.Failures() != 1 || other.Failures() != 0 {
					t.Errorf("failures: %s %d, %s %d; want 1 and 0", used.Name(), used.Failures(), other.Name(), other.Failures())
				}
				err = c.call(g)
				if f.calls.Load() != 1 || !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, breaker.ErrOpen) {
					t.Errorf("%s with the breaker open = %v after %d calls, want a fast rejection", c.name, err, f.calls.Load())
				}
			})
		}
	}
}

// A change's record is appended inside the change's transaction, which its
// own store's breaker guards: the audit store does not guard it again (it
// would take a half-open breaker's only probe from the change).
func TestGuardedAuditAppendInTransactionIsNotGuardedAgain(t *testing.T) {
	ctx := context.Background()
	db := testenv.OpenDB(t, sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(t.TempDir(), "audit.sqlite3")})
	reads, writes := auditBreakers(nil)
	f := &fakeAuditStore{err: errors.New("down")}
	g := auditdb.Guard(f, reads, writes)
	if err := g.Append(ctx, nil); err == nil || writes.State() != breaker.Open {
		t.Fatalf("Append outside a transaction = %v, breaker %v; want the failure counted, open", err, writes.State())
	}
	f.err = nil
	err := db.InTxContext(ctx, func(ctx context.Context, _ *gorm.DB) error { return g.Append(ctx, nil) })
	if err != nil || f.calls.Load() != 2 {
		t.Errorf("Append in a transaction with the write breaker open = %v after %d calls, want it to reach the store", err, f.calls.Load())
	}
	if got := writes.Rejected(); got != 0 {
		t.Errorf("write breaker rejected %d calls, want 0", got)
	}
}

// retryAfter is the retry hint an error carries (0: none), as the HTTP
// layer reads it.
func retryAfter(err error) time.Duration {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return h.RetryAfter()
	}
	return 0
}
