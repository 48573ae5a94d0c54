package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ourway/auth/client"
)

// Revisions, consistency, time-bound rules and the change feed against
// the real server.
func TestLiveV2Revisions(t *testing.T) {
	c, err := client.New(client.Options{BaseURL: shared.base, Token: randomKey(), SessionConsistency: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	v := c.V2()
	ctx := deadlineCtx(t, 60*time.Second)

	if c.LastRevision() != 0 {
		t.Fatalf("LastRevision() of a new client = %d, want 0", c.LastRevision())
	}
	last := int64(0)
	wrote := func(what string) {
		t.Helper()
		if n := c.LastRevision(); n <= last {
			t.Fatalf("after %s: LastRevision() = %d, want more than %d", what, n, last)
		}
		last = c.LastRevision()
	}
	if _, err := v.PutRole(ctx, "editor", nil); err != nil {
		t.Fatal(err)
	}
	wrote("PutRole")
	if _, err := v.PutPermission(ctx, "editor", "read"); err != nil {
		t.Fatal(err)
	}
	wrote("PutPermission")
	if _, err := v.PutMember(ctx, "editor", "alice"); err != nil {
		t.Fatal(err)
	}
	wrote("PutMember")

	d, err := v.CheckRevision(ctx, "alice", "read")
	if err != nil || !d.Allowed || d.Revision < last {
		t.Errorf("CheckRevision alice read = %+v, %v; want allowed at revision ≥ %d", d, err, last)
	}
	role, err := v.GetRole(ctx, "editor")
	if err != nil || role.Revision < last || role.Members != 1 {
		t.Errorf("GetRole editor = %+v, %v; want one member at revision ≥ %d", role, err, last)
	}
	b, err := v.CheckBatchRevision(ctx, []client.Pair{{User: "alice", Permission: "read"}})
	if err != nil || !b.Results[0].Allowed || b.Revision < last {
		t.Errorf("CheckBatchRevision = %+v, %v; want allowed at revision ≥ %d", b, err, last)
	}
	if ok, err := v.WithConsistency(client.Full()).Check(ctx, "alice", "read"); err != nil || !ok {
		t.Errorf("Check with Full = %v, %v; want true", ok, err)
	}
	if ok, err := v.WithConsistency(client.MinimizeLatency()).Check(ctx, "alice", "read"); err != nil || !ok {
		t.Errorf("Check with MinimizeLatency = %v, %v; want true", ok, err)
	}
	_, err = v.WithConsistency(client.AtLeast(last+1000)).Check(ctx, "alice", "read")
	if !errors.Is(err, client.ErrRevisionAhead) {
		t.Errorf("Check at a revision ahead: %v, want ErrRevisionAhead", err)
	}

	put, err := v.PutMemberFor(ctx, "editor", "bob", time.Hour)
	if err != nil || !put.Created || put.ExpiresAt == nil || put.Revision <= last {
		t.Fatalf("PutMemberFor bob 1h = %+v, %v; want created, with an expiry, after revision %d", put, err, last)
	}
	wrote("PutMemberFor")
	until := put.ExpiresAt.Add(time.Hour)
	put, err = v.PutMemberUntil(ctx, "editor", "bob", until)
	if err != nil || put.Created || put.ExpiresAt == nil || put.ExpiresAt.Sub(until).Abs() >= time.Second {
		t.Errorf("PutMemberUntil bob %v = %+v, %v; want the new expiry", until, put, err)
	}
	wrote("PutMemberUntil")
	members, err := collect(v.MembersDetailed(ctx, "editor"))
	if err != nil || len(members) != 2 || members[0] != (client.Member{User: "alice"}) || members[1].User != "bob" || members[1].ExpiresAt == nil {
		t.Errorf("MembersDetailed editor = %+v, %v; want alice (permanent) and bob (time-bound)", members, err)
	}
	put, err = v.PutMemberUntil(ctx, "editor", "bob", time.Time{})
	if err != nil || put.Created || put.ExpiresAt != nil {
		t.Errorf("PutMemberUntil bob zero = %+v, %v; want the membership made permanent", put, err)
	}
	wrote("PutMemberUntil zero")
	grant, err := v.PutPermissionFor(ctx, "editor", "write", time.Hour)
	if err != nil || !grant.Created || grant.ExpiresAt == nil {
		t.Errorf("PutPermissionFor write 1h = %+v, %v", grant, err)
	}
	wrote("PutPermissionFor")
	grants, err := collect(v.PermissionsDetailed(ctx, "editor"))
	if err != nil || len(grants) != 2 || grants[0] != (client.Grant{Permission: "read"}) || grants[1].ExpiresAt == nil {
		t.Errorf("PermissionsDetailed editor = %+v, %v", grants, err)
	}
	names, err := collect(v.Members(ctx, "editor"))
	step(t, "Members editor", names, err, []string{"alice", "bob"})
	if _, err := v.PutMemberFor(ctx, "editor", "bob", -time.Second); err == nil {
		t.Error("PutMemberFor a negative ttl: nil error")
	}
	var ae *client.APIError
	if _, err := v.PutMemberUntil(ctx, "editor", "carol", time.Unix(1, 0)); !errors.As(err, &ae) || ae.Reason != client.ReasonInvalidBody {
		t.Errorf("PutMemberUntil in the past: %v, want reason invalid_body", err)
	}

	exp, err := v.ExportPolicy(ctx)
	if err != nil || exp.Revision < last || exp.Revision != exp.Version {
		t.Fatalf("ExportPolicy = revision %d version %d, %v; want equal, ≥ %d", exp.Revision, exp.Version, err, last)
	}

	// The feed from the start, two per page.
	var ops []string
	for _, ch := range collectChanges(t, v.WithPageSize(2), 0) {
		ops = append(ops, ch.Op+" "+ch.Role+" "+ch.Permission+ch.User)
	}
	step(t, "the change feed", ops, nil, []string{
		"create_role editor ", "grant editor read", "add_member editor alice", "add_member editor bob",
		"add_member editor bob", "add_member editor bob", "grant editor write",
	})

	// Following from the export: a change committed during the long poll
	// arrives.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan client.Change)
	ended := make(chan error, 1)
	go func() {
		var ferr error
		for ch, err := range v.FollowChanges(fctx, exp.Revision, 10*time.Second) {
			if err != nil {
				ferr = err
				break
			}
			select {
			case got <- ch:
			case <-fctx.Done():
			}
		}
		ended <- ferr
	}()
	if _, err := v.PutMember(ctx, "editor", "carol"); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-got:
		if ch.Op != client.OpAddMember || ch.User != "carol" || ch.Revision <= exp.Revision {
			t.Errorf("followed change %+v, want add_member carol after revision %d", ch, exp.Revision)
		}
	case <-ctx.Done():
		t.Fatal("no change followed before the deadline")
	}
	cancel()
	if err := <-ended; err != nil {
		t.Errorf("FollowChanges after its context ended: %v, want no error", err)
	}

	// A membership with a short ttl ends at its expiry: poll until the
	// check says no.
	if _, err := v.PutMemberFor(ctx, "editor", "dave", time.Second); err != nil {
		t.Fatal(err)
	}
	for {
		ok, err := v.Check(ctx, "dave", "read")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("dave still holds read after the deadline")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// collectChanges reads the feed from since up to the tenant's latest
// revision, following the cursors.
func collectChanges(t *testing.T, v *client.V2, since int64) []client.Change {
	t.Helper()
	ctx := deadlineCtx(t, 30*time.Second)
	var out []client.Change
	q := client.ChangesQuery{Since: since, Limit: 2}
	for {
		page, err := v.Changes(ctx, q)
		if err != nil {
			t.Fatalf("Changes(%+v): %v", q, err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}
