package e2e

import (
	"slices"
	"strings"
	"testing"
)

func TestAPISQLite(t *testing.T) {
	t.Parallel()
	runAPISuite(t, sqliteServer)
}

func TestAPIPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runAPISuite(t, postgresServer)
}

// runAPISuite is the whole HTTP suite, run once per storage backend. Most
// subtests share one server and isolate themselves with a fresh client key;
// those that inspect the database or restart start servers of their own.
func runAPISuite(t *testing.T, newServer factory) {
	s := newServer(t)
	shared := func(name string, fn func(t *testing.T, s *server)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, s)
		})
	}
	own := func(name string, fn func(t *testing.T, newServer factory)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newServer)
		})
	}
	shared("Contract", testContract)
	shared("Ping", testPing)
	shared("AuthErrors", testAuthErrors)
	shared("AuthBeforeValidation", testAuthBeforeValidation)
	shared("NameValidation", testNameValidation)
	shared("ValidNames", testValidNames)
	shared("NotFoundAndMethodNotAllowed", testNotFoundAndMethod)
	shared("RequestBodies", testRequestBodies)
	shared("RequestID", testRequestID)
	shared("SecurityHeaders", testSecurityHeaders)
	shared("Acceptance", testAcceptance)
	shared("Semantics", testSemantics)
	shared("RoleInheritance", testRoleInheritance)
	shared("TenantIsolation", testTenantIsolation)
	own("CORS", testCORS)
	own("UnknownTenantCreatesNothing", testUnknownTenantCreatesNothing)
	own("NoClientKeyInDatabase", testNoClientKeyInDatabase)
	own("Persistence", testPersistence)
	own("WildcardModel", testWildcardModel)
	own("PatternModel", testPatternModel)
	own("RoleDepthLimit", testRoleDepthLimit)
}

var prefixes = []string{"/api", "/api/v1"}

// step is one request of a scripted scenario with its exact answer.
type step struct {
	method, path string
	status       int
	want         string
}

// testContract replays the literal captures of the contract (A5) on every
// route, under /api and /api/v1, and checks each body byte for byte.
func testContract(t *testing.T, s *server) {
	steps := []step{
		{"POST", "/role/admin", 200, res("true")},
		{"POST", "/role/editor", 200, res("true")},
		{"GET", "/roles", 200, res(`[{"description":null,"role":"admin"},{"description":null,"role":"editor"}]`)},
		{"POST", "/permission/admin/read", 200, res("true")},
		{"POST", "/permission/admin/write", 200, res("true")},
		{"POST", "/permission/ghost/read", 200, res("false")},
		{"POST", "/permission/editor/read", 200, res("true")},
		{"GET", "/permission/admin/read", 200, res("true")},
		{"GET", "/permission/editor/write", 200, res("false")},
		{"GET", "/role_permissions/admin", 200, env(`[{"name":"read"},{"name":"write"}]`, "Retrieved permissions for role 'admin'")},
		{"GET", "/role_permissions/ghost", 200, env(`[]`, "Retrieved permissions for role 'ghost'")},
		{"POST", "/membership/john/admin", 200, res("true")},
		{"POST", "/membership/john/editor", 200, res("true")},
		{"POST", "/membership/jane/editor", 200, res("true")},
		{"POST", "/membership/bob/ghost", 200, res("false")},
		{"GET", "/membership/john/admin", 200, env(`{"has_permission":true}`, "Membership check for user 'john' and group 'admin' completed")},
		{"GET", "/membership/jane/admin", 200, env(`{"has_permission":false}`, "Membership check for user 'jane' and group 'admin' completed")},
		{"GET", "/has_permission/john/read", 200, env(`{"has_permission":true}`, "Permission check for user 'john' and permission 'read' completed")},
		{"GET", "/has_permission/jane/write", 200, env(`{"has_permission":false}`, "Permission check for user 'jane' and permission 'write' completed")},
		{"GET", "/user_permissions/john", 200, env(`{"count":3,"permissions":[{"name":"read"},{"name":"write"},{"name":"read"}]}`, "Retrieved permissions for user 'john'")},
		{"GET", "/user_permissions/nobody", 200, env(`{"count":0,"permissions":[]}`, "Retrieved permissions for user 'nobody'")},
		{"GET", "/user_roles/john", 200, res(`[{"role":"admin","user":"john"},{"role":"editor","user":"john"}]`)},
		{"GET", "/user_roles/nobody", 200, res(`[]`)},
		{"GET", "/members/admin", 200, res(`[{"role":"admin","user":"john"}]`)},
		{"GET", "/members/editor", 200, res(`[{"role":"editor","user":"john"},{"role":"editor","user":"jane"}]`)},
		{"GET", "/which_roles_can/read", 200, res(`[{"role":"admin"},{"role":"editor"}]`)},
		{"GET", "/which_roles_can/write", 200, res(`[{"role":"admin"}]`)},
		{"GET", "/which_users_can/read", 200, res(`[{"role":"admin","user":"john"},{"role":"editor","user":"john"},{"role":"editor","user":"jane"}]`)},
		{"GET", "/workflow/users/read", 200, env(`{"count":3,"members":[{"role":"admin","user":"john"},{"role":"editor","user":"john"},{"role":"editor","user":"jane"}]}`, "Retrieved users who can run workflow 'read'")},
		{"GET", "/workflow/users/deploy", 200, env(`{"count":0,"members":[]}`, "Retrieved users who can run workflow 'deploy'")},
		{"GET", "/workflow/user/john/can_run/read", 200, env(`{"has_permission":true}`, "Workflow permission check for user 'john' and workflow 'read' completed")},
		{"GET", "/workflow/user/jane/can_run/write", 200, env(`{"has_permission":false}`, "Workflow permission check for user 'jane' and workflow 'write' completed")},
		// Role inheritance routes.
		{"POST", "/role/viewer", 200, res("true")},
		{"POST", "/permission/viewer/view", 200, res("true")},
		{"GET", "/role/editor/parents", 200, res(`[]`)},
		{"POST", "/role/editor/parents/viewer", 200, res("true")},
		{"POST", "/role/editor/parents/ghost", 200, res("false")},
		{"GET", "/role/editor/parents", 200, res(`[{"parent":"viewer","role":"editor"}]`)},
		{"GET", "/has_permission/jane/view", 200, env(`{"has_permission":true}`, "Permission check for user 'jane' and permission 'view' completed")},
		{"DELETE", "/role/editor/parents/viewer", 200, res("true")},
		{"DELETE", "/role/editor/parents/viewer", 200, res("true")},
		{"GET", "/role/editor/parents", 200, res(`[]`)},
		{"GET", "/has_permission/jane/view", 200, env(`{"has_permission":false}`, "Permission check for user 'jane' and permission 'view' completed")},
		// Deletes.
		{"DELETE", "/permission/admin/write", 200, res("true")},
		{"GET", "/permission/admin/write", 200, res("false")},
		{"DELETE", "/permission/admin/write", 200, res("true")},
		{"DELETE", "/membership/john/admin", 200, res("true")},
		{"GET", "/membership/john/admin", 200, env(`{"has_permission":false}`, "Membership check for user 'john' and group 'admin' completed")},
		{"DELETE", "/membership/john/admin", 200, res("true")},
		{"DELETE", "/role/admin", 200, env(`{"result":true}`, "Role 'admin' deletion completed")},
		{"DELETE", "/role/admin", 200, env(`{"result":false}`, "Role 'admin' deletion completed")},
		{"GET", "/roles", 200, res(`[{"description":null,"role":"editor"},{"description":null,"role":"viewer"}]`)},
	}
	for _, prefix := range prefixes {
		t.Run(strings.ReplaceAll(prefix, "/", "_"), func(t *testing.T) {
			t.Parallel()
			c := s.client(newKey(t))
			for _, st := range steps {
				expect(t, c.call(t, st.method, prefix+st.path), st.status, st.want)
			}
		})
	}
	t.Run("PrefixesShareTenant", func(t *testing.T) {
		t.Parallel()
		c := s.client(newKey(t))
		expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
		expect(t, c.get(t, "/api/v1/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
		expect(t, c.post(t, "/api/v1/permission/admin/read"), 200, res("true"))
		expect(t, c.get(t, "/api/permission/admin/read"), 200, res("true"))
	})
	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		c := s.client(newKey(t))
		for _, p := range []string{"/api/roles", "/api/v1/user_roles/john"} {
			r := c.call(t, "HEAD", p)
			if r.status != 200 || len(r.body) != 0 {
				t.Errorf("HEAD %s: got %d with %d body bytes, want 200 with none", p, r.status, len(r.body))
			}
		}
	})
}

func testPing(t *testing.T, s *server) {
	for _, hdr := range [][]string{nil, {"Authorization: Bearer not-a-key"}} {
		r := s.do(t, "GET", "/ping", hdr...)
		if r.status != 200 || string(r.body) != "{\"message\":\"PONG\"}\n" {
			t.Errorf("GET /ping %v: got %d %q, want 200 %q", hdr, r.status, r.body, "{\"message\":\"PONG\"}\n")
		}
		if len(r.body) != 19 {
			t.Errorf("GET /ping: %d bytes, want 19", len(r.body))
		}
		checkJSONType(t, r)
	}
}

// TestRawKeyOrder checks the raw key order of a bare result and of an envelope.
func TestRawKeyOrder(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	c := s.client(newKey(t))
	c.post(t, "/api/role/admin")
	for _, tc := range []struct {
		path string
		keys []string
	}{
		{"/api/roles", []string{"result"}},
		{"/api/has_permission/john/read", []string{"code", "data", "message", "success", "timestamp"}},
		{"/api/user_permissions/john", []string{"code", "data", "message", "success", "timestamp"}},
		{"/api/role/bad.name/parents", errorKeys},
	} {
		r := c.get(t, tc.path)
		got, err := topKeys(r.body)
		if err != nil || strings.Join(got, ",") != strings.Join(tc.keys, ",") {
			t.Errorf("GET %s: keys %v (%v), want %v", tc.path, got, err, tc.keys)
		}
	}
	r := c.get(t, "/api/roles")
	if got, want := string(r.body), "{\"result\":[{\"description\":null,\"role\":\"admin\"}]}\n"; got != want {
		t.Errorf("GET /api/roles raw body = %q, want %q", got, want)
	}
}

const (
	msgMissing   = "Authorization header is missing."
	msgBadFormat = "Invalid Authorization header format. Must be 'Bearer <token>'."
	msgBadKey    = "Invalid client key. Must be a valid UUID4."
)

func testAuthErrors(t *testing.T, s *server) {
	key := newKey(t)
	// A route of each family, under both prefixes.
	routes := []struct{ method, path string }{
		{"GET", "/api/roles"},
		{"POST", "/api/role/admin"},
		{"DELETE", "/api/v1/role/admin"},
		{"GET", "/api/membership/john/admin"},
		{"GET", "/api/v1/user_permissions/john"},
		{"GET", "/api/workflow/user/john/can_run/deploy"},
		{"GET", "/api/v1/role/admin/parents"},
	}
	cases := []struct {
		name    string
		headers []string
		status  int
		msg     string
		token   string // must not be echoed
	}{
		{"missing", nil, 401, msgMissing, ""},
		{"whitespace only", []string{"Authorization:    "}, 401, msgBadFormat, ""},
		{"Bearer alone", []string{"Authorization: Bearer"}, 401, msgBadFormat, ""},
		{"Bearer with two tokens", []string{"Authorization: Bearer a b"}, 401, msgBadFormat, ""},
		{"Bearer key and more", []string{"Authorization: Bearer " + key + " extra"}, 401, msgBadFormat, key},
		{"Token scheme", []string{"Authorization: Token xyz"}, 401, msgBadFormat, "xyz"},
		{"Basic scheme", []string{"Authorization: Basic abc"}, 401, msgBadFormat, "abc"},
		{"Basic scheme with key", []string{"Authorization: Basic " + key}, 401, msgBadFormat, key},
		{"non-UUID key", []string{"Authorization: Bearer not-a-uuid-at-all"}, 400, msgBadKey, "not-a-uuid-at-all"},
		{"UUID version 1", []string{"Authorization: Bearer 3f1b2c3d-1234-11ec-8def-0123456789ab"}, 400, msgBadKey, "3f1b2c3d-1234-11ec-8def-0123456789ab"},
		{"UUID version 5", []string{"Authorization: Bearer 3f1b2c3d-1234-5abc-8def-0123456789ab"}, 400, msgBadKey, "3f1b2c3d-1234-5abc-8def-0123456789ab"},
		{"UUID4 wrong variant", []string{"Authorization: Bearer 3f1b2c3d-1234-4abc-cdef-0123456789ab"}, 400, msgBadKey, "3f1b2c3d-1234-4abc-cdef-0123456789ab"},
		{"UUID4 NCS variant", []string{"Authorization: Bearer 3f1b2c3d-1234-4abc-7def-0123456789ab"}, 400, msgBadKey, "3f1b2c3d-1234-4abc-7def-0123456789ab"},
		{"UUID4 without dashes", []string{"Authorization: Bearer " + strings.ReplaceAll(key, "-", "")}, 400, msgBadKey, strings.ReplaceAll(key, "-", "")},
		{"UUID4 in braces", []string{"Authorization: Bearer {" + key + "}"}, 400, msgBadKey, key},
		{"UUID4 URN", []string{"Authorization: Bearer urn:uuid:" + key}, 400, msgBadKey, key},
		{"UUID4 too long", []string{"Authorization: Bearer " + key + "0"}, 400, msgBadKey, key},
		{"UUID4 with non-hex", []string{"Authorization: Bearer 3f1b2c3d-1234-4abc-8def-0123456789ag"}, 400, msgBadKey, "0123456789ag"},
		{"JWT shaped", []string{"Authorization: Bearer a.b.c"}, 401, "", "a.b.c"},
		{"JWT shaped realistic", []string{"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}, 401, "", "eyJzdWIiOiJ4In0"},
		{"JWT alg none", []string{"Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, 401, "", "eyJzdWIiOiJ4In0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range routes {
				r := s.do(t, rt.method, rt.path, tc.headers...)
				expectError(t, r, tc.status, tc.msg)
				if tc.token != "" && strings.Contains(string(r.body), tc.token) {
					t.Errorf("%s %s: body echoes the token %q: %s", rt.method, rt.path, tc.token, r.body)
				}
			}
		})
	}
	t.Run("accepted forms", func(t *testing.T) {
		c := s.client(key)
		expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
		for _, h := range []string{
			"Authorization: bearer " + key,
			"Authorization: BEARER " + key,
			"Authorization: Bearer    " + key,
			"Authorization: Bearer\t" + key,
			"Authorization: Bearer " + strings.ToUpper(key),
		} {
			r := s.do(t, "GET", "/api/roles", h)
			expect(t, r, 200, res(`[{"description":null,"role":"admin"}]`))
		}
	})
}

// testAuthBeforeValidation: authentication errors win over invalid names.
func testAuthBeforeValidation(t *testing.T, s *server) {
	bad := []struct{ method, path string }{
		{"POST", "/api/role/bad.name"},
		{"DELETE", "/api/role/bad.name"},
		{"GET", "/api/membership/bad!user/bad.role"},
		{"GET", "/api/has_permission/bad!user/read"},
		{"GET", "/api/v1/which_users_can/bad.perm"},
		{"GET", "/api/workflow/users/bad.wf"},
		{"POST", "/api/role/admin%0A"},
	}
	for _, rt := range bad {
		expectError(t, s.do(t, rt.method, rt.path), 401, msgMissing)
		expectError(t, s.do(t, rt.method, rt.path, "Authorization: Basic abc"), 401, msgBadFormat)
		expectError(t, s.do(t, rt.method, rt.path, "Authorization: Bearer nope"), 400, msgBadKey)
	}
}

func longUser(u string) string {
	return "Invalid user name: " + u + ". User names must be 1-64 characters long and contain only alphanumeric, underscore, hyphen, or email characters (@ . +)."
}

func longRole(r string) string {
	return "Invalid role name: " + r + ". Role names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
}

func longGroup(r string) string {
	return "Invalid group name: " + r + ". Group (role) names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
}

func longPermission(p string) string {
	return "Invalid permission name: " + p + ". Permission names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
}

func longWorkflow(w string) string {
	return "Invalid workflow name: " + w + ". Workflow names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
}

func testNameValidation(t *testing.T, s *server) {
	c := s.client(newKey(t))
	c.post(t, "/api/role/admin")
	u65 := strings.Repeat("u", 65)
	r65 := strings.Repeat("r", 65)
	p129 := strings.Repeat("p", 129)
	cases := []struct {
		method, path, msg string
	}{
		// membership.
		{"GET", "/membership/bad!user/admin", longUser("bad!user")},
		{"GET", "/membership/john/bad.role", longRole("bad.role")},
		{"GET", "/membership/bad!user/bad.role", longUser("bad!user")},
		{"POST", "/membership/bad!user/admin", longUser("bad!user")},
		{"POST", "/membership/john/bad.role", longRole("bad.role")},
		{"POST", "/membership/john/john%40example.com", longRole("john@example.com")},
		{"DELETE", "/membership/bad!user/admin", longUser("bad!user")},
		{"DELETE", "/membership/john/bad.role", longRole("bad.role")},
		{"POST", "/membership/" + u65 + "/admin", longUser(u65)},
		{"POST", "/membership/john/" + r65, longRole(r65)},
		{"POST", "/membership/john%0A/admin", longUser("john\n")},
		{"POST", "/membership/john/admin%0A", longRole("admin\n")},
		{"POST", "/membership/j%20ohn/admin", longUser("j ohn")},
		{"POST", "/membership/j%3Cb%3E/admin", longUser("j<b>")},
		// permission: group and permission.
		{"GET", "/permission/bad.role/read", longGroup("bad.role")},
		{"POST", "/permission/bad.role/read", longGroup("bad.role")},
		{"DELETE", "/permission/bad.role/read", longGroup("bad.role")},
		{"GET", "/permission/x%40y/read", longGroup("x@y")},
		{"GET", "/permission/admin/bad.perm", longPermission("bad.perm")},
		{"POST", "/permission/admin/bad.perm", longPermission("bad.perm")},
		{"POST", "/permission/admin/read%0A", longPermission("read\n")},
		{"POST", "/permission/admin/reports_%2A", longPermission("reports_*")},
		{"DELETE", "/permission/admin/bad.perm", longPermission("bad.perm")},
		{"POST", "/permission/admin/" + p129, longPermission(p129)},
		{"POST", "/permission/" + r65 + "/read", longGroup(r65)},
		{"GET", "/permission/bad.role/bad.perm", longGroup("bad.role")},
		// has_permission.
		{"GET", "/has_permission/bad!user/read", longUser("bad!user")},
		{"GET", "/has_permission/john/bad.perm", longPermission("bad.perm")},
		{"GET", "/has_permission/" + u65 + "/read", longUser(u65)},
		{"GET", "/has_permission/john%0A/read", longUser("john\n")},
		{"GET", "/has_permission/john/" + p129, longPermission(p129)},
		// single-name routes.
		{"GET", "/user_permissions/bad!user", longUser("bad!user")},
		{"GET", "/user_permissions/" + u65, longUser(u65)},
		{"GET", "/role_permissions/bad.role", longRole("bad.role")},
		{"GET", "/role_permissions/a%40b", longRole("a@b")},
		{"GET", "/user_roles/bad!user", longUser("bad!user")},
		{"GET", "/user_roles/john%0A", longUser("john\n")},
		{"GET", "/members/bad.role", longRole("bad.role")},
		{"GET", "/members/" + r65, longRole(r65)},
		{"GET", "/which_roles_can/bad.perm", longPermission("bad.perm")},
		{"GET", "/which_roles_can/" + p129, longPermission(p129)},
		{"GET", "/which_users_can/bad.perm", longPermission("bad.perm")},
		{"GET", "/which_users_can/read%0A", longPermission("read\n")},
		// roles.
		{"POST", "/role/bad.name", longRole("bad.name")},
		{"DELETE", "/role/bad.name", longRole("bad.name")},
		{"POST", "/role/john%40example.com", longRole("john@example.com")},
		{"POST", "/role/a.b+c@d.io", longRole("a.b+c@d.io")},
		{"POST", "/role/admin%0A", longRole("admin\n")},
		{"POST", "/role/a%2Fb", longRole("a/b")},
		{"POST", "/role/" + r65, longRole(r65)},
		{"GET", "/role/bad.name/parents", longRole("bad.name")},
		{"POST", "/role/bad.name/parents/admin", longRole("bad.name")},
		{"POST", "/role/admin/parents/bad.name", longRole("bad.name")},
		{"DELETE", "/role/admin/parents/bad.name", longRole("bad.name")},
		// workflows.
		{"GET", "/workflow/users/bad.wf", longWorkflow("bad.wf")},
		{"GET", "/workflow/users/" + p129, longWorkflow(p129)},
		{"GET", "/workflow/user/bad!user/can_run/deploy", longUser("bad!user")},
		// can_run checks the workflow as a role name, as the original did.
		{"GET", "/workflow/user/john/can_run/bad.wf", longRole("bad.wf")},
		{"GET", "/workflow/user/john/can_run/deploy%0A", longRole("deploy\n")},
		{"GET", "/workflow/user/john/can_run/" + r65, longRole(r65)},
	}
	for _, prefix := range prefixes {
		for _, tc := range cases {
			expectError(t, c.call(t, tc.method, prefix+tc.path), 400, tc.msg)
		}
	}
	// Nothing was written by the rejected requests.
	expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
	expect(t, c.get(t, "/api/members/admin"), 200, res(`[]`))
	expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[]`, "Retrieved permissions for role 'admin'"))
}

// testValidNames: e-mail user names, boundary lengths and every allowed
// character are accepted.
func testValidNames(t *testing.T, s *server) {
	c := s.client(newKey(t))
	r64 := strings.Repeat("R", 64)
	u64 := strings.Repeat("u", 60) + "@x.y"
	p128 := strings.Repeat("P", 128)
	expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
	expect(t, c.post(t, "/api/role/"+r64), 200, res("true"))
	expect(t, c.post(t, "/api/role/Az09_-"), 200, res("true"))
	expect(t, c.post(t, "/api/permission/admin/"+p128), 200, res("true"))
	expect(t, c.post(t, "/api/permission/admin/Az09_-"), 200, res("true"))
	for _, u := range []struct{ path, name string }{
		{"john%40example.com", "john@example.com"},
		{"a.b+c@d.io", "a.b+c@d.io"},
		{u64, u64},
		{"Az09_.@+-", "Az09_.@+-"},
	} {
		expect(t, c.post(t, "/api/membership/"+u.path+"/admin"), 200, res("true"))
		expect(t, c.get(t, "/api/membership/"+u.path+"/admin"), 200,
			env(`{"has_permission":true}`, "Membership check for user '"+u.name+"' and group 'admin' completed"))
		expect(t, c.get(t, "/api/has_permission/"+u.path+"/"+p128), 200,
			env(`{"has_permission":true}`, "Permission check for user '"+u.name+"' and permission '"+p128+"' completed"))
		expect(t, c.get(t, "/api/user_roles/"+u.path), 200, res(`[{"role":"admin","user":"`+u.name+`"}]`))
		expect(t, c.get(t, "/api/workflow/user/"+u.path+"/can_run/Az09_-"), 200,
			env(`{"has_permission":true}`, "Workflow permission check for user '"+u.name+"' and workflow 'Az09_-' completed"))
	}
	sameList(t, "members of admin", resultField(t, c.get(t, "/api/members/admin"), "user"),
		[]string{"john@example.com", "a.b+c@d.io", u64, "Az09_.@+-"})
	expect(t, c.post(t, "/api/membership/x/"+r64), 200, res("true"))
	expect(t, c.get(t, "/api/members/"+r64), 200, res(`[{"role":"`+r64+`","user":"x"}]`))
	expect(t, c.get(t, "/api/workflow/users/"+p128), 200,
		env(`{"count":4,"members":[{"role":"admin","user":"john@example.com"},{"role":"admin","user":"a.b+c@d.io"},{"role":"admin","user":"`+u64+`"},{"role":"admin","user":"Az09_.@+-"}]}`,
			"Retrieved users who can run workflow '"+p128+"'"))
}

func testNotFoundAndMethod(t *testing.T, s *server) {
	c := s.client(newKey(t))
	for _, p := range []string{"/api/nonexistent", "/api/roles/", "/api/v3/roles", "/nope", "/api/role", "/api/membership/john"} {
		expectError(t, c.get(t, p), 404, "")
	}
	// Under /api/v2 an unknown route is a v2 error: details.reason.
	if r := c.get(t, "/api/v2/nonexistent"); r.status != 404 || !strings.Contains(string(r.body), `"details":{"reason":"not_found"}`) {
		t.Errorf("GET /api/v2/nonexistent: %v, want 404 with details.reason not_found", r)
	}
	for _, tc := range []struct {
		method, path string
		allow        []string
	}{
		{"PUT", "/api/role/admin", []string{"POST", "DELETE"}},
		{"PATCH", "/api/v1/role/admin", []string{"POST", "DELETE"}},
		{"GET", "/api/role/admin", []string{"POST", "DELETE"}},
		{"POST", "/api/roles", []string{"GET"}},
		{"PUT", "/api/membership/john/admin", []string{"GET", "POST", "DELETE"}},
		{"DELETE", "/api/has_permission/john/read", []string{"GET"}},
		{"POST", "/ping", []string{"GET"}},
	} {
		r := c.call(t, tc.method, tc.path)
		expectError(t, r, 405, "")
		allow := r.header.Get("Allow")
		if allow == "" {
			t.Errorf("%s %s: 405 without an Allow header", tc.method, tc.path)
		}
		for _, m := range tc.allow {
			if !strings.Contains(allow, m) {
				t.Errorf("%s %s: Allow = %q, want it to list %s", tc.method, tc.path, allow, m)
			}
		}
		if strings.Contains(allow, tc.method) {
			t.Errorf("%s %s: Allow = %q lists the refused method", tc.method, tc.path, allow)
		}
	}
}

// testRequestBodies: bodies are ignored (the original documented
// `-d '{}'`), but a body over the limit is refused with a JSON 413.
func testRequestBodies(t *testing.T, s *server) {
	c := s.client(newKey(t))
	for _, ct := range []string{"application/json", "application/x-www-form-urlencoded"} {
		r := s.doBody(t, "POST", "/api/role/admin", []byte("{}"), c.auth(), "Content-Type: "+ct)
		expect(t, r, 200, res("true"))
	}
	r := s.doBody(t, "POST", "/api/permission/admin/read", []byte(`{"description":"ignored"}`), c.auth(), "Content-Type: application/json")
	expect(t, r, 200, res("true"))
	expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
	big := []byte(strings.Repeat("a", 100<<10)) // over the 64K limit, under what net/http drains
	r = s.doBody(t, "POST", "/api/role/big", big, c.auth(), "Content-Type: application/json")
	expectError(t, r, 413, "")
	expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
}

func testRequestID(t *testing.T, s *server) {
	c := s.client(newKey(t))
	for _, rt := range []struct{ method, path string }{
		{"GET", "/ping"}, {"GET", "/api/roles"}, {"POST", "/api/role/admin"},
		{"POST", "/api/role/bad.name"}, {"GET", "/api/nonexistent"}, {"PUT", "/api/role/admin"},
	} {
		r := c.call(t, rt.method, rt.path, "X-Request-ID: req-42.abc_DEF:1")
		if got := r.header.Get("X-Request-ID"); got != "req-42.abc_DEF:1" {
			t.Errorf("%s %s: X-Request-ID = %q, want the incoming %q", rt.method, rt.path, got, "req-42.abc_DEF:1")
		}
		for _, bad := range []string{"has space", "<script>", strings.Repeat("x", 200), "a/b"} {
			r := c.call(t, rt.method, rt.path, "X-Request-ID: "+bad)
			if got := r.header.Get("X-Request-ID"); got == "" || got == bad || strings.ContainsAny(got, " <>/") {
				t.Errorf("%s %s with X-Request-ID %q: got %q, want a fresh id", rt.method, rt.path, bad, got)
			}
		}
	}
	a := c.get(t, "/api/roles").header.Get("X-Request-ID")
	b := c.get(t, "/api/roles").header.Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same generated X-Request-ID %q", a)
	}
}

// testSecurityHeaders: do() checks them on every response; this makes sure
// the error families and the unauthenticated paths are among them.
func testSecurityHeaders(t *testing.T, s *server) {
	c := s.client(newKey(t))
	rs := []response{
		s.do(t, "GET", "/ping"),
		s.do(t, "GET", "/api/roles"),
		s.do(t, "GET", "/api/roles", "Authorization: Bearer nope"),
		c.get(t, "/api/roles"),
		c.post(t, "/api/role/bad.name"),
		c.get(t, "/api/nonexistent"),
		c.call(t, "PUT", "/api/role/x"),
		s.do(t, "OPTIONS", "/api/roles", "Origin: https://app.example", "Access-Control-Request-Method: GET"),
	}
	statuses := map[int]bool{}
	for _, r := range rs {
		statuses[r.status] = true
	}
	for _, want := range []int{200, 400, 401, 404, 405} {
		if !statuses[want] {
			t.Errorf("no %d response among the checked ones: %v", want, statuses)
		}
	}
	if t.Failed() {
		return
	}
	// HSTS is only for TLS; this server speaks plain HTTP.
	if got := rs[0].header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("Strict-Transport-Security = %q on plain HTTP", got)
	}
}

func testCORS(t *testing.T, newServer factory) {
	s := newServer(t)
	const origin = "https://app.example"
	r := s.do(t, "GET", "/api/roles", "Authorization: Bearer "+newKey(t), "Origin: "+origin)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("default CORS: Access-Control-Allow-Origin = %q, want * or %s", got, origin)
	}
	// A preflight needs no Authorization.
	pre := s.do(t, "OPTIONS", "/api/role/admin", "Origin: "+origin,
		"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: Authorization")
	if pre.status < 200 || pre.status > 299 {
		t.Errorf("preflight: status %d, want 2xx: %s", pre.status, pre.body)
	}
	if got := pre.header.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("preflight: Access-Control-Allow-Origin = %q", got)
	}
	if got := pre.header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("preflight: Access-Control-Allow-Methods = %q, want POST in it", got)
	}
	if got := strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "authorization") {
		t.Errorf("preflight: Access-Control-Allow-Headers = %q, want Authorization in it", got)
	}
	// A request without an Origin (not a browser's cross-origin one) gets
	// no CORS headers, but its answer still varies by Origin (for caches),
	// as does every answer.
	for _, r := range []response{r, s.do(t, "GET", "/api/roles", "Authorization: Bearer "+newKey(t))} {
		if got := r.header.Values("Vary"); !slices.Contains(got, "Origin") {
			t.Errorf("%s %s: Vary = %q, want Origin in it", r.method, r.path, got)
		}
	}
	// An error response carries CORS too, so browsers can read it.
	e := s.do(t, "GET", "/api/roles", "Origin: "+origin)
	if e.status != 401 || e.header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("401 with Origin: status %d, Access-Control-Allow-Origin %q", e.status, e.header.Get("Access-Control-Allow-Origin"))
	}

	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, "ALLOW_CORS=false")
		r := s.do(t, "GET", "/api/roles", "Authorization: Bearer "+newKey(t), "Origin: "+origin)
		if r.status != 200 {
			t.Errorf("GET /api/roles: %d", r.status)
		}
		pre := s.do(t, "OPTIONS", "/api/role/admin", "Origin: "+origin, "Access-Control-Request-Method: POST")
		for _, r := range []response{r, pre} {
			for k := range r.header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("ALLOW_CORS=false: %s %s has %s: %q", r.method, r.path, k, r.header.Get(k))
				}
			}
		}
	})
	t.Run("origin list", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, "CORS_ORIGINS=https://a.example, https://b.example")
		key := newKey(t)
		for _, tc := range []struct {
			origin string
			want   string
		}{
			{"https://a.example", "https://a.example"},
			{"https://b.example", "https://b.example"},
			{"https://evil.example", ""},
		} {
			r := s.do(t, "GET", "/api/roles", "Authorization: Bearer "+key, "Origin: "+tc.origin)
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("Origin %s: Access-Control-Allow-Origin = %q, want %q", tc.origin, got, tc.want)
			}
		}
	})
}
