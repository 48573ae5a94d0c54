package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
)

func modelPath(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "models", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testWildcardModel runs the server with a keyMatch model: a grant of
// "reports_*" covers every permission starting with "reports_", also
// through role inheritance, and every read route agrees.
func testWildcardModel(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_MODEL_PATH="+modelPath(t, "keymatch.conf"))
	if !strings.Contains(s.stderr.String(), `"fast_path":false`) {
		t.Errorf("keyMatch model: want the server to report fast_path false (decisions through Enforce)")
	}
	c := s.client(newKey(t))
	for _, p := range []string{"/api/role/analyst", "/api/role/manager", "/api/role/clerk",
		"/api/permission/analyst/reports_%2A", "/api/permission/clerk/billing",
		"/api/membership/john/analyst", "/api/membership/mary/manager", "/api/membership/carl/clerk",
		"/api/role/manager/parents/analyst"} {
		mustResult(t, c.post(t, p), true)
	}
	cases := []struct {
		user, perm string
		want       bool
	}{
		{"john", "reports_2024", true},
		{"john", "reports_", true},
		{"john", "reports", false},
		{"john", "billing", false},
		{"john", "xreports_2024", false},
		{"mary", "reports_q1", true},
		{"mary", "billing", false},
		{"carl", "billing", true},
		{"carl", "reports_2024", false},
		{"nobody", "reports_2024", false},
	}
	for _, tc := range cases {
		if got := hasPermission(t, c.get(t, "/api/has_permission/"+tc.user+"/"+tc.perm)); got != tc.want {
			t.Errorf("has_permission %s/%s = %v, want %v", tc.user, tc.perm, got, tc.want)
		}
		if got := hasPermission(t, c.get(t, "/api/workflow/user/"+tc.user+"/can_run/"+tc.perm)); got != tc.want {
			t.Errorf("can_run %s/%s = %v, want %v", tc.user, tc.perm, got, tc.want)
		}
	}
	expect(t, c.get(t, "/api/permission/analyst/reports_2024"), 200, res("true"))
	expect(t, c.get(t, "/api/permission/analyst/billing"), 200, res("false"))
	expect(t, c.get(t, "/api/permission/manager/reports_2024"), 200, res("true"))
	expect(t, c.get(t, "/api/which_roles_can/reports_2024"), 200, res(`[{"role":"analyst"},{"role":"manager"}]`))
	expect(t, c.get(t, "/api/which_roles_can/billing"), 200, res(`[{"role":"clerk"}]`))
	expect(t, c.get(t, "/api/which_users_can/reports_2024"), 200, res(`[{"role":"analyst","user":"john"},{"role":"manager","user":"mary"}]`))
	expect(t, c.get(t, "/api/role_permissions/analyst"), 200, env(`[{"name":"reports_*"}]`, "Retrieved permissions for role 'analyst'"))
	expect(t, c.get(t, "/api/user_permissions/john"), 200, env(`{"count":1,"permissions":[{"name":"reports_*"}]}`, "Retrieved permissions for user 'john'"))
	// A check names one permission: a pattern is not a permission name.
	expectError(t, c.get(t, "/api/has_permission/john/reports_%2A"), 400, "Invalid permission name: reports_*. "+keyMatchRule)
	// Revoking the pattern revokes what it covered.
	expect(t, c.del(t, "/api/permission/analyst/reports_%2A"), 200, res("true"))
	if hasPermission(t, c.get(t, "/api/has_permission/mary/reports_q1")) {
		t.Errorf("mary keeps reports_q1 after the pattern was revoked")
	}
	expect(t, c.get(t, "/api/which_roles_can/reports_2024"), 200, res(`[]`))
}

// keyMatchRule is how a keyMatch model states its rule for permission names.
const keyMatchRule = "Under this model (keyMatch) permission names must be 1-128 characters long and contain only " +
	"letters, digits and - . / : _ { }; a granted permission is a keyMatch pattern and may also contain *."

// testPatternModel runs the server with a keyMatch2 model: permissions are
// paths, sent in the URL with each '/' encoded as %2F; a grant of
// "/reports/*" or "/reports/:id" covers the report paths and nothing else,
// and every read route agrees.
func testPatternModel(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_MODEL_PATH="+modelPath(t, "keymatch2.conf"))
	c := s.client(newKey(t))
	for _, p := range []string{"/api/role/analyst", "/api/role/viewer", "/api/role/clerk",
		"/api/permission/analyst/%2Freports%2F%2A",
		"/api/v1/permission/viewer/%2Freports%2F:id",
		"/api/permission/clerk/%2Fsales%2Fq3",
		"/api/membership/john/analyst", "/api/membership/mary/viewer", "/api/membership/carl/clerk"} {
		mustResult(t, c.post(t, p), true)
	}
	for _, tc := range []struct {
		user, perm string
		want       bool
	}{
		{"john", "%2Freports%2Fq3", true},
		{"john", "%2Freports%2Fq3%2Fdetail", true},
		{"john", "%2Fsales%2Fq3", false},
		{"john", "%2Freports", false},
		{"mary", "%2Freports%2Fq3", true},
		{"mary", "%2Freports%2Fq3%2Fdetail", false},
		{"mary", "%2Fsales%2Fq3", false},
		{"carl", "%2Fsales%2Fq3", true},
		{"carl", "%2Fsales%2Fq4", false},
		{"carl", "%2Freports%2Fq3", false},
		{"nobody", "%2Freports%2Fq3", false},
	} {
		for _, prefix := range prefixes {
			if got := hasPermission(t, c.get(t, prefix+"/has_permission/"+tc.user+"/"+tc.perm)); got != tc.want {
				t.Errorf("%s/has_permission %s/%s = %v, want %v", prefix, tc.user, tc.perm, got, tc.want)
			}
		}
		if got := hasPermission(t, c.get(t, "/api/workflow/user/"+tc.user+"/can_run/"+tc.perm)); got != tc.want {
			t.Errorf("can_run %s/%s = %v, want %v", tc.user, tc.perm, got, tc.want)
		}
	}
	// The decoded name is what the answers and messages show.
	expect(t, c.get(t, "/api/has_permission/john/%2Freports%2Fq3"), 200,
		env(`{"has_permission":true}`, "Permission check for user 'john' and permission '/reports/q3' completed"))
	expect(t, c.get(t, "/api/permission/viewer/%2Freports%2Fq3"), 200, res("true"))
	expect(t, c.get(t, "/api/permission/viewer/%2Fsales%2Fq3"), 200, res("false"))
	expect(t, c.get(t, "/api/which_roles_can/%2Freports%2Fq3"), 200, res(`[{"role":"analyst"},{"role":"viewer"}]`))
	expect(t, c.get(t, "/api/which_users_can/%2Freports%2Fq3"), 200, res(`[{"role":"analyst","user":"john"},{"role":"viewer","user":"mary"}]`))
	expect(t, c.get(t, "/api/which_users_can/%2Fsales%2Fq3"), 200, res(`[{"role":"clerk","user":"carl"}]`))
	expect(t, c.get(t, "/api/which_users_can/%2Fother"), 200, res(`[]`))
	expect(t, c.get(t, "/api/workflow/users/%2Freports%2Fq3"), 200,
		env(`{"count":2,"members":[{"role":"analyst","user":"john"},{"role":"viewer","user":"mary"}]}`, "Retrieved users who can run workflow '/reports/q3'"))
	expect(t, c.get(t, "/api/user_permissions/john"), 200, env(`{"count":1,"permissions":[{"name":"/reports/*"}]}`, "Retrieved permissions for user 'john'"))
	expect(t, c.get(t, "/api/role_permissions/viewer"), 200, env(`[{"name":"/reports/:id"}]`, "Retrieved permissions for role 'viewer'"))
	// Unencoded, the path's separator after the user is not part of the
	// name: the last parameter takes the rest of the path, "reports/q3",
	// which is another name (and not covered by "/reports/*").
	expect(t, c.get(t, "/api/has_permission/john/reports/q3"), 200,
		env(`{"has_permission":false}`, "Permission check for user 'john' and permission 'reports/q3' completed"))
	// Names outside the model's rule are refused with the rule.
	const rule = "Under this model (keyMatch2) permission names must be 1-128 characters long and contain only " +
		"letters, digits and - . / : _ { }; a granted permission is a keyMatch2 pattern and may also contain *."
	expectError(t, c.get(t, "/api/has_permission/john/%2Freports%2Fq%203"), 400, "Invalid permission name: /reports/q 3. "+rule)
	expectError(t, c.get(t, "/api/has_permission/john/%2Freports%2F%2A"), 400, "Invalid permission name: /reports/*. "+rule)
	expectError(t, c.post(t, "/api/permission/analyst/%2Fa%2F%2A%2A"), 400,
		"Invalid permission name: /a/**. It is not a valid keyMatch2 pattern (error parsing regexp: invalid nested repetition operator: `**`). "+rule)
	expectError(t, c.get(t, "/api/workflow/users/a%2Cb"), 400, "Invalid workflow name: a,b. "+rule)
	// Revoking the pattern revokes what it covered.
	expect(t, c.del(t, "/api/permission/analyst/%2Freports%2F%2A"), 200, res("true"))
	if hasPermission(t, c.get(t, "/api/has_permission/john/%2Freports%2Fq3")) {
		t.Errorf("john keeps /reports/q3 after the pattern was revoked")
	}
	expect(t, c.get(t, "/api/which_roles_can/%2Freports%2Fq3"), 200, res(`[{"role":"viewer"}]`))
}

// TestDefaultModelRefusesWildcards: without a pattern-matching model a '*'
// is not a valid permission name.
func TestDefaultModelRefusesWildcards(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	if !strings.Contains(s.stderr.String(), `"fast_path":true`) {
		t.Errorf("default model: want the server to report fast_path true")
	}
	c := s.client(newKey(t))
	mustResult(t, c.post(t, "/api/role/analyst"), true)
	expectError(t, c.post(t, "/api/permission/analyst/reports_%2A"), 400, longPermission("reports_*"))
	// Paths are not permission names of the default model (the v1 rule).
	expectError(t, c.post(t, "/api/permission/analyst/%2Freports%2Fq3"), 400, longPermission("/reports/q3"))
	expectError(t, c.get(t, "/api/has_permission/john/a.b"), 400, longPermission("a.b"))
	expect(t, c.get(t, "/api/role_permissions/analyst"), 200, env(`[]`, "Retrieved permissions for role 'analyst'"))
}

// startFailure runs the server with env and expects it to exit non-zero
// before listening; it returns the stderr.
func startFailure(t *testing.T, env []string) string {
	t.Helper()
	cmd := exec.Command(binPath)
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf testenv.LogBuffer
	var wg sync.WaitGroup
	wg.Add(1)
	listening := make(chan struct{})
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pipe)
		once := sync.Once{}
		for sc.Scan() {
			_, _ = buf.Write(append(sc.Bytes(), '\n'))
			var rec struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "auth-server listening" {
				once.Do(func() { close(listening) })
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		wg.Wait()
		exited <- cmd.Wait()
	}()
	select {
	case <-listening:
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("the server started; want it to refuse to start\nstderr:\n%s", buf.String())
		return buf.String()
	case err := <-exited:
		ee, ok := err.(*exec.ExitError)
		if err == nil || !ok || ee.ExitCode() == 0 {
			t.Errorf("exit: %v, want a non-zero exit status\nstderr:\n%s", err, buf.String())
		}
		return buf.String()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("neither listening nor exited within 30s\nstderr:\n%s", buf.String())
		return ""
	}
}

func TestStartupFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		extra []string
		want  []string // substrings of stderr
	}{
		{"model syntax error", []string{"AUTH_MODEL_PATH=" + modelPath(t, "bad_syntax.conf")}, []string{"model.conf", "AUTH_MODEL_PATH", "bad_syntax.conf"}},
		{"model matcher syntax error", []string{"AUTH_MODEL_PATH=" + modelPath(t, "bad_matcher.conf")}, []string{"model.conf", "AUTH_MODEL_PATH", "bad_matcher.conf"}},
		{"model unknown matcher function", []string{"AUTH_MODEL_PATH=" + modelPath(t, "unknown_function.conf")}, []string{"model.conf", "AUTH_MODEL_PATH", "noSuchMatch"}},
		{"model wrong request shape", []string{"AUTH_MODEL_PATH=" + modelPath(t, "wrong_request.conf")}, []string{"model.conf", "AUTH_MODEL_PATH", "request_definition", "sub, dom, obj"}},
		{"model file missing", []string{"AUTH_MODEL_PATH=" + modelPath(t, "no_such_model.conf")}, []string{"AUTH_MODEL_PATH", "no_such_model.conf"}},
		{"unknown database type", []string{"AUTH_DB_TYPE=oracle"}, []string{"AUTH_DB_TYPE", "oracle"}},
		{"port not a number", []string{"SERVER_PORT=abc"}, []string{"SERVER_PORT"}},
		{"port out of range", []string{"SERVER_PORT=70000"}, []string{"SERVER_PORT", "70000"}},
		{"negative port", []string{"SERVER_PORT=-1"}, []string{"SERVER_PORT"}},
		{"CORS not a boolean", []string{"ALLOW_CORS=maybe"}, []string{"ALLOW_CORS"}},
		{"rate limit not parseable", []string{"RATE_LIMIT_DEFAULT=lots"}, []string{"RATE_LIMIT_DEFAULT"}},
		{"rate limit with unknown unit", []string{"RATE_LIMIT_DEFAULT=10 per fortnight"}, []string{"RATE_LIMIT_DEFAULT"}},
		{"JWT algorithm none", []string{"JWT_ALGORITHM=none"}, []string{"JWT_ALGORITHM"}},
		{"JWT algorithm RS256", []string{"JWT_ALGORITHM=RS256"}, []string{"JWT_ALGORITHM"}},
		{"PostgreSQL without URL", []string{"AUTH_DB_TYPE=postgresql"}, []string{"POSTGRESQL_URL"}},
		{"rate limit storage unknown", []string{"RATELIMIT_STORAGE_URL=memcached://x"}, []string{"RATELIMIT_STORAGE_URL"}},
		{"log format unknown", []string{"AUTH_LOG_FORMAT=xml"}, []string{"AUTH_LOG_FORMAT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stderr := startFailure(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), tc.extra...))
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, stderr)
				}
			}
		})
	}
	t.Run("secret not echoed", func(t *testing.T) {
		t.Parallel()
		// A PostgreSQL URL that cannot connect: the password must not be
		// printed.
		stderr := startFailure(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"),
			"AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL=postgres://u:s3cretPassw0rd@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"))
		if strings.Contains(stderr, "s3cretPassw0rd") {
			t.Errorf("stderr shows the database password:\n%s", stderr)
		}
	})
}

var migratedRE = regexp.MustCompile(`\((\d+) migration\(s\) applied\)`)

func TestCommands(t *testing.T) {
	t.Parallel()
	env := baseEnv()
	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runBinary(t, env, 30*time.Second, "version")
		if code != 0 || !strings.HasPrefix(stdout, "auth-server ") || strings.TrimSpace(stdout) == "auth-server" {
			t.Errorf("version: exit %d, stdout %q, stderr %q; want 0 and \"auth-server <version>\"", code, stdout, stderr)
		}
	})
	for _, arg := range []string{"--help", "help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, env, 30*time.Second, arg)
			if code != 0 {
				t.Errorf("%s: exit %d, stderr %q", arg, code, stderr)
			}
			for _, w := range []string{"serve", "migrate", "version"} {
				if !strings.Contains(stdout, w) {
					t.Errorf("%s: output does not list %q:\n%s", arg, w, stdout)
				}
			}
		})
	}
	t.Run("migrate", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "auth.sqlite3")
		menv := baseEnv("AUTH_DB_PATH=" + db)
		code, stdout, stderr := runBinary(t, menv, 60*time.Second, "migrate")
		m := migratedRE.FindStringSubmatch(stdout)
		if code != 0 || m == nil || m[1] == "0" {
			t.Fatalf("first migrate: exit %d, stdout %q, stderr %q; want 0 and some migrations applied", code, stdout, stderr)
		}
		code, stdout, stderr = runBinary(t, menv, 60*time.Second, "migrate")
		m = migratedRE.FindStringSubmatch(stdout)
		if code != 0 || m == nil || m[1] != "0" {
			t.Errorf("second migrate: exit %d, stdout %q, stderr %q; want 0 and 0 migrations applied", code, stdout, stderr)
		}
		// The migrated file serves.
		s := startServer(t, serverEnv(db))
		expect(t, s.client(newKey(t)).get(t, "/api/roles"), 200, res(`[]`))
	})
	for _, args := range [][]string{{"bogus"}, {"serve", "extra"}, {"--no-such-flag"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			code, stdout, stderr := runBinary(t, baseEnv("AUTH_DB_PATH="+filepath.Join(t.TempDir(), "a.sqlite3")), 30*time.Second, args...)
			if code == 0 {
				t.Errorf("%v: exit 0, want non-zero (stdout %q)", args, stdout)
			}
			if !strings.Contains(stderr, args[len(args)-1]) {
				t.Errorf("%v: stderr does not name the bad argument: %q", args, stderr)
			}
		})
	}
}
