package benchreport

import (
	"fmt"
	"time"
)

// Status is a target's verdict.
type Status string

// The verdicts.
const (
	Met         Status = "met"
	Missed      Status = "missed"
	NotMeasured Status = "not measured"
)

// Verdict is one target judged against a run's figures.
type Verdict struct {
	// Target is the spec's wording of the target.
	Target string
	// Config is what was measured for it.
	Config string
	// Measured is the figure, formatted.
	Measured string
	// Ratio is the figure relative to its reference (the ceiling or the
	// bound), formatted; empty when there is none.
	Ratio  string
	Status Status
}

// The bounds of the performance targets.
const (
	minCeilingShare      = 0.5
	maxP99AtHalf         = 5 * time.Millisecond
	maxP99OverCeiling    = 2.0
	minBatchDecisions    = 150_000
	maxCheckAt10kTenants = 2 * time.Microsecond
	maxBytesPerMember    = 300
	maxColdCheck         = 5 * time.Second
	minSQLiteWrites      = 1000
	maxPostgresWriteP99  = 20 * time.Millisecond
	maxReplicaP99        = 100 * time.Millisecond
)

// TenantsBenchmark is the in-process benchmark of the 10 000-tenant target.
const TenantsBenchmark = "BenchmarkHasPermission/tenants/10000"

// ReplicaBenchmark is the replica propagation benchmark.
const ReplicaBenchmark = "BenchmarkReplicaPropagation"

func verdict(ok bool) Status {
	if ok {
		return Met
	}
	return Missed
}

// Targets judges the report's figures against the performance targets, in
// the spec's order; a target without its figure is NotMeasured.
func (r *Report) Targets() []Verdict {
	var out []Verdict
	missing := func(target, config string) {
		out = append(out, Verdict{Target: target, Config: config, Measured: "—", Status: NotMeasured})
	}
	for _, db := range []string{SQLite, Postgres} {
		const target = "single-check throughput ≥ 50 % of the ceiling"
		cfg := db + ", decision audit all"
		p, ok := r.Find(db, "all", RouteSingle)
		if !ok || r.Ceiling == nil || r.Ceiling.Max.Throughput == 0 {
			missing(target, cfg)
			continue
		}
		share := p.Probe.Max.Throughput / r.Ceiling.Max.Throughput
		out = append(out, Verdict{target, cfg, Rate(p.Probe.Max.Throughput) + " checks/s",
			Percent(share) + " of " + Rate(r.Ceiling.Max.Throughput), verdict(share >= minCeilingShare)})
	}
	for _, db := range []string{SQLite, Postgres} {
		const target = "p99 ≤ 5 ms at 50 % of the max rate"
		cfg := db + ", single checks, audit all"
		p, ok := r.Find(db, "all", RouteSingle)
		if !ok {
			missing(target, cfg)
			continue
		}
		p99 := p.Probe.Half.Latency.P99
		out = append(out, Verdict{target, cfg + fmt.Sprintf(", %s/s", Rate(p.Probe.Half.Rate)), Duration(p99),
			Ratio(float64(p99)/float64(maxP99AtHalf)) + " of the bound", verdict(p99 <= maxP99AtHalf)})
	}
	for _, db := range []string{SQLite, Postgres} {
		const target = "p99 at saturation ≤ 2× the ceiling's"
		cfg := db + ", single checks, audit all"
		p, ok := r.Find(db, "all", RouteSingle)
		if !ok || r.Ceiling == nil || r.Ceiling.Max.Latency.P99 == 0 {
			missing(target, cfg)
			continue
		}
		ratio := float64(p.Probe.Max.Latency.P99) / float64(r.Ceiling.Max.Latency.P99)
		out = append(out, Verdict{target, cfg, Duration(p.Probe.Max.Latency.P99),
			Ratio(ratio) + " the ceiling's " + Duration(r.Ceiling.Max.Latency.P99), verdict(ratio <= maxP99OverCeiling)})
	}
	for _, db := range []string{SQLite, Postgres} {
		const target = "batch ≥ 150 000 decisions/s"
		cfg := db + ", audit all"
		p, ok := r.Find(db, "all", RouteBatch)
		if !ok {
			missing(target, cfg)
			continue
		}
		d := p.Probe.Max.Throughput * float64(p.PerRequest)
		out = append(out, Verdict{target, cfg + fmt.Sprintf(", %d pairs per request", p.PerRequest), Rate(d) + " decisions/s",
			Ratio(d/minBatchDecisions) + " of the bound", verdict(d >= minBatchDecisions)})
	}
	{
		const target = "in-process check ≤ 2 µs at 10 000 tenants"
		cfg := "`" + TenantsBenchmark + "`"
		if b, ok := r.InProcess.Get(TenantsBenchmark); ok && b.Metrics["ns/op"] > 0 {
			ns := time.Duration(b.Metrics["ns/op"])
			out = append(out, Verdict{target, cfg, Duration(ns),
				Ratio(float64(ns)/float64(maxCheckAt10kTenants)) + " of the bound", verdict(ns <= maxCheckAt10kTenants)})
		} else {
			missing(target, cfg)
		}
	}
	{
		const target = "≤ 300 bytes per membership"
		c, ok := r.cold(SQLite)
		if ok && c.HeapBytes > 0 && c.Memberships > 0 {
			per := float64(c.HeapBytes) / float64(c.Memberships)
			out = append(out, Verdict{target, fmt.Sprintf("%s memberships (+ %s grants), live heap", Count(c.Memberships), Count(c.Grants)),
				fmt.Sprintf("%.0f bytes", per), Ratio(per/maxBytesPerMember) + " of the bound", verdict(per <= maxBytesPerMember)})
		} else {
			missing(target, "1 000 000 memberships, live heap")
		}
	}
	for _, db := range []string{SQLite, Postgres} {
		const target = "cold 1 000 000-membership tenant ≤ 5 s"
		c, ok := r.cold(db)
		if !ok || c.FirstCheck <= 0 {
			if db == SQLite {
				missing(target, db)
			}
			continue
		}
		out = append(out, Verdict{target, db + ", first check after start", Duration(c.FirstCheck),
			Ratio(float64(c.FirstCheck)/float64(maxColdCheck)) + " of the bound", verdict(c.FirstCheck <= maxColdCheck)})
	}
	{
		const target = "writes ≥ 1 000/s on SQLite"
		w, ok := r.write(SQLite)
		if ok {
			out = append(out, Verdict{target, fmt.Sprintf("grant/revoke, %d connections", w.Max.Connections), Rate(w.Max.Throughput) + " writes/s",
				Ratio(w.Max.Throughput/minSQLiteWrites) + " of the bound", verdict(w.Max.Throughput >= minSQLiteWrites)})
		} else {
			missing(target, "grant/revoke")
		}
	}
	{
		const target = "write p99 ≤ 20 ms on PostgreSQL"
		w, ok := r.write(Postgres)
		if ok {
			p99 := w.Half.Latency.P99
			out = append(out, Verdict{target, fmt.Sprintf("at 50 %% of the max (%s/s); %s at saturation", Rate(w.Half.Rate), Duration(w.Max.Latency.P99)),
				Duration(p99), Ratio(float64(p99)/float64(maxPostgresWriteP99)) + " of the bound", verdict(p99 <= maxPostgresWriteP99)})
		} else {
			missing(target, "grant/revoke")
		}
	}
	{
		const target = "replica propagation p99 ≤ 100 ms"
		cfg := "write on A → B answers"
		if b, ok := r.Replica.Get(ReplicaBenchmark); ok {
			if v, ok := b.Metrics["p99-ms"]; ok {
				d := time.Duration(v * float64(time.Millisecond))
				out = append(out, Verdict{target, cfg + fmt.Sprintf(", %d changes", b.N), Duration(d),
					Ratio(float64(d)/float64(maxReplicaP99)) + " of the bound", verdict(d <= maxReplicaP99)})
			} else {
				missing(target, cfg)
			}
		} else {
			missing(target, cfg)
		}
	}
	return out
}

func (r *Report) cold(db string) (Cold, bool) {
	for _, c := range r.Cold {
		if c.Database == db {
			return c, true
		}
	}
	return Cold{}, false
}

func (r *Report) write(db string) (WriteProbe, bool) {
	for _, w := range r.Writes {
		if w.Database == db {
			return w, true
		}
	}
	return WriteProbe{}, false
}
