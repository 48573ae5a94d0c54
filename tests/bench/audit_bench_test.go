// Package bench measures what the audit trail costs. It reports, never
// asserts a time:
//
//	go test -run '^$' -bench BenchmarkAuditOverhead -benchtime 3s ./tests/bench/
//
// write: a change (CreateRole) through the policy core with audit.Nop
// against one with the trail (its record sealed and inserted in the
// change's transaction), alternately, each on a database of its own;
// audit/plain-write is the latency ratio.
//
// check: bursts of concurrent GET /api/has_permission through the real API
// on a real listener, with AUTH_AUDIT_DECISIONS all against none, each on a
// database of its own; all/none-throughput is the throughput ratio.
//
// decision-writes: how many decision records per second the queue's writer
// stores, in its batches of 500: the check rate that logging every
// decision sustains before the queue fills.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/workflow"
)

const benchKey = "bench-7c2e9a4f1b3d5e6a8c0b2d4f6e8a1c3e5b7d9f0a"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stack is one service: a database, the policy core, and with audit on,
// the trail and its queue.
type stack struct {
	db    *sqldb.DB
	svc   *policy.Service
	trail *audit.Trail
	queue *audit.Queue
}

// dialects are the databases benchmarked: SQLite always, PostgreSQL when
// it is there (and not in -short mode).
func dialects() []string {
	if testing.Short() {
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

func openDB(b *testing.B, dialect string) *sqldb.DB {
	b.Helper()
	o := sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(b.TempDir(), "bench.sqlite3")}
	if dialect == "postgres" {
		o = sqldb.Options{Dialect: sqldb.Postgres, URL: testenv.PostgresURL(b)}
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx, nil); err != nil {
		b.Fatal(err)
	}
	return db
}

// newStack builds a service on a fresh database; with decisions "" the
// audit trail is off (audit.Nop), otherwise it is wired as the server wires
// it.
func newStack(b *testing.B, dialect string, decisions audit.Decisions) *stack {
	b.Helper()
	db := openDB(b, dialect)
	st := &stack{db: db}
	opts := policy.Options{Logger: quiet, Recorder: audit.Nop{}}
	if decisions != "" {
		keys, err := audit.NewKeyring([]byte(benchKey))
		if err != nil {
			b.Fatal(err)
		}
		st.queue = audit.NewQueue(func(ctx context.Context, recs []audit.Record) error { return st.trail.WriteBatch(ctx, recs) },
			audit.QueueOptions{Logger: quiet})
		st.trail = audit.NewTrail(keys, auditdb.New(db, keys), st.queue, audit.TrailOptions{
			Decisions: decisions, Stream: quiet, AfterCommit: sqldb.AfterCommit,
		})
		go st.queue.Run(context.Background())
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = st.queue.Close(ctx)
		})
		opts.Recorder = st.trail
	}
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, opts)
	if err != nil {
		b.Fatal(err)
	}
	st.svc = svc
	return st
}

func BenchmarkAuditOverhead(b *testing.B) {
	for _, d := range dialects() {
		b.Run("write/"+d, func(b *testing.B) { benchWrite(b, d) })
	}
	for _, d := range dialects() {
		b.Run("check/"+d, func(b *testing.B) { benchCheck(b, d) })
	}
	for _, d := range dialects() {
		b.Run("decision-writes/"+d, func(b *testing.B) { benchDecisionWrites(b, d) })
	}
}

// benchWrite times one CreateRole without and one with the audit trail per
// iteration, in alternating order.
func benchWrite(b *testing.B, dialect string) {
	plain, audited := newStack(b, dialect, ""), newStack(b, dialect, audit.DecisionsAll)
	key, err := policy.ParseClientKey("6f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	write := func(s *stack, i int) time.Duration {
		start := time.Now()
		if _, err := s.svc.CreateRole(ctx, key, fmt.Sprintf("role-%d", i)); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// Warm up: load the tenant, fill the pools.
	for i := -20; i < 0; i++ {
		write(plain, i)
		write(audited, i)
	}
	var tPlain, tAudit time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tPlain += write(plain, i)
			tAudit += write(audited, i)
		} else {
			tAudit += write(audited, i)
			tPlain += write(plain, i)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tPlain.Nanoseconds())/n, "plain-ns/write")
	b.ReportMetric(float64(tAudit.Nanoseconds())/n, "audit-ns/write")
	b.ReportMetric(float64(tAudit)/float64(tPlain), "audit/plain-write")
}

// server is the API of a stack on a real listener.
type server struct {
	*stack
	url string
}

func newServer(b *testing.B, dialect string, decisions audit.Decisions) *server {
	b.Helper()
	st := newStack(b, dialect, decisions)
	recorded := decision.NewLog(st.trail)
	srv := api.New(api.Config{}, api.Deps{Policy: decision.New(st.svc, recorded), Workflows: workflow.New(st.svc, recorded),
		Audit: st.trail, Logger: quiet})
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return &server{stack: st, url: hs.URL}
}

// benchCheck sends bursts of concurrent checks to a server logging every
// decision and to one logging none, alternately. Each server's queue writes
// in the background, as in production, competing for the same CPUs (and,
// on SQLite, for the same process).
func benchCheck(b *testing.B, dialect string) {
	const burst, clients = 1024, 16
	all, none := newServer(b, dialect, audit.DecisionsAll), newServer(b, dialect, audit.DecisionsNone)
	const clientKey = "6f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	call := func(method, url string) error {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer "+clientKey)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
		}
		return nil
	}
	for _, s := range []*server{all, none} {
		for _, p := range []string{"/api/role/reader", "/api/permission/reader/read", "/api/membership/ursula/reader"} {
			if err := call("POST", s.url+p); err != nil {
				b.Fatal(err)
			}
		}
	}
	// fire sends one burst, half allowed, half denied, and returns how long
	// it took to be answered.
	fire := func(s *server) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		var failed sync.Once
		var ferr error
		next := make(chan int, burst)
		for i := 0; i < burst; i++ {
			next <- i
		}
		close(next)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					perm := "read"
					if i%2 == 1 {
						perm = "write"
					}
					if err := call("GET", s.url+"/api/has_permission/ursula/"+perm); err != nil {
						failed.Do(func() { ferr = err })
					}
				}
			}()
		}
		wg.Wait()
		if ferr != nil {
			b.Fatal(ferr)
		}
		return time.Since(start)
	}
	fire(all) // warm up
	fire(none)
	var tAll, tNone time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tAll += fire(all)
			tNone += fire(none)
		} else {
			tNone += fire(none)
			tAll += fire(all)
		}
	}
	b.StopTimer()
	checks := float64(b.N * burst)
	b.ReportMetric(checks/tAll.Seconds(), "all-checks/s")
	b.ReportMetric(checks/tNone.Seconds(), "none-checks/s")
	b.ReportMetric(tNone.Seconds()/tAll.Seconds(), "all/none-throughput")
	// Every check of the all server is recorded, none lost.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := all.queue.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if all.queue.Dropped() != 0 {
		b.Errorf("%d decision records dropped", all.queue.Dropped())
	}
}

// benchDecisionWrites measures how fast the queue's writer stores decision
// records (batches of 500, the queue's default): the sustained rate of
// checks that AUTH_AUDIT_DECISIONS=all can keep up with before the queue
// fills and, with AUTH_AUDIT_OVERFLOW=block, slows checks down to it.
func benchDecisionWrites(b *testing.B, dialect string) {
	const batch = 500
	st := newStack(b, dialect, audit.DecisionsAll)
	key, _ := policy.ParseClientKey("6f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
	keys, _ := audit.NewKeyring([]byte(benchKey))
	tfp := keys.TenantFingerprint(string(key))
	recs := make([]audit.Record, batch)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range recs {
			recs[j] = audit.Record{Tenant: tfp, Time: time.Now(), User: keys.UserFingerprint(tfp, "ursula"),
				Action: audit.CheckPermission, Resource: "read", Success: true,
				Details: `{"allowed":true,"status_code":200}`, IP: "127.0.0.1", UserAgent: "bench", RequestID: "r"}
		}
		if err := st.trail.WriteBatch(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGrant measures change writes with the audit trail (each grant's
// record sealed and inserted in the grant's transaction) and without:
// grants per second and the 99th-percentile latency, one writer at a time
// (seq) and 16 at once (c16). One op is one grant.
//
//	go test -run '^$' -bench BenchmarkGrant -benchtime 2000x ./tests/bench/
func BenchmarkGrant(b *testing.B) {
	for _, d := range dialects() {
		for _, mode := range []struct {
			name      string
			decisions audit.Decisions
		}{{"audit", audit.DecisionsAll}, {"plain", ""}} {
			for _, writers := range []int{1, 16} {
				name := fmt.Sprintf("%s/%s/seq", d, mode.name)
				if writers > 1 {
					name = fmt.Sprintf("%s/%s/c%d", d, mode.name, writers)
				}
				b.Run(name, func(b *testing.B) { benchGrant(b, d, mode.decisions, writers) })
			}
		}
	}
}

func benchGrant(b *testing.B, dialect string, decisions audit.Decisions, writers int) {
	st := newStack(b, dialect, decisions)
	key, err := policy.ParseClientKey("6f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.svc.CreateRole(ctx, key, "reader"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	next := make(chan int, b.N)
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var failed sync.Once
	var ferr error
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				if _, err := st.svc.Grant(ctx, key, "reader", fmt.Sprintf("perm-%d", i)); err != nil {
					failed.Do(func() { ferr = err })
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if ferr != nil {
		b.Fatal(ferr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
}
