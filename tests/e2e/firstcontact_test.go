package e2e

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
)

// statusesOf runs n requests through send on workers goroutines and
// counts the answers by status.
func statusesOf(t *testing.T, n, workers int, send func(i int) (response, error)) map[int]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		errs   []error
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				r, err := send(i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[r.status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs[:min(len(errs), 5)] {
		t.Error(err)
	}
	return counts
}

// defaultRateLimitServer is a SQLite server with the shipped rate limits:
// nothing of the harness's lifting, RATE_LIMIT_DEFAULT and
// AUTH_RATE_LIMIT_UNAUTHENTICATED unset.
func defaultRateLimitServer(t *testing.T) *server {
	t.Helper()
	// A blank variable is an unset one.
	return sqliteServer(t, "RATE_LIMIT_DEFAULT=", "AUTH_RATE_LIMIT_UNAUTHENTICATED=")
}

// With the shipped settings a tenant's checks and writes are not limited:
// a burst of checks and a load of memberships, each past the old default
// of 1000 per hour, get no 429 (and no rate-limit headers), while requests
// the authentication gate refuses stay limited per client IP, 1000 per
// hour.
func TestShippedRateLimits(t *testing.T) {
	t.Parallel()
	s := defaultRateLimitServer(t)
	c := s.client(newKey(t))
	mustResult(t, c.post(t, "/api/role/reader"), true)
	mustResult(t, c.post(t, "/api/permission/reader/read"), true)

	const memberships, checks = 1200, 2500
	got := statusesOf(t, memberships, 8, func(i int) (response, error) {
		return s.send("POST", fmt.Sprintf("/api/membership/user%d/reader", i), c.auth())
	})
	if want := map[int]int{200: memberships}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d membership writes: statuses %v, want %v", memberships, got, want)
	}
	got = statusesOf(t, checks, 16, func(i int) (response, error) {
		return s.send("GET", fmt.Sprintf("/api/has_permission/user%d/read", i%memberships), c.auth())
	})
	if want := map[int]int{200: checks}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d checks: statuses %v, want %v", checks, got, want)
	}
	r := c.get(t, "/api/has_permission/user1/read")
	if !hasPermission(t, r) {
		t.Errorf("user1 cannot read after the load: %s", r)
	}
	noRateHeaders(t, r)
	if got := s.metricValue(t, `auth_ratelimit_rejections_total{route_class="reads"}`) +
		s.metricValue(t, `auth_ratelimit_rejections_total{route_class="writes"}`); got != 0 {
		t.Errorf("tenant rejections = %v, want 0", got)
	}

	// Refused requests from one address: 1000 per hour, then 429.
	const budget = 1000
	start := time.Now()
	got = statusesOf(t, budget, 16, func(int) (response, error) {
		return s.send("GET", "/api/roles", "Authorization: Bearer not-a-uuid")
	})
	if want := map[int]int{400: budget}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d refused requests: statuses %v, want %v", budget, got, want)
	}
	r = s.do(t, "GET", "/api/roles", "Authorization: Bearer not-a-uuid")
	// The budget refills one request every 3.6 s from the first request
	// on: the wait is 4 s rounded up, less what the burst took (at least
	// 1 s), and the message says the same as Retry-After.
	wait, err := strconv.Atoi(r.header.Get("Retry-After"))
	if low := max(1, int(math.Ceil((3600*time.Millisecond - time.Since(start)).Seconds()))); err != nil || wait < low || wait > 4 {
		t.Errorf("Retry-After = %q, want %d to 4 seconds", r.header.Get("Retry-After"), low)
	}
	expectError(t, r, 429, fmt.Sprintf("Rate limit exceeded (1000 per hour). Retry after %d seconds.", wait))
	if got := r.header.Get("RateLimit-Policy"); got != "1000;w=3600" {
		t.Errorf("RateLimit-Policy = %q, want 1000;w=3600", got)
	}
}

// AUTH_TEST_BULK_MEMBERSHIPS=N (e.g. 100000) loads N memberships into one
// tenant through POST /api/membership/{user}/{role} with the shipped
// settings: every write is answered 200 (no rate limit, memory budget or
// other default refuses it) and the members are all there. Opt-in: it takes
// about two minutes for 100 000 on SQLite.
func TestBulkMemberships(t *testing.T) {
	n := 0
	if v := os.Getenv("AUTH_TEST_BULK_MEMBERSHIPS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			t.Fatalf("AUTH_TEST_BULK_MEMBERSHIPS=%q: want a positive number", v)
		}
	}
	if n == 0 {
		t.Skip("set AUTH_TEST_BULK_MEMBERSHIPS=100000 to load that many memberships")
	}
	s := defaultRateLimitServer(t)
	c := s.client(newKey(t))
	roles := []string{"viewer", "editor", "admin"}
	for _, role := range roles {
		mustResult(t, c.post(t, "/api/role/"+role), true)
	}
	got := statusesOf(t, n, 16, func(i int) (response, error) {
		return s.send("POST", fmt.Sprintf("/api/membership/user%d/%s", i, roles[i%len(roles)]), c.auth())
	})
	if want := map[int]int{200: n}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d membership writes: statuses %v, want %v", n, got, want)
	}
	total := 0
	for _, role := range roles {
		total += len(resultField(t, c.get(t, "/api/members/"+role), "user"))
	}
	if total != n {
		t.Errorf("%d members in all, want %d", total, n)
	}
}

// JSON answers are not HTML-escaped: '<', '>' and '&' are written as
// they are, not as \u003c, \u003e and \u0026.
func TestJSONNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	c := s.client(newKey(t))
	for _, tc := range []struct {
		name   string
		r      response
		status int
		want   string
	}{
		{"Authorization header format", s.do(t, "GET", "/api/roles", "Authorization: Basic abc"), 401, `'Bearer <token>'`},
		{"a name with < and >", c.post(t, "/api/membership/j%3Cb%3E/admin"), 400, `"Invalid user name: j<b>.`},
		{"a name with &", c.get(t, "/api/has_permission/a%26b/read"), 400, `"Invalid user name: a&b.`},
	} {
		if tc.r.status != tc.status {
			t.Errorf("%s: %s, want %d", tc.name, tc.r, tc.status)
		}
		body := string(tc.r.body)
		if !strings.Contains(body, tc.want) || strings.Contains(body, `\u00`) {
			t.Errorf("%s: body %s, want %s written as is", tc.name, body, tc.want)
		}
	}
}

// A POSTGRESQL_URL of the wrong shape stops the server at start with a
// message naming the variable and what is wrong, without the password or
// libpq's words; one set while the database is SQLite is warned about.
func TestPostgresURLAtStart(t *testing.T) {
	t.Parallel()
	const password = "s3cretPassw0rd"
	dir := t.TempDir()
	out := startFailure(t, serverEnv(dir+"/unused.sqlite3", "AUTH_DB_TYPE=postgres", "POSTGRESQL_URL=auth:"+password+"@127.0.0.1:1/auth"))
	for _, want := range []string{"POSTGRESQL_URL", "has no scheme", "postgres://"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, password) || strings.Contains(out, "connect_timeout") {
		t.Errorf("stderr shows the password or libpq's words:\n%s", out)
	}

	s := sqliteServer(t, "POSTGRESQL_URL=postgres://auth:"+password+"@db/auth")
	log := s.stderr.String()
	if !strings.Contains(log, `"level":"WARN","msg":"configuration: POSTGRESQL_URL: is set but AUTH_DB_TYPE is sqlite, so it is not used`) {
		t.Errorf("no warning about POSTGRESQL_URL with SQLite:\n%s", log)
	}
	if strings.Contains(log, password) {
		t.Errorf("the log shows the password:\n%s", log)
	}
}

// In development mode (as `make run` starts it) the log is text, and the
// audit records of checks are not written to it: a change's record is,
// once.
func TestDevelopmentLog(t *testing.T) {
	t.Parallel()
	env := baseEnv("AUTH_ENV=development", "SERVER_HOST=127.0.0.1", "SERVER_PORT=0",
		"AUTH_DB_PATH="+filepath.Join(t.TempDir(), "auth.sqlite3"), "AUTH_AUDIT_KEY="+testAuditKey, "JWT_SECRET_KEY="+testJWTSecret)
	cmd := exec.Command(binPath, "serve")
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log testenv.LogBuffer
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pipe)
		addrRE := regexp.MustCompile(`msg="auth-server listening" .*addr=(\S+)`)
		for sc.Scan() {
			_, _ = log.Write(append(sc.Bytes(), '\n'))
			if m := addrRE.FindSubmatch(sc.Bytes()); m != nil {
				select {
				case addrc <- string(m[1]):
				default:
				}
			}
		}
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr:\n%s", log.String())
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-readDone:
		t.Fatalf("exited without a text \"auth-server listening\" line")
	case <-time.After(testenv.StartTimeout):
		t.Fatalf("no text \"auth-server listening\" line within %v", testenv.StartTimeout)
	}
	s := &server{base: "http://" + addr, http: &http.Client{Timeout: 10 * time.Second}}
	c := s.client(newKey(t))
	mustResult(t, c.post(t, "/api/role/admin"), true)
	for i := 0; i < 3; i++ {
		if hasPermission(t, c.get(t, "/api/has_permission/alice/read")) {
			t.Fatal("alice can read")
		}
	}
	// Stopping the server writes what its audit queue holds.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-readDone
	out := log.String()
	if strings.Contains(out, `{"time"`) {
		t.Errorf("JSON log lines in development mode")
	}
	if n := strings.Count(out, "msg=audit "); n != 1 || !strings.Contains(out, "action=CREATE_ROLE") {
		t.Errorf("%d audit lines, want 1, the change's", n)
	}
	if strings.Contains(out, "action=CHECK_PERMISSION") {
		t.Errorf("a check's audit record is in the log")
	}
}

// TestDevelopmentKeyWarning: a command run beside a development server
// warns about the local audit key only when it creates it, so commands
// beside `make run` print their answer alone.
func TestDevelopmentKeyWarning(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "auth.sqlite3")
	run := func(args ...string) string {
		cmd := exec.Command(binPath, args...)
		cmd.Env = baseEnv("AUTH_ENV=development", "AUTH_DB_PATH="+db)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("auth-server %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("migrate")
	if out := run("audit", "verify"); !strings.Contains(out, "development mode: created a local audit key") {
		t.Errorf("first command in development mode: no warning that it created the audit key:\n%s", out)
	}
	if _, err := os.Stat(db + ".audit-key"); err != nil {
		t.Fatalf("the development audit key was not kept: %v", err)
	}
	if out := run("audit", "verify"); strings.Contains(out, "audit key") {
		t.Errorf("second command warned again about the existing audit key:\n%s", out)
	}
}
