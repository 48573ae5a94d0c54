package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// testAcceptance is test_flask.py of the original project in its corrected
// (384389a) form: one subtest per case, each on a fresh tenant.
func testAcceptance(t *testing.T, s *server) {
	setup := func(t *testing.T, c client, paths ...string) {
		t.Helper()
		for _, p := range paths {
			mustResult(t, c.post(t, p), true)
		}
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, c client)
	}{
		{"01_ping", func(t *testing.T, c client) {
			r := c.s.do(t, "GET", "/ping")
			expect(t, r, 200, `{"message":"PONG"}`)
		}},
		{"02_create_role", func(t *testing.T, c client) {
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
		}},
		{"03_list_roles", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin")
			containsAll(t, "roles", resultField(t, c.get(t, "/api/roles"), "role"), "admin")
		}},
		{"04_add_permission", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin")
			expect(t, c.post(t, "/api/permission/admin/read"), 200, res("true"))
		}},
		{"05_check_permission", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/permission/admin/read")
			expect(t, c.get(t, "/api/permission/admin/read"), 200, res("true"))
		}},
		{"06_add_membership", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin")
			expect(t, c.post(t, "/api/membership/john/admin"), 200, res("true"))
		}},
		{"07_check_membership", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/membership/john/admin")
			if !hasPermission(t, c.get(t, "/api/membership/john/admin")) {
				t.Errorf("membership john/admin: has_permission false, want true")
			}
		}},
		{"08_has_permission", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/permission/admin/read", "/api/membership/john/admin")
			if !hasPermission(t, c.get(t, "/api/has_permission/john/read")) {
				t.Errorf("has_permission john/read: false, want true")
			}
		}},
		{"09_user_permissions", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/permission/admin/read", "/api/permission/admin/write", "/api/membership/john/admin")
			names, _ := permissionNames(t, c.get(t, "/api/user_permissions/john"))
			containsAll(t, "user_permissions john", names, "read", "write")
		}},
		{"10_role_permissions", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/permission/admin/read", "/api/permission/admin/write")
			containsAll(t, "role_permissions admin", rolePermissionNames(t, c.get(t, "/api/role_permissions/admin")), "read", "write")
		}},
		{"11_user_roles", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/role/user", "/api/membership/john/admin", "/api/membership/john/user")
			containsAll(t, "user_roles john", resultField(t, c.get(t, "/api/user_roles/john"), "role"), "admin", "user")
		}},
		{"12_role_members", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/membership/john/admin", "/api/membership/jane/admin")
			containsAll(t, "members admin", resultField(t, c.get(t, "/api/members/admin"), "user"), "john", "jane")
		}},
		{"13_which_roles_can", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/role/user", "/api/permission/admin/read", "/api/permission/user/read")
			containsAll(t, "which_roles_can read", resultField(t, c.get(t, "/api/which_roles_can/read"), "role"), "admin", "user")
		}},
		{"14_which_users_can", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/role/user", "/api/permission/admin/read", "/api/permission/user/read",
				"/api/membership/john/admin", "/api/membership/jane/user")
			containsAll(t, "which_users_can read", resultField(t, c.get(t, "/api/which_users_can/read"), "user"), "john", "jane")
		}},
		{"15_delete_membership", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/membership/john/admin")
			if !hasPermission(t, c.get(t, "/api/membership/john/admin")) {
				t.Fatalf("membership before delete: false, want true")
			}
			expect(t, c.del(t, "/api/membership/john/admin"), 200, res("true"))
			if hasPermission(t, c.get(t, "/api/membership/john/admin")) {
				t.Errorf("membership after delete: true, want false")
			}
		}},
		{"16_delete_permission", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin", "/api/permission/admin/read")
			expect(t, c.get(t, "/api/permission/admin/read"), 200, res("true"))
			expect(t, c.del(t, "/api/permission/admin/read"), 200, res("true"))
			expect(t, c.get(t, "/api/permission/admin/read"), 200, res("false"))
		}},
		{"17_delete_role", func(t *testing.T, c client) {
			setup(t, c, "/api/role/admin")
			expect(t, c.del(t, "/api/role/admin"), 200, env(`{"result":true}`, "Role 'admin' deletion completed"))
			if roles := resultField(t, c.get(t, "/api/roles"), "role"); slices.Contains(roles, "admin") {
				t.Errorf("roles after delete = %q, still has admin", roles)
			}
		}},
		{"18_duplicate_role", func(t *testing.T, c client) {
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
		}},
		{"19_nonexistent_entities", func(t *testing.T, c client) {
			expect(t, c.get(t, "/api/permission/nonexistent/read"), 200, res("false"))
			expect(t, c.del(t, "/api/permission/nonexistent/read"), 200, res("true"))
			expect(t, c.del(t, "/api/role/nonexistent"), 200, env(`{"result":false}`, "Role 'nonexistent' deletion completed"))
		}},
		{"20_fresh_key", func(t *testing.T, c client) {
			expect(t, c.get(t, "/api/roles"), 200, res(`[]`))
			expect(t, c.get(t, "/api/role_permissions/nonexistent"), 200, env(`[]`, "Retrieved permissions for role 'nonexistent'"))
			expect(t, c.get(t, "/api/user_permissions/nonexistent"), 200, env(`{"count":0,"permissions":[]}`, "Retrieved permissions for user 'nonexistent'"))
			expect(t, c.get(t, "/api/which_roles_can/read"), 200, res(`[]`))
			expect(t, c.get(t, "/api/which_users_can/read"), 200, res(`[]`))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s.client(newKey(t)))
		})
	}
}

// testSemantics covers §A7/§B2 as implemented by the policy core.
func testSemantics(t *testing.T, s *server) {
	cases := []struct {
		name string
		fn   func(t *testing.T, c client)
	}{
		{"writes to a missing role answer false", func(t *testing.T, c client) {
			expect(t, c.post(t, "/api/permission/ghost/read"), 200, res("false"))
			expect(t, c.post(t, "/api/membership/john/ghost"), 200, res("false"))
			expect(t, c.post(t, "/api/role/ghost/parents/other"), 200, res("false"))
			expect(t, c.post(t, "/api/role/real"), 200, res("true"))
			expect(t, c.post(t, "/api/role/real/parents/ghost"), 200, res("false"))
			expect(t, c.post(t, "/api/role/ghost/parents/real"), 200, res("false"))
			// Nothing was created by them.
			expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"real"}]`))
			expect(t, c.get(t, "/api/members/ghost"), 200, res(`[]`))
			expect(t, c.get(t, "/api/user_roles/john"), 200, res(`[]`))
			expect(t, c.get(t, "/api/which_roles_can/read"), 200, res(`[]`))
			expect(t, c.get(t, "/api/role/real/parents"), 200, res(`[]`))
			// A write to a role deleted meanwhile also answers false.
			expect(t, c.del(t, "/api/role/real"), 200, env(`{"result":true}`, "Role 'real' deletion completed"))
			expect(t, c.post(t, "/api/permission/real/read"), 200, res("false"))
			expect(t, c.post(t, "/api/membership/john/real"), 200, res("false"))
		}},
		{"creating an existing role keeps it as it is", func(t *testing.T, c client) {
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			expect(t, c.post(t, "/api/permission/admin/read"), 200, res("true"))
			expect(t, c.post(t, "/api/membership/john/admin"), 200, res("true"))
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
			expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[{"name":"read"}]`, "Retrieved permissions for role 'admin'"))
			expect(t, c.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"}]`))
		}},
		{"adding twice is idempotent", func(t *testing.T, c client) {
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			for i := 0; i < 2; i++ {
				expect(t, c.post(t, "/api/permission/admin/read"), 200, res("true"))
				expect(t, c.post(t, "/api/membership/john/admin"), 200, res("true"))
			}
			expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[{"name":"read"}]`, "Retrieved permissions for role 'admin'"))
			expect(t, c.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"}]`))
			expect(t, c.get(t, "/api/user_permissions/john"), 200, env(`{"count":1,"permissions":[{"name":"read"}]}`, "Retrieved permissions for user 'john'"))
		}},
		{"deletes are idempotent", func(t *testing.T, c client) {
			expect(t, c.del(t, "/api/permission/ghost/read"), 200, res("true"))
			expect(t, c.del(t, "/api/membership/john/ghost"), 200, res("true"))
			expect(t, c.del(t, "/api/role/ghost/parents/other"), 200, res("true"))
			expect(t, c.del(t, "/api/role/ghost"), 200, env(`{"result":false}`, "Role 'ghost' deletion completed"))
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			expect(t, c.del(t, "/api/permission/admin/read"), 200, res("true"))
			expect(t, c.del(t, "/api/membership/john/admin"), 200, res("true"))
			expect(t, c.del(t, "/api/role/admin"), 200, env(`{"result":true}`, "Role 'admin' deletion completed"))
			expect(t, c.del(t, "/api/role/admin"), 200, env(`{"result":false}`, "Role 'admin' deletion completed"))
		}},
		{"deleting a role purges its grants and members", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/admin", "/api/role/other", "/api/permission/admin/read",
				"/api/permission/admin/write", "/api/permission/other/read", "/api/membership/john/admin",
				"/api/membership/john/other", "/api/membership/jane/admin"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.del(t, "/api/role/admin"), 200, env(`{"result":true}`, "Role 'admin' deletion completed"))
			// While deleted it is gone everywhere.
			expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"other"}]`))
			expect(t, c.get(t, "/api/permission/admin/read"), 200, res("false"))
			expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[]`, "Retrieved permissions for role 'admin'"))
			expect(t, c.get(t, "/api/members/admin"), 200, res(`[]`))
			expect(t, c.get(t, "/api/user_roles/john"), 200, res(`[{"role":"other","user":"john"}]`))
			expect(t, c.get(t, "/api/user_roles/jane"), 200, res(`[]`))
			expect(t, c.get(t, "/api/which_roles_can/read"), 200, res(`[{"role":"other"}]`))
			expect(t, c.get(t, "/api/which_users_can/read"), 200, res(`[{"role":"other","user":"john"}]`))
			// john keeps read through the other role, loses write; jane loses all.
			expect(t, c.get(t, "/api/user_permissions/john"), 200, env(`{"count":1,"permissions":[{"name":"read"}]}`, "Retrieved permissions for user 'john'"))
			if hasPermission(t, c.get(t, "/api/has_permission/john/write")) {
				t.Errorf("john still has write after admin was deleted")
			}
			if hasPermission(t, c.get(t, "/api/has_permission/jane/read")) {
				t.Errorf("jane still has read after admin was deleted")
			}
			// Re-created, the role is empty: no resurrection.
			expect(t, c.post(t, "/api/role/admin"), 200, res("true"))
			expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[]`, "Retrieved permissions for role 'admin'"))
			expect(t, c.get(t, "/api/members/admin"), 200, res(`[]`))
			expect(t, c.get(t, "/api/membership/jane/admin"), 200, env(`{"has_permission":false}`, "Membership check for user 'jane' and group 'admin' completed"))
			// A new grant to the re-created role reaches no old member.
			expect(t, c.post(t, "/api/permission/admin/write"), 200, res("true"))
			if hasPermission(t, c.get(t, "/api/has_permission/jane/write")) {
				t.Errorf("jane has write through the re-created admin role")
			}
			if hasPermission(t, c.get(t, "/api/workflow/user/john/can_run/write")) {
				t.Errorf("john can run write through the re-created admin role")
			}
			expect(t, c.get(t, "/api/which_users_can/write"), 200, res(`[]`))
			expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"other"},{"description":null,"role":"admin"}]`))
		}},
		{"names are case-sensitive", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/admin", "/api/permission/admin/read", "/api/membership/john/admin"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.post(t, "/api/permission/Admin/read"), 200, res("false"))
			expect(t, c.post(t, "/api/membership/john/ADMIN"), 200, res("false"))
			expect(t, c.get(t, "/api/permission/admin/READ"), 200, res("false"))
			expect(t, c.get(t, "/api/members/Admin"), 200, res(`[]`))
			for _, p := range []string{"/api/has_permission/JOHN/read", "/api/has_permission/john/Read", "/api/membership/John/admin", "/api/membership/john/Admin"} {
				if hasPermission(t, c.get(t, p)) {
					t.Errorf("GET %s: true, want false (names are case-sensitive)", p)
				}
			}
			expect(t, c.post(t, "/api/role/Admin"), 200, res("true"))
			expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"},{"description":null,"role":"Admin"}]`))
			expect(t, c.del(t, "/api/role/ADMIN"), 200, env(`{"result":false}`, "Role 'ADMIN' deletion completed"))
			expect(t, c.del(t, "/api/membership/JOHN/admin"), 200, res("true"))
			expect(t, c.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"}]`))
		}},
		{"duplicates are kept", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/a", "/api/role/b", "/api/role/c", "/api/permission/a/read",
				"/api/permission/b/read", "/api/permission/b/write", "/api/permission/c/write",
				"/api/membership/john/a", "/api/membership/john/b", "/api/membership/jane/b"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.get(t, "/api/user_permissions/john"), 200,
				env(`{"count":3,"permissions":[{"name":"read"},{"name":"read"},{"name":"write"}]}`, "Retrieved permissions for user 'john'"))
			expect(t, c.get(t, "/api/which_users_can/read"), 200,
				res(`[{"role":"a","user":"john"},{"role":"b","user":"john"},{"role":"b","user":"jane"}]`))
			expect(t, c.get(t, "/api/which_roles_can/write"), 200, res(`[{"role":"b"},{"role":"c"}]`))
			expect(t, c.get(t, "/api/workflow/users/read"), 200,
				env(`{"count":3,"members":[{"role":"a","user":"john"},{"role":"b","user":"john"},{"role":"b","user":"jane"}]}`, "Retrieved users who can run workflow 'read'"))
		}},
		{"workflows are permissions", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/ops", "/api/permission/ops/deploy_prod", "/api/membership/ann/ops"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.get(t, "/api/workflow/users/deploy_prod"), 200,
				env(`{"count":1,"members":[{"role":"ops","user":"ann"}]}`, "Retrieved users who can run workflow 'deploy_prod'"))
			expect(t, c.get(t, "/api/workflow/user/ann/can_run/deploy_prod"), 200,
				env(`{"has_permission":true}`, "Workflow permission check for user 'ann' and workflow 'deploy_prod' completed"))
			expect(t, c.get(t, "/api/workflow/user/bob/can_run/deploy_prod"), 200,
				env(`{"has_permission":false}`, "Workflow permission check for user 'bob' and workflow 'deploy_prod' completed"))
			expect(t, c.del(t, "/api/permission/ops/deploy_prod"), 200, res("true"))
			expect(t, c.get(t, "/api/workflow/user/ann/can_run/deploy_prod"), 200,
				env(`{"has_permission":false}`, "Workflow permission check for user 'ann' and workflow 'deploy_prod' completed"))
			expect(t, c.get(t, "/api/workflow/users/deploy_prod"), 200,
				env(`{"count":0,"members":[]}`, "Retrieved users who can run workflow 'deploy_prod'"))
		}},
		{"membership is direct and revocable", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/admin", "/api/permission/admin/read", "/api/membership/john/admin"} {
				mustResult(t, c.post(t, p), true)
			}
			expect(t, c.del(t, "/api/membership/john/admin"), 200, res("true"))
			if hasPermission(t, c.get(t, "/api/has_permission/john/read")) {
				t.Errorf("john keeps read after leaving admin")
			}
			expect(t, c.get(t, "/api/user_roles/john"), 200, res(`[]`))
			expect(t, c.get(t, "/api/which_users_can/read"), 200, res(`[]`))
			// Rejoining works again.
			expect(t, c.post(t, "/api/membership/john/admin"), 200, res("true"))
			if !hasPermission(t, c.get(t, "/api/has_permission/john/read")) {
				t.Errorf("john lacks read after rejoining admin")
			}
		}},
		{"a user named like a role gets nothing from it", func(t *testing.T, c client) {
			for _, p := range []string{"/api/role/admin", "/api/permission/admin/read"} {
				mustResult(t, c.post(t, p), true)
			}
			if hasPermission(t, c.get(t, "/api/has_permission/admin/read")) {
				t.Errorf("user 'admin' has the grants of role 'admin'")
			}
			expect(t, c.get(t, "/api/user_permissions/admin"), 200, env(`{"count":0,"permissions":[]}`, "Retrieved permissions for user 'admin'"))
			expect(t, c.get(t, "/api/which_users_can/read"), 200, res(`[]`))
			if hasPermission(t, c.get(t, "/api/membership/admin/admin")) {
				t.Errorf("user 'admin' is taken for a member of role 'admin'")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s.client(newKey(t)))
		})
	}
}

// testRoleInheritance: a role inherits every permission of its parents.
func testRoleInheritance(t *testing.T, s *server) {
	c := s.client(newKey(t))
	for _, p := range []string{"/api/role/viewer", "/api/role/editor", "/api/role/admin",
		"/api/permission/viewer/read", "/api/permission/editor/write", "/api/permission/admin/delete",
		"/api/membership/vic/viewer", "/api/membership/eve/editor", "/api/membership/ada/admin"} {
		mustResult(t, c.post(t, p), true)
	}
	// admin -> editor -> viewer
	expect(t, c.post(t, "/api/role/editor/parents/viewer"), 200, res("true"))
	expect(t, c.post(t, "/api/role/admin/parents/editor"), 200, res("true"))
	expect(t, c.post(t, "/api/role/admin/parents/editor"), 200, res("true"))
	expect(t, c.get(t, "/api/role/admin/parents"), 200, res(`[{"parent":"editor","role":"admin"}]`))
	expect(t, c.get(t, "/api/v1/role/editor/parents"), 200, res(`[{"parent":"viewer","role":"editor"}]`))
	expect(t, c.get(t, "/api/role/viewer/parents"), 200, res(`[]`))

	want := map[string]map[string]bool{
		"vic": {"read": true, "write": false, "delete": false},
		"eve": {"read": true, "write": true, "delete": false},
		"ada": {"read": true, "write": true, "delete": true},
	}
	for u, perms := range want {
		for p, w := range perms {
			if got := hasPermission(t, c.get(t, "/api/has_permission/"+u+"/"+p)); got != w {
				t.Errorf("has_permission %s/%s = %v, want %v", u, p, got, w)
			}
			if got := hasPermission(t, c.get(t, "/api/workflow/user/"+u+"/can_run/"+p)); got != w {
				t.Errorf("can_run %s/%s = %v, want %v", u, p, got, w)
			}
		}
	}
	names, n := permissionNames(t, c.get(t, "/api/user_permissions/ada"))
	sameSet(t, "user_permissions ada", names, []string{"delete", "write", "read"})
	if n != 3 {
		t.Errorf("user_permissions ada count = %d, want 3", n)
	}
	sameSet(t, "role_permissions admin", rolePermissionNames(t, c.get(t, "/api/role_permissions/admin")), []string{"delete", "write", "read"})
	expect(t, c.get(t, "/api/permission/admin/read"), 200, res("true"))
	expect(t, c.get(t, "/api/permission/viewer/delete"), 200, res("false"))
	sameSet(t, "which_roles_can read", resultField(t, c.get(t, "/api/which_roles_can/read"), "role"), []string{"viewer", "editor", "admin"})
	sameSet(t, "which_users_can read", resultField(t, c.get(t, "/api/which_users_can/read"), "user"), []string{"vic", "eve", "ada"})
	// Membership stays direct.
	expect(t, c.get(t, "/api/user_roles/ada"), 200, res(`[{"role":"admin","user":"ada"}]`))
	if hasPermission(t, c.get(t, "/api/membership/ada/viewer")) {
		t.Errorf("membership ada/viewer = true, want false (inheritance is not membership)")
	}

	// Cycles are refused.
	for _, p := range []string{"/api/role/viewer/parents/admin", "/api/role/viewer/parents/editor",
		"/api/role/editor/parents/admin", "/api/role/viewer/parents/viewer"} {
		expectError(t, c.post(t, p), 400, "Role inheritance would form a cycle.")
	}
	expect(t, c.get(t, "/api/role/viewer/parents"), 200, res(`[]`))

	// Unlinking and deleting a parent take the inherited permissions away.
	expect(t, c.del(t, "/api/role/admin/parents/editor"), 200, res("true"))
	if hasPermission(t, c.get(t, "/api/has_permission/ada/write")) {
		t.Errorf("ada keeps write after admin stopped inheriting editor")
	}
	expect(t, c.del(t, "/api/role/viewer"), 200, env(`{"result":true}`, "Role 'viewer' deletion completed"))
	if hasPermission(t, c.get(t, "/api/has_permission/eve/read")) {
		t.Errorf("eve keeps read after the parent role viewer was deleted")
	}
	expect(t, c.get(t, "/api/role/editor/parents"), 200, res(`[]`))
	expect(t, c.post(t, "/api/role/viewer"), 200, res("true"))
	expect(t, c.post(t, "/api/permission/viewer/read"), 200, res("true"))
	if hasPermission(t, c.get(t, "/api/has_permission/eve/read")) {
		t.Errorf("eve gets read from the re-created viewer role (link resurrected)")
	}
	// Deleting a child drops its own parent links as well.
	expect(t, c.post(t, "/api/role/editor/parents/viewer"), 200, res("true"))
	expect(t, c.del(t, "/api/role/editor"), 200, env(`{"result":true}`, "Role 'editor' deletion completed"))
	expect(t, c.post(t, "/api/role/editor"), 200, res("true"))
	expect(t, c.get(t, "/api/role/editor/parents"), 200, res(`[]`))
	expect(t, c.get(t, "/api/which_roles_can/read"), 200, res(`[{"role":"viewer"}]`))
}

// testRoleDepthLimit: a chain longer than AUTH_MAX_ROLE_DEPTH is refused,
// however the link would form it (above the top, below the bottom or by
// joining two chains).
func testRoleDepthLimit(t *testing.T, newServer factory) {
	s := newServer(t, "AUTH_MAX_ROLE_DEPTH=3")
	c := s.client(newKey(t))
	for i := 0; i < 6; i++ {
		mustResult(t, c.post(t, fmt.Sprintf("/api/role/r%d", i)), true)
	}
	mustResult(t, c.post(t, "/api/permission/r2/top"), true)
	mustResult(t, c.post(t, "/api/membership/u/r0"), true)
	mustResult(t, c.post(t, "/api/membership/w/r5"), true)
	const deep = "Role inheritance chain would be too deep."
	expect(t, c.post(t, "/api/role/r0/parents/r1"), 200, res("true"))
	expect(t, c.post(t, "/api/role/r1/parents/r2"), 200, res("true"))
	expect(t, c.post(t, "/api/role/r3/parents/r4"), 200, res("true"))
	if !hasPermission(t, c.get(t, "/api/has_permission/u/top")) {
		t.Errorf("u lacks top through r0 -> r1 -> r2")
	}
	// r0 -> r1 -> r2 -> r3 -> r4 would be 4 links.
	expectError(t, c.post(t, "/api/role/r2/parents/r3"), 400, deep)
	// r5 -> r0 -> r1 -> r2 is 3 links: the limit, allowed.
	expect(t, c.post(t, "/api/role/r5/parents/r0"), 200, res("true"))
	if !hasPermission(t, c.get(t, "/api/has_permission/w/top")) {
		t.Errorf("w lacks top through r5 -> r0 -> r1 -> r2")
	}
	expectError(t, c.post(t, "/api/role/r2/parents/r4"), 400, deep) // above the top
	expectError(t, c.post(t, "/api/role/r4/parents/r5"), 400, deep) // below the bottom
	expect(t, c.get(t, "/api/role/r2/parents"), 200, res(`[]`))
	expect(t, c.get(t, "/api/role/r4/parents"), 200, res(`[]`))
	expect(t, c.get(t, "/api/role/r3/parents"), 200, res(`[{"parent":"r4","role":"r3"}]`))
}

// testTenantIsolation: keys never see each other's data; the upper-case
// form of a key is the same tenant.
func testTenantIsolation(t *testing.T, s *server) {
	keyA, keyB := newKey(t), newKey(t)
	a, b, upperA := s.client(keyA), s.client(keyB), s.client(strings.ToUpper(keyA))
	for _, p := range []string{"/api/role/admin", "/api/role/base", "/api/permission/admin/read",
		"/api/permission/base/view", "/api/membership/john/admin", "/api/role/admin/parents/base"} {
		mustResult(t, a.post(t, p), true)
	}
	emptyReads := []step{
		{"GET", "/api/roles", 200, res(`[]`)},
		{"GET", "/api/permission/admin/read", 200, res("false")},
		{"GET", "/api/role_permissions/admin", 200, env(`[]`, "Retrieved permissions for role 'admin'")},
		{"GET", "/api/members/admin", 200, res(`[]`)},
		{"GET", "/api/user_roles/john", 200, res(`[]`)},
		{"GET", "/api/membership/john/admin", 200, env(`{"has_permission":false}`, "Membership check for user 'john' and group 'admin' completed")},
		{"GET", "/api/has_permission/john/read", 200, env(`{"has_permission":false}`, "Permission check for user 'john' and permission 'read' completed")},
		{"GET", "/api/has_permission/john/view", 200, env(`{"has_permission":false}`, "Permission check for user 'john' and permission 'view' completed")},
		{"GET", "/api/user_permissions/john", 200, env(`{"count":0,"permissions":[]}`, "Retrieved permissions for user 'john'")},
		{"GET", "/api/which_roles_can/read", 200, res(`[]`)},
		{"GET", "/api/which_users_can/read", 200, res(`[]`)},
		{"GET", "/api/role/admin/parents", 200, res(`[]`)},
		{"GET", "/api/workflow/users/read", 200, env(`{"count":0,"members":[]}`, "Retrieved users who can run workflow 'read'")},
		{"GET", "/api/workflow/user/john/can_run/read", 200, env(`{"has_permission":false}`, "Workflow permission check for user 'john' and workflow 'read' completed")},
	}
	for _, st := range emptyReads {
		expect(t, b.call(t, st.method, st.path), st.status, st.want)
	}
	// B's writes do not reach A's roles.
	expect(t, b.post(t, "/api/permission/admin/write"), 200, res("false"))
	expect(t, b.post(t, "/api/membership/mallory/admin"), 200, res("false"))
	expect(t, b.del(t, "/api/role/admin"), 200, env(`{"result":false}`, "Role 'admin' deletion completed"))
	expect(t, b.del(t, "/api/membership/john/admin"), 200, res("true"))
	expect(t, b.del(t, "/api/permission/admin/read"), 200, res("true"))
	expect(t, b.post(t, "/api/role/admin"), 200, res("true"))
	expect(t, b.post(t, "/api/permission/admin/write"), 200, res("true"))
	expect(t, b.post(t, "/api/membership/mallory/admin"), 200, res("true"))

	// A is untouched, and the upper-case key is A.
	for _, c := range []client{a, upperA} {
		expect(t, c.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"},{"description":null,"role":"base"}]`))
		expect(t, c.get(t, "/api/role_permissions/admin"), 200, env(`[{"name":"read"},{"name":"view"}]`, "Retrieved permissions for role 'admin'"))
		expect(t, c.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"}]`))
		expect(t, c.get(t, "/api/which_users_can/write"), 200, res(`[]`))
		if hasPermission(t, c.get(t, "/api/has_permission/mallory/write")) {
			t.Errorf("mallory (tenant B) has write in tenant A")
		}
	}
	expect(t, b.get(t, "/api/roles"), 200, res(`[{"description":null,"role":"admin"}]`))
	expect(t, b.get(t, "/api/role_permissions/admin"), 200, env(`[{"name":"write"}]`, "Retrieved permissions for role 'admin'"))
	expect(t, b.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"mallory"}]`))
	// Writes through the upper-case key land in A.
	expect(t, upperA.post(t, "/api/membership/jane/admin"), 200, res("true"))
	expect(t, a.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"john"},{"role":"admin","user":"jane"}]`))
	expect(t, b.get(t, "/api/members/admin"), 200, res(`[{"role":"admin","user":"mallory"}]`))
	// Mixed case is the same tenant as well.
	mixed := s.client(keyA[:18] + strings.ToUpper(keyA[18:]))
	expect(t, mixed.get(t, "/api/user_roles/jane"), 200, res(`[{"role":"admin","user":"jane"}]`))
}
