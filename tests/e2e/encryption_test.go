package e2e

// Field encryption at rest, black-box: the API suite with encryption on,
// canary names absent from the bytes of the database, tampered ciphertexts
// failing closed, start-up refusals, migration of a clear-text database and
// key rotation with `auth-server rekey` while a server serves.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Field-encryption master keys of the test servers (32+ characters of
// material, no placeholder words).
const (
	testEncKeyA = "e2e-enc-A-7f3c9a1b5d2e8f4061c3b7a9d5e1f2a8"
	testEncKeyB = "e2e-enc-B-2b8d4f6a0c1e3a5b7d9f1c3e5a7b9d0f"
)

// encryptionOn are the settings of a server that encrypts names with key
// and still reads the previous keys.
func encryptionOn(key string, previous ...string) []string {
	env := []string{"ENABLE_ENCRYPTION=true", "ENCRYPTION_KEY=" + key}
	if len(previous) > 0 {
		env = append(env, "ENCRYPTION_KEY_PREVIOUS="+strings.Join(previous, ","))
	}
	return env
}

// encrypted turns a factory into one whose servers encrypt names with key A
// (extra settings still win).
func encrypted(f factory) factory {
	return func(t *testing.T, extra ...string) *server {
		t.Helper()
		return f(t, append(encryptionOn(testEncKeyA), extra...)...)
	}
}

// withEnv returns env with the variables of kvs (KEY=VALUE; KEY= alone
// removes KEY) replacing any earlier setting of them.
func withEnv(env []string, kvs ...string) []string {
	drop := map[string]bool{}
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			out = append(out, kv)
		}
	}
	for _, kv := range kvs {
		if !strings.HasSuffix(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

func TestAPISQLiteEncrypted(t *testing.T) {
	t.Parallel()
	runAPISuite(t, encrypted(sqliteServer))
}

func TestAPIPostgresEncrypted(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runAPISuite(t, encrypted(postgresServer))
}

// backendsFor runs fn once per backend, as parallel subtests.
func backendsFor(t *testing.T, fn func(t *testing.T, newServer factory)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteServer)
	})
	t.Run("postgres", func(t *testing.T) {
		skipHeavyInShort(t)
		t.Parallel()
		fn(t, postgresServer)
	})
}

// placeholders adapts a statement written with ? placeholders to the database.
func placeholders(dbType, stmt string) string {
	if dbType != "postgresql" {
		return stmt
	}
	n := 0
	return regexp.MustCompile(`\?`).ReplaceAllStringFunc(stmt, func(string) string {
		n++
		return fmt.Sprintf("$%d", n)
	})
}

func execDB(t testing.TB, db *sql.DB, dbType, stmt string, args ...any) {
	t.Helper()
	res, err := db.Exec(placeholders(dbType, stmt), args...)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s %v: %d rows changed, want 1", stmt, args, n)
	}
}

// ruleRow is a casbin_rule row.
type ruleRow struct {
	id                int64
	ptype, v0, v1, v2 string
}

func readRules(t testing.TB, db *sql.DB) []ruleRow {
	t.Helper()
	rows, err := db.Query("SELECT id, ptype, v0, v1, v2 FROM casbin_rule ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []ruleRow
	for rows.Next() {
		var r ruleRow
		if err := rows.Scan(&r.id, &r.ptype, &r.v0, &r.v1, &r.v2); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dom is the tenant (domain) field of a rule.
func (r ruleRow) dom() string {
	if r.ptype == "g" {
		return r.v2
	}
	return r.v1
}

// tenantIDs returns the tenant ids in creation order.
func tenantIDs(t testing.TB, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT id FROM tenants ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(id))
	}
	return out
}

// flipChar changes one base64 character inside a ciphertext's body.
func flipChar(v string) string {
	i := len(v) - 5
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}

var keyIDRE = regexp.MustCompile(`enc1:([^:]*):`)

// storedKeyIDs counts the values of the name-bearing columns (casbin_rule,
// roles, settings) by the key id they are encrypted under ("" for a clear
// value in a column that must be encrypted).
func storedKeyIDs(t testing.TB, db *sql.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	add := func(v string) {
		if m := keyIDRE.FindStringSubmatch(v); m != nil {
			out[m[1]]++
		} else {
			out[""]++
		}
	}
	for _, r := range readRules(t, db) {
		add(r.v0)
		if r.ptype == "g" {
			add(r.v1)
		} else {
			add(r.v2)
		}
	}
	for _, stmt := range []string{"SELECT name FROM roles", "SELECT description FROM roles WHERE description IS NOT NULL",
		"SELECT value FROM settings WHERE name = 'encryption_check'"} {
		rows, err := db.Query(stmt)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			add(v)
		}
		rows.Close()
	}
	return out
}

// canaries are names written through the API that must never be stored in
// clear.
var canaries = []string{"canaryuserQ7x", "canaryroleZ3k", "canaryparentH8p", "canarypermW9v",
	"canarydeniedV2n", "canaryghostK5t", "canarytmpR1d", "canary.mail+Y6b@example.org"}

func TestEncryptionCanary(t *testing.T) {
	t.Parallel()
	backendsFor(t, func(t *testing.T, newServer factory) {
		s := encrypted(newServer)(t)
		for _, key := range []string{newKey(t), newKey(t)} {
			c := s.client(key)
			for _, p := range []string{"/api/role/canaryroleZ3k", "/api/role/canaryparentH8p", "/api/role/canarytmpR1d",
				"/api/permission/canaryroleZ3k/canarypermW9v", "/api/permission/canaryparentH8p/canarypermW9v",
				"/api/membership/canaryuserQ7x/canaryroleZ3k", "/api/membership/canary.mail+Y6b%40example.org/canaryparentH8p",
				"/api/role/canaryroleZ3k/parents/canaryparentH8p", "/api/membership/canaryuserQ7x/canarytmpR1d"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.del(t, "/api/role/canarytmpR1d"), 200, env(`{"result":true}`, "Role 'canarytmpR1d' deletion completed"))
			for _, p := range []string{
				"/api/roles", "/api/role_permissions/canaryroleZ3k", "/api/members/canaryroleZ3k",
				"/api/user_roles/canaryuserQ7x", "/api/has_permission/canaryuserQ7x/canarypermW9v",
				"/api/has_permission/canaryuserQ7x/canarydeniedV2n", "/api/has_permission/canaryghostK5t/canarypermW9v",
				"/api/which_users_can/canarypermW9v", "/api/role/canaryroleZ3k/parents",
				"/api/workflow/user/canaryuserQ7x/can_run/canarypermW9v",
			} {
				if r := c.get(t, p); r.status != 200 {
					t.Errorf("GET %s: %s", p, r)
				}
			}
			expect(t, c.get(t, "/api/has_permission/canaryuserQ7x/canarypermW9v"), 200,
				env(`{"has_permission":true}`, "Permission check for user 'canaryuserQ7x' and permission 'canarypermW9v' completed"))
			expect(t, c.get(t, "/api/roles"), 200,
				res(`[{"description":null,"role":"canaryroleZ3k"},{"description":null,"role":"canaryparentH8p"}]`))
		}
		scanBytes := func(when, name string, b []byte) {
			for _, n := range canaries {
				if bytes.Contains(b, []byte(n)) {
					t.Errorf("%s: %s holds the canary %q in clear", when, name, n)
				}
			}
		}
		scanSQLite := func(when string) {
			var all []byte
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				b, err := os.ReadFile(s.dbPath + suffix)
				if os.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				scanBytes(when, "auth.sqlite3"+suffix, b)
				all = append(all, b...)
			}
			if !bytes.Contains(all, []byte("enc1:")) {
				t.Errorf("%s: no ciphertext in the SQLite files: the scan looks at the wrong files", when)
			}
		}
		if s.dbType == "sqlite" {
			if _, err := os.Stat(s.dbPath + "-wal"); err != nil {
				t.Errorf("no WAL file while running (%v); the scan no longer covers it", err)
			}
			scanSQLite("while running")
		}
		// Stopping flushes the audit queue: its records are scanned too.
		s.stop(t)
		db := s.openDB(t)
		if s.dbType == "sqlite" {
			scanSQLite("after stop")
		} else {
			dump, err := pgDump(s.pgURL)
			if err != nil {
				t.Logf("pg_dump unavailable (%v); scanning every column through SQL only", err)
			} else {
				if !strings.Contains(dump, "enc1:") || !strings.Contains(dump, "casbin_rule") {
					t.Errorf("the dump holds no ciphertext: it dumps the wrong database\n%.2000s", dump)
				}
				scanBytes("after stop", "pg_dump --data-only", []byte(dump))
			}
		}
		if n := count(t, db, "audit_log"); n < 20 {
			t.Errorf("audit_log holds %d records; want the writes and checks recorded (the scan covers less than intended)", n)
		}
		if found := findInDB(t, db, s.dbType, []string{"enc1:"}); len(found) == 0 {
			t.Fatalf("no ciphertext in any table: the scan is broken")
		}
		for _, f := range findInDB(t, db, s.dbType, canaries) {
			t.Errorf("canary in clear: %s", f)
		}
	})
}

// pgDump returns pg_dump --data-only of the database at url.
func pgDump(url string) (string, error) {
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		if len(m) == 0 {
			return "", err
		}
		sort.Strings(m)
		bin = m[len(m)-1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--data-only", "--no-owner", "--dbname="+url)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v: %s", bin, err, stderr.String())
	}
	return stdout.String(), nil
}

// TestEncryptionFailsClosed: with the server stopped, one tenant's rule
// gets another tenant's ciphertext, another a flipped character, a third a
// flipped role name. After a restart every request touching those tenants
// fails with 500 and the JSON error body, the log has an error line, no
// response shows a ciphertext or a name from elsewhere, and other tenants
// answer as before.
func TestEncryptionFailsClosed(t *testing.T) {
	t.Parallel()
	backendsFor(t, func(t *testing.T, newServer factory) {
		s := encrypted(newServer)(t)
		type tenant struct {
			name string
			key  string
		}
		// Created in this order: tenant ids follow it.
		tenants := []tenant{{"donor", newKey(t)}, {"moved", newKey(t)}, {"flippedRule", newKey(t)},
			{"flippedRole", newKey(t)}, {"bystander", newKey(t)}}
		for i, tn := range tenants {
			c := s.client(tn.key)
			role, perm, user := "victimrole", "victimperm", "victimuser"
			if i == 0 {
				role, perm, user = "donorrole", "donorperm", "donoruser"
			}
			for _, p := range []string{"/api/role/" + role, "/api/permission/" + role + "/" + perm,
				"/api/membership/" + user + "/" + role} {
				mustResult(t, c.post(t, p), true)
			}
		}
		bystander := s.client(tenants[4].key)
		bystanderReads := []step{
			{"GET", "/api/roles", 200, res(`[{"description":null,"role":"victimrole"}]`)},
			{"GET", "/api/has_permission/victimuser/victimperm", 200,
				env(`{"has_permission":true}`, "Permission check for user 'victimuser' and permission 'victimperm' completed")},
			{"GET", "/api/user_roles/victimuser", 200, res(`[{"role":"victimrole","user":"victimuser"}]`)},
			{"GET", "/api/role_permissions/victimrole", 200, env(`[{"name":"victimperm"}]`, "Retrieved permissions for role 'victimrole'")},
		}
		for _, st := range bystanderReads {
			expect(t, bystander.call(t, st.method, st.path), st.status, st.want)
		}
		s.stop(t)

		db := s.openDB(t)
		ids := tenantIDs(t, db)
		if len(ids) != len(tenants) {
			t.Fatalf("%d tenants in the database, want %d", len(ids), len(tenants))
		}
		rowOf := func(tenantIdx int, ptype string) ruleRow {
			for _, r := range readRules(t, db) {
				if r.ptype == ptype && r.dom() == ids[tenantIdx] {
					return r
				}
			}
			t.Fatalf("no %s rule of tenant %s", ptype, tenants[tenantIdx].name)
			return ruleRow{}
		}
		donorP, movedP := rowOf(0, "p"), rowOf(1, "p")
		execDB(t, db, s.dbType, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", donorP.v0, movedP.id)
		flipG := rowOf(2, "g")
		execDB(t, db, s.dbType, "UPDATE casbin_rule SET v1 = ? WHERE id = ?", flipChar(flipG.v1), flipG.id)
		var roleID int64
		var roleName string
		if err := db.QueryRow(placeholders(s.dbType, "SELECT id, name FROM roles WHERE tenant_id = ?"), ids[3]).Scan(&roleID, &roleName); err != nil {
			t.Fatal(err)
		}
		execDB(t, db, s.dbType, "UPDATE roles SET name = ? WHERE id = ?", flipChar(roleName), roleID)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		s2 := startServer(t, s.env)
		forbidden := []string{"enc1", "donorrole", "donorperm", "donoruser", donorP.v0, roleName}
		victimRoutes := []struct{ method, path string }{
			{"GET", "/api/roles"},
			{"GET", "/api/has_permission/victimuser/victimperm"},
			{"GET", "/api/has_permission/donoruser/donorperm"},
			{"GET", "/api/permission/victimrole/victimperm"},
			{"GET", "/api/user_roles/victimuser"},
			{"GET", "/api/members/victimrole"},
			{"GET", "/api/role_permissions/victimrole"},
			{"GET", "/api/which_users_can/victimperm"},
			{"GET", "/api/user_permissions/victimuser"},
			{"POST", "/api/role/another"},
			{"POST", "/api/membership/victimuser/victimrole"},
			{"GET", "/api/roles"}, // still failing: nothing was cached
		}
		for _, v := range tenants[1:4] {
			c := s2.client(v.key)
			for _, rt := range victimRoutes {
				r := c.call(t, rt.method, rt.path)
				expectError(t, r, 500, "An internal error occurred")
				for _, f := range forbidden {
					if strings.Contains(string(r.body), f) {
						t.Errorf("tenant %s: %s shows %q", v.name, r, f)
					}
				}
			}
		}
		for _, st := range bystanderReads {
			expect(t, s2.client(tenants[4].key).call(t, st.method, st.path), st.status, st.want)
		}
		expect(t, s2.client(tenants[0].key).get(t, "/api/roles"), 200, res(`[{"description":null,"role":"donorrole"}]`))
		s2.stop(t) // the log is complete once the process has exited
		var errLines []string
		for _, line := range strings.Split(s2.stderr.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) {
				errLines = append(errLines, line)
			}
		}
		if len(errLines) < 3*len(victimRoutes) {
			t.Errorf("%d error lines in the log, want one per failed request (%d)", len(errLines), 3*len(victimRoutes))
		}
		authFail := 0
		for _, l := range errLines {
			if strings.Contains(l, "does not authenticate") {
				authFail++
			}
			for _, f := range forbidden {
				if strings.Contains(l, f) {
					t.Errorf("log line shows %q: %s", f, l)
				}
			}
		}
		if authFail == 0 {
			t.Errorf("no error line says that a value does not authenticate:\n%s", strings.Join(errLines, "\n"))
		}
	})
}

// TestEncryptionStartupRefusals: settings and databases that do not agree
// stop the server at start with a message that says what to do, and never
// echo a key.
func TestEncryptionStartupRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clearDB, encDB := filepath.Join(dir, "clear.sqlite3"), filepath.Join(dir, "enc.sqlite3")
	for _, d := range []struct {
		path  string
		extra []string
	}{{clearDB, nil}, {encDB, encryptionOn(testEncKeyA)}} {
		s := startServer(t, serverEnv(d.path, d.extra...))
		c := s.client(newKey(t))
		mustResult(t, c.post(t, "/api/role/admin"), true)
		mustResult(t, c.post(t, "/api/permission/admin/read"), true)
		s.stop(t)
	}
	fresh := func() string { return filepath.Join(t.TempDir(), "auth.sqlite3") }
	cases := []struct {
		name  string
		db    string
		extra []string
		want  []string
	}{
		{"key missing", fresh(), []string{"ENABLE_ENCRYPTION=true"}, []string{"ENCRYPTION_KEY", "required"}},
		{"key short", fresh(), encryptionOn("k3Jq9vX2mP7wT4zR"), []string{"ENCRYPTION_KEY", "32"}},
		{"key a placeholder", fresh(), encryptionOn("changeme-changeme-changeme-changeme"), []string{"ENCRYPTION_KEY"}},
		{"key one character repeated", fresh(), encryptionOn(strings.Repeat("x", 40)), []string{"ENCRYPTION_KEY"}},
		{"previous key weak", fresh(), encryptionOn(testEncKeyB, "short"), []string{"ENCRYPTION_KEY_PREVIOUS"}},
		{"wrong key", encDB, encryptionOn(testEncKeyB), []string{"ENCRYPTION_KEY", "does not match"}},
		{"wrong key, wrong previous key", encDB, encryptionOn(testEncKeyB, "u1I2o3P4a5S6d7F8g9H0j1K2l3Z4x5C6"), []string{"ENCRYPTION_KEY"}},
		{"encryption off on an encrypted database", encDB, nil, []string{"ENABLE_ENCRYPTION", "encrypted"}},
		{"encryption on over a clear-text database", clearDB, encryptionOn(testEncKeyA), []string{"clear-text", "auth-server rekey"}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			stderr := startFailure(t, serverEnv(tc.db, tc.extra...))
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			for _, k := range []string{testEncKeyA, testEncKeyB, "changeme-changeme", "k3Jq9vX2mP7wT4zR", "u1I2o3P4a5S6d7F8"} {
				if strings.Contains(stderr, k) {
					t.Errorf("stderr echoes a key (%s):\n%s", k, stderr)
				}
			}
		})
	}
	// rekey refuses as well, and changes nothing.
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"rekey with encryption off", nil, "ENABLE_ENCRYPTION"},
		{"rekey with the wrong key", encryptionOn(testEncKeyB), "ENCRYPTION_KEY"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			before, err := os.ReadFile(encDB)
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runBinary(t, serverEnv(encDB, tc.extra...), time.Minute, "rekey")
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want a non-zero exit naming %s", code, stderr, stdout, tc.want)
			}
			if after, _ := os.ReadFile(encDB); !bytes.Equal(after, before) {
				t.Errorf("a refused rekey changed the database file")
			}
		})
	}
	// The encrypted database still serves with its key.
	s := startServer(t, serverEnv(encDB, encryptionOn(testEncKeyA)...))
	s.stop(t)
}

// sampleWorld is a few tenants' worth of data and the reads that cover it.
type sampleWorld struct {
	keys  []string
	paths []string // GET paths asked of every tenant
}

// seedWorld writes n tenants, each with its own arrangement of 4 roles, 12
// permissions (3 per role), 2 inheritance links and 7 users.
func seedWorld(t *testing.T, s *server, n int) sampleWorld {
	t.Helper()
	var w sampleWorld
	roles := []string{"r0", "r1", "r2", "r3"}
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6@example.com", "ghost"}
	perms := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "pnone"}
	for i := 0; i < n; i++ {
		key := newKey(t)
		w.keys = append(w.keys, key)
		c := s.client(key)
		var ps []string
		for _, r := range roles {
			ps = append(ps, "/api/role/"+r)
		}
		for k := 0; k < 12; k++ {
			ps = append(ps, fmt.Sprintf("/api/permission/%s/p%d", roles[(k+i)%4], k))
		}
		ps = append(ps, "/api/role/r1/parents/r0", fmt.Sprintf("/api/role/r3/parents/r%d", (i%2)*2))
		for m, u := range users[:7] {
			ps = append(ps, fmt.Sprintf("/api/membership/%s/%s", strings.ReplaceAll(u, "@", "%40"), roles[(m+i)%4]))
		}
		ps = append(ps, "/api/membership/u0/r3")
		for _, p := range ps {
			mustResult(t, c.post(t, p), true)
		}
	}
	w.paths = append(w.paths, "/api/roles")
	for _, u := range users {
		u = strings.ReplaceAll(u, "@", "%40")
		for _, p := range perms {
			w.paths = append(w.paths, "/api/has_permission/"+u+"/"+p)
		}
		for _, r := range roles {
			w.paths = append(w.paths, "/api/membership/"+u+"/"+r)
		}
		w.paths = append(w.paths, "/api/user_roles/"+u, "/api/user_permissions/"+u)
	}
	for _, r := range roles {
		w.paths = append(w.paths, "/api/members/"+r, "/api/role_permissions/"+r, "/api/role/"+r+"/parents")
	}
	for _, p := range perms {
		w.paths = append(w.paths, "/api/which_roles_can/"+p, "/api/which_users_can/"+p)
	}
	return w
}

// answer is a response as compared across servers: status and body with
// the timestamp taken out.
func answer(r response) string {
	return fmt.Sprintf("%d %s", r.status, tsRE.ReplaceAllString(strings.TrimSuffix(string(r.body), "\n"), `"timestamp":"`+tsMark+`"`))
}

// snapshot asks every tenant every read of w.
func (w sampleWorld) snapshot(t *testing.T, s *server) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i, k := range w.keys {
		c := s.client(k)
		for _, p := range w.paths {
			r := c.get(t, p)
			if r.status != 200 {
				t.Errorf("tenant %d GET %s: %s", i, p, r)
			}
			out[fmt.Sprintf("%d %s", i, p)] = answer(r)
		}
	}
	return out
}

// sameAnswers compares two snapshots; true and false checks must both
// occur, or the comparison proves little.
func sameAnswers(t *testing.T, when string, got, want map[string]string) {
	t.Helper()
	diffs := 0
	for k, w := range want {
		if g := got[k]; g != w {
			diffs++
			if diffs <= 10 {
				t.Errorf("%s: %s:\n got %s\nwant %s", when, k, g, w)
			}
		}
	}
	if diffs > 10 {
		t.Errorf("%s: %d answers differ in all", when, diffs)
	}
	var yes, no int
	for _, v := range want {
		yes += strings.Count(v, `"has_permission":true`)
		no += strings.Count(v, `"has_permission":false`)
	}
	if yes < 20 || no < 20 {
		t.Fatalf("%s: the reads hold %d true and %d false checks; want many of both", when, yes, no)
	}
}

// TestEncryptionMigratesClearDatabase: a database written with encryption
// off is refused with encryption on until `auth-server rekey` has
// encrypted it; then the server answers everything as before and no name
// is left in clear in casbin_rule or roles.
func TestEncryptionMigratesClearDatabase(t *testing.T) {
	t.Parallel()
	backendsFor(t, func(t *testing.T, newServer factory) {
		s := newServer(t)
		w := seedWorld(t, s, 2)
		c := s.client(w.keys[0])
		for _, p := range []string{"/api/role/canaryroleZ3k", "/api/permission/canaryroleZ3k/canarypermW9v",
			"/api/membership/canaryuserQ7x/canaryroleZ3k"} {
			mustResult(t, c.post(t, p), true)
		}
		before := w.snapshot(t, s)
		s.stop(t)

		encEnv := withEnv(s.env, encryptionOn(testEncKeyA)...)
		stderr := startFailure(t, encEnv)
		if !strings.Contains(stderr, "auth-server rekey") {
			t.Errorf("start with encryption on a clear-text database: stderr does not say to run rekey:\n%s", stderr)
		}
		code, stdout, errOut := runBinary(t, encEnv, 2*time.Minute, "rekey")
		if code != 0 || !strings.Contains(stdout, "rekey done") {
			t.Fatalf("rekey: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, errOut)
		}
		s2 := startServer(t, encEnv)
		sameAnswers(t, "after rekey", w.snapshot(t, s2), before)
		expect(t, s2.client(w.keys[0]).get(t, "/api/has_permission/canaryuserQ7x/canarypermW9v"), 200,
			env(`{"has_permission":true}`, "Permission check for user 'canaryuserQ7x' and permission 'canarypermW9v' completed"))
		// New writes work and are encrypted too.
		mustResult(t, s2.client(w.keys[1]).post(t, "/api/role/canaryparentH8p"), true)
		s2.stop(t)

		db := s2.openDB(t)
		ids := storedKeyIDs(t, db)
		if ids[""] != 0 || len(ids) != 1 {
			t.Errorf("stored names by key id after rekey: %v; want every one encrypted under one key", ids)
		}
		for _, table := range []string{"casbin_rule", "roles"} {
			for _, f := range findInTable(t, db, s.dbType, table, append(canaries, "u6@example.com", "r0", "p11")) {
				t.Errorf("name in clear after rekey: %s", f)
			}
		}
		var marker int
		if err := db.QueryRow("SELECT COUNT(*) FROM settings WHERE name = 'encryption_migration'").Scan(&marker); err != nil || marker != 0 {
			t.Errorf("migration marker left behind: %d rows (%v)", marker, err)
		}
		// Now encrypted, the database refuses a server with encryption off.
		if stderr := startFailure(t, s.env); !strings.Contains(stderr, "ENABLE_ENCRYPTION") {
			t.Errorf("encryption off after the migration: stderr does not name ENABLE_ENCRYPTION:\n%s", stderr)
		}
	})
}

// findInTable reports the cells of one table that hold one of needles
// (whole values for short names, substrings for the others).
func findInTable(t testing.TB, db *sql.DB, dbType, table string, needles []string) []string {
	t.Helper()
	var found []string
	for where, cells := range cellTexts(t, db, dbType) {
		if !strings.HasPrefix(where, table+".") && !strings.HasPrefix(where, "public."+table+".") {
			continue
		}
		for _, c := range cells {
			for _, n := range needles {
				if strings.Contains(c, n) && (len(n) > 4 || hasWord(c, n)) {
					found = append(found, fmt.Sprintf("%s holds %q", where, n))
				}
			}
		}
	}
	return found
}

// hasWord reports whether n occurs in s as a whole name (between
// separators that names cannot contain).
func hasWord(s, n string) bool {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(":,() \"", r) }) {
		if f == n {
			return true
		}
	}
	return false
}

// TestEncryptionRotation is the rotation end to end: data written under key
// A; a server with ENCRYPTION_KEY=B and ENCRYPTION_KEY_PREVIOUS=A serves
// checks and writes while `auth-server rekey` re-encrypts; after a restart
// with only B every check answers as before, and no stored value is left
// under A.
func TestEncryptionRotation(t *testing.T) {
	t.Parallel()
	backendsFor(t, func(t *testing.T, newServer factory) {
		s1 := encrypted(newServer)(t)
		w := seedWorld(t, s1, 3)
		// A tenant that is written to during the rotation.
		writer := s1.client(newKey(t))
		mustResult(t, writer.post(t, "/api/role/w"), true)
		for i := 0; i < 10; i++ {
			mustResult(t, writer.post(t, fmt.Sprintf("/api/permission/w/g%d", i)), true)
		}
		mustResult(t, writer.post(t, "/api/membership/wu/w"), true)
		truth := w.snapshot(t, s1)
		s1.stop(t)
		db := s1.openDB(t)
		idsA := storedKeyIDs(t, db)
		if len(idsA) != 1 || idsA[""] != 0 {
			t.Fatalf("stored names by key id under A: %v; want one key id", idsA)
		}
		var keyA string
		for k := range idsA {
			keyA = k
		}
		if s1.dbType == "sqlite" {
			_ = db.Close()
		}

		rotEnv := withEnv(s1.env, encryptionOn(testEncKeyB, testEncKeyA)...)
		s2 := startServer(t, rotEnv)
		sameAnswers(t, "with B and previous A, before rekey", w.snapshot(t, s2), truth)

		// Load: readers compare every answer with the truth; one writer
		// grants new permissions (under B) and revokes old ones (under A).
		var (
			mu       sync.Mutex
			problems []string
			requests atomic.Int64
			stop     = make(chan struct{})
			ready    = make(chan struct{}, 8)
			wg       sync.WaitGroup
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			if len(problems) < 20 {
				problems = append(problems, fmt.Sprintf(format, args...))
			}
		}
		type pathOf struct {
			tenant int
			path   string
		}
		var all []pathOf
		for i := range w.keys {
			for _, p := range w.paths {
				all = append(all, pathOf{i, p})
			}
		}
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 7))
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					x := all[rng.IntN(len(all))]
					r, err := s2.send("GET", x.path, "Authorization: Bearer "+w.keys[x.tenant])
					if err != nil {
						fail("GET %s: %v", x.path, err)
						return
					}
					requests.Add(1)
					if got, want := answer(r), truth[fmt.Sprintf("%d %s", x.tenant, x.path)]; got != want {
						fail("during rotation, tenant %d GET %s:\n got %s\nwant %s", x.tenant, x.path, got, want)
					}
					if n == 0 {
						ready <- struct{}{}
					}
				}
			}(uint64(g))
		}
		var writes atomic.Int64
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				steps := []struct{ method, path string }{{"POST", fmt.Sprintf("/api/permission/w/n%d", i)}}
				if i < 10 {
					steps = append(steps, struct{ method, path string }{"DELETE", fmt.Sprintf("/api/permission/w/g%d", i)})
				}
				for _, st := range steps {
					r, err := s2.send(st.method, st.path, writer.auth())
					if err != nil || r.status != 200 || !strings.Contains(string(r.body), "true") {
						fail("%s %s during rotation: %v %v", st.method, st.path, r, err)
						return
					}
				}
				writes.Store(int64(i + 1))
				if i == 0 {
					ready <- struct{}{}
				}
			}
		}()
		for i := 0; i < 5; i++ {
			<-ready // every worker has answered once: the load is on
		}
		startReq, startWrites := requests.Load(), writes.Load()
		code, stdout, stderr := runBinary(t, rotEnv, 2*time.Minute, "rekey")
		during, duringWrites := requests.Load()-startReq, writes.Load()-startWrites
		close(stop)
		wg.Wait()
		t.Logf("rekey ran while the server answered %d reads and %d writes", during, duringWrites)
		if code != 0 || !strings.Contains(stdout, "rekey done") {
			t.Fatalf("rekey: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, p := range problems {
			t.Error(p)
		}
		if during == 0 {
			t.Errorf("no read was answered while rekey ran: the test did not overlap them")
		}
		n := int(writes.Load())
		wantPerms := func() []string {
			var out []string
			for i := min(n, 10); i < 10; i++ {
				out = append(out, fmt.Sprintf("g%d", i))
			}
			for i := 0; i < n; i++ {
				out = append(out, fmt.Sprintf("n%d", i))
			}
			return out
		}()
		sameList(t, "permissions of w with B+A after rekey", rolePermissionNames(t, s2.client(writer.key).get(t, "/api/role_permissions/w")), wantPerms)
		sameAnswers(t, "with B and previous A, after rekey", w.snapshot(t, s2), truth)
		s2.stop(t)

		db = s2.openDB(t)
		idsB := storedKeyIDs(t, db)
		if idsB[keyA] != 0 || idsB[""] != 0 || len(idsB) != 1 {
			t.Errorf("stored names by key id after rekey: %v; want all under one key, none under A (%s)", idsB, keyA)
		}
		if s2.dbType == "sqlite" {
			_ = db.Close()
		}
		// Key A alone no longer opens the database; B alone does.
		if stderr := startFailure(t, withEnv(s1.env, encryptionOn(testEncKeyA)...)); !strings.Contains(stderr, "ENCRYPTION_KEY") {
			t.Errorf("start with only A after rotation: stderr does not name ENCRYPTION_KEY:\n%s", stderr)
		}
		s3 := startServer(t, withEnv(s1.env, append(encryptionOn(testEncKeyB), "ENCRYPTION_KEY_PREVIOUS=")...))
		if v := envValue(s3.env, "ENCRYPTION_KEY_PREVIOUS"); v != "" {
			t.Fatalf("the restarted server still has ENCRYPTION_KEY_PREVIOUS=%s", v)
		}
		sameAnswers(t, "with only B after rekey", w.snapshot(t, s3), truth)
		sameList(t, "permissions of w with only B", rolePermissionNames(t, s3.client(writer.key).get(t, "/api/role_permissions/w")), wantPerms)
		expect(t, s3.client(writer.key).get(t, "/api/user_roles/wu"), 200, res(`[{"role":"w","user":"wu"}]`))
	})
}
