package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/client"
)

// Every v2 method against the real server.
func TestLiveV2EveryMethod(t *testing.T) {
	v := liveClient(t, shared.base).V2()
	ctx := deadlineCtx(t, 60*time.Second)
	apiReason := func(err error) string {
		var ae *client.APIError
		if errors.As(err, &ae) {
			return ae.Reason
		}
		return fmt.Sprintf("not an *APIError: %v", err)
	}

	roles, err := collect(v.Roles(ctx))
	step(t, "Roles of a new tenant", roles, err, []client.RoleSummary{})
	r, err := v.CreateRole(ctx, "staff", "Everyone")
	step(t, "CreateRole staff", r, err, client.RoleSummary{Name: "staff", Description: "Everyone"})
	_, err = v.CreateRole(ctx, "staff", "")
	step(t, "CreateRole staff again: reason", apiReason(err), nil, client.ReasonRoleExists)
	created, err := v.PutRole(ctx, "editor", nil)
	step(t, "PutRole editor", created, err, true)
	created, err = v.PutRole(ctx, "editor", nil)
	step(t, "PutRole editor again", created, err, false)
	created, err = v.PutPermission(ctx, "staff", "read")
	step(t, "PutPermission staff read", created, err, true)
	created, err = v.PutPermission(ctx, "editor", "write")
	step(t, "PutPermission editor write", created, err, true)
	created, err = v.PutParent(ctx, "editor", "staff")
	step(t, "PutParent editor staff", created, err, true)
	_, err = v.PutParent(ctx, "staff", "editor")
	step(t, "PutParent staff editor: reason", apiReason(err), nil, client.ReasonRoleCycle)
	_, err = v.PutMember(ctx, "ghost", "alice")
	step(t, "PutMember of a missing role: reason", apiReason(err), nil, client.ReasonRoleNotFound)
	for _, u := range []string{"erin", "dave", "carol", "bob", "alice"} {
		created, err = v.PutMember(ctx, "editor", u)
		step(t, "PutMember editor "+u, created, err, true)
	}

	members, err := collect(v.WithPageSize(2).Members(ctx, "editor"))
	step(t, "Members of editor, two per page", members, err, []string{"alice", "bob", "carol", "dave", "erin"})
	perms, err := collect(v.Permissions(ctx, "staff"))
	step(t, "Permissions of staff", perms, err, []string{"read"})
	parents, err := collect(v.Parents(ctx, "editor"))
	step(t, "Parents of editor", parents, err, []string{"staff"})
	detail, err := v.GetRole(ctx, "editor")
	detail.Revision = 0 // checked by TestLiveV2Revisions
	step(t, "GetRole editor", detail, err, client.RoleDetail{Name: "editor", Permissions: 1, Members: 5, Parents: []string{"staff"}})
	_, err = v.GetRole(ctx, "ghost")
	step(t, "GetRole ghost: reason", apiReason(err), nil, client.ReasonRoleNotFound)

	ur, err := collect(v.UserRoles(ctx, "alice"))
	step(t, "UserRoles alice", ur, err, []client.UserRole{{Name: "editor"}, {Name: "staff", Inherited: true, Via: "editor"}})
	up, err := collect(v.UserPermissions(ctx, "alice"))
	step(t, "UserPermissions alice", up, err, []client.UserPermission{
		{Name: "read", Roles: []string{"staff"}}, {Name: "write", Roles: []string{"editor"}}})
	pr, err := collect(v.PermissionRoles(ctx, "read"))
	step(t, "PermissionRoles read", pr, err, []client.PermissionRole{{Name: "editor", Inherited: true}, {Name: "staff"}})
	pu, err := collect(v.WithPageSize(3).PermissionUsers(ctx, "write"))
	if err != nil || len(pu) != 5 || pu[0].User != "alice" || !reflect.DeepEqual(pu[0].Roles, []string{"editor"}) {
		t.Errorf("PermissionUsers write: got %+v, %v; want the five members through editor", pu, err)
	}

	allowed, err := v.Check(ctx, "alice", "read")
	step(t, "Check alice read", allowed, err, true)
	allowed, err = v.Check(ctx, "zoe", "read")
	step(t, "Check zoe read", allowed, err, false)
	e, err := v.Explain(ctx, "alice", "read")
	if err != nil || !e.Allowed || !reflect.DeepEqual(e.Path, []client.Step{
		{Type: "user", Name: "alice"}, {Type: "role", Name: "editor"}, {Type: "role", Name: "staff"}, {Type: "permission", Name: "read"},
	}) || len(e.Rule) < 3 || e.Rule[0] != "role:staff" || e.Rule[len(e.Rule)-1] != "read" {
		t.Errorf("Explain alice read: got %+v, %v", e, err)
	}
	e, err = v.Explain(ctx, "zoe", "read")
	e.Revision = 0
	step(t, "Explain zoe read", e, err, client.Explanation{})
	pairs := make([]client.Pair, 0, 1500)
	for i := range 1500 {
		pairs = append(pairs, client.Pair{User: []string{"alice", "zoe"}[i%2], Permission: "read"})
	}
	results, err := v.CheckBatch(ctx, pairs)
	if err != nil || len(results) != len(pairs) {
		t.Fatalf("CheckBatch of 1500: %d results, %v", len(results), err)
	}
	for i, res := range results {
		if res.Allowed != (i%2 == 0) {
			t.Fatalf("CheckBatch result %d: %+v", i, res)
		}
	}

	exp, err := v.ExportPolicy(ctx)
	if err != nil || exp.Format != "casbin-csv" || !strings.Contains(exp.Policy, "read") {
		t.Fatalf("ExportPolicy: %+v, %v", exp, err)
	}
	imp, err := v.ImportPolicy(ctx, exp.Policy, client.ImportOptions{DryRun: true})
	if err != nil || !imp.DryRun || imp.Mode != "replace" || imp.RulesAdded != 0 || imp.RulesRemoved != 0 {
		t.Errorf("ImportPolicy of the export, dry run: %+v, %v; want no change", imp, err)
	}
	_, err = v.ImportPolicy(ctx, "this is not a policy", client.ImportOptions{DryRun: true})
	step(t, "ImportPolicy of garbage: reason", apiReason(err), nil, client.ReasonInvalidPolicy)

	n, err := v.DeleteUser(ctx, "alice")
	step(t, "DeleteUser alice", n, err, 1)
	n, err = v.DeleteUser(ctx, "alice")
	step(t, "DeleteUser alice again", n, err, 0)
	deleted, err := v.DeleteMember(ctx, "editor", "bob")
	step(t, "DeleteMember editor bob", deleted, err, true)
	deleted, err = v.DeleteParent(ctx, "editor", "staff")
	step(t, "DeleteParent editor staff", deleted, err, true)
	deleted, err = v.DeletePermission(ctx, "staff", "read")
	step(t, "DeletePermission staff read", deleted, err, true)
	deleted, err = v.DeleteRole(ctx, "editor")
	step(t, "DeleteRole editor", deleted, err, true)
	deleted, err = v.DeleteRole(ctx, "editor")
	step(t, "DeleteRole editor again", deleted, err, false)
}

// The v2 example program, run against the real server, prints what
// DOCS-v2clients.md shows.
func TestLiveV2ExampleProgram(t *testing.T) {
	runV2Example(t, shared.base)
}

// runV2Example runs client/examples/v2 against base for a new tenant and
// checks its output.
func runV2Example(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "v2example")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./client/examples/v2")
	build.Dir = moduleDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./client/examples/v2: %v\n%s", err, out)
	}
	key := randomKey()
	for range 2 { // a second run on the same tenant prints the same
		cmd := exec.CommandContext(ctx, bin, base, key)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("example: %v\n%s", err, out)
		}
		if string(out) != v2ExampleOutput {
			t.Fatalf("example printed:\n%s\nwant:\n%s", out, v2ExampleOutput)
		}
	}
}

// v2ExampleOutput is what both v2 examples print (Go and Python).
const v2ExampleOutput = `alice may read: true, through user alice → role editor → role staff → permission read
batch check:
  alice read: true
  alice write: true
  alice delete: false
  zoe read: false
members of editor, two per page:
  alice
  bob
  carol
  dave
  erin
`
