package auditdb_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
)

// benchDB opens a fresh migrated database of one dialect for a benchmark
// (PostgreSQL is skipped in -short mode).
func benchDB(b *testing.B, dialect string) *sqldb.DB {
	b.Helper()
	if dialect == "postgres" {
		if testing.Short() {
			b.Skip("PostgreSQL skipped in -short mode")
		}
		return testenv.OpenDB(b, sqldb.Options{Dialect: sqldb.Postgres, URL: testenv.PostgresURL(b)})
	}
	return testenv.OpenDB(b, sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(b.TempDir(), "bench.sqlite3")})
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecisionTrail measures the whole cost of recording decisions
// with AUTH_AUDIT_DECISIONS=all: one op is one check's record, from
// Trail.RecordDecision on the caller's goroutine through the queue to the
// writer's sealed insert (batches of 500, the queue's default). ns/op is
// the wall time per record with one caller; cpu-ns/record is the CPU the
// process spent per record (caller, writer, database driver, GC), which is
// what a loaded 2-core server pays.
//
//	go test -run '^$' -bench BenchmarkDecisionTrail -benchtime 50000x ./audit/auditdb/
func BenchmarkDecisionTrail(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, stream := range []bool{false, true} {
			name := dialect
			if stream {
				name += "/stream"
			}
			b.Run(name, func(b *testing.B) { benchDecisionTrail(b, dialect, stream) })
		}
	}
}

func benchDecisionTrail(b *testing.B, dialect string, stream bool) {
	db := benchDB(b, dialect)
	keys, err := audit.NewKeyring([]byte(testKey))
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var trail *audit.Trail
	q := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error { return trail.WriteBatch(ctx, recs) },
		audit.QueueOptions{Logger: quiet, BlockTimeout: -1})
	opts := audit.TrailOptions{Decisions: audit.DecisionsAll, Logger: quiet}
	if stream {
		opts.Stream = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	trail = audit.NewTrail(keys, auditdb.New(db, keys), q, opts)
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	ctx := audit.WithRequest(context.Background(), audit.Request{ID: "0f3c9a7e-5b1d-4e2a-9c8b-7d6e5f4a3b2c",
		IP: "192.0.2.10", UserAgent: "wrk/4.2.0"})
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	// Warm up: the tenant's chain exists, the pool is open.
	trail.RecordDecision(ctx, audit.Entry{Tenant: "tenant", User: "u", Action: audit.CheckPermission, Resource: "r", Success: true}, true)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		allowed := i%2 == 0
		trail.RecordDecision(ctx, audit.Entry{Time: time.Now().UTC(), Tenant: "tenant", User: users[i%len(users)],
			Action: audit.CheckPermission, Resource: "perm-read", Success: true,
			Details: map[string]any{"status_code": 200, "allowed": allowed}}, allowed)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := q.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
	if q.Dropped() != 0 {
		b.Fatalf("%d records dropped", q.Dropped())
	}
	if w := q.Written(); w != int64(b.N)+1 {
		b.Fatalf("written %d, want %d", w, b.N+1)
	}
}

// BenchmarkAppend measures the store alone: one op is one record sealed and
// inserted, in batches of 500 already fingerprinted records.
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 50000x ./audit/auditdb/
func BenchmarkAppend(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			db := benchDB(b, dialect)
			keys, err := audit.NewKeyring([]byte(testKey))
			if err != nil {
				b.Fatal(err)
			}
			st := auditdb.New(db, keys)
			tfp := keys.TenantFingerprint("tenant")
			ufp := keys.UserFingerprint(tfp, "user")
			ctx := context.Background()
			const batch = 500
			recs := make([]audit.Record, batch)
			cpu0 := cpuTime()
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				for j := range recs[:n] {
					recs[j] = audit.Record{Tenant: tfp, Time: time.Now(), User: ufp, Action: audit.CheckPermission,
						Resource: ufp + ":perm-read", Success: true, Details: `{"allowed":true,"status_code":200}`,
						IP: "192.0.2.10", UserAgent: "wrk/4.2.0", RequestID: "0f3c9a7e-5b1d-4e2a-9c8b-7d6e5f4a3b2c"}
				}
				if err := st.Append(ctx, recs[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
		})
	}
}
