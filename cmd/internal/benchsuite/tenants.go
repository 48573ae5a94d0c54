package benchsuite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/loadtest"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// The settings of the tenants section.
const (
	// millionTenants is the size of the SQLite database of small tenants
	// the Zipf load runs over; postgresTenants the PostgreSQL one's, which
	// only the cold loads use (written afresh each run).
	millionTenants  = 1_000_000
	postgresTenants = 20_000
	// tenantsBudget is the server's AUTH_TENANT_MEMORY_BUDGET.
	tenantsBudget = "256MiB"
	// zipfS is the exponent of the tenants' popularity.
	zipfS = 1.1
	// zipfRequests is the length of the Zipf request list (sent in turn).
	zipfRequests = 500_000
	// coldLoads is the number of timed cold loads per database and path.
	coldLoads = 1000
	// coldWarmup are untimed cold loads before them.
	coldWarmup = 20
	// cacheVersion names the generated database's layout: change it when
	// LoadMany writes something else.
	cacheVersion = 1
)

// runTenants measures many small tenants: the policy package's memory and
// tenant-count benchmarks, cold loads of a small tenant on SQLite and
// PostgreSQL, and a server over a million tenants under Zipf traffic.
func (s *suite) runTenants(ctx context.Context) error {
	t := &benchreport.TenantsProbe{Command: s.command(SectionTenants)}
	s.rep.Tenants = t
	benchtime := "0.3s"
	if s.cfg.Quick {
		benchtime = "1000x"
	}
	// Two runs: a pattern of three levels would leave out the memory
	// benchmarks, which have two.
	mem, _, err := s.goBench(ctx, nil, "^BenchmarkTenantMemory$", "./policy/", "-benchtime", benchtime)
	if err != nil {
		return err
	}
	counts := "^BenchmarkHasPermission$/^tenants$"
	if s.cfg.Quick {
		counts += "/^(1|10000)$" // not the 100 000 tenants' minutes of set-up
	}
	run, _, err := s.goBench(ctx, nil, counts, "./policy/", "-benchtime", benchtime)
	if err != nil {
		return err
	}
	run.Command = mem.Command + "\n" + run.Command
	run.Benchmarks = append(mem.Benchmarks, run.Benchmarks...)
	t.Go = run

	n := millionTenants
	if s.cfg.Quick {
		n = 20_000
	}
	m, path, err := s.manyTenantsDB(ctx, n)
	if err != nil {
		return err
	}
	c, err := s.coldInProcess(ctx, benchreport.SQLite, sqldb.Options{Dialect: sqldb.SQLite, Path: path}, n)
	if err != nil {
		return fmt.Errorf("SQLite cold loads: %w", err)
	}
	t.Cold = append(t.Cold, c)
	if s.pg {
		c, err := s.coldPostgres(ctx)
		if err != nil {
			return fmt.Errorf("PostgreSQL cold loads: %w", err)
		}
		t.Cold = append(t.Cold, c)
	} else {
		s.skip("cold loads of a small tenant on PostgreSQL: PostgreSQL did not answer")
	}
	return s.million(ctx, t, m, path)
}

// manyTenantsDB returns a fresh copy of a SQLite database of n small
// tenants. The database is generated once and kept in the user's cache
// directory (auth-bench/ under os.UserCacheDir, e.g. ~/.cache), named by
// its size, the generator's version and the schema's migrations; each
// run works on a copy, so the cached file stays as generated.
func (s *suite) manyTenantsDB(ctx context.Context, n int) (*benchreport.MillionRun, string, error) {
	m := &benchreport.MillionRun{Database: benchreport.SQLite, Tenants: n,
		Roles: dataset.SmallRoles, Grants: dataset.SmallGrants, Memberships: dataset.SmallMembers}
	migs, err := sqldb.Migrations(sqldb.SQLite)
	if err != nil {
		return nil, "", err
	}
	name := fmt.Sprintf("tenants-%d-v%d-m%d.sqlite3", n, cacheVersion, len(migs))
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "auth-bench")
	cached := filepath.Join(dir, name)
	m.CachePath = cached
	if _, err := os.Stat(cached); err == nil {
		m.Cached = true
		s.log.Info("many tenants: cached database", "path", cached)
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", err
		}
		s.log.Info("many tenants: generating the database", "tenants", n, "path", cached)
		start := time.Now()
		if err := generateMany(ctx, cached+".tmp", n, s.log.Info); err != nil {
			return nil, "", err
		}
		m.Generated = time.Since(start)
		if err := os.Rename(cached+".tmp", cached); err != nil {
			return nil, "", err
		}
		s.log.Info("many tenants: generated", "in", m.Generated)
	}
	path := filepath.Join(s.tmp, "many-tenants.sqlite3")
	if err := copyFile(cached, path); err != nil {
		return nil, "", err
	}
	if st, err := os.Stat(path); err == nil {
		m.DBBytes = st.Size()
	}
	return m, path, nil
}

// generateMany writes a fresh SQLite database of n small tenants at path,
// checkpointed into one file.
func generateMany(ctx context.Context, path string, n int, log func(string, ...any)) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	db, err := sqldb.Open(ctx, sqldb.Options{Dialect: sqldb.SQLite, Path: path})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx, nil); err != nil {
		return err
	}
	if err := dataset.LoadMany(ctx, db, n, func(done int) { log("many tenants: written", "tenants", done) }); err != nil {
		return err
	}
	return db.Gorm().Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// coldPostgres writes postgresTenants small tenants into a fresh PostgreSQL
// database and times cold loads there.
func (s *suite) coldPostgres(ctx context.Context) (c benchreport.ColdLoads, err error) {
	n := postgresTenants
	if s.cfg.Quick {
		n = 5000
	}
	u, drop, err := s.createPostgres(ctx)
	if err != nil {
		return c, err
	}
	defer func() {
		if derr := drop(); err == nil {
			err = derr
		}
	}()
	opts := sqldb.Options{Dialect: sqldb.Postgres, URL: u}
	db, err := sqldb.Open(ctx, opts)
	if err != nil {
		return c, err
	}
	if _, err := db.Migrate(ctx, nil); err != nil {
		db.Close()
		return c, err
	}
	start := time.Now()
	err = dataset.LoadMany(ctx, db, n, nil)
	db.Close()
	if err != nil {
		return c, err
	}
	s.log.Info("PostgreSQL small tenants written", "tenants", n, "in", time.Since(start))
	return s.coldInProcess(ctx, benchreport.Postgres, opts, n)
}

// coldInProcess opens the database of n small tenants with the service's
// code and times the first check of coldLoads tenants spread over it, one
// at a time, after coldWarmup untimed ones; then a second check of each.
func (s *suite) coldInProcess(ctx context.Context, kind string, opts sqldb.Options, n int) (benchreport.ColdLoads, error) {
	c := benchreport.ColdLoads{Database: kind, Path: benchreport.ColdInProcess, Tenants: n}
	db, err := sqldb.Open(ctx, opts)
	if err != nil {
		return c, err
	}
	defer db.Close()
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		return c, err
	}
	loads := min(coldLoads, n-coldWarmup)
	step := n / (loads + coldWarmup)
	var cold, warm []time.Duration
	for k := range loads + coldWarmup {
		i := k * step
		h, err := policy.ParseClientKey(dataset.SmallKey(i))
		if err != nil {
			return c, err
		}
		p := k % dataset.SmallPerms
		t0 := time.Now()
		ok, err := svc.HasPermission(ctx, h, dataset.User(0), dataset.Permission(p))
		d := time.Since(t0)
		if err != nil {
			return c, fmt.Errorf("tenant %d: %w", i, err)
		}
		if ok != dataset.SmallAllowed(i, 0, p) {
			return c, fmt.Errorf("tenant %d: HasPermission(user-0, perm-%d) = %v, want %v", i, p, ok, !ok)
		}
		if k < coldWarmup {
			continue
		}
		cold = append(cold, d)
		t0 = time.Now()
		if _, err := svc.HasPermission(ctx, h, dataset.User(1), dataset.Permission(p)); err != nil {
			return c, err
		}
		warm = append(warm, time.Since(t0))
	}
	c.Loads = len(cold)
	c.Latency = loadtest.Summarize(cold)
	c.Warm = loadtest.Summarize(warm).P50
	s.log.Info("cold loads", "db", kind, "p50", c.Latency.P50, "p99", c.Latency.P99, "warm", c.Warm)
	return c, nil
}

// million starts a server with the memory budget on the database of many
// tenants at path, times cold first checks over HTTP, then runs the check
// load against one tenant and over all of them with Zipf popularity.
func (s *suite) million(ctx context.Context, t *benchreport.TenantsProbe, m *benchreport.MillionRun, path string) (err error) {
	t.Million = m
	m.Budget = tenantsBudget
	budget, err := config.ParseSize(tenantsBudget)
	if err != nil {
		return err
	}
	m.BudgetBytes = budget
	m.Env = []string{"AUTH_TENANT_MEMORY_BUDGET=" + tenantsBudget}
	d := &database{kind: benchreport.SQLite, env: []string{"AUTH_DB_TYPE=sqlite", "AUTH_DB_PATH=" + path}}
	srv, err := s.startServer(ctx, "many-tenants", d, "all", m.Env...)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); err == nil {
			err = serr
		}
	}()
	client := &http.Client{Timeout: time.Minute}
	hc, err := coldHTTP(ctx, client, srv.base, m.Tenants)
	if err != nil {
		return err
	}
	t.Cold = append(t.Cold, hc)
	s.log.Info("cold loads", "db", "SQLite over HTTP", "p50", hc.Latency.P50, "p99", hc.Latency.P99, "warm", hc.Warm)

	warmup, measure := 3*time.Second, 20*time.Second
	if s.cfg.Quick {
		warmup, measure = 500*time.Millisecond, 2*time.Second
	}
	m.Warmup = warmup
	m.ZipfS = zipfS
	rng := rand.New(rand.NewPCG(18, 1))
	// The most popular tenant is the one-tenant load's.
	single, check := tenantRequests(srv.base, m.Tenants, rng, 1<<14, func() int { return 0 })
	zipf := rand.NewZipf(rng, zipfS, 1, uint64(m.Tenants-1))
	length := zipfRequests
	if s.cfg.Quick {
		length = 50_000
	}
	spread, zcheck := tenantRequests(srv.base, m.Tenants, rng, length, func() int { return int(zipf.Uint64()) })
	m.ListLength = len(spread)
	seen := map[string]bool{}
	for _, r := range spread {
		seen[r.Header.Get("Authorization")] = true
	}
	m.Distinct = len(seen)
	phase := func(what string, reqs []loadtest.Request, check loadtest.Check) (loadtest.Result, error) {
		if _, err := loadtest.Run(ctx, loadtest.Phase{Requests: reqs, Check: check, Duration: warmup, Connections: s.t.connections}); err != nil {
			return loadtest.Result{}, err
		}
		res, err := loadtest.Run(ctx, loadtest.Phase{Requests: reqs, Check: check, Duration: measure, Connections: s.t.connections})
		if err == nil {
			s.log.Info("many tenants", "load", what, "checks/s", int(res.Throughput), "p99", res.Latency.P99, "errors", res.Errors, "samples", res.ErrorSamples)
		}
		return res, err
	}
	if m.Single, err = phase("one tenant", single, check); err != nil {
		return err
	}
	if m.Zipf, err = phase("zipf", spread, zcheck); err != nil {
		return err
	}
	if m.PeakRSS, err = srv.status("VmHWM:"); err != nil {
		return err
	}
	if m.EndRSS, err = srv.status("VmRSS:"); err != nil {
		return err
	}
	m.Loaded, m.LoadedBytes, m.Evictions = serverTenantMetrics(ctx, client, srv.base)
	s.log.Info("many tenants", "peak rss", m.PeakRSS, "budget", m.BudgetBytes, "loaded", m.Loaded, "evictions", m.Evictions)
	return nil
}

// rankToTenant scatters popularity ranks over the database: rank k is
// tenant k·7919 mod n (7919 is prime to the sizes used), so that the
// popular tenants are not the first rows written.
func rankToTenant(k, n int) int { return int(uint64(k) * 7919 % uint64(n)) }

// tenantRequests builds length single checks of tenants drawn by rank
// (a popularity rank, mapped by rankToTenant), with a random user and
// permission each, and the check of their answers.
func tenantRequests(base string, n int, rng *rand.Rand, length int, rank func() int) ([]loadtest.Request, loadtest.Check) {
	headers := map[int]http.Header{}
	tenantOf := map[string]int{}
	reqs := make([]loadtest.Request, length)
	for j := range reqs {
		i := rankToTenant(rank(), n)
		h, ok := headers[i]
		if !ok {
			h = http.Header{"Authorization": {"Bearer " + dataset.SmallKey(i)}}
			headers[i] = h
			tenantOf[h.Get("Authorization")] = i
		}
		u, p := rng.IntN(dataset.SmallRoles), rng.IntN(dataset.SmallPerms)
		reqs[j] = loadtest.Request{Method: http.MethodGet, Header: h,
			URL: base + "/api/has_permission/" + dataset.User(u) + "/" + dataset.Permission(p)}
	}
	check := func(req loadtest.Request, _ int, body []byte) error {
		i, ok := tenantOf[req.Header.Get("Authorization")]
		if !ok {
			return fmt.Errorf("a request of an unknown tenant")
		}
		_, rest, _ := strings.Cut(req.URL, "/api/has_permission/user-")
		us, ps, _ := strings.Cut(rest, "/perm-")
		u, _ := strconv.Atoi(us)
		p, _ := strconv.Atoi(ps)
		var v checkData
		if err := json.Unmarshal(body, &v); err != nil || v.Data.HasPermission == nil {
			return fmt.Errorf("answer %.200q has no data.has_permission", body)
		}
		if want := dataset.SmallAllowed(i, u, p); *v.Data.HasPermission != want {
			return fmt.Errorf("tenant %d: has_permission %v, want %v", i, *v.Data.HasPermission, want)
		}
		return nil
	}
	return reqs, check
}

// coldHTTP times the server's first check of coldLoads tenants spread over
// the database (after coldWarmup untimed ones), one at a time over one
// keep-alive connection, then a second check of each.
func coldHTTP(ctx context.Context, client *http.Client, base string, n int) (benchreport.ColdLoads, error) {
	c := benchreport.ColdLoads{Database: benchreport.SQLite, Path: benchreport.ColdHTTP, Tenants: n}
	loads := min(coldLoads, n-coldWarmup)
	step := n / (loads + coldWarmup)
	var cold, warm []time.Duration
	for k := range loads + coldWarmup {
		// Other tenants than the in-process loads' (which were in another
		// process, but the database's pages are warm for them).
		i := k*step + step/2
		key := dataset.SmallKey(i)
		p := k % dataset.SmallPerms
		url := base + "/api/has_permission/" + dataset.User(0) + "/" + dataset.Permission(p)
		for round := range 2 {
			t0 := time.Now()
			body, err := get(ctx, client, url, key)
			d := time.Since(t0)
			if err != nil {
				return c, fmt.Errorf("tenant %d: %w", i, err)
			}
			var v checkData
			if err := json.Unmarshal(body, &v); err != nil || v.Data.HasPermission == nil || *v.Data.HasPermission != dataset.SmallAllowed(i, 0, p) {
				return c, fmt.Errorf("tenant %d: answer %.200q, want has_permission %v", i, body, dataset.SmallAllowed(i, 0, p))
			}
			switch {
			case k < coldWarmup:
			case round == 0:
				cold = append(cold, d)
			default:
				warm = append(warm, d)
			}
		}
	}
	c.Loads = len(cold)
	c.Latency = loadtest.Summarize(cold)
	c.Warm = loadtest.Summarize(warm).P50
	return c, nil
}

// serverTenantMetrics reads the tenants in memory, their estimated bytes
// and the evictions for the memory budget from the server's /metrics (-1
// for what it does not show).
func serverTenantMetrics(ctx context.Context, client *http.Client, base string) (loaded, bytesEst, evictions int64) {
	loaded, bytesEst, evictions = -1, -1, -1
	body, err := get(ctx, client, base+"/metrics", "")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "auth_tenants_loaded":
			loaded = int64(v)
		case "auth_tenants_loaded_bytes":
			bytesEst = int64(v)
		case `auth_tenant_evictions_total{reason="memory"}`:
			evictions = int64(v)
		}
	}
	return
}
