package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
)

// The audit trail's guarantees against the real binary: fail-closed
// changes, tamper evidence through `audit verify`, one chain across
// processes, decision logging under load, retention, and input PostgreSQL
// would refuse.

// faultSQL creates and drops a trigger that makes every insert into
// audit_log fail.
func faultSQL(dbType string) (inject, remove []string) {
	if dbType == "postgresql" {
		return []string{
				`CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected audit failure'; END $$`,
				`CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fail_audit()`,
			}, []string{
				`DROP TRIGGER fail_audit ON audit_log`,
				`DROP FUNCTION fail_audit()`,
			}
	}
	return []string{`CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END`},
		[]string{`DROP TRIGGER fail_audit`}
}

func execAll(t testing.TB, db *sql.DB, stmts []string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestAuditFailClosedSQLite(t *testing.T) {
	t.Parallel()
	testAuditFailClosed(t, sqliteServer)
}

func TestAuditFailClosedPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditFailClosed(t, postgresServer)
}

// testAuditFailClosed: while the audit table refuses inserts, every change
// answers 500 and leaves nothing behind, in the database or in memory;
// reads keep working. Once inserts work again, so do changes, the failed
// requests are in the trail, and the chain verifies.
func testAuditFailClosed(t *testing.T, newServer factory) {
	s := newServer(t)
	key := newKey(t)
	c := s.client(key)
	mustResult(t, c.post(t, "/api/role/keeper"), true)
	mustResult(t, c.post(t, "/api/permission/keeper/kept"), true)
	db := s.openDB(t) // SQLite in WAL mode: readable and writable beside the server
	rolesBefore, rulesBefore := count(t, db, "roles"), count(t, db, "casbin_rule")
	inject, remove := faultSQL(s.dbType)
	execAll(t, db, inject)

	changes := []struct{ method, path string }{
		{"POST", "/api/role/doomed"},
		{"POST", "/api/permission/keeper/lost"},
		{"POST", "/api/membership/mallory/keeper"},
		{"DELETE", "/api/permission/keeper/kept"},
		{"DELETE", "/api/role/keeper"},
		{"POST", "/api/role/keeper/parents/keeper2"},
	}
	for i, ch := range changes {
		r := c.call(t, ch.method, ch.path, fmt.Sprintf("X-Request-ID: fault-%d", i))
		expectError(t, r, 500, "An internal error occurred")
		if strings.Contains(string(r.body), "injected") {
			t.Errorf("%s %s: the cause reached the client: %s", ch.method, ch.path, r.body)
		}
	}
	// Nothing of the refused changes, in memory…
	expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"keeper"}]`))
	expect(t, c.get(t, "/api/role_permissions/keeper"), 200, env(`[{"name":"kept"}]`, "Retrieved permissions for role 'keeper'"))
	expect(t, c.get(t, "/api/members/keeper"), 200, res(`[]`))
	if hasPermission(t, c.get(t, "/api/has_permission/mallory/lost")) {
		t.Errorf("mallory holds a permission granted while the audit trail was failing")
	}
	// …or in the database.
	if got := count(t, db, "roles"); got != rolesBefore {
		t.Errorf("roles: %d rows, want %d", got, rolesBefore)
	}
	if got := count(t, db, "casbin_rule"); got != rulesBefore {
		t.Errorf("casbin_rule: %d rows, want %d", got, rulesBefore)
	}
	var lost int
	if err := db.QueryRow(`SELECT COUNT(*) FROM casbin_rule WHERE v2 = 'lost' OR v0 = 'mallory'`).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Errorf("casbin_rule holds %d rows of refused changes", lost)
	}

	execAll(t, db, remove)
	mustResult(t, c.post(t, "/api/role/doomed"), true)
	expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"keeper"},{"description":null,"role":"doomed"}]`))
	// The refused requests are recorded as failures once the trail
	// accepts records again (their records waited in the queue).
	got := c.waitAudit(t, "", "the refused changes recorded as failures", func(es []auditEntry) bool {
		ids := byRequestID(es)
		for i := range changes {
			if len(ids[fmt.Sprintf("fault-%d", i)]) != 1 {
				return false
			}
		}
		return true
	})
	ids := byRequestID(got)
	for i, ch := range changes {
		e := ids[fmt.Sprintf("fault-%d", i)][0]
		if e.Success || e.Details["status_code"] != 500.0 || e.Details["reason"] != "server_error" {
			t.Errorf("%s %s: record %+v, want a failure with status 500 and reason server_error", ch.method, ch.path, e)
		}
	}
	s.stop(t)
	checkGapless(t, db, tenantFP(t, key))
	mustVerify(t, s.env)
}

// tamperCase edits the stopped server's database; verify must then fail
// and name the bad record.
type tamperCase struct {
	name string
	// edit changes tenant a's chain (fp a, its records by seq); it returns
	// substrings the verify output must contain.
	edit func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, n int64) []string
}

func tamperCases() []tamperCase {
	exec := func(t *testing.T, db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	named := func(r dbRecord) string { return fmt.Sprintf("record seq %d (id %d)", r.Seq, r.ID) }
	return []tamperCase{
		{"record modified", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, _ int64) []string {
			exec(t, db, `UPDATE audit_log SET resource = 'evil' WHERE tenant_fp = $1 AND seq = 3`, a)
			return []string{named(recs[3]), "MAC mismatch"}
		}},
		{"failure turned into success", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, _ int64) []string {
			var seq int64
			for s, r := range recs {
				if !r.Success && (seq == 0 || s < seq) {
					seq = s
				}
			}
			exec(t, db, `UPDATE audit_log SET success = true, details = '{"result":true}' WHERE tenant_fp = $1 AND seq = $2`, a, seq)
			return []string{named(recs[seq]), "MAC mismatch"}
		}},
		{"middle record deleted", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, _ int64) []string {
			exec(t, db, `DELETE FROM audit_log WHERE tenant_fp = $1 AND seq = 3`, a)
			return []string{named(recs[4]), "records 3 to 3 are missing"}
		}},
		{"forged record inserted", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, n int64) []string {
			exec(t, db, `INSERT INTO audit_log (tenant_fp, seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac)
				SELECT tenant_fp, seq + 1, occurred_at, user_fp, 'CREATE_ROLE', 'backdoor', true, '{"result":true}', ip, user_agent, 'forged', mac
				FROM audit_log WHERE tenant_fp = $1 AND seq = $2`, a, n)
			return []string{fmt.Sprintf("record seq %d", n+1), "MAC mismatch"}
		}},
		{"forged record inserted and head moved", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, n int64) []string {
			exec(t, db, `INSERT INTO audit_log (tenant_fp, seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac)
				SELECT tenant_fp, seq + 1, occurred_at, user_fp, action, 'backdoor', success, details, ip, user_agent, 'forged', mac
				FROM audit_log WHERE tenant_fp = $1 AND seq = $2`, a, n)
			exec(t, db, `UPDATE audit_heads SET seq = seq + 1 WHERE tenant_fp = $1`, a)
			return []string{"chain head does not authenticate"}
		}},
		{"records reordered", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, _ int64) []string {
			// The rows of seq 3 and 4 exchange everything but their ids.
			cols := "seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac"
			// (CREATE TABLE AS takes no parameters; a fingerprint is t_ and hex.)
			exec(t, db, `CREATE TABLE swap AS SELECT id, `+cols+` FROM audit_log WHERE tenant_fp = '`+a+`' AND seq IN (3, 4)`)
			exec(t, db, `UPDATE audit_log SET seq = -seq WHERE tenant_fp = $1 AND seq IN (3, 4)`, a)
			for _, col := range strings.Split(cols, ", ") {
				exec(t, db, `UPDATE audit_log SET `+col+` = (SELECT s.`+col+` FROM swap s WHERE s.id <> audit_log.id)
					WHERE tenant_fp = $1 AND id IN (SELECT id FROM swap)`, a)
			}
			exec(t, db, `DROP TABLE swap`)
			return []string{fmt.Sprintf("record seq 4 (id %d)", recs[3].ID)}
		}},
		{"sequence numbers swapped", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, _ int64) []string {
			exec(t, db, `UPDATE audit_log SET seq = -1 WHERE tenant_fp = $1 AND seq = 3`, a)
			exec(t, db, `UPDATE audit_log SET seq = 3 WHERE tenant_fp = $1 AND seq = 4`, a)
			exec(t, db, `UPDATE audit_log SET seq = 4 WHERE tenant_fp = $1 AND seq = -1`, a)
			return []string{fmt.Sprintf("record seq 4 (id %d)", recs[3].ID)}
		}},
		{"tail truncated", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, n int64) []string {
			exec(t, db, `DELETE FROM audit_log WHERE tenant_fp = $1 AND seq > $2`, a, n-2)
			return []string{"truncated tail", fmt.Sprintf("seq %d", n-1)}
		}},
		{"tail truncated and head moved back", func(t *testing.T, db *sql.DB, a string, recs map[int64]dbRecord, n int64) []string {
			exec(t, db, `DELETE FROM audit_log WHERE tenant_fp = $1 AND seq > $2`, a, n-2)
			exec(t, db, `UPDATE audit_heads SET seq = $1, mac = $2 WHERE tenant_fp = $3`, n-2, macOf(t, db, a, n-2), a)
			return []string{"chain head does not authenticate"}
		}},
		{"head deleted", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, _ int64) []string {
			exec(t, db, `DELETE FROM audit_heads WHERE tenant_fp = $1`, a)
			return []string{"no audit chain"}
		}},
		{"head of another tenant copied", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, _ int64) []string {
			exec(t, db, `UPDATE audit_heads SET seq = (SELECT h.seq FROM audit_heads h WHERE h.tenant_fp <> $1),
				mac = (SELECT h.mac FROM audit_heads h WHERE h.tenant_fp <> $1),
				head_mac = (SELECT h.head_mac FROM audit_heads h WHERE h.tenant_fp <> $1) WHERE tenant_fp = $1`, a)
			return []string{"chain head does not authenticate"}
		}},
		{"whole chain rewritten without the key", func(t *testing.T, db *sql.DB, a string, _ map[int64]dbRecord, _ int64) []string {
			exec(t, db, `UPDATE audit_log SET mac = '0000000000000000000000000000000000000000000000000000000000000000' WHERE tenant_fp = $1`, a)
			exec(t, db, `UPDATE audit_heads SET mac = '0000000000000000000000000000000000000000000000000000000000000000' WHERE tenant_fp = $1`, a)
			return []string{"chain head does not authenticate"}
		}},
	}
}

func macOf(t *testing.T, db *sql.DB, tenant string, seq int64) string {
	t.Helper()
	var mac string
	if err := db.QueryRow(`SELECT mac FROM audit_log WHERE tenant_fp = $1 AND seq = $2`, tenant, seq).Scan(&mac); err != nil {
		t.Fatal(err)
	}
	return mac
}

func TestAuditVerifyDetectsTamperingSQLite(t *testing.T) {
	t.Parallel()
	testAuditTampering(t, sqliteServer)
}

func TestAuditVerifyDetectsTamperingPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditTampering(t, postgresServer)
}

// testAuditTampering: `auth-server audit verify` exits 0 on an intact
// trail and non-zero, naming the first bad record, after each kind of
// tampering with the stopped server's database; `--tenant` verifies one
// tenant only.
func testAuditTampering(t *testing.T, newServer factory) {
	s := newServer(t)
	keyA, keyB := newKey(t), newKey(t)
	a, b := s.client(keyA), s.client(keyB)
	for _, p := range []string{"/api/role/admin", "/api/role/base", "/api/permission/admin/read",
		"/api/permission/ghost/read", "/api/membership/john/admin", "/api/role/admin/parents/base"} {
		a.post(t, p)
	}
	a.get(t, "/api/has_permission/john/read")
	a.get(t, "/api/has_permission/john/write")
	mustResult(t, b.post(t, "/api/role/other"), true)
	b.get(t, "/api/roles")
	s.stop(t) // flushes the queued checks

	db := s.openDB(t)
	fpA, fpB := tenantFP(t, keyA), tenantFP(t, keyB)
	recs := map[int64]dbRecord{}
	for _, r := range checkGapless(t, db, fpA) {
		recs[r.Seq] = r
	}
	n := int64(len(recs))
	if n < 8 {
		t.Fatalf("tenant a has %d records, want at least 8", n)
	}
	checkGapless(t, db, fpB)
	mustVerify(t, s.env)
	for _, tbl := range []string{"audit_log", "audit_heads"} {
		execAll(t, db, []string{"CREATE TABLE saved_" + tbl + " AS SELECT * FROM " + tbl})
	}
	restore := func() {
		for _, tbl := range []string{"audit_log", "audit_heads"} {
			execAll(t, db, []string{"DELETE FROM " + tbl, "INSERT INTO " + tbl + " SELECT * FROM saved_" + tbl})
		}
	}
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			restore()
			mustVerify(t, s.env, "--tenant", keyA)
			want := tc.edit(t, db, fpA, recs, n)
			for _, args := range [][]string{nil, {"--tenant", keyA}} {
				code, out := verifyAudit(t, s.env, args...)
				if code == 0 {
					t.Errorf("audit verify %v after tampering: exit 0\n%s", args, out)
					continue
				}
				for _, w := range append(want, fpA) {
					if !strings.Contains(out, w) {
						t.Errorf("audit verify %v: output does not name %q:\n%s", args, w, out)
					}
				}
			}
			// The other tenant's chain is intact and verifies alone.
			mustVerify(t, s.env, "--tenant", keyB)
		})
	}
	restore()
	mustVerify(t, s.env)
	// Bad invocations are refused.
	for _, args := range [][]string{{"--tenant", "not-a-key"}, {"--bogus"}, {"extra"}, {"--tenant", newKey(t)}} {
		if code, out := verifyAudit(t, s.env, args...); code == 0 {
			t.Errorf("audit verify %v: exit 0\n%s", args, out)
		}
	}
}

func TestAuditChainAcrossProcessesSQLite(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	env := serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"))
	testAuditChainAcrossProcesses(t, env)
}

func TestAuditChainAcrossProcessesPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	env := serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"), "AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL="+testenv.PostgresURL(t))
	testAuditChainAcrossProcesses(t, env)
}

// testAuditChainAcrossProcesses: three servers on one database write to
// the same tenant at once, changes and checks: the tenant's chain holds
// exactly one record per request, numbered 1..N without a gap or a fork,
// and verifies.
func testAuditChainAcrossProcesses(t *testing.T, env []string) {
	const procs, workers, perWorker = 3, 8, 12
	var servers []*server
	for i := 0; i < procs; i++ {
		servers = append(servers, startServer(t, env))
	}
	key, other := newKey(t), newKey(t)
	var sent atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for si, s := range servers {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(si, w int, s *server) {
				defer wg.Done()
				<-start
				for i := 0; i < perWorker; i++ {
					method, path := "POST", fmt.Sprintf("/api/role/s%d-w%d-%d", si, w, i)
					switch i % 4 {
					case 1:
						method, path = "GET", fmt.Sprintf("/api/has_permission/u%d/p%d", w, i)
					case 2:
						path = fmt.Sprintf("/api/permission/s%d-w%d-%d/p%d", si, w, i-2, i)
					case 3:
						method, path = "DELETE", fmt.Sprintf("/api/permission/s%d-w%d-%d/p%d", si, w, i-3, i-1)
					}
					k := key
					if i == perWorker-1 {
						k = other // another tenant's chain interleaves
					} else {
						sent.Add(1)
					}
					r, err := s.send(method, path, "Authorization: Bearer "+k)
					if err != nil || r.status != 200 {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s %s: %v %s", method, path, err, r.body))
						mu.Unlock()
					}
				}
			}(si, w, s)
		}
	}
	close(start)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("request failed: %s", f)
	}
	for _, s := range servers {
		s.stop(t) // flushes each queue
	}
	db := servers[0].openDB(t)
	recs := checkGapless(t, db, tenantFP(t, key))
	if int64(len(recs)) != sent.Load() {
		t.Errorf("%d records for %d requests of the tenant", len(recs), sent.Load())
	}
	checkGapless(t, db, tenantFP(t, other))
	mustVerify(t, env)
	mustVerify(t, env, "--tenant", key)
}

func TestAuditDecisionModes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode    string
		checks  int
		want    func(allowed, denied int) int
		postgre bool
	}{
		{"all", 2000, func(a, d int) int { return a + d }, false},
		{"denied", 2000, func(_, d int) int { return d }, false},
		{"none", 1000, func(int, int) int { return 0 }, false},
		{"all", 2000, func(a, d int) int { return a + d }, true},
	}
	for _, tc := range cases {
		name := tc.mode + "/sqlite"
		if tc.postgre {
			name = tc.mode + "/postgres"
		}
		t.Run(name, func(t *testing.T) {
			if tc.postgre || tc.checks > 500 {
				skipHeavyInShort(t)
			}
			t.Parallel()
			newServer := sqliteServer
			if tc.postgre {
				newServer = postgresServer
			}
			testDecisionBurst(t, newServer, tc.mode, tc.checks, tc.want)
		})
	}
}

// testDecisionBurst: with AUTH_AUDIT_DECISIONS=mode, a burst of concurrent
// checks, half allowed, half denied, then SIGTERM: after the queue is
// flushed the trail holds exactly the checks the mode keeps, and every
// change whatever the mode.
func testDecisionBurst(t *testing.T, newServer factory, mode string, checks int, want func(allowed, denied int) int) {
	s := newServer(t, "AUTH_AUDIT_DECISIONS="+mode)
	key := newKey(t)
	c := s.client(key)
	mustResult(t, c.post(t, "/api/role/reader"), true)
	mustResult(t, c.post(t, "/api/permission/reader/read"), true)
	mustResult(t, c.post(t, "/api/membership/ursula/reader"), true)
	const workers = 32
	var allowed, denied atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				perm := "read"
				if i%2 == 1 {
					perm = fmt.Sprintf("write%d", i%7)
				}
				r, err := s.send("GET", "/api/has_permission/ursula/"+perm, c.auth())
				switch {
				case err != nil || r.status != 200:
					bad.Add(1)
				case strings.Contains(string(r.body), `"has_permission":true`):
					allowed.Add(1)
				default:
					denied.Add(1)
				}
			}
		}()
	}
	for i := 0; i < checks; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d checks failed", bad.Load())
	}
	if allowed.Load() != int64(checks/2) || denied.Load() != int64(checks-checks/2) {
		t.Fatalf("%d allowed, %d denied; want %d and %d", allowed.Load(), denied.Load(), checks/2, checks-checks/2)
	}
	if dropped := s.metricValue(t, "auth_audit_dropped_total"); dropped != 0 {
		t.Errorf("%v records dropped with AUTH_AUDIT_OVERFLOW=block", dropped)
	}
	s.stop(t) // SIGTERM: the queue is flushed before the exit
	db := s.openDB(t)
	recs := checkGapless(t, db, tenantFP(t, key))
	byAction := countActions(recs)
	if got, w := byAction["CHECK_PERMISSION"], want(int(allowed.Load()), int(denied.Load())); got != w {
		t.Errorf("AUTH_AUDIT_DECISIONS=%s: %d CHECK_PERMISSION records for %d allowed and %d denied checks, want %d",
			mode, got, allowed.Load(), denied.Load(), w)
	}
	for _, a := range []string{"CREATE_ROLE", "ADD_PERMISSION", "ADD_MEMBERSHIP"} {
		if byAction[a] != 1 {
			t.Errorf("AUTH_AUDIT_DECISIONS=%s: %d %s records, want 1", mode, byAction[a], a)
		}
	}
	if mode == "denied" {
		for _, r := range recs {
			if r.Action == "CHECK_PERMISSION" && !strings.Contains(r.Details, `"allowed":false`) {
				t.Errorf("AUTH_AUDIT_DECISIONS=denied recorded an allowed check: %+v", r)
			}
		}
	}
	mustVerify(t, s.env, "--tenant", key)
}

// TestAuditOverflowDrop: with AUTH_AUDIT_OVERFLOW=drop and a tiny queue, a
// burst of checks is never slowed down: what does not fit is dropped,
// counted in auth_audit_dropped_total and logged, and every check is
// either recorded or counted.
func TestAuditOverflowDrop(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	s := sqliteServer(t, "AUTH_AUDIT_OVERFLOW=drop", "AUTH_AUDIT_QUEUE_SIZE=1")
	key := newKey(t)
	c := s.client(key)
	const checks, workers = 1500, 32
	var wg sync.WaitGroup
	var failed atomic.Int64
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if r, err := s.send("GET", fmt.Sprintf("/api/has_permission/u%d/p", i), c.auth()); err != nil || r.status != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < checks; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d checks failed", failed.Load())
	}
	dropped := s.metricValue(t, "auth_audit_dropped_total")
	s.stop(t)
	db := s.openDB(t)
	recs := checkGapless(t, db, tenantFP(t, key))
	written := countActions(recs)["CHECK_PERMISSION"]
	if written+int(dropped) != checks {
		t.Errorf("%d recorded + %v dropped = %v, want %d checks", written, dropped, float64(written)+dropped, checks)
	}
	// Drops are logged in rate-limited warnings, each reporting the drops
	// since the previous one: together they account for every drop.
	logged := 0
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(line, `"msg":"audit records dropped"`) {
			continue
		}
		var w struct {
			Dropped int `json:"dropped"`
		}
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("drop warning %q: %v", line, err)
		}
		logged += w.Dropped
	}
	if logged != int(dropped) {
		t.Errorf("drop warnings report %d dropped records, auth_audit_dropped_total = %v", logged, dropped)
	}
	t.Logf("%d of %d check records dropped with a queue of 1", int(dropped), checks)
	mustVerify(t, s.env)
}

func TestAuditRetentionSQLite(t *testing.T) {
	t.Parallel()
	testAuditRetention(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3")))
}

func TestAuditRetentionPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditRetention(t, serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"), "AUTH_DB_TYPE=postgresql", "POSTGRESQL_URL="+testenv.PostgresURL(t)))
}

// testAuditRetention: records older than AUTH_AUDIT_RETENTION_DAYS are
// purged when the server starts, newer ones stay, and the chain that is
// left verifies; with 0 nothing is purged.
func testAuditRetention(t *testing.T, env []string) {
	if code, out, errOut := runBinary(t, env, 60*time.Second, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	key, keep := newKey(t), newKey(t)
	// Old records, sealed with the servers' key as a server would have
	// written them 40 to 20 days ago.
	seedOld(t, env, key, 5, 40*24*time.Hour)
	seedOld(t, env, keep, 3, 40*24*time.Hour)
	// Retention off: nothing goes.
	s0 := startServer(t, append(env, "AUTH_AUDIT_RETENTION_DAYS=0"))
	if got := s0.client(key).auditAll(t, "action=CREATE_ROLE"); len(got) != 5 {
		t.Fatalf("with retention 0: %d old records, want 5", len(got))
	}
	s0.stop(t)

	s := startServer(t, append(env, "AUTH_AUDIT_RETENTION_DAYS=7"))
	c := s.client(key)
	mustResult(t, c.post(t, "/api/role/fresh"), true)
	cutoff := time.Now().Add(-7 * 24 * time.Hour)
	got := c.waitAudit(t, "action=CREATE_ROLE", "records older than 7 days purged", func(es []auditEntry) bool {
		for _, e := range es {
			if ts, _ := time.Parse(time.RFC3339Nano, e.Timestamp); ts.Before(cutoff) {
				return false
			}
		}
		return true
	})
	if len(got) != 1 || got[0].Resource != "fresh" {
		t.Errorf("after the purge: %s, want the fresh record only", dumpEntries(got))
	}
	s.stop(t)
	if !strings.Contains(s.stderr.String(), `"msg":"audit retention purge","deleted":8`) {
		t.Errorf("no \"audit retention purge\" log line for the 8 records:\n%s", s.stderr.String())
	}
	db := s.openDB(t)
	var base int64
	if err := db.QueryRow(`SELECT base_seq FROM audit_heads WHERE tenant_fp = $1`, tenantFP(t, key)).Scan(&base); err != nil {
		t.Fatal(err)
	}
	if base != 5 {
		t.Errorf("retention anchor at seq %d, want 5", base)
	}
	if n := len(auditRows(t, db, tenantFP(t, keep))); n != 0 {
		t.Errorf("tenant with old records only: %d records left, want 0", n)
	}
	mustVerify(t, s.env)
	mustVerify(t, s.env, "--tenant", key)
	mustVerify(t, s.env, "--tenant", keep)
}

// seedOld appends n CREATE_ROLE records for a client key, timed from age
// ago onwards (a day apart), through the audit store with the test key.
func seedOld(t *testing.T, env []string, key string, n int, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	o := sqldb.Options{Dialect: sqldb.SQLite, Path: envValue(env, "AUTH_DB_PATH")}
	if envValue(env, "AUTH_DB_TYPE") == "postgresql" {
		o = sqldb.Options{Dialect: sqldb.Postgres, URL: envValue(env, "POSTGRESQL_URL")}
	}
	db, err := sqldb.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := auditdb.New(db, auditKeys)
	fp := tenantFP(t, key)
	var recs []audit.Record
	for i := 0; i < n; i++ {
		recs = append(recs, audit.Record{Tenant: fp, Time: time.Now().Add(-age + time.Duration(i)*24*time.Hour),
			Action: audit.CreateRole, Resource: fmt.Sprintf("old%d", i), Success: true, Details: `{"result":true}`,
			IP: "127.0.0.1", RequestID: fmt.Sprintf("old-%d", i)})
	}
	if err := st.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
}

func TestAuditRejectsUnstorableTextSQLite(t *testing.T) {
	t.Parallel()
	testAuditUnstorableText(t, sqliteServer)
}

func TestAuditRejectsUnstorableTextPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditUnstorableText(t, postgresServer)
}

// testAuditUnstorableText: a client that sends bytes PostgreSQL cannot
// store as text (a User-Agent that is not UTF-8, a path segment %FF or
// %00) can still write, and its failed requests do not stop the decision
// log: every request is recorded, as valid text.
func testAuditUnstorableText(t *testing.T, newServer factory) {
	s := newServer(t)
	key := newKey(t)
	c := s.client(key)
	badUA := "User-Agent: probe\xff\xfe/1.0 " + strings.Repeat("a", 505) + "é"
	r := c.call(t, "POST", "/api/role/admin", badUA, "X-Request-ID: text-0")
	mustResult(t, r, true)
	requests := []struct {
		path   string
		status int
	}{
		{"/api/has_permission/john/%FF", 400},
		{"/api/has_permission/john/%00", 400},
		{"/api/role_permissions/%C3", 400},
		{"/api/has_permission/john/read", 200},
	}
	for i, rq := range requests {
		if r := c.call(t, "GET", rq.path, badUA, fmt.Sprintf("X-Request-ID: text-%d", i+1)); r.status != rq.status {
			t.Errorf("GET %s: %d, want %d: %s", rq.path, r.status, rq.status, r.body)
		}
	}
	got := c.waitAudit(t, "", "every request recorded", func(es []auditEntry) bool {
		ids := byRequestID(es)
		for i := 0; i <= len(requests); i++ {
			if len(ids[fmt.Sprintf("text-%d", i)]) != 1 {
				return false
			}
		}
		return true
	})
	for id, es := range byRequestID(got) {
		if !strings.HasPrefix(id, "text-") {
			continue
		}
		e := es[0]
		if !strings.HasPrefix(e.UserAgent, "probe\ufffd/1.0 aaa") || len(e.UserAgent) > 512 {
			t.Errorf("%s: user agent %q (%d bytes), want the sent one as valid text, at most 512 bytes", id, e.UserAgent, len(e.UserAgent))
		}
		for _, f := range []string{e.UserAgent, e.Resource} {
			if strings.ContainsRune(f, 0) || !utf8.ValidString(f) {
				t.Errorf("%s: record holds %q", id, f)
			}
		}
	}
	if s.metricValue(t, "auth_audit_write_failures_total") != 0 {
		t.Errorf("audit batch writes failed:\n%s", s.stderr.String())
	}
	s.stop(t)
	mustVerify(t, s.env)
}

// TestAuditRetentionKeepsBrokenChain: a chain tampered with inside the
// retention window is not purged (which would seal the damage as intact):
// the server logs why, keeps the records, purges the other tenants, and
// verify still names the bad record.
func TestAuditRetentionKeepsBrokenChain(t *testing.T) {
	t.Parallel()
	env := serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"))
	if code, out, errOut := runBinary(t, env, 60*time.Second, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	broken, fine := newKey(t), newKey(t)
	seedOld(t, env, broken, 5, 40*24*time.Hour)
	seedOld(t, env, fine, 3, 40*24*time.Hour)
	db, err := sql.Open("sqlite", "file:"+envValue(env, "AUTH_DB_PATH")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	execAll(t, db, []string{`UPDATE audit_log SET resource = 'evil' WHERE tenant_fp = '` + tenantFP(t, broken) + `' AND seq = 2`})

	s := startServer(t, append(env, "AUTH_AUDIT_RETENTION_DAYS=7"))
	s.client(fine).waitAudit(t, "action=CREATE_ROLE", "the intact tenant's old records purged", func(es []auditEntry) bool { return len(es) == 0 })
	deadline := time.Now().Add(pollDeadline)
	for !strings.Contains(s.stderr.String(), `"msg":"audit retention purge failed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no \"audit retention purge failed\" log line:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log := s.stderr.String(); !strings.Contains(log, tenantFP(t, broken)) || !strings.Contains(log, "seq 2") {
		t.Errorf("the purge failure does not name the tenant and the record:\n%s", log)
	}
	if got := s.client(broken).auditAll(t, "action=CREATE_ROLE"); len(got) != 5 {
		t.Errorf("tampered tenant: %d old records left, want all 5", len(got))
	}
	s.stop(t)
	code, out := verifyAudit(t, env, "--tenant", broken)
	if code == 0 || !strings.Contains(out, "seq 2") {
		t.Errorf("audit verify after the refused purge: exit %d, want non-zero naming seq 2:\n%s", code, out)
	}
	mustVerify(t, env, "--tenant", fine)
}
