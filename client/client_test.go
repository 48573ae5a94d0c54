package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eapache/go-resiliency/breaker"

	"github.com/ourway/auth/client"
)

// fake is a scripted HTTP server: handler gets the 1-based number of the
// request.
type fake struct {
	*httptest.Server
	hits  atomic.Int64
	conns atomic.Int64
	mu    sync.Mutex
	h     func(n int64, w http.ResponseWriter, r *http.Request)
	reqs  []string // "METHOD RequestURI"
	auth  []string // Authorization headers
}

func newFake(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) *fake {
	t.Helper()
	f := &fake{h: h}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.hits.Add(1)
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.RequestURI)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		h := f.h
		f.mu.Unlock()
		h(n, w, r)
	}))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// set replaces the handler.
func (f *fake) set(h func(n int64, w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h = h
}

func (f *fake) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// reply answers status with body and header pairs.
func reply(status int, body string, header ...string) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// drop closes the connection without an answer.
func drop(_ int64, w http.ResponseWriter, _ *http.Request) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		c.Close()
	}
}

// hang answers only when the client gives up.
func hang(_ int64, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// failFirst answers with fail for the first n requests, then with ok.
func failFirst(n int64, fail, ok func(int64, http.ResponseWriter, *http.Request)) func(int64, http.ResponseWriter, *http.Request) {
	return func(i int64, w http.ResponseWriter, r *http.Request) {
		if i <= n {
			fail(i, w, r)
			return
		}
		ok(i, w, r)
	}
}

const (
	pong    = `{"message":"PONG"}`
	yes     = `{"result":true}`
	checkOK = `{"code":200,"data":{"has_permission":true},"message":"m","success":true,"timestamp":"t"}`
	rolesOK = `{"result":[{"description":null,"role":"admin"}]}`
)

func newClient(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	if opts.Token == "" {
		opts.Token = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	}
	if opts.RetryBaseDelay == 0 {
		opts.RetryBaseDelay = time.Millisecond
		opts.RetryMaxDelay = 5 * time.Millisecond
	}
	c, err := client.New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "localhost:4000", "ftp://h", "http://", "http://h/?q=1", "http://h/#f", "http://u:p@h/", "http://h/%zz"} {
		if _, err := client.New(client.Options{BaseURL: u}); err == nil {
			t.Errorf("New(BaseURL %q): got nil error, want one", u)
		}
	}
}

// Every method calls its route, with the values escaped as one path segment.
func TestRoutes(t *testing.T) {
	f := newFake(t, reply(200, `{}`))
	c := newClient(t, client.Options{BaseURL: f.URL, DisableBreaker: true})
	want := map[string]string{
		"Ping":              "GET /ping",
		"Health":            "GET /health",
		"Ready":             "GET /ready",
		"CreateRole":        "POST /api/role/admin",
		"DeleteRole":        "DELETE /api/role/admin",
		"ListRoles":         "GET /api/roles",
		"AddPermission":     "POST /api/permission/admin/read",
		"RemovePermission":  "DELETE /api/permission/admin/read",
		"RoleHasPermission": "GET /api/permission/admin/read",
		"AddMembership":     "POST /api/membership/john/admin",
		"RemoveMembership":  "DELETE /api/membership/john/admin",
		"HasMembership":     "GET /api/membership/john/admin",
		"HasPermission":     "GET /api/has_permission/john/read",
		"UserPermissions":   "GET /api/user_permissions/john",
		"RolePermissions":   "GET /api/role_permissions/admin",
		"UserRoles":         "GET /api/user_roles/john",
		"RoleMembers":       "GET /api/members/admin",
		"WhichRolesCan":     "GET /api/which_roles_can/read",
		"WhichUsersCan":     "GET /api/which_users_can/read",
		"WorkflowUsers":     "GET /api/workflow/users/read",
		"CanRunWorkflow":    "GET /api/workflow/user/john/can_run/read",
		"RoleParents":       "GET /api/role/admin/parents",
		"AddRoleParent":     "POST /api/role/admin/parents/base",
		"RemoveRoleParent":  "DELETE /api/role/admin/parents/base",
		"Audit":             "GET /api/audit?limit=10",
	}
	for _, tc := range calls {
		before := len(f.requests())
		_, _ = tc.fn(context.Background(), c)
		reqs := f.requests()
		if len(reqs) != before+1 {
			t.Errorf("%s: sent %d requests, want 1", tc.name, len(reqs)-before)
			continue
		}
		if got := reqs[before]; got != want[tc.name] {
			t.Errorf("%s: got request %q, want %q", tc.name, got, want[tc.name])
		}
	}
	if len(want) != len(calls) {
		t.Errorf("route table has %d entries, calls has %d", len(want), len(calls))
	}
}

func TestPathValuesEscapedAndPrefixKept(t *testing.T) {
	f := newFake(t, reply(200, checkOK))
	tests := []struct {
		base, user, want string
	}{
		{"", "john", "/api/has_permission/john/read"},
		{"/authz", "john", "/authz/api/has_permission/john/read"},
		{"/authz/", "john", "/authz/api/has_permission/john/read"},
		{"/a/b", "john", "/a/b/api/has_permission/john/read"},
		{"", "a/b", "/api/has_permission/a%2Fb/read"},
		{"", "a b", "/api/has_permission/a%20b/read"},
		{"", "50%", "/api/has_permission/50%25/read"},
		{"", "q?x#y", "/api/has_permission/q%3Fx%23y/read"},
		{"", "..", "/api/has_permission/%2E%2E/read"},
		{"", ".", "/api/has_permission/%2E/read"},
		{"", "john@example.com", "/api/has_permission/john@example.com/read"},
	}
	for _, tc := range tests {
		c := newClient(t, client.Options{BaseURL: f.URL + tc.base})
		before := len(f.requests())
		got, err := c.HasPermission(context.Background(), tc.user, "read")
		if err != nil || !got {
			t.Errorf("base %q user %q: got %v, %v; want true, nil", tc.base, tc.user, got, err)
			continue
		}
		if uri := strings.TrimPrefix(f.requests()[before], "GET "); uri != tc.want {
			t.Errorf("base %q user %q: got request URI %q, want %q", tc.base, tc.user, uri, tc.want)
		}
	}
}

func TestEmptyNameIsRefusedWithoutARequest(t *testing.T) {
	f := newFake(t, reply(200, checkOK))
	c := newClient(t, client.Options{BaseURL: f.URL})
	if got, err := c.HasPermission(context.Background(), "", "read"); err == nil || got {
		t.Errorf("HasPermission(\"\", read): got %v, %v; want false and an error", got, err)
	}
	if _, err := c.AddMembership(context.Background(), "john", ""); err == nil {
		t.Errorf("AddMembership(john, \"\"): got nil error, want one")
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("sent %d requests, want 0", n)
	}
}

func TestCredentialHeader(t *testing.T) {
	f := newFake(t, reply(200, checkOK))
	c := newClient(t, client.Options{BaseURL: f.URL, Token: "key-1"})
	jwt := c.WithToken("eyJhbGciOiJIUzI1NiJ9.e30.sig")
	for _, cl := range []*client.Client{c, jwt, c} {
		if _, err := cl.HasPermission(context.Background(), "john", "read"); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	got := append([]string(nil), f.auth...)
	f.mu.Unlock()
	want := []string{"Bearer key-1", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Bearer key-1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Authorization headers: got %q, want %q", got, want)
	}
}

// An idempotent request is retried on a transport failure and on 429, 502,
// 503 and 504, and then succeeds.
func TestRetriesIdempotentRequests(t *testing.T) {
	fails := []struct {
		name string
		h    func(int64, http.ResponseWriter, *http.Request)
	}{
		{"503", reply(503, `{"message":"down"}`)},
		{"502", reply(502, `bad gateway`)},
		{"504", reply(504, ``)},
		{"429", reply(429, `{"message":"slow down"}`)},
		{"dropped connection", drop},
	}
	methods := []struct {
		name, body string
		fn         func(*client.Client) (any, error)
		want       any
	}{
		{"GET HasPermission", checkOK, func(c *client.Client) (any, error) {
			return value(c.HasPermission(context.Background(), "john", "read"))
		}, true},
		{"GET ListRoles", rolesOK, func(c *client.Client) (any, error) {
			return value(c.ListRoles(context.Background()))
		}, []client.Role{{Name: "admin"}}},
		{"DELETE RemoveMembership", yes, func(c *client.Client) (any, error) {
			return value(c.RemoveMembership(context.Background(), "john", "admin"))
		}, true},
	}
	for _, fl := range fails {
		for _, m := range methods {
			t.Run(fl.name+"/"+m.name, func(t *testing.T) {
				f := newFake(t, failFirst(2, fl.h, reply(200, m.body)))
				c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 2})
				got, err := m.fn(c)
				if err != nil {
					t.Fatalf("got error %v, want success after two retries", err)
				}
				if !reflect.DeepEqual(got, m.want) {
					t.Errorf("got %#v, want %#v", got, m.want)
				}
				if n := f.hits.Load(); n != 3 {
					t.Errorf("server got %d requests, want 3 (2 failures, 1 success)", n)
				}
			})
		}
	}
}

// POST is never retried, whatever the failure.
func TestNeverRetriesPOST(t *testing.T) {
	tests := []struct {
		name string
		h    func(int64, http.ResponseWriter, *http.Request)
		is   error
	}{
		{"503", reply(503, `{"message":"down"}`), client.ErrUnavailable},
		{"502", reply(502, ``), client.ErrUnavailable},
		{"504", reply(504, ``), client.ErrUnavailable},
		{"429", reply(429, ``, "Retry-After", "0"), client.ErrRateLimited},
		{"dropped connection", drop, client.ErrUnavailable},
	}
	posts := []struct {
		name string
		fn   func(*client.Client) (bool, error)
	}{
		{"CreateRole", func(c *client.Client) (bool, error) { return c.CreateRole(context.Background(), "admin") }},
		{"AddPermission", func(c *client.Client) (bool, error) { return c.AddPermission(context.Background(), "admin", "read") }},
		{"AddMembership", func(c *client.Client) (bool, error) { return c.AddMembership(context.Background(), "john", "admin") }},
		{"AddRoleParent", func(c *client.Client) (bool, error) { return c.AddRoleParent(context.Background(), "a", "b") }},
	}
	for _, tc := range tests {
		for _, p := range posts {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				f := newFake(t, failFirst(1, tc.h, reply(200, yes)))
				c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 5})
				got, err := p.fn(c)
				if err == nil || got {
					t.Fatalf("got %v, %v; want false and an error", got, err)
				}
				if !errors.Is(err, tc.is) {
					t.Errorf("got error %v, want one matching %v", err, tc.is)
				}
				if n := f.hits.Load(); n != 1 {
					t.Errorf("server got %d requests, want 1 (no retry)", n)
				}
			})
		}
	}
}

// Other failures are not retried: a 4xx or a 500 is an answer.
func TestDoesNotRetryOtherStatuses(t *testing.T) {
	tests := []struct {
		status int
		is     error // nil: matches no sentinel
	}{
		{400, nil}, {401, client.ErrUnauthorized}, {403, client.ErrUnauthorized}, {404, nil},
		{405, nil}, {409, nil}, {500, nil}, {501, nil},
	}
	for _, tc := range tests {
		f := newFake(t, reply(tc.status, `{"code":0,"details":{},"message":"no","success":false}`))
		c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 3})
		got, err := c.HasPermission(context.Background(), "john", "read")
		if err == nil || got {
			t.Errorf("%d: got %v, %v; want false and an error", tc.status, got, err)
			continue
		}
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Message != "no" {
			t.Errorf("%d: got error %#v, want an *APIError with status %d and message \"no\"", tc.status, err, tc.status)
		}
		for _, s := range []error{client.ErrUnauthorized, client.ErrRateLimited, client.ErrUnavailable} {
			if got, want := errors.Is(err, s), s == tc.is; got != want {
				t.Errorf("%d: errors.Is(err, %v) = %v, want %v", tc.status, s, got, want)
			}
		}
		if n := f.hits.Load(); n != 1 {
			t.Errorf("%d: server got %d requests, want 1", tc.status, n)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	for _, tc := range []struct{ maxRetries, wantHits int }{{-1, 1}, {0, 3}, {1, 2}, {4, 5}} {
		f := newFake(t, reply(503, `{"message":"down"}`))
		c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: tc.maxRetries, DisableBreaker: true})
		_, err := c.ListRoles(context.Background())
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 503 || !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("MaxRetries %d: got error %v, want the last 503 as an *APIError", tc.maxRetries, err)
		}
		if n := f.hits.Load(); n != int64(tc.wantHits) {
			t.Errorf("MaxRetries %d: server got %d requests, want %d", tc.maxRetries, n, tc.wantHits)
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFake(t, failFirst(1, reply(503, ``, "Retry-After", "1"), reply(200, rolesOK)))
	c := newClient(t, client.Options{BaseURL: f.URL})
	start := time.Now()
	if _, err := c.ListRoles(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The backoff alone is at most 5 ms here.
	if took := time.Since(start); took < 950*time.Millisecond {
		t.Errorf("retried after %v, want at least the 1s of Retry-After", took)
	}
	if n := f.hits.Load(); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
}

func TestRetryAfterTooLongEndsRetries(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		opts       client.Options
		ctxTimeout time.Duration
	}{
		{"longer than MaxRetryAfter", "120", client.Options{}, 10 * time.Second},
		{"longer than the caller's deadline", "5", client.Options{MaxRetryAfter: time.Minute}, 2 * time.Second},
	}
	for _, tc := range tests {
		f := newFake(t, reply(429, ``, "Retry-After", tc.retryAfter))
		tc.opts.BaseURL = f.URL
		c := newClient(t, tc.opts)
		ctx := deadlineCtx(t, tc.ctxTimeout)
		start := time.Now()
		_, err := c.ListRoles(ctx)
		if !errors.Is(err, client.ErrRateLimited) {
			t.Errorf("%s: got error %v, want ErrRateLimited", tc.name, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: returned after %v, want at once", tc.name, took)
		}
		if n := f.hits.Load(); n != 1 {
			t.Errorf("%s: server got %d requests, want 1", tc.name, n)
		}
	}
}

// Options.Timeout bounds each attempt; a timed-out GET is retried, a POST
// is not, and the error is ErrUnavailable, never a denial.
func TestTimeout(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(*client.Client) (bool, error)
		wantHits int64
	}{
		{"GET", func(c *client.Client) (bool, error) { return c.HasPermission(context.Background(), "john", "read") }, 3},
		{"POST", func(c *client.Client) (bool, error) { return c.CreateRole(context.Background(), "admin") }, 1},
	}
	for _, tc := range tests {
		f := newFake(t, hang)
		c := newClient(t, client.Options{BaseURL: f.URL, Timeout: 100 * time.Millisecond, MaxRetries: 2})
		start := time.Now()
		got, err := tc.fn(c)
		took := time.Since(start)
		if got || !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: got %v, %v; want false and ErrUnavailable wrapping context.DeadlineExceeded", tc.name, got, err)
		}
		if max := time.Duration(tc.wantHits)*100*time.Millisecond + 2*time.Second; took > max {
			t.Errorf("%s: returned after %v, want within %v", tc.name, took, max)
		}
		if n := f.hits.Load(); n != tc.wantHits {
			t.Errorf("%s: server got %d requests, want %d", tc.name, n, tc.wantHits)
		}
	}
}

func TestCallerContextEndsRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		cancel() // the caller gives up while the first attempt is answered
		reply(503, ``)(n, w, r)
	})
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 100})
	_, err := c.ListRoles(ctx)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("got error %v, want the 503", err)
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("server got %d requests after the caller cancelled, want 1", n)
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		status        int
		body, wantMsg string
	}{
		{400, `{"code":400,"details":{},"message":"Invalid role name: bad.name","success":false,"timestamp":"t"}`, "Invalid role name: bad.name"},
		{502, `<html>bad gateway</html>`, "Bad Gateway"},
		{418, `{"message":""}`, "I'm a teapot"},
		{302, ``, "Found"},
	}
	for _, tc := range tests {
		f := newFake(t, reply(tc.status, tc.body, "Location", "http://127.0.0.1:1/elsewhere"))
		c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1})
		_, err := c.CreateRole(context.Background(), "bad.name")
		var ae *client.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%d: got %v, want an *APIError", tc.status, err)
			continue
		}
		if ae.StatusCode != tc.status || ae.Message != tc.wantMsg || string(ae.Body) != tc.body {
			t.Errorf("%d: got {%d %q %q}, want {%d %q %q}", tc.status, ae.StatusCode, ae.Message, ae.Body, tc.status, tc.wantMsg, tc.body)
		}
		if want := fmt.Sprintf("auth: POST /api/role/bad.name: %d %s", tc.status, tc.wantMsg); ae.Error() != want {
			t.Errorf("%d: Error() = %q, want %q", tc.status, ae.Error(), want)
		}
	}
}

// A 2xx answer without the expected fields is an error, never a false.
func TestUnexpectedAnswerIsAnError(t *testing.T) {
	for _, body := range []string{`{}`, `not json`, `{"result":null}`, `{"data":{}}`, `{"data":{"has_permission":null}}`, `{"message":"PING"}`} {
		f := newFake(t, reply(200, body))
		c := newClient(t, client.Options{BaseURL: f.URL})
		for _, tc := range calls {
			if tc.name == "Health" || tc.name == "Ready" {
				continue // their body is not read
			}
			v, err := tc.fn(context.Background(), c)
			if err == nil {
				t.Errorf("%s with answer %s: got %#v, nil; want an error", tc.name, body, v)
			}
			if v != nil && !reflect.ValueOf(v).IsZero() {
				t.Errorf("%s with answer %s: got value %#v, want the zero value", tc.name, body, v)
			}
		}
	}
}

// Connections are kept alive and reused.
func TestConnectionsAreReused(t *testing.T) {
	f := newFake(t, reply(200, checkOK))
	c := newClient(t, client.Options{BaseURL: f.URL})
	for i := 0; i < 20; i++ {
		if _, err := c.HasPermission(context.Background(), "john", "read"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}
}

// isOpen reports whether err is the breaker refusing a call.
func isOpen(err error) bool {
	return errors.Is(err, breaker.ErrBreakerOpen) && errors.Is(err, client.ErrUnavailable)
}

// The breaker counts transport failures, 5xx and 429, never 4xx.
func TestBreakerCountsOnlyServiceFailures(t *testing.T) {
	tests := []struct {
		name  string
		h     func(int64, http.ResponseWriter, *http.Request)
		trips bool
	}{
		{"500", reply(500, ``), true},
		{"502", reply(502, ``), true},
		{"503", reply(503, ``), true},
		{"504", reply(504, ``), true},
		{"429", reply(429, ``), true},
		{"dropped connection", drop, true},
		{"400", reply(400, ``), false},
		{"401", reply(401, ``), false},
		{"403", reply(403, ``), false},
		{"404", reply(404, ``), false},
		{"409", reply(409, ``), false},
		{"422", reply(422, ``), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, BreakerErrorThreshold: 3, BreakerTimeout: time.Minute})
			for i := 1; i <= 10; i++ {
				err := c.Ping(context.Background())
				if err == nil {
					t.Fatalf("call %d: got nil error", i)
				}
				if got, want := isOpen(err), tc.trips && i > 3; got != want {
					t.Fatalf("call %d: breaker open = %v, want %v (err %v)", i, got, want, err)
				}
			}
			want := int64(10)
			if tc.trips {
				want = 3
			}
			if n := f.hits.Load(); n != want {
				t.Errorf("server got %d requests, want %d", n, want)
			}
		})
	}
}

// pollUntil calls fn until it reports true or the deadline passes.
func pollUntil(t *testing.T, d time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBreakerOpensAndRecoversThroughHalfOpen(t *testing.T) {
	const timeout = 200 * time.Millisecond
	f := newFake(t, reply(503, ``))
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, BreakerErrorThreshold: 2, BreakerSuccessThreshold: 1, BreakerTimeout: timeout})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := c.Ping(ctx); isOpen(err) || err == nil {
			t.Fatalf("call %d: got %v, want the 503", i+1, err)
		}
	}
	opened := time.Now()
	if err := c.Ping(ctx); !isOpen(err) {
		t.Fatalf("after 2 failures: got %v, want the breaker open", err)
	}
	if n := f.hits.Load(); n != 2 {
		t.Fatalf("server got %d requests, want 2 (none while open)", n)
	}

	// Half-open with the service still failing: the one probe fails and
	// the breaker opens again at once.
	var probeErr error
	pollUntil(t, 5*time.Second, "half-open probe", func() bool {
		probeErr = c.Ping(ctx)
		return !isOpen(probeErr)
	})
	if since := time.Since(opened); since < timeout-20*time.Millisecond {
		t.Errorf("breaker let a call through %v after opening, want after %v", since, timeout)
	}
	if probeErr == nil || f.hits.Load() != 3 {
		t.Fatalf("probe: got %v with %d requests, want the 503 on request 3", probeErr, f.hits.Load())
	}
	if err := c.Ping(ctx); !isOpen(err) {
		t.Fatalf("after a failed probe: got %v, want the breaker open again", err)
	}

	// The service recovers: the next probe succeeds and closes it.
	f.set(reply(200, pong))
	pollUntil(t, 5*time.Second, "recovery", func() bool { return !isOpen(c.Ping(ctx)) })
	for i := 0; i < 5; i++ {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("after recovery, call %d: %v", i+1, err)
		}
	}
	if n := f.hits.Load(); n != 9 {
		t.Errorf("server got %d requests, want 9", n)
	}
	// Closed again: it takes 2 new failures to open it.
	f.set(reply(503, ``))
	if err := c.Ping(ctx); err == nil || isOpen(err) {
		t.Errorf("first failure after recovery: got %v, want the 503", err)
	}
	if err := c.Ping(ctx); err == nil || isOpen(err) {
		t.Errorf("second failure after recovery: got %v, want the 503", err)
	}
	if err := c.Ping(ctx); !isOpen(err) {
		t.Errorf("after 2 new failures: got %v, want the breaker open", err)
	}
}

// The breaker is shared by the copies made with WithToken.
func TestBreakerSharedByWithToken(t *testing.T) {
	f := newFake(t, reply(503, ``))
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, BreakerErrorThreshold: 2, BreakerTimeout: time.Minute})
	other := c.WithToken("another-tenant")
	_ = c.Ping(context.Background())
	_ = other.Ping(context.Background())
	if err := c.Ping(context.Background()); !isOpen(err) {
		t.Errorf("got %v, want the breaker open after one failure through each copy", err)
	}
}

// A call abandoned by its caller is not a failure of the service.
func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	f := newFake(t, hang)
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, BreakerErrorThreshold: 2, BreakerTimeout: time.Minute})
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		err := c.Ping(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || isOpen(err) {
			t.Fatalf("call %d: got %v, want the caller's deadline", i+1, err)
		}
	}
	f.set(reply(200, pong))
	if err := c.Ping(context.Background()); err != nil {
		t.Errorf("after 4 cancelled calls: got %v, want the breaker still closed", err)
	}
}

func TestBreakerDisabled(t *testing.T) {
	f := newFake(t, reply(503, ``))
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, BreakerErrorThreshold: 1, DisableBreaker: true})
	for i := 0; i < 5; i++ {
		if err := c.Ping(context.Background()); isOpen(err) {
			t.Fatalf("call %d: breaker open, want no breaker", i+1)
		}
	}
	if n := f.hits.Load(); n != 5 {
		t.Errorf("server got %d requests, want 5", n)
	}
}
