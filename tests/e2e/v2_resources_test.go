package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestV2ResourcesSQLite(t *testing.T) {
	t.Parallel()
	runV2ResourcesSuite(t, sqliteServer)
}

func TestV2ResourcesPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runV2ResourcesSuite(t, postgresServer)
}

// runV2ResourcesSuite runs the v2 resource routes on one server per
// backend; each subtest is a tenant of its own.
func runV2ResourcesSuite(t *testing.T, newServer factory) {
	s := newServer(t)
	for name, fn := range map[string]func(t *testing.T, c v2Client){
		"Roles":           testV2Roles,
		"Grants":          testV2Grants,
		"Members":         testV2Members,
		"Parents":         testV2Parents,
		"Users":           testV2Users,
		"ReverseLookups":  testV2ReverseLookups,
		"DeleteUser":      testV2DeleteUser,
		"Pagination":      testV2Pagination,
		"PageParameters":  testV2PageParameters,
		"InvalidNames":    testV2InvalidNames,
		"ReadOnlyToken":   testV2ReadOnlyToken,
		"ListingsAudited": testV2ListingsAudited,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, v2Client{s.client(newKey(t))})
		})
	}
}

// v2Client is a tenant speaking API v2.
type v2Client struct{ client }

// v2Answer is a v2 envelope, success or error.
type v2Answer struct {
	Code    int             `json:"code"`
	Data    json.RawMessage `json:"data"`
	Details map[string]any  `json:"details"`
	Message string          `json:"message"`
	Success bool            `json:"success"`
}

// send calls a v2 route (path relative to /api/v2) with an optional JSON
// body and checks the envelope's frame.
func (c v2Client) send(t testing.TB, method, path, body string) (response, v2Answer) {
	t.Helper()
	var r response
	if body == "" {
		r = c.call(t, method, "/api/v2"+path)
	} else {
		r = c.s.doBody(t, method, "/api/v2"+path, []byte(body), c.auth(), "Content-Type: application/json")
	}
	var a v2Answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("%s: not JSON: %v", r, err)
	}
	if a.Code != r.status || a.Success != (r.status < 400) {
		t.Fatalf("%s: envelope code %d success %v", r, a.Code, a.Success)
	}
	wantStart := `{"code":`
	if a.Success && !bytes.HasPrefix(r.body, []byte(wantStart+fmt.Sprint(r.status)+`,"data":`)) {
		t.Errorf("%s: keys not in envelope order", r)
	}
	if !a.Success && !bytes.HasPrefix(r.body, []byte(wantStart+fmt.Sprint(r.status)+`,"details":{`)) {
		t.Errorf("%s: keys not in error envelope order", r)
	}
	return r, a
}

// expect calls a route and checks its status and data (compact JSON).
func (c v2Client) expect(t testing.TB, method, path, body string, status int, data string) {
	t.Helper()
	r, a := c.send(t, method, path, body)
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, withoutRevision(t, r, a.Data)); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if got.String() != data {
		t.Errorf("%s %s:\n got data %s\nwant data %s", method, path, got.String(), data)
	}
}

// withoutRevision checks the revision an answer's data states (the
// X-Auth-Revision header's; on a change, a committed one) and returns the
// data without it, keys in order, for comparison with a fixed answer.
func withoutRevision(t testing.TB, r response, data json.RawMessage) json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || fields["revision"] == nil {
		return data
	}
	var rev int64
	if err := json.Unmarshal(fields["revision"], &rev); err != nil || rev < 0 {
		t.Fatalf("%s: revision %s is not a revision", r, fields["revision"])
	}
	if h := r.header.Get("X-Auth-Revision"); h != fmt.Sprint(rev) {
		t.Errorf("%s: X-Auth-Revision %q, data.revision %d", r, h, rev)
	}
	if r.method != "GET" && r.status < 300 && rev == 0 {
		t.Errorf("%s: a change answered revision 0", r)
	}
	delete(fields, "revision")
	keys := slices.Sorted(maps.Keys(fields))
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(fields[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// expectErr calls a route and checks its error status, reason and, when
// given, details.
func (c v2Client) expectErr(t testing.TB, method, path, body string, status int, reason string, details ...string) {
	t.Helper()
	r, a := c.send(t, method, path, body)
	if r.status != status || a.Details["reason"] != reason {
		t.Fatalf("%s: want %d %s", r, status, reason)
	}
	for i := 0; i+1 < len(details); i += 2 {
		if got := fmt.Sprint(a.Details[details[i]]); got != details[i+1] {
			t.Errorf("%s: details.%s = %s, want %s", r, details[i], got, details[i+1])
		}
	}
}

// page reads one page of a list.
func (c v2Client) page(t testing.TB, path string) (items []json.RawMessage, next *string) {
	t.Helper()
	r, a := c.send(t, "GET", path, "")
	if r.status != 200 {
		t.Fatalf("%s: status %d", r, r.status)
	}
	var p struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(a.Data, &p); err != nil || p.Items == nil {
		t.Fatalf("%s: not a page: %v", r, err)
	}
	return p.Items, p.NextCursor
}

func testV2Roles(t *testing.T, c v2Client) {
	c.expect(t, "GET", "/roles", "", 200, `{"items":[],"next_cursor":null}`)
	c.expect(t, "POST", "/roles", `{"name":"editor","description":"Edits things"}`, 201, `{"description":"Edits things","name":"editor"}`)
	c.expectErr(t, "POST", "/roles", `{"name":"editor"}`, 409, "role_exists", "role", "editor")
	c.expect(t, "POST", "/roles", `{"name":"admin"}`, 201, `{"description":null,"name":"admin"}`)
	c.expectErr(t, "POST", "/roles", `{"description":"x"}`, 400, "invalid_body", "field", "name")
	c.expectErr(t, "POST", "/roles", `{"name":"x","colour":"red"}`, 400, "invalid_body", "field", "colour")
	c.expectErr(t, "POST", "/roles", `[1]`, 400, "invalid_body")
	c.expectErr(t, "POST", "/roles", `{"name":"bad name"}`, 400, "invalid_name", "kind", "role")
	c.expect(t, "GET", "/roles", "", 200, `{"items":[{"description":null,"name":"admin"},{"description":"Edits things","name":"editor"}],"next_cursor":null}`)

	// PUT creates, then answers the same role; a description given
	// replaces the old one, null clears it, none keeps it.
	c.expect(t, "PUT", "/roles/viewer", "", 201, `{"created":true,"description":null,"name":"viewer"}`)
	c.expect(t, "PUT", "/roles/viewer", "", 200, `{"created":false,"description":null,"name":"viewer"}`)
	c.expect(t, "PUT", "/roles/viewer", `{"description":"Reads"}`, 200, `{"created":false,"description":"Reads","name":"viewer"}`)
	c.expect(t, "PUT", "/roles/viewer", "", 200, `{"created":false,"description":"Reads","name":"viewer"}`)
	c.expect(t, "GET", "/roles/viewer", "", 200, `{"description":"Reads","members":0,"name":"viewer","parents":[],"permissions":0}`)
	c.expect(t, "PUT", "/roles/viewer", `{"description":null}`, 200, `{"created":false,"description":null,"name":"viewer"}`)
	c.expect(t, "GET", "/roles/viewer", "", 200, `{"description":null,"members":0,"name":"viewer","parents":[],"permissions":0}`)
	c.expect(t, "PUT", "/roles/auditor", `{"description":"Looks"}`, 201, `{"created":true,"description":"Looks","name":"auditor"}`)
	c.expectErr(t, "PUT", "/roles/auditor", `{"description":5}`, 400, "invalid_body", "field", "description")
	c.expectErr(t, "GET", "/roles/ghost", "", 404, "role_not_found", "role", "ghost")

	// The description survives in the database, and v1 lists it too.
	r := c.get(t, "/api/roles")
	if !strings.Contains(string(r.body), `{"description":"Looks","role":"auditor"}`) {
		t.Errorf("v1 GET /api/roles does not show the description: %s", r.body)
	}

	c.expect(t, "PUT", "/roles/editor/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"editor"}`)
	c.expect(t, "PUT", "/roles/editor/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"alice"}`)
	c.expect(t, "PUT", "/roles/editor/parents/viewer", "", 201, `{"created":true,"parent":"viewer","role":"editor"}`)
	c.expect(t, "GET", "/roles/editor", "", 200, `{"description":"Edits things","members":1,"name":"editor","parents":["viewer"],"permissions":1}`)

	c.expect(t, "DELETE", "/roles/editor", "", 200, `{"deleted":true,"role":"editor"}`)
	c.expect(t, "DELETE", "/roles/editor", "", 200, `{"deleted":false,"role":"editor"}`)
	c.expectErr(t, "GET", "/roles/editor", "", 404, "role_not_found")
	c.expect(t, "GET", "/users/alice/roles", "", 200, `{"items":[],"next_cursor":null}`)
	// A role made again starts empty.
	c.expect(t, "PUT", "/roles/editor", "", 201, `{"created":true,"description":null,"name":"editor"}`)
	c.expect(t, "GET", "/roles/editor", "", 200, `{"description":null,"members":0,"name":"editor","parents":[],"permissions":0}`)
}

func testV2Grants(t *testing.T, c v2Client) {
	c.expectErr(t, "GET", "/roles/ghost/permissions", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "PUT", "/roles/ghost/permissions/read", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "DELETE", "/roles/ghost/permissions/read", "", 404, "role_not_found", "role", "ghost")
	c.expect(t, "PUT", "/roles/editor", "", 201, `{"created":true,"description":null,"name":"editor"}`)
	c.expect(t, "GET", "/roles/editor/permissions", "", 200, `{"items":[],"next_cursor":null}`)
	c.expect(t, "PUT", "/roles/editor/permissions/write", "", 201, `{"created":true,"expires_at":null,"permission":"write","role":"editor"}`)
	c.expect(t, "PUT", "/roles/editor/permissions/write", "", 200, `{"created":false,"expires_at":null,"permission":"write","role":"editor"}`)
	c.expect(t, "PUT", "/roles/editor/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"editor"}`)
	c.expect(t, "GET", "/roles/editor/permissions", "", 200, `{"items":[{"expires_at":null,"name":"read"},{"expires_at":null,"name":"write"}],"next_cursor":null}`)
	c.expect(t, "DELETE", "/roles/editor/permissions/write", "", 200, `{"deleted":true,"permission":"write","role":"editor"}`)
	c.expect(t, "DELETE", "/roles/editor/permissions/write", "", 200, `{"deleted":false,"permission":"write","role":"editor"}`)
	c.expect(t, "GET", "/roles/editor/permissions", "", 200, `{"items":[{"expires_at":null,"name":"read"}],"next_cursor":null}`)
	c.expectErr(t, "PUT", "/roles/editor/permissions/bad%20perm", "", 400, "invalid_name", "kind", "permission")
	// The decision follows.
	c.expect(t, "PUT", "/roles/editor/members/bob", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"bob"}`)
	if r := c.get(t, "/api/has_permission/bob/read"); !strings.Contains(string(r.body), `"has_permission":true`) {
		t.Errorf("bob cannot read after the grant: %s", r)
	}
}

func testV2Members(t *testing.T, c v2Client) {
	c.expectErr(t, "GET", "/roles/ghost/members", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "PUT", "/roles/ghost/members/alice", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "DELETE", "/roles/ghost/members/alice", "", 404, "role_not_found", "role", "ghost")
	c.expect(t, "PUT", "/roles/editor", "", 201, `{"created":true,"description":null,"name":"editor"}`)
	c.expect(t, "PUT", "/roles/editor/members/carol", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"carol"}`)
	c.expect(t, "PUT", "/roles/editor/members/carol", "", 200, `{"created":false,"expires_at":null,"role":"editor","user":"carol"}`)
	c.expect(t, "PUT", "/roles/editor/members/a.b@example.com", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"a.b@example.com"}`)
	c.expect(t, "GET", "/roles/editor/members", "", 200, `{"items":[{"expires_at":null,"user":"a.b@example.com"},{"expires_at":null,"user":"carol"}],"next_cursor":null}`)
	c.expect(t, "DELETE", "/roles/editor/members/carol", "", 200, `{"deleted":true,"role":"editor","user":"carol"}`)
	c.expect(t, "DELETE", "/roles/editor/members/carol", "", 200, `{"deleted":false,"role":"editor","user":"carol"}`)
	c.expect(t, "GET", "/roles/editor/members", "", 200, `{"items":[{"expires_at":null,"user":"a.b@example.com"}],"next_cursor":null}`)
}

func testV2Parents(t *testing.T, c v2Client) {
	for _, r := range []string{"a", "b", "c"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	c.expectErr(t, "GET", "/roles/ghost/parents", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "PUT", "/roles/ghost/parents/a", "", 404, "role_not_found", "role", "ghost")
	c.expectErr(t, "PUT", "/roles/a/parents/ghost", "", 404, "role_not_found", "role", "ghost")
	c.expect(t, "PUT", "/roles/a/parents/b", "", 201, `{"created":true,"parent":"b","role":"a"}`)
	c.expect(t, "PUT", "/roles/a/parents/b", "", 200, `{"created":false,"parent":"b","role":"a"}`)
	c.expect(t, "PUT", "/roles/b/parents/c", "", 201, `{"created":true,"parent":"c","role":"b"}`)
	c.expectErr(t, "PUT", "/roles/c/parents/a", "", 409, "role_cycle")
	c.expectErr(t, "PUT", "/roles/a/parents/a", "", 409, "role_cycle")
	c.expect(t, "PUT", "/roles/a/parents/c", "", 201, `{"created":true,"parent":"c","role":"a"}`)
	c.expect(t, "GET", "/roles/a/parents", "", 200, `{"items":[{"name":"b"},{"name":"c"}],"next_cursor":null}`)
	c.expect(t, "DELETE", "/roles/a/parents/c", "", 200, `{"deleted":true,"parent":"c","role":"a"}`)
	c.expect(t, "DELETE", "/roles/a/parents/c", "", 200, `{"deleted":false,"parent":"c","role":"a"}`)
	c.expect(t, "GET", "/roles/a/parents", "", 200, `{"items":[{"name":"b"}],"next_cursor":null}`)

	// A chain longer than AUTH_MAX_ROLE_DEPTH (8 links) is refused.
	prev := "c"
	for i := 1; i <= 6; i++ {
		r := fmt.Sprintf("d%d", i)
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
		c.expect(t, "PUT", "/roles/"+prev+"/parents/"+r, "", 201, `{"created":true,"parent":"`+r+`","role":"`+prev+`"}`)
		prev = r
	}
	c.expect(t, "PUT", "/roles/d7", "", 201, `{"created":true,"description":null,"name":"d7"}`)
	c.expectErr(t, "PUT", "/roles/"+prev+"/parents/d7", "", 409, "role_depth")
}

func testV2Users(t *testing.T, c v2Client) {
	// staff <- editor <- senior; alice is in senior and staff, bob in editor.
	for _, r := range []string{"staff", "editor", "senior"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	c.expect(t, "PUT", "/roles/editor/parents/staff", "", 201, `{"created":true,"parent":"staff","role":"editor"}`)
	c.expect(t, "PUT", "/roles/senior/parents/editor", "", 201, `{"created":true,"parent":"editor","role":"senior"}`)
	c.expect(t, "PUT", "/roles/staff/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"staff"}`)
	c.expect(t, "PUT", "/roles/editor/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"editor"}`)
	c.expect(t, "PUT", "/roles/editor/permissions/write", "", 201, `{"created":true,"expires_at":null,"permission":"write","role":"editor"}`)
	c.expect(t, "PUT", "/roles/senior/permissions/approve", "", 201, `{"created":true,"expires_at":null,"permission":"approve","role":"senior"}`)
	c.expect(t, "PUT", "/roles/senior/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"senior","user":"alice"}`)
	c.expect(t, "PUT", "/roles/staff/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"staff","user":"alice"}`)
	c.expect(t, "PUT", "/roles/editor/members/bob", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"bob"}`)

	c.expect(t, "GET", "/users/alice/roles", "", 200,
		`{"items":[{"inherited":true,"name":"editor","via":"senior"},{"inherited":false,"name":"senior"},{"inherited":false,"name":"staff"}],"next_cursor":null}`)
	c.expect(t, "GET", "/users/bob/roles", "", 200,
		`{"items":[{"inherited":false,"name":"editor"},{"inherited":true,"name":"staff","via":"editor"}],"next_cursor":null}`)
	c.expect(t, "GET", "/users/alice/permissions", "", 200,
		`{"items":[{"name":"approve","roles":["senior"]},{"name":"read","roles":["editor","staff"]},{"name":"write","roles":["editor"]}],"next_cursor":null}`)
	c.expect(t, "GET", "/users/nobody/roles", "", 200, `{"items":[],"next_cursor":null}`)
	c.expect(t, "GET", "/users/nobody/permissions", "", 200, `{"items":[],"next_cursor":null}`)
}

func testV2ReverseLookups(t *testing.T, c v2Client) {
	for _, r := range []string{"staff", "editor", "other"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	c.expect(t, "PUT", "/roles/editor/parents/staff", "", 201, `{"created":true,"parent":"staff","role":"editor"}`)
	c.expect(t, "PUT", "/roles/staff/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"staff"}`)
	c.expect(t, "PUT", "/roles/other/permissions/read", "", 201, `{"created":true,"expires_at":null,"permission":"read","role":"other"}`)
	c.expect(t, "PUT", "/roles/editor/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"editor","user":"alice"}`)
	c.expect(t, "PUT", "/roles/staff/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"staff","user":"alice"}`)
	c.expect(t, "PUT", "/roles/other/members/bob", "", 201, `{"created":true,"expires_at":null,"role":"other","user":"bob"}`)

	c.expect(t, "GET", "/permissions/read/roles", "", 200,
		`{"items":[{"inherited":true,"name":"editor"},{"inherited":false,"name":"other"},{"inherited":false,"name":"staff"}],"next_cursor":null}`)
	c.expect(t, "GET", "/permissions/read/users", "", 200,
		`{"items":[{"roles":["editor","staff"],"user":"alice"},{"roles":["other"],"user":"bob"}],"next_cursor":null}`)
	c.expect(t, "GET", "/permissions/none/roles", "", 200, `{"items":[],"next_cursor":null}`)
	c.expect(t, "GET", "/permissions/none/users", "", 200, `{"items":[],"next_cursor":null}`)
	c.expectErr(t, "GET", "/permissions/bad%20perm/users", "", 400, "invalid_name", "kind", "permission")
}

func testV2DeleteUser(t *testing.T, c v2Client) {
	for _, r := range []string{"r1", "r2", "r3"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
		c.expect(t, "PUT", "/roles/"+r+"/members/gone", "", 201, `{"created":true,"expires_at":null,"role":"`+r+`","user":"gone"}`)
		c.expect(t, "PUT", "/roles/"+r+"/members/stays", "", 201, `{"created":true,"expires_at":null,"role":"`+r+`","user":"stays"}`)
		c.expect(t, "PUT", "/roles/"+r+"/permissions/p", "", 201, `{"created":true,"expires_at":null,"permission":"p","role":"`+r+`"}`)
	}
	c.expect(t, "DELETE", "/users/gone", "", 200, `{"memberships_removed":3,"user":"gone"}`)
	c.expect(t, "DELETE", "/users/gone", "", 200, `{"memberships_removed":0,"user":"gone"}`)
	c.expect(t, "GET", "/users/gone/roles", "", 200, `{"items":[],"next_cursor":null}`)
	c.expect(t, "GET", "/users/stays/roles", "", 200,
		`{"items":[{"inherited":false,"name":"r1"},{"inherited":false,"name":"r2"},{"inherited":false,"name":"r3"}],"next_cursor":null}`)
	for _, r := range []string{"r1", "r2", "r3"} {
		c.expect(t, "GET", "/roles/"+r+"/members", "", 200, `{"items":[{"expires_at":null,"user":"stays"}],"next_cursor":null}`)
	}
	if r := c.get(t, "/api/has_permission/gone/p"); !strings.Contains(string(r.body), `"has_permission":false`) {
		t.Errorf("a deleted user still holds p: %s", r)
	}
	c.expectErr(t, "DELETE", "/users/bad%20user", "", 400, "invalid_name", "kind", "user")

	// One record for the whole deletion (and one for the retry), with the
	// user's fingerprint.
	es := c.auditAll(t, "action=DELETE_USER")
	if len(es) != 2 {
		t.Fatalf("%d DELETE_USER records, want 2:\n%s", len(es), dumpEntries(es))
	}
	fp := userFP(t, c.key, "gone")
	last, first := es[0], es[1]
	if first.User == nil || *first.User != fp || !first.Success || fmt.Sprint(first.Details["memberships_removed"]) != "3" {
		t.Errorf("first DELETE_USER record %+v, want user %s, success, 3 memberships removed", first, fp)
	}
	if last.Success || fmt.Sprint(last.Details["memberships_removed"]) != "0" {
		t.Errorf("repeated DELETE_USER record %+v, want no success, 0 memberships removed", last)
	}
	if n := len(c.auditAll(t, "action=REMOVE_MEMBERSHIP")); n != 0 {
		t.Errorf("%d REMOVE_MEMBERSHIP records for a user deletion, want none", n)
	}
}

// walk reads every page of a list with limit and returns the items'
// values of field; before reading page number addAt (1-based), it calls
// add.
func (c v2Client) walk(t testing.TB, path string, limit int, field string, addAt int, add func()) []string {
	t.Helper()
	var out []string
	cursor := ""
	for pages := 1; ; pages++ {
		if pages > 10000 {
			t.Fatalf("%s: the cursor does not end", path)
		}
		if pages == addAt && add != nil {
			add()
		}
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		items, next := c.page(t, path+"?"+q.Encode())
		if len(items) > limit || (next != nil && len(items) != limit) {
			t.Fatalf("%s page %d: %d items with limit %d (next %v)", path, pages, len(items), limit, next)
		}
		for _, it := range items {
			var m map[string]any
			if err := json.Unmarshal(it, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(m[field]))
		}
		if next == nil {
			return out
		}
		cursor = *next
	}
}

func testV2Pagination(t *testing.T, c v2Client) {
	const n = 2500
	c.expect(t, "PUT", "/roles/big", "", 201, `{"created":true,"description":null,"name":"big"}`)
	users := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range users {
				r, err := c.s.send("PUT", "/api/v2/roles/big/members/"+u, c.auth())
				if err != nil || r.status != 201 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v %s", u, err, r))
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		users <- fmt.Sprintf("u%05d", i*2) // even numbers: odd ones are added while paging
	}
	close(users)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("adding members: %v", failures[:min(len(failures), 5)])
	}
	want := func(extra ...string) map[string]bool {
		m := map[string]bool{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("u%05d", i*2)] = true
		}
		for _, e := range extra {
			m[e] = true
		}
		return m
	}
	check := func(name string, got []string, want map[string]bool) {
		t.Helper()
		seen := map[string]bool{}
		for i, u := range got {
			if seen[u] {
				t.Fatalf("%s: %s repeated", name, u)
			}
			if i > 0 && got[i-1] >= u {
				t.Fatalf("%s: %s after %s, want sorted", name, u, got[i-1])
			}
			seen[u] = true
			if !want[u] {
				t.Fatalf("%s: unexpected %s", name, u)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%s: %d items, want %d", name, len(seen), len(want))
		}
	}
	check("limit 1000", c.walk(t, "/roles/big/members", 1000, "user", 0, nil), want())
	check("limit 7", c.walk(t, "/roles/big/members", 7, "user", 0, nil), want())
	check("limit 333", c.walk(t, "/roles/big/members", 333, "user", 0, nil), want())
	// Members added between pages appear according to where they sort:
	// one before the pages read (not seen), one after (seen); a removed
	// one not yet reached is not seen.
	got := c.walk(t, "/roles/big/members", 300, "user", 3, func() {
		c.expect(t, "PUT", "/roles/big/members/u00001", "", 201, `{"created":true,"expires_at":null,"role":"big","user":"u00001"}`)
		c.expect(t, "PUT", "/roles/big/members/u04999", "", 201, `{"created":true,"expires_at":null,"role":"big","user":"u04999"}`)
		c.expect(t, "DELETE", "/roles/big/members/u04998", "", 200, `{"deleted":true,"role":"big","user":"u04998"}`)
	})
	w := want("u04999")
	delete(w, "u04998")
	check("with changes between pages", got, w)
	c.expect(t, "GET", "/roles/big", "", 200, fmt.Sprintf(`{"description":null,"members":%d,"name":"big","parents":[],"permissions":0}`, n+1))
}

func testV2PageParameters(t *testing.T, c v2Client) {
	for _, r := range []string{"a", "b", "c"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	items, next := c.page(t, "/roles?limit=2")
	if len(items) != 2 || next == nil {
		t.Fatalf("limit=2: %d items, next %v", len(items), next)
	}
	items, next2 := c.page(t, "/roles?limit=2&cursor="+url.QueryEscape(*next))
	if len(items) != 1 || next2 != nil || !strings.Contains(string(items[0]), `"c"`) {
		t.Fatalf("second page: %s, next %v", items, next2)
	}
	if got := c.walk(t, "/roles", 1, "name", 0, nil); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("limit 1 walk: %v", got)
	}
	// Default limit 100.
	if items, _ := c.page(t, "/roles"); len(items) != 3 {
		t.Fatalf("default page: %d items", len(items))
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1"} {
		c.expectErr(t, "GET", "/roles?"+q, "", 400, "invalid_parameter", "parameter", "limit")
		c.expectErr(t, "GET", "/roles/a/members?"+q, "", 400, "invalid_parameter", "parameter", "limit")
	}
	for _, q := range []string{"cursor=%25%25", "cursor=YWJj", "cursor=a"} {
		c.expectErr(t, "GET", "/roles?"+q, "", 400, "invalid_cursor")
	}
	c.expect(t, "GET", "/roles?limit=1000", "", 200,
		`{"items":[{"description":null,"name":"a"},{"description":null,"name":"b"},{"description":null,"name":"c"}],"next_cursor":null}`)
}

func testV2InvalidNames(t *testing.T, c v2Client) {
	long := strings.Repeat("r", 65)
	c.expectErr(t, "PUT", "/roles/"+long, "", 400, "invalid_name", "kind", "role")
	c.expectErr(t, "GET", "/roles/bad%20role", "", 400, "invalid_name", "kind", "role")
	c.expectErr(t, "DELETE", "/roles/bad%20role", "", 400, "invalid_name", "kind", "role")
	c.expect(t, "PUT", "/roles/ok", "", 201, `{"created":true,"description":null,"name":"ok"}`)
	c.expectErr(t, "PUT", "/roles/ok/members/bad%20user", "", 400, "invalid_name", "kind", "user")
	c.expectErr(t, "PUT", "/roles/ok/parents/bad%20role", "", 400, "invalid_name", "kind", "role")
	c.expectErr(t, "GET", "/users/bad%20user/roles", "", 400, "invalid_name", "kind", "user")
	c.expectErr(t, "GET", "/users/bad%20user/permissions", "", 400, "invalid_name", "kind", "user")
	c.expectErr(t, "GET", "/permissions/bad%20perm/roles", "", 400, "invalid_name", "kind", "permission")
	// A percent-encoded valid name is the name.
	c.expect(t, "PUT", "/roles/ok/members/a%2Bb%40x.io", "", 201, `{"created":true,"expires_at":null,"role":"ok","user":"a+b@x.io"}`)
}

func testV2ReadOnlyToken(t *testing.T, c v2Client) {
	ro := v2Client{c.s.client(c.s.issueToken(t, c.key, "check"))}
	c.expect(t, "PUT", "/roles/x", "", 201, `{"created":true,"description":null,"name":"x"}`)
	ro.expect(t, "GET", "/roles", "", 200, `{"items":[{"description":null,"name":"x"}],"next_cursor":null}`)
	ro.expectErr(t, "PUT", "/roles/y", "", 403, "forbidden")
	ro.expectErr(t, "DELETE", "/users/alice", "", 403, "forbidden")
	ro.expectErr(t, "PUT", "/roles/x/members/alice", "", 403, "forbidden")
}

// Every listing is recorded like its v1 twin; a description change is
// UPDATE_ROLE.
func testV2ListingsAudited(t *testing.T, c v2Client) {
	c.expect(t, "PUT", "/roles/r", "", 201, `{"created":true,"description":null,"name":"r"}`)
	c.expect(t, "PUT", "/roles/r", `{"description":"d"}`, 200, `{"created":false,"description":"d","name":"r"}`)
	c.expect(t, "PUT", "/roles/r/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"r","user":"alice"}`)
	es := c.auditAll(t, "action=UPDATE_ROLE")
	if len(es) != 1 || es[0].Resource != "r" || !es[0].Success {
		t.Fatalf("UPDATE_ROLE records:\n%s", dumpEntries(es))
	}
	if es := c.auditAll(t, "action=CREATE_ROLE"); len(es) != 1 {
		t.Fatalf("CREATE_ROLE records:\n%s", dumpEntries(es))
	}
	c.expect(t, "GET", "/roles/r/members", "", 200, `{"items":[{"expires_at":null,"user":"alice"}],"next_cursor":null}`)
	c.expect(t, "GET", "/users/alice/permissions", "", 200, `{"items":[],"next_cursor":null}`)
	c.waitAudit(t, "action=LIST_MEMBERSHIPS", "the members listing", func(es []auditEntry) bool {
		return len(es) == 1 && es[0].Resource == "r"
	})
	c.waitAudit(t, "action=USER_PERMISSIONS", "the user's permissions listing", func(es []auditEntry) bool {
		return len(es) == 1 && es[0].User != nil && *es[0].User == userFP(t, c.key, "alice")
	})
}
