// Package e2e is the black-box HTTP test suite of auth-server: it builds the
// real binary once, runs it as a subprocess on a random port against SQLite
// and PostgreSQL, and talks to it over HTTP only.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/api/openapitest"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/settings"
)

// binPath is the auth-server binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "auth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binPath, err = testenv.BuildServer(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// baseEnv is the process environment without any setting of auth-server,
// plus extra (KEY=VALUE entries; later ones win).
func baseEnv(extra ...string) []string {
	return append(settings.Unconfigured(os.Environ()), extra...)
}

// envValue returns the last value of key in env.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// server is one running auth-server process.
type server struct {
	env    []string // the whole environment it was started with
	base   string   // http://127.0.0.1:PORT
	proc   *testenv.Process
	stderr *testenv.LogBuffer // the process's stderr
	http   *http.Client
	// dbType is "sqlite" or "postgresql"; dbPath and pgURL locate the data.
	dbType string
	dbPath string
	pgURL  string
	// mismatches are answers to send that do not match the OpenAPI
	// document, reported when the test ends.
	mismatches *mismatchLog
	// opsListener is a listener of the operational endpoints alone.
	opsListener bool
}

// mismatchLog collects schema mismatches of answers got without a test at
// hand (send, from any goroutine).
type mismatchLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *mismatchLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *mismatchLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// apiDoc validates every answer the suite gets from a documented route
// against the OpenAPI document the binary serves (the same source).
var apiDoc = func() *openapitest.Validator {
	v, err := openapitest.New(api.OpenAPIDocument())
	if err != nil {
		panic("e2e: the OpenAPI document: " + err.Error())
	}
	return v
}()

// checkSchema returns why r does not match the OpenAPI document (nil when it
// does, or when r's path is not in the document). An ops listener serves only
// /health, /ready and /metrics of the document; its other answers are 404s.
func (s *server) checkSchema(r response) error {
	if s.opsListener && !slices.Contains([]string{"/health", "/ready", "/metrics"}, r.path) {
		return nil
	}
	err := apiDoc.ValidateResponse(r.method, r.path, r.status, r.header.Get("Content-Type"), r.body)
	if errors.Is(err, openapitest.ErrNotDocumented) {
		return nil
	}
	return err
}

// stopTimeout bounds how long a server has to exit after SIGTERM.
const stopTimeout = 20 * time.Second

// startServer runs auth-server with env (a complete environment, see
// serverEnv) and waits until it answers /ping. It is stopped when the test
// ends; its stderr is printed if the test failed.
func startServer(t testing.TB, env []string) *server {
	t.Helper()
	s, err := launch(env)
	if err != nil {
		t.Fatalf("start auth-server: %v", err)
	}
	t.Cleanup(func() {
		s.stop(t)
		for _, err := range s.mismatches.all() {
			t.Errorf("answer does not match the OpenAPI document: %v", err)
		}
		if t.Failed() {
			t.Logf("auth-server stderr (%s):\n%s", s.base, s.stderr.String())
		}
	})
	return s
}

// testAuditKey is the audit key of the test servers.
const testAuditKey = "e2e-3b9f6c1d8a2e4f7091c5d3b8a6e2f4c19d7b5a3e"

// testJWTSecret signs the test servers' tokens.
const testJWTSecret = "e2e-jwt-5a1f9c3e7b2d4f6081a3c5e7b9d1f3a5"

// unlimited is a rate limit no test reaches.
const unlimited = "1000000 per second"

// serverEnv is the environment of a test server on a random port with a
// JSON log; extra entries win.
func serverEnv(dbPath string, extra ...string) []string {
	return baseEnv(append([]string{
		"SERVER_HOST=127.0.0.1",
		"SERVER_PORT=0",
		"AUTH_DB_PATH=" + dbPath,
		"AUTH_LOG_FORMAT=json",
		"AUTH_AUDIT_KEY=" + testAuditKey,
		"JWT_SECRET_KEY=" + testJWTSecret,
		// Tenants run with the shipped rate limits (none). Requests the
		// authentication gate refuses are limited per IP (1000 per hour by
		// default), and every test sends them from 127.0.0.1: that budget
		// is lifted out of the way of tests about something else.
		// ratelimit_test.go sets its own limits.
		"AUTH_RATE_LIMIT_UNAUTHENTICATED=" + unlimited,
		// Tests make many tenants from one address; tenants_test.go sets
		// these limits itself.
		"AUTH_TENANT_CREATION_LIMIT=" + unlimited,
		"AUTH_TENANT_CREATION_LIMIT_GLOBAL=" + unlimited,
	}, extra...)...)
}

func launch(env []string) (*server, error) {
	s := &server{
		env:    env,
		dbType: envValue(env, "AUTH_DB_TYPE"), dbPath: envValue(env, "AUTH_DB_PATH"),
		pgURL: envValue(env, "POSTGRESQL_URL"), mismatches: &mismatchLog{},
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns: 200, MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second,
			},
		},
	}
	if s.dbType == "" {
		s.dbType = "sqlite"
	}
	proc, err := testenv.Start(binPath, env, s.http)
	if err != nil {
		return nil, err
	}
	s.proc, s.stderr, s.base = proc, proc.Log, proc.Base
	return s, nil
}

// kill ends the process at once (SIGKILL), as a crash would.
func (s *server) kill() {
	s.proc.Kill()
}

// stop sends SIGTERM and waits for the process to exit; a non-zero exit or
// a hang is a test error. It is safe to call more than once.
func (s *server) stop(t testing.TB) {
	t.Helper()
	s.http.CloseIdleConnections()
	if err := s.proc.Stop(stopTimeout); err != nil {
		t.Errorf("auth-server %v", err)
	}
}

// restart stops s and starts a new server with the same environment (the
// same database).
func (s *server) restart(t testing.TB) *server {
	t.Helper()
	s.stop(t)
	return startServer(t, s.env)
}

// response is a whole HTTP response.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r response) String() string {
	return fmt.Sprintf("%s %s -> %d %s", r.method, r.path, r.status, strings.TrimSuffix(string(r.body), "\n"))
}

// do sends a request with the given headers ("Key: value"; a header with
// an empty value is sent empty) to path, which may hold percent-escapes, and
// checks the headers every response must carry.
func (s *server) do(t testing.TB, method, path string, headers ...string) response {
	t.Helper()
	return s.doBody(t, method, path, nil, headers...)
}

// doBody is do with a request body.
func (s *server) doBody(t testing.TB, method, path string, body []byte, headers ...string) response {
	t.Helper()
	r, err := s.sendBody(method, path, body, headers...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	checkCommonHeaders(t, r)
	if err := s.checkSchema(r); err != nil {
		t.Errorf("answer does not match the OpenAPI document: %v", err)
	}
	return r
}

// send is do without the checks, safe in any goroutine; an answer that does
// not match the OpenAPI document fails the test when it ends.
func (s *server) send(method, path string, headers ...string) (response, error) {
	r, err := s.sendBody(method, path, nil, headers...)
	if err == nil && s.mismatches != nil {
		if serr := s.checkSchema(r); serr != nil {
			s.mismatches.add(serr)
		}
	}
	return r, err
}

func (s *server) sendBody(method, path string, body []byte, headers ...string) (response, error) {
	u, err := url.Parse(s.base + path)
	if err != nil {
		return response{}, fmt.Errorf("bad test path %q: %v", path, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		return response{}, fmt.Errorf("new request %s %s: %v", method, path, err)
	}
	req.URL = u
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return response{}, fmt.Errorf("bad test header %q", h)
		}
		k = http.CanonicalHeaderKey(k)
		req.Header[k] = append(req.Header[k], strings.TrimPrefix(v, " "))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %v", method, path, err)
	}
	return response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: got}, nil
}

// securityHeaders must be on every response, errors included.
var securityHeaders = [][2]string{
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cache-Control", "no-store"},
}

func checkCommonHeaders(t testing.TB, r response) {
	t.Helper()
	if r.header.Get("X-Request-ID") == "" {
		t.Errorf("%s %s: no X-Request-ID header", r.method, r.path)
	}
	for _, h := range securityHeaders {
		if got := r.header.Get(h[0]); got != h[1] {
			t.Errorf("%s %s: header %s = %q, want %q", r.method, r.path, h[0], got, h[1])
		}
	}
}

// client is a tenant's view of a server.
type client struct {
	s   *server
	key string
}

func (s *server) client(key string) client { return client{s: s, key: key} }

func (c client) auth() string { return "Authorization: Bearer " + c.key }

func (c client) call(t testing.TB, method, path string, headers ...string) response {
	t.Helper()
	return c.s.do(t, method, path, append([]string{c.auth()}, headers...)...)
}

func (c client) get(t testing.TB, path string) response  { t.Helper(); return c.call(t, "GET", path) }
func (c client) post(t testing.TB, path string) response { t.Helper(); return c.call(t, "POST", path) }
func (c client) del(t testing.TB, path string) response  { t.Helper(); return c.call(t, "DELETE", path) }

// newKey returns a fresh random UUID4 client key.
func newKey(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// runBinary runs the binary with args and env until it exits (at most
// timeout) and returns its exit code, stdout and stderr.
func runBinary(t testing.TB, env []string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("auth-server %v did not exit within %v\nstderr:\n%s", args, timeout, stderr.String())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run auth-server %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}
