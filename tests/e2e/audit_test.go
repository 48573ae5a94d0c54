package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The audit trail seen from outside: every route's record, GET /api/audit,
// the log stream, unauthenticated requests and the audit key at start-up.

func TestAuditRoutesSQLite(t *testing.T) {
	t.Parallel()
	testAuditRoutes(t, sqliteServer)
}

func TestAuditRoutesPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditRoutes(t, postgresServer)
}

// routeCase is one request and the record it must leave.
type routeCase struct {
	method, path string // {u} stands for the user, {bad} for an invalid user
	status       int
	action       string
	resource     string // {u} and {bad} stand for their fingerprints
	success      bool
	details      map[string]any // exact details of the record
}

// auditUser is the user of the route tests: distinctive, so that finding it
// anywhere in the trail or the log is a leak.
const auditUser = "quintessa.vrolyk@example.org"

// badUser is an invalid user name (a space and "!").
const badUser = "zorblax vrolyk!"

func routeCases() []routeCase {
	res := func(v bool) map[string]any { return map[string]any{"result": v} }
	ok := map[string]any{"status_code": 200.0}
	allowed := func(v bool) map[string]any { return map[string]any{"status_code": 200.0, "allowed": v} }
	invalid := map[string]any{"status_code": 400.0, "reason": "validation_error"}
	return []routeCase{
		// Changes, recorded in their own transaction.
		{"POST", "/api/role/admin", 200, "CREATE_ROLE", "admin", true, res(true)},
		{"POST", "/api/role/admin", 200, "CREATE_ROLE", "admin", true, res(true)}, // exists already: still true
		{"POST", "/api/v1/role/base", 200, "CREATE_ROLE", "base", true, res(true)},
		{"POST", "/api/role/bad.name", 400, "CREATE_ROLE", "bad.name", false, invalid},
		{"POST", "/api/permission/admin/read", 200, "ADD_PERMISSION", "admin:read", true, res(true)},
		{"POST", "/api/permission/ghost/read", 200, "ADD_PERMISSION", "ghost:read", false, res(false)},
		{"POST", "/api/permission/admin/bad%20perm", 400, "ADD_PERMISSION", "admin:bad perm", false, invalid},
		{"POST", "/api/membership/{u}/admin", 200, "ADD_MEMBERSHIP", "{u}:admin", true, res(true)},
		{"POST", "/api/membership/{u}/ghost", 200, "ADD_MEMBERSHIP", "{u}:ghost", false, res(false)},
		{"POST", "/api/membership/{bad}/admin", 400, "ADD_MEMBERSHIP", "{bad}:admin", false, invalid},
		{"POST", "/api/role/admin/parents/base", 200, "ADD_ROLE_PARENT", "admin:base", true, res(true)},
		{"POST", "/api/role/admin/parents/ghost", 200, "ADD_ROLE_PARENT", "admin:ghost", false, res(false)},
		{"POST", "/api/role/base/parents/admin", 400, "ADD_ROLE_PARENT", "base:admin", false, invalid}, // a cycle
		// Checks and listings, recorded through the queue.
		{"GET", "/api/membership/{u}/admin", 200, "CHECK_MEMBERSHIP", "{u}:admin", true, allowed(true)},
		{"GET", "/api/membership/{u}/base", 200, "CHECK_MEMBERSHIP", "{u}:base", true, allowed(false)},
		{"GET", "/api/membership/{bad}/base", 400, "CHECK_MEMBERSHIP", "{bad}:base", false, invalid},
		{"GET", "/api/permission/admin/read", 200, "CHECK_PERMISSION", "admin:read", true, allowed(true)},
		{"GET", "/api/permission/base/read", 200, "CHECK_PERMISSION", "base:read", true, allowed(false)},
		{"GET", "/api/has_permission/{u}/read", 200, "CHECK_PERMISSION", "{u}:read", true, allowed(true)},
		{"GET", "/api/has_permission/{u}/write", 200, "CHECK_PERMISSION", "{u}:write", true, allowed(false)},
		{"GET", "/api/has_permission/{u}/bad%20perm", 400, "CHECK_PERMISSION", "{u}:bad perm", false, invalid},
		{"GET", "/api/user_permissions/{u}", 200, "USER_PERMISSIONS", "{u}", true, ok},
		{"GET", "/api/role_permissions/admin", 200, "LIST_PERMISSIONS", "admin", true, ok},
		{"GET", "/api/user_roles/{u}", 200, "LIST_MEMBERSHIPS", "{u}", true, ok},
		{"GET", "/api/members/admin", 200, "LIST_MEMBERSHIPS", "admin", true, ok},
		{"GET", "/api/roles", 200, "LIST_ROLES", "all", true, ok},
		{"HEAD", "/api/roles", 200, "LIST_ROLES", "all", true, ok},
		{"GET", "/api/v1/roles", 200, "LIST_ROLES", "all", true, ok},
		{"GET", "/api/which_roles_can/read", 200, "LIST_ROLES", "read", true, ok},
		{"GET", "/api/which_users_can/read", 200, "LIST_MEMBERSHIPS", "read", true, ok},
		{"GET", "/api/role/admin/parents", 200, "LIST_ROLES", "parents:admin", true, ok},
		{"GET", "/api/workflow/users/read", 200, "LIST_MEMBERSHIPS", "workflow:read", true, ok},
		{"GET", "/api/workflow/user/{u}/can_run/read", 200, "CHECK_PERMISSION", "{u}:workflow:read", true, allowed(true)},
		{"GET", "/api/workflow/user/{u}/can_run/write", 200, "CHECK_PERMISSION", "{u}:workflow:write", true, allowed(false)},
		{"GET", "/api/audit?limit=1", 200, "GET_AUDIT", "audit", true, ok},
		{"GET", "/api/audit?limit=0", 400, "GET_AUDIT", "audit", false, invalid},
		// Removals.
		{"DELETE", "/api/role/admin/parents/base", 200, "REMOVE_ROLE_PARENT", "admin:base", true, res(true)},
		{"DELETE", "/api/membership/{u}/admin", 200, "REMOVE_MEMBERSHIP", "{u}:admin", true, res(true)},
		{"DELETE", "/api/membership/{bad}/admin", 400, "REMOVE_MEMBERSHIP", "{bad}:admin", false, invalid},
		{"DELETE", "/api/permission/admin/read", 200, "REMOVE_PERMISSION", "admin:read", true, res(true)},
		{"DELETE", "/api/permission/admin/bad%20perm", 400, "REMOVE_PERMISSION", "admin:bad perm", false, invalid},
		{"DELETE", "/api/role/admin", 200, "DELETE_ROLE", "admin", true, res(true)},
		{"DELETE", "/api/role/admin", 200, "DELETE_ROLE", "admin", false, res(false)}, // gone already
		{"DELETE", "/api/role/bad.name", 400, "DELETE_ROLE", "bad.name", false, invalid},
		{"DELETE", "/api/role/base/parents/bad.name", 400, "REMOVE_ROLE_PARENT", "base:bad.name", false, invalid},
	}
}

// testAuditRoutes sends one request per case and checks the record each
// leaves: action, resource (users only as fingerprints), success, details
// and the request facts. A change's record is readable as soon as the
// change is answered; the others arrive through the queue. The log stream
// then holds one line per stored record.
func testAuditRoutes(t *testing.T, newServer factory) {
	s := newServer(t)
	key := newKey(t)
	c := s.client(key)
	uFP, badFP := userFP(t, key, auditUser), userFP(t, key, badUser)
	for _, fp := range []string{uFP, badFP} {
		if !fingerprintRE.MatchString(fp) {
			t.Fatalf("fingerprint %q", fp)
		}
	}
	expand := func(s string, fps bool) string {
		u, bad := auditUser, url.PathEscape(badUser)
		if fps {
			u, bad = uFP, badFP
		}
		return strings.NewReplacer("{u}", u, "{bad}", bad).Replace(s)
	}
	const ua = "audit-e2e/1.0"
	cases := routeCases()
	start := time.Now().UTC().Add(-time.Second)
	for i, tc := range cases {
		path := expand(tc.path, false)
		reqID := fmt.Sprintf("route-%02d", i)
		r := c.call(t, tc.method, path, "X-Request-ID: "+reqID, "User-Agent: "+ua)
		if r.status != tc.status {
			t.Fatalf("%s %s: status %d, want %d: %s", tc.method, path, r.status, tc.status, r.body)
		}
		if tc.status == 200 && tc.method != "GET" && tc.method != "HEAD" {
			// A committed change's record is there when the change is
			// answered: no waiting.
			p, _ := c.auditPage(t, "action="+tc.action+"&limit=1")
			if len(p.Data.Entries) != 1 || p.Data.Entries[0].RequestID != reqID {
				t.Errorf("%s %s: newest %s record right after the answer = %+v, want request %s", tc.method, path, tc.action, p.Data.Entries, reqID)
			}
		}
	}
	end := time.Now().UTC().Add(time.Second)
	all := c.waitAudit(t, "", "a record of every route", func(es []auditEntry) bool {
		got := byRequestID(es)
		for i := range cases {
			if len(got[fmt.Sprintf("route-%02d", i)]) == 0 {
				return false
			}
		}
		return true
	})
	got := byRequestID(all)
	for i, tc := range cases {
		reqID := fmt.Sprintf("route-%02d", i)
		name := fmt.Sprintf("%s %s", tc.method, expand(tc.path, false))
		es := got[reqID]
		if len(es) != 1 {
			t.Errorf("%s: %d records, want 1:\n%s", name, len(es), dumpEntries(es))
			continue
		}
		e := es[0]
		wantRes := expand(tc.resource, true)
		wantUser := ""
		if strings.Contains(tc.path, "{u}") {
			wantUser = uFP
		} else if strings.Contains(tc.path, "{bad}") {
			wantUser = badFP
		}
		gotUser := ""
		if e.User != nil {
			gotUser = *e.User
		}
		if e.Action != tc.action || e.Resource != wantRes || e.Success != tc.success || gotUser != wantUser {
			t.Errorf("%s: record %s %q success=%v user=%q; want %s %q success=%v user=%q",
				name, e.Action, e.Resource, e.Success, gotUser, tc.action, wantRes, tc.success, wantUser)
		}
		gotDetails, _ := json.Marshal(e.Details)
		wantDetails, _ := json.Marshal(tc.details)
		if string(gotDetails) != string(wantDetails) {
			t.Errorf("%s: details %s, want %s", name, gotDetails, wantDetails)
		}
		if e.IPAddress != "127.0.0.1" || e.UserAgent != ua {
			t.Errorf("%s: ip %q, user agent %q; want 127.0.0.1 and %q", name, e.IPAddress, e.UserAgent, ua)
		}
		ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
		if !recordTimeRE.MatchString(e.Timestamp) || err != nil || ts.Before(start) || ts.After(end) {
			t.Errorf("%s: timestamp %q, want UTC with microseconds between %v and %v", name, e.Timestamp, start, end)
		}
	}
	// Users appear as fingerprints only, everywhere in the trail.
	for _, e := range all {
		if e.User != nil && !fingerprintRE.MatchString(*e.User) {
			t.Errorf("seq %d: user %q is not a fingerprint", e.Seq, *e.User)
		}
	}
	p, raw := c.auditPage(t, "limit=500")
	if len(p.Data.Entries) < len(cases) {
		t.Fatalf("one page of 500: %d entries", len(p.Data.Entries))
	}
	leaks := []string{auditUser, badUser, url.PathEscape(badUser), "zorblax", key, strings.ToUpper(key), keyHash(t, key), testAuditKey}
	for _, l := range leaks {
		if strings.Contains(string(raw.body), l) {
			t.Errorf("GET /api/audit shows %q", l)
		}
	}

	// The log stream: one "audit" line per stored record, the same
	// records, no secret.
	s.stop(t)
	db := s.openDB(t)
	rows := auditRows(t, db, "")
	type key2 struct {
		tenant string
		seq    int64
	}
	stored := map[key2]dbRecord{}
	for _, r := range rows {
		stored[key2{r.Tenant, r.Seq}] = r
	}
	lines := 0
	seen := map[key2]bool{}
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var l struct {
			Msg, Log, Tenant, Action, Resource string
			Seq                                int64
			Success                            bool
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "audit" {
			continue
		}
		lines++
		for _, leak := range leaks {
			if strings.Contains(line, leak) {
				t.Errorf("audit log line shows %q: %s", leak, line)
			}
		}
		if l.Log != "audit" {
			t.Errorf("audit line without log=audit: %s", line)
		}
		k := key2{l.Tenant, l.Seq}
		r, ok := stored[k]
		if !ok || seen[k] || r.Action != l.Action || r.Resource != l.Resource || r.Success != l.Success {
			t.Errorf("audit line %s: stored %+v (found %v, seen before %v)", line, r, ok, seen[k])
		}
		seen[k] = true
	}
	if lines != len(rows) {
		t.Errorf("%d audit log lines for %d stored records", lines, len(rows))
	}
	for _, l := range leaks {
		if strings.Contains(s.stderr.String(), l) {
			t.Errorf("server log shows %q", l)
		}
	}
	mustVerify(t, s.env)
	mustVerify(t, s.env, "--tenant", key)
}

func TestAuditQuerySQLite(t *testing.T) {
	t.Parallel()
	testAuditQuery(t, sqliteServer)
}

func TestAuditQueryPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	testAuditQuery(t, postgresServer)
}

// testAuditQuery: GET /api/audit pages with limit and cursor through every
// record exactly once, filters by action, time and user, refuses bad
// parameters, shows a tenant its own records only, and records itself.
func testAuditQuery(t *testing.T, newServer factory) {
	s := newServer(t)
	keyA, keyB := newKey(t), newKey(t)
	a, b := s.client(keyA), s.client(keyB)
	const alice, bob = "alice.tessaract", "bob.quillfeather"
	const roles = 60
	for i := 0; i < roles; i++ {
		mustResult(t, a.post(t, fmt.Sprintf("/api/role/r%02d", i)), true)
	}
	for i := 0; i < 5; i++ {
		mustResult(t, a.post(t, fmt.Sprintf("/api/membership/%s/r%02d", alice, i)), true)
		mustResult(t, b.post(t, fmt.Sprintf("/api/role/b%02d", i)), true)
	}
	mustResult(t, a.post(t, "/api/membership/"+bob+"/r00"), true)
	for i := 0; i < 4; i++ {
		a.get(t, "/api/has_permission/"+alice+"/p")
	}
	aliceFP, bobFP := userFP(t, keyA, alice), userFP(t, keyA, bob)
	// Wait for the four checks (queued).
	all := a.waitAudit(t, "action=CHECK_PERMISSION", "4 checks", func(es []auditEntry) bool { return len(es) == 4 })
	_ = all

	t.Run("pagination", func(t *testing.T) {
		full := a.auditAll(t, "")
		top := full[0].Seq
		for _, limit := range []int{1, 7, 50, 500} {
			var walked []auditEntry
			cursor := ""
			pages := 0
			for {
				q := fmt.Sprintf("limit=%d", limit)
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				p, _ := a.auditPage(t, q)
				pages++
				if p.Data.Limit != limit {
					t.Errorf("limit=%d: data.limit = %d", limit, p.Data.Limit)
				}
				if len(p.Data.Entries) > limit {
					t.Fatalf("limit=%d: page of %d", limit, len(p.Data.Entries))
				}
				walked = append(walked, p.Data.Entries...)
				if p.Data.NextCursor == nil {
					break
				}
				if len(p.Data.Entries) != limit {
					t.Errorf("limit=%d: a short page (%d) with a next cursor", limit, len(p.Data.Entries))
				}
				cursor = *p.Data.NextCursor
				if pages > 1000 {
					t.Fatal("the cursor does not end")
				}
			}
			// The walk started at the newest record then; every record up
			// to it exactly once, newest first, none skipped.
			var want []int64
			for _, e := range a.auditAll(t, "") {
				if e.Seq <= walked[0].Seq {
					want = append(want, e.Seq)
				}
			}
			if walked[0].Seq < top {
				t.Errorf("limit=%d: walk starts at seq %d, older than %d", limit, walked[0].Seq, top)
			}
			if len(walked) != len(want) {
				t.Fatalf("limit=%d: walked %d records, want %d", limit, len(walked), len(want))
			}
			for i := range walked {
				if walked[i].Seq != want[i] {
					t.Fatalf("limit=%d: record %d has seq %d, want %d", limit, i, walked[i].Seq, want[i])
				}
			}
			if wantSeqs := int(want[0]); len(want) != wantSeqs {
				t.Errorf("limit=%d: %d records for seqs up to %d: gaps in the trail", limit, len(want), want[0])
			}
		}
		p, _ := a.auditPage(t, "")
		if p.Data.Limit != 50 || len(p.Data.Entries) != 50 || p.Data.NextCursor == nil {
			t.Errorf("default page: limit %d, %d entries, next %v; want 50, 50 and a cursor", p.Data.Limit, len(p.Data.Entries), p.Data.NextCursor)
		}
	})

	t.Run("filters", func(t *testing.T) {
		creates := a.auditAll(t, "action=CREATE_ROLE")
		if len(creates) != roles {
			t.Fatalf("action=CREATE_ROLE: %d entries, want %d", len(creates), roles)
		}
		for _, e := range creates {
			if e.Action != "CREATE_ROLE" {
				t.Errorf("action filter let %s through", e.Action)
			}
		}
		if got := a.auditAll(t, "action=create_role"); len(got) != roles {
			t.Errorf("action=create_role (lower case): %d entries, want %d", len(got), roles)
		}
		aliceEntries := a.auditAll(t, "user="+alice)
		if len(aliceEntries) != 9 { // 5 memberships, 4 checks
			t.Errorf("user=%s: %d entries, want 9:\n%s", alice, len(aliceEntries), dumpEntries(aliceEntries))
		}
		for _, e := range aliceEntries {
			if e.User == nil || *e.User != aliceFP {
				t.Errorf("user filter let %+v through", e)
			}
		}
		bobEntries := a.auditAll(t, "user="+bob+"&action=ADD_MEMBERSHIP")
		if len(bobEntries) != 1 || *bobEntries[0].User != bobFP {
			t.Errorf("user=%s&action=ADD_MEMBERSHIP: %s", bob, dumpEntries(bobEntries))
		}
		if got := a.auditAll(t, "user="+bob+"&action=CHECK_PERMISSION"); len(got) != 0 {
			t.Errorf("bob's checks: %s, want none", dumpEntries(got))
		}
		if got := a.auditAll(t, "user=nobody.at.all"); len(got) != 0 {
			t.Errorf("user=nobody.at.all: %s", dumpEntries(got))
		}
		// Time windows, inclusive at both ends, in UTC or another zone.
		asc := make([]auditEntry, len(creates))
		for i := range creates {
			asc[len(creates)-1-i] = creates[i]
		}
		since, until := asc[10].Timestamp, asc[19].Timestamp
		sinceT, _ := time.Parse(time.RFC3339Nano, since)
		untilT, _ := time.Parse(time.RFC3339Nano, until)
		count := func(pred func(time.Time) bool) int {
			n := 0
			for _, e := range creates {
				ts, _ := time.Parse(time.RFC3339Nano, e.Timestamp)
				if pred(ts) {
					n++
				}
			}
			return n
		}
		cases := []struct {
			name, query string
			want        int
		}{
			{"since", "since=" + url.QueryEscape(since), count(func(ts time.Time) bool { return !ts.Before(sinceT) })},
			{"until", "until=" + url.QueryEscape(until), count(func(ts time.Time) bool { return !ts.After(untilT) })},
			{"since and until", "since=" + url.QueryEscape(since) + "&until=" + url.QueryEscape(until),
				count(func(ts time.Time) bool { return !ts.Before(sinceT) && !ts.After(untilT) })},
			{"since with an offset", "since=" + url.QueryEscape(sinceT.In(time.FixedZone("", -7*3600)).Format(time.RFC3339Nano)),
				count(func(ts time.Time) bool { return !ts.Before(sinceT) })},
			{"since in the future", "since=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), 0},
			{"until long ago", "until=2000-01-01T00:00:00Z", 0},
		}
		for _, tc := range cases {
			got := a.auditAll(t, "action=CREATE_ROLE&"+tc.query)
			if len(got) != tc.want {
				t.Errorf("%s (%s): %d entries, want %d", tc.name, tc.query, len(got), tc.want)
			}
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=501", "limit=-1", "limit=ten", "cursor=abc", "cursor=0", "cursor=-3",
			"action=NOPE", "action=", "since=yesterday", "until=2026-13-01T00:00:00Z", "since=2026-02-01",
			"since=2026-02-02T00:00:00Z&until=2026-02-01T00:00:00Z", "user=" + url.QueryEscape(badUser), "user=" + strings.Repeat("u", 65)} {
			r := a.get(t, "/api/audit?"+q)
			if q == "action=" { // empty means no filter
				if r.status != 200 {
					t.Errorf("GET /api/audit?%s: %d", q, r.status)
				}
				continue
			}
			expectError(t, r, 400, "")
			if strings.Contains(string(r.body), keyA) || strings.Contains(string(r.body), testAuditKey) {
				t.Errorf("GET /api/audit?%s shows a key: %s", q, r.body)
			}
		}
		// Refused reads of the trail are recorded too.
		a.waitAudit(t, "action=GET_AUDIT", "refused reads recorded", func(es []auditEntry) bool {
			n := 0
			for _, e := range es {
				if !e.Success && e.Details["reason"] == "validation_error" {
					n++
				}
			}
			return n >= 14
		})
	})

	t.Run("tenant isolation", func(t *testing.T) {
		bAll := b.waitAudit(t, "", "tenant b's 5 roles", func(es []auditEntry) bool { return len(es) >= 5 })
		for _, e := range bAll {
			if e.Action != "CREATE_ROLE" && e.Action != "GET_AUDIT" {
				t.Errorf("tenant b sees %+v", e)
			}
			if strings.HasPrefix(e.Resource, "r") || e.User != nil {
				t.Errorf("tenant b sees a record of tenant a: %+v", e)
			}
		}
		if got := b.auditAll(t, "user="+alice); len(got) != 0 {
			t.Errorf("tenant b, user=%s: %s", alice, dumpEntries(got))
		}
		c := s.client(newKey(t))
		p, _ := c.auditPage(t, "")
		if len(p.Data.Entries) != 0 || p.Data.NextCursor != nil {
			t.Errorf("a new tenant sees %s", dumpEntries(p.Data.Entries))
		}
		// Tenant a's cursor means nothing to b: b still sees only its own.
		for _, e := range b.auditAll(t, "cursor=1000000") {
			if strings.HasPrefix(e.Resource, "r") {
				t.Errorf("tenant b with a large cursor sees %+v", e)
			}
		}
	})

	t.Run("no secrets", func(t *testing.T) {
		for _, c := range []client{a, b} {
			_, r := c.auditPage(t, "limit=500")
			for _, l := range []string{keyA, keyB, strings.ToUpper(keyA), keyHash(t, keyA), keyHash(t, keyB), alice, bob, testAuditKey} {
				if strings.Contains(string(r.body), l) {
					t.Errorf("GET /api/audit shows %q", l)
				}
			}
		}
	})

	t.Run("reads recorded", func(t *testing.T) {
		_, r := a.auditPage(t, "limit=3")
		id := r.header.Get("X-Request-ID")
		a.waitAudit(t, "action=GET_AUDIT", "this read recorded as GET_AUDIT", func(es []auditEntry) bool {
			for _, e := range es {
				if e.RequestID == id && e.Resource == "audit" && e.Success {
					return true
				}
			}
			return false
		})
	})
}

// TestAuditUnauthenticated: requests without a valid client key are no
// tenant's events: nothing in the trail, but counted in the metrics and
// logged.
func TestAuditUnauthenticated(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t)
	reasons := []string{"missing_header", "bad_header", "bad_key"}
	before := map[string]float64{}
	for _, r := range reasons {
		before[r] = s.metricValue(t, `auth_unauthenticated_requests_total{reason="`+r+`"}`)
	}
	requests := []struct {
		method, path, header, reason string
	}{
		{"GET", "/api/roles", "", "missing_header"},
		{"POST", "/api/role/admin", "", "missing_header"},
		{"GET", "/api/audit", "", "missing_header"},
		{"GET", "/api/roles", "Authorization: Basic dXNlcjpwYXNz", "bad_header"},
		{"DELETE", "/api/role/admin", "Authorization: Bearer", "bad_header"},
		{"GET", "/api/has_permission/john/read", "Authorization: Bearer not-a-uuid", "bad_key"},
		{"POST", "/api/role/admin", "Authorization: Bearer 00000000-0000-0000-0000-000000000000", "bad_key"},
		{"GET", "/api/audit", "Authorization: Bearer 1234", "bad_key"},
	}
	want := map[string]float64{}
	for _, rq := range requests {
		var r response
		if rq.header == "" {
			r = s.do(t, rq.method, rq.path)
		} else {
			r = s.do(t, rq.method, rq.path, rq.header)
		}
		if r.status != 401 && r.status != 400 {
			t.Errorf("%s %s with %q: %d, want 401 or 400", rq.method, rq.path, rq.header, r.status)
		}
		want[rq.reason]++
	}
	for _, r := range reasons {
		got := s.metricValue(t, `auth_unauthenticated_requests_total{reason="`+r+`"}`) - before[r]
		if got != want[r] {
			t.Errorf("auth_unauthenticated_requests_total{reason=%q} rose by %v, want %v", r, got, want[r])
		}
	}
	for _, m := range []string{"auth_audit_dropped_total", "auth_audit_queue_depth", "auth_unauthenticated_requests_total"} {
		if !s.hasMetric(t, m) {
			t.Errorf("/metrics does not export %s", m)
		}
	}
	s.stop(t)
	logged := strings.Count(s.stderr.String(), `"msg":"unauthenticated request"`)
	if logged != len(requests) {
		t.Errorf("%d \"unauthenticated request\" log lines, want %d", logged, len(requests))
	}
	if strings.Contains(s.stderr.String(), `"msg":"audit"`) {
		t.Errorf("an unauthenticated request produced an audit log line:\n%s", s.stderr.String())
	}
	db := s.openDB(t)
	if n := count(t, db, "audit_log"); n != 0 {
		t.Errorf("audit_log has %d records after unauthenticated requests only, want 0", n)
	}
	if n := count(t, db, "audit_heads"); n != 0 {
		t.Errorf("audit_heads has %d chains after unauthenticated requests only, want 0", n)
	}
}

// TestAuditKeyAtStartup: outside development mode the server needs a strong
// audit key and says which setting is wrong without echoing it;
// development mode makes a local key, private to its owner, and keeps it.
func TestAuditKeyAtStartup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	weakFile := write("weak.key", "changeme-changeme-changeme-changeme-1\n")
	strongFile := write("strong.key", "3b9f6c1d8a2e4f7091c5d3b8a6e2f4c19d7b5a3e71\n")
	noKey := func(extra ...string) []string {
		return withoutEnv(serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), extra...), "AUTH_AUDIT_KEY")
	}
	refusals := []struct {
		name   string
		env    []string
		want   []string
		secret string // must not be printed
	}{
		{"no key", noKey(), []string{"AUTH_AUDIT_KEY", "development"}, ""},
		{"short key", noKey("AUTH_AUDIT_KEY=Zq8-short-Zq8"), []string{"AUTH_AUDIT_KEY", "32"}, "Zq8-short-Zq8"},
		{"placeholder key", noKey("AUTH_AUDIT_KEY=changeme-Xy7Wq-changeme-changeme-changeme"), []string{"AUTH_AUDIT_KEY"}, "Xy7Wq"},
		{"repeated character", noKey("AUTH_AUDIT_KEY=" + strings.Repeat("k", 48)), []string{"AUTH_AUDIT_KEY"}, strings.Repeat("k", 48)},
		{"key file missing", noKey("AUTH_AUDIT_KEY_FILE=" + filepath.Join(dir, "missing.key")), []string{"AUTH_AUDIT_KEY_FILE"}, ""},
		{"weak key file", noKey("AUTH_AUDIT_KEY_FILE=" + weakFile), []string{"AUTH_AUDIT_KEY_FILE"}, "changeme-changeme"},
		{"production says so", noKey("AUTH_ENV=production"), []string{"AUTH_AUDIT_KEY"}, ""},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stderr := startFailure(t, tc.env)
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, stderr)
				}
			}
			if tc.secret != "" && strings.Contains(stderr, tc.secret) {
				t.Errorf("stderr shows the key:\n%s", stderr)
			}
		})
	}
	t.Run("key file", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, noKey("AUTH_AUDIT_KEY_FILE="+strongFile))
		mustResult(t, s.client(newKey(t)).post(t, "/api/role/admin"), true)
		s.stop(t)
		mustVerify(t, s.env)
	})
	t.Run("development mode", func(t *testing.T) {
		t.Parallel()
		env := noKey("AUTH_ENV=development")
		dbPath := envValue(env, "AUTH_DB_PATH")
		keyPath := dbPath + ".audit-key"
		s := startServer(t, env)
		key := newKey(t)
		mustResult(t, s.client(key).post(t, "/api/role/admin"), true)
		if m := fileMode(t, keyPath); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", keyPath, m)
		}
		first, err := os.ReadFile(keyPath)
		if err != nil || len(strings.TrimSpace(string(first))) < 32 {
			t.Fatalf("development key %q: %v", first, err)
		}
		if strings.Contains(s.stderr.String(), strings.TrimSpace(string(first))) {
			t.Errorf("the server logged its development key")
		}
		// The same key after a restart: the chain goes on and verifies.
		s2 := s.restart(t)
		mustResult(t, s2.client(key).post(t, "/api/role/other"), true)
		s2.stop(t)
		again, _ := os.ReadFile(keyPath)
		if string(again) != string(first) {
			t.Errorf("the development key changed across a restart")
		}
		mustVerify(t, env, "--tenant", key)
		// Without development mode and without a key, verify refuses to run;
		// with another key, the trail does not verify.
		code, out := verifyAudit(t, withoutEnv(env, "AUTH_ENV"), "--tenant", key)
		if code == 0 || !strings.Contains(out, "AUTH_AUDIT_KEY") {
			t.Errorf("audit verify without a key outside development mode: exit %d, want non-zero naming AUTH_AUDIT_KEY:\n%s", code, out)
		}
		code, out = verifyAudit(t, append(withoutEnv(env, "AUTH_ENV"), "AUTH_AUDIT_KEY="+testAuditKey))
		if code == 0 || !strings.Contains(out, "does not authenticate") {
			t.Errorf("audit verify with another key: exit %d, want non-zero naming the head:\n%s", code, out)
		}
	})
}
