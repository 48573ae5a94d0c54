package policy_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// fakeClock is a service clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) now() time.Time                { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) set(t time.Time)               { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration)           { c.ns.Add(int64(d)) }
func (c *fakeClock) at(d time.Duration) *time.Time { t := c.now().Add(d); return &t }

// epoch is where the tests' clocks start (a whole second: the database
// keeps microseconds).
var epoch = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// clockedService is a service over db whose clock is c.
func clockedService(t testing.TB, db *sqldb.DB, c *fakeClock, opts policy.Options) *policy.Service {
	t.Helper()
	s := newService(t, db, auth.DefaultModel, opts)
	policy.SetClock(s, c.now)
	return s
}

// itemString renders a change item in one line: revision.seq op fields.
func itemString(it policy.ChangeRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", it.Revision, it.Op)
	for _, f := range []struct{ k, v string }{{"role", it.Role}, {"permission", it.Permission},
		{"user", it.User}, {"parent", it.Parent}} {
		if f.v != "" {
			fmt.Fprintf(&b, " %s=%s", f.k, f.v)
		}
	}
	if it.Op == policy.ChangeSetDescription {
		if it.Description == nil {
			b.WriteString(" description=null")
		} else {
			fmt.Fprintf(&b, " description=%q", *it.Description)
		}
	} else if it.Description != nil {
		fmt.Fprintf(&b, " description=%q (unexpected)", *it.Description)
	}
	if it.ExpiresAt != nil {
		fmt.Fprintf(&b, " expires_at=+%s", it.ExpiresAt.Sub(epoch))
	}
	return b.String()
}

// allChanges reads a tenant's whole feed after from in pages of limit,
// following Next, and checks each page's revision.
func allChanges(t *testing.T, svc *policy.Service, k policy.KeyHash, from policy.Position, limit int) []policy.ChangeRecord {
	t.Helper()
	var out []policy.ChangeRecord
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the feed does not end")
		}
		page, err := svc.Changes(context.Background(), k, from, limit, 0)
		if err != nil {
			t.Fatalf("Changes(%+v, %d): %v", from, limit, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("Changes(%+v, %d): %d items", from, limit, len(page.Items))
		}
		out = append(out, page.Items...)
		if page.Next == nil {
			return out
		}
		last := page.Items[len(page.Items)-1]
		if *page.Next != (policy.Position{Revision: last.Revision, Seq: last.Seq}) || page.Revision != last.Revision {
			t.Fatalf("page after %+v: next %+v, revision %d; want the last item's position %d.%d", from, *page.Next,
				page.Revision, last.Revision, last.Seq)
		}
		from = *page.Next
	}
}

func itemStrings(items []policy.ChangeRecord) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = itemString(it)
	}
	return out
}

// feedSequence makes one change of every kind (and some that change
// nothing) and returns the feed they must give, in order, and the tenant's
// last revision.
func feedSequence(t *testing.T, svc *policy.Service, clock *fakeClock, k policy.KeyHash) ([]string, int64) {
	t.Helper()
	ctx := context.Background()
	desc := "Administrators"
	steps := []struct {
		what  string
		call  func() error
		items []string // the revision's items, without the revision
	}{
		{"create admin", func() error { _, err := svc.CreateRole(ctx, k, "admin"); return err },
			[]string{"create_role role=admin"}},
		{"create viewer", func() error { _, _, err := svc.PutRole(ctx, k, "viewer", false, nil); return err },
			[]string{"create_role role=viewer"}},
		{"describe admin", func() error { _, _, err := svc.PutRole(ctx, k, "admin", true, &desc); return err },
			[]string{`set_description role=admin description="Administrators"`}},
		{"clear description", func() error { _, _, err := svc.PutRole(ctx, k, "admin", true, nil); return err },
			[]string{"set_description role=admin description=null"}},
		{"grant", func() error { _, err := svc.PutGrant(ctx, k, "admin", "read"); return err },
			[]string{"grant role=admin permission=read"}},
		{"grant again", func() error { _, err := svc.PutGrant(ctx, k, "admin", "read"); return err }, nil},
		{"v1 grant to a missing role", func() error { _, err := svc.Grant(ctx, k, "ghost", "read"); return err }, nil},
		{"time-bound grant", func() error {
			_, err := svc.PutGrantUntil(ctx, k, "admin", "write", clock.at(time.Hour))
			return err
		}, []string{"grant role=admin permission=write expires_at=+1h0m0s"}},
		{"same end again", func() error {
			_, err := svc.PutGrantUntil(ctx, k, "admin", "write", clock.at(time.Hour))
			return err
		}, nil},
		{"revoke", func() error { _, err := svc.DeleteGrant(ctx, k, "admin", "read"); return err },
			[]string{"revoke role=admin permission=read"}},
		{"revoke absent", func() error { _, err := svc.DeleteGrant(ctx, k, "admin", "read"); return err }, nil},
		{"add member", func() error { _, err := svc.PutMember(ctx, k, "alice", "admin"); return err },
			[]string{"add_member role=admin user=alice"}},
		{"time-bound member", func() error {
			_, err := svc.PutMemberUntil(ctx, k, "bob", "admin", clock.at(2*time.Hour))
			return err
		}, []string{"add_member role=admin user=bob expires_at=+2h0m0s"}},
		{"re-PUT with a later end", func() error {
			_, err := svc.PutMemberUntil(ctx, k, "bob", "admin", clock.at(3*time.Hour))
			return err
		}, []string{"add_member role=admin user=bob expires_at=+3h0m0s"}},
		{"re-PUT for good", func() error { _, err := svc.PutMember(ctx, k, "bob", "admin"); return err },
			[]string{"add_member role=admin user=bob"}},
		{"re-PUT for good again", func() error { _, err := svc.PutMember(ctx, k, "bob", "admin"); return err }, nil},
		{"remove member", func() error { _, err := svc.DeleteMember(ctx, k, "alice", "admin"); return err },
			[]string{"remove_member role=admin user=alice"}},
		{"add parent", func() error { _, err := svc.PutParent(ctx, k, "admin", "viewer"); return err },
			[]string{"add_parent role=admin parent=viewer"}},
		{"remove parent", func() error { _, err := svc.DeleteParent(ctx, k, "admin", "viewer"); return err },
			[]string{"remove_parent role=admin parent=viewer"}},
		{"member of viewer", func() error { _, err := svc.PutMember(ctx, k, "carol", "viewer"); return err },
			[]string{"add_member role=viewer user=carol"}},
		{"carol in admin", func() error { _, err := svc.PutMember(ctx, k, "carol", "admin"); return err },
			[]string{"add_member role=admin user=carol"}},
		{"delete user", func() error { _, err := svc.DeleteUser(ctx, k, "carol"); return err },
			[]string{"delete_user user=carol"}},
		{"delete user again", func() error { _, err := svc.DeleteUser(ctx, k, "carol"); return err }, nil},
		{"viewer grant", func() error { _, err := svc.PutGrant(ctx, k, "viewer", "view"); return err },
			[]string{"grant role=viewer permission=view"}},
		{"viewer member", func() error { _, err := svc.PutMember(ctx, k, "dave", "viewer"); return err },
			[]string{"add_member role=viewer user=dave"}},
		{"admin under viewer", func() error { _, err := svc.PutParent(ctx, k, "admin", "viewer"); return err },
			[]string{"add_parent role=admin parent=viewer"}},
		{"delete role", func() error { _, err := svc.DeleteRole(ctx, k, "viewer"); return err },
			[]string{"delete_role role=viewer"}},
		{"delete role again", func() error { _, err := svc.DeleteRole(ctx, k, "viewer"); return err }, nil},
		{"sweep at the grant's end", func() error {
			clock.add(time.Hour)
			n, err := svc.SweepExpired(ctx)
			if err == nil && n != 1 {
				err = fmt.Errorf("swept %d rules, want 1", n)
			}
			return err
		}, []string{"expire role=admin permission=write"}},
		{"import", func() error {
			f, err := policy.ParsePolicyCSV(strings.NewReader("# role: admin\n# role: ops\n" +
				"p, role:ops, 1, deploy\ng, erin, role:ops, 1\ng, role:ops, role:admin, 1\n"))
			if err != nil {
				return err
			}
			_, err = svc.ImportPolicy(ctx, k, f, policy.ImportOptions{})
			return err
		}, []string{"remove_member role=admin user=bob", "create_role role=ops", "grant role=ops permission=deploy",
			"add_member role=ops user=erin", "add_parent role=ops parent=admin"}},
	}
	var want []string
	var rev int64
	for _, s := range steps {
		rc := &policy.Receipt{}
		ctx = policy.WithReceipt(context.Background(), rc)
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		ctx = context.Background()
		if !rc.Wrote || rc.Revision != rev+1 {
			t.Fatalf("%s: receipt %+v, want written at %d", s.what, rc, rev+1)
		}
		rev = rc.Revision
		for _, it := range s.items {
			want = append(want, fmt.Sprintf("%d %s", rev, it))
		}
	}
	return want, rev
}

// TestChangeFeedItems: every kind of change gives exactly its items, in
// commit order; a write that changed nothing takes a revision and gives no
// item. Any page size, followed by Next, gives the same sequence, and a
// start after revision r gives the items after r.
func TestChangeFeedItems(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		clock := newClock(epoch)
		svc := clockedService(t, db, clock, policy.Options{})
		k := mustKey(t, keyA)
		want, last := feedSequence(t, svc, clock, k)

		all := allChanges(t, svc, k, policy.After(0), 1000)
		if got := itemStrings(all); !reflect.DeepEqual(got, want) {
			t.Fatalf("feed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		var swept int64
		for _, it := range all {
			if it.Op == policy.ChangeExpire {
				swept = it.Revision
			}
		}
		for i, it := range all {
			wantAt := epoch
			if it.Revision >= swept {
				wantAt = epoch.Add(time.Hour) // the sweep and the import came after the clock moved
			}
			if !it.At.Equal(wantAt) || it.At.Location() != time.UTC {
				t.Errorf("item %d (%s) at %v, want %v UTC", i, itemString(it), it.At, wantAt)
			}
			if i > 0 {
				prev := all[i-1]
				if it.Revision == prev.Revision && it.Seq != prev.Seq+1 || it.Revision != prev.Revision && it.Seq != 0 {
					t.Errorf("item %d at %d.%d after %d.%d: seq does not count the items of a revision",
						i, it.Revision, it.Seq, prev.Revision, prev.Seq)
				}
			}
		}
		page, err := svc.Changes(context.Background(), k, policy.After(0), 1000, 0)
		if err != nil || page.Next != nil || page.Revision != last {
			t.Fatalf("whole feed: next %v, revision %d, %v; want no next, revision %d", page.Next, page.Revision, err, last)
		}

		for _, limit := range []int{1, 2, 3, 7} {
			if got := itemStrings(allChanges(t, svc, k, policy.After(0), limit)); !reflect.DeepEqual(got, want) {
				t.Errorf("feed in pages of %d:\n%s", limit, strings.Join(got, "\n"))
			}
		}
		// A position past the tenant's latest revision is not one of its
		// log's.
		var ahead *policy.RevisionAheadError
		if _, err := svc.Changes(context.Background(), k, policy.After(last+1), 1000, 0); !errors.As(err, &ahead) ||
			ahead.Revision != last+1 || ahead.Latest != last {
			t.Errorf("since %d: %v, want RevisionAheadError{%d, %d}", last+1, err, last+1, last)
		}
		for r := int64(0); r <= last; r++ {
			var w []string
			for i, it := range all {
				if it.Revision > r {
					w = append(w, want[i])
				}
			}
			page, err := svc.Changes(context.Background(), k, policy.After(r), 1000, 0)
			if err != nil {
				t.Fatalf("since %d: %v", r, err)
			}
			if got := itemStrings(page.Items); strings.Join(got, "\n") != strings.Join(w, "\n") {
				t.Errorf("since %d:\n%s\nwant:\n%s", r, strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
			if page.Next != nil || page.Revision != last {
				t.Errorf("since %d: next %v, revision %d; want none, %d", r, page.Next, page.Revision, last)
			}
		}
		// A position inside a revision: after its first item.
		for i, it := range all[:len(all)-1] {
			page, err := svc.Changes(context.Background(), k, policy.Position{Revision: it.Revision, Seq: it.Seq}, 1, 0)
			if err != nil || len(page.Items) != 1 || itemString(page.Items[0]) != want[i+1] {
				t.Errorf("after %d.%d: %q, %v; want %q", it.Revision, it.Seq, itemStrings(page.Items), err, want[i+1])
			}
		}
		// A tenant that does not exist has an empty feed at revision 0.
		page, err = svc.Changes(context.Background(), mustKey(t, keyB), policy.After(0), 10, 0)
		if err != nil || len(page.Items) != 0 || page.Items == nil || page.Next != nil || page.Revision != 0 {
			t.Errorf("feed of a missing tenant = %+v, %v; want empty at 0", page, err)
		}
		// Every replica reads the same feed.
		other := clockedService(t, db, clock, policy.Options{})
		if got := itemStrings(allChanges(t, other, k, policy.After(0), 4)); !reflect.DeepEqual(got, want) {
			t.Errorf("feed read by another replica:\n%s", strings.Join(got, "\n"))
		}
	})
}

// TestChangesWait: a request waiting for a change returns as soon as one
// commits, on this replica or (through its message) on another, without
// waiting for the database poll or the end of its wait.
func TestChangesWait(t *testing.T) {
	db := openSQLite(t)
	aBus := &bus{}
	// Polls too rare to make up for a missed wake-up within the test.
	opts := policy.Options{FeedPoll: time.Hour, Publisher: aBus}
	a := newService(t, db, auth.DefaultModel, opts)
	b := newService(t, db, auth.DefaultModel, policy.Options{FeedPoll: time.Hour})
	ctx, k := context.Background(), mustKey(t, keyA)
	if _, err := a.CreateRole(ctx, k, "admin"); err != nil {
		t.Fatal(err)
	}
	aBus.take()
	type result struct {
		page policy.ChangePage
		err  error
	}
	wait := func(svc *policy.Service, after int64) <-chan result {
		ch := make(chan result, 1)
		go func() {
			page, err := svc.Changes(ctx, k, policy.After(after), 10, policy.MaxChangesWait)
			ch <- result{page, err}
		}()
		return ch
	}
	get := func(what string, ch <-chan result) policy.ChangePage {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			return r.page
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: still waiting after the change committed", what)
		}
		return policy.ChangePage{}
	}
	// Nothing after revision 1: both wait.
	onA, onB := wait(a, 1), wait(b, 1)
	if _, err := a.PutGrant(ctx, k, "admin", "read"); err != nil {
		t.Fatal(err)
	}
	page := get("waiting on the replica that wrote", onA)
	if got := itemStrings(page.Items); len(got) != 1 || got[0] != "2 grant role=admin permission=read" {
		t.Errorf("waiting on the replica that wrote: %q", got)
	}
	deliver(t, b, aBus.take())
	page = get("waiting on another replica", onB)
	if got := itemStrings(page.Items); len(got) != 1 || got[0] != "2 grant role=admin permission=read" {
		t.Errorf("waiting on another replica: %q", got)
	}
}

// TestPurgeChanges: items older than the retention are purged; a position
// before the oldest revision kept fails with ChangesExpiredError naming it,
// positions from there on are answered as before.
func TestPurgeChanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := newClock(epoch)
		svc := clockedService(t, db, clock, policy.Options{ChangesRetention: time.Hour})
		k := mustKey(t, keyA)
		// Revisions 1 and 2 (two items) at the epoch, 3 and 4 half an hour on.
		if _, err := svc.CreateRole(ctx, k, "admin"); err != nil {
			t.Fatal(err)
		}
		f, err := policy.ParsePolicyCSV(strings.NewReader("# role: admin\n# role: a\n# role: b\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ImportPolicy(ctx, k, f, policy.ImportOptions{Merge: true}); err != nil {
			t.Fatal(err)
		}
		clock.add(30 * time.Minute)
		for _, r := range []string{"c", "d"} {
			if _, err := svc.CreateRole(ctx, k, r); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := svc.PurgeChanges(ctx); err != nil || n != 0 {
			t.Fatalf("PurgeChanges within the retention = %d, %v; want 0", n, err)
		}
		clock.add(30*time.Minute + time.Microsecond)
		if n, err := svc.PurgeChanges(ctx); err != nil || n != 3 {
			t.Fatalf("PurgeChanges = %d, %v; want the 3 items of revisions 1 and 2", n, err)
		}
		for _, from := range []policy.Position{policy.After(0), policy.After(1), {Revision: 1, Seq: 0},
			{Revision: 2, Seq: 0}} {
			_, err := svc.Changes(ctx, k, from, 10, 0)
			var gone *policy.ChangesExpiredError
			if !errors.As(err, &gone) || gone.Oldest != 3 {
				t.Errorf("Changes after %+v: %v; want ChangesExpiredError{Oldest: 3}", from, err)
			}
		}
		for _, tc := range []struct {
			from policy.Position
			want []string
		}{
			{policy.After(2), []string{"3 create_role role=c", "4 create_role role=d"}},
			{policy.After(3), []string{"4 create_role role=d"}},
			{policy.Position{Revision: 3, Seq: 0}, []string{"4 create_role role=d"}},
			{policy.After(4), nil},
		} {
			page, err := svc.Changes(ctx, k, tc.from, 10, 0)
			if got := itemStrings(page.Items); err != nil || strings.Join(got, "\n") != strings.Join(tc.want, "\n") || page.Revision != 4 {
				t.Errorf("Changes after %+v = %q at %d, %v; want %q at 4", tc.from, got, page.Revision, err, tc.want)
			}
		}
		// A second purge at the same time has nothing to do.
		if n, err := svc.PurgeChanges(ctx); err != nil || n != 0 {
			t.Errorf("second PurgeChanges = %d, %v", n, err)
		}
		// A purge of everything keeps the floor where the log ended.
		clock.add(time.Hour)
		if n, err := svc.PurgeChanges(ctx); err != nil || n != 2 {
			t.Fatalf("PurgeChanges of the rest = %d, %v; want 2", n, err)
		}
		_, err = svc.Changes(ctx, k, policy.After(3), 10, 0)
		var gone *policy.ChangesExpiredError
		if !errors.As(err, &gone) || gone.Oldest != 5 {
			t.Errorf("Changes after 3 once everything is purged: %v; want ChangesExpiredError{Oldest: 5}", err)
		}
		if page, err := svc.Changes(ctx, k, policy.After(4), 10, 0); err != nil || len(page.Items) != 0 || page.Revision != 4 {
			t.Errorf("Changes after 4 once everything is purged = %+v, %v; want empty at 4", page, err)
		}
	})
}

// The change feed is the store's: a store that does not answer fails it.
func TestChangesUnavailable(t *testing.T) {
	store := &outageStore{Store: policydb.New(openSQLite(t))}
	svc, err := policy.New(revOutage{store}, auth.DefaultModel, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, k := context.Background(), mustKey(t, keyA)
	if _, err := svc.CreateRole(ctx, k, "admin"); err != nil {
		t.Fatal(err)
	}
	store.mode.Store(int32(refused))
	if page, err := svc.Changes(ctx, k, policy.After(0), 10, 0); err == nil {
		t.Errorf("Changes during an outage = %+v, want an error", page)
	}
}
