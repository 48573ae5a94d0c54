package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/policy"
)

const opsKey = "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a47"

// opsPolicy answers checks from a fixed rule and fails writes with err.
type opsPolicy struct {
	Authorizer // nil: other methods are not used
	writeErr   error
}

func (p *opsPolicy) HasPermission(_ context.Context, _ policy.KeyHash, user, perm string) (bool, error) {
	return user == "alice" && perm == "read", nil
}

func (p *opsPolicy) CreateRole(context.Context, policy.KeyHash, string) (bool, error) {
	return p.writeErr == nil, p.writeErr
}

func opsServer(t *testing.T, cfg Config, deps Deps) *Server {
	t.Helper()
	if deps.Policy == nil {
		deps.Policy = &opsPolicy{}
	}
	deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(cfg, deps)
}

func opsDo(s *Server, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// A write the store cannot take answers 503 with Retry-After: the breaker's
// hint when it has one (rounded up to whole seconds), 1 otherwise.
func TestUnavailableAnswers503WithRetryAfter(t *testing.T) {
	open := &breaker.Error{Breaker: "database_write", Rejected: true, Retry: 2500 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		err       error
		wantCode  int
		wantRetry string
	}{
		{"breaker open", fmt.Errorf("%w: %w", policy.ErrUnavailable, open), 503, "3"},
		{"counted failure", fmt.Errorf("%w: %w", policy.ErrUnavailable, &breaker.Error{Breaker: "db", Err: errors.New("refused"), Retry: time.Second}), 503, "1"},
		{"deadline", fmt.Errorf("create role: %w", context.DeadlineExceeded), 503, "1"},
		{"unavailable without hint", policy.ErrUnavailable, 503, "1"},
		{"audit store unavailable", fmt.Errorf("%w: %w", audit.ErrUnavailable, open), 503, "3"},
		{"other database error", errors.New("constraint"), 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := opsServer(t, Config{}, Deps{Policy: &opsPolicy{writeErr: tc.err}})
			rec := opsDo(s, "POST", "/api/role/admin", "Authorization: Bearer "+opsKey)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetry)
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != tc.wantCode || body.Success {
				t.Errorf("body %s is not the JSON error envelope of %d", rec.Body, tc.wantCode)
			}
			if strings.Contains(rec.Body.String(), "breaker") || strings.Contains(rec.Body.String(), "refused") {
				t.Errorf("body leaks the internal cause: %s", rec.Body)
			}
		})
	}
}

func TestReadyAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ready    func(context.Context) error
		wantCode int
		wantBody string
	}{
		{"no check", nil, 200, `{"status":"ready"}`},
		{"ready", func(context.Context) error { return nil }, 200, `{"status":"ready"}`},
		{"database", func(context.Context) error {
			return &NotReady{Check: "database", Err: errors.New("dial tcp 10.0.0.1: refused")}
		}, 503,
			`{"check":"database","status":"unavailable"}`},
		{"migrations", func(context.Context) error { return &NotReady{Check: "migrations", Err: errors.New("old schema")} }, 503,
			`{"check":"migrations","status":"unavailable"}`},
		{"plain error", func(context.Context) error { return errors.New("x") }, 503, `{"check":"database","status":"unavailable"}`},
		{"hanging check", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 503, `{"check":"database","status":"unavailable"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := opsServer(t, Config{}, Deps{Ready: tc.ready})
			start := time.Now()
			rec := opsDo(s, "GET", "/ready")
			if d := time.Since(start); d > readyTimeout+time.Second {
				t.Errorf("/ready took %v, want at most about %v", d, readyTimeout)
			}
			if rec.Code != tc.wantCode || strings.TrimSpace(rec.Body.String()) != tc.wantBody {
				t.Errorf("/ready = %d %s, want %d %s", rec.Code, rec.Body, tc.wantCode, tc.wantBody)
			}
		})
	}
	// /health never depends on the checks.
	s := opsServer(t, Config{}, Deps{Ready: func(context.Context) error { return errors.New("down") }})
	if rec := opsDo(s, "GET", "/health"); rec.Code != 200 {
		t.Errorf("/health = %d while not ready, want 200", rec.Code)
	}
}

func TestMetricsToken(t *testing.T) {
	const token = "s3cret-metrics-token-0123456789"
	for _, tc := range []struct {
		name     string
		token    string
		header   []string
		wantCode int
	}{
		{"open without token", "", nil, 200},
		{"token required, none sent", token, nil, 401},
		{"wrong token", token, []string{"Authorization: Bearer wrong"}, 401},
		{"token as prefix", token, []string{"Authorization: Bearer " + token[:10]}, 401},
		{"wrong scheme", token, []string{"Authorization: Basic " + token}, 401},
		{"client key instead", token, []string{"Authorization: Bearer " + opsKey}, 401},
		{"right token", token, []string{"Authorization: Bearer " + token}, 200},
		{"scheme in lower case", token, []string{"Authorization: bearer " + token}, 200},
		{"right token twice", token, []string{"Authorization: Bearer " + token, "Authorization: Bearer " + token}, 400},
		{"wrong token, then the right one", token, []string{"Authorization: Bearer wrong", "Authorization: Bearer " + token}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := opsServer(t, Config{MetricsToken: tc.token}, Deps{Metrics: metrics.New()})
			rec := opsDo(s, "GET", "/metrics", tc.header...)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if tc.wantCode == 400 && !strings.Contains(rec.Body.String(), msgDupHeader) {
				t.Errorf("400 body does not say why: %s", rec.Body)
			}
			if tc.wantCode == 401 {
				var body errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != 401 {
					t.Errorf("401 body is not the JSON error envelope: %s", rec.Body)
				}
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(rec.Body.String(), token) {
					t.Error("the token is echoed")
				}
			} else if tc.wantCode == 200 && !strings.Contains(rec.Body.String(), "go_goroutines") {
				t.Errorf("200 without metrics: %.200s", rec.Body)
			}
		})
	}
}

// scrape returns the samples of the server's /metrics, by series (name and
// labels as written).
func scrape(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	rec := opsDo(s, "GET", "/metrics")
	if rec.Code != 200 {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// Requests are counted by route pattern, never by raw path; checks by kind
// and decision.
func TestRequestAndDecisionMetrics(t *testing.T) {
	mx := metrics.New()
	b := breaker.New(breaker.Options{Name: "database_write"})
	mx.Breaker(b)
	s := opsServer(t, Config{}, Deps{Metrics: mx})
	auth := "Authorization: Bearer " + opsKey
	opsDo(s, "GET", "/api/has_permission/alice/read", auth)
	opsDo(s, "GET", "/api/has_permission/bob/read", auth)
	opsDo(s, "GET", "/api/v1/has_permission/carol/read", auth)
	opsDo(s, "GET", "/api/has_permission/alice/read") // 401
	opsDo(s, "GET", "/no/such/route/secret-name")
	got := scrape(t, s)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`auth_http_requests_total{code="200",method="GET",route="/api/has_permission/:user/:name"}`, 2},
		{`auth_http_requests_total{code="200",method="GET",route="/api/v1/has_permission/:user/:name"}`, 1},
		{`auth_http_requests_total{code="401",method="GET",route="/api/has_permission/:user/:name"}`, 1},
		{`auth_http_requests_total{code="404",method="GET",route="unmatched"}`, 1},
		{`auth_http_request_duration_seconds_count{method="GET",route="/api/has_permission/:user/:name"}`, 3},
		{`auth_decisions_total{decision="allowed",kind="has_permission"}`, 1},
		{`auth_decisions_total{decision="denied",kind="has_permission"}`, 2},
		{`auth_breaker_state{breaker="database_write"}`, 0},
		{`auth_breaker_rejections_total{breaker="database_write"}`, 0},
	} {
		if v, ok := got[tc.series]; !ok || v != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.series, v, ok, tc.want)
		}
	}
	for series := range got {
		for _, raw := range []string{"alice", "bob", "secret-name"} {
			if strings.Contains(series, raw) {
				t.Errorf("series %s holds a raw path element %q", series, raw)
			}
		}
	}
}

func TestCheckKind(t *testing.T) {
	for route, want := range map[string]string{
		"/api/has_permission/:user/:name":                 "has_permission",
		"/api/v1/has_permission/:user/:name":              "has_permission",
		"/api/permission/:group/:name":                    "role_permission",
		"/api/v1/membership/:user/:group":                 "membership",
		"/api/workflow/user/:user/can_run/:workflow_name": "workflow",
		"/api/v2/checks":                                  "checks",
		"/api":                                            "other",
	} {
		if got := checkKind(route); got != want {
			t.Errorf("checkKind(%q) = %q, want %q", route, got, want)
		}
	}
}

func TestRetryAfterRounding(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {5 * time.Second, "5"}} {
		err := &breaker.Error{Rejected: true, Retry: tc.d}
		if got := retryAfter(err); got != tc.want {
			t.Errorf("retryAfter(%v) = %s, want %s", tc.d, got, tc.want)
		}
	}
	if got := retryAfter(errors.New("x")); got != "1" {
		t.Errorf("retryAfter(no hint) = %s, want 1", got)
	}
}

// TestMetricsCardinalityIsBounded: thousands of requests with made-up
// methods, paths and headers, on /ping, under /api and elsewhere, add no
// series to /metrics, and neither its size nor the heap grows with them.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	mx := metrics.New()
	s := opsServer(t, Config{}, Deps{Metrics: mx})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := ts.Client()
	send := func(method, path string, header ...string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// scrape returns the body of /metrics and its series of the service's
	// own metrics (the Go runtime's are fixed in number).
	scrape := func() (size int, series int) {
		t.Helper()
		resp, err := client.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "auth_") {
				series++
			}
		}
		return len(b), series
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// One request of every shape the flood sends, so that every series it
	// may legitimately touch exists before the count is taken.
	warm := func(i int) {
		m := fmt.Sprintf("M%d", i)
		send(m, "/ping", "X-Made-Up-"+m, m)
		send(m, "/api/role/r"+m, "Authorization", "Bearer "+opsKey)
		send(m, "/nowhere/"+m)
		send("GET", "/nowhere/"+m, "X-Made-Up-"+m, m)
		send("GET", "/ping", "X-Made-Up-"+m, m)
	}
	warm(0)
	scrape() // the scrape's own series
	size0, series0 := scrape()
	heap0 := heap()
	const flood = 5000
	for i := 1; i <= flood; i++ {
		warm(i)
	}
	size1, series1 := scrape()
	heap1 := heap()
	if series1 != series0 {
		t.Errorf("%d requests with made-up methods and paths took the series from %d to %d", 5*flood, series0, series1)
	}
	// Counters gain digits, nothing else: far under 10 % for this size.
	if float64(size1) > 1.1*float64(size0) {
		t.Errorf("/metrics grew from %d to %d bytes", size0, size1)
	}
	// A series costs about a kilobyte: 5000 new ones would be megabytes.
	if heap1 > heap0+2<<20 {
		t.Errorf("the heap grew from %d to %d bytes after the flood", heap0, heap1)
	}
	t.Logf("series %d → %d, /metrics %d → %d bytes, heap %d → %d bytes", series0, series1, size0, size1, heap0, heap1)
}
