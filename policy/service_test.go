package policy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// The semantic suite runs against every supported database.
func TestSemanticsSQLite(t *testing.T) {
	runSemantics(t, func(t *testing.T) *sqldb.DB { return openSQLite(t) })
}

func TestSemanticsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL suite skipped in -short mode")
	}
	runSemantics(t, func(t *testing.T) *sqldb.DB { return openPostgres(t) })
}

const (
	keyA = "0f3c6a2e-1b7d-4c59-9e0a-6d2f8b1c3a47"
	keyB = "9d1e7b44-52a0-4f8e-b3c1-7a6e0d2f9c15"
)

// fixture is one Service over one fresh database.
type fixture struct {
	t   *testing.T
	ctx context.Context
	db  *sqldb.DB
	svc *policy.Service
	a   policy.KeyHash
	b   policy.KeyHash
}

func newFixture(t *testing.T, open func(*testing.T) *sqldb.DB, opts policy.Options) *fixture {
	t.Helper()
	db := open(t)
	return &fixture{t: t, ctx: context.Background(), db: db,
		svc: newService(t, db, auth.DefaultModel, opts), a: mustKey(t, keyA), b: mustKey(t, keyB)}
}

// ok runs a call that must succeed and returns its result.
func (f *fixture) ok(what string, got bool, err error) bool {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
	return got
}

// expect checks a call's result.
func (f *fixture) expect(what string, want bool) func(bool, error) {
	return func(got bool, err error) {
		f.t.Helper()
		if err != nil {
			f.t.Fatalf("%s: %v", what, err)
		}
		if got != want {
			f.t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
}

func (f *fixture) list(what string, got []string, err error, want ...string) {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
	if a, b := strings.Join(got, ","), strings.Join(want, ","); a != b {
		f.t.Errorf("%s = [%s], want [%s]", what, a, b)
	}
}

func (f *fixture) roles(svc *policy.Service, key policy.KeyHash) []string {
	f.t.Helper()
	rs, err := svc.ListRoles(f.ctx, key)
	if err != nil {
		f.t.Fatalf("ListRoles: %v", err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func (f *fixture) countRows(query string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.db.Gorm().Raw(query, args...).Scan(&n).Error; err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func runSemantics(t *testing.T, open func(*testing.T) *sqldb.DB) {
	t.Run("CreateRoleTwice", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("CreateRole(admin)", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		f.expect("CreateRole(admin) again", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		if got := f.roles(f.svc, f.a); strings.Join(got, ",") != "admin" {
			t.Errorf("ListRoles = %v, want [admin] once", got)
		}
	})

	t.Run("MissingRole", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("CreateRole(other)", true)(f.svc.CreateRole(f.ctx, f.a, "other"))
		f.expect("Grant to a missing role", false)(f.svc.Grant(f.ctx, f.a, "ghost", "read"))
		f.expect("AddMember to a missing role", false)(f.svc.AddMember(f.ctx, f.a, "alice", "ghost"))
		f.expect("AddRoleParent of a missing role", false)(f.svc.AddRoleParent(f.ctx, f.a, "ghost", "other"))
		f.expect("AddRoleParent to a missing parent", false)(f.svc.AddRoleParent(f.ctx, f.a, "other", "ghost"))
		f.expect("DeleteRole of a missing role", false)(f.svc.DeleteRole(f.ctx, f.a, "ghost"))
		f.expect("RoleHasPermission of a missing role", false)(f.svc.RoleHasPermission(f.ctx, f.a, "ghost", "read"))
		f.expect("HasPermission", false)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
		f.expect("IsMember", false)(f.svc.IsMember(f.ctx, f.a, "alice", "ghost"))
		if got := f.roles(f.svc, f.a); strings.Join(got, ",") != "other" {
			t.Errorf("ListRoles = %v, want [other]: a failed grant must not create its role", got)
		}
		if n := f.countRows("SELECT COUNT(*) FROM casbin_rule"); n != 0 {
			t.Errorf("%d rules stored after writes that answered false, want 0", n)
		}
	})

	t.Run("IdempotentRemovals", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("CreateRole", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		f.expect("Grant", true)(f.svc.Grant(f.ctx, f.a, "admin", "read"))
		f.expect("AddMember", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		for i := range 2 {
			f.expect(fmt.Sprintf("Revoke #%d", i+1), true)(f.svc.Revoke(f.ctx, f.a, "admin", "read"))
			f.expect(fmt.Sprintf("RemoveMember #%d", i+1), true)(f.svc.RemoveMember(f.ctx, f.a, "alice", "admin"))
			f.expect(fmt.Sprintf("RemoveRoleParent #%d", i+1), true)(f.svc.RemoveRoleParent(f.ctx, f.a, "admin", "other"))
		}
		f.expect("Revoke from a missing role", true)(f.svc.Revoke(f.ctx, f.a, "ghost", "read"))
		f.expect("RemoveMember from a missing role", true)(f.svc.RemoveMember(f.ctx, f.a, "bob", "ghost"))
		f.expect("HasPermission after revoke", false)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
		f.expect("IsMember after remove", false)(f.svc.IsMember(f.ctx, f.a, "alice", "admin"))
		// Idempotent removals on a tenant that never wrote anything.
		f.expect("Revoke on a new tenant", true)(f.svc.Revoke(f.ctx, f.b, "admin", "read"))
	})

	t.Run("GrantTwice", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("CreateRole", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		f.expect("Grant", true)(f.svc.Grant(f.ctx, f.a, "admin", "read"))
		f.expect("Grant again", true)(f.svc.Grant(f.ctx, f.a, "admin", "read"))
		f.expect("AddMember", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		f.expect("AddMember again", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		ps, err := f.svc.RolePermissions(f.ctx, f.a, "admin")
		f.list("RolePermissions", ps, err, "read")
		ms, err := f.svc.Members(f.ctx, f.a, "admin")
		f.list("Members", ms, err, "alice")
		if n := f.countRows("SELECT COUNT(*) FROM casbin_rule"); n != 2 {
			t.Errorf("%d rules stored, want 2", n)
		}
	})

	t.Run("DeleteRolePurges", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		for _, r := range []string{"child", "admin", "parent"} {
			f.expect("CreateRole "+r, true)(f.svc.CreateRole(f.ctx, f.a, r))
		}
		f.expect("Grant admin", true)(f.svc.Grant(f.ctx, f.a, "admin", "write"))
		f.expect("Grant parent", true)(f.svc.Grant(f.ctx, f.a, "parent", "audit"))
		f.expect("AddMember alice admin", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		f.expect("AddMember bob child", true)(f.svc.AddMember(f.ctx, f.a, "bob", "child"))
		f.expect("child inherits admin", true)(f.svc.AddRoleParent(f.ctx, f.a, "child", "admin"))
		f.expect("admin inherits parent", true)(f.svc.AddRoleParent(f.ctx, f.a, "admin", "parent"))
		f.expect("bob may audit through child -> admin -> parent", true)(f.svc.HasPermission(f.ctx, f.a, "bob", "audit"))

		f.expect("DeleteRole admin", true)(f.svc.DeleteRole(f.ctx, f.a, "admin"))
		f.expect("DeleteRole admin again", false)(f.svc.DeleteRole(f.ctx, f.a, "admin"))
		dom, _ := tenantDomain(t, f.db, f.a)
		if n := f.countRows("SELECT COUNT(*) FROM casbin_rule WHERE v0 = ? OR v1 = ?", "role:admin", "role:admin"); n != 0 {
			t.Errorf("%d rules of the deleted role remain in the database", n)
		}
		if n := f.countRows("SELECT COUNT(*) FROM casbin_rule WHERE (ptype = 'p' AND v1 = ?) OR (ptype = 'g' AND v2 = ?)", dom, dom); n != 2 {
			t.Errorf("%d rules remain in the tenant, want 2 (parent's grant, bob's membership)", n)
		}
		for _, c := range []struct {
			user, perm string
		}{{"alice", "write"}, {"bob", "write"}, {"bob", "audit"}} {
			f.expect(fmt.Sprintf("HasPermission(%s, %s) after delete", c.user, c.perm), false)(f.svc.HasPermission(f.ctx, f.a, c.user, c.perm))
		}
		ps, err := f.svc.RoleParents(f.ctx, f.a, "child")
		f.list("RoleParents(child)", ps, err)
		rs, err := f.svc.UserRoles(f.ctx, f.a, "alice")
		f.list("UserRoles(alice)", rs, err)

		// Re-created, the role is empty: nothing comes back.
		f.expect("CreateRole admin again", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		ps, err = f.svc.RolePermissions(f.ctx, f.a, "admin")
		f.list("RolePermissions(admin) after re-create", ps, err)
		ms, err := f.svc.Members(f.ctx, f.a, "admin")
		f.list("Members(admin) after re-create", ms, err)
		ps, err = f.svc.RoleParents(f.ctx, f.a, "admin")
		f.list("RoleParents(admin) after re-create", ps, err)
		f.expect("HasPermission(alice, write) after re-create", false)(f.svc.HasPermission(f.ctx, f.a, "alice", "write"))
		f.expect("RoleHasPermission(child, audit) after re-create", false)(f.svc.RoleHasPermission(f.ctx, f.a, "child", "audit"))
		if got := strings.Join(f.roles(f.svc, f.a), ","); got != "child,parent,admin" {
			t.Errorf("ListRoles = [%s], want [child,parent,admin] (a re-created role is new)", got)
		}
		// The same after a restart.
		svc2 := newService(t, f.db, auth.DefaultModel, policy.Options{})
		ps, err = svc2.RolePermissions(f.ctx, f.a, "admin")
		f.list("RolePermissions(admin) after restart", ps, err)
		f.expect("HasPermission(bob, audit) after restart", false)(svc2.HasPermission(f.ctx, f.a, "bob", "audit"))
	})

	t.Run("UnknownTenantReadsCreateNothing", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		svc, k := f.svc, f.a
		f.expect("HasPermission", false)(svc.HasPermission(f.ctx, k, "alice", "read"))
		f.expect("RoleHasPermission", false)(svc.RoleHasPermission(f.ctx, k, "admin", "read"))
		f.expect("IsMember", false)(svc.IsMember(f.ctx, k, "alice", "admin"))
		for name, call := range map[string]func() ([]string, error){
			"UserPermissions": func() ([]string, error) { return svc.UserPermissions(f.ctx, k, "alice") },
			"RolePermissions": func() ([]string, error) { return svc.RolePermissions(f.ctx, k, "admin") },
			"UserRoles":       func() ([]string, error) { return svc.UserRoles(f.ctx, k, "alice") },
			"Members":         func() ([]string, error) { return svc.Members(f.ctx, k, "admin") },
			"RoleParents":     func() ([]string, error) { return svc.RoleParents(f.ctx, k, "admin") },
			"WhichRolesCan":   func() ([]string, error) { return svc.WhichRolesCan(f.ctx, k, "read") },
		} {
			got, err := call()
			f.list(name, got, err)
		}
		if ms, err := svc.WhichUsersCan(f.ctx, k, "read"); err != nil || len(ms) != 0 {
			t.Errorf("WhichUsersCan = %v, %v; want none", ms, err)
		}
		if rs, err := svc.ListRoles(f.ctx, k); err != nil || len(rs) != 0 {
			t.Errorf("ListRoles = %v, %v; want none", rs, err)
		}
		if n := svc.LoadedTenants(); n != 0 {
			t.Errorf("LoadedTenants = %d after reads of an unknown tenant, want 0", n)
		}
		if n := f.countRows("SELECT COUNT(*) FROM tenants"); n != 0 {
			t.Errorf("%d tenants in the database after reads only, want 0", n)
		}
		// The first write creates the tenant.
		f.expect("CreateRole", true)(svc.CreateRole(f.ctx, k, "admin"))
		if n := f.countRows("SELECT COUNT(*) FROM tenants"); n != 1 {
			t.Errorf("%d tenants in the database after the first write, want 1", n)
		}
	})

	t.Run("ClientKeyCase", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		upper := mustKey(t, strings.ToUpper(keyA))
		f.expect("CreateRole via upper-case key", true)(f.svc.CreateRole(f.ctx, upper, "admin"))
		f.expect("Grant", true)(f.svc.Grant(f.ctx, upper, "admin", "read"))
		f.expect("AddMember", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		f.expect("HasPermission via lower-case key", true)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("A: CreateRole", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		f.expect("A: Grant", true)(f.svc.Grant(f.ctx, f.a, "admin", "read"))
		f.expect("A: AddMember", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		f.expect("B: HasPermission", false)(f.svc.HasPermission(f.ctx, f.b, "alice", "read"))
		f.expect("B: Grant to a role only A has", false)(f.svc.Grant(f.ctx, f.b, "admin", "write"))
		f.expect("B: CreateRole", true)(f.svc.CreateRole(f.ctx, f.b, "admin"))
		f.expect("B: AddMember", true)(f.svc.AddMember(f.ctx, f.b, "alice", "admin"))
		f.expect("B: HasPermission with B's empty admin", false)(f.svc.HasPermission(f.ctx, f.b, "alice", "read"))
		f.expect("B: DeleteRole", true)(f.svc.DeleteRole(f.ctx, f.b, "admin"))
		f.expect("A: still allowed after B deleted its admin", true)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
		ps, err := f.svc.UserPermissions(f.ctx, f.b, "alice")
		f.list("B: UserPermissions", ps, err)
	})

	t.Run("NamesAreCaseSensitiveAndUsersAreNotRoles", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		f.expect("CreateRole admin", true)(f.svc.CreateRole(f.ctx, f.a, "admin"))
		f.expect("CreateRole Admin", true)(f.svc.CreateRole(f.ctx, f.a, "Admin"))
		f.expect("Grant admin read", true)(f.svc.Grant(f.ctx, f.a, "admin", "read"))
		f.expect("AddMember alice Admin", true)(f.svc.AddMember(f.ctx, f.a, "alice", "Admin"))
		f.expect("alice (of Admin) may not read", false)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
		f.expect("READ is not read", false)(f.svc.RoleHasPermission(f.ctx, f.a, "admin", "READ"))
		// A user named like a role never gets the role's grants.
		f.expect("user admin may not read", false)(f.svc.HasPermission(f.ctx, f.a, "admin", "read"))
		f.expect("AddMember admin admin", true)(f.svc.AddMember(f.ctx, f.a, "admin", "admin"))
		f.expect("user admin in role admin may read", true)(f.svc.HasPermission(f.ctx, f.a, "admin", "read"))
		ms, err := f.svc.WhichUsersCan(f.ctx, f.a, "read")
		if err != nil || fmt.Sprint(ms) != "[{admin admin}]" {
			t.Errorf("WhichUsersCan(read) = %v, %v; want [{admin admin}]", ms, err)
		}
	})

	t.Run("Orders", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		for _, r := range []string{"zeta", "alpha", "mid"} {
			f.expect("CreateRole "+r, true)(f.svc.CreateRole(f.ctx, f.a, r))
		}
		if got := strings.Join(f.roles(f.svc, f.a), ","); got != "zeta,alpha,mid" {
			t.Errorf("ListRoles = [%s], want creation order [zeta,alpha,mid]", got)
		}
		for _, u := range []string{"carol", "alice", "bob"} {
			f.expect("AddMember "+u, true)(f.svc.AddMember(f.ctx, f.a, u, "mid"))
		}
		f.expect("AddMember carol alpha", true)(f.svc.AddMember(f.ctx, f.a, "carol", "alpha"))
		f.expect("AddMember carol zeta", true)(f.svc.AddMember(f.ctx, f.a, "carol", "zeta"))
		ms, err := f.svc.Members(f.ctx, f.a, "mid")
		f.list("Members(mid)", ms, err, "carol", "alice", "bob")
		rs, err := f.svc.UserRoles(f.ctx, f.a, "carol")
		f.list("UserRoles(carol)", rs, err, "mid", "alpha", "zeta")
		f.expect("Grant mid x", true)(f.svc.Grant(f.ctx, f.a, "mid", "x"))
		f.expect("Grant alpha x", true)(f.svc.Grant(f.ctx, f.a, "alpha", "x"))
		f.expect("Grant alpha y", true)(f.svc.Grant(f.ctx, f.a, "alpha", "y"))
		ps, err := f.svc.RolePermissions(f.ctx, f.a, "alpha")
		f.list("RolePermissions(alpha)", ps, err, "x", "y")
		// One entry per role that grants it.
		ps, err = f.svc.UserPermissions(f.ctx, f.a, "carol")
		f.list("UserPermissions(carol)", ps, err, "x", "x", "y")
		wr, err := f.svc.WhichRolesCan(f.ctx, f.a, "x")
		f.list("WhichRolesCan(x)", wr, err, "alpha", "mid")
		ws, err := f.svc.WhichUsersCan(f.ctx, f.a, "x")
		if got := fmt.Sprint(ws); err != nil || got != "[{carol alpha} {carol mid} {alice mid} {bob mid}]" {
			t.Errorf("WhichUsersCan(x) = %s, %v; want one entry per role, roles in creation order, members in join order", got, err)
		}
	})

	t.Run("Inheritance", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		for _, r := range []string{"viewer", "editor", "admin"} {
			f.expect("CreateRole "+r, true)(f.svc.CreateRole(f.ctx, f.a, r))
		}
		f.expect("Grant viewer read", true)(f.svc.Grant(f.ctx, f.a, "viewer", "read"))
		f.expect("Grant editor write", true)(f.svc.Grant(f.ctx, f.a, "editor", "write"))
		f.expect("editor inherits viewer", true)(f.svc.AddRoleParent(f.ctx, f.a, "editor", "viewer"))
		f.expect("admin inherits editor", true)(f.svc.AddRoleParent(f.ctx, f.a, "admin", "editor"))
		f.expect("admin inherits editor again", true)(f.svc.AddRoleParent(f.ctx, f.a, "admin", "editor"))
		f.expect("AddMember alice admin", true)(f.svc.AddMember(f.ctx, f.a, "alice", "admin"))
		f.expect("alice may read", true)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
		f.expect("admin may read", true)(f.svc.RoleHasPermission(f.ctx, f.a, "admin", "read"))
		f.expect("viewer may not write", false)(f.svc.RoleHasPermission(f.ctx, f.a, "viewer", "write"))
		ps, err := f.svc.RolePermissions(f.ctx, f.a, "admin")
		f.list("RolePermissions(admin)", ps, err, "write", "read")
		ps, err = f.svc.UserPermissions(f.ctx, f.a, "alice")
		f.list("UserPermissions(alice)", ps, err, "write", "read")
		wr, err := f.svc.WhichRolesCan(f.ctx, f.a, "read")
		f.list("WhichRolesCan(read)", wr, err, "viewer", "editor", "admin")
		pa, err := f.svc.RoleParents(f.ctx, f.a, "admin")
		f.list("RoleParents(admin)", pa, err, "editor")
		f.expect("RemoveRoleParent editor viewer", true)(f.svc.RemoveRoleParent(f.ctx, f.a, "editor", "viewer"))
		f.expect("alice may not read any more", false)(f.svc.HasPermission(f.ctx, f.a, "alice", "read"))
	})

	t.Run("CyclesAndDepth", func(t *testing.T) {
		const depth = 4
		f := newFixture(t, open, policy.Options{MaxRoleDepth: depth})
		var chain []string
		for i := 0; i <= depth+1; i++ {
			chain = append(chain, fmt.Sprintf("c%d", i))
			f.expect("CreateRole", true)(f.svc.CreateRole(f.ctx, f.a, chain[i]))
		}
		for i := 0; i < depth; i++ {
			f.expect(fmt.Sprintf("link %d", i), true)(f.svc.AddRoleParent(f.ctx, f.a, chain[i], chain[i+1]))
		}
		f.expect("Grant top", true)(f.svc.Grant(f.ctx, f.a, chain[depth], "top"))
		f.expect("AddMember bottom", true)(f.svc.AddMember(f.ctx, f.a, "alice", chain[0]))
		f.expect("chain of the maximum depth", true)(f.svc.HasPermission(f.ctx, f.a, "alice", "top"))
		rules := f.countRows("SELECT COUNT(*) FROM casbin_rule")
		version := f.countRows("SELECT policy_version FROM tenants")

		for _, c := range []struct {
			name         string
			role, parent string
			want         error
		}{
			{"self", "c0", "c0", policy.ErrRoleCycle},
			{"self on a missing role", "ghost", "ghost", policy.ErrRoleCycle},
			{"two-cycle", "c1", "c0", policy.ErrRoleCycle},
			{"long cycle", chain[depth], "c0", policy.ErrRoleCycle},
			{"one more at the top", chain[depth], chain[depth+1], policy.ErrRoleDepth},
			{"one more at the bottom", chain[depth+1], "c0", policy.ErrRoleDepth},
		} {
			got, err := f.svc.AddRoleParent(f.ctx, f.a, c.role, c.parent)
			if got || !errors.Is(err, c.want) {
				t.Errorf("%s: AddRoleParent(%s, %s) = %v, %v; want false, %v", c.name, c.role, c.parent, got, err, c.want)
			}
		}
		// Joining two chains whose lengths add up to too much.
		f.expect("CreateRole x0", true)(f.svc.CreateRole(f.ctx, f.a, "x0"))
		f.expect("CreateRole x1", true)(f.svc.CreateRole(f.ctx, f.a, "x1"))
		f.expect("link x0 x1", true)(f.svc.AddRoleParent(f.ctx, f.a, "x0", "x1"))
		rules++
		version += 3
		if got, err := f.svc.AddRoleParent(f.ctx, f.a, "x1", "c1"); got || !errors.Is(err, policy.ErrRoleDepth) {
			t.Errorf("joining chains: AddRoleParent(x1, c1) = %v, %v; want false, ErrRoleDepth", got, err)
		}
		// A rejected link changes nothing, in the database or in memory.
		if n := f.countRows("SELECT COUNT(*) FROM casbin_rule"); n != rules {
			t.Errorf("%d rules after rejected links, want %d", n, rules)
		}
		if n := f.countRows("SELECT policy_version FROM tenants"); n != version {
			t.Errorf("policy version %d after rejected links, want %d (rolled back)", n, version)
		}
		pa, err := f.svc.RoleParents(f.ctx, f.a, chain[depth])
		f.list("RoleParents(top)", pa, err)
		pa, err = f.svc.RoleParents(f.ctx, f.a, "x1")
		f.list("RoleParents(x1)", pa, err)
		// A shorter join is fine.
		f.expect("AddRoleParent(x1, c3)", true)(f.svc.AddRoleParent(f.ctx, f.a, "x1", chain[depth-1]))
		f.expect("x0 may top", true)(f.svc.RoleHasPermission(f.ctx, f.a, "x0", "top"))
	})

	t.Run("DefaultDepthIsCappedForCasbin", func(t *testing.T) {
		// MaxRoleDepth above 9 is capped at 9: a user's chain must stay within
		// Casbin's 10 links, or Casbin would deny what the index allows.
		f := newFixture(t, open, policy.Options{MaxRoleDepth: 50})
		var chain []string
		for i := 0; i <= 10; i++ {
			chain = append(chain, fmt.Sprintf("c%d", i))
			f.expect("CreateRole", true)(f.svc.CreateRole(f.ctx, f.a, chain[i]))
		}
		for i := 0; i < 9; i++ {
			f.expect(fmt.Sprintf("link %d", i), true)(f.svc.AddRoleParent(f.ctx, f.a, chain[i], chain[i+1]))
		}
		if got, err := f.svc.AddRoleParent(f.ctx, f.a, chain[9], chain[10]); got || !errors.Is(err, policy.ErrRoleDepth) {
			t.Errorf("tenth link: AddRoleParent = %v, %v; want false, ErrRoleDepth", got, err)
		}
		f.expect("Grant", true)(f.svc.Grant(f.ctx, f.a, chain[9], "top"))
		f.expect("AddMember", true)(f.svc.AddMember(f.ctx, f.a, "alice", chain[0]))
		f.expect("ten links from alice to the grant", true)(f.svc.HasPermission(f.ctx, f.a, "alice", "top"))
	})

	t.Run("Restart", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		populate(t, f.ctx, f.svc, f.a)
		populate(t, f.ctx, f.svc, f.b)
		f.expect("B: DeleteRole ops", true)(f.svc.DeleteRole(f.ctx, f.b, "ops"))
		want := answers(t, f.ctx, f.svc, f.a) + answers(t, f.ctx, f.svc, f.b)
		svc2 := newService(t, f.db, auth.DefaultModel, policy.Options{})
		if got := answers(t, f.ctx, svc2, f.a) + answers(t, f.ctx, svc2, f.b); got != want {
			t.Errorf("a new Service over the same database answers:\n%s\nwant:\n%s", got, want)
		}
		// Writes continue where the first Service left off.
		f.expect("Grant after restart", true)(svc2.Grant(f.ctx, f.a, "ops", "deploy"))
		f.expect("HasPermission after restart", true)(svc2.HasPermission(f.ctx, f.a, "dave", "deploy"))
	})

	t.Run("Eviction", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{IdleTimeout: time.Millisecond})
		populate(t, f.ctx, f.svc, f.a)
		populate(t, f.ctx, f.svc, f.b)
		want := answers(t, f.ctx, f.svc, f.a) + answers(t, f.ctx, f.svc, f.b)
		if n := f.svc.LoadedTenants(); n != 2 {
			t.Fatalf("LoadedTenants = %d, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
		if n := f.svc.EvictIdle(); n != 2 {
			t.Errorf("EvictIdle() = %d, want 2", n)
		}
		if n := f.svc.LoadedTenants(); n != 0 {
			t.Errorf("LoadedTenants = %d after eviction, want 0", n)
		}
		if got := answers(t, f.ctx, f.svc, f.a) + answers(t, f.ctx, f.svc, f.b); got != want {
			t.Errorf("answers after eviction:\n%s\nwant:\n%s", got, want)
		}
		// A write after eviction reloads and applies incrementally.
		time.Sleep(5 * time.Millisecond)
		f.svc.EvictIdle()
		f.expect("Revoke after eviction", true)(f.svc.Revoke(f.ctx, f.a, "ops", "deploy"))
		f.expect("HasPermission after revoke", false)(f.svc.HasPermission(f.ctx, f.a, "dave", "deploy"))
		// A recently used tenant stays.
		f2 := newService(t, f.db, auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
		f.expect("load", true)(f2.HasPermission(f.ctx, f.a, "alice", "read"))
		if n := f2.EvictIdle(); n != 0 || f2.LoadedTenants() != 1 {
			t.Errorf("EvictIdle() = %d with a 1h idle timeout, want 0", n)
		}
	})

	t.Run("InvalidNames", func(t *testing.T) {
		f := newFixture(t, open, policy.Options{})
		testInvalidNames(t, f.ctx, f.svc, f.a)
		if n := f.countRows("SELECT COUNT(*) FROM tenants"); n != 0 {
			t.Errorf("invalid names created %d tenants, want 0", n)
		}
	})
}

// populate writes a small tenant with every kind of rule.
func populate(t *testing.T, ctx context.Context, svc *policy.Service, k policy.KeyHash) {
	t.Helper()
	steps := []struct {
		what string
		call func() (bool, error)
	}{
		{"CreateRole admin", func() (bool, error) { return svc.CreateRole(ctx, k, "admin") }},
		{"CreateRole ops", func() (bool, error) { return svc.CreateRole(ctx, k, "ops") }},
		{"CreateRole viewer", func() (bool, error) { return svc.CreateRole(ctx, k, "viewer") }},
		{"Grant viewer read", func() (bool, error) { return svc.Grant(ctx, k, "viewer", "read") }},
		{"Grant admin write", func() (bool, error) { return svc.Grant(ctx, k, "admin", "write") }},
		{"Grant ops deploy", func() (bool, error) { return svc.Grant(ctx, k, "ops", "deploy") }},
		{"admin inherits viewer", func() (bool, error) { return svc.AddRoleParent(ctx, k, "admin", "viewer") }},
		{"AddMember alice admin", func() (bool, error) { return svc.AddMember(ctx, k, "alice", "admin") }},
		{"AddMember bob viewer", func() (bool, error) { return svc.AddMember(ctx, k, "bob", "viewer") }},
		{"AddMember dave ops", func() (bool, error) { return svc.AddMember(ctx, k, "dave", "ops") }},
		{"AddMember erin ops", func() (bool, error) { return svc.AddMember(ctx, k, "erin", "ops") }},
		{"RemoveMember erin ops", func() (bool, error) { return svc.RemoveMember(ctx, k, "erin", "ops") }},
	}
	for _, s := range steps {
		if ok, err := s.call(); err != nil || !ok {
			t.Fatalf("%s = %v, %v; want true", s.what, ok, err)
		}
	}
}

// answers renders every answer of svc about the names populate uses.
func answers(t *testing.T, ctx context.Context, svc *policy.Service, k policy.KeyHash) string {
	t.Helper()
	var b strings.Builder
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rs, err := svc.ListRoles(ctx, k)
	must(err)
	fmt.Fprintf(&b, "roles %v\n", rs)
	for _, r := range []string{"admin", "ops", "viewer", "ghost"} {
		ps, err := svc.RolePermissions(ctx, k, r)
		must(err)
		ms, err := svc.Members(ctx, k, r)
		must(err)
		pa, err := svc.RoleParents(ctx, k, r)
		must(err)
		fmt.Fprintf(&b, "role %s perms %v members %v parents %v\n", r, ps, ms, pa)
	}
	for _, u := range []string{"alice", "bob", "dave", "erin"} {
		ps, err := svc.UserPermissions(ctx, k, u)
		must(err)
		rs, err := svc.UserRoles(ctx, k, u)
		must(err)
		fmt.Fprintf(&b, "user %s perms %v roles %v", u, ps, rs)
		for _, p := range []string{"read", "write", "deploy", "none"} {
			ok, err := svc.HasPermission(ctx, k, u, p)
			must(err)
			fmt.Fprintf(&b, " %s=%v", p, ok)
		}
		b.WriteString("\n")
	}
	for _, p := range []string{"read", "write", "deploy"} {
		ws, err := svc.WhichRolesCan(ctx, k, p)
		must(err)
		us, err := svc.WhichUsersCan(ctx, k, p)
		must(err)
		fmt.Fprintf(&b, "perm %s roles %v users %v\n", p, ws, us)
	}
	return b.String()
}

// testInvalidNames checks that every method refuses invalid names with a
// *policy.NameError naming the kind, before any database work.
func testInvalidNames(t *testing.T, ctx context.Context, svc *policy.Service, k policy.KeyHash) {
	badUsers := []string{"", "al ice", "alice\n", "a:b", "role:admin", "ali/ce", strings.Repeat("u", 65), "é"}
	badRoles := []string{"", "ad min", "admin\n", "a.b", "a@b", "role:x", strings.Repeat("r", 65), "*"}
	badPerms := []string{"", "re ad", "read\n", "a.b", "a:b", "orders*", strings.Repeat("p", 129)}
	type call struct {
		kind string
		name string
		do   func(bad string) error
	}
	second := func(_ any, err error) error { return err }
	calls := []call{
		{"role", "CreateRole", func(v string) error { return second(svc.CreateRole(ctx, k, v)) }},
		{"role", "DeleteRole", func(v string) error { return second(svc.DeleteRole(ctx, k, v)) }},
		{"role", "Grant(role)", func(v string) error { return second(svc.Grant(ctx, k, v, "read")) }},
		{"permission", "Grant(perm)", func(v string) error { return second(svc.Grant(ctx, k, "admin", v)) }},
		{"role", "Revoke(role)", func(v string) error { return second(svc.Revoke(ctx, k, v, "read")) }},
		{"permission", "Revoke(perm)", func(v string) error { return second(svc.Revoke(ctx, k, "admin", v)) }},
		{"user", "AddMember(user)", func(v string) error { return second(svc.AddMember(ctx, k, v, "admin")) }},
		{"role", "AddMember(role)", func(v string) error { return second(svc.AddMember(ctx, k, "alice", v)) }},
		{"user", "RemoveMember(user)", func(v string) error { return second(svc.RemoveMember(ctx, k, v, "admin")) }},
		{"role", "RemoveMember(role)", func(v string) error { return second(svc.RemoveMember(ctx, k, "alice", v)) }},
		{"role", "AddRoleParent(role)", func(v string) error { return second(svc.AddRoleParent(ctx, k, v, "admin")) }},
		{"role", "AddRoleParent(parent)", func(v string) error { return second(svc.AddRoleParent(ctx, k, "admin", v)) }},
		{"role", "RemoveRoleParent(role)", func(v string) error { return second(svc.RemoveRoleParent(ctx, k, v, "admin")) }},
		{"role", "RemoveRoleParent(parent)", func(v string) error { return second(svc.RemoveRoleParent(ctx, k, "admin", v)) }},
		{"role", "RoleParents", func(v string) error { return second(svc.RoleParents(ctx, k, v)) }},
		{"role", "RoleHasPermission(role)", func(v string) error { return second(svc.RoleHasPermission(ctx, k, v, "read")) }},
		{"permission", "RoleHasPermission(perm)", func(v string) error { return second(svc.RoleHasPermission(ctx, k, "admin", v)) }},
		{"user", "HasPermission(user)", func(v string) error { return second(svc.HasPermission(ctx, k, v, "read")) }},
		{"permission", "HasPermission(perm)", func(v string) error { return second(svc.HasPermission(ctx, k, "alice", v)) }},
		{"user", "IsMember(user)", func(v string) error { return second(svc.IsMember(ctx, k, v, "admin")) }},
		{"role", "IsMember(role)", func(v string) error { return second(svc.IsMember(ctx, k, "alice", v)) }},
		{"user", "UserRoles", func(v string) error { return second(svc.UserRoles(ctx, k, v)) }},
		{"role", "Members", func(v string) error { return second(svc.Members(ctx, k, v)) }},
		{"user", "UserPermissions", func(v string) error { return second(svc.UserPermissions(ctx, k, v)) }},
		{"role", "RolePermissions", func(v string) error { return second(svc.RolePermissions(ctx, k, v)) }},
		{"permission", "WhichRolesCan", func(v string) error { return second(svc.WhichRolesCan(ctx, k, v)) }},
		{"permission", "WhichUsersCan", func(v string) error { return second(svc.WhichUsersCan(ctx, k, v)) }},
	}
	for _, c := range calls {
		bad := map[string][]string{"user": badUsers, "role": badRoles, "permission": badPerms}[c.kind]
		for _, v := range bad {
			err := c.do(v)
			var ne *policy.NameError
			switch {
			case !errors.As(err, &ne):
				t.Errorf("%s(%q): error %v, want a *policy.NameError", c.name, v, err)
			case ne.Kind != c.kind || ne.Value != v:
				t.Errorf("%s(%q): NameError{Kind: %q, Value: %q}, want kind %q", c.name, v, ne.Kind, ne.Value, c.kind)
			case !errors.Is(err, policy.ErrInvalidName) || !policy.IsNameError(err):
				t.Errorf("%s(%q): errors.Is(err, ErrInvalidName) is false", c.name, v)
			}
		}
	}
}

// Two Services, each with its own connection pool, over one database stand
// for two replicas. A replica decides whether a role link is allowed on what
// it knows, which may be older than the database: a link the other replica
// made in the meantime must count.
func TestReplicasSQLite(t *testing.T) {
	runReplicas(t, func(t *testing.T) (*sqldb.DB, *sqldb.DB) {
		o := sqldb.Options{Dialect: sqldb.SQLite, Path: filepath.Join(t.TempDir(), "auth.sqlite3")}
		return testenv.OpenDB(t, o), testenv.OpenDB(t, o)
	})
}

func TestReplicasPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL suite skipped in -short mode")
	}
	runReplicas(t, func(t *testing.T) (*sqldb.DB, *sqldb.DB) {
		o := sqldb.Options{Dialect: sqldb.Postgres, URL: testenv.PostgresURL(t)}
		return testenv.OpenDB(t, o), testenv.OpenDB(t, o)
	})
}

func runReplicas(t *testing.T, open func(*testing.T) (*sqldb.DB, *sqldb.DB)) {
	t.Run("Sequential", func(t *testing.T) {
		ctx := context.Background()
		db1, db2 := open(t)
		k := mustKey(t, keyA)
		one := newService(t, db1, auth.DefaultModel, policy.Options{MaxRoleDepth: 2})
		two := newService(t, db2, auth.DefaultModel, policy.Options{MaxRoleDepth: 2})
		for _, r := range []string{"a", "b", "c", "d"} {
			if ok, err := one.CreateRole(ctx, k, r); err != nil || !ok {
				t.Fatalf("CreateRole(%s) = %v, %v", r, ok, err)
			}
		}
		// Both replicas have the tenant loaded.
		for _, s := range []*policy.Service{one, two} {
			if rs, err := s.ListRoles(ctx, k); err != nil || len(rs) != 4 {
				t.Fatalf("ListRoles = %v, %v", rs, err)
			}
		}
		if ok, err := one.AddRoleParent(ctx, k, "a", "b"); err != nil || !ok {
			t.Fatalf("one: AddRoleParent(a, b) = %v, %v", ok, err)
		}
		if ok, err := two.AddRoleParent(ctx, k, "b", "a"); ok || !errors.Is(err, policy.ErrRoleCycle) {
			t.Errorf("two: AddRoleParent(b, a) after one linked a to b = %v, %v; want false, ErrRoleCycle", ok, err)
		}
		if ok, err := one.AddRoleParent(ctx, k, "c", "d"); err != nil || !ok {
			t.Fatalf("one: AddRoleParent(c, d) = %v, %v", ok, err)
		}
		if ok, err := two.AddRoleParent(ctx, k, "b", "c"); ok || !errors.Is(err, policy.ErrRoleDepth) {
			t.Errorf("two: AddRoleParent(b, c) making a-b-c-d (3 links, max 2) = %v, %v; want false, ErrRoleDepth", ok, err)
		}
		// Both replicas end up with what the database holds.
		want := answers(t, ctx, newService(t, db1, auth.DefaultModel, policy.Options{}), k)
		for i, s := range []*policy.Service{one, two} {
			if got := answers(t, ctx, s, k); got != want {
				t.Errorf("replica %d answers:\n%s\nwant:\n%s", i+1, got, want)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Each round, the two replicas link x to y and y to x at the same
		// time: never both.
		ctx := context.Background()
		db1, db2 := open(t)
		k := mustKey(t, keyB)
		one := newService(t, db1, auth.DefaultModel, policy.Options{})
		two := newService(t, db2, auth.DefaultModel, policy.Options{})
		for round := range 10 {
			x, y := fmt.Sprintf("x%d", round), fmt.Sprintf("y%d", round)
			for _, r := range []string{x, y} {
				if ok, err := one.CreateRole(ctx, k, r); err != nil || !ok {
					t.Fatalf("CreateRole(%s) = %v, %v", r, ok, err)
				}
			}
			if _, err := two.ListRoles(ctx, k); err != nil {
				t.Fatal(err)
			}
			type res struct {
				ok  bool
				err error
			}
			results := make(chan res, 2)
			start := make(chan struct{})
			for _, c := range []struct {
				s    *policy.Service
				a, b string
			}{{one, x, y}, {two, y, x}} {
				go func() {
					<-start
					ok, err := c.s.AddRoleParent(ctx, k, c.a, c.b)
					results <- res{ok, err}
				}()
			}
			close(start)
			r1, r2 := <-results, <-results
			linked := 0
			for _, r := range []res{r1, r2} {
				switch {
				case r.err == nil && r.ok:
					linked++
				case errors.Is(r.err, policy.ErrRoleCycle):
				default:
					t.Errorf("round %d: AddRoleParent = %v, %v; want true or ErrRoleCycle", round, r.ok, r.err)
				}
			}
			if linked != 1 {
				t.Errorf("round %d: %d of two opposite links made, want exactly 1", round, linked)
			}
		}
	})
}

// Reads, writes and evictions of one tenant at the same time (run with
// -race): every call succeeds, and in the end memory equals the database.
func TestConcurrentReadsWritesEvictions(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	svc := newService(t, db, auth.DefaultModel, policy.Options{IdleTimeout: time.Microsecond})
	k := mustKey(t, keyA)
	populate(t, ctx, svc, k)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch (n + i) % 4 {
				case 0:
					_, err = svc.HasPermission(ctx, k, "alice", "read")
				case 1:
					_, err = svc.UserPermissions(ctx, k, "bob")
				case 2:
					_, err = svc.WhichUsersCan(ctx, k, "deploy")
				case 3:
					_, err = svc.WhichRolesCan(ctx, k, "read")
				}
				if err != nil {
					report(err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				svc.EvictIdle()
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for i := range 60 {
		var err error
		perm, user := fmt.Sprintf("p%d", i%7), fmt.Sprintf("u%d", i%5)
		switch i % 6 {
		case 0:
			_, err = svc.Grant(ctx, k, "ops", perm)
		case 1:
			_, err = svc.AddMember(ctx, k, user, "ops")
		case 2:
			_, err = svc.Revoke(ctx, k, "ops", perm)
		case 3:
			_, err = svc.AddRoleParent(ctx, k, "ops", "viewer")
		case 4:
			_, err = svc.RemoveMember(ctx, k, user, "ops")
		case 5:
			_, err = svc.RemoveRoleParent(ctx, k, "ops", "viewer")
		}
		if err != nil {
			report(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	want := answers(t, ctx, newService(t, db, auth.DefaultModel, policy.Options{}), k)
	if got := answers(t, ctx, svc, k); got != want {
		t.Errorf("after concurrent use, answers:\n%s\nwant (from the database):\n%s", got, want)
	}
}

// With a model the index does not understand, checks go through Casbin's
// Enforce and follow the model: here a superuser clause.
func TestFallbackModel(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, openSQLite(t), readModel(t, "superuser.conf"), policy.Options{})
	if svc.FastPath() {
		t.Fatalf("FastPath() = true for a matcher with a superuser clause")
	}
	k := mustKey(t, keyA)
	populate(t, ctx, svc, k)
	for _, c := range []struct {
		user, perm string
		want       bool
	}{
		{"root", "anything", true},
		{"root", "read", true},
		{"alice", "read", true},
		{"alice", "deploy", false},
		{"bob", "write", false},
	} {
		got, err := svc.HasPermission(ctx, k, c.user, c.perm)
		if err != nil || got != c.want {
			t.Errorf("HasPermission(%s, %s) = %v, %v; want %v", c.user, c.perm, got, err, c.want)
		}
	}
	// An unknown tenant still answers false: no rule, no domain.
	if ok, err := svc.HasPermission(ctx, mustKey(t, keyB), "root", "read"); err != nil || ok {
		t.Errorf("HasPermission(root) in an unknown tenant = %v, %v; want false", ok, err)
	}
}
