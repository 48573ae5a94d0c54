package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/client"
)

// v2OK wraps data in the v2 success envelope.
func v2OK(data string) string {
	return `{"code":200,"data":` + data + `,"message":"m","success":true,"timestamp":"t"}`
}

// v2Err is a v2 error envelope with reason and extra details.
func v2Err(code int, reason, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"code":%d,"details":{"reason":%q%s},"message":"msg","success":false,"timestamp":"t"}`, code, reason, extra)
}

// bodies records the request bodies a fake got.
type bodies struct {
	mu   sync.Mutex
	list []string
}

func (b *bodies) record(r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.list = append(b.list, r.Header.Get("Content-Type")+" "+string(data))
}

func (b *bodies) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.list)
}

// The client's reasons are the service's, all of them.
func TestV2ReasonsAreTheService(t *testing.T) {
	got := []string{
		client.ReasonBadRequest, client.ReasonInvalidName, client.ReasonInvalidParameter, client.ReasonInvalidCursor,
		client.ReasonInvalidBody, client.ReasonBatchTooLarge, client.ReasonInvalidPolicy, client.ReasonUnauthenticated,
		client.ReasonForbidden, client.ReasonNotFound, client.ReasonRoleNotFound, client.ReasonMethodNotAllowed,
		client.ReasonRoleExists, client.ReasonRoleCycle, client.ReasonRoleDepth, client.ReasonKeyRotated,
		client.ReasonConflict, client.ReasonBodyTooLarge, client.ReasonUnsupportedMediaType, client.ReasonRateLimited,
		client.ReasonAuditChainMissing, client.ReasonInternal, client.ReasonUnavailable, client.ReasonWorkflowNotFound,
		client.ReasonInvalidSchedule, client.ReasonWebhookRefused, client.ReasonRevisionAhead,
		client.ReasonConsistencyUnavailable, client.ReasonChangesExpired, client.ReasonExpiryUnsupported,
	}
	if !reflect.DeepEqual(got, api.Reasons) {
		t.Errorf("client reasons %q, service reasons %q", got, api.Reasons)
	}
	if client.MaxBatch != 1000 {
		t.Errorf("MaxBatch = %d, want the service's 1000", client.MaxBatch)
	}
}

// Every v2 method sends its method, path and body, and reads its answer.
func TestV2Routes(t *testing.T) {
	desc := "Reads reports"
	empty := ""
	tests := []struct {
		name     string
		answer   string // data
		wantReq  string // "METHOD RequestURI"
		wantBody string // "Content-Type body", or "" for none
		fn       func(context.Context, *client.V2) (any, error)
		want     any
	}{
		{"Check", `{"user":"a b","permission":"r/x","allowed":true}`, "GET /api/v2/check?permission=r%2Fx&user=a+b", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.Check(ctx, "a b", "r/x")) }, true},
		{"Explain", `{"user":"alice","permission":"read","allowed":true,"explanation":{"path":[{"type":"user","name":"alice"},{"type":"role","name":"editor"},{"type":"permission","name":"read"}],"rule":["role:editor","d","read"]}}`,
			"GET /api/v2/check?explain=true&permission=read&user=alice", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.Explain(ctx, "alice", "read")) },
			client.Explanation{Allowed: true, Path: []client.Step{{"user", "alice"}, {"role", "editor"}, {"permission", "read"}}, Rule: []string{"role:editor", "d", "read"}}},
		{"Explain denied", `{"user":"bob","permission":"read","allowed":false,"explanation":{"path":null,"rule":null}}`,
			"GET /api/v2/check?explain=true&permission=read&user=bob", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.Explain(ctx, "bob", "read")) },
			client.Explanation{}},
		{"CheckBatch", `{"results":[{"user":"a","permission":"r","allowed":true},{"user":"b","permission":"r","allowed":false}]}`,
			"POST /api/v2/check", `application/json {"checks":[{"user":"a","permission":"r"},{"user":"b","permission":"r"}]}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.CheckBatch(ctx, []client.Pair{{"a", "r"}, {"b", "r"}}))
			},
			[]client.Result{{"a", "r", true}, {"b", "r", false}}},
		{"CreateRole", `{"name":"editor","description":"Reads reports"}`, "POST /api/v2/roles",
			`application/json {"name":"editor","description":"Reads reports"}`,
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.CreateRole(ctx, "editor", desc)) },
			client.RoleSummary{Name: "editor", Description: desc}},
		{"CreateRole without description", `{"name":"editor","description":null}`, "POST /api/v2/roles",
			`application/json {"name":"editor"}`,
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.CreateRole(ctx, "editor", "")) },
			client.RoleSummary{Name: "editor"}},
		{"PutRole", `{"name":"a/b","description":null,"created":true}`, "PUT /api/v2/roles/a%2Fb", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.PutRole(ctx, "a/b", nil)) }, true},
		{"PutRole description", `{"name":"editor","description":"Reads reports","created":false}`, "PUT /api/v2/roles/editor",
			`application/json {"description":"Reads reports"}`,
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.PutRole(ctx, "editor", &desc)) }, false},
		{"PutRole clears", `{"name":"editor","description":null,"created":false}`, "PUT /api/v2/roles/editor",
			`application/json {"description":null}`,
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.PutRole(ctx, "editor", &empty)) }, false},
		{"GetRole", `{"name":"editor","description":null,"permissions":2,"members":3,"parents":["staff"]}`, "GET /api/v2/roles/editor", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.GetRole(ctx, "editor")) },
			client.RoleDetail{Name: "editor", Permissions: 2, Members: 3, Parents: []string{"staff"}}},
		{"DeleteRole", `{"role":"editor","deleted":true}`, "DELETE /api/v2/roles/editor", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.DeleteRole(ctx, "editor")) }, true},
		{"PutPermission", `{"role":"editor","permission":"read","created":true}`, "PUT /api/v2/roles/editor/permissions/read", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutPermission(ctx, "editor", "read"))
			}, true},
		{"DeletePermission", `{"role":"editor","permission":"read","deleted":false}`, "DELETE /api/v2/roles/editor/permissions/read", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.DeletePermission(ctx, "editor", "read"))
			}, false},
		{"PutMember", `{"role":"editor","user":"alice","created":false}`, "PUT /api/v2/roles/editor/members/alice", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutMember(ctx, "editor", "alice"))
			}, false},
		{"DeleteMember", `{"role":"editor","user":"alice","deleted":true}`, "DELETE /api/v2/roles/editor/members/alice", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.DeleteMember(ctx, "editor", "alice"))
			}, true},
		{"PutParent", `{"role":"editor","parent":"staff","created":true}`, "PUT /api/v2/roles/editor/parents/staff", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutParent(ctx, "editor", "staff"))
			}, true},
		{"DeleteParent", `{"role":"editor","parent":"staff","deleted":true}`, "DELETE /api/v2/roles/editor/parents/staff", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.DeleteParent(ctx, "editor", "staff"))
			}, true},
		{"DeleteUser", `{"user":"alice","memberships_removed":2}`, "DELETE /api/v2/users/alice", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.DeleteUser(ctx, "alice")) }, 2},
		{"ExportPolicy", `{"format":"casbin-csv","policy":"p, role:editor, d, read\n","roles":1,"rules":1,"version":7}`, "GET /api/v2/policy/export", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.ExportPolicy(ctx)) },
			client.PolicyExport{Format: "casbin-csv", Policy: "p, role:editor, d, read\n", Roles: 1, Rules: 1, Version: 7}},
		{"ImportPolicy", `{"mode":"merge","dry_run":true,"roles_created":1,"roles_deleted":0,"rules_added":2,"rules_removed":0,"version":7}`,
			"POST /api/v2/policy/import?dry_run=true&mode=merge", `application/json {"policy":"p, role:x, d, read\n"}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.ImportPolicy(ctx, "p, role:x, d, read\n", client.ImportOptions{Merge: true, DryRun: true}))
			},
			client.ImportResult{Mode: "merge", DryRun: true, RolesCreated: 1, RulesAdded: 2, Version: 7}},
		{"ImportPolicy replace", `{"mode":"replace","dry_run":false,"roles_created":0,"roles_deleted":1,"rules_added":0,"rules_removed":3,"version":8}`,
			"POST /api/v2/policy/import", `application/json {"policy":""}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.ImportPolicy(ctx, "", client.ImportOptions{}))
			},
			client.ImportResult{Mode: "replace", RolesDeleted: 1, RulesRemoved: 3, Version: 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bodies
			f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				b.record(r)
				reply(200, v2OK(tc.answer))(n, w, r)
			})
			v := newClient(t, client.Options{BaseURL: f.URL}).V2()
			got, err := tc.fn(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if reqs := f.requests(); !reflect.DeepEqual(reqs, []string{tc.wantReq}) {
				t.Errorf("requests %q, want %q", reqs, tc.wantReq)
			}
			wantBody := " "
			if tc.wantBody != "" {
				wantBody = tc.wantBody
			}
			if got := b.get(); len(got) != 1 || got[0] != wantBody {
				t.Errorf("body %q, want %q", got, wantBody)
			}
		})
	}
}

// pages is a fake list route answering three pages of items a..e, two per
// page: page k is the answer to cursor "ck" (none for the first).
func pages(w http.ResponseWriter, r *http.Request) {
	item := func(names ...string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, `{"name":"`+n+`","inherited":false}`)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	var data string
	switch r.URL.Query().Get("cursor") {
	case "":
		data = `{"items":` + item("a", "b") + `,"next_cursor":"c1"}`
	case "c1":
		data = `{"items":` + item("c", "d") + `,"next_cursor":"c2"}`
	case "c2":
		data = `{"items":` + item("e") + `,"next_cursor":null}`
	default:
		reply(400, v2Err(400, "invalid_cursor", `"parameter":"cursor"`))(0, w, r)
		return
	}
	reply(200, v2OK(data))(0, w, r)
}

// A list fetches its next page only when the iteration goes past the last
// item of the current one, and not at all before the iteration starts.
func TestV2ListIsLazy(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, r *http.Request) { pages(w, r) })
	v := newClient(t, client.Options{BaseURL: f.URL}).V2().WithPageSize(2)
	ctx := context.Background()

	seq := v.PermissionRoles(ctx, "read")
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests before iterating, want 0", n)
	}
	var seen []string
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, r.Name)
		// Items of page k are read while only k pages were fetched.
		if want := (len(seen) + 1) / 2; len(f.requests()) != want {
			t.Fatalf("at item %q: %d requests, want %d", r.Name, len(f.requests()), want)
		}
		if r.Name == "b" {
			break // the last item of the first page: no second request
		}
	}
	if want := []string{"GET /api/v2/permissions/read/roles?limit=2"}; !reflect.DeepEqual(f.requests(), want) {
		t.Fatalf("after breaking at b: requests %q, want %q", f.requests(), want)
	}
	seen = nil
	for r, err := range seq { // a new iteration starts over
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, r.Name)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("items %q, want %q", seen, want)
	}
	want := []string{
		"GET /api/v2/permissions/read/roles?limit=2",
		"GET /api/v2/permissions/read/roles?limit=2",
		"GET /api/v2/permissions/read/roles?cursor=c1&limit=2",
		"GET /api/v2/permissions/read/roles?cursor=c2&limit=2",
	}
	if !reflect.DeepEqual(f.requests(), want) {
		t.Errorf("requests %q, want %q", f.requests(), want)
	}
}

// Without WithPageSize no limit is sent: the service's default applies.
func TestV2ListDefaultPageSize(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, r *http.Request) { pages(w, r) })
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	for _, err := range v.Permissions(context.Background(), "editor") {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if want := []string{"GET /api/v2/roles/editor/permissions"}; !reflect.DeepEqual(f.requests(), want) {
		t.Errorf("requests %q, want %q", f.requests(), want)
	}
}

// Every list iterator decodes its items.
func TestV2ListItems(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, items, wantReq string
		collect              func(*client.V2) (any, error)
		want                 any
	}{
		{"Roles", `[{"name":"admin","description":"All"},{"name":"editor","description":null}]`, "GET /api/v2/roles",
			func(v *client.V2) (any, error) { return collect(v.Roles(ctx)) },
			[]client.RoleSummary{{"admin", "All"}, {"editor", ""}}},
		{"Permissions", `[{"name":"read"},{"name":"write"}]`, "GET /api/v2/roles/editor/permissions",
			func(v *client.V2) (any, error) { return collect(v.Permissions(ctx, "editor")) }, []string{"read", "write"}},
		{"Members", `[{"user":"alice"},{"user":"bob@x"}]`, "GET /api/v2/roles/editor/members",
			func(v *client.V2) (any, error) { return collect(v.Members(ctx, "editor")) }, []string{"alice", "bob@x"}},
		{"Parents", `[{"name":"staff"}]`, "GET /api/v2/roles/editor/parents",
			func(v *client.V2) (any, error) { return collect(v.Parents(ctx, "editor")) }, []string{"staff"}},
		{"UserRoles", `[{"name":"editor","inherited":false},{"name":"staff","inherited":true,"via":"editor"}]`, "GET /api/v2/users/alice/roles",
			func(v *client.V2) (any, error) { return collect(v.UserRoles(ctx, "alice")) },
			[]client.UserRole{{"editor", false, ""}, {"staff", true, "editor"}}},
		{"UserPermissions", `[{"name":"read","roles":["editor","staff"]}]`, "GET /api/v2/users/alice/permissions",
			func(v *client.V2) (any, error) { return collect(v.UserPermissions(ctx, "alice")) },
			[]client.UserPermission{{"read", []string{"editor", "staff"}}}},
		{"PermissionRoles", `[{"name":"editor","inherited":false}]`, "GET /api/v2/permissions/read/roles",
			func(v *client.V2) (any, error) { return collect(v.PermissionRoles(ctx, "read")) },
			[]client.PermissionRole{{"editor", false}}},
		{"PermissionUsers", `[{"user":"alice","roles":["editor"]}]`, "GET /api/v2/permissions/read/users",
			func(v *client.V2) (any, error) { return collect(v.PermissionUsers(ctx, "read")) },
			[]client.PermissionUser{{"alice", []string{"editor"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, reply(200, v2OK(`{"items":`+tc.items+`,"next_cursor":null}`)))
			got, err := tc.collect(newClient(t, client.Options{BaseURL: f.URL}).V2())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if want := []string{tc.wantReq}; !reflect.DeepEqual(f.requests(), want) {
				t.Errorf("requests %q, want %q", f.requests(), want)
			}
		})
	}
}

// collect reads a whole iterator, stopping at its first error.
func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	out := []T{}
	for it, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, it)
	}
	return out, nil
}

// An error on a later page ends the iteration after the earlier pages'
// items, as one (zero, err) pair carrying the reason.
func TestV2ListErrorOnLaterPage(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			reply(200, v2OK(`{"items":[{"name":"a"}],"next_cursor":"gone"}`))(n, w, r)
			return
		}
		reply(404, v2Err(404, "role_not_found", `"role":"editor"`))(n, w, r)
	})
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	var items []string
	var errs []error
	for p, err := range v.Parents(context.Background(), "editor") {
		if err != nil {
			errs = append(errs, err)
			continue // the iterator stops by itself after an error
		}
		items = append(items, p)
	}
	if !reflect.DeepEqual(items, []string{"a"}) || len(errs) != 1 {
		t.Fatalf("items %q, errors %v; want [a] and one error", items, errs)
	}
	var ae *client.APIError
	if !errors.As(errs[0], &ae) || ae.Reason != client.ReasonRoleNotFound || ae.Details["role"] != "editor" {
		t.Errorf("error %#v, want an *APIError with reason role_not_found and details.role editor", errs[0])
	}
	// A 2xx answer without items is an error, never an empty list.
	f.set(reply(200, v2OK(`{"next_cursor":null}`)))
	if got, err := collect(v.Parents(context.Background(), "editor")); err == nil {
		t.Errorf("answer without items: got %q, nil; want an error", got)
	}
	// A cursor that does not move would loop for ever: an error.
	f.set(reply(200, v2OK(`{"items":[{"name":"a"}],"next_cursor":"same"}`)))
	if _, err := collect(v.Parents(context.Background(), "editor")); err == nil {
		t.Error("a repeated next_cursor: got nil, want an error")
	}
}

// Errors carry the v2 reason and details; sentinels still match.
func TestV2ErrorReason(t *testing.T) {
	tests := []struct {
		status   int
		body     string
		reason   string
		detail   string
		sentinel error
	}{
		{409, v2Err(409, "role_exists", `"role":"editor"`), client.ReasonRoleExists, "role", nil},
		{400, v2Err(400, "invalid_name", `"kind":"role"`), client.ReasonInvalidName, "kind", nil},
		{401, v2Err(401, "unauthenticated", ""), client.ReasonUnauthenticated, "", client.ErrUnauthorized},
		{503, v2Err(503, "unavailable", ""), client.ReasonUnavailable, "", client.ErrUnavailable},
		{400, `{"code":400,"details":{},"message":"v1","success":false,"timestamp":"t"}`, "", "", nil},
		{502, `<html>bad gateway</html>`, "", "", client.ErrUnavailable},
	}
	for _, tc := range tests {
		f := newFake(t, reply(tc.status, tc.body))
		v := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, DisableBreaker: true}).V2()
		_, err := v.CreateRole(context.Background(), "editor", "")
		var ae *client.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("%d: got %v, want an *APIError", tc.status, err)
		}
		if ae.StatusCode != tc.status || ae.Reason != tc.reason {
			t.Errorf("%d: got status %d reason %q, want %d %q", tc.status, ae.StatusCode, ae.Reason, tc.status, tc.reason)
		}
		if tc.detail != "" && ae.Details[tc.detail] == nil {
			t.Errorf("%d: details %v lack %q", tc.status, ae.Details, tc.detail)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%d: %v does not match %v", tc.status, err, tc.sentinel)
		}
	}
}

// PUT, DELETE, GET and the batch check are retried; POST /roles and the
// policy import never are.
func TestV2RetryPolicy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		retried bool
		ok      string
		fn      func(*client.V2) error
	}{
		{"PutRole", true, `{"name":"a","description":null,"created":true}`,
			func(v *client.V2) error { _, err := v.PutRole(ctx, "a", nil); return err }},
		{"PutMember", true, `{"role":"a","user":"u","created":true}`,
			func(v *client.V2) error { _, err := v.PutMember(ctx, "a", "u"); return err }},
		{"DeleteUser", true, `{"user":"u","memberships_removed":0}`,
			func(v *client.V2) error { _, err := v.DeleteUser(ctx, "u"); return err }},
		{"Check", true, `{"user":"u","permission":"p","allowed":false}`,
			func(v *client.V2) error { _, err := v.Check(ctx, "u", "p"); return err }},
		{"CheckBatch", true, `{"results":[{"user":"u","permission":"p","allowed":false}]}`,
			func(v *client.V2) error { _, err := v.CheckBatch(ctx, []client.Pair{{"u", "p"}}); return err }},
		{"CreateRole", false, `{"name":"a","description":null}`,
			func(v *client.V2) error { _, err := v.CreateRole(ctx, "a", ""); return err }},
		{"ImportPolicy", false, `{"mode":"replace","dry_run":false,"roles_created":0,"roles_deleted":0,"rules_added":0,"rules_removed":0,"version":1}`,
			func(v *client.V2) error { _, err := v.ImportPolicy(ctx, "", client.ImportOptions{}); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bodies
			f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				b.record(r)
				failFirst(2, reply(503, v2Err(503, "unavailable", "")), reply(200, v2OK(tc.ok)))(n, w, r)
			})
			v := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 2}).V2()
			err := tc.fn(v)
			if tc.retried {
				if err != nil || f.hits.Load() != 3 {
					t.Fatalf("got %v after %d requests, want success after 3", err, f.hits.Load())
				}
				// Each attempt sends the whole body again.
				if got := b.get(); got[0] != got[2] {
					t.Errorf("bodies differ between attempts: %q", got)
				}
				return
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.StatusCode != 503 || f.hits.Load() != 1 {
				t.Fatalf("got %v after %d requests, want the 503 after 1", err, f.hits.Load())
			}
		})
	}
}

// A batch longer than MaxBatch is sent as requests of at most MaxBatch
// pairs, and the results come back in the order of the pairs.
func TestV2CheckBatchSplits(t *testing.T) {
	var sizes []int
	var mu sync.Mutex
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		var req struct {
			Checks []client.Pair `json:"checks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(400, v2Err(400, "invalid_body", ""))(n, w, r)
			return
		}
		mu.Lock()
		sizes = append(sizes, len(req.Checks))
		mu.Unlock()
		if len(req.Checks) > client.MaxBatch {
			reply(400, v2Err(400, "batch_too_large", `"max":1000`))(n, w, r)
			return
		}
		res := make([]client.Result, len(req.Checks))
		for i, p := range req.Checks {
			res[i] = client.Result{User: p.User, Permission: p.Permission, Allowed: strings.HasSuffix(p.User, "0")}
		}
		data, _ := json.Marshal(map[string]any{"results": res})
		reply(200, v2OK(string(data)))(n, w, r)
	})
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	pairs := make([]client.Pair, 2500)
	for i := range pairs {
		pairs[i] = client.Pair{User: fmt.Sprintf("u%d", i), Permission: "read"}
	}
	got, err := v.CheckBatch(context.Background(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sizes, []int{1000, 1000, 500}) {
		t.Errorf("request sizes %v, want [1000 1000 500]", sizes)
	}
	if len(got) != len(pairs) {
		t.Fatalf("%d results for %d pairs", len(got), len(pairs))
	}
	for i, r := range got {
		if r.User != pairs[i].User || r.Allowed != strings.HasSuffix(pairs[i].User, "0") {
			t.Fatalf("result %d = %+v, for pair %+v", i, r, pairs[i])
		}
	}
	// No pairs, no request.
	before := f.hits.Load()
	if got, err := v.CheckBatch(context.Background(), nil); err != nil || len(got) != 0 || f.hits.Load() != before {
		t.Errorf("empty batch: got %v, %v after %d requests; want no results and no request", got, err, f.hits.Load()-before)
	}
	// Results that do not answer the pairs in order are an error, never
	// decisions.
	f.set(reply(200, v2OK(`{"results":[{"user":"b","permission":"read","allowed":true},{"user":"a","permission":"read","allowed":false}]}`)))
	if got, err := v.CheckBatch(context.Background(), []client.Pair{{"a", "read"}, {"b", "read"}}); err == nil {
		t.Errorf("reordered results: got %v, nil; want an error", got)
	}
	f.set(reply(200, v2OK(`{"results":[]}`)))
	if got, err := v.CheckBatch(context.Background(), []client.Pair{{"a", "read"}}); err == nil {
		t.Errorf("missing results: got %v, nil; want an error", got)
	}
}

// An empty name is refused before any request; a 2xx answer without the
// expected field is an error, never a zero value read as "no".
func TestV2RefusesEmptyNamesAndBadAnswers(t *testing.T) {
	f := newFake(t, reply(200, v2OK(`{}`)))
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	ctx := context.Background()
	empty := []error{
		second(v.Check(ctx, "", "p")), second(v.Explain(ctx, "u", "")),
		second(v.CheckBatch(ctx, []client.Pair{{"u", ""}})), second(v.PutRole(ctx, "", nil)),
		second(v.CreateRole(ctx, "", "")), second(v.PutMember(ctx, "r", "")), second(v.DeleteUser(ctx, "")),
	}
	if _, err := collect(v.Members(ctx, "")); err != nil {
		empty = append(empty, err)
	} else {
		t.Error("Members(\"\"): no error")
	}
	for i, err := range empty {
		if err == nil {
			t.Errorf("call %d with an empty name: nil error", i)
		}
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d requests for empty names, want 0", n)
	}
	bad := []error{
		second(v.Check(ctx, "u", "p")), second(v.Explain(ctx, "u", "p")), second(v.PutRole(ctx, "r", nil)),
		second(v.DeleteRole(ctx, "r")), second(v.PutPermission(ctx, "r", "p")), second(v.DeleteUser(ctx, "u")),
		second(v.CheckBatch(ctx, []client.Pair{{"u", "p"}})), second(v.ExportPolicy(ctx)),
		second(v.ImportPolicy(ctx, "", client.ImportOptions{})),
	}
	for i, err := range bad {
		if err == nil {
			t.Errorf("call %d with answer data {}: nil error", i)
		}
	}
}

func second[T any](_ T, err error) error { return err }
