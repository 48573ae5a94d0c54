package policy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	auth "github.com/ourway/auth"
	"github.com/ourway/auth/policy"
)

// explainTenant builds the tenant of the explanation tests:
//
//	alice → editor → staff (read);  editor (write)
//	carol → editor and staff (both reach read: staff is nearer)
//	dave  → b-role and a-role, both granted shared (b-role first)
//	root  → nothing
func explainTenant(t *testing.T, svc *policy.Service, key policy.KeyHash, readGrant string) {
	t.Helper()
	ctx := context.Background()
	steps := []func() (bool, error){
		func() (bool, error) { return svc.CreateRole(ctx, key, "editor") },
		func() (bool, error) { return svc.CreateRole(ctx, key, "staff") },
		func() (bool, error) { return svc.CreateRole(ctx, key, "b-role") },
		func() (bool, error) { return svc.CreateRole(ctx, key, "a-role") },
		func() (bool, error) { return svc.Grant(ctx, key, "staff", readGrant) },
		func() (bool, error) { return svc.Grant(ctx, key, "editor", "write") },
		func() (bool, error) { return svc.Grant(ctx, key, "b-role", "shared") },
		func() (bool, error) { return svc.Grant(ctx, key, "a-role", "shared") },
		func() (bool, error) { return svc.AddRoleParent(ctx, key, "editor", "staff") },
		func() (bool, error) { return svc.AddMember(ctx, key, "alice", "editor") },
		func() (bool, error) { return svc.AddMember(ctx, key, "carol", "editor") },
		func() (bool, error) { return svc.AddMember(ctx, key, "carol", "staff") },
		func() (bool, error) { return svc.AddMember(ctx, key, "dave", "b-role") },
		func() (bool, error) { return svc.AddMember(ctx, key, "dave", "a-role") },
	}
	for i, step := range steps {
		if ok, err := step(); err != nil || !ok {
			t.Fatalf("setup step %d: %v, %v", i, ok, err)
		}
	}
}

func path(steps ...string) []policy.Step {
	var out []policy.Step
	for i := 0; i < len(steps); i += 2 {
		out = append(out, policy.Step{Type: steps[i], Name: steps[i+1]})
	}
	return out
}

// Explain gives the decision of HasPermission with the path that grants it
// and the matched rule, under the indexed default model and under models
// decided by Casbin's EnforceEx (a keyMatch2 pattern model, a model with a
// superuser clause).
func TestExplain(t *testing.T) {
	const u, r, p = policy.StepUser, policy.StepRole, policy.StepPermission
	type want struct {
		user, perm string
		allowed    bool
		path       []policy.Step
		rule       []string // without the domain, added below
	}
	for _, m := range []struct {
		name, model, readGrant, readAsked string
		cases                             []want
	}{
		{"default", auth.DefaultModel, "read", "read", []want{
			{"alice", "read", true, path(u, "alice", r, "editor", r, "staff", p, "read"), []string{"role:staff", "read"}},
			{"alice", "write", true, path(u, "alice", r, "editor", p, "write"), []string{"role:editor", "write"}},
			{"carol", "read", true, path(u, "carol", r, "staff", p, "read"), []string{"role:staff", "read"}},
			// Two roles at the same distance: the first by name.
			{"dave", "shared", true, path(u, "dave", r, "a-role", p, "shared"), []string{"role:a-role", "shared"}},
			{"alice", "shared", false, nil, nil},
			{"nobody", "read", false, nil, nil},
			{"root", "read", false, nil, nil},
		}},
		{"keymatch2", readModel(t, "keymatch2.conf"), "/reports/*", "/reports/q3", []want{
			{"alice", "/reports/q3", true, path(u, "alice", r, "editor", r, "staff", p, "/reports/*"), []string{"role:staff", "/reports/*"}},
			{"alice", "write", true, path(u, "alice", r, "editor", p, "write"), []string{"role:editor", "write"}},
			{"carol", "/reports/q3", true, path(u, "carol", r, "staff", p, "/reports/*"), []string{"role:staff", "/reports/*"}},
			// Casbin reports the first matching rule in policy order.
			{"dave", "shared", true, path(u, "dave", r, "b-role", p, "shared"), []string{"role:b-role", "shared"}},
			{"alice", "/sales/q3", false, nil, nil},
			{"alice", "shared", false, nil, nil},
		}},
		{"superuser", readModel(t, "superuser.conf"), "read", "read", []want{
			{"alice", "read", true, path(u, "alice", r, "editor", r, "staff", p, "read"), []string{"role:staff", "read"}},
			{"alice", "shared", false, nil, nil},
			// Allowed by the clause, not by a role: Casbin names the first
			// rule it evaluated; no role leads there.
			{"root", "read", true, path(u, "root", p, "read"), []string{"role:staff", "read"}},
		}},
	} {
		t.Run(m.name, func(t *testing.T) {
			db := openSQLite(t)
			svc := newService(t, db, m.model, policy.Options{})
			key := mustKey(t, "7e3c9a41-2b5d-4f60-8a1e-3c5d7e9f1a2b")
			explainTenant(t, svc, key, m.readGrant)
			dom, _ := tenantDomain(t, db, key)
			ctx := context.Background()
			for _, tc := range m.cases {
				got, err := svc.Explain(ctx, key, tc.user, tc.perm)
				if err != nil {
					t.Fatalf("Explain(%s, %s): %v", tc.user, tc.perm, err)
				}
				var rule []string
				if tc.rule != nil {
					rule = []string{tc.rule[0], dom, tc.rule[1]}
				}
				wantE := policy.Explanation{Allowed: tc.allowed, Path: tc.path, Rule: rule}
				if !reflect.DeepEqual(got, wantE) {
					t.Errorf("Explain(%s, %s) =\n%+v, want\n%+v", tc.user, tc.perm, got, wantE)
				}
				has, err := svc.HasPermission(ctx, key, tc.user, tc.perm)
				if err != nil || has != tc.allowed {
					t.Errorf("HasPermission(%s, %s) = %v, %v; want %v", tc.user, tc.perm, has, err, tc.allowed)
				}
			}
		})
	}
}

// Names are validated as HasPermission validates them; a batch names the
// index of its first invalid pair and answers nothing.
func TestExplainAndBatchNames(t *testing.T) {
	svc := newService(t, openSQLite(t), auth.DefaultModel, policy.Options{})
	key := mustKey(t, "7e3c9a41-2b5d-4f60-8a1e-3c5d7e9f1a2b")
	ctx := context.Background()
	for _, tc := range []struct{ user, perm, kind string }{{"a b", "read", "user"}, {"alice", "re ad", "permission"}, {"", "read", "user"}} {
		_, err := svc.Explain(ctx, key, tc.user, tc.perm)
		var ne *policy.NameError
		if !policy.IsNameError(err) || !errors.As(err, &ne) || ne.Kind != tc.kind {
			t.Errorf("Explain(%q, %q) error %v, want an invalid %s name", tc.user, tc.perm, err, tc.kind)
		}
	}
	checks := []policy.Check{{User: "alice", Permission: "read"}, {User: "bob", Permission: "read"}, {User: "bob", Permission: "a/b"}, {User: "x y", Permission: "read"}}
	out, err := svc.CheckBatch(ctx, key, checks)
	var ce *policy.CheckError
	var ne *policy.NameError
	if out != nil || !errors.As(err, &ce) || ce.Index != 2 || !errors.As(err, &ne) || ne.Kind != "permission" {
		t.Errorf("CheckBatch = %v, %v; want the invalid permission of pair 2", out, err)
	}
}

// A batch answers exactly as one HasPermission per pair, under the indexed
// model and under Enforce, over random tenants with a two-level hierarchy;
// every explanation agrees, and its path is a shortest chain of real links
// ending at a grant.
func TestBatchAndExplainMatchHasPermission(t *testing.T) {
	for _, m := range []struct{ name, model string }{{"default", auth.DefaultModel}, {"superuser", readModel(t, "superuser.conf")}} {
		t.Run(m.name, func(t *testing.T) {
			svc := newService(t, openSQLite(t), m.model, policy.Options{})
			key := mustKey(t, "7e3c9a41-2b5d-4f60-8a1e-3c5d7e9f1a2b")
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(13, 7))
			g := randomHierarchy(t, svc, key, rng)
			var checks []policy.Check
			for _, u := range g.users {
				for _, p := range g.perms {
					checks = append(checks, policy.Check{User: u, Permission: p})
				}
			}
			got, err := svc.CheckBatch(ctx, key, checks)
			if err != nil {
				t.Fatal(err)
			}
			allowed := 0
			for i, c := range checks {
				has, err := svc.HasPermission(ctx, key, c.User, c.Permission)
				if err != nil {
					t.Fatal(err)
				}
				if got[i] != has {
					t.Errorf("batch pair %d (%s, %s) = %v, HasPermission = %v", i, c.User, c.Permission, got[i], has)
				}
				e, err := svc.Explain(ctx, key, c.User, c.Permission)
				if err != nil {
					t.Fatal(err)
				}
				if e.Allowed != has {
					t.Errorf("Explain(%s, %s).Allowed = %v, HasPermission = %v", c.User, c.Permission, e.Allowed, has)
				}
				if has {
					allowed++
					g.checkPath(t, c, e)
				} else if e.Path != nil || e.Rule != nil {
					t.Errorf("Explain(%s, %s) denied with %+v, want no path nor rule", c.User, c.Permission, e)
				}
			}
			if allowed == 0 || allowed == len(checks) {
				t.Fatalf("%d of %d pairs allowed: the tenant does not exercise both answers", allowed, len(checks))
			}
		})
	}
}

// hierarchy is a random tenant: users in roles of level 0, which inherit
// from roles of level 1; grants on both levels.
type hierarchy struct {
	users, perms    []string
	memberOf        map[string]map[string]bool
	parents, grants map[string]map[string]bool
}

func randomHierarchy(t *testing.T, svc *policy.Service, key policy.KeyHash, rng *rand.Rand) *hierarchy {
	t.Helper()
	ctx := context.Background()
	h := &hierarchy{memberOf: map[string]map[string]bool{}, parents: map[string]map[string]bool{}, grants: map[string]map[string]bool{}}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	var low, high []string
	for i := range 6 {
		low = append(low, fmt.Sprintf("team-%d", i))
		high = append(high, fmt.Sprintf("dept-%d", i%3))
	}
	high = high[:3]
	for i := range 12 {
		h.perms = append(h.perms, fmt.Sprintf("perm-%d", i))
	}
	for i := range 15 {
		h.users = append(h.users, fmt.Sprintf("user%d", i))
	}
	must := func(ok bool, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range append(append([]string{}, low...), high...) {
		must(svc.CreateRole(ctx, key, r))
		for range 2 {
			p := h.perms[rng.IntN(len(h.perms))]
			must(svc.Grant(ctx, key, r, p))
			add(h.grants, r, p)
		}
	}
	for _, r := range low {
		p := high[rng.IntN(len(high))]
		must(svc.AddRoleParent(ctx, key, r, p))
		add(h.parents, r, p)
	}
	for _, u := range h.users[:len(h.users)-2] { // the last two have no role
		for range 1 + rng.IntN(2) {
			r := low[rng.IntN(len(low))]
			if rng.IntN(4) == 0 {
				r = high[rng.IntN(len(high))]
			}
			must(svc.AddMember(ctx, key, u, r))
			add(h.memberOf, u, r)
		}
	}
	return h
}

// checkPath checks that e's path is user → roles → permission along real
// links, ends at a role granted the permission (the rule's subject), and is
// as short as any.
func (h *hierarchy) checkPath(t *testing.T, c policy.Check, e policy.Explanation) {
	t.Helper()
	p := e.Path
	if len(p) < 3 || p[0] != (policy.Step{Type: policy.StepUser, Name: c.User}) ||
		p[len(p)-1] != (policy.Step{Type: policy.StepPermission, Name: c.Permission}) {
		t.Errorf("Explain(%s, %s) path %+v: want user … permission", c.User, c.Permission, p)
		return
	}
	prev := ""
	for i, st := range p[1 : len(p)-1] {
		ok := st.Type == policy.StepRole && ((i == 0 && h.memberOf[c.User][st.Name]) || (i > 0 && h.parents[prev][st.Name]))
		if !ok {
			t.Errorf("Explain(%s, %s) path %+v: step %d is not a link", c.User, c.Permission, p, i+1)
			return
		}
		prev = st.Name
	}
	if !h.grants[prev][c.Permission] || len(e.Rule) != 3 || e.Rule[0] != "role:"+prev || e.Rule[2] != c.Permission {
		t.Errorf("Explain(%s, %s): path ends at %s, rule %v: not the grant", c.User, c.Permission, prev, e.Rule)
	}
	// The shortest number of roles to a holder.
	best := 0
	level := h.memberOf[c.User]
	for d := 1; len(level) > 0 && best == 0; d++ {
		next := map[string]bool{}
		for r := range level {
			if h.grants[r][c.Permission] {
				best = d
			}
			for q := range h.parents[r] {
				next[q] = true
			}
		}
		level = next
	}
	if roles := len(p) - 2; roles != best {
		t.Errorf("Explain(%s, %s) path %+v has %d roles, the shortest has %d", c.User, c.Permission, p, roles, best)
	}
}
