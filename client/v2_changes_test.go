package client_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/client"
)

// withRevision answers like h and adds X-Auth-Revision: rev.
func withRevision(rev int64, h func(int64, http.ResponseWriter, *http.Request)) func(int64, http.ResponseWriter, *http.Request) {
	return func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-Revision", strconv.FormatInt(rev, 10))
		h(n, w, r)
	}
}

// LastRevision is the highest X-Auth-Revision of the client's writes (v1
// and v2); reads, the batch check and failed writes leave it alone, and a
// copy for another token starts from 0.
func TestLastRevisionTracksWrites(t *testing.T) {
	ctx := context.Background()
	f := newFake(t, nil)
	c := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, DisableBreaker: true})
	v := c.V2()
	steps := []struct {
		name string
		rev  int64
		h    func(int64, http.ResponseWriter, *http.Request)
		call func() error
		want int64
	}{
		{"v2 PutMember", 5, reply(201, v2OK(`{"role":"r","user":"u","created":true,"revision":5}`)),
			func() error { return second(v.PutMember(ctx, "r", "u")) }, 5},
		{"a read at a later revision", 9, reply(200, v2OK(`{"user":"u","permission":"p","allowed":true}`)),
			func() error { return second(v.Check(ctx, "u", "p")) }, 5},
		{"the batch check", 9, reply(200, v2OK(`{"results":[{"user":"u","permission":"p","allowed":true}]}`)),
			func() error { return second(v.CheckBatch(ctx, []client.Pair{{"u", "p"}})) }, 5},
		{"v1 AddPermission", 7, reply(200, yes),
			func() error { return second(c.AddPermission(ctx, "r", "p")) }, 7},
		{"an older revision answered late", 6, reply(200, v2OK(`{"role":"r","deleted":true}`)),
			func() error { return second(v.DeleteRole(ctx, "r")) }, 7},
		{"a failed write", 11, reply(409, v2Err(409, "role_exists", `"role":"r"`)),
			func() error { _, _ = v.CreateRole(ctx, "r", ""); return nil }, 7},
		{"v2 ImportPolicy", 12, reply(200, v2OK(`{"mode":"replace","dry_run":false,"version":12,"revision":12}`)),
			func() error { return second(v.ImportPolicy(ctx, "", client.ImportOptions{})) }, 12},
	}
	for _, s := range steps {
		f.set(withRevision(s.rev, s.h))
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := c.LastRevision(); got != s.want {
			t.Errorf("after %s: LastRevision() = %d, want %d", s.name, got, s.want)
		}
	}
	if got := c.WithToken("other").LastRevision(); got != 0 {
		t.Errorf("WithToken copy: LastRevision() = %d, want 0", got)
	}
}

// Concurrent writes leave the highest revision.
func TestLastRevisionConcurrent(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		withRevision(n, reply(200, yes))(n, w, r)
	})
	c := newClient(t, client.Options{BaseURL: f.URL})
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() { _, _ = c.AddPermission(context.Background(), "r", "p") })
	}
	wg.Wait()
	if got := c.LastRevision(); got != 40 {
		t.Errorf("LastRevision() = %d after revisions 1..40, want 40", got)
	}
}

// Each read that accepts a consistency sends the view's; the others never
// do.
func TestV2ConsistencySent(t *testing.T) {
	ctx := context.Background()
	list := `{"items":[],"next_cursor":null,"revision":3}`
	tests := []struct {
		name, answer, want string
		fn                 func(*client.V2) error
	}{
		{"Check", `{"user":"u","permission":"p","allowed":true}`, "GET /api/v2/check?consistency=at_least%3A7&permission=p&user=u",
			func(v *client.V2) error { return second(v.Check(ctx, "u", "p")) }},
		{"Explain", `{"allowed":false,"explanation":{"path":null,"rule":null}}`,
			"GET /api/v2/check?consistency=at_least%3A7&explain=true&permission=p&user=u",
			func(v *client.V2) error { return second(v.Explain(ctx, "u", "p")) }},
		{"CheckBatch", `{"results":[{"user":"u","permission":"p","allowed":true}]}`, "POST /api/v2/check?consistency=at_least%3A7",
			func(v *client.V2) error { return second(v.CheckBatch(ctx, []client.Pair{{"u", "p"}})) }},
		{"GetRole", `{"name":"r","description":null,"permissions":0,"members":0,"parents":[]}`, "GET /api/v2/roles/r?consistency=at_least%3A7",
			func(v *client.V2) error { return second(v.GetRole(ctx, "r")) }},
		{"ExportPolicy", `{"format":"casbin-csv","policy":"","roles":0,"rules":0,"version":1}`, "GET /api/v2/policy/export?consistency=at_least%3A7",
			func(v *client.V2) error { return second(v.ExportPolicy(ctx)) }},
		{"Roles", list, "GET /api/v2/roles?consistency=at_least%3A7", func(v *client.V2) error { return second(collect(v.Roles(ctx))) }},
		{"Members", list, "GET /api/v2/roles/r/members?consistency=at_least%3A7&limit=2",
			func(v *client.V2) error { return second(collect(v.WithPageSize(2).Members(ctx, "r"))) }},
		{"MembersDetailed", list, "GET /api/v2/roles/r/members?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.MembersDetailed(ctx, "r"))) }},
		{"Permissions", list, "GET /api/v2/roles/r/permissions?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.Permissions(ctx, "r"))) }},
		{"Parents", list, "GET /api/v2/roles/r/parents?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.Parents(ctx, "r"))) }},
		{"UserRoles", list, "GET /api/v2/users/u/roles?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.UserRoles(ctx, "u"))) }},
		{"UserPermissions", list, "GET /api/v2/users/u/permissions?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.UserPermissions(ctx, "u"))) }},
		{"PermissionRoles", list, "GET /api/v2/permissions/p/roles?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.PermissionRoles(ctx, "p"))) }},
		{"PermissionUsers", list, "GET /api/v2/permissions/p/users?consistency=at_least%3A7",
			func(v *client.V2) error { return second(collect(v.PermissionUsers(ctx, "p"))) }},
		{"Workflows (no consistency)", list, "GET /api/v2/workflows",
			func(v *client.V2) error { return second(collect(v.Workflows(ctx))) }},
		{"Changes (no consistency)", list, "GET /api/v2/changes",
			func(v *client.V2) error { return second(v.Changes(ctx, client.ChangesQuery{})) }},
		{"PutMember (a write)", `{"created":true}`, "PUT /api/v2/roles/r/members/u",
			func(v *client.V2) error { return second(v.PutMember(ctx, "r", "u")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, reply(200, v2OK(tc.answer)))
			v := newClient(t, client.Options{BaseURL: f.URL}).V2().WithConsistency(client.AtLeast(7))
			if err := tc.fn(v); err != nil {
				t.Fatal(err)
			}
			if got := f.requests(); !reflect.DeepEqual(got, []string{tc.want}) {
				t.Errorf("requests %q, want %q", got, tc.want)
			}
		})
	}
}

// The three consistencies and the zero one, as sent.
func TestV2ConsistencyForms(t *testing.T) {
	tests := []struct {
		c    client.Consistency
		want string
	}{
		{client.Consistency{}, "GET /api/v2/roles/r"},
		{client.MinimizeLatency(), "GET /api/v2/roles/r?consistency=minimize_latency"},
		{client.Full(), "GET /api/v2/roles/r?consistency=full"},
		{client.AtLeast(0), "GET /api/v2/roles/r?consistency=at_least%3A0"},
		{client.AtLeast(-3), "GET /api/v2/roles/r?consistency=at_least%3A0"},
		{client.AtLeast(1 << 40), "GET /api/v2/roles/r?consistency=at_least%3A1099511627776"},
	}
	for _, tc := range tests {
		t.Run(tc.c.String(), func(t *testing.T) {
			f := newFake(t, reply(200, v2OK(`{"name":"r","description":null,"permissions":0,"members":0,"parents":[]}`)))
			if _, err := newClient(t, client.Options{BaseURL: f.URL}).V2().WithConsistency(tc.c).GetRole(context.Background(), "r"); err != nil {
				t.Fatal(err)
			}
			if got := f.requests(); !reflect.DeepEqual(got, []string{tc.want}) {
				t.Errorf("requests %q, want %q", got, tc.want)
			}
		})
	}
}

// With session consistency (the client option or the view), reads send
// nothing until the client has written, then at_least of its last write;
// an explicit consistency wins.
func TestV2SessionConsistency(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts client.Options
		view func(*client.V2) *client.V2
		want []string
	}{
		{"option", client.Options{SessionConsistency: true}, func(v *client.V2) *client.V2 { return v },
			[]string{
				"GET /api/v2/check?permission=read&user=alice",
				"PUT /api/v2/roles/editor/members/alice",
				"GET /api/v2/check?consistency=at_least%3A42&permission=read&user=alice",
				"GET /api/v2/roles/editor/members?consistency=at_least%3A42",
			}},
		{"view", client.Options{}, (*client.V2).WithSessionConsistency,
			[]string{
				"GET /api/v2/check?permission=read&user=alice",
				"PUT /api/v2/roles/editor/members/alice",
				"GET /api/v2/check?consistency=at_least%3A42&permission=read&user=alice",
				"GET /api/v2/roles/editor/members?consistency=at_least%3A42",
			}},
		{"explicit wins", client.Options{SessionConsistency: true},
			func(v *client.V2) *client.V2 { return v.WithConsistency(client.Full()) },
			[]string{
				"GET /api/v2/check?consistency=full&permission=read&user=alice",
				"PUT /api/v2/roles/editor/members/alice",
				"GET /api/v2/check?consistency=full&permission=read&user=alice",
				"GET /api/v2/roles/editor/members?consistency=full",
			}},
		{"off", client.Options{}, func(v *client.V2) *client.V2 { return v },
			[]string{
				"GET /api/v2/check?permission=read&user=alice",
				"PUT /api/v2/roles/editor/members/alice",
				"GET /api/v2/check?permission=read&user=alice",
				"GET /api/v2/roles/editor/members",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPut:
					withRevision(42, reply(201, v2OK(`{"role":"editor","user":"alice","created":true,"revision":42}`)))(n, w, r)
				case r.URL.Path == "/api/v2/check":
					withRevision(42, reply(200, v2OK(`{"user":"alice","permission":"read","allowed":true,"revision":42}`)))(n, w, r)
				default:
					reply(200, v2OK(`{"items":[{"user":"alice","expires_at":null}],"next_cursor":null,"revision":42}`))(n, w, r)
				}
			})
			tc.opts.BaseURL = f.URL
			v := tc.view(newClient(t, tc.opts).V2())
			if _, err := v.Check(ctx, "alice", "read"); err != nil {
				t.Fatal(err)
			}
			if _, err := v.PutMember(ctx, "editor", "alice"); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Check(ctx, "alice", "read"); err != nil {
				t.Fatal(err)
			}
			if _, err := collect(v.Members(ctx, "editor")); err != nil {
				t.Fatal(err)
			}
			if got := f.requests(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("requests\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// Reads say the revision they were computed at: data.revision, else the
// X-Auth-Revision header.
func TestV2ReadRevisions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		h    func(int64, http.ResponseWriter, *http.Request)
		fn   func(*client.V2) (any, error)
		want any
	}{
		{"CheckRevision from data", withRevision(9, reply(200, v2OK(`{"user":"u","permission":"p","allowed":true,"revision":8}`))),
			func(v *client.V2) (any, error) { return value(v.CheckRevision(ctx, "u", "p")) },
			client.Decision{Allowed: true, Revision: 8}},
		{"CheckRevision from the header", withRevision(9, reply(200, v2OK(`{"user":"u","permission":"p","allowed":false}`))),
			func(v *client.V2) (any, error) { return value(v.CheckRevision(ctx, "u", "p")) },
			client.Decision{Revision: 9}},
		{"CheckRevision of an older service", reply(200, v2OK(`{"user":"u","permission":"p","allowed":true}`)),
			func(v *client.V2) (any, error) { return value(v.CheckRevision(ctx, "u", "p")) },
			client.Decision{Allowed: true}},
		{"Explain", reply(200, v2OK(`{"allowed":false,"explanation":{"path":null,"rule":null},"revision":4}`)),
			func(v *client.V2) (any, error) { return value(v.Explain(ctx, "u", "p")) },
			client.Explanation{Revision: 4}},
		{"GetRole", reply(200, v2OK(`{"name":"r","description":"d","permissions":1,"members":2,"parents":[],"revision":6}`)),
			func(v *client.V2) (any, error) { return value(v.GetRole(ctx, "r")) },
			client.RoleDetail{Name: "r", Description: "d", Permissions: 1, Members: 2, Parents: []string{}, Revision: 6}},
		{"ExportPolicy", reply(200, v2OK(`{"format":"casbin-csv","policy":"","roles":0,"rules":0,"version":3,"revision":3}`)),
			func(v *client.V2) (any, error) { return value(v.ExportPolicy(ctx)) },
			client.PolicyExport{Format: "casbin-csv", Version: 3, Revision: 3}},
		{"ExportPolicy from the header", withRevision(5, reply(200, v2OK(`{"format":"casbin-csv","policy":"","roles":0,"rules":0,"version":5}`))),
			func(v *client.V2) (any, error) { return value(v.ExportPolicy(ctx)) },
			client.PolicyExport{Format: "casbin-csv", Version: 5, Revision: 5}},
		{"CheckBatchRevision", reply(200, v2OK(`{"results":[{"user":"u","permission":"p","allowed":true}],"revision":2}`)),
			func(v *client.V2) (any, error) { return value(v.CheckBatchRevision(ctx, []client.Pair{{"u", "p"}})) },
			client.BatchResult{Results: []client.Result{{"u", "p", true}}, Revision: 2}},
		{"CheckBatchRevision of no pairs", reply(500, "{}"),
			func(v *client.V2) (any, error) { return value(v.CheckBatchRevision(ctx, nil)) },
			client.BatchResult{Results: []client.Result{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			got, err := tc.fn(newClient(t, client.Options{BaseURL: f.URL}).V2())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// A batch sent as several requests states the lowest of their revisions.
func TestV2CheckBatchRevisionLowest(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		var res []string
		for range map[int64]int{1: client.MaxBatch, 2: client.MaxBatch, 3: 1}[n] {
			res = append(res, `{"user":"u","permission":"p","allowed":true}`)
		}
		rev := map[int64]string{1: "7", 2: "5", 3: "9"}[n]
		reply(200, v2OK(`{"results":[`+join(res)+`],"revision":`+rev+`}`))(n, w, r)
	})
	pairs := make([]client.Pair, 2*client.MaxBatch+1)
	for i := range pairs {
		pairs[i] = client.Pair{User: "u", Permission: "p"}
	}
	b, err := newClient(t, client.Options{BaseURL: f.URL}).V2().CheckBatchRevision(context.Background(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Results) != len(pairs) || b.Revision != 5 {
		t.Errorf("got %d results at revision %d, want %d at 5", len(b.Results), b.Revision, len(pairs))
	}
}

func join(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// The errors of the contract match their sentinels, and only theirs.
func TestV2RevisionErrors(t *testing.T) {
	sentinels := []error{client.ErrConsistencyUnavailable, client.ErrRevisionAhead, client.ErrChangesExpired, client.ErrUnavailable}
	tests := []struct {
		name   string
		status int
		body   string
		want   []error
	}{
		{"consistency_unavailable", 503, v2Err(503, "consistency_unavailable", ""),
			[]error{client.ErrConsistencyUnavailable, client.ErrUnavailable}},
		{"revision_ahead", 400, v2Err(400, "revision_ahead", `"revision":99,"latest":12`), []error{client.ErrRevisionAhead}},
		{"changes_expired", 410, v2Err(410, "changes_expired", `"oldest":40`), []error{client.ErrChangesExpired}},
		{"another 503", 503, v2Err(503, "unavailable", ""), []error{client.ErrUnavailable}},
		{"another 400", 400, v2Err(400, "invalid_parameter", `"parameter":"consistency"`), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, reply(tc.status, tc.body))
			v := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, DisableBreaker: true}).V2()
			_, err := v.WithConsistency(client.AtLeast(99)).Check(context.Background(), "u", "p")
			if err == nil {
				t.Fatal("nil error")
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), slicesContains(tc.want, s); got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
	// consistency_unavailable is retried like any 503 of a read.
	f := newFake(t, failFirst(1, reply(503, v2Err(503, "consistency_unavailable", ""), "Retry-After", "0"),
		reply(200, v2OK(`{"user":"u","permission":"p","allowed":true}`))))
	v := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 1}).V2()
	if ok, err := v.Check(context.Background(), "u", "p"); err != nil || !ok || f.hits.Load() != 2 {
		t.Errorf("Check after a consistency_unavailable: %v, %v after %d requests; want true after 2", ok, err, f.hits.Load())
	}
}

func slicesContains(list []error, e error) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// The time-bound PUTs send their body and read the expiry and revision.
func TestV2TimeBoundPuts(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	local := at.In(time.FixedZone("X", 3600))
	tests := []struct {
		name, answer, wantReq, wantBody string
		fn                              func(*client.V2) (client.PutResult, error)
		want                            client.PutResult
	}{
		{"PutMemberFor", `{"created":true,"expires_at":"2031-01-02T03:04:05Z","revision":3,"role":"r","user":"u"}`,
			"PUT /api/v2/roles/r/members/u", `application/json {"ttl":"4h0m0s"}`,
			func(v *client.V2) (client.PutResult, error) { return v.PutMemberFor(ctx, "r", "u", 4*time.Hour) },
			client.PutResult{Created: true, ExpiresAt: &at, Revision: 3}},
		{"PutMemberUntil", `{"created":false,"expires_at":"2031-01-02T03:04:05Z","revision":4,"role":"r","user":"u"}`,
			"PUT /api/v2/roles/r/members/u", `application/json {"expires_at":"2031-01-02T03:04:05Z"}`,
			func(v *client.V2) (client.PutResult, error) { return v.PutMemberUntil(ctx, "r", "u", local) },
			client.PutResult{ExpiresAt: &at, Revision: 4}},
		{"PutMemberUntil zero: permanent", `{"created":false,"expires_at":null,"revision":5,"role":"r","user":"u"}`,
			"PUT /api/v2/roles/r/members/u", " ",
			func(v *client.V2) (client.PutResult, error) { return v.PutMemberUntil(ctx, "r", "u", time.Time{}) },
			client.PutResult{Revision: 5}},
		{"PutPermissionFor", `{"created":true,"expires_at":"2031-01-02T03:04:05Z","permission":"p","revision":6,"role":"r"}`,
			"PUT /api/v2/roles/r/permissions/p", `application/json {"ttl":"1m30s"}`,
			func(v *client.V2) (client.PutResult, error) { return v.PutPermissionFor(ctx, "r", "p", 90*time.Second) },
			client.PutResult{Created: true, ExpiresAt: &at, Revision: 6}},
		{"PutPermissionUntil", `{"created":true,"expires_at":"2031-01-02T03:04:05Z","permission":"p","revision":7,"role":"r"}`,
			"PUT /api/v2/roles/r/permissions/p", `application/json {"expires_at":"2031-01-02T03:04:05Z"}`,
			func(v *client.V2) (client.PutResult, error) { return v.PutPermissionUntil(ctx, "r", "p", at) },
			client.PutResult{Created: true, ExpiresAt: &at, Revision: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bodies
			f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				b.record(r)
				reply(200, v2OK(tc.answer))(n, w, r)
			})
			c := newClient(t, client.Options{BaseURL: f.URL})
			got, err := tc.fn(c.V2())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if reqs := f.requests(); !reflect.DeepEqual(reqs, []string{tc.wantReq}) {
				t.Errorf("requests %q, want %q", reqs, tc.wantReq)
			}
			if got := b.get(); len(got) != 1 || got[0] != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
		})
	}
	f := newFake(t, reply(200, v2OK(`{}`)))
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	for _, err := range []error{
		second(v.PutMemberFor(ctx, "r", "u", 0)), second(v.PutPermissionFor(ctx, "r", "p", -time.Second)),
		second(v.PutMemberFor(ctx, "", "u", time.Hour)),
	} {
		if err == nil {
			t.Error("a ttl of 0, a negative ttl or an empty name: nil error")
		}
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d requests for refused arguments, want 0", n)
	}
	if _, err := v.PutMemberFor(ctx, "r", "u", time.Hour); err == nil {
		t.Error("an answer without created: nil error")
	}
}

// The detailed listings yield the expiries; the plain ones still yield the
// names.
func TestV2DetailedListings(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/roles/r/members" {
			reply(200, v2OK(`{"items":[{"expires_at":"2031-01-02T03:04:05Z","user":"alice"},{"expires_at":null,"user":"bob"}],"next_cursor":null,"revision":3}`))(n, w, r)
			return
		}
		reply(200, v2OK(`{"items":[{"expires_at":null,"name":"read"},{"expires_at":"2031-01-02T03:04:05Z","name":"write"}],"next_cursor":null,"revision":3}`))(n, w, r)
	})
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	members, err := collect(v.MembersDetailed(ctx, "r"))
	if want := []client.Member{{User: "alice", ExpiresAt: &at}, {User: "bob"}}; err != nil || !reflect.DeepEqual(members, want) {
		t.Errorf("MembersDetailed: %+v, %v; want %+v", members, err, want)
	}
	grants, err := collect(v.PermissionsDetailed(ctx, "r"))
	if want := []client.Grant{{Permission: "read"}, {Permission: "write", ExpiresAt: &at}}; err != nil || !reflect.DeepEqual(grants, want) {
		t.Errorf("PermissionsDetailed: %+v, %v; want %+v", grants, err, want)
	}
	names, err := collect(v.Members(ctx, "r"))
	if want := []string{"alice", "bob"}; err != nil || !reflect.DeepEqual(names, want) {
		t.Errorf("Members: %q, %v; want %q", names, err, want)
	}
	f.set(reply(200, v2OK(`{"items":[{"expires_at":"tomorrow","user":"alice"}],"next_cursor":null}`)))
	if _, err := collect(v.MembersDetailed(ctx, "r")); err == nil {
		t.Error("a malformed expires_at: nil error")
	}
}

// One page of the feed: its query and its items.
func TestV2ChangesPage(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	exp := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	desc := "Reads"
	items := `[{"at":"2030-05-06T07:08:09Z","op":"create_role","revision":3,"role":"editor"},
		{"at":"2030-05-06T07:08:09Z","description":"Reads","op":"set_description","revision":3,"role":"editor"},
		{"at":"2030-05-06T07:08:09Z","description":null,"op":"set_description","revision":4,"role":"editor"},
		{"at":"2030-05-06T07:08:09Z","expires_at":"2031-01-02T03:04:05Z","op":"add_member","revision":5,"role":"editor","user":"alice"},
		{"at":"2030-05-06T07:08:09Z","op":"grant","permission":"read","revision":6,"role":"editor"},
		{"at":"2030-05-06T07:08:09Z","op":"add_parent","parent":"staff","revision":7,"role":"editor"},
		{"at":"2030-05-06T07:08:09Z","op":"delete_user","revision":8,"user":"bob"},
		{"at":"2030-05-06T07:08:09Z","op":"expire","permission":"write","revision":9,"role":"editor"}]`
	f := newFake(t, reply(200, v2OK(`{"items":`+items+`,"next_cursor":"c9","revision":9}`)))
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	page, err := v.Changes(ctx, client.ChangesQuery{Since: 2, Limit: 8, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := client.ChangesPage{NextCursor: "c9", Revision: 9, Items: []client.Change{
		{Revision: 3, Op: client.OpCreateRole, Role: "editor", At: at},
		{Revision: 3, Op: client.OpSetDescription, Role: "editor", Description: &desc, At: at},
		{Revision: 4, Op: client.OpSetDescription, Role: "editor", At: at},
		{Revision: 5, Op: client.OpAddMember, Role: "editor", User: "alice", ExpiresAt: &exp, At: at},
		{Revision: 6, Op: client.OpGrant, Role: "editor", Permission: "read", At: at},
		{Revision: 7, Op: client.OpAddParent, Role: "editor", Parent: "staff", At: at},
		{Revision: 8, Op: client.OpDeleteUser, User: "bob", At: at},
		{Revision: 9, Op: client.OpExpire, Role: "editor", Permission: "write", At: at},
	}}
	if !reflect.DeepEqual(page, want) {
		t.Errorf("page\n%+v\nwant\n%+v", page, want)
	}
	if _, err := v.Changes(ctx, client.ChangesQuery{Since: 2, Cursor: "c9"}); err != nil {
		t.Fatal(err)
	}
	wantReqs := []string{"GET /api/v2/changes?limit=8&since=2&wait=5s", "GET /api/v2/changes?cursor=c9"}
	if got := f.requests(); !reflect.DeepEqual(got, wantReqs) {
		t.Errorf("requests %q, want %q", got, wantReqs)
	}
	for _, q := range []client.ChangesQuery{{Wait: -time.Second}, {Wait: 61 * time.Second}} {
		if _, err := v.Changes(ctx, q); err == nil {
			t.Errorf("Changes(%+v): nil error", q)
		}
	}
	f.set(reply(200, v2OK(`{"items":[],"next_cursor":null}`)))
	if _, err := v.Changes(ctx, client.ChangesQuery{}); err == nil {
		t.Error("a page without revision: nil error")
	}
}

// FollowChanges follows the next cursors, then long-polls from the
// tenant's latest revision, and ends without an error when ctx ends.
func TestV2FollowChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	item := func(rev int, role string) string {
		return `{"at":"2030-05-06T07:08:09Z","op":"create_role","revision":` + strconv.Itoa(rev) + `,"role":"` + role + `"}`
	}
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			reply(200, v2OK(`{"items":[`+item(3, "a")+`,`+item(4, "b")+`],"next_cursor":"c4","revision":4}`))(n, w, r)
		case 2:
			reply(200, v2OK(`{"items":[`+item(6, "c")+`],"next_cursor":null,"revision":8}`))(n, w, r)
		case 3: // the long poll ends with no change
			reply(200, v2OK(`{"items":[],"next_cursor":null,"revision":8}`))(n, w, r)
		case 4: // a change commits during the long poll
			reply(200, v2OK(`{"items":[`+item(9, "d")+`],"next_cursor":null,"revision":9}`))(n, w, r)
		default: // the caller goes away while the request is held
			cancel()
			<-r.Context().Done()
		}
	})
	v := newClient(t, client.Options{BaseURL: f.URL}).V2().WithPageSize(2)
	var roles []string
	for c, err := range v.FollowChanges(ctx, 2, 20*time.Second) {
		if err != nil {
			t.Fatalf("after %q: %v", roles, err)
		}
		roles = append(roles, c.Role)
	}
	if want := []string{"a", "b", "c", "d"}; !reflect.DeepEqual(roles, want) {
		t.Errorf("roles %q, want %q", roles, want)
	}
	want := []string{
		"GET /api/v2/changes?limit=2&since=2&wait=20s",
		"GET /api/v2/changes?cursor=c4&limit=2",
		"GET /api/v2/changes?limit=2&since=8&wait=20s",
		"GET /api/v2/changes?limit=2&since=8&wait=20s",
		"GET /api/v2/changes?limit=2&since=9&wait=20s",
	}
	if got := f.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
}

// A position the feed no longer holds ends the iteration with an error
// matching ErrChangesExpired, carrying the oldest revision; breaking out of
// the loop sends nothing more.
func TestV2FollowChangesExpired(t *testing.T) {
	f := newFake(t, reply(410, v2Err(410, "changes_expired", `"oldest":40`)))
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	var errs []error
	for _, err := range v.FollowChanges(context.Background(), 3, 0) {
		errs = append(errs, err)
	}
	var ae *client.APIError
	if len(errs) != 1 || !errors.Is(errs[0], client.ErrChangesExpired) || !errors.As(errs[0], &ae) || ae.Details["oldest"] != float64(40) {
		t.Fatalf("errors %v, want one matching ErrChangesExpired with details.oldest 40", errs)
	}
	want := []string{"GET /api/v2/changes?since=3&wait=30s"}
	if got := f.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	f.set(reply(200, v2OK(`{"items":[{"at":"2030-05-06T07:08:09Z","op":"create_role","revision":41,"role":"a"}],"next_cursor":"more","revision":41}`)))
	for range v.FollowChanges(context.Background(), 40, time.Second) {
		break
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests after breaking at the first change, want 2", n)
	}
}
