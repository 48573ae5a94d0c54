package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// v2Pair is one pair of a batch check and its answer.
type v2Pair struct {
	Allowed    *bool  `json:"allowed,omitempty"`
	Permission string `json:"permission"`
	User       string `json:"user"`
}

// v2Explained is data of GET /api/v2/check with explain=true.
type v2Explained struct {
	Allowed     bool   `json:"allowed"`
	Permission  string `json:"permission"`
	User        string `json:"user"`
	Explanation *struct {
		Path []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"path"`
		Rule []string `json:"rule"`
	} `json:"explanation"`
}

// v2Check asks GET /api/v2/check and returns data.allowed.
func (c client) v2Check(t testing.TB, user, perm string) bool {
	t.Helper()
	var b struct {
		Data v2Explained `json:"data"`
	}
	decode(t, c.get(t, "/api/v2/check?user="+url.QueryEscape(user)+"&permission="+url.QueryEscape(perm)), &b)
	if b.Data.User != user || b.Data.Permission != perm || b.Data.Explanation != nil {
		t.Fatalf("GET /api/v2/check %s %s: data %+v", user, perm, b.Data)
	}
	return b.Data.Allowed
}

// v2Explain asks GET /api/v2/check with explain=true.
func (c client) v2Explain(t testing.TB, user, perm string) v2Explained {
	t.Helper()
	var b struct {
		Data v2Explained `json:"data"`
	}
	decode(t, c.get(t, "/api/v2/check?explain=true&user="+url.QueryEscape(user)+"&permission="+url.QueryEscape(perm)), &b)
	if b.Data.Explanation == nil {
		t.Fatalf("GET /api/v2/check explain %s %s: no explanation", user, perm)
	}
	return b.Data
}

// pathOf writes an explanation's path as "type:name > …".
func pathOf(e v2Explained) string {
	if e.Explanation.Path == nil {
		return "null"
	}
	var parts []string
	for _, s := range e.Explanation.Path {
		parts = append(parts, s.Type+":"+s.Name)
	}
	return strings.Join(parts, " > ")
}

// postJSON posts a JSON body with the client's key.
func (c client) postJSON(t testing.TB, path string, body any) response {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return c.s.doBody(t, "POST", path, b, c.auth(), "Content-Type: application/json")
}

// batch posts the pairs to POST /api/v2/check and returns the answers.
func (c client) batch(t testing.TB, pairs []v2Pair) []bool {
	t.Helper()
	r := c.postJSON(t, "/api/v2/check", map[string]any{"checks": pairs})
	var b struct {
		Data struct {
			Results []v2Pair `json:"results"`
		} `json:"data"`
	}
	decode(t, r, &b)
	if len(b.Data.Results) != len(pairs) {
		t.Fatalf("POST /api/v2/check: %d results for %d pairs", len(b.Data.Results), len(pairs))
	}
	out := make([]bool, len(pairs))
	for i, res := range b.Data.Results {
		if res.User != pairs[i].User || res.Permission != pairs[i].Permission || res.Allowed == nil {
			t.Fatalf("POST /api/v2/check: result %d is %+v for the pair %+v", i, res, pairs[i])
		}
		out[i] = *res.Allowed
	}
	return out
}

// expectV2Error checks a v2 error: status, reason and the other details.
func expectV2Error(t testing.TB, r response, status int, reason string, details map[string]any) {
	t.Helper()
	var b struct {
		Code    int            `json:"code"`
		Details map[string]any `json:"details"`
		Message string         `json:"message"`
		Success bool           `json:"success"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Errorf("%s %s: %d %s: %v", r.method, r.path, r.status, r.body, err)
		return
	}
	want := map[string]any{"reason": reason}
	for k, v := range details {
		want[k] = v
	}
	if r.status != status || b.Code != status || b.Success || b.Message == "" || !reflect.DeepEqual(b.Details, want) {
		t.Errorf("%s %s:\n got: %d %s\nwant: %d with details %v", r.method, r.path, r.status, r.body, status, want)
	}
}

// tenantGraph is a tenant with a two-level role hierarchy: users in team
// roles (and a few directly in department roles), each team inheriting from
// one department, grants on both levels.
type tenantGraph struct {
	users, perms []string
}

// buildTenant makes a random two-level tenant through the v1 routes.
func buildTenant(t testing.TB, c client, rng *rand.Rand) tenantGraph {
	t.Helper()
	var g tenantGraph
	for i := range 20 {
		g.perms = append(g.perms, fmt.Sprintf("perm-%d", i))
	}
	for i := range 30 {
		g.users = append(g.users, fmt.Sprintf("user%d@example.com", i))
	}
	teams := []string{"team-a", "team-b", "team-c", "team-d", "team-e", "team-f"}
	depts := []string{"dept-x", "dept-y", "dept-z"}
	for _, r := range append(append([]string{}, teams...), depts...) {
		mustResult(t, c.post(t, "/api/role/"+r), true)
		for range 3 {
			c.post(t, "/api/permission/"+r+"/"+g.perms[rng.IntN(len(g.perms))])
		}
	}
	for _, r := range teams {
		mustResult(t, c.post(t, "/api/role/"+r+"/parents/"+depts[rng.IntN(len(depts))]), true)
	}
	for _, u := range g.users[:len(g.users)-3] { // three users hold no role
		for range 1 + rng.IntN(2) {
			r := teams[rng.IntN(len(teams))]
			if rng.IntN(5) == 0 {
				r = depts[rng.IntN(len(depts))]
			}
			c.post(t, "/api/membership/"+url.PathEscape(u)+"/"+r)
		}
	}
	return g
}

// randomPairs draws n pairs of the tenant's users and permissions (and
// some of neither).
func (g tenantGraph) randomPairs(rng *rand.Rand, n int) []v2Pair {
	out := make([]v2Pair, n)
	for i := range out {
		u, p := g.users[rng.IntN(len(g.users))], g.perms[rng.IntN(len(g.perms))]
		if rng.IntN(50) == 0 {
			u = "stranger"
		}
		if rng.IntN(50) == 0 {
			p = "unknown-perm"
		}
		out[i] = v2Pair{User: u, Permission: p}
	}
	return out
}

func TestV2BatchCheckSQLite(t *testing.T) { t.Parallel(); testV2BatchCheck(t, sqliteServer) }

func TestV2BatchCheckPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testV2BatchCheck(t, postgresServer)
}

// A batch of 1 000 random pairs answers as 1 000 single checks of the same
// pairs, in order, and records one CHECK_PERMISSION per pair, each with its
// own user, permission and decision.
func testV2BatchCheck(t *testing.T, newServer factory) {
	s := newServer(t)
	key := newKey(t)
	c := s.client(key)
	rng := rand.New(rand.NewPCG(2026, 12))
	g := buildTenant(t, c, rng)
	pairs := g.randomPairs(rng, 1000)

	got := c.batch(t, pairs)
	batchRecords := c.waitAudit(t, "action=CHECK_PERMISSION", "the batch's 1000 records", func(es []auditEntry) bool { return len(es) >= len(pairs) })
	if len(batchRecords) != len(pairs) {
		t.Fatalf("a batch of %d pairs left %d CHECK_PERMISSION records, want one per pair", len(pairs), len(batchRecords))
	}
	// Records come newest first; the pairs were recorded in order.
	allowed := 0
	for i, p := range pairs {
		e := batchRecords[len(pairs)-1-i]
		if e.User == nil || *e.User != userFP(t, key, p.User) || e.Resource != userFP(t, key, p.User)+":"+p.Permission || e.Details["allowed"] != got[i] || !e.Success {
			t.Fatalf("record of pair %d (%s, %s, allowed %v): %+v", i, p.User, p.Permission, got[i], e)
		}
		if got[i] {
			allowed++
		}
	}
	if allowed < 50 || allowed > len(pairs)-50 {
		t.Fatalf("%d of %d pairs allowed: the tenant does not exercise both answers", allowed, len(pairs))
	}
	for i, p := range pairs {
		if single := c.v2Check(t, p.User, p.Permission); single != got[i] {
			t.Errorf("pair %d (%s, %s): batch %v, single check %v", i, p.User, p.Permission, got[i], single)
		}
	}
	c.waitAudit(t, "action=CHECK_PERMISSION", "the single checks' records", func(es []auditEntry) bool { return len(es) >= 2*len(pairs) })
}

// Explanations through a two-level hierarchy, a direct grant and a denial;
// each is a recorded check.
func TestV2ExplainSQLite(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	key := newKey(t)
	c := s.client(key)
	for _, p := range []string{"/api/role/editor", "/api/role/staff", "/api/role/viewer",
		"/api/permission/staff/read", "/api/permission/editor/write", "/api/permission/viewer/read",
		"/api/role/editor/parents/staff", "/api/membership/alice/editor", "/api/membership/bob/staff"} {
		mustResult(t, c.post(t, p), true)
	}
	dom := exportDomain(t, c)
	for _, tc := range []struct {
		user, perm, path string
		rule             []string
	}{
		{"alice", "read", "user:alice > role:editor > role:staff > permission:read", []string{"role:staff", dom, "read"}},
		{"alice", "write", "user:alice > role:editor > permission:write", []string{"role:editor", dom, "write"}},
		{"bob", "read", "user:bob > role:staff > permission:read", []string{"role:staff", dom, "read"}},
		{"bob", "write", "null", nil},
		{"nobody", "read", "null", nil},
	} {
		e := c.v2Explain(t, tc.user, tc.perm)
		if e.Allowed != (tc.rule != nil) || pathOf(e) != tc.path || !reflect.DeepEqual(e.Explanation.Rule, tc.rule) {
			t.Errorf("explain %s %s: allowed %v, path %s, rule %v; want path %s, rule %v",
				tc.user, tc.perm, e.Allowed, pathOf(e), e.Explanation.Rule, tc.path, tc.rule)
		}
	}
	// The exact shape of a denial.
	expect(t, c.get(t, "/api/v2/check?user=bob&permission=write&explain=true"), 200,
		env(`{"allowed":false,"explanation":{"path":null,"rule":null},"permission":"write","revision":9,"user":"bob"}`,
			"Permission check for user 'bob' and permission 'write' completed"))
	es := c.waitAudit(t, "action=CHECK_PERMISSION", "six records", func(es []auditEntry) bool { return len(es) >= 6 })
	if len(es) != 6 || *es[0].User != userFP(t, key, "bob") || es[0].Resource != userFP(t, key, "bob")+":write" || es[0].Details["allowed"] != false {
		t.Errorf("explained checks recorded as\n%s\nwant six CHECK_PERMISSION, the last bob/write denied", dumpEntries(es))
	}
}

// exportDomain is the tenant's Casbin domain, from its export.
func exportDomain(t testing.TB, c client) string {
	t.Helper()
	var b struct {
		Data struct {
			Policy string `json:"policy"`
		} `json:"data"`
	}
	decode(t, c.get(t, "/api/v2/policy/export"), &b)
	for _, line := range strings.Split(b.Data.Policy, "\n") {
		if f := strings.Split(line, ", "); len(f) == 4 && f[0] == "p" {
			return f[2]
		}
	}
	t.Fatalf("no p rule in the export:\n%s", b.Data.Policy)
	return ""
}

// Under a keyMatch2 model the explanation ends at the pattern as granted
// and the rule is the pattern rule Casbin matched.
func TestV2ExplainPatternModel(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t, "AUTH_MODEL_PATH="+modelPath(t, "keymatch2.conf"))
	c := s.client(newKey(t))
	for _, p := range []string{"/api/role/editor", "/api/role/staff",
		"/api/permission/staff/%2Freports%2F%2A", "/api/permission/editor/%2Fdrafts%2F:id",
		"/api/role/editor/parents/staff", "/api/membership/alice/editor"} {
		mustResult(t, c.post(t, p), true)
	}
	dom := exportDomain(t, c)
	for _, tc := range []struct {
		perm, path string
		rule       []string
	}{
		{"/reports/q3", "user:alice > role:editor > role:staff > permission:/reports/*", []string{"role:staff", dom, "/reports/*"}},
		{"/drafts/7", "user:alice > role:editor > permission:/drafts/:id", []string{"role:editor", dom, "/drafts/:id"}},
		{"/sales/q3", "null", nil},
	} {
		e := c.v2Explain(t, "alice", tc.perm)
		if e.Allowed != (tc.rule != nil) || pathOf(e) != tc.path || !reflect.DeepEqual(e.Explanation.Rule, tc.rule) {
			t.Errorf("explain alice %s: allowed %v, path %s, rule %v; want path %s, rule %v",
				tc.perm, e.Allowed, pathOf(e), e.Explanation.Rule, tc.path, tc.rule)
		}
		if got := c.v2Check(t, "alice", tc.perm); got != (tc.rule != nil) {
			t.Errorf("check alice %s = %v, want %v", tc.perm, got, tc.rule != nil)
		}
	}
}

func TestV2PolicyTransferSQLite(t *testing.T) { t.Parallel(); testV2PolicyTransfer(t, sqliteServer) }

func TestV2PolicyTransferPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testV2PolicyTransfer(t, postgresServer)
}

// A tenant exported over HTTP and imported into an empty tenant decides
// every user × permission pair as the original; a dry run changes nothing;
// a bad file is refused with every bad line; a check token cannot import.
func testV2PolicyTransfer(t *testing.T, newServer factory) {
	s := newServer(t)
	src, dst := s.client(newKey(t)), s.client(newKey(t))
	g := buildTenant(t, src, rand.New(rand.NewPCG(7, 2026)))
	var exp struct {
		Data struct {
			Format  string `json:"format"`
			Policy  string `json:"policy"`
			Roles   int    `json:"roles"`
			Rules   int    `json:"rules"`
			Version int64  `json:"version"`
		} `json:"data"`
	}
	decode(t, src.get(t, "/api/v2/policy/export"), &exp)
	if exp.Data.Format != "casbin-csv" || exp.Data.Roles != 9 || exp.Data.Rules == 0 || exp.Data.Version == 0 {
		t.Fatalf("export: %+v", exp.Data)
	}
	body := map[string]string{"policy": exp.Data.Policy}

	// A check token may check but not import.
	tok := s.issueToken(t, dst.key, "check")
	r := s.doBody(t, "POST", "/api/v2/policy/import", mustJSON(t, body), "Authorization: Bearer "+tok, "Content-Type: application/json")
	expectV2Error(t, r, 403, "forbidden", nil)

	// A dry run reports and changes nothing.
	var dry struct {
		Data map[string]any `json:"data"`
	}
	decode(t, dst.postJSON(t, "/api/v2/policy/import?dry_run=true", body), &dry)
	if dry.Data["dry_run"] != true || dry.Data["mode"] != "replace" || dry.Data["roles_created"] != float64(9) ||
		dry.Data["rules_added"] != float64(exp.Data.Rules) || dry.Data["version"] != float64(0) {
		t.Errorf("dry run: %v", dry.Data)
	}
	var empty struct {
		Data struct {
			Roles, Rules int
			Version      int64
		} `json:"data"`
	}
	decode(t, dst.get(t, "/api/v2/policy/export"), &empty)
	if empty.Data.Roles != 0 || empty.Data.Rules != 0 || empty.Data.Version != 0 {
		t.Errorf("after a dry run the tenant holds %+v, want nothing", empty.Data)
	}
	if n := len(dst.auditAll(t, "action=IMPORT_POLICY")); n != 0 {
		t.Errorf("a dry run recorded %d IMPORT_POLICY records", n)
	}

	// The import.
	var imp struct {
		Data map[string]any `json:"data"`
	}
	decode(t, dst.postJSON(t, "/api/v2/policy/import", body), &imp)
	if imp.Data["dry_run"] != false || imp.Data["roles_created"] != float64(9) || imp.Data["rules_added"] != float64(exp.Data.Rules) ||
		imp.Data["rules_removed"] != float64(0) || imp.Data["version"] == float64(0) {
		t.Errorf("import: %v", imp.Data)
	}
	diff, allowed := 0, 0
	users := append(append([]string{}, g.users...), "stranger")
	for _, u := range users {
		for _, p := range g.perms {
			path := "/api/has_permission/" + url.PathEscape(u) + "/" + p
			a, b := hasPermission(t, src.get(t, path)), hasPermission(t, dst.get(t, path))
			if a != b {
				diff++
				t.Errorf("has_permission %s %s: %v in the original, %v in the imported tenant", u, p, a, b)
			}
			if a {
				allowed++
			}
		}
	}
	if allowed == 0 || diff > 0 {
		t.Errorf("%d pairs allowed, %d decided differently", allowed, diff)
	}
	dst.waitAudit(t, "action=IMPORT_POLICY", "the import's record", func(es []auditEntry) bool { return len(es) == 1 })

	// A file that does not validate: every bad line, nothing changed.
	bad := "# role: ok\np, role:ok, 9, read\np, alice, 9, read\ng, bob\nx, y, z\np, role:ok, 9, \"unterminated"
	r = dst.postJSON(t, "/api/v2/policy/import", map[string]string{"policy": bad})
	expectV2Error(t, r, 400, "invalid_policy", map[string]any{"errors": []any{
		`line 6: column 29: extraneous or missing " in quoted-field`}})
	bad = "p, role:ok, 9, read\np, alice, 9, read\ng, bob\nx, y, z"
	r = dst.postJSON(t, "/api/v2/policy/import?dry_run=true", map[string]string{"policy": bad})
	expectV2Error(t, r, 400, "invalid_policy", map[string]any{"errors": []any{
		`line 2: subject "alice" must be a role, written role:NAME`,
		"line 3: a g rule has 3 fields (g, USER or role:ROLE, role:ROLE, DOMAIN), not 1",
		`line 4: rule type "x": only p (grants) and g (memberships and role links) rules can be imported`}})
	var after struct {
		Data struct{ Roles, Rules int } `json:"data"`
	}
	decode(t, dst.get(t, "/api/v2/policy/export"), &after)
	if after.Data.Roles != 9 || after.Data.Rules != exp.Data.Rules {
		t.Errorf("after refused imports the tenant holds %+v, want the imported policy", after.Data)
	}
	expectV2Error(t, dst.postJSON(t, "/api/v2/policy/import?mode=all", body), 400, "invalid_parameter", map[string]any{"parameter": "mode"})
	expectV2Error(t, dst.postJSON(t, "/api/v2/policy/import", map[string]int{"file": 1}), 400, "invalid_body", map[string]any{"field": "policy"})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The refusals of the checks and the body limits: 1 MiB for a batch check
// and an import, the usual 64 KiB elsewhere.
func TestV2CheckRefusals(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	c := s.client(newKey(t))
	mustResult(t, c.post(t, "/api/role/staff"), true)
	expectV2Error(t, c.get(t, "/api/v2/check?user=alice"), 400, "invalid_parameter", map[string]any{"parameter": "permission"})
	expectV2Error(t, c.get(t, "/api/v2/check?permission=read"), 400, "invalid_parameter", map[string]any{"parameter": "user"})
	expectV2Error(t, c.get(t, "/api/v2/check?user=alice&permission=read&explain=maybe"), 400, "invalid_parameter", map[string]any{"parameter": "explain"})
	expectV2Error(t, c.get(t, "/api/v2/check?user=a%20b&permission=read"), 400, "invalid_name", map[string]any{"kind": "user"})
	expectV2Error(t, c.get(t, "/api/v2/check?user=alice&permission=a%2Fb&explain=true"), 400, "invalid_name", map[string]any{"kind": "permission"})

	pairs := func(n int, perm string) []v2Pair {
		out := make([]v2Pair, n)
		for i := range out {
			out[i] = v2Pair{User: fmt.Sprintf("user%d", i), Permission: perm}
		}
		return out
	}
	expectV2Error(t, c.postJSON(t, "/api/v2/check", map[string]any{"checks": pairs(1001, "read")}), 400, "batch_too_large", map[string]any{"max": float64(1000)})
	expectV2Error(t, c.postJSON(t, "/api/v2/check", map[string]any{"checks": []v2Pair{}}), 400, "invalid_body", map[string]any{"field": "checks"})
	expectV2Error(t, c.postJSON(t, "/api/v2/check", []byte(`{}`)), 400, "invalid_body", map[string]any{"field": "checks"})
	expectV2Error(t, c.postJSON(t, "/api/v2/check", []byte(`{"checks":[{"user":"a"`)), 400, "invalid_body", nil)
	expectV2Error(t, c.postJSON(t, "/api/v2/check", []byte(`{"checks":[{"user":"a","permission":"b"},{"user":"c"}]}`)), 400, "invalid_body",
		map[string]any{"field": "checks[1].permission", "index": float64(1)})
	expectV2Error(t, s.doBody(t, "POST", "/api/v2/check", nil, c.auth()), 400, "invalid_body", nil)
	// One invalid name refuses the whole batch, naming its pair; nothing is
	// answered: no decision is recorded, only the refusal, as v1 records
	// a refused check.
	bad := pairs(5, "read")
	bad[3].User = "not valid"
	expectV2Error(t, c.postJSON(t, "/api/v2/check", map[string]any{"checks": bad}), 400, "invalid_name", map[string]any{"kind": "user", "index": float64(3)})
	const refused = 12 // the refused GET and POST /api/v2/check above
	recs := c.waitAudit(t, "action=CHECK_PERMISSION", "the refused checks' records", func(es []auditEntry) bool { return len(es) >= refused })
	if len(recs) != refused {
		t.Errorf("%d CHECK_PERMISSION records for %d refused checks", len(recs), refused)
	}
	for _, e := range recs {
		if e.Success || e.Details["status_code"] != float64(400) || e.Details["reason"] != "validation_error" || e.Details["allowed"] != nil {
			t.Errorf("a refused check recorded as %+v, want a failure with status 400 and no decision", e)
		}
	}

	// Body limits: a 1000-pair batch with long names (≈ 300 KiB) passes the
	// batch route's 1 MiB limit, which is not the default's.
	long := pairs(1000, strings.Repeat("p", 128))
	for i := range long {
		long[i].User = fmt.Sprintf("%064d", i)
	}
	big := mustJSON(t, map[string]any{"checks": long})
	if len(big) < 200<<10 || len(big) > 1<<20 {
		t.Fatalf("batch body of %d bytes, want between 200 KiB and 1 MiB", len(big))
	}
	if got := c.batch(t, long); len(got) != 1000 {
		t.Fatalf("%d answers", len(got))
	}
	// Past 1 MiB: 413, declared or not (a chunked body is cut as it is read).
	huge := append(append([]byte(`{"checks":[`), []byte(strings.Repeat(`{"user":"u","permission":"p"},`, (1100<<10)/30))...), []byte(`{"user":"u","permission":"p"}]}`)...)
	expectV2Error(t, c.postJSON(t, "/api/v2/check", huge), 413, "body_too_large", nil)
	chunked, err := s.sendChunked("POST", "/api/v2/check", huge, c.auth(), "Content-Type: application/json")
	if err != nil {
		t.Fatal(err)
	}
	expectV2Error(t, chunked, 413, "body_too_large", nil)
	expectV2Error(t, c.postJSON(t, "/api/v2/policy/import", map[string]string{"policy": strings.Repeat("# comment line\n", (1100<<10)/15)}), 413, "body_too_large", nil)
	// An import body between 64 KiB and 1 MiB passes the limit.
	var imp struct {
		Data map[string]any `json:"data"`
	}
	decode(t, c.postJSON(t, "/api/v2/policy/import?dry_run=true&mode=merge", map[string]string{"policy": strings.Repeat("# comment line\n", (200<<10)/15)}), &imp)
	// Every other route keeps 64 KiB: the same 300 KiB body is refused by
	// another POST route.
	r := s.doBody(t, "POST", "/api/role/editor", big, c.auth(), "Content-Type: application/json")
	if r.status != 413 {
		t.Errorf("POST /api/role/editor with a 300 KiB body: %d %s, want 413", r.status, r.body)
	}
}

// sendChunked sends body without declaring its length (chunked), so that
// only reading it can find it too large.
func (s *server) sendChunked(method, path string, body []byte, headers ...string) (response, error) {
	req, err := http.NewRequest(method, s.base+path, io.MultiReader(bytes.NewReader(body)))
	if err != nil {
		return response{}, err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: got}, err
}
