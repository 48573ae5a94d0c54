package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
)

// Stock Casbin programs (casbin + gorm-adapter, testdata/casbintool) run
// against the service's database: with gorm-adapter's defaults they damage
// casbin_rule, which the service notices and `auth-server migrate` repairs;
// with gormadapter.TurnOffAutoMigrate their changes reach running servers
// within the sync interval and are recorded in the audit trail, once.

func TestCasbinToolsSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.sqlite3")
	testCasbinTools(t, serverEnv(path, "AUTH_SYNC_INTERVAL=200ms"), "sqlite", path)
}

func TestCasbinToolsPostgres(t *testing.T) {
	skipHeavyInShort(t)
	u := testenv.PostgresURL(t)
	testCasbinTools(t, serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"),
		"AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL="+u, "AUTH_SYNC_INTERVAL=200ms"), "postgresql", u)
}

var (
	casbinToolOnce sync.Once
	casbinToolPath string
	casbinToolErr  error
)

// casbinTool runs the stock Casbin program on the database with args and
// returns its output; it fails the test if the program fails.
func casbinTool(t testing.TB, dbType, dsn string, args ...string) {
	t.Helper()
	casbinToolOnce.Do(func() {
		dir, err := os.MkdirTemp("", "auth-e2e-casbintool-")
		if err != nil {
			casbinToolErr = err
			return
		}
		casbinToolPath, casbinToolErr = testenv.Build(dir, "./tests/e2e/testdata/casbintool", "casbintool")
	})
	if casbinToolErr != nil {
		t.Fatalf("build the Casbin tool: %v", casbinToolErr)
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if dbType == "sqlite" {
		dsn = "file:" + dsn + "?_pragma=busy_timeout(10000)"
	}
	cmd := exec.Command(casbinToolPath, append([]string{"-type", dbType, "-dsn", dsn,
		"-model", filepath.Join(root, "model.conf")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("casbintool %v: %v\n%s", args, err, out)
	}
}

// tenantDomain is the Casbin domain of the tenant of key, as `auth-server
// tenant list` prints it.
func tenantDomain(t testing.TB, env []string, key string) string {
	t.Helper()
	code, out, errOut := runBinary(t, env, 30*time.Second, "tenant", "list")
	if code != 0 {
		t.Fatalf("tenant list: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if h := strings.Fields(lines[0]); len(h) < 2 || h[1] != "DOMAIN" {
		t.Fatalf("tenant list: no DOMAIN column:\n%s", out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == keyHash(t, key)[:16] {
			return f[1]
		}
	}
	t.Fatalf("tenant list: no line for the tenant %s…:\n%s", keyHash(t, key)[:16], out)
	return ""
}

// externalCounts sums the added and removed counts of the tenant's
// EXTERNAL_CHANGE records, and counts them.
func externalCounts(t testing.TB, c client) (records int, added, removed float64) {
	t.Helper()
	for _, e := range c.auditAll(t, "action=EXTERNAL_CHANGE") {
		records++
		a, _ := e.Details["added"].(float64)
		r, _ := e.Details["removed"].(float64)
		added += a
		removed += r
	}
	return records, added, removed
}

// damagedType is what gorm-adapter's AutoMigrate makes of v0–v5.
var damagedType = map[string]string{"sqlite": "text NULL", "postgresql": "varchar(100) NULL"}

func testCasbinTools(t *testing.T, env []string, dbType, dsn string) {
	// Two servers on one database, without Redis: anti-entropy alone
	// carries changes between them.
	a := startServer(t, env)
	b := startServer(t, env)
	key := newKey(t)
	ca := a.client(key)
	for _, p := range []string{"/api/role/admin", "/api/role/editor", "/api/role/viewer",
		"/api/permission/admin/delete", "/api/permission/editor/edit", "/api/permission/viewer/read",
		"/api/role/admin/parents/editor", "/api/role/editor/parents/viewer",
		"/api/membership/alice/admin", "/api/membership/bob/editor", "/api/membership/carol/viewer"} {
		mustResult(t, ca.post(t, p), true)
	}
	u := universe{roles: []string{"admin", "editor", "viewer"}, users: []string{"alice", "bob", "carol", "dave"},
		perms: []string{"delete", "edit", "read", "export", "archive"}}
	before, err := a.view(key, u)
	if err != nil {
		t.Fatal(err)
	}
	dom := tenantDomain(t, env, key)

	// A rule change made by a stock program (AutoMigrate off) while the
	// servers run: both enforce it within the sync interval, and the
	// tenant's trail records it once, as an external change with counts.
	casbinTool(t, dbType, dsn, "-no-migrate", "add", "role:viewer", dom, "export", "role:viewer", dom, "archive")
	everywhere(t, 20*time.Second, "a rule added by a Casbin tool", []*server{a, b},
		func(s *server) (string, error) { return s.hasText(key, "carol", "export") }, "true")
	records, added, removed := externalCounts(t, ca)
	if records != 1 || added != 2 || removed != 0 {
		t.Errorf("EXTERNAL_CHANGE records after adding 2 rules: %d records, added %v, removed %v; want 1, 2, 0:\n%s",
			records, added, removed, dumpEntries(ca.auditAll(t, "")))
	}
	casbinTool(t, dbType, dsn, "-no-migrate", "remove", "role:viewer", dom, "archive")
	everywhere(t, 20*time.Second, "a rule removed by a Casbin tool", []*server{a, b},
		func(s *server) (string, error) { return s.hasText(key, "alice", "archive") }, "false")
	records, added, removed = externalCounts(t, ca)
	if records != 2 || added != 2 || removed != 1 {
		t.Errorf("EXTERNAL_CHANGE records after removing 1 rule: %d records, added %v, removed %v; want 2, 2, 1:\n%s",
			records, added, removed, dumpEntries(ca.auditAll(t, "")))
	}
	// The change feed tells its consumers to resynchronise, once per
	// claimed change, after every revision they may have read.
	items, _, err := a.feedAll(key, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var external []int64
	for _, it := range items {
		if it.Op == "external" {
			external = append(external, it.Revision)
		}
	}
	if len(external) != 2 || external[1] != items[len(items)-1].Revision {
		t.Errorf("change feed after two external changes: external items at revisions %v, want 2, the last one last:\n%v", external, items)
	}
	// The service's own writes are not taken for external ones.
	mustResult(t, ca.post(t, "/api/permission/viewer/archive"), true)
	everywhere(t, 20*time.Second, "a rule added through the API", []*server{a, b},
		func(s *server) (string, error) { return s.hasText(key, "carol", "archive") }, "true")
	if n, _, _ := externalCounts(t, ca); n != 2 {
		t.Errorf("%d EXTERNAL_CHANGE records after a write through the API, want still 2", n)
	}
	if code, out := verifyAudit(t, env); code != 0 {
		t.Errorf("audit verify after external changes: exit %d\n%s", code, out)
	}
	before, err = a.view(key, u)
	if err != nil {
		t.Fatal(err)
	}

	// A stock program with gorm-adapter's defaults rewrites casbin_rule: a
	// running server says it is not ready (the schema check), and logs why.
	casbinTool(t, dbType, dsn, "load")
	eventually(t, 20*time.Second, "/ready after AutoMigrate", func() (string, error) {
		r, err := a.send("GET", "/ready")
		if err != nil {
			return "", err
		}
		log := a.stderr.String()
		if r.status == 503 && string(r.body) == `{"check":"schema","status":"unavailable"}`+"\n" &&
			strings.Contains(log, "column casbin_rule.v0 is "+damagedType[dbType]) &&
			strings.Contains(log, "run `auth-server migrate` to repair it") {
			return "", nil
		}
		return fmt.Sprintf("GET /ready: %d %s (the log must say what changed and what repairs it)", r.status, r.body), nil
	})
	a.stop(t)
	b.stop(t)

	// Start-up refuses, saying what changed and what repairs it, even
	// with AUTH_MIGRATE_ON_START.
	for _, mig := range []string{"false", "true"} {
		code, _, errOut := runBinary(t, append(env, "AUTH_MIGRATE_ON_START="+mig), 30*time.Second, "serve")
		if code == 0 || !strings.Contains(errOut, "casbin_rule.v0 is "+damagedType[dbType]+", want varchar(1024) NOT NULL") ||
			!strings.Contains(errOut, "run `auth-server migrate` to repair it") {
			t.Errorf("serve on a damaged schema (AUTH_MIGRATE_ON_START=%s): exit %d, want a refusal naming casbin_rule.v0 and `auth-server migrate`:\n%s",
				mig, code, errOut)
		}
	}

	// `auth-server migrate` repairs it (no migration is due); a second run
	// finds nothing to repair.
	code, out, errOut := runBinary(t, env, 60*time.Second, "migrate")
	if code != 0 || !strings.Contains(out, "repaired: column casbin_rule.v0 is "+damagedType[dbType]+", want varchar(1024) NOT NULL\n") ||
		!strings.Contains(out, "(0 migration(s) applied)") {
		t.Fatalf("migrate: exit %d, want the repairs listed\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runBinary(t, env, 60*time.Second, "migrate"); code != 0 || strings.Contains(out, "repaired") {
		t.Errorf("second migrate: exit %d, want nothing repaired\n%s%s", code, out, errOut)
	}

	// The repaired server serves every decision as before, accepts a
	// 128-character permission, and still sees the tools' changes.
	a = startServer(t, env)
	if r := a.do(t, "GET", "/ready"); r.status != 200 {
		t.Errorf("GET /ready after the repair: %d %s", r.status, r.body)
	}
	after, err := a.view(key, u)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("decisions after the repair differ:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	long := strings.Repeat("p", 128)
	ca = a.client(key)
	mustResult(t, ca.post(t, "/api/permission/admin/"+long), true)
	if ok, err := a.has(key, "alice", long); err != nil || !ok {
		t.Errorf("alice has the 128-character permission: %v, %v; want true", ok, err)
	}
	casbinTool(t, dbType, dsn, "-no-migrate", "add-member", "dave", "role:viewer", dom)
	eventually(t, 20*time.Second, "a membership added by a Casbin tool after the repair", func() (string, error) {
		got, err := a.hasText(key, "dave", "read")
		if got != "true" {
			return "dave read: " + got, err
		}
		return "", err
	})
	ca.waitAudit(t, "action=EXTERNAL_CHANGE", "the third external change", func(es []auditEntry) bool { return len(es) == 3 })
}
