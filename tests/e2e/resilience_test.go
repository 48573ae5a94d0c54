package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
)

// pgProxy is a TCP proxy between auth-server and PostgreSQL that can
// black-hole the database: while it does, new connections are accepted but
// never forwarded, and bytes on existing connections are held, not
// delivered, so every query waits for its deadline.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	open  chan struct{} // closed while traffic flows
	conns map[net.Conn]bool
}

func newPGProxy(t testing.TB, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, open: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.open)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.restore()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *pgProxy) addr() string { return p.ln.Addr().String() }

// gate returns a channel that is closed while traffic may flow.
func (p *pgProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// blackhole stops all traffic, keeping every connection open.
func (p *pgProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// restore lets traffic flow again.
func (p *pgProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

func (p *pgProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		go func() {
			<-p.gate() // a new connection waits out a black hole
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				return
			}
			p.track(up)
			go p.pipe(up, c)
			p.pipe(c, up)
		}()
	}
}

// pipe copies src to dst, holding every chunk while the proxy black-holes.
func (p *pgProxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sample is one request's outcome during the fault test.
type sample struct {
	kind   string // "check", "cold", "write"
	status int    // 0: transport error
	took   time.Duration
	retry  string // Retry-After
	at     time.Time
}

type recorder struct {
	mu      sync.Mutex
	samples []sample
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) since(t0 time.Time, kind string) []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sample
	for _, s := range r.samples {
		if s.kind == kind && !s.at.Before(t0) {
			out = append(out, s)
		}
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// pollUntil calls check until it reports done or the deadline passes.
func pollUntil(t testing.TB, within time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDatabaseOutagePostgres cuts PostgreSQL off (a black hole: connections
// accepted, nothing answered) under a load of checks and writes. Checks of
// loaded tenants keep answering 200 from memory; writes and tenants not in
// memory get 503 with Retry-After, fast once the breakers are open;
// /ready says 503. When the database is back, writes succeed again, /ready
// is 200 and the breakers close.
func TestDatabaseOutagePostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	const (
		dbTimeout      = time.Second
		breakerTimeout = 5 * time.Second
	)
	pg, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, pg.Host)
	viaProxy := *pg
	viaProxy.Host = proxy.addr()
	env := serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"),
		"AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL="+viaProxy.String(),
		"AUTH_DB_TIMEOUT="+dbTimeout.String(), "AUTH_DB_BREAKER_ERRORS=3",
		"AUTH_DB_BREAKER_TIMEOUT="+breakerTimeout.String(), "AUTH_AUDIT_QUEUE_SIZE=500")

	// Tenants made by a first server; the second loads only the hot ones,
	// so the cold ones are in the database but not in its memory.
	hot := []string{newKey(t), newKey(t), newKey(t)}
	cold := newKey(t)
	first := startServer(t, env)
	for _, k := range append(append([]string(nil), hot...), cold) {
		c := first.client(k)
		for _, p := range []string{"/api/role/admin", "/api/permission/admin/read", "/api/membership/alice/admin"} {
			expect(t, c.post(t, p), 200, res("true"))
		}
	}
	first.stop(t)
	s := startServer(t, env)
	for _, k := range hot {
		if !hasPermission(t, s.client(k).get(t, "/api/has_permission/alice/read")) {
			t.Fatalf("alice lacks read in a hot tenant before the outage")
		}
	}
	if r := s.do(t, "GET", "/ready"); r.status != 200 {
		t.Fatalf("/ready before the outage: %s", r)
	}

	rec := &recorder{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var n atomic.Int64
	load := func(kind string, key func(i int64) string, method string, path func(i int64) string) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := n.Add(1)
			start := time.Now()
			r, err := s.send(method, path(i), "Authorization: Bearer "+key(i))
			sm := sample{kind: kind, took: time.Since(start), at: start}
			if err == nil {
				sm.status, sm.retry = r.status, r.header.Get("Retry-After")
			}
			rec.add(sm)
		}
	}
	hotKey := func(i int64) string { return hot[i%int64(len(hot))] }
	checks := []string{"/api/has_permission/alice/read", "/api/user_permissions/alice", "/api/which_users_can/read",
		"/api/roles", "/api/members/admin", "/api/membership/alice/admin", "/api/permission/admin/read"}
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go load("check", hotKey, "GET", func(i int64) string { return checks[i%int64(len(checks))] })
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go load("write", hotKey, "POST", func(i int64) string { return fmt.Sprintf("/api/permission/admin/p%d", i) })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Let the load run on a healthy database, then cut it off.
	pollUntil(t, 10*time.Second, "writes before the outage", func() (bool, string) {
		ok := 0
		for _, sm := range rec.since(time.Time{}, "write") {
			if sm.status == 200 {
				ok++
			}
		}
		return ok >= 20, fmt.Sprintf("%d writes answered 200", ok)
	})
	cut := time.Now()
	proxy.blackhole()
	// Reads of a tenant this server never loaded start now.
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go load("cold", func(int64) string { return cold }, "GET", func(int64) string { return "/api/has_permission/alice/read" })
	}

	// The write breaker opens within a few database timeouts.
	pollUntil(t, 10*dbTimeout+5*time.Second, "write breaker open", func() (bool, string) {
		v := s.metricValue(t, `auth_breaker_state{breaker="database_write"}`)
		return v == 2, fmt.Sprintf("state %v", v)
	})
	opened := time.Now()
	pollUntil(t, 10*dbTimeout+5*time.Second, "read breaker open (the cold tenant's load failed)", func() (bool, string) {
		v := s.metricValue(t, `auth_breaker_state{breaker="database_read"}`)
		return v == 2, fmt.Sprintf("state %v", v)
	})
	// The timed requests below must meet an open breaker, not a half-open
	// one whose probe legitimately waits for the database deadline: the
	// read breaker cycles open -> half-open while cold readers keep failing,
	// so look right before each request (its open period is long enough).
	readOpen := func() {
		pollUntil(t, 2*breakerTimeout+dbTimeout, "read breaker open", func() (bool, string) {
			v := s.metricValue(t, `auth_breaker_state{breaker="database_read"}`)
			return v == 2, fmt.Sprintf("state %v", v)
		})
	}
	// /ready is 503 at once while the breakers are open.
	readOpen()
	start := time.Now()
	if r := s.do(t, "GET", "/ready"); r.status != 503 || !strings.Contains(string(r.body), `"check":"database"`) {
		t.Errorf("/ready during the outage: %s, want 503 naming the database", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("/ready took %v during the outage", d)
	}
	// Reading the audit trail needs the database: 503 at once.
	readOpen()
	start = time.Now()
	if r, err := s.send("GET", "/api/audit", "Authorization: Bearer "+hot[0]); err != nil || r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("GET /api/audit during the outage: %v %v, want 503 with Retry-After", r, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("GET /api/audit took %v during the outage", d)
	}
	// A window of load with the breakers open (shorter than their timeout,
	// so that no half-open probe falls into it).
	window := time.Now()
	time.Sleep(breakerTimeout / 2) // not a wait for a condition: the load runs, we measure it
	fastFrom := window

	var checkBad []string
	for _, sm := range rec.since(cut, "check") {
		if sm.status != 200 {
			checkBad = append(checkBad, fmt.Sprintf("%d after %v", sm.status, sm.took))
		}
	}
	if len(checkBad) > 0 {
		t.Errorf("%d checks of loaded tenants failed during the outage, want none: %v", len(checkBad), first10(checkBad))
	}
	checksDuring := len(rec.since(cut, "check"))
	if checksDuring < 50 {
		t.Errorf("only %d checks answered during the outage", checksDuring)
	}

	for _, kind := range []string{"write", "cold"} {
		var bad []string
		var fast []time.Duration
		all := rec.since(cut, kind)
		for _, sm := range all {
			if sm.at.Before(cut.Add(50*time.Millisecond)) && sm.status == 200 {
				continue // answered just as the cut happened
			}
			if sm.status != 503 || sm.retry == "" {
				bad = append(bad, fmt.Sprintf("%d (Retry-After %q) after %v", sm.status, sm.retry, sm.took))
			}
			// Every answer comes well within the HTTP client's timeout:
			// a database call is bounded by AUTH_DB_TIMEOUT.
			if sm.took > 4*dbTimeout+time.Second {
				bad = append(bad, fmt.Sprintf("answered after %v", sm.took))
			}
			if !sm.at.Before(fastFrom) && sm.at.Before(fastFrom.Add(breakerTimeout/2)) {
				fast = append(fast, sm.took)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s requests during the outage: %d bad answers: %v", kind, len(bad), first10(bad))
		}
		if len(fast) < 10 {
			t.Errorf("only %d %s requests while the breakers were open", len(fast), kind)
		}
		// Fail-fast, as a functional property: with the breaker open no
		// request waits for the database (which would take dbTimeout). The
		// bound is loose on purpose: the suite runs in parallel under -race.
		p50, p99 := percentile(fast, 0.5), percentile(fast, 0.99)
		if p99 > dbTimeout/2 {
			t.Errorf("%s: p99 latency %v with the breaker open (%d requests), want well under the %v database timeout", kind, p99, len(fast), dbTimeout)
		}
		t.Logf("%s with the breaker open: %d requests, p50 %v, p99 %v", kind, len(fast), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	}
	if v := s.metricValue(t, `auth_breaker_rejections_total{breaker="database_write"}`); v < 10 {
		t.Errorf("auth_breaker_rejections_total{database_write} = %v, want the rejected writes counted", v)
	}
	t.Logf("outage: breaker open %v after the cut; %d checks, %d writes, %d cold reads answered",
		opened.Sub(cut).Round(time.Millisecond), checksDuring, len(rec.since(cut, "write")), len(rec.since(cut, "cold")))

	// Recovery.
	proxy.restore()
	restored := time.Now()
	pollUntil(t, 3*breakerTimeout+10*time.Second, "a write succeeds after the restore", func() (bool, string) {
		r, err := s.send("POST", "/api/role/after_outage", "Authorization: Bearer "+hot[0])
		if err != nil {
			return false, err.Error()
		}
		return r.status == 200, r.String()
	})
	pollUntil(t, 3*breakerTimeout+10*time.Second, "writes of the load succeed again", func() (bool, string) {
		ws := rec.since(time.Now().Add(-200*time.Millisecond), "write")
		for _, sm := range ws {
			if sm.status != 200 {
				return false, fmt.Sprintf("status %d", sm.status)
			}
		}
		return len(ws) > 0, fmt.Sprintf("%d recent writes", len(ws))
	})
	pollUntil(t, 3*breakerTimeout+10*time.Second, "the cold tenant loads after the restore", func() (bool, string) {
		r, err := s.send("GET", "/api/has_permission/alice/read", "Authorization: Bearer "+cold)
		if err != nil {
			return false, err.Error()
		}
		return r.status == 200 && strings.Contains(string(r.body), `"has_permission":true`), r.String()
	})
	pollUntil(t, 3*breakerTimeout+10*time.Second, "/ready is 200 again", func() (bool, string) {
		r, err := s.send("GET", "/ready")
		if err != nil {
			return false, err.Error()
		}
		return r.status == 200, r.String()
	})
	close(stop)
	wg.Wait()
	for _, b := range []string{"database_read", "database_write"} {
		if v := s.metricValue(t, `auth_breaker_state{breaker="`+b+`"}`); v != 0 {
			t.Errorf("breaker %s = %v after recovery, want 0 (closed)", b, v)
		}
	}
	for _, sm := range rec.since(cut, "check") {
		if sm.status != 200 {
			t.Errorf("a check failed with %d around the recovery", sm.status)
			break
		}
	}
	expect(t, s.client(hot[0]).get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"},{"description":null,"role":"after_outage"}]`))
	t.Logf("recovered %v after the restore", time.Since(restored).Round(time.Millisecond))
}

func first10(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// TestOperationsEndpoints: /health and /ready answer, and /metrics (behind
// AUTH_METRICS_TOKEN) exposes the service's series with route patterns,
// never raw paths.
func TestOperationsEndpoints(t *testing.T) {
	const token = "e2e-metrics-token-7c1d9a3f5b"
	s := sqliteServer(t, "AUTH_METRICS_TOKEN="+token)
	for _, path := range []string{"/health", "/ready"} {
		if r := s.do(t, "GET", path); r.status != 200 {
			t.Errorf("GET %s = %s, want 200", path, r)
		}
	}
	for _, h := range [][]string{nil, {"Authorization: Bearer wrong-token"}, {"Authorization: " + token}} {
		r := s.do(t, "GET", "/metrics", h...)
		var body struct {
			Code    int  `json:"code"`
			Success bool `json:"success"`
		}
		if r.status != 401 || json.Unmarshal(r.body, &body) != nil || body.Code != 401 || body.Success {
			t.Errorf("GET /metrics with %v = %s, want the 401 JSON envelope", h, r)
		}
		if strings.Contains(string(r.body), token) {
			t.Errorf("the 401 echoes the token")
		}
	}

	k := newKey(t)
	c := s.client(k)
	expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
	expect(t, c.post(t, "/api/permission/admin/read"), 200, res("true"))
	expect(t, c.post(t, "/api/membership/alice/admin"), 200, res("true"))
	c.get(t, "/api/has_permission/alice/read")
	c.get(t, "/api/has_permission/bob/read")
	c.get(t, "/api/has_permission/bob/read")
	c.get(t, "/api/permission/admin/read")
	c.get(t, "/api/membership/bob/admin")

	r := s.do(t, "GET", "/metrics", "Authorization: Bearer "+token)
	if r.status != 200 {
		t.Fatalf("GET /metrics with the token = %s", r)
	}
	samples, types := parseMetrics(t, string(r.body))
	for _, tc := range []struct {
		series string
		want   float64 // -1: present, any value
	}{
		{`auth_http_requests_total{code="200",method="GET",route="/api/has_permission/:user/:name"}`, 3},
		{`auth_http_requests_total{code="200",method="POST",route="/api/role/:role"}`, 1},
		{`auth_http_request_duration_seconds_count{method="GET",route="/api/has_permission/:user/:name"}`, 3},
		{`auth_http_request_duration_seconds_bucket{method="GET",route="/api/has_permission/:user/:name",le="+Inf"}`, 3},
		{`auth_decisions_total{decision="allowed",kind="has_permission"}`, 1},
		{`auth_decisions_total{decision="denied",kind="has_permission"}`, 2},
		{`auth_decisions_total{decision="allowed",kind="role_permission"}`, 1},
		{`auth_decisions_total{decision="denied",kind="membership"}`, 1},
		{`auth_tenants_loaded`, 1},
		{`auth_audit_queue_depth`, -1},
		{`auth_audit_dropped_total`, 0},
		{`auth_breaker_state{breaker="database_read"}`, 0},
		{`auth_breaker_state{breaker="database_write"}`, 0},
		{`auth_breaker_rejections_total{breaker="database_read"}`, 0},
		{`auth_breaker_rejections_total{breaker="database_write"}`, 0},
	} {
		v, ok := samples[tc.series]
		if !ok || (tc.want >= 0 && v != tc.want) {
			t.Errorf("%s = %v (present %v), want %v", tc.series, v, ok, tc.want)
		}
	}
	for name, typ := range map[string]string{
		"auth_http_requests_total": "counter", "auth_http_request_duration_seconds": "histogram",
		"auth_decisions_total": "counter", "auth_tenants_loaded": "gauge", "auth_audit_queue_depth": "gauge",
		"auth_audit_dropped_total": "counter", "auth_breaker_state": "gauge", "auth_breaker_rejections_total": "counter",
	} {
		if types[name] != typ {
			t.Errorf("metric %s has type %q, want %s", name, types[name], typ)
		}
	}
	for series := range samples {
		for _, raw := range []string{"alice", "bob", k, token} {
			if strings.Contains(series, raw) {
				t.Errorf("series %s holds %q", series, raw)
			}
		}
	}
}

// parseMetrics reads the Prometheus text format: samples by series (name
// and labels as written) and the type of each family.
func parseMetrics(t testing.TB, text string) (map[string]float64, map[string]string) {
	t.Helper()
	samples, types := map[string]float64{}, map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) == 4 {
				types[f[2]] = f[3]
			}
		case strings.HasPrefix(line, "#"):
		default:
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				t.Fatalf("bad sample line %q", line)
			}
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("bad sample line %q: %v", line, err)
			}
			samples[line[:i]] = v
		}
	}
	return samples, types
}

// TestShutdownFlushesDecisionAudit sends SIGTERM while clients check
// permissions: every request that got an answer got a 200, the process
// exits 0, and the audit queue was flushed: there is one decision record
// per answered check.
func TestShutdownFlushesDecisionAudit(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	s := sqliteServer(t, "AUTH_AUDIT_DECISIONS=all")
	k := newKey(t)
	c := s.client(k)
	expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
	expect(t, c.post(t, "/api/permission/admin/read"), 200, res("true"))
	expect(t, c.post(t, "/api/membership/alice/admin"), 200, res("true"))

	var answered, failed atomic.Int64
	var bad sync.Map
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				user := "alice"
				if i%2 == 1 {
					user = fmt.Sprintf("u%d_%d", g, i) // denied
				}
				r, err := s.send("GET", "/api/has_permission/"+user+"/read", "Authorization: Bearer "+k)
				if err != nil {
					failed.Add(1)
					return // the server stopped listening
				}
				if r.status != 200 {
					bad.Store(r.String(), true)
					return
				}
				answered.Add(1)
			}
		}(g)
	}
	pollUntil(t, 30*time.Second, "checks under load", func() (bool, string) {
		return answered.Load() >= 500, fmt.Sprintf("%d answered", answered.Load())
	})
	s.stop(t) // SIGTERM; fails the test unless the exit is clean and prompt
	wg.Wait()
	bad.Range(func(k, _ any) bool {
		t.Errorf("during shutdown: %s", k)
		return true
	})

	db := s.openDB(t)
	var checks int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'CHECK_PERMISSION'`).Scan(&checks); err != nil {
		t.Fatal(err)
	}
	if checks != answered.Load() {
		t.Errorf("%d CHECK_PERMISSION records after the shutdown, want one per answered check (%d)", checks, answered.Load())
	}
	t.Logf("%d checks answered before the shutdown, %d records; %d clients saw the listener close", answered.Load(), checks, failed.Load())
}
