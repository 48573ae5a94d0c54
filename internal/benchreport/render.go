package benchreport

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ourway/auth/internal/loadtest"
)

// skipMarker keeps the docs test (tests/docs) from running a command
// block of the report.
const skipMarker = "<!-- example: skip a benchmark run takes minutes; make bench runs them -->"

// Render writes the report as Markdown.
func (r *Report) Render(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cmd := func(lines ...string) {
		p("%s\n```sh\n%s\n```\n\n", skipMarker, strings.Join(lines, "\n"))
	}

	p("# Benchmarks\n\n")
	p("This file is written by `make bench` (`cmd/auth-bench`); do not edit it by hand. Explanations\n")
	p("of the figures belong in %s, which the report includes at the end.\n\n", r.notesRef())
	if r.Quick {
		p("**Smoke run (`-quick`)**: phases are much shorter than a full run's; do not compare these\nfigures with a full run's.\n\n")
	}
	m := r.Machine
	p("| machine | |\n|---|---|\n")
	p("| CPU | %s, %d cores |\n", m.CPU, m.Cores)
	p("| kernel | %s |\n", m.Kernel)
	p("| Go | %s |\n", m.GoVersion)
	p("| commit | %s |\n", m.Commit)
	p("| date | %s |\n", m.Date.UTC().Format("2006-01-02 15:04 MST"))
	if m.Wall > 0 {
		p("| whole run | %s |\n", m.Wall.Round(time.Second))
	}
	if m.LoadStart != "" {
		p("| load average (1, 5, 15 min) | %s at the start, %s at the end |\n", m.LoadStart, m.LoadEnd)
	}
	p("\n")
	p("Everything runs on this one machine over loopback: the load generator shares the cores with the\n")
	p("server, as it does with the ceiling, so the ratios to the ceiling are the figures to compare\n")
	p("across machines. On a VM shared with other jobs the figures vary by about ±30 %% between runs;\n")
	p("a load average above the core count (table above) means other jobs competed for the CPU.\n")
	p("Reproduce the whole report with:\n\n")
	cmd("make bench")

	r.renderTargets(p)
	r.renderMethod(p, cmd)
	r.renderCeiling(p)
	r.renderHTTP(p)
	r.renderWrites(p)
	r.renderConsistency(p, cmd)
	r.renderInProcess(p, cmd)
	r.renderCold(p)
	r.renderReplica(p, cmd)
	r.renderFeedWake(p)
	r.renderConsole(p, cmd)
	r.renderTenants(p, cmd)
	r.renderOthers(p, cmd)

	if len(r.Skipped) > 0 {
		p("## Not measured in this run\n\n")
		for _, s := range r.Skipped {
			p("- %s\n", s)
		}
		p("\n")
	}
	p("## Notes\n\n")
	p("<!-- The text below is %s, included verbatim: write explanations of missed\n", r.NotesPath)
	p("     targets there (with profile evidence); regenerating the report keeps them. -->\n\n")
	if notes := strings.TrimSpace(r.Notes); notes != "" {
		p("%s\n", notes)
	} else {
		p("No notes yet: explanations of missed targets, with profile evidence, go in\n%s.\n", r.notesRef())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// notesRef is a link to the notes file when there are notes, else its
// name (a link to a file that does not exist yet would be broken).
func (r *Report) notesRef() string {
	if strings.TrimSpace(r.Notes) == "" {
		return "`" + r.NotesPath + "` (next to this file)"
	}
	return fmt.Sprintf("[%s](%s)", r.NotesPath, r.NotesPath)
}

type printer func(format string, args ...any)

func (r *Report) renderTargets(p printer) {
	p("## Targets\n\n")
	p("Each target of the performance spec, judged from this run's figures (below).\n\n")
	p("| target | measured on | figure | ratio | verdict |\n|---|---|---|---|---|\n")
	for _, v := range r.Targets() {
		verdict := string(v.Status)
		if v.Status == Missed {
			verdict = "**missed**"
		}
		ratio := v.Ratio
		if ratio == "" {
			ratio = "—"
		}
		p("| %s | %s | %s | %s | %s |\n", v.Target, v.Config, v.Measured, ratio, verdict)
	}
	p("\n")
}

func (r *Report) renderMethod(p printer, cmd func(...string)) {
	me := r.Method
	if me.Connections == 0 {
		return
	}
	p("## Method\n\n")
	p("- **Load**: a Go load generator inside the harness (`internal/loadtest`). The **max** is a\n")
	p("  closed loop on [vegeta](https://github.com/tsenart/vegeta) v12: %d keep-alive connections,\n", me.Connections)
	p("  each sending its next request as soon as the last is answered (as `wrk -c%d`), for %s after\n", me.Connections, me.MaxPhase)
	p("  a %s warm-up; its throughput is correct answers per second, and its latencies are the\n", me.Warmup)
	p("  **saturation** figures. Then two open loops send at a constant arrival rate of **50 %%** and\n")
	p("  **85 %%** of that max for %s each: a schedule over keep-alive connections opened beforehand\n", me.OpenPhase)
	p("  (one per 250 requests/s, 16 to 256), each sending its share at fixed times whether or not\n")
	p("  earlier requests are answered.\n")
	p("- **Latency** percentiles are exact (nearest rank over every request of the run). A request is\n")
	p("  timed from its send to the end of its answer, except when its connection was still busy with\n")
	p("  an earlier answer at the time it was due: then from the time it was due, so a server that\n")
	p("  falls behind is charged with the whole wait (no coordinated omission), while the generator's\n")
	p("  own lateness in waking up is not. Generator and server share the cores: at 85 %% of a high\n")
	p("  max they may not keep up together, and the ceiling's row shows where that happens for the\n")
	p("  generator with a server that does nothing.\n")
	p("- **Errors**: a failed request, an answer other than 2xx, and a 2xx answer whose body is wrong\n")
	p("  (a decision that differs from the generated tenant's, a wrong permission list, a write that\n")
	p("  answers `false`) each count as an error; the tables show them.\n")
	p("- **Tenant**: %s, written straight into a fresh database (SQLite file, or a PostgreSQL\n", me.Tenant)
	p("  database created and dropped by the harness) before the server starts. Requests rotate over\n")
	p("  random pairs of a user and a permission: every other pair is one the user holds, the others\n")
	p("  are random (almost always denied). A batch check asks %d pairs in one `POST /api/v2/check`.\n", me.BatchSize)
	p("- **Server**: the `auth-server` binary as built by `make build`, one process per configuration,\n")
	p("  with these settings (production mode, so every stored audit record is also logged, to a file):\n\n")
	for _, e := range me.ServerEnv {
		p("  - `%s`\n", e)
	}
	p("\n")
	p("- **Ceiling**: a bare `net/http` server answering `{\"result\":true}` as JSON (`internal/ceiling`),\n")
	p("  started by the harness as a process of its own and measured exactly like the service, in the\n")
	p("  same run, with the same generator.\n\n")
	if me.Command != "" {
		p("One section of the report alone (`-only ceiling,http,writes,consistency,inprocess,cold,replica,console,tenants`, comma-separated):\n\n")
		cmd(me.Command)
	}
}

func (r *Report) renderCeiling(p printer) {
	if r.Ceiling == nil {
		return
	}
	c := r.Ceiling
	p("## The ceiling: a bare net/http server\n\n")
	p("| max (req/s) | p99 at saturation | at 50 %%: p50 / p90 / p99 / p99.9 | at 85 %%: p50 / p90 / p99 / p99.9 | errors |\n")
	p("|---|---|---|---|---|\n")
	p("| %s | %s | %s | %s | %s |\n\n", Rate(c.Max.Throughput), Duration(c.Max.Latency.P99),
		pcts(c.Half), pcts(c.High), errs(c.Errors(), c.Requests()))
}

func pcts(res loadtest.Result) string {
	l := res.Latency
	return fmt.Sprintf("%s / %s / %s / %s", Duration(l.P50), Duration(l.P90), Duration(l.P99), Duration(l.P999))
}

func errs(n, of int) string {
	if n == 0 {
		return fmt.Sprintf("0 of %s", Count(of))
	}
	return fmt.Sprintf("**%s** of %s", Count(n), Count(of))
}

// routeName is how a route appears in the tables.
func routeName(route string, per int) string {
	switch route {
	case RouteSingle:
		return "`GET /api/has_permission/{user}/{perm}`"
	case RouteBatch:
		return fmt.Sprintf("`POST /api/v2/check` (%d pairs)", per)
	case RouteUserPermissions:
		return "`GET /api/user_permissions/{user}`"
	}
	return route
}

func (r *Report) renderHTTP(p printer) {
	if len(r.HTTP) == 0 {
		return
	}
	var cmax, cp99 float64
	if r.Ceiling != nil {
		cmax, cp99 = r.Ceiling.Max.Throughput, float64(r.Ceiling.Max.Latency.P99)
	}
	p("## HTTP checks\n\n")
	p("Throughput at saturation (closed loop). *decisions/s* is requests/s times the decisions per\n")
	p("request; the ratios compare requests/s and p99 with the ceiling's (not for batches, whose\n")
	p("requests each carry %d decisions).\n\n", r.Method.BatchSize)
	p("| database | decision audit | route | max (req/s) | decisions/s | max / ceiling | p99 at saturation | p99 / ceiling's |\n")
	p("|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.HTTP {
		mx := h.Probe.Max
		share, slow := "—", "—"
		if cmax > 0 && h.PerRequest == 1 {
			share = Percent(mx.Throughput / cmax)
		}
		if cp99 > 0 && h.PerRequest == 1 {
			slow = Ratio(float64(mx.Latency.P99) / cp99)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", h.Database, h.Audit, routeName(h.Route, h.PerRequest),
			Rate(mx.Throughput), Rate(mx.Throughput*float64(h.PerRequest)), share, Duration(mx.Latency.P99), slow)
	}
	p("\nLatency under an open loop at 50 %% and 85 %% of each max:\n\n")
	p("| database | decision audit | route | 50 %%: rate | p50 / p90 / p99 / p99.9 | 85 %%: rate | p50 / p90 / p99 / p99.9 | errors |\n")
	p("|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.HTTP {
		p("| %s | %s | %s | %s/s | %s | %s/s | %s | %s |\n", h.Database, h.Audit, routeName(h.Route, h.PerRequest),
			Rate(h.Probe.Half.Rate), pcts(h.Probe.Half), Rate(h.Probe.High.Rate), pcts(h.Probe.High), errs(h.Probe.Errors(), h.Probe.Requests()))
	}
	p("\n")
	r.renderErrorSamples(p)
}

func (r *Report) renderErrorSamples(p printer) {
	var lines []string
	add := func(what string, res loadtest.Result) {
		for _, s := range res.ErrorSamples {
			lines = append(lines, fmt.Sprintf("- %s: `%s`", what, s))
		}
	}
	for _, h := range r.HTTP {
		what := fmt.Sprintf("%s, audit %s, %s", h.Database, h.Audit, h.Route)
		add(what+", max", h.Probe.Max)
		add(what+", 50 %", h.Probe.Half)
		add(what+", 85 %", h.Probe.High)
	}
	for _, wp := range r.Writes {
		add(wp.Database+" writes, max", wp.Max)
		add(wp.Database+" writes, 50 %", wp.Half)
	}
	if len(lines) == 0 {
		return
	}
	p("Errors seen (up to three distinct ones per run):\n\n%s\n\n", strings.Join(lines, "\n"))
}

func (r *Report) renderWrites(p printer) {
	if len(r.Writes) == 0 {
		return
	}
	p("## Writes\n\n")
	p("Pairs of `POST /api/permission/{role}/{perm}` and `DELETE` of the same grant (each a transaction\n")
	p("that changes the rule, bumps the tenant's version and commits its audit record with it),\n")
	p("decision audit `all`. Closed loop, then an open loop at 50 %% of its throughput:\n\n")
	p("| database | connections | writes/s | p50 / p99 at saturation | 50 %%: rate | p50 / p90 / p99 / p99.9 | errors |\n")
	p("|---|---|---|---|---|---|---|\n")
	for _, wp := range r.Writes {
		p("| %s | %d | %s | %s / %s | %s/s | %s | %s |\n", wp.Database, wp.Max.Connections, Rate(wp.Max.Throughput),
			Duration(wp.Max.Latency.P50), Duration(wp.Max.Latency.P99), Rate(wp.Half.Rate), pcts(wp.Half),
			errs(wp.Max.Errors+wp.Half.Errors, wp.Max.Requests+wp.Half.Requests))
	}
	p("\n")
}

func (r *Report) renderConsistency(p printer, cmd func(...string)) {
	c := r.Consistency
	_, _, _, inProcess := r.AtLeastInProcess()
	if c == nil && !inProcess {
		return
	}
	p("## Consistency: at_least on a current replica\n\n")
	p("What a read with `consistency=at_least:<n>` costs when the replica already holds revision n (a\n")
	p("client with session consistency after its own write has arrived), against `minimize_latency`.\n\n")
	if inProcess {
		p("In-process (`BenchmarkHasPermission/consistency`, the tenant of `grants/1000`, in the table of\n")
		p("the in-process section): the same checks through a context without a receipt, with a\n")
		p("`minimize_latency` receipt and with an `at_least` receipt of the tenant's current revision.\n\n")
		p("| read | time/op | B/op | allocs/op | / minimize_latency |\n|---|---|---|---|---|\n")
		ml, _ := r.InProcess.Get(ConsistencyMinimizeLatency)
		for _, x := range []struct{ name, bench string }{
			{"no receipt", ConsistencyNone},
			{"`minimize_latency`", ConsistencyMinimizeLatency},
			{"`at_least:<current>`", ConsistencyAtLeast},
		} {
			b, ok := r.InProcess.Get(x.bench)
			if !ok {
				continue
			}
			p("| %s | %s | %.0f | %.0f | %s |\n", x.name, Duration(time.Duration(b.Metrics["ns/op"])),
				b.Metrics["B/op"], b.Metrics["allocs/op"], Ratio(b.Metrics["ns/op"]/ml.Metrics["ns/op"]))
		}
		p("\n")
	}
	if c == nil {
		return
	}
	p("Over HTTP: `GET /api/v2/check?user=…&permission=…&consistency=…` on %s, decision audit `%s`,\n", c.Database, c.Audit)
	p("the tenant of the HTTP checks at revision %d, the same random pairs for both modes, every answer\n", c.Revision)
	p("checked (the decision, and `data.revision` = %d). After a warm-up of both, closed loops of\n", c.Revision)
	p("each in %d alternating rounds (`minimize_latency`, `at_least`, `at_least`, `minimize_latency`, …),\n", c.Rounds)
	p("then open loops at one rate for both (half the `minimize_latency` max) in two alternating\n")
	p("rounds. Each mode's rounds are summed up as one: its correct answers over its summed time, its\n")
	p("percentiles over all its requests.\n\n")
	if c.Command != "" {
		cmd(c.Command)
	}
	p("| consistency | max (req/s) | p50 / p99 at saturation | open loop: rate | p50 / p90 / p99 / p99.9 | errors |\n")
	p("|---|---|---|---|---|---|\n")
	for _, x := range []struct {
		name string
		run  ConsistencyRun
	}{{"`minimize_latency`", c.MinimizeLatency}, {fmt.Sprintf("`at_least:%d`", c.Revision), c.AtLeast}} {
		p("| %s | %s | %s / %s | %s/s | %s | %s |\n", x.name, Rate(x.run.Max.Throughput),
			Duration(x.run.Max.Latency.P50), Duration(x.run.Max.Latency.P99), Rate(x.run.Open.Rate), pcts(x.run.Open),
			errs(x.run.Errors(), x.run.Requests()))
	}
	if ratio, ok := r.AtLeastHTTP(); ok {
		p("\n`at_least` / `minimize_latency`: throughput %s", Ratio(ratio))
		if ml := c.MinimizeLatency.Open.Latency.P99; ml > 0 {
			p(", p99 in the open loop %s", Ratio(float64(c.AtLeast.Open.Latency.P99)/float64(ml)))
		}
		p(".\n")
	}
	p("\n")
	var lines []string
	for _, x := range []struct {
		name string
		res  loadtest.Result
	}{{"minimize_latency, max", c.MinimizeLatency.Max}, {"minimize_latency, open", c.MinimizeLatency.Open},
		{"at_least, max", c.AtLeast.Max}, {"at_least, open", c.AtLeast.Open}} {
		for _, e := range x.res.ErrorSamples {
			lines = append(lines, fmt.Sprintf("- %s: `%s`", x.name, e))
		}
	}
	if len(lines) > 0 {
		p("Errors seen:\n\n%s\n\n", strings.Join(lines, "\n"))
	}
}

func (r *Report) renderInProcess(p printer, cmd func(...string)) {
	g := r.InProcess
	if g == nil {
		return
	}
	p("## In-process: the policy core\n\n")
	p("The policy package's own benchmarks (`policy/bench_test.go`), one tenant loaded from SQLite,\n")
	p("no HTTP, one goroutine; *memory* is the live heap the benchmark's log reports for its fixture.\n\n")
	cmd(g.Command)
	if g.Note != "" {
		p("%s\n\n", g.Note)
	}
	if len(g.Benchmarks) == 0 {
		return
	}
	p("| benchmark | time/op | B/op | allocs/op | memory |\n|---|---|---|---|---|\n")
	for _, b := range g.Benchmarks {
		p("| `%s` | %s | %.0f | %.0f | %s |\n", b.Name, Duration(time.Duration(b.Metrics["ns/op"])),
			b.Metrics["B/op"], b.Metrics["allocs/op"], memoryNote(b.Log))
	}
	p("\n")
}

// memoryNote picks the memory figures out of a policy benchmark's log line
// ("…; 50.0 MB in memory, 437 bytes per rule").
func memoryNote(log []string) string {
	for _, l := range log {
		if i := strings.Index(l, " in memory, "); i >= 0 {
			head := l[:i]
			if j := strings.LastIndex(head, "; "); j >= 0 {
				head = head[j+2:]
			}
			return head + ", " + l[i+len(" in memory, "):]
		}
	}
	return ""
}

func (r *Report) renderCold(p printer) {
	if len(r.Cold) == 0 {
		return
	}
	p("## Cold tenant\n\n")
	p("One tenant of many memberships written into a fresh database, then a fresh server. *first\n")
	p("check* is from sending the tenant's first `GET /api/has_permission` to its answer: the key\n")
	p("lookup, loading every rule of the tenant from the database into memory, and the check.\n")
	p("*second check* is the next one. *live heap* is measured in the harness: the growth of the Go\n")
	p("heap (after `runtime.GC`) of loading the same tenant with the policy package, the code the\n")
	p("server runs; *RSS* is the growth of the server process's resident memory (`VmRSS` of\n")
	p("`/proc/PID/status`) over the first check, garbage included.\n\n")
	p("| database | tenant | written in | server start | first check | second check | live heap | per membership | RSS growth |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Cold {
		per := "—"
		heap := "—"
		if c.HeapBytes > 0 && c.Memberships > 0 {
			heap = Bytes(c.HeapBytes)
			per = fmt.Sprintf("%.0f B", float64(c.HeapBytes)/float64(c.Memberships))
		}
		p("| %s | %s memberships, %s grants, %s users, %s roles | %s | %s | %s | %s | %s | %s | %s |\n",
			c.Database, Count(c.Memberships), Count(c.Grants), Count(c.Users), Count(c.Roles), Duration(c.Seed),
			Duration(c.Start), Duration(c.FirstCheck), Duration(c.SecondCheck), heap, per, Bytes(c.RSSBytes))
	}
	p("\n*per membership* divides the whole heap growth (grants included) by the memberships.\n")
	envs := map[string]bool{}
	var list []string
	for _, c := range r.Cold {
		for _, e := range c.Env {
			if !envs[e] {
				envs[e] = true
				list = append(list, "`"+e+"`")
			}
		}
	}
	sort.Strings(list)
	if len(list) > 0 {
		p("The cold servers ran with %s besides the common settings.\n", strings.Join(list, ", "))
	}
	p("\n")
}

func (r *Report) renderReplica(p printer, cmd func(...string)) {
	g := r.Replica
	if g == nil {
		return
	}
	p("## Replica propagation\n\n")
	p("`BenchmarkReplicaPropagation` (`tests/e2e`): two auth-server processes on one PostgreSQL\n")
	p("database and one Redis, `AUTH_SYNC_INTERVAL=1h` so that only pub/sub delivers; each change is a\n")
	p("grant (or its revoke) on replica A, timed until replica B's `has_permission` answers the new\n")
	p("decision (polled back to back).\n\n")
	cmd(g.Command)
	if g.Note != "" {
		p("%s\n\n", g.Note)
	}
	b, ok := g.Get(ReplicaBenchmark)
	if !ok {
		return
	}
	ms := func(unit string) string {
		v, ok := b.Metrics[unit]
		if !ok {
			return "—"
		}
		return Duration(time.Duration(v * float64(time.Millisecond)))
	}
	p("| %s changes | p50 | p99 |\n|---|---|---|\n", Count(int(b.N)))
	p("| write request sent on A → B answers the new decision | %s | %s |\n", ms("p50-ms"), ms("p99-ms"))
	p("| A's answer → B answers | %s | %s |\n", ms("after-ack-p50-ms"), ms("after-ack-p99-ms"))
	p("| the write on A alone | — | %s |\n\n", ms("write-p99-ms"))
}

func (r *Report) renderFeedWake(p printer) {
	b, ok := r.Replica.Get(FeedWakeBenchmark)
	if !ok {
		return
	}
	ms := func(unit string) string {
		v, ok := b.Metrics[unit]
		if !ok {
			return "—"
		}
		return Duration(time.Duration(v * float64(time.Millisecond)))
	}
	p("## Change feed: long-poll wake-up\n\n")
	p("`BenchmarkChangeFeedWake` (`tests/e2e`, in the command of the replica section): the same two\n")
	p("replicas, `AUTH_SYNC_INTERVAL=1h`. A consumer sends `GET /api/v2/changes?since=<latest>&wait=30s`\n")
	p("to replica B; once the request is written it is left on the server for a pause (at least 20 ms,\n")
	p("and at least ten times the p99 of the same request with `wait=0s`, timed first: B's time to read\n")
	p("the revision and the log, after which it is in its wait). A poll that answers during the pause\n")
	p("fails the run. Then a role's description is written on replica A (`PUT /api/v2/roles/{role}`),\n")
	p("and B's answer, which must hold the write's revision, is timed. Nothing here is asserted by time.\n\n")
	p("| %s wake-ups | p50 | p99 | max |\n|---|---|---|---|\n", Count(int(b.N)))
	p("| A's answer to the write → B's long poll answers | %s | %s | %s |\n", ms("p50-ms"), ms("p99-ms"), ms("max-ms"))
	p("| write sent on A → B's long poll answers | %s | %s | — |\n\n", ms("after-send-p50-ms"), ms("after-send-p99-ms"))
	p("Pause before each write: %s (no-wait poll p99 %s).", ms("pause-ms"), ms("nowait-p99-ms"))
	if n := b.Metrics["poll-first"]; n > 0 {
		p(" B's answer arrived before A's in %.0f of %s wake-ups (counted as 0).", n, Count(int(b.N)))
	}
	p("\n\n")
}

func (r *Report) renderConsole(p printer, cmd func(...string)) {
	c := r.Console
	if c == nil {
		return
	}
	p("## Admin console\n\n")
	p("The console's pages (`/console`, rendered on the server) on one tenant of %s roles,\n", Count(c.Roles))
	p("%s users, %s permissions, %s grants, %s memberships (the largest role has %s members)\n",
		Count(c.Users), Count(c.Permissions), Count(c.Grants), Count(c.Memberships), Count(c.BiggestRole))
	p("and %s role parents, on %s with decision audit `%s`. Most of the tenant is written straight\n", Count(c.Parents), c.Database, c.Audit)
	p("into the database before the server starts, as the cold tenant is (%s); the big roles'\n", Duration(c.Seed))
	p("members and the role parents are then added through `POST /api/v2/policy/import?mode=merge`\n")
	p("(%s), and %d workflows are registered and run %d times each. A client signs in as a browser\n", Duration(c.Import), c.Workflows, c.WorkflowRuns)
	p("does (`POST /console/signin` with the client key, then the `auth_console` cookie; POSTs carry\n")
	p("the page's CSRF token) and sends one request at a time over one keep-alive connection, each timed\n")
	p("from its send to the end of its answer, which must be the page asked for. *first* is the first\n")
	p("request of each page on the server, which already holds the tenant in memory; then %d rounds\n", c.Rounds)
	p("each request every page once, in the table's order, and the percentiles are over those warm\n")
	p("requests. The matrix toggle is an htmx request that grants and revokes one cell in turn.\n\n")
	if c.Command != "" {
		cmd(c.Command)
	}
	p("| page | request | answer | first | p50 | p99 | max | target (p99) | verdict |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, pg := range c.Pages {
		v := Met
		if pg.Latency.P99 >= MaxConsolePage {
			v = Missed
		}
		verdict := string(v)
		if v == Missed {
			verdict = "**missed**"
		}
		p("| %s | `%s %s` | %s | %s | %s | %s | %s | < %s | %s |\n", pg.Name, pg.Method, pg.Path, Bytes(int64(pg.Bytes)),
			Duration(pg.First), Duration(pg.Latency.P50), Duration(pg.Latency.P99), Duration(pg.Latency.Max),
			Duration(MaxConsolePage), verdict)
	}
	p("\n")
}

func (r *Report) renderOthers(p printer, cmd func(...string)) {
	p("## Other benchmarks (not run by make bench)\n\n")
	p("- **Audit trail cost**: the policy core with and without the audit trail, writes timed\n")
	p("  alternately, checks with decision logging `all` against `none`, on SQLite and PostgreSQL:\n\n")
	p("  %s\n  ```sh\n  go test -run '^$' -bench BenchmarkAuditOverhead -benchtime 3s -count 3 ./tests/bench/\n  ```\n\n", skipMarker)
	p("- **Casbin's own `Enforce`** on the same rules as the in-process benchmarks, the cost the\n")
	p("  service's index saves:\n\n")
	p("  %s\n  ```sh\n  go test -run '^$' -bench 'BenchmarkEnforceBaseline|BenchmarkWhichUsersCan|BenchmarkUserPermissions' -benchmem ./policy/\n  ```\n\n", skipMarker)
	p("- **Batch against single checks** over one keep-alive connection (`BenchmarkBatchCheck`):\n\n")
	p("  %s\n  ```sh\n  go test -run '^$' -bench BenchmarkBatchCheck -benchtime 20x ./tests/e2e/\n  ```\n\n", skipMarker)
	p("- **Encryption at rest cost**: see [Encryption at rest](encryption.md) (checks 1×, writes\n")
	p("  about 1.1×, cold tenant loads 1.3–1.5×).\n\n")
	_ = cmd
}

func (r *Report) renderTenants(p printer, cmd func(...string)) {
	t := r.Tenants
	if t == nil {
		return
	}
	p("## Many small tenants\n\n")
	p("Every client key is a tenant of its own: how much a small tenant takes in memory, how a check\n")
	p("fares as the loaded tenants grow in number, what loading one costs, and a server over a\n")
	p("million tenants in its database.\n\n")
	if t.Command != "" {
		cmd(t.Command)
	}
	if g := t.Go; g != nil {
		p("### Memory per tenant and checks by tenant count\n\n")
		p("In-process benchmarks (`policy/tenants_bench_test.go`, `policy/bench_test.go`): tenants written\n")
		p("in bulk into SQLite, all loaded into one `policy.Service`; *live heap* is the growth of the Go\n")
		p("heap (after two collections) over loading them, divided by their number, the seed data kept\n")
		p("live across both readings; *estimate* is the service's own figure, which\n")
		p("`AUTH_TENANT_MEMORY_BUDGET` is counted in. time/op is a check spread over the loaded tenants.\n\n")
		cmd(g.Command)
		if g.Note != "" {
			p("%s\n\n", g.Note)
		}
		p("| benchmark | time/op | live heap per tenant | estimate per tenant | per membership | memory (log) |\n|---|---|---|---|---|---|\n")
		for _, b := range g.Benchmarks {
			val := func(unit, format string) string {
				v, ok := b.Metrics[unit]
				if !ok {
					return "—"
				}
				return fmt.Sprintf(format, v)
			}
			note := memoryNote(b.Log)
			if note == "" {
				note = "—"
			}
			p("| `%s` | %s | %s | %s | %s | %s |\n", b.Name, Duration(time.Duration(b.Metrics["ns/op"])),
				val("B/tenant", "%.0f B"), val("est-B/tenant", "%.0f B"), val("B/membership", "%.0f B"), note)
		}
		p("\n`members` is the 10-rule tenant with 40 more memberships, each of a new user: the per-membership\n")
		p("figure is the difference of the two tenants' live heap over 40. `tenants/N` holds N tenants of\n")
		p("3 roles, 30 grants and 20 memberships each.\n\n")
	}
	if len(t.Cold) > 0 {
		p("### Cold load of a small tenant\n\n")
		p("The first check of tenants no process holds yet, one at a time, each a tenant of 3 roles,\n")
		p("4 grants and 3 memberships among the database's many. *in-process*: the harness opens the\n")
		p("database with the service's own code (`sqldb`, `policydb`, `policy.Service`) and times\n")
		p("`HasPermission` of tenants spread over the whole database (after 20 loads not timed). *HTTP*: the\n")
		p("million-tenant server's first `GET /api/has_permission` of each tenant over one keep-alive\n")
		p("connection (client-key resolution and its last-use write included). *warm* is the p50 of a\n")
		p("second check of the same tenants by the same path.\n\n")
		p("| database | path | tenants in the database | loads | p50 | p90 | p99 | max | warm p50 |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range t.Cold {
			l := c.Latency
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Database, c.Path, Count(c.Tenants), Count(c.Loads),
				Duration(l.P50), Duration(l.P90), Duration(l.P99), Duration(l.Max), Duration(c.Warm))
		}
		p("\n")
	}
	if m := t.Million; m != nil {
		p("### A million tenants, Zipf traffic\n\n")
		gen := fmt.Sprintf("written in %s", Duration(m.Generated))
		if m.Cached {
			gen = "taken from the cache"
		}
		p("%s tenants of %d roles, %d grants and %d memberships each (%s rules in all) written straight\n",
			Count(m.Tenants), m.Roles, m.Grants, m.Memberships, Count(m.Tenants*(m.Grants+m.Memberships)))
		p("into a %s database (%s, %s; client keys derived from the tenant's number, so the load\n", m.Database, Bytes(m.DBBytes), gen)
		p("generator knows them), then one server with `AUTH_TENANT_MEMORY_BUDGET=%s`. The same closed loop\n", m.Budget)
		p("of `GET /api/has_permission/{user}/{perm}` (%d keep-alive connections, a random user and\n", m.Zipf.Connections)
		p("permission of the tenant, every answer checked) runs first against one tenant, then over all of\n")
		p("them, the tenant of each request drawn from a Zipf distribution (s = %.2f: the k-th most popular\n", m.ZipfS)
		p("tenant asked in proportion to 1/k^s; ranks map to tenants scattered over the database): %s\n", Count(m.ListLength))
		p("requests of %s distinct tenants, sent in turn. Each measured loop follows a %s warm-up.\n", Count(m.Distinct), Duration(m.Warmup))
		p("*peak RSS* is the server's `VmHWM` (`/proc/PID/status`) after the Zipf run.\n\n")
		p("| load | checks/s | p50 | p90 | p99 | p99.9 | errors |\n|---|---|---|---|---|---|---|\n")
		for _, x := range []struct {
			name string
			res  loadtest.Result
		}{{"one tenant", m.Single}, {fmt.Sprintf("Zipf over %s tenants", Count(m.Tenants)), m.Zipf}} {
			l := x.res.Latency
			p("| %s | %s | %s | %s | %s | %s | %s |\n", x.name, Rate(x.res.Throughput), Duration(l.P50), Duration(l.P90),
				Duration(l.P99), Duration(l.P999), errs(x.res.Errors, x.res.Requests))
		}
		p("\n")
		p("| budget | peak RSS | RSS at the end | tenants in memory | their estimate | evictions (memory) |\n|---|---|---|---|---|---|\n")
		num := func(v int64, f func(int64) string) string {
			if v < 0 {
				return "—"
			}
			return f(v)
		}
		p("| %s | %s | %s | %s | %s | %s |\n\n", m.Budget, Bytes(m.PeakRSS), Bytes(m.EndRSS),
			num(m.Loaded, func(v int64) string { return Count(int(v)) }), num(m.LoadedBytes, Bytes),
			num(m.Evictions, func(v int64) string { return Count(int(v)) }))
		if len(m.Env) > 0 {
			p("The server ran with `%s` besides the common settings.", strings.Join(m.Env, "`, `"))
			if m.CachePath != "" {
				p(" The generated database is kept in `%s` between runs.", m.CachePath)
			}
			p("\n\n")
		}
		var lines []string
		for _, x := range []struct {
			name string
			res  loadtest.Result
		}{{"one tenant", m.Single}, {"Zipf", m.Zipf}} {
			for _, e := range x.res.ErrorSamples {
				lines = append(lines, fmt.Sprintf("- %s: `%s`", x.name, e))
			}
		}
		if len(lines) > 0 {
			p("Errors seen:\n\n%s\n\n", strings.Join(lines, "\n"))
		}
	}
}
