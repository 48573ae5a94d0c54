package benchreport

import (
	"testing"
	"time"

	"github.com/ourway/auth/internal/gobench"
	"github.com/ourway/auth/internal/loadtest"
)

// figures are the measures a report is built from in these tests.
type figures struct {
	ceilingMax     float64
	ceilingP99     time.Duration
	singleMax      float64       // SQLite and PostgreSQL alike
	singleP99      time.Duration // at saturation
	singleHalfP99  time.Duration
	batchMax       float64 // requests/s of 100 pairs
	tenantsNs      float64
	heap           int64 // for 1 000 000 memberships
	cold           time.Duration
	sqliteWrites   float64
	pgWriteHalfP99 time.Duration
	replicaP99ms   float64
	atLeastNs      float64 // in-process; minimize_latency's is 100 ns
	atLeastHTTP    float64 // checks/s; minimize_latency's is 1 000
	feedWakeP99ms  float64
	consoleP99     time.Duration // the slowest console page's
	// the tenants section
	smallTenant, smallMember float64 // bytes
	tenants100kNs            float64
	coldSQLite, coldPostgres time.Duration // p99
	zipf                     float64       // checks/s; one tenant's is 10 000
	peakRSS                  int64         // the budget is 256 MiB
}

func (f figures) report() *Report {
	r := &Report{Ceiling: &Probe{Max: loadtest.Result{Throughput: f.ceilingMax, Latency: loadtest.Percentiles{P99: f.ceilingP99}}}}
	for _, db := range []string{SQLite, Postgres} {
		r.HTTP = append(r.HTTP,
			HTTPProbe{Database: db, Audit: "all", Route: RouteSingle, PerRequest: 1, Probe: Probe{
				Max:  loadtest.Result{Throughput: f.singleMax, Latency: loadtest.Percentiles{P99: f.singleP99}},
				Half: loadtest.Result{Rate: f.singleMax / 2, Latency: loadtest.Percentiles{P99: f.singleHalfP99}},
			}},
			HTTPProbe{Database: db, Audit: "all", Route: RouteBatch, PerRequest: 100, Probe: Probe{
				Max: loadtest.Result{Throughput: f.batchMax},
			}},
		)
		r.Cold = append(r.Cold, Cold{Database: db, Memberships: 1_000_000, FirstCheck: f.cold, HeapBytes: f.heap})
	}
	r.Writes = []WriteProbe{
		{Database: SQLite, Max: loadtest.Result{Throughput: f.sqliteWrites}},
		{Database: Postgres, Half: loadtest.Result{Latency: loadtest.Percentiles{P99: f.pgWriteHalfP99}}},
	}
	r.InProcess = &GoRun{Benchmarks: []gobench.Benchmark{{Name: TenantsBenchmark, Metrics: map[string]float64{"ns/op": f.tenantsNs}}}}
	r.InProcess.Benchmarks = append(r.InProcess.Benchmarks,
		gobench.Benchmark{Name: ConsistencyMinimizeLatency, Metrics: map[string]float64{"ns/op": 100}},
		gobench.Benchmark{Name: ConsistencyAtLeast, Metrics: map[string]float64{"ns/op": f.atLeastNs}})
	r.Consistency = &ConsistencyProbe{Database: SQLite,
		MinimizeLatency: ConsistencyRun{Max: loadtest.Result{Throughput: 1000}},
		AtLeast:         ConsistencyRun{Max: loadtest.Result{Throughput: f.atLeastHTTP}}}
	r.Replica = &GoRun{Benchmarks: []gobench.Benchmark{
		{Name: ReplicaBenchmark, N: 200, Metrics: map[string]float64{"p99-ms": f.replicaP99ms}},
		{Name: FeedWakeBenchmark, N: 200, Metrics: map[string]float64{"p99-ms": f.feedWakeP99ms}},
	}}
	r.Console = &ConsoleProbe{Roles: 10_000, Memberships: 100_000, Pages: []ConsolePage{
		{Name: "roles", Samples: 100, Latency: loadtest.Percentiles{P99: f.consoleP99 / 2}},
		{Name: "matrix", Samples: 100, Latency: loadtest.Percentiles{P99: f.consoleP99}},
	}}
	r.Tenants = &TenantsProbe{
		Go: &GoRun{Benchmarks: []gobench.Benchmark{
			{Name: TenantMemory10, Metrics: map[string]float64{"B/tenant": f.smallTenant}},
			{Name: TenantMemoryMembers, Metrics: map[string]float64{"B/membership": f.smallMember}},
			{Name: Tenants100k, Metrics: map[string]float64{"ns/op": f.tenants100kNs}},
		}},
		Cold: []ColdLoads{
			{Database: SQLite, Path: ColdInProcess, Tenants: 1_000_000, Loads: 1000, Latency: loadtest.Percentiles{P99: f.coldSQLite}},
			{Database: Postgres, Path: ColdInProcess, Tenants: 20_000, Loads: 1000, Latency: loadtest.Percentiles{P99: f.coldPostgres}},
		},
		Million: &MillionRun{Database: SQLite, Tenants: 1_000_000, ZipfS: 1.1, Budget: "256MiB", BudgetBytes: 256 << 20,
			Single: loadtest.Result{Throughput: 10_000}, Zipf: loadtest.Result{Throughput: f.zipf, Connections: 16}, PeakRSS: f.peakRSS},
	}
	return r
}

// met is a report that meets every target, some exactly at the bound.
var met = figures{
	ceilingMax: 20000, ceilingP99: 2 * time.Millisecond,
	singleMax: 10000, singleP99: 4 * time.Millisecond, singleHalfP99: 5 * time.Millisecond,
	batchMax: 1500, tenantsNs: 2000, heap: 300_000_000, cold: 5 * time.Second,
	sqliteWrites: 1000, pgWriteHalfP99: 20 * time.Millisecond, replicaP99ms: 100,
	atLeastNs: 110, atLeastHTTP: 900, feedWakeP99ms: 100,
	consoleP99:  MaxConsolePage - time.Microsecond,
	smallTenant: 4096, smallMember: 300, tenants100kNs: 2000,
	coldSQLite: 2 * time.Millisecond, coldPostgres: 5 * time.Millisecond,
	zipf: 8000, peakRSS: 256 << 20,
}

// missed misses every target just past its bound.
var missed = figures{
	ceilingMax: 20000, ceilingP99: 2 * time.Millisecond,
	singleMax: 9999, singleP99: 4*time.Millisecond + 1, singleHalfP99: 5*time.Millisecond + 1,
	batchMax: 1499, tenantsNs: 2001, heap: 300_000_001, cold: 5*time.Second + 1,
	sqliteWrites: 999, pgWriteHalfP99: 20*time.Millisecond + 1, replicaP99ms: 100.001,
	atLeastNs: 110.1, atLeastHTTP: 899, feedWakeP99ms: 100.001,
	consoleP99:  MaxConsolePage,
	smallTenant: 4097, smallMember: 300.1, tenants100kNs: 2001,
	coldSQLite: 2*time.Millisecond + 1, coldPostgres: 5*time.Millisecond + 1,
	zipf: 7999, peakRSS: 256<<20 + 1,
}

func statuses(vs []Verdict) []Status {
	out := make([]Status, len(vs))
	for i, v := range vs {
		out[i] = v.Status
	}
	return out
}

func TestTargets(t *testing.T) {
	const rows = 25 // 2 throughput, 2 p99 at 50 %, 2 saturation, 2 batch, in-process, bytes, 2 cold, writes, write p99, replica, at_least, feed wake, console; tenant bytes, membership bytes, check at 100 000, 2 small cold loads, Zipf throughput, RSS
	cases := []struct {
		name   string
		report *Report
		want   Status
	}{
		{"all met, some at the bound", met.report(), Met},
		{"all missed, just past the bound", missed.report(), Missed},
		{"nothing measured", &Report{Cold: []Cold{{Database: SQLite}}}, NotMeasured},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vs := tc.report.Targets()
			got := statuses(vs)
			if tc.want == NotMeasured {
				// Without figures there is no PostgreSQL cold row: it is
				// optional (time budget), SQLite's is not.
				if len(got) != rows-1 {
					t.Fatalf("%d verdicts, want %d: %+v", len(got), rows-1, vs)
				}
			} else if len(got) != rows {
				t.Fatalf("%d verdicts, want %d: %+v", len(got), rows, vs)
			}
			for i, s := range got {
				if s != tc.want {
					t.Errorf("verdict %d (%s on %s, %s) = %s, want %s", i, vs[i].Target, vs[i].Config, vs[i].Measured, s, tc.want)
				}
			}
		})
	}
}

func TestTargetFigures(t *testing.T) {
	vs := met.report().Targets()
	want := []struct{ measured, ratio string }{
		{"10 000 checks/s", "50 % of 20 000"},
		{"10 000 checks/s", "50 % of 20 000"},
		{"5.00 ms", "1.00× of the bound"},
		{"5.00 ms", "1.00× of the bound"},
		{"4.00 ms", "2.00× the ceiling's 2.00 ms"},
		{"4.00 ms", "2.00× the ceiling's 2.00 ms"},
		{"150 000 decisions/s", "1.00× of the bound"},
		{"150 000 decisions/s", "1.00× of the bound"},
		{"2.00 µs", "1.00× of the bound"},
		{"300 bytes", "1.00× of the bound"},
		{"5.00 s", "1.00× of the bound"},
		{"5.00 s", "1.00× of the bound"},
		{"1 000 writes/s", "1.00× of the bound"},
		{"20.0 ms", "1.00× of the bound"},
		{"100 ms", "1.00× of the bound"},
		{"in-process 110 ns vs 100 ns; HTTP 900 vs 1 000 checks/s", "in-process 1.10×, HTTP 0.90×"},
		{"100 ms", "1.00× of the bound"},
		{"300 ms", "1.00× of the bound"},
		{"4096 bytes", "1.00× of the bound"},
		{"300 bytes", "1.00× of the bound"},
		{"2.00 µs", "1.00× of the bound"},
		{"2.00 ms", "1.00× of the bound"},
		{"5.00 ms", "1.00× of the bound"},
		{"8 000 vs 10 000 checks/s", "80 % of one tenant's"},
		{"256 MiB", "1.00× of the budget"},
	}
	if len(vs) != len(want) {
		t.Fatalf("%d verdicts, want %d", len(vs), len(want))
	}
	for i, w := range want {
		if vs[i].Measured != w.measured || vs[i].Ratio != w.ratio {
			t.Errorf("verdict %d (%s): %q, %q; want %q, %q", i, vs[i].Target, vs[i].Measured, vs[i].Ratio, w.measured, w.ratio)
		}
	}
}

// TestAtLeastVerdict judges at_least against minimize_latency on the
// figures there are: met only when both the in-process and the HTTP figures
// are within their bounds, missed as soon as one is not.
func TestAtLeastVerdict(t *testing.T) {
	inProcess := func(atLeastNs float64) *GoRun {
		return &GoRun{Benchmarks: []gobench.Benchmark{
			{Name: ConsistencyMinimizeLatency, Metrics: map[string]float64{"ns/op": 100}},
			{Name: ConsistencyAtLeast, Metrics: map[string]float64{"ns/op": atLeastNs}},
		}}
	}
	httpProbe := func(atLeast float64) *ConsistencyProbe {
		return &ConsistencyProbe{MinimizeLatency: ConsistencyRun{Max: loadtest.Result{Throughput: 1000}},
			AtLeast: ConsistencyRun{Max: loadtest.Result{Throughput: atLeast}}}
	}
	cases := []struct {
		name     string
		report   Report
		want     Status
		measured string
	}{
		{"both within", Report{InProcess: inProcess(105), Consistency: httpProbe(950)}, Met,
			"in-process 105 ns vs 100 ns; HTTP 950 vs 1 000 checks/s"},
		{"in-process over", Report{InProcess: inProcess(150), Consistency: httpProbe(1000)}, Missed,
			"in-process 150 ns vs 100 ns; HTTP 1 000 vs 1 000 checks/s"},
		{"HTTP under", Report{InProcess: inProcess(100), Consistency: httpProbe(800)}, Missed,
			"in-process 100 ns vs 100 ns; HTTP 800 vs 1 000 checks/s"},
		{"only in-process, within", Report{InProcess: inProcess(100)}, NotMeasured, "in-process 100 ns vs 100 ns"},
		{"only HTTP, under", Report{Consistency: httpProbe(500)}, Missed, "HTTP 500 vs 1 000 checks/s"},
		{"nothing", Report{}, NotMeasured, "—"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.report.atLeastVerdict()
			if v.Status != tc.want || v.Measured != tc.measured {
				t.Errorf("verdict %s, %q; want %s, %q", v.Status, v.Measured, tc.want, tc.measured)
			}
		})
	}
}
