package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// readAllRoutes are GET requests over every read route for one user, role
// and permission name.
var readAllRoutes = []string{
	"/api/roles",
	"/api/permission/admin/read",
	"/api/role_permissions/admin",
	"/api/members/admin",
	"/api/user_roles/john",
	"/api/membership/john/admin",
	"/api/has_permission/john/read",
	"/api/user_permissions/john",
	"/api/which_roles_can/read",
	"/api/which_users_can/read",
	"/api/role/admin/parents",
	"/api/workflow/users/read",
	"/api/workflow/user/john/can_run/read",
}

// testUnknownTenantCreatesNothing: reading with a key nobody wrote with
// answers empty results and leaves no trace in the database.
func testUnknownTenantCreatesNothing(t *testing.T, newServer factory) {
	s := newServer(t)
	known := s.client(newKey(t))
	for _, p := range []string{"/api/role/admin", "/api/role/base", "/api/permission/admin/read",
		"/api/membership/john/admin", "/api/role/admin/parents/base"} {
		mustResult(t, known.post(t, p), true)
	}
	unknownKey := newKey(t)
	for _, c := range []client{s.client(unknownKey), s.client(strings.ToUpper(unknownKey))} {
		for _, prefix := range []string{"", "/v1"} {
			for _, p := range readAllRoutes {
				path := strings.Replace(p, "/api", "/api"+prefix, 1)
				r := c.get(t, path)
				if r.status != 200 {
					t.Errorf("GET %s: status %d: %s", path, r.status, r.body)
					continue
				}
				normalized(t, r)
				var b struct {
					Result json.RawMessage `json:"result"`
					Data   json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(r.body, &b); err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				payload := string(b.Result) + string(b.Data)
				for _, bad := range []string{"true", `"name"`, `"user"`, `"role"`, `"parent"`, `"count":1`} {
					if strings.Contains(payload, bad) {
						t.Errorf("GET %s with an unknown key: %s (holds %s)", path, r.body, bad)
					}
				}
			}
			c.call(t, "HEAD", "/api"+prefix+"/roles")
			c.get(t, "/api"+prefix+"/role_permissions/bad.name")
			c.get(t, "/api"+prefix+"/members/bad.name")
		}
	}
	expect(t, s.client(unknownKey).get(t, "/api/roles"), 200, res(`[]`))
	s.stop(t)
	db := s.openDB(t)
	if n := count(t, db, "tenants"); n != 1 {
		t.Errorf("tenants: %d rows, want 1 (reads with an unknown key created tenants)", n)
	}
	if n := count(t, db, "roles"); n != 2 {
		t.Errorf("roles: %d rows, want 2", n)
	}
}

// testNoClientKeyInDatabase: after data is written with several keys (some
// in upper case), no form of any key is found in any column of any table,
// in the raw SQLite files (WAL included) or in the server log. With field
// encryption on, the canary role name must not be found either.
func testNoClientKeyInDatabase(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_LOG_LEVEL=debug")
	var keys []string
	for i := 0; i < 4; i++ {
		keys = append(keys, newKey(t))
	}
	const marker = "canary-role-4711"
	sealed := envValue(s.env, "ENABLE_ENCRYPTION") == "true"
	// The scans look at the right place if they find the canary role name,
	// or, when names are encrypted, ciphertexts.
	probe := []byte(marker)
	if sealed {
		probe = []byte("enc1:")
	}
	for i, k := range keys {
		if i%2 == 1 {
			k = strings.ToUpper(k)
		}
		c := s.client(k)
		for _, p := range []string{"/api/role/" + marker, "/api/role/admin", "/api/role/base",
			"/api/permission/admin/read", "/api/permission/base/view", "/api/membership/john%40example.com/admin",
			"/api/membership/jane/base", "/api/role/admin/parents/base", "/api/role/tmp"} {
			mustResult(t, c.post(t, p), true)
		}
		c.del(t, "/api/role/tmp")
		c.del(t, "/api/membership/jane/base")
		for _, p := range readAllRoutes {
			c.get(t, p)
		}
		// Rejected requests too.
		c.post(t, "/api/role/bad.name")
		s.do(t, "GET", "/api/roles", "Authorization: Basic "+k)
	}
	var needles []string
	var raw [][]byte
	for _, k := range keys {
		plain := strings.ReplaceAll(k, "-", "")
		needles = append(needles, k, strings.ToUpper(k), plain, strings.ToUpper(plain))
		b, err := hex.DecodeString(plain)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	scanFiles := func(when string) {
		if s.dbType != "sqlite" {
			return
		}
		scanned := 0
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(s.dbPath + suffix)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatalf("read %s: %v", s.dbPath+suffix, err)
			}
			scanned++
			if when == "after stop" && suffix == "" && !bytes.Contains(b, probe) {
				t.Errorf("%s: %q is not in the database file: the scan looks at the wrong file", when, probe)
			}
			if sealed && bytes.Contains(b, []byte(marker)) {
				t.Errorf("%s: file auth.sqlite3%s holds the canary role name in clear", when, suffix)
			}
			for _, n := range needles {
				if bytes.Contains(b, []byte(n)) {
					t.Errorf("%s: file auth.sqlite3%s holds the client key %q in clear", when, suffix, n)
				}
			}
			for i, r := range raw {
				if bytes.Contains(b, r) {
					t.Errorf("%s: file auth.sqlite3%s holds the 16 bytes of client key %q", when, suffix, keys[i])
				}
			}
		}
		if scanned == 0 {
			t.Errorf("%s: no SQLite file found at %s", when, s.dbPath)
		}
		if _, err := os.Stat(s.dbPath + "-wal"); when == "while running" && err != nil {
			t.Errorf("%s: no WAL file to scan (%v); the test no longer covers it", when, err)
		}
	}
	scanFiles("while running")
	s.stop(t)
	scanFiles("after stop")
	db := s.openDB(t)
	if found := findInDB(t, db, s.dbType, []string{string(probe)}); len(found) == 0 {
		t.Fatalf("%q is in no table: the scan is broken", probe)
	}
	if sealed {
		for _, f := range findInDB(t, db, s.dbType, []string{marker}) {
			t.Errorf("canary role name in clear in the database: %s", f)
		}
	}
	for _, f := range findInDB(t, db, s.dbType, needles) {
		t.Errorf("client key in clear in the database: %s", f)
	}
	log := s.stderr.String()
	if !strings.Contains(log, `"level":"DEBUG"`) {
		t.Errorf("no debug line in the server log; the log scan covers less than intended")
	}
	for _, n := range needles {
		if strings.Contains(log, n) {
			t.Errorf("server log holds the client key %q", n)
		}
	}
}

// testPersistence: everything written is there after a clean restart on
// the same database, in the same order.
func testPersistence(t *testing.T, newServer factory) {
	s := newServer(t)
	ka, kb := newKey(t), newKey(t)
	a, b := s.client(ka), s.client(kb)
	for _, p := range []string{"/api/role/admin", "/api/role/editor", "/api/role/viewer", "/api/role/tmp",
		"/api/permission/admin/read", "/api/permission/admin/write", "/api/permission/editor/read",
		"/api/permission/viewer/view", "/api/permission/tmp/read", "/api/permission/admin/gone",
		"/api/membership/john/admin", "/api/membership/john/editor", "/api/membership/jane%40example.com/editor",
		"/api/membership/bob/admin", "/api/membership/ann/tmp", "/api/role/editor/parents/viewer"} {
		mustResult(t, a.post(t, p), true)
	}
	expect(t, a.del(t, "/api/permission/admin/gone"), 200, res("true"))
	expect(t, a.del(t, "/api/membership/bob/admin"), 200, res("true"))
	expect(t, a.del(t, "/api/role/tmp"), 200, env(`{"result":true}`, "Role 'tmp' deletion completed"))
	for _, p := range []string{"/api/role/other", "/api/permission/other/read", "/api/membership/zed/other"} {
		mustResult(t, b.post(t, p), true)
	}
	reads := []string{
		"/api/roles",
		"/api/role_permissions/admin",
		"/api/role_permissions/editor",
		"/api/role_permissions/tmp",
		"/api/members/admin",
		"/api/members/editor",
		"/api/members/tmp",
		"/api/user_roles/john",
		"/api/user_roles/ann",
		"/api/user_roles/bob",
		"/api/user_permissions/john",
		"/api/user_permissions/jane%40example.com",
		"/api/has_permission/jane%40example.com/view",
		"/api/has_permission/john/gone",
		"/api/membership/bob/admin",
		"/api/permission/admin/write",
		"/api/which_roles_can/read",
		"/api/which_users_can/read",
		"/api/role/editor/parents",
		"/api/workflow/users/view",
		"/api/workflow/user/jane%40example.com/can_run/view",
	}
	snapshot := func(s *server) map[string]string {
		out := map[string]string{}
		for _, c := range []client{s.client(ka), s.client(kb)} {
			for _, p := range reads {
				r := c.get(t, p)
				if r.status != 200 {
					t.Errorf("GET %s: %d %s", p, r.status, r.body)
				}
				out[c.key[:8]+" "+p] = normalized(t, r)
			}
		}
		return out
	}
	before := snapshot(s)
	// Spot checks that the snapshot holds what was written.
	if got, want := before[ka[:8]+" /api/members/editor"], res(`[{"role":"editor","user":"john"},{"role":"editor","user":"jane@example.com"}]`); got != want {
		t.Fatalf("before restart: members of editor = %s, want %s", got, want)
	}
	if got, want := before[kb[:8]+" /api/roles"], res(`[{"description":null,"role":"other"}]`); got != want {
		t.Fatalf("before restart: roles of B = %s, want %s", got, want)
	}

	s2 := s.restart(t)
	after := snapshot(s2)
	for k, want := range before {
		if got := after[k]; got != want {
			t.Errorf("after restart, GET %s:\n got: %s\nwant: %s", k, got, want)
		}
	}
	// The deleted role stays deleted; the others take new changes.
	a2 := s2.client(ka)
	expect(t, a2.del(t, "/api/role/tmp"), 200, env(`{"result":false}`, "Role 'tmp' deletion completed"))
	expect(t, a2.post(t, "/api/permission/tmp/read"), 200, res("false"))
	expect(t, a2.post(t, "/api/membership/bob/admin"), 200, res("true"))
	expect(t, a2.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"},{"role":"admin","user":"bob"}]`))
	// And a second restart keeps that too.
	s3 := s2.restart(t)
	expect(t, s3.client(ka).get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"},{"role":"admin","user":"bob"}]`))
	expect(t, s3.client(kb).get(t, "/api/user_roles/zed"), 200, res(`[{"role":"other","user":"zed"}]`))
}
