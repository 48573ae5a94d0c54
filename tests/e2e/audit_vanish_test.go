package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Audit chains that cannot vanish or restart unnoticed: `audit verify`
// requires a chain of every tenant that has changed, a write for a tenant
// whose chain vanished is refused until `audit reset`, and signed
// checkpoints show a chain rolled back behind them.

// auditRun runs `auth-server audit args…` and returns its exit code and
// combined output.
func auditRun(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, env, 60*time.Second, append([]string{"audit"}, args...)...)
	return code, stdout + stderr
}

// mustFail checks that `audit verify args` fails and names every want.
func mustFail(t testing.TB, env []string, args []string, want ...string) {
	t.Helper()
	code, out := verifyAudit(t, env, args...)
	if code == 0 {
		t.Errorf("audit verify %v: exit 0, want a failure:\n%s", args, out)
		return
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("audit verify %v: output does not name %q:\n%s", args, w, out)
		}
	}
}

// tenantID is the id of the tenant of a client key.
func tenantID(t testing.TB, db *sql.DB, key string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRow(`SELECT id FROM tenants WHERE key_hash = $1`, keyHash(t, key)).Scan(&id); err != nil {
		t.Fatalf("tenant of %s: %v", key, err)
	}
	return id
}

// auditSnapshot saves audit_log and audit_heads under a name and returns
// a function that puts them back.
func auditSnapshot(t testing.TB, db *sql.DB, name string) func() {
	t.Helper()
	for _, tbl := range []string{"audit_log", "audit_heads"} {
		execAll(t, db, []string{"CREATE TABLE " + name + "_" + tbl + " AS SELECT * FROM " + tbl})
	}
	return func() {
		t.Helper()
		for _, tbl := range []string{"audit_log", "audit_heads"} {
			execAll(t, db, []string{"DELETE FROM " + tbl, "INSERT INTO " + tbl + " SELECT * FROM " + name + "_" + tbl})
		}
	}
}

func TestAuditChainCannotVanishSQLite(t *testing.T) {
	t.Parallel()
	testAuditChainCannotVanish(t, sqliteServer)
}

func TestAuditChainCannotVanishPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditChainCannotVanish(t, postgresServer)
}

// testAuditChainCannotVanish: deleting a tenant's chain (records and
// head), wiping both audit tables, and restoring an older copy of the
// chain behind a signed checkpoint are each reported by `audit verify`.
func testAuditChainCannotVanish(t *testing.T, newServer factory) {
	dir := t.TempDir()
	cpKey, cpFile := filepath.Join(dir, "checkpoint.pem"), filepath.Join(dir, "checkpoints.jsonl")
	s := newServer(t, "AUTH_AUDIT_CHECKPOINT_KEY_FILE="+cpKey, "AUTH_AUDIT_CHECKPOINT_SINK="+cpFile)
	if code, out := auditRun(t, s.env, "checkpoint-keygen", "--out", cpKey); code != 0 {
		t.Fatalf("audit checkpoint-keygen: exit %d\n%s", code, out)
	}
	if got := fileMode(t, cpKey); got != 0o600 {
		t.Errorf("checkpoint key file mode %o, want 600", got)
	}
	if code, out := auditRun(t, s.env, "checkpoint-keygen", "--out", cpKey); code == 0 || !strings.Contains(out, "never overwritten") {
		t.Errorf("checkpoint-keygen over an existing key: exit %d, want a refusal:\n%s", code, out)
	}
	keyA, keyB := newKey(t), newKey(t)
	a, b := s.client(keyA), s.client(keyB)
	for _, p := range []string{"/api/role/admin", "/api/permission/admin/read", "/api/membership/john/admin"} {
		mustResult(t, a.post(t, p), true)
	}
	mustResult(t, b.post(t, "/api/role/other"), true)
	s.stop(t)
	db := s.openDB(t)
	fpA, fpB := tenantFP(t, keyA), tenantFP(t, keyB)
	idA, idB := tenantID(t, db, keyA), tenantID(t, db, keyB)
	nameA, nameB := fmt.Sprintf("tenant id %d", idA), fmt.Sprintf("tenant id %d", idB)
	older := auditSnapshot(t, db, "older")

	// The chains go on; a checkpoint vouches for where they end now.
	s = s.restart(t)
	a = s.client(keyA)
	mustResult(t, a.post(t, "/api/role/auditor"), true)
	mustResult(t, a.post(t, "/api/permission/auditor/audit"), true)
	s.stop(t)
	if code, out := auditRun(t, s.env, "checkpoint"); code != 0 || !strings.Contains(out, "2 checkpoint(s)") {
		t.Fatalf("audit checkpoint: exit %d, want 0 and 2 checkpoints:\n%s", code, out)
	}
	pub := cpKey + ".pub"
	mustVerify(t, s.env, "--checkpoints", cpFile, "--checkpoint-pubkey", pub)
	mustVerify(t, s.env, "--checkpoints", cpFile) // the public key of AUTH_AUDIT_CHECKPOINT_KEY_FILE
	mustVerify(t, s.env, "--tenant", keyA, "--checkpoints", cpFile)
	current := auditSnapshot(t, db, "current")

	t.Run("chain of one tenant deleted", func(t *testing.T) {
		current()
		execAll(t, db, []string{
			fmt.Sprintf(`DELETE FROM audit_log WHERE tenant_fp = '%s'`, fpA),
			fmt.Sprintf(`DELETE FROM audit_heads WHERE tenant_fp = '%s'`, fpA),
		})
		mustFail(t, s.env, nil, nameA, fpA, "no audit chain", "audit reset --tenant")
		mustFail(t, s.env, []string{"--tenant", keyA}, nameA, "no audit chain")
		mustVerify(t, s.env, "--tenant", keyB)
		mustFail(t, s.env, []string{"--checkpoints", cpFile}, nameA, "chain is missing")
	})
	t.Run("both audit tables wiped", func(t *testing.T) {
		current()
		execAll(t, db, []string{`DELETE FROM audit_log`, `DELETE FROM audit_heads`})
		mustFail(t, s.env, nil, nameA, nameB, fpA, fpB, "no audit chain")
		mustFail(t, s.env, []string{"--checkpoints", cpFile}, "chain is missing")
	})
	t.Run("older chain restored", func(t *testing.T) {
		// A consistent older copy of the chains verifies on its own; only
		// the checkpoint shows that it was rolled back.
		older()
		mustVerify(t, s.env)
		mustFail(t, s.env, []string{"--checkpoints", cpFile}, fpA, "behind the checkpoint", "rolled back")
		mustFail(t, s.env, []string{"--tenant", keyA, "--checkpoints", cpFile}, fpA, "behind the checkpoint")
		mustVerify(t, s.env, "--tenant", keyB, "--checkpoints", cpFile)
	})
	t.Run("record at a checkpoint rewritten with the chain", func(t *testing.T) {
		// Someone with the audit key could reseal the chain; the record at
		// the checkpoint then differs from it. (Here only the MAC is
		// changed, and the chain check fails too.)
		current()
		execAll(t, db, []string{fmt.Sprintf(`UPDATE audit_log SET mac = '%s' WHERE tenant_fp = '%s' AND seq = (SELECT seq FROM audit_heads WHERE tenant_fp = '%s')`,
			strings.Repeat("0", 64), fpA, fpA)})
		mustFail(t, s.env, []string{"--checkpoints", cpFile}, fpA, "differs from the checkpoint")
	})
	t.Run("checkpoints forged or of another key", func(t *testing.T) {
		current()
		other := filepath.Join(dir, "other.pem")
		if code, out := auditRun(t, s.env, "checkpoint-keygen", "--out", other); code != 0 {
			t.Fatalf("checkpoint-keygen: %d\n%s", code, out)
		}
		mustFail(t, s.env, []string{"--checkpoints", cpFile, "--checkpoint-pubkey", other + ".pub"}, "signed by another key")
		raw, err := os.ReadFile(cpFile)
		if err != nil {
			t.Fatal(err)
		}
		forged := filepath.Join(dir, "forged.jsonl")
		if err := os.WriteFile(forged, []byte(strings.Replace(string(raw), `"seq":`, `"seq":1`, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		mustFail(t, s.env, []string{"--checkpoints", forged}, "signature does not verify")
		for _, args := range [][]string{
			{"--checkpoints", filepath.Join(dir, "missing.jsonl")},
			{"--checkpoints", cpFile, "--checkpoint-pubkey", filepath.Join(dir, "missing.pub")},
			{"--checkpoints", cpFile, "--checkpoint-pubkey", cpFile},
			{"--checkpoint-pubkey", pub},
		} {
			mustFail(t, s.env, args)
		}
		mustFail(t, withoutEnv(s.env, "AUTH_AUDIT_CHECKPOINT_KEY_FILE"), []string{"--checkpoints", cpFile}, "--checkpoint-pubkey")
	})
	current()
	mustVerify(t, s.env, "--checkpoints", cpFile)
}

func TestAuditChainResetSQLite(t *testing.T) {
	t.Parallel()
	testAuditChainReset(t, sqliteServer)
}

func TestAuditChainResetPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditChainReset(t, postgresServer)
}

// testAuditChainReset: once a changed tenant's chain has vanished, its
// writes answer 500 and commit nothing (counted and logged), its checks
// keep working, and other tenants are unaffected; `audit reset` starts a
// new chain whose first record is the reset, after which writes work and
// the trail verifies.
func testAuditChainReset(t *testing.T, newServer factory) {
	s := newServer(t)
	keyA, keyB := newKey(t), newKey(t)
	a, b := s.client(keyA), s.client(keyB)
	mustResult(t, a.post(t, "/api/role/admin"), true)
	mustResult(t, a.post(t, "/api/permission/admin/read"), true)
	mustResult(t, a.post(t, "/api/membership/john/admin"), true)
	mustResult(t, b.post(t, "/api/role/other"), true)
	s.stop(t)
	db := s.openDB(t)
	fpA := tenantFP(t, keyA)
	idA := tenantID(t, db, keyA)
	execAll(t, db, []string{
		fmt.Sprintf(`DELETE FROM audit_log WHERE tenant_fp = '%s'`, fpA),
		fmt.Sprintf(`DELETE FROM audit_heads WHERE tenant_fp = '%s'`, fpA),
	})

	s = s.restart(t)
	a, b = s.client(keyA), s.client(keyB)
	rolesBefore, rulesBefore := count(t, db, "roles"), count(t, db, "casbin_rule")
	for _, p := range []string{"/api/role/intruder", "/api/permission/admin/write"} {
		r := a.post(t, p)
		if r.status != 500 || !strings.Contains(string(r.body), "audit chain is missing") || !strings.Contains(string(r.body), "audit reset") {
			t.Errorf("POST %s with the chain gone: %s, want 500 naming the missing chain", p, r)
		}
	}
	if r := a.del(t, "/api/membership/john/admin"); r.status != 500 {
		t.Errorf("DELETE membership with the chain gone: %s, want 500", r)
	}
	if got, want := count(t, db, "roles"), rolesBefore; got != want {
		t.Errorf("roles: %d after refused writes, want %d (nothing committed)", got, want)
	}
	if got, want := count(t, db, "casbin_rule"), rulesBefore; got != want {
		t.Errorf("rules: %d after refused writes, want %d (nothing committed)", got, want)
	}
	// Reads and checks keep working, from what was committed.
	for _, p := range []string{"/api/has_permission/john/read", "/api/roles"} {
		if r := a.get(t, p); r.status != 200 {
			t.Errorf("GET %s with the chain gone: %s, want 200", p, r)
		}
	}
	if r := a.get(t, "/api/has_permission/john/write"); r.status != 200 || strings.Contains(string(r.body), `"has_permission":true`) {
		t.Errorf("check of a refused grant: %s, want 200 and no permission", r)
	}
	// Another tenant is not affected.
	mustResult(t, b.post(t, "/api/role/second"), true)
	if got := s.metricValue(t, "auth_audit_chain_missing_total"); got < 3 {
		t.Errorf("auth_audit_chain_missing_total = %v, want at least 3 (the refused writes)", got)
	}
	s.stop(t)
	if !strings.Contains(s.stderr.String(), "audit chain is missing") {
		t.Errorf("no error logged for the refused writes:\n%s", s.stderr.String())
	}
	var heads int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_heads WHERE tenant_fp = $1`, fpA).Scan(&heads); err != nil || heads != 0 {
		t.Fatalf("chain head of the vanished tenant: %d (%v), want none: no chain is started behind the operator's back", heads, err)
	}
	mustFail(t, s.env, nil, fmt.Sprintf("tenant id %d", idA), "no audit chain")

	// reset refuses without its flags, or for a tenant with a chain.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reset"}, "--tenant"},
		{[]string{"reset", "--tenant", fmt.Sprint(idA)}, "--yes"},
		{[]string{"reset", "--tenant", "x", "--yes"}, "not a tenant id"},
		{[]string{"reset", "--tenant", "99999", "--yes"}, "no tenant with id 99999"},
		{[]string{"reset", "--tenant", newKey(t), "--yes"}, "no tenant has this client key"},
		{[]string{"reset", "--tenant", keyB, "--yes"}, "has an audit chain"},
		{[]string{"reset", "--tenant", fmt.Sprint(idA), "--yes", "extra"}, "unexpected argument"},
		{[]string{"reset", "--tenant", fmt.Sprint(idA), "--yes", "--note", strings.Repeat("n", 501)}, "--note"},
	} {
		if code, out := auditRun(t, s.env, tc.args...); code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("audit %v: exit %d, want a failure naming %q:\n%s", tc.args, code, tc.want, out)
		}
	}
	code, out := auditRun(t, s.env, "reset", "--tenant", fmt.Sprint(idA), "--yes", "--note", "chain deleted in incident 42")
	if code != 0 || !strings.Contains(out, "AUDIT_RESET") {
		t.Fatalf("audit reset: exit %d, want 0:\n%s", code, out)
	}
	mustVerify(t, s.env)
	mustVerify(t, s.env, "--tenant", keyA)

	s = s.restart(t)
	a = s.client(keyA)
	mustResult(t, a.post(t, "/api/role/intruder"), true)
	s.stop(t)
	recs := checkGapless(t, db, fpA)
	if len(recs) != 2 || recs[0].Action != "AUDIT_RESET" || recs[1].Action != "CREATE_ROLE" {
		t.Fatalf("new chain of the reset tenant: %+v, want AUDIT_RESET then CREATE_ROLE", recs)
	}
	for _, w := range []string{`"note":"chain deleted in incident 42"`, `"previous_seq":0`, `"previous_head":"unknown`} {
		if !strings.Contains(recs[0].Details, w) {
			t.Errorf("reset record details %s: no %s", recs[0].Details, w)
		}
	}
	mustVerify(t, s.env)
	if code, out := auditRun(t, s.env, "reset", "--tenant", keyA, "--yes"); code == 0 || !strings.Contains(out, "has an audit chain") {
		t.Errorf("second reset: exit %d, want a refusal:\n%s", code, out)
	}
}

// TestAuditResetKeepsRemainingRecords: a chain whose head vanished but
// whose records remain is continued after its last record, so the
// remaining records still verify and the reset sits between them and the
// new ones.
func TestAuditResetKeepsRemainingRecords(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	key := newKey(t)
	c := s.client(key)
	mustResult(t, c.post(t, "/api/role/admin"), true)
	mustResult(t, c.post(t, "/api/role/base"), true)
	s.stop(t)
	db := s.openDB(t)
	fp := tenantFP(t, key)
	execAll(t, db, []string{fmt.Sprintf(`DELETE FROM audit_heads WHERE tenant_fp = '%s'`, fp)})
	s = s.restart(t)
	if r := s.client(key).post(t, "/api/role/third"); r.status != 500 {
		t.Errorf("write with the chain head gone: %s, want 500", r)
	}
	s.stop(t)
	mustFail(t, s.env, nil, "no audit chain")
	if code, out := auditRun(t, s.env, "reset", "--tenant", key, "--yes"); code != 0 {
		t.Fatalf("audit reset: exit %d\n%s", code, out)
	}
	recs := checkGapless(t, db, fp)
	if len(recs) != 3 || recs[2].Action != "AUDIT_RESET" || !strings.Contains(recs[2].Details, `"previous_seq":2`) ||
		!strings.Contains(recs[2].Details, `"previous_mac"`) {
		t.Fatalf("records after reset: %+v, want the two old ones then AUDIT_RESET after seq 2", recs)
	}
	mustVerify(t, s.env)
}

// TestAuditCheckpointSchedule: with AUTH_AUDIT_CHECKPOINT_INTERVAL the
// server writes signed checkpoints of every chain to the sink file on its
// own, and they verify.
func TestAuditCheckpointSchedule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, sink := filepath.Join(dir, "cp.pem"), filepath.Join(dir, "cp.jsonl")
	if code, _, stderr := runBinary(t, serverEnv(filepath.Join(dir, "keygen.sqlite3")), 30*time.Second, "audit", "checkpoint-keygen", "--out", key); code != 0 {
		t.Fatalf("checkpoint-keygen: exit %d\n%s", code, stderr)
	}
	s := sqliteServer(t, "AUTH_AUDIT_CHECKPOINT_KEY_FILE="+key, "AUTH_AUDIT_CHECKPOINT_SINK="+sink, "AUTH_AUDIT_CHECKPOINT_INTERVAL=1s")
	c := s.client(newKey(t))
	mustResult(t, c.post(t, "/api/role/admin"), true)
	deadline := time.Now().Add(pollDeadline)
	for {
		b, _ := os.ReadFile(sink)
		if strings.Contains(string(b), `"seq":1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the chain at seq 1 in %s after %v:\n%s", sink, pollDeadline, b)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	s.stop(t)
	if got := fileMode(t, sink); got != 0o600 {
		t.Errorf("checkpoint file mode %o, want 600", got)
	}
	mustVerify(t, s.env, "--checkpoints", sink, "--checkpoint-pubkey", key+".pub")

	// An interval without a readable key refuses to start.
	code, _, stderr := runBinary(t, withoutEnv(s.env, "AUTH_AUDIT_CHECKPOINT_KEY_FILE"), 30*time.Second, "serve")
	if code == 0 || !strings.Contains(stderr, "AUTH_AUDIT_CHECKPOINT_KEY_FILE") {
		t.Errorf("serve with an interval and no key: exit %d, want a refusal naming AUTH_AUDIT_CHECKPOINT_KEY_FILE:\n%s", code, stderr)
	}
	code, _, stderr = runBinary(t, append(withoutEnv(s.env, "AUTH_AUDIT_CHECKPOINT_KEY_FILE"), "AUTH_AUDIT_CHECKPOINT_KEY_FILE="+sink), 30*time.Second, "serve")
	if code == 0 || !strings.Contains(stderr, "AUTH_AUDIT_CHECKPOINT_KEY_FILE") {
		t.Errorf("serve with a key file that holds no key: exit %d, want a refusal:\n%s", code, stderr)
	}
}
