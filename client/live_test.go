package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ourway/auth/client"
)

// liveClient is a client of the shared server for a fresh tenant.
func liveClient(t *testing.T, base string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: base, Token: randomKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sorted[T any](s []T, cmp func(a, b T) int) []T {
	s = slices.Clone(s)
	slices.SortFunc(s, cmp)
	return s
}

func strCmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func memberCmp(a, b client.Membership) int {
	if c := strCmp(a.Role, b.Role); c != 0 {
		return c
	}
	return strCmp(a.User, b.User)
}

// step checks one call's answer.
func step[T any](t *testing.T, what string, got T, err error, want T) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}

// Every method against the real server, in the order a tenant would use
// them.
func TestLiveEveryMethod(t *testing.T) {
	c := liveClient(t, shared.base)
	ctx := deadlineCtx(t, 30*time.Second)

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	roles, err := c.ListRoles(ctx)
	step(t, "ListRoles of a new tenant", roles, err, []client.Role{})

	for _, r := range []string{"admin", "editor", "admin"} {
		ok, err := c.CreateRole(ctx, r)
		step(t, "CreateRole "+r, ok, err, true)
	}
	roles, err = c.ListRoles(ctx)
	step(t, "ListRoles", roles, err, []client.Role{{Name: "admin"}, {Name: "editor"}})

	for _, g := range []struct {
		role, perm string
		want       bool
	}{{"admin", "manage_users", true}, {"admin", "read", true}, {"editor", "read", true}, {"ghost", "read", false}} {
		ok, err := c.AddPermission(ctx, g.role, g.perm)
		step(t, "AddPermission "+g.role+" "+g.perm, ok, err, g.want)
	}
	ok, err := c.RoleHasPermission(ctx, "admin", "manage_users")
	step(t, "RoleHasPermission admin manage_users", ok, err, true)
	ok, err = c.RoleHasPermission(ctx, "editor", "manage_users")
	step(t, "RoleHasPermission editor manage_users", ok, err, false)
	perms, err := c.RolePermissions(ctx, "admin")
	step(t, "RolePermissions admin", sorted(perms, strCmp), err, []string{"manage_users", "read"})

	for _, m := range []struct {
		user, role string
		want       bool
	}{{"john_doe", "admin", true}, {"jane", "editor", true}, {"john@example.com", "editor", true}, {"bob", "ghost", false}} {
		ok, err := c.AddMembership(ctx, m.user, m.role)
		step(t, "AddMembership "+m.user+" "+m.role, ok, err, m.want)
	}
	ok, err = c.HasMembership(ctx, "john_doe", "admin")
	step(t, "HasMembership john_doe admin", ok, err, true)
	ok, err = c.HasMembership(ctx, "jane", "admin")
	step(t, "HasMembership jane admin", ok, err, false)
	ok, err = c.HasPermission(ctx, "john_doe", "manage_users")
	step(t, "HasPermission john_doe manage_users", ok, err, true)
	ok, err = c.HasPermission(ctx, "jane", "manage_users")
	step(t, "HasPermission jane manage_users", ok, err, false)
	ok, err = c.HasPermission(ctx, "john@example.com", "read")
	step(t, "HasPermission john@example.com read", ok, err, true)
	perms, err = c.UserPermissions(ctx, "john_doe")
	step(t, "UserPermissions john_doe", sorted(perms, strCmp), err, []string{"manage_users", "read"})
	list, err := c.UserRoles(ctx, "john_doe")
	step(t, "UserRoles john_doe", list, err, []string{"admin"})
	list, err = c.RoleMembers(ctx, "editor")
	step(t, "RoleMembers editor", sorted(list, strCmp), err, []string{"jane", "john@example.com"})
	list, err = c.WhichRolesCan(ctx, "read")
	step(t, "WhichRolesCan read", sorted(list, strCmp), err, []string{"admin", "editor"})
	wantUsers := []client.Membership{{User: "john_doe", Role: "admin"}, {User: "jane", Role: "editor"}, {User: "john@example.com", Role: "editor"}}
	ms, err := c.WhichUsersCan(ctx, "read")
	step(t, "WhichUsersCan read", sorted(ms, memberCmp), err, wantUsers)
	ms, err = c.WorkflowUsers(ctx, "read")
	step(t, "WorkflowUsers read", sorted(ms, memberCmp), err, wantUsers)
	ok, err = c.CanRunWorkflow(ctx, "jane", "read")
	step(t, "CanRunWorkflow jane read", ok, err, true)
	ok, err = c.CanRunWorkflow(ctx, "jane", "manage_users")
	step(t, "CanRunWorkflow jane manage_users", ok, err, false)

	ok, err = c.AddRoleParent(ctx, "editor", "admin")
	step(t, "AddRoleParent editor admin", ok, err, true)
	list, err = c.RoleParents(ctx, "editor")
	step(t, "RoleParents editor", list, err, []string{"admin"})
	ok, err = c.HasPermission(ctx, "jane", "manage_users")
	step(t, "HasPermission jane manage_users (inherited)", ok, err, true)
	_, err = c.AddRoleParent(ctx, "admin", "editor")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.Message != "Role inheritance would form a cycle." {
		t.Errorf("AddRoleParent admin editor (a cycle): got %v, want a 400 naming the cycle", err)
	}
	ok, err = c.RemoveRoleParent(ctx, "editor", "admin")
	step(t, "RemoveRoleParent editor admin", ok, err, true)
	list, err = c.RoleParents(ctx, "editor")
	step(t, "RoleParents editor after removal", list, err, []string{})

	ok, err = c.RemovePermission(ctx, "admin", "read")
	step(t, "RemovePermission admin read", ok, err, true)
	ok, err = c.RoleHasPermission(ctx, "admin", "read")
	step(t, "RoleHasPermission admin read after removal", ok, err, false)
	ok, err = c.RemoveMembership(ctx, "john_doe", "admin")
	step(t, "RemoveMembership john_doe admin", ok, err, true)
	ok, err = c.HasMembership(ctx, "john_doe", "admin")
	step(t, "HasMembership john_doe admin after removal", ok, err, false)
	ok, err = c.DeleteRole(ctx, "editor")
	step(t, "DeleteRole editor", ok, err, true)
	ok, err = c.DeleteRole(ctx, "editor")
	step(t, "DeleteRole editor again", ok, err, false)
	roles, err = c.ListRoles(ctx)
	step(t, "ListRoles after deletion", roles, err, []client.Role{{Name: "admin"}})

	// A bad name is an *APIError of 400, neither a denial nor an outage.
	_, err = c.CreateRole(ctx, "bad.name")
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.Message != "Invalid role name: bad.name. Role names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen." {
		t.Errorf("CreateRole bad.name: got %v, want a 400 with the service's message", err)
	}
	if errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("CreateRole bad.name: %v matches a sentinel, want none", err)
	}

	// The audit trail: changes are recorded as they commit.
	page, err := c.Audit(ctx, client.AuditQuery{Action: "CREATE_ROLE", Limit: 1})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(page.Entries) != 1 || page.Limit != 1 || page.NextCursor == "" {
		t.Fatalf("Audit page 1: got %d entries, limit %d, next %q; want 1, 1 and a cursor", len(page.Entries), page.Limit, page.NextCursor)
	}
	first := page.Entries[0]
	if first.Action != "CREATE_ROLE" || first.Seq < 1 || first.Timestamp.IsZero() || first.RequestID == "" {
		t.Errorf("Audit page 1: got %+v, want a dated CREATE_ROLE record with a request id", first)
	}
	page, err = c.Audit(ctx, client.AuditQuery{Action: "CREATE_ROLE", Limit: 1, Cursor: page.NextCursor})
	if err != nil {
		t.Fatalf("Audit page 2: %v", err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Seq >= first.Seq || page.Entries[0].Action != "CREATE_ROLE" {
		t.Errorf("Audit page 2: got %+v, want one older CREATE_ROLE record", page.Entries)
	}
	since := time.Now().Add(-time.Hour)
	page, err = c.Audit(ctx, client.AuditQuery{Since: since, Until: time.Now().Add(time.Hour), User: "john_doe", Limit: 500})
	if err != nil || len(page.Entries) == 0 {
		t.Errorf("Audit of john_doe in the last hour: got %v, %v; want records", page, err)
	}
}

// Path values travel as one segment: names with @ and dots reach the
// server intact.
func TestLiveEscapedNames(t *testing.T) {
	c := liveClient(t, shared.base)
	ctx := deadlineCtx(t, 10*time.Second)
	if _, err := c.CreateRole(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a.b+c@example.com", "..", "."} {
		ok, err := c.AddMembership(ctx, u, "ops")
		step(t, "AddMembership "+u, ok, err, true)
		roles, err := c.UserRoles(ctx, u)
		step(t, "UserRoles "+u, roles, err, []string{"ops"})
	}
	members, err := c.RoleMembers(ctx, "ops")
	step(t, "RoleMembers ops", sorted(members, strCmp), err, []string{".", "..", "a.b+c@example.com"})
}

// A base URL with a path prefix keeps it: the service behind a gateway
// that serves it under /authz.
func TestLiveBehindPathPrefix(t *testing.T) {
	target, err := url.Parse(shared.base)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(http.StripPrefix("/authz", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(gw.Close)
	c := liveClient(t, gw.URL+"/authz/")
	ctx := deadlineCtx(t, 10*time.Second)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping through the gateway: %v", err)
	}
	for _, step := range []func() (bool, error){
		func() (bool, error) { return c.CreateRole(ctx, "admin") },
		func() (bool, error) { return c.AddPermission(ctx, "admin", "manage_users") },
		func() (bool, error) { return c.AddMembership(ctx, "john@example.com", "admin") },
		func() (bool, error) { return c.HasPermission(ctx, "john@example.com", "manage_users") },
	} {
		if ok, err := step(); err != nil || !ok {
			t.Fatalf("through the gateway: got %v, %v; want true", ok, err)
		}
	}
}

func TestLiveCredentialErrors(t *testing.T) {
	ctx := deadlineCtx(t, 10*time.Second)
	tests := []struct {
		token  string
		status int
		is     error
	}{
		{"", http.StatusUnauthorized, client.ErrUnauthorized},
		{"not-a-uuid", http.StatusBadRequest, nil},
	}
	for _, tc := range tests {
		c, err := client.New(client.Options{BaseURL: shared.base, Token: tc.token})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := c.HasPermission(ctx, "john", "read")
		var ae *client.APIError
		if ok || !errors.As(err, &ae) || ae.StatusCode != tc.status {
			t.Errorf("token %q: got %v, %v; want false and a %d", tc.token, ok, err, tc.status)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("token %q: %v does not match %v", tc.token, err, tc.is)
		}
		if errors.Is(err, client.ErrUnavailable) {
			t.Errorf("token %q: %v matches ErrUnavailable", tc.token, err)
		}
		c.Close()
	}
}

// With the server stopped, every method returns ErrUnavailable and a zero
// value: an outage never reads as a denial or an empty list.
func TestLiveServerStopped(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name string
		opts client.Options
		// open: calls after the first 3 find the breaker open.
		open bool
	}{
		{"no breaker, with retries", client.Options{DisableBreaker: true, MaxRetries: 2}, false},
		{"breaker", client.Options{MaxRetries: -1, BreakerErrorThreshold: 3, BreakerTimeout: time.Minute}, true},
	}
	clients := make([]*client.Client, len(tests))
	for i, tc := range tests {
		tc.opts.BaseURL, tc.opts.Token = s.base, randomKey()
		tc.opts.RetryBaseDelay, tc.opts.RetryMaxDelay = time.Millisecond, 5*time.Millisecond
		clients[i] = newClient(t, tc.opts)
		// A working, pooled connection first.
		if _, err := clients[i].CreateRole(context.Background(), "admin"); err != nil {
			t.Fatalf("%s: before the stop: %v", tc.name, err)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for i, tc := range tests {
		for j, call := range calls {
			ctx := deadlineCtx(t, 10*time.Second)
			v, err := call.fn(ctx, clients[i])
			if err == nil {
				t.Errorf("%s: %s: got %#v, nil; want an error", tc.name, call.name, v)
				continue
			}
			if !errors.Is(err, client.ErrUnavailable) {
				t.Errorf("%s: %s: got %v, want ErrUnavailable", tc.name, call.name, err)
			}
			if got, want := isOpen(err), tc.open && j >= 3; got != want {
				t.Errorf("%s: %s (call %d): breaker open = %v, want %v (%v)", tc.name, call.name, j+1, got, want, err)
			}
			if v != nil && !reflect.ValueOf(v).IsZero() {
				t.Errorf("%s: %s: got value %#v with the error, want the zero value", tc.name, call.name, v)
			}
		}
	}
}

// Over the service's rate limit: a GET waits the answer's Retry-After and
// succeeds; a POST is not retried and fails with ErrRateLimited, as does a
// GET whose Retry-After is longer than MaxRetryAfter.
func TestLiveRateLimited(t *testing.T) {
	s := startServer(t, "RATE_LIMIT_DEFAULT=1 per second")
	c := newClient(t, client.Options{BaseURL: s.base, Token: randomKey(), MaxRetries: 2, MaxRetryAfter: 5 * time.Second})
	ctx := deadlineCtx(t, 20*time.Second)
	if _, err := c.ListRoles(ctx); err != nil {
		t.Fatalf("first ListRoles: %v", err)
	}
	start := time.Now()
	if _, err := c.ListRoles(ctx); err != nil {
		t.Fatalf("second ListRoles, over the limit: got %v, want success after Retry-After", err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("second ListRoles took %v, want a wait for Retry-After", took)
	}
	_, err := c.CreateRole(ctx, "admin")
	var ae *client.APIError
	if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("CreateRole over the limit: got %v, want a 429 (POST is not retried)", err)
	}
	if errors.Is(err, client.ErrUnavailable) {
		t.Errorf("CreateRole over the limit: %v matches ErrUnavailable", err)
	}
	impatient := newClient(t, client.Options{BaseURL: s.base, Token: randomKey(), MaxRetries: 2, MaxRetryAfter: time.Millisecond})
	if _, err := impatient.ListRoles(ctx); err != nil {
		t.Fatalf("ListRoles of another tenant: %v", err)
	}
	start = time.Now()
	if _, err := impatient.ListRoles(ctx); !errors.Is(err, client.ErrRateLimited) {
		t.Errorf("ListRoles over the limit with MaxRetryAfter 1ms: got %v, want ErrRateLimited", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("returned after %v, want at once", took)
	}
}
