package policy_test

// The differential test: random tenants, roles, grants, memberships and
// role-inheritance links are written through the Service, then every answer
// of the Service (its index-based fast paths, or its Enforce fallback) is
// compared with Casbin's own Enforce on a plain enforcer built independently
// from the rules read back from the database. A shadow model replays the
// operations to predict each write's result and the exact rule set, so that
// memory, database and expectations are checked against each other.
//
// The seed is fixed by default and logged; override it with
//
//	go test ./policy -run TestDifferential -args -seed=123
//
// or AUTH_TEST_SEED=123.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casbin/casbin/v3"
	"github.com/casbin/casbin/v3/model"
	"github.com/casbin/casbin/v3/util"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the differential test (default: a fixed seed; also AUTH_TEST_SEED)")

const defaultDiffSeed = 20261128

func diffSeed(t *testing.T) uint64 {
	t.Helper()
	if *seedFlag != 0 {
		return *seedFlag
	}
	if v := os.Getenv("AUTH_TEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("AUTH_TEST_SEED=%q: %v", v, err)
		}
		return n
	}
	return defaultDiffSeed
}

// diffCase is one configuration of the differential test.
type diffCase struct {
	name      string
	model     func(t *testing.T) string
	fast      bool // the Service must use its index
	wildcards bool // grants are patterns
	// For pattern models: the patterns granted and the names checked
	// beyond the plain ones, and the model's function (request, pattern).
	patterns, names []string
	match           func(name, pattern string) bool
	inherit         bool // random role -> role links
	maxDepth        int  // Options.MaxRoleDepth (0: the default)
	rounds          int
}

func TestDifferential(t *testing.T) {
	seed := diffSeed(t)
	t.Logf("seed %d (rerun with -args -seed=%d or AUTH_TEST_SEED=%d)", seed, seed, seed)
	defaultModel := func(*testing.T) string { return auth.DefaultModel }
	file := func(name string) func(t *testing.T) string {
		return func(t *testing.T) string { return readModel(t, name) }
	}
	keyMatch, reordered := file("keymatch.conf"), file("reordered.conf")
	km := diffCase{wildcards: true, match: util.KeyMatch,
		patterns: []string{"p*", "p1*", "q*", "*", "x*y"},
		names:    []string{"p", "q", "q7", "p1x", "xy", "x_y", "x"}}
	pattern := func(name, model string, inherit bool, rounds int, c diffCase) diffCase {
		c.name, c.model, c.inherit, c.rounds = name, file(model), inherit, rounds
		if inherit {
			c.maxDepth = 9
		}
		return c
	}
	paths := []string{"/reports/q3", "/reports/q3/edit", "/reports", "/reports/", "/sales/q3", "/a/b/b", "/a/b/c", "/a/b", "/x"}
	regexMatch := func(name, pattern string) bool { return util.RegexMatch(name, pattern) }
	globMatch := func(name, pattern string) bool { ok, err := util.GlobMatch(name, pattern); return err == nil && ok }
	cases := []diffCase{
		{name: "default/flat", model: defaultModel, fast: true, rounds: 20},
		{name: "default/inherit-depth9", model: defaultModel, fast: true, inherit: true, maxDepth: 9, rounds: 24},
		{name: "default/inherit-depth-default", model: defaultModel, fast: true, inherit: true, rounds: 12},
		{name: "reordered/inherit", model: reordered, fast: true, inherit: true, maxDepth: 4, rounds: 8},
		{name: "keymatch/flat", model: keyMatch, wildcards: true, patterns: km.patterns, names: km.names, match: km.match, rounds: 12},
		{name: "keymatch/inherit-depth9", model: keyMatch, wildcards: true, patterns: km.patterns, names: km.names, match: km.match, inherit: true, maxDepth: 9, rounds: 16},
		pattern("keymatch2/inherit", "keymatch2.conf", true, 8, diffCase{wildcards: true, match: util.KeyMatch2,
			patterns: []string{"/reports/*", "/reports/:id", "/reports/:id/edit", "/sales/q3", "/*", "/a/:x/:y", "*"},
			names:    paths}),
		pattern("keymatch3/flat", "keymatch3.conf", false, 6, diffCase{wildcards: true, match: util.KeyMatch3,
			patterns: []string{"/reports/*", "/reports/{id}", "/reports/{id}/edit", "/sales/q3", "/a/{x}/{y}"},
			names:    paths}),
		pattern("keymatch4/flat", "keymatch4.conf", false, 6, diffCase{wildcards: true, match: util.KeyMatch4,
			patterns: []string{"/reports/{id}", "/a/{x}/{x}", "/a/{x}/c", "/*"},
			names:    paths}),
		pattern("keymatch5/flat", "keymatch5.conf", false, 6, diffCase{wildcards: true, match: util.KeyMatch5,
			patterns: []string{"/reports/{id}", "/reports/*", "/sales/{id}/edit"},
			names:    append([]string{"/reports/q3?a=1&b=2", "/sales/q3/edit?x=y"}, paths...)}),
		pattern("globmatch/inherit", "globmatch.conf", true, 8, diffCase{wildcards: true, match: globMatch,
			patterns: []string{"/reports/*", "/reports/**", "/a/{b,c}/?", "/a/[!b]/*", "p*", "*"},
			names:    append([]string{"/a/c/x", "/a/d/x", "p1x"}, paths...)}),
		pattern("regexmatch/inherit", "regexmatch.conf", true, 8, diffCase{wildcards: true, match: regexMatch,
			patterns: []string{"^/reports/q[1-4]$", "^/sales/.*", "x|y", `\.csv$`, "^p[0-3]$", "(?i)^/A/B$"},
			names:    append([]string{"/reports/q5", "a.csv", "acsv", "y", "p2"}, paths...)}),
	}
	var (
		mu    sync.Mutex
		total int
	)
	t.Run("models", func(t *testing.T) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				rounds := c.rounds
				if testing.Short() {
					rounds = 3
				}
				n := runDifferential(t, c, seed+uint64(i)*1_000_003, rounds)
				t.Logf("%d checks", n)
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
	})
	t.Logf("%d checks in all", total)
	if !testing.Short() && total < 10_000 {
		t.Errorf("only %d checks; the differential test must make at least 10 000", total)
	}
}

// shadowTenant is the expected state of one tenant, kept by replaying the
// operations independently of the Service.
type shadowTenant struct {
	key     string
	hash    policy.KeyHash
	roles   []string // creation order
	grants  map[string]map[string]bool
	members map[string]map[string]bool
	parents map[string]map[string]bool
}

func newShadowTenant(key string, hash policy.KeyHash) *shadowTenant {
	return &shadowTenant{key: key, hash: hash,
		grants: map[string]map[string]bool{}, members: map[string]map[string]bool{}, parents: map[string]map[string]bool{}}
}

func (s *shadowTenant) hasRole(r string) bool {
	for _, x := range s.roles {
		if x == r {
			return true
		}
	}
	return false
}

func add(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

func (s *shadowTenant) deleteRole(r string) {
	for i, x := range s.roles {
		if x == r {
			s.roles = append(s.roles[:i:i], s.roles[i+1:]...)
			break
		}
	}
	delete(s.grants, r)
	delete(s.members, r)
	delete(s.parents, r)
	for _, ps := range s.parents {
		delete(ps, r)
	}
}

// reaches reports whether from reaches to through parent links.
func (s *shadowTenant) reaches(from, to string) bool {
	seen := map[string]bool{}
	var walk func(r string) bool
	walk = func(r string) bool {
		if r == to {
			return true
		}
		if seen[r] {
			return false
		}
		seen[r] = true
		for p := range s.parents[r] {
			if walk(p) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// up is the longest chain of parent links above r; down the longest below.
func (s *shadowTenant) up(r string) int {
	best := 0
	for p := range s.parents[r] {
		best = max(best, 1+s.up(p))
	}
	return best
}

func (s *shadowTenant) down(r string) int {
	best := 0
	for c, ps := range s.parents {
		if ps[r] {
			best = max(best, 1+s.down(c))
		}
	}
	return best
}

// rules returns the Casbin rules the tenant must have in domain dom.
func (s *shadowTenant) rules(dom string) (p, g []string) {
	for r, perms := range s.grants {
		for perm := range perms {
			p = append(p, strings.Join([]string{"role:" + r, dom, perm}, ","))
		}
	}
	for r, users := range s.members {
		for u := range users {
			g = append(g, strings.Join([]string{u, "role:" + r, dom}, ","))
		}
	}
	for r, ps := range s.parents {
		for q := range ps {
			g = append(g, strings.Join([]string{"role:" + r, "role:" + q, dom}, ","))
		}
	}
	return p, g
}

// diffRun holds one run of the differential test.
type diffRun struct {
	t        *testing.T
	c        diffCase
	rng      *rand.Rand
	db       *sqldb.DB
	svc      *policy.Service
	model    string
	maxDepth int
	tenants  []*shadowTenant
	roles    []string // role names used by random operations
	chain    []string // the roles of the maximum-depth chain (inherit cases)
	users    []string // user names used by memberships
	probe    []string // user names checked (users and some never used)
	grantSet []string // what may be granted
	perms    []string // what is checked
	history  []string // recent operations, for failure messages
	checks   int
	outcomes map[string]int // operation outcome counts, logged
}

func runDifferential(t *testing.T, c diffCase, seed uint64, rounds int) int {
	ctx := context.Background()
	r := &diffRun{t: t, c: c, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), outcomes: map[string]int{}}
	r.model = c.model(t)
	r.db = openSQLite(t)
	r.maxDepth = c.maxDepth
	if r.maxDepth == 0 {
		r.maxDepth = 8
	}
	r.svc = newService(t, r.db, r.model, policy.Options{MaxRoleDepth: c.maxDepth, IdleTimeout: time.Nanosecond})
	if got := r.svc.FastPath(); got != c.fast {
		t.Fatalf("FastPath() = %v, want %v", got, c.fast)
	}
	for i := range 8 {
		r.roles = append(r.roles, fmt.Sprintf("r%d", i))
	}
	if c.inherit {
		for i := 0; i <= r.maxDepth; i++ {
			r.chain = append(r.chain, fmt.Sprintf("c%d", i))
		}
		r.roles = append(r.roles, r.chain...)
	}
	// Users named like roles must never get those roles' grants.
	r.users = []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "r0", "c0", "a.b@c+d"}
	r.probe = append(append([]string(nil), r.users...), "ghost", "role")
	for i := range 8 {
		r.grantSet = append(r.grantSet, fmt.Sprintf("p%d", i))
	}
	r.perms = append(append([]string(nil), r.grantSet...), "p10", "never")
	if c.wildcards {
		r.grantSet = append(r.grantSet, c.patterns...)
		r.perms = append(r.perms, c.names...)
	}
	for range 3 {
		key := randomKey(r.rng)
		if r.rng.IntN(2) == 0 {
			key = strings.ToUpper(key) // the same tenant as its lower-case form
		}
		r.tenants = append(r.tenants, newShadowTenant(key, mustKey(t, key)))
	}

	// Round 0 checks tenants that do not exist yet: reads create nothing.
	r.check(ctx, "before any write")
	if n := r.svc.LoadedTenants(); n != 0 {
		t.Fatalf("reads of unknown tenants loaded %d tenants, want 0", n)
	}
	if _, ok := tenantDomain(t, r.db, r.tenants[0].hash); ok {
		t.Fatalf("reads of an unknown tenant created it in the database")
	}
	// Set-up: most roles exist, and in the inheritance cases a chain of
	// the maximum depth exists with a grant at its top and a member at its
	// bottom, so that the longest chain Casbin allows is exercised.
	for ti, st := range r.tenants[:2] {
		for _, role := range r.rng.Perm(len(r.roles)) {
			if r.rng.IntN(5) > 0 {
				r.do(ctx, st, opCreate, r.roles[role], "")
			}
		}
		if c.inherit && ti == 0 {
			for _, role := range r.chain {
				r.do(ctx, st, opCreate, role, "")
			}
			for i := 0; i+1 < len(r.chain); i++ {
				r.do(ctx, st, opParent, r.chain[i], r.chain[i+1])
			}
			r.do(ctx, st, opGrant, r.chain[len(r.chain)-1], "p7")
			r.do(ctx, st, opMember, "u6", r.chain[0])
			// The user is len(r.chain) links away from the grant: the
			// longest chain the service admits, which Casbin must follow.
			if ok, err := r.svc.HasPermission(ctx, st.hash, "u6", "p7"); err != nil || !ok {
				t.Fatalf("HasPermission through a chain of %d links = %v, %v; want true", len(r.chain), ok, err)
			}
			// One more link at either end is too deep.
			r.do(ctx, st, opCreate, "r7", "")
			r.do(ctx, st, opParent, r.chain[len(r.chain)-1], "r7")
			r.do(ctx, st, opParent, "r7", r.chain[0])
			r.do(ctx, st, opParent, r.chain[len(r.chain)-1], r.chain[0])
		}
	}
	r.check(ctx, "after set-up")

	for round := 1; round <= rounds; round++ {
		for range 40 {
			r.randomOp(ctx)
		}
		if round == rounds/2 {
			// Evict every tenant: the next reads load them from the database.
			if n := r.svc.EvictIdle(); n == 0 {
				t.Errorf("EvictIdle evicted nothing with a 1ns idle timeout")
			}
		}
		r.check(ctx, fmt.Sprintf("round %d", round))
	}

	// A new Service over the same database (a restart) answers the same.
	before := r.snapshotAnswers(ctx, r.svc)
	r.svc = newService(t, r.db, r.model, policy.Options{MaxRoleDepth: c.maxDepth})
	r.check(ctx, "after restart")
	if after := r.snapshotAnswers(ctx, r.svc); after != before {
		t.Errorf("answers after restart differ from answers before restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var outcomes []string
	for k, n := range r.outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(outcomes)
	t.Logf("operations: %s", strings.Join(outcomes, " "))
	return r.checks
}

type opKind int

const (
	opCreate opKind = iota
	opDelete
	opGrant
	opRevoke
	opMember
	opUnmember
	opParent
	opUnparent
)

var opNames = [...]string{"CreateRole", "DeleteRole", "Grant", "Revoke", "AddMember", "RemoveMember", "AddRoleParent", "RemoveRoleParent"}

func (r *diffRun) pick(a []string) string { return a[r.rng.IntN(len(a))] }

func (r *diffRun) randomOp(ctx context.Context) {
	st := r.tenants[r.rng.IntN(len(r.tenants))]
	type w struct {
		op     opKind
		weight int
	}
	ws := []w{{opCreate, 8}, {opDelete, 3}, {opGrant, 20}, {opRevoke, 8}, {opMember, 20}, {opUnmember, 8}}
	if r.c.inherit {
		ws = append(ws, w{opParent, 18}, w{opUnparent, 5})
	}
	sum := 0
	for _, x := range ws {
		sum += x.weight
	}
	n := r.rng.IntN(sum)
	var op opKind
	for _, x := range ws {
		if n < x.weight {
			op = x.op
			break
		}
		n -= x.weight
	}
	role := r.pick(r.roles)
	switch op {
	case opCreate, opDelete:
		r.do(ctx, st, op, role, "")
	case opGrant, opRevoke:
		r.do(ctx, st, op, role, r.pick(r.grantSet))
	case opMember, opUnmember:
		r.do(ctx, st, op, r.pick(r.users), role)
	case opParent:
		// Mostly links between existing roles, sometimes along the chain.
		parent := r.pick(r.roles)
		if len(r.chain) > 0 && r.rng.IntN(4) == 0 {
			i := r.rng.IntN(len(r.chain) - 1)
			role, parent = r.chain[i], r.chain[i+1]
		}
		r.do(ctx, st, op, role, parent)
	case opUnparent:
		parent := r.pick(r.roles)
		if ps := st.parents[role]; len(ps) > 0 && r.rng.IntN(2) == 0 {
			parent = setKeys(ps)[r.rng.IntN(len(ps))]
		}
		r.do(ctx, st, op, role, parent)
	}
}

// do applies one operation to the Service and to the shadow, and checks the
// Service's answer against the shadow's prediction.
func (r *diffRun) do(ctx context.Context, st *shadowTenant, op opKind, a, b string) {
	t := r.t
	t.Helper()
	var (
		want    = true
		wantErr error
		got     bool
		err     error
		apply   = func() {}
	)
	key := st.hash
	switch op {
	case opCreate:
		got, err = r.svc.CreateRole(ctx, key, a)
		if !st.hasRole(a) {
			apply = func() { st.roles = append(st.roles, a) }
		}
	case opDelete:
		got, err = r.svc.DeleteRole(ctx, key, a)
		want = st.hasRole(a)
		apply = func() { st.deleteRole(a) }
	case opGrant:
		got, err = r.svc.Grant(ctx, key, a, b)
		want = st.hasRole(a)
		if want {
			apply = func() { add(st.grants, a, b) }
		}
	case opRevoke:
		got, err = r.svc.Revoke(ctx, key, a, b)
		apply = func() { delete(st.grants[a], b) }
	case opMember:
		got, err = r.svc.AddMember(ctx, key, a, b)
		want = st.hasRole(b)
		if want {
			apply = func() { add(st.members, b, a) }
		}
	case opUnmember:
		got, err = r.svc.RemoveMember(ctx, key, a, b)
		apply = func() { delete(st.members[b], a) }
	case opParent:
		got, err = r.svc.AddRoleParent(ctx, key, a, b)
		switch {
		case a == b:
			want, wantErr = false, policy.ErrRoleCycle
		case !st.hasRole(a) || !st.hasRole(b):
			want = false
		case st.reaches(b, a):
			want, wantErr = false, policy.ErrRoleCycle
		case st.up(b)+1+st.down(a) > r.maxDepth:
			want, wantErr = false, policy.ErrRoleDepth
		default:
			apply = func() { add(st.parents, a, b) }
		}
	case opUnparent:
		got, err = r.svc.RemoveRoleParent(ctx, key, a, b)
		apply = func() { delete(st.parents[a], b) }
	}
	desc := fmt.Sprintf("%s(%s, %q, %q)", opNames[op], st.key[:8], a, b)
	r.history = append(r.history, fmt.Sprintf("%s = %v, %v", desc, got, err))
	if len(r.history) > 40 {
		r.history = r.history[1:]
	}
	switch {
	case wantErr != nil && !errors.Is(err, wantErr):
		r.fail("%s: error %v, want %v", desc, err, wantErr)
	case wantErr == nil && err != nil:
		r.fail("%s: unexpected error %v", desc, err)
	case got != want:
		r.fail("%s = %v, want %v", desc, got, want)
	}
	if err == nil && got {
		apply()
	}
	outcome := strconv.FormatBool(got)
	switch {
	case errors.Is(err, policy.ErrRoleCycle):
		outcome = "cycle"
	case errors.Is(err, policy.ErrRoleDepth):
		outcome = "depth"
	}
	r.outcomes[opNames[op]+"="+outcome]++
}

func (r *diffRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), strings.Join(r.history, "\n  "))
}

// reference builds a plain Casbin enforcer, from the same model text, with
// every rule of the database added directly.
func (r *diffRun) reference() *casbin.Enforcer {
	t := r.t
	t.Helper()
	m, err := model.NewModelFromString(r.model)
	if err != nil {
		t.Fatalf("reference model: %v", err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		t.Fatalf("reference enforcer: %v", err)
	}
	p, g := dbRules(t, r.db)
	if len(p) > 0 {
		if _, err := e.AddPolicies(p); err != nil {
			t.Fatalf("reference AddPolicies: %v", err)
		}
	}
	if len(g) > 0 {
		if _, err := e.AddGroupingPolicies(g); err != nil {
			t.Fatalf("reference AddGroupingPolicies: %v", err)
		}
	}
	return e
}

// check compares every answer of the Service for every tenant with the
// reference enforcer and the shadow.
func (r *diffRun) check(ctx context.Context, when string) {
	t := r.t
	t.Helper()
	ref := r.reference()
	p, g := dbRules(t, r.db)
	for _, st := range r.tenants {
		dom, ok := tenantDomain(t, r.db, st.hash)
		if !ok {
			dom = "no-such-tenant"
		}
		// The database holds exactly the rules the operations imply.
		wantP, wantG := st.rules(dom)
		var gotP, gotG []string
		for _, x := range p {
			if x[1] == dom {
				gotP = append(gotP, strings.Join(x, ","))
			}
		}
		for _, x := range g {
			if x[2] == dom {
				gotG = append(gotG, strings.Join(x, ","))
			}
		}
		if a, b := strings.Join(sortedCopy(gotP), "\n"), strings.Join(sortedCopy(wantP), "\n"); a != b {
			r.fail("%s: tenant %s: p rules in the database:\n%s\nwant:\n%s", when, st.key[:8], a, b)
		}
		if a, b := strings.Join(sortedCopy(gotG), "\n"), strings.Join(sortedCopy(wantG), "\n"); a != b {
			r.fail("%s: tenant %s: g rules in the database:\n%s\nwant:\n%s", when, st.key[:8], a, b)
		}
		r.checkTenant(ctx, when, st, ref, dom)
	}
}

func (r *diffRun) enforce(ref *casbin.Enforcer, sub, dom, obj string) bool {
	ok, err := ref.Enforce(sub, dom, obj)
	if err != nil {
		r.t.Fatalf("reference Enforce(%q, %q, %q): %v", sub, dom, obj, err)
	}
	return ok
}

func (r *diffRun) checkTenant(ctx context.Context, when string, st *shadowTenant, ref *casbin.Enforcer, dom string) {
	t := r.t
	t.Helper()
	svc, key := r.svc, st.hash
	tag := fmt.Sprintf("%s: tenant %s", when, st.key[:8])
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			r.fail("%s: %s: %v", tag, what, err)
		}
	}

	// ListRoles: the shadow's roles in creation order.
	roles, err := svc.ListRoles(ctx, key)
	must(err, "ListRoles")
	var names []string
	for _, x := range roles {
		names = append(names, x.Name)
	}
	if a, b := strings.Join(names, ","), strings.Join(st.roles, ","); a != b {
		r.fail("%s: ListRoles = [%s], want [%s]", tag, a, b)
	}
	r.checks++

	userCan := map[string]map[string]bool{} // user -> perm -> Enforce
	for _, u := range r.probe {
		userCan[u] = map[string]bool{}
		for _, perm := range r.perms {
			want := r.enforce(ref, u, dom, perm)
			userCan[u][perm] = want
			got, err := svc.HasPermission(ctx, key, u, perm)
			must(err, "HasPermission")
			if got != want {
				r.fail("%s: HasPermission(%q, %q) = %v, Enforce = %v", tag, u, perm, got, want)
			}
			r.checks++
		}

		list, err := svc.UserPermissions(ctx, key, u)
		must(err, "UserPermissions")
		got := setOf(list)
		// Casbin's own list of the rules the user holds.
		implicit, err := ref.GetImplicitPermissionsForUser(u, dom)
		if err != nil {
			t.Fatalf("reference GetImplicitPermissionsForUser: %v", err)
		}
		wantObjs := map[string]bool{}
		for _, rule := range implicit {
			wantObjs[rule[2]] = true
		}
		if !sameSet(got, wantObjs) {
			r.fail("%s: UserPermissions(%q) = %v, Casbin's implicit permissions = %v", tag, u, setKeys(got), setKeys(wantObjs))
		}
		r.checks++
		if r.c.wildcards {
			// Every decision is explained by a listed pattern.
			for _, perm := range r.perms {
				matched := false
				for g := range got {
					matched = matched || r.c.match(perm, g)
				}
				if matched != userCan[u][perm] {
					r.fail("%s: UserPermissions(%q) = %v matches %q: %v, Enforce = %v", tag, u, setKeys(got), perm, matched, userCan[u][perm])
				}
				r.checks++
			}
		} else {
			want := map[string]bool{}
			for _, perm := range r.perms {
				want[perm] = userCan[u][perm]
			}
			if !sameSet(got, want) {
				r.fail("%s: set(UserPermissions(%q)) = %v, {p : Enforce} = %v", tag, u, setKeys(got), setKeys(want))
			}
			r.checks++
		}
	}

	roleCan := map[string]map[string]bool{}
	for _, role := range r.roles {
		roleCan[role] = map[string]bool{}
		for _, perm := range r.perms {
			want := r.enforce(ref, "role:"+role, dom, perm)
			roleCan[role][perm] = want
			got, err := svc.RoleHasPermission(ctx, key, role, perm)
			must(err, "RoleHasPermission")
			if got != want {
				r.fail("%s: RoleHasPermission(%q, %q) = %v, Enforce(role:%s) = %v", tag, role, perm, got, role, want)
			}
			if want && !st.hasRole(role) {
				r.fail("%s: Enforce(role:%s, %q) is true for a role that does not exist", tag, role, perm)
			}
			r.checks++
		}
	}

	for _, perm := range r.perms {
		// WhichRolesCan: the roles that Enforce allows, in creation order.
		var wantRoles []string
		for _, role := range st.roles {
			if roleCan[role][perm] {
				wantRoles = append(wantRoles, role)
			}
		}
		gotRoles, err := svc.WhichRolesCan(ctx, key, perm)
		must(err, "WhichRolesCan")
		if a, b := strings.Join(gotRoles, ","), strings.Join(wantRoles, ","); a != b {
			r.fail("%s: WhichRolesCan(%q) = [%s], {r : Enforce(role:r)} = [%s]", tag, perm, a, b)
		}
		r.checks++

		// WhichUsersCan: its users are exactly those Enforce allows, and each
		// entry is a direct membership of a role that holds the permission.
		ms, err := svc.WhichUsersCan(ctx, key, perm)
		must(err, "WhichUsersCan")
		gotUsers := map[string]bool{}
		gotPairs := map[string]bool{}
		for _, m := range ms {
			gotUsers[m.User] = true
			gotPairs[m.User+"|"+m.Role] = true
		}
		wantUsers := map[string]bool{}
		for _, u := range r.probe {
			wantUsers[u] = userCan[u][perm]
		}
		if !sameSet(gotUsers, wantUsers) {
			r.fail("%s: users of WhichUsersCan(%q) = %v, {u : Enforce} = %v", tag, perm, setKeys(gotUsers), setKeys(wantUsers))
		}
		r.checks++
		wantPairs := map[string]bool{}
		for _, role := range wantRoles {
			for u := range st.members[role] {
				wantPairs[u+"|"+role] = true
			}
		}
		if !sameSet(gotPairs, wantPairs) || len(ms) != len(gotPairs) {
			r.fail("%s: WhichUsersCan(%q) = %v, want the direct members of %v: %v", tag, perm, ms, wantRoles, setKeys(wantPairs))
		}
		r.checks++
	}
}

// snapshotAnswers renders every answer of svc for every tenant, to compare
// two Services over the same database.
func (r *diffRun) snapshotAnswers(ctx context.Context, svc *policy.Service) string {
	t := r.t
	t.Helper()
	var b strings.Builder
	for _, st := range r.tenants {
		fmt.Fprintf(&b, "tenant %s\n", st.key[:8])
		roles, err := svc.ListRoles(ctx, st.hash)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range roles {
			ps, err := svc.RolePermissions(ctx, st.hash, x.Name)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := svc.Members(ctx, st.hash, x.Name)
			if err != nil {
				t.Fatal(err)
			}
			pa, err := svc.RoleParents(ctx, st.hash, x.Name)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " role %s perms %v members %v parents %v\n", x.Name, sortedCopy(ps), sortedCopy(ms), sortedCopy(pa))
		}
		for _, u := range r.probe {
			ps, err := svc.UserPermissions(ctx, st.hash, u)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := svc.UserRoles(ctx, st.hash, u)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " user %s perms %v roles %v\n", u, sortedCopy(ps), sortedCopy(rs))
		}
		for _, perm := range r.perms {
			ms, err := svc.WhichUsersCan(ctx, st.hash, perm)
			if err != nil {
				t.Fatal(err)
			}
			var pairs []string
			for _, m := range ms {
				pairs = append(pairs, m.User+"|"+m.Role)
			}
			sort.Strings(pairs)
			fmt.Fprintf(&b, " perm %s users %v\n", perm, pairs)
		}
	}
	return b.String()
}

// TestForeignRules loads rules the Service would never write (another
// writer of the database, or two replicas racing past the depth rule): a
// chain longer than Casbin follows and a cycle. The answers must still be
// Casbin's.
func TestForeignRules(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	key := mustKey(t, keyA)
	st := &seedTenant{key: key}
	const n = 13 // r0 -> r1 -> ... -> r12: 12 role links, 13 with the user's
	for i := range n {
		st.roles = append(st.roles, fmt.Sprintf("r%d", i))
		st.grants = append(st.grants, [2]string{fmt.Sprintf("r%d", i), fmt.Sprintf("p%d", i)})
	}
	st.roles = append(st.roles, "a", "b")
	st.grants = append(st.grants, [2]string{"b", "pb"})
	st.members = [][2]string{{"u0", "r0"}, {"u1", "a"}, {"u2", "r3"}}
	seed(t, db, []*seedTenant{st})
	var links [][]any
	for i := 0; i+1 < n; i++ {
		links = append(links, []any{"g", fmt.Sprintf("role:r%d", i), fmt.Sprintf("role:r%d", i+1), st.dom})
	}
	links = append(links, []any{"g", "role:a", "role:b", st.dom}, []any{"g", "role:b", "role:a", st.dom})
	for _, l := range links {
		if err := db.Gorm().Exec("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES (?, ?, ?, ?)", l...).Error; err != nil {
			t.Fatal(err)
		}
	}
	model := auth.DefaultModel
	svc := newService(t, db, model, policy.Options{})
	r := &diffRun{t: t, db: db, model: model, svc: svc}
	ref := r.reference()
	users := []string{"u0", "u1", "u2", "ghost"}
	var perms []string
	for i := range n {
		perms = append(perms, fmt.Sprintf("p%d", i))
	}
	perms = append(perms, "pb")
	for _, perm := range perms {
		for _, u := range users {
			want := r.enforce(ref, u, st.dom, perm)
			got, err := svc.HasPermission(ctx, key, u, perm)
			if err != nil || got != want {
				t.Errorf("HasPermission(%s, %s) = %v, %v; Enforce = %v", u, perm, got, err, want)
			}
		}
		for _, role := range st.roles {
			want := r.enforce(ref, "role:"+role, st.dom, perm)
			got, err := svc.RoleHasPermission(ctx, key, role, perm)
			if err != nil || got != want {
				t.Errorf("RoleHasPermission(%s, %s) = %v, %v; Enforce = %v", role, perm, got, err, want)
			}
		}
	}
	// The lists agree with the same decisions.
	for _, u := range users {
		got, err := svc.UserPermissions(ctx, key, u)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, perm := range perms {
			want[perm] = r.enforce(ref, u, st.dom, perm)
		}
		if !sameSet(setOf(got), want) {
			t.Errorf("UserPermissions(%s) = %v, {p : Enforce} = %v", u, setKeys(setOf(got)), setKeys(want))
		}
	}
	for _, role := range st.roles {
		got, err := svc.RolePermissions(ctx, key, role)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, perm := range perms {
			want[perm] = r.enforce(ref, "role:"+role, st.dom, perm)
		}
		if !sameSet(setOf(got), want) {
			t.Errorf("RolePermissions(%s) = %v, {p : Enforce} = %v", role, setKeys(setOf(got)), setKeys(want))
		}
	}
	for _, perm := range perms {
		roles, err := svc.WhichRolesCan(ctx, key, perm)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, role := range st.roles {
			want[role] = r.enforce(ref, "role:"+role, st.dom, perm)
		}
		if !sameSet(setOf(roles), want) {
			t.Errorf("WhichRolesCan(%s) = %v, {r : Enforce} = %v", perm, roles, setKeys(want))
		}
		ms, err := svc.WhichUsersCan(ctx, key, perm)
		if err != nil {
			t.Fatal(err)
		}
		gotUsers := map[string]bool{}
		for _, m := range ms {
			gotUsers[m.User] = true
		}
		wantUsers := map[string]bool{}
		for _, u := range users {
			wantUsers[u] = r.enforce(ref, u, st.dom, perm)
		}
		if !sameSet(gotUsers, wantUsers) {
			t.Errorf("WhichUsersCan(%s) = %v, {u : Enforce} = %v", perm, ms, setKeys(wantUsers))
		}
	}
	// The chain is cut where Casbin cuts it.
	if ok, _ := svc.HasPermission(ctx, key, "u0", "p9"); !ok {
		t.Errorf("u0 may not p9 (10 links)")
	}
	if ok, _ := svc.HasPermission(ctx, key, "u0", "p10"); ok {
		t.Errorf("u0 may p10 (11 links), which Casbin denies")
	}
}
