// Package benchreport holds the figures of a benchmark run of the service,
// judges them against the performance targets, and renders them as the
// Markdown report docs/benchmarks.md.
package benchreport

import (
	"time"

	"github.com/ourway/auth/internal/gobench"
	"github.com/ourway/auth/internal/loadtest"
)

// Report is everything one run measured.
type Report struct {
	Machine Machine `json:"machine"`
	// Quick marks a smoke run (short phases): its figures are not to be
	// compared with a full run's.
	Quick bool `json:"quick,omitempty"`
	// Method describes how the HTTP figures were taken.
	Method Method `json:"method"`
	// Ceiling is the bare net/http server's probe (nil: not run).
	Ceiling *Probe `json:"ceiling,omitempty"`
	// HTTP holds one probe per database, decision-audit setting and route.
	HTTP []HTTPProbe `json:"http,omitempty"`
	// Writes holds one write probe per database.
	Writes []WriteProbe `json:"writes,omitempty"`
	// Consistency compares checks with consistency=minimize_latency and
	// at_least on a current replica (nil: not run).
	Consistency *ConsistencyProbe `json:"consistency,omitempty"`
	// InProcess is the run of the policy package's benchmarks (nil: not run).
	InProcess *GoRun `json:"in_process,omitempty"`
	// Cold holds one cold-tenant measure per database.
	Cold []Cold `json:"cold,omitempty"`
	// Replica is the run of the replica benchmarks, propagation and the
	// change feed's long-poll wake-up (nil: not run).
	Replica *GoRun `json:"replica,omitempty"`
	// Console is the admin console's pages on a large tenant (nil: not
	// run).
	Console *ConsoleProbe `json:"console,omitempty"`
	// Tenants is the section of many small tenants (nil: not run).
	Tenants *TenantsProbe `json:"tenants,omitempty"`
	// Skipped explains each part that was not measured.
	Skipped []string `json:"skipped,omitempty"`
	// Notes is the hand-written notes file, included verbatim.
	Notes string `json:"notes,omitempty"`
	// NotesPath is the notes file, relative to the report's directory.
	NotesPath string `json:"notes_path"`
}

// Machine describes where and what was measured.
type Machine struct {
	CPU       string    `json:"cpu"`
	Cores     int       `json:"cores"`
	Kernel    string    `json:"kernel"`
	GoVersion string    `json:"go_version"`
	Commit    string    `json:"commit"`
	Date      time.Time `json:"date"`
	// Wall is how long the whole run took.
	Wall time.Duration `json:"wall"`
	// LoadStart and LoadEnd are the load averages (1, 5 and 15 minutes)
	// when the run began and ended: what else kept the machine busy.
	LoadStart string `json:"load_start,omitempty"`
	LoadEnd   string `json:"load_end,omitempty"`
}

// Method holds the load settings of the HTTP probes.
type Method struct {
	Connections int           `json:"connections"`
	Warmup      time.Duration `json:"warmup"`
	MaxPhase    time.Duration `json:"max_phase"`
	OpenPhase   time.Duration `json:"open_phase"`
	// Tenant describes the tenant of the HTTP probes.
	Tenant string `json:"tenant"`
	// BatchSize is the number of pairs of a batch check.
	BatchSize int `json:"batch_size"`
	// ServerEnv lists the settings every server ran with.
	ServerEnv []string `json:"server_env"`
	// Command reproduces the run.
	Command string `json:"command"`
}

// Probe is a closed-loop run at the highest throughput, then open-loop runs
// at 50 % and 85 % of it.
type Probe struct {
	Max  loadtest.Result `json:"max"`
	Half loadtest.Result `json:"half"`
	High loadtest.Result `json:"high"`
}

// Errors is the probe's error count over its three runs.
func (p Probe) Errors() int { return p.Max.Errors + p.Half.Errors + p.High.Errors }

// Requests is the probe's request count over its three runs.
func (p Probe) Requests() int { return p.Max.Requests + p.Half.Requests + p.High.Requests }

// The routes probed.
const (
	RouteSingle          = "single"
	RouteBatch           = "batch"
	RouteUserPermissions = "user_permissions"
)

// The databases.
const (
	SQLite   = "SQLite"
	Postgres = "PostgreSQL"
)

// HTTPProbe is a probe of one route of a server.
type HTTPProbe struct {
	Database string `json:"database"`
	// Audit is the AUTH_AUDIT_DECISIONS setting.
	Audit string `json:"audit"`
	// Route is RouteSingle, RouteBatch or RouteUserPermissions.
	Route string `json:"route"`
	// PerRequest is the number of decisions per request.
	PerRequest int   `json:"per_request"`
	Probe      Probe `json:"probe"`
}

// WriteProbe is a closed-loop run of writes, then an open-loop one at 50 %
// of its throughput.
type WriteProbe struct {
	Database string          `json:"database"`
	Max      loadtest.Result `json:"max"`
	Half     loadtest.Result `json:"half"`
}

// ConsistencyProbe measures GET /api/v2/check with
// consistency=minimize_latency and with consistency=at_least:<Revision>, the
// tenant's current revision, on one server with the same requests: the cost
// of a session-consistent read on a replica that is already current.
type ConsistencyProbe struct {
	Database string `json:"database"`
	// Audit is the AUTH_AUDIT_DECISIONS setting.
	Audit string `json:"audit"`
	// Revision is the tenant's revision, which at_least asks for.
	Revision int64 `json:"revision"`
	// Rounds is the number of closed-loop rounds of each mode, run in
	// alternation with the other's and summed up as one (two of the open
	// loop).
	Rounds          int            `json:"rounds"`
	MinimizeLatency ConsistencyRun `json:"minimize_latency"`
	AtLeast         ConsistencyRun `json:"at_least"`
	// Command reproduces the section.
	Command string `json:"command,omitempty"`
}

// ConsistencyRun is one consistency mode's closed loops and its open loops
// (at the same arrival rate for both modes: half the minimize_latency max),
// each summed up over its rounds.
type ConsistencyRun struct {
	Max  loadtest.Result `json:"max"`
	Open loadtest.Result `json:"open"`
}

// Errors is the run's error count.
func (c ConsistencyRun) Errors() int { return c.Max.Errors + c.Open.Errors }

// Requests is the run's request count.
func (c ConsistencyRun) Requests() int { return c.Max.Requests + c.Open.Requests }

// GoRun is a `go test -bench` run.
type GoRun struct {
	Command    string              `json:"command"`
	Benchmarks []gobench.Benchmark `json:"benchmarks"`
	// Note says why figures are missing, if any are.
	Note string `json:"note,omitempty"`
}

// Get returns the benchmark of that name.
func (g *GoRun) Get(name string) (gobench.Benchmark, bool) {
	if g == nil {
		return gobench.Benchmark{}, false
	}
	return gobench.Output{Benchmarks: g.Benchmarks}.Get(name)
}

// Cold is the first check of a large tenant that no server holds yet.
type Cold struct {
	Database    string `json:"database"`
	Users       int    `json:"users"`
	Roles       int    `json:"roles"`
	Memberships int    `json:"memberships"`
	Grants      int    `json:"grants"`
	// Seed is how long writing the tenant into the database took.
	Seed time.Duration `json:"seed"`
	// Start is from the server's start to its first answer to /ping.
	Start time.Duration `json:"start"`
	// FirstCheck is from sending the first has_permission request of the
	// tenant to its answer: key lookup, loading the tenant, the check.
	FirstCheck time.Duration `json:"first_check"`
	// SecondCheck is the next check of the same tenant, for comparison.
	SecondCheck time.Duration `json:"second_check"`
	// HeapBytes is the growth of the live heap (after a collection) of a
	// process that loads the same tenant with the policy package.
	HeapBytes int64 `json:"heap_bytes"`
	// RSSBytes is the growth of the server's resident memory (VmRSS) over
	// the first check.
	RSSBytes int64 `json:"rss_bytes"`
	// Env lists the settings of the server beyond the common ones.
	Env []string `json:"env,omitempty"`
}

// Find returns the HTTP probe of that database, audit setting and route.
func (r *Report) Find(db, audit, route string) (HTTPProbe, bool) {
	for _, p := range r.HTTP {
		if p.Database == db && p.Audit == audit && p.Route == route {
			return p, true
		}
	}
	return HTTPProbe{}, false
}

// ConsoleProbe is the admin console's pages timed on one large tenant, one
// request at a time, as a signed-in browser sends them.
type ConsoleProbe struct {
	Database string `json:"database"`
	// Audit is the AUTH_AUDIT_DECISIONS setting.
	Audit string `json:"audit"`
	// The tenant: its roles, users, permissions, grants, memberships
	// (direct ones, user in role) and role parents (role in role).
	Roles       int `json:"roles"`
	Users       int `json:"users"`
	Permissions int `json:"permissions"`
	Grants      int `json:"grants"`
	Memberships int `json:"memberships"`
	Parents     int `json:"parents"`
	// BiggestRole is the number of members of the largest role.
	BiggestRole int `json:"biggest_role"`
	// Workflows is the number of registered workflows, each run
	// WorkflowRuns times.
	Workflows    int `json:"workflows"`
	WorkflowRuns int `json:"workflow_runs"`
	// Seed is how long writing the bulk of the tenant into the database
	// took, Import how long the policy import of the rest through the API
	// took.
	Seed   time.Duration `json:"seed"`
	Import time.Duration `json:"import"`
	// Rounds is the number of warm rounds: each round requests every page
	// once, in the order of Pages.
	Rounds int `json:"rounds"`
	// Pages holds one entry per page, in the order they are requested.
	Pages []ConsolePage `json:"pages"`
	// Command reproduces the section.
	Command string `json:"command,omitempty"`
}

// ConsolePage is one console request's timings: the first request of its
// kind on the server, then the warm ones.
type ConsolePage struct {
	// Name says what the page is.
	Name string `json:"name"`
	// Method and Path are the request (path and query).
	Method string `json:"method"`
	Path   string `json:"path"`
	// Bytes is the size of the last answer's body.
	Bytes int `json:"bytes"`
	// First is the first request of the page.
	First time.Duration `json:"first"`
	// Latency summarizes the warm requests, Samples of them.
	Latency loadtest.Percentiles `json:"latency"`
	Samples int                  `json:"samples"`
}

// Slowest returns the console page of the highest warm p99.
func (c *ConsoleProbe) Slowest() (ConsolePage, bool) {
	if c == nil || len(c.Pages) == 0 {
		return ConsolePage{}, false
	}
	slow := c.Pages[0]
	for _, p := range c.Pages[1:] {
		if p.Latency.P99 > slow.Latency.P99 {
			slow = p
		}
	}
	return slow, true
}

// TenantsProbe is the section of many small tenants: their memory, checks
// as the number of loaded tenants grows, cold loads of a small tenant, and
// a server over a million tenants under Zipf-distributed traffic.
type TenantsProbe struct {
	// Go is the run of the policy package's benchmarks of many tenants
	// (BenchmarkTenantMemory, BenchmarkHasPermission/tenants).
	Go *GoRun `json:"go,omitempty"`
	// Cold holds the cold loads of small tenants, per database and path.
	Cold []ColdLoads `json:"cold,omitempty"`
	// Million is the server over a million tenants (nil: not run).
	Million *MillionRun `json:"million,omitempty"`
	// Command reproduces the section.
	Command string `json:"command,omitempty"`
}

// The paths of a cold load.
const (
	// ColdInProcess: the policy package in the harness's own process,
	// policy.Service.HasPermission of a tenant not in memory.
	ColdInProcess = "in-process"
	// ColdHTTP: a server's first GET /api/has_permission of a tenant, one
	// request at a time (key resolution and the HTTP round trip included).
	ColdHTTP = "HTTP"
)

// ColdLoads are first checks of distinct small tenants, one at a time.
type ColdLoads struct {
	Database string `json:"database"`
	// Path is ColdInProcess or ColdHTTP.
	Path string `json:"path"`
	// Tenants is the number of tenants in the database.
	Tenants int `json:"tenants"`
	// Loads is the number of first checks timed.
	Loads   int                  `json:"loads"`
	Latency loadtest.Percentiles `json:"latency"`
	// Warm is the p50 of a second check of the same tenants, for
	// comparison.
	Warm time.Duration `json:"warm"`
}

// MillionRun is one server over a database of many small tenants: the same
// check load against one tenant, then spread over all of them with Zipf
// popularity.
type MillionRun struct {
	Database string `json:"database"`
	Tenants  int    `json:"tenants"`
	// Roles, Grants and Memberships are each tenant's.
	Roles       int `json:"roles"`
	Grants      int `json:"grants"`
	Memberships int `json:"memberships"`
	// Generated is how long writing the database took (zero when it came
	// from the cache), DBBytes its size.
	Generated time.Duration `json:"generated"`
	Cached    bool          `json:"cached"`
	CachePath string        `json:"cache_path,omitempty"`
	DBBytes   int64         `json:"db_bytes"`
	// Budget is AUTH_TENANT_MEMORY_BUDGET, BudgetBytes its value.
	Budget      string   `json:"budget"`
	BudgetBytes int64    `json:"budget_bytes"`
	Env         []string `json:"env,omitempty"`
	// ZipfS is the exponent of the tenants' popularity (rank k is asked
	// in proportion to 1/k^s); Distinct is the number of distinct tenants
	// in the Zipf request list, ListLength its length.
	ZipfS      float64 `json:"zipf_s"`
	Distinct   int     `json:"distinct"`
	ListLength int     `json:"list_length"`
	// Warmup is the unmeasured closed loop before each measured one.
	Warmup time.Duration `json:"warmup"`
	// Single is the closed loop on one tenant, Zipf the one over all.
	Single loadtest.Result `json:"single"`
	Zipf   loadtest.Result `json:"zipf"`
	// PeakRSS is the server's VmHWM after the Zipf run, EndRSS its VmRSS.
	PeakRSS int64 `json:"peak_rss"`
	EndRSS  int64 `json:"end_rss"`
	// Loaded, LoadedBytes and Evictions are the server's metrics after the
	// Zipf run: tenants in memory, their estimated bytes, and evictions
	// for the memory budget (-1: not read).
	Loaded      int64 `json:"loaded"`
	LoadedBytes int64 `json:"loaded_bytes"`
	Evictions   int64 `json:"evictions"`
}

// ColdLoad returns the cold loads of that database and path.
func (t *TenantsProbe) ColdLoad(db, path string) (ColdLoads, bool) {
	if t == nil {
		return ColdLoads{}, false
	}
	for _, c := range t.Cold {
		if c.Database == db && c.Path == path {
			return c, true
		}
	}
	return ColdLoads{}, false
}
