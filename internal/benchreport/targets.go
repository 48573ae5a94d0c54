package benchreport

import (
	"fmt"
	"slices"
	"strings"
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
	// at_least on a current replica: its in-process check may take at most
	// 10 % longer than minimize_latency's, and its HTTP throughput must be
	// at least 90 % of minimize_latency's (the variation between two runs
	// of the same thing on a shared VM is about that).
	maxAtLeastInProcess = 1.10
	minAtLeastHTTP      = 0.90
	maxFeedWakeP99      = 100 * time.Millisecond
	// MaxConsolePage is the bound the warm p99 of every admin console
	// page must stay under.
	MaxConsolePage = 300 * time.Millisecond
)

// The in-process benchmarks of a check's consistency demand on a current
// replica: no receipt, a minimize_latency receipt, an at_least receipt of
// the tenant's current revision.
const (
	ConsistencyNone            = "BenchmarkHasPermission/consistency/none"
	ConsistencyMinimizeLatency = "BenchmarkHasPermission/consistency/minimize_latency"
	ConsistencyAtLeast         = "BenchmarkHasPermission/consistency/at_least"
)

// FeedWakeBenchmark is the change feed long-poll wake-up benchmark.
const FeedWakeBenchmark = "BenchmarkChangeFeedWake"

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
	out = append(out, r.atLeastVerdict())
	{
		const target = "change feed long-poll wakes ≤ 100 ms after a commit"
		cfg := "write on A answered → B's long poll answers"
		if d, n, ok := r.FeedWakeP99(); ok {
			out = append(out, Verdict{target, cfg + fmt.Sprintf(", p99 of %d wake-ups", n), Duration(d),
				Ratio(float64(d)/float64(maxFeedWakeP99)) + " of the bound", verdict(d <= maxFeedWakeP99)})
		} else {
			missing(target, cfg)
		}
	}
	out = append(out, r.consoleVerdict())
	out = append(out, r.tenantsVerdicts()...)
	return out
}

// The in-process benchmarks of the tenants section.
const (
	TenantMemory10      = "BenchmarkTenantMemory/rules=10"
	TenantMemoryMembers = "BenchmarkTenantMemory/members"
	Tenants100k         = "BenchmarkHasPermission/tenants/100000"
)

// The bounds of the many-tenants targets.
const (
	maxBytesPerSmallTenant = 4 << 10
	maxBytesPerSmallMember = 300
	maxCheckAt100kTenants  = 2 * time.Microsecond
	maxColdSQLiteP99       = 2 * time.Millisecond
	maxColdPostgresP99     = 5 * time.Millisecond
	minZipfShare           = 0.80
)

// tenantsVerdicts judges the figures of the tenants section.
func (r *Report) tenantsVerdicts() []Verdict {
	var out []Verdict
	var g *GoRun
	if r.Tenants != nil {
		g = r.Tenants.Go
	}
	metric := func(target, bench, unit, cfg string, bound float64, format func(float64) string) {
		b, ok := g.Get(bench)
		v, has := b.Metrics[unit]
		if !ok || !has || v <= 0 {
			out = append(out, Verdict{Target: target, Config: cfg, Measured: "—", Status: NotMeasured})
			return
		}
		out = append(out, Verdict{target, cfg, format(v), Ratio(v/bound) + " of the bound", verdict(v <= bound)})
	}
	bytes := func(v float64) string { return fmt.Sprintf("%.0f bytes", v) }
	metric("≤ 4 KB per loaded tenant of 10 rules", TenantMemory10, "B/tenant",
		"`"+TenantMemory10+"`: 3 roles, 5 grants, 5 memberships; live heap", maxBytesPerSmallTenant, bytes)
	metric("+ ≤ 300 bytes per membership of a small tenant", TenantMemoryMembers, "B/membership",
		"`"+TenantMemoryMembers+"`: 40 more memberships (new users) per 10-rule tenant", maxBytesPerSmallMember, bytes)
	metric("check ≤ 2 µs at 100 000 loaded tenants", Tenants100k, "ns/op", "`"+Tenants100k+"`",
		float64(maxCheckAt100kTenants), func(v float64) string { return Duration(time.Duration(v)) })
	for _, x := range []struct {
		db    string
		bound time.Duration
	}{{SQLite, maxColdSQLiteP99}, {Postgres, maxColdPostgresP99}} {
		target := fmt.Sprintf("cold load of a small tenant p99 ≤ %s on %s", Duration(x.bound), x.db)
		c, ok := r.Tenants.ColdLoad(x.db, ColdInProcess)
		if !ok || c.Loads == 0 {
			out = append(out, Verdict{Target: target, Config: "in-process first check", Measured: "—", Status: NotMeasured})
			continue
		}
		cfg := fmt.Sprintf("in-process first check, %s tenants of %s in the database (p50 %s)", Count(c.Loads), Count(c.Tenants), Duration(c.Latency.P50))
		out = append(out, Verdict{target, cfg, Duration(c.Latency.P99),
			Ratio(float64(c.Latency.P99)/float64(x.bound)) + " of the bound", verdict(c.Latency.P99 <= x.bound)})
	}
	var m *MillionRun
	if r.Tenants != nil {
		m = r.Tenants.Million
	}
	{
		const target = "1 000 000 tenants, Zipf traffic: throughput ≥ 80 % of one tenant's"
		if m == nil || m.Single.Throughput <= 0 {
			out = append(out, Verdict{Target: target, Config: "HTTP checks", Measured: "—", Status: NotMeasured})
		} else {
			share := m.Zipf.Throughput / m.Single.Throughput
			cfg := fmt.Sprintf("%s tenants on %s, Zipf s=%.2f, %d connections, budget %s", Count(m.Tenants), m.Database, m.ZipfS, m.Zipf.Connections, m.Budget)
			out = append(out, Verdict{target, cfg, fmt.Sprintf("%s vs %s checks/s", Rate(m.Zipf.Throughput), Rate(m.Single.Throughput)),
				Percent(share) + " of one tenant's", verdict(share >= minZipfShare)})
		}
	}
	{
		const target = "1 000 000 tenants, Zipf traffic: RSS under the memory budget"
		if m == nil || m.PeakRSS <= 0 || m.BudgetBytes <= 0 {
			out = append(out, Verdict{Target: target, Config: "server's peak RSS", Measured: "—", Status: NotMeasured})
		} else {
			cfg := fmt.Sprintf("server's peak RSS (VmHWM), AUTH_TENANT_MEMORY_BUDGET=%s", m.Budget)
			out = append(out, Verdict{target, cfg, Bytes(m.PeakRSS),
				Ratio(float64(m.PeakRSS)/float64(m.BudgetBytes)) + " of the budget", verdict(m.PeakRSS <= m.BudgetBytes)})
		}
	}
	return out
}

// consoleVerdict judges the admin console's slowest page: met when every
// page's warm p99 is under MaxConsolePage.
func (r *Report) consoleVerdict() Verdict {
	const target = "every console page < 300 ms with 10 000 roles and 100 000 members"
	slow, ok := r.Console.Slowest()
	if !ok {
		return Verdict{Target: target, Config: "the slowest page's warm p99", Measured: "—", Status: NotMeasured}
	}
	c := r.Console
	cfg := fmt.Sprintf("%s roles, %s memberships; slowest page: %s, p99 of %d warm requests",
		Count(c.Roles), Count(c.Memberships), slow.Name, slow.Samples)
	return Verdict{target, cfg, Duration(slow.Latency.P99),
		Ratio(float64(slow.Latency.P99)/float64(MaxConsolePage)) + " of the bound", verdict(slow.Latency.P99 < MaxConsolePage)}
}

// AtLeastInProcess returns the in-process check times with an at_least and
// with a minimize_latency receipt, and their ratio.
func (r *Report) AtLeastInProcess() (atLeast, minLatency time.Duration, ratio float64, ok bool) {
	al, ok1 := r.InProcess.Get(ConsistencyAtLeast)
	ml, ok2 := r.InProcess.Get(ConsistencyMinimizeLatency)
	if !ok1 || !ok2 || al.Metrics["ns/op"] <= 0 || ml.Metrics["ns/op"] <= 0 {
		return 0, 0, 0, false
	}
	return time.Duration(al.Metrics["ns/op"]), time.Duration(ml.Metrics["ns/op"]), al.Metrics["ns/op"] / ml.Metrics["ns/op"], true
}

// AtLeastHTTP returns the ratio of the HTTP closed-loop throughput of
// at_least checks to minimize_latency ones.
func (r *Report) AtLeastHTTP() (float64, bool) {
	c := r.Consistency
	if c == nil || c.MinimizeLatency.Max.Throughput <= 0 {
		return 0, false
	}
	return c.AtLeast.Max.Throughput / c.MinimizeLatency.Max.Throughput, true
}

// atLeastVerdict judges at_least on a current replica against
// minimize_latency: met when both the in-process and the HTTP figures are
// within their bounds, missed as soon as one is not.
func (r *Report) atLeastVerdict() Verdict {
	v := Verdict{Target: "at_least on a current replica ≈ minimize_latency",
		Config: "in-process check time ≤ 1.10×, HTTP checks/s ≥ 0.90× minimize_latency's", Status: NotMeasured}
	var measured, ratios []string
	var ok []bool
	if al, ml, ratio, has := r.AtLeastInProcess(); has {
		measured = append(measured, fmt.Sprintf("in-process %s vs %s", Duration(al), Duration(ml)))
		ratios = append(ratios, "in-process "+Ratio(ratio))
		ok = append(ok, ratio <= maxAtLeastInProcess)
	}
	if ratio, has := r.AtLeastHTTP(); has {
		c := r.Consistency
		measured = append(measured, fmt.Sprintf("HTTP %s vs %s checks/s", Rate(c.AtLeast.Max.Throughput), Rate(c.MinimizeLatency.Max.Throughput)))
		ratios = append(ratios, "HTTP "+Ratio(ratio))
		ok = append(ok, ratio >= minAtLeastHTTP)
	}
	v.Measured, v.Ratio = "—", strings.Join(ratios, ", ")
	if len(measured) > 0 {
		v.Measured = strings.Join(measured, "; ")
	}
	switch {
	case slices.Contains(ok, false):
		v.Status = Missed
	case len(ok) == 2:
		v.Status = Met
	}
	return v
}

// FeedWakeP99 returns the p99 of the change feed's long-poll wake-up and
// the number of wake-ups it is taken over.
func (r *Report) FeedWakeP99() (time.Duration, int64, bool) {
	b, ok := r.Replica.Get(FeedWakeBenchmark)
	if !ok {
		return 0, 0, false
	}
	v, ok := b.Metrics["p99-ms"]
	if !ok {
		return 0, 0, false
	}
	return time.Duration(v * float64(time.Millisecond)), b.N, true
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
