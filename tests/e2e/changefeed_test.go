package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// feedWritesPerReplica is the number of random writes each replica's
	// writer makes.
	feedWritesPerReplica = 150
	// feedPageLimit is the page size the consumer asks for: small, so that
	// it follows cursors.
	feedPageLimit = 7
	// wakeRounds is the number of long-poll wake-ups measured.
	wakeRounds = 20
)

// feedWrite is a write the random writers make; want is the change it must
// appear as in the feed when it reports one.
type feedWrite struct {
	method, path, body string
}

// randomFeedWrite draws a write on a small universe of roles, users and
// permissions.
func randomFeedWrite(rng *rand.Rand) feedWrite {
	roles := []string{"r0", "r1", "r2", "r3", "r4", "r5"}
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	perms := []string{"p0", "p1", "p2", "p3"}
	r, q := roles[rng.IntN(len(roles))], roles[rng.IntN(len(roles))]
	u, p := users[rng.IntN(len(users))], perms[rng.IntN(len(perms))]
	expiry := func() string {
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprintf(`{"ttl":"%dh"}`, 1+rng.IntN(48))
		case 1:
			return fmt.Sprintf(`{"expires_at":%q}`, time.Now().Add(time.Duration(2+rng.IntN(48))*time.Hour).UTC().Format(time.RFC3339))
		}
		return "" // permanent
	}
	switch n := rng.IntN(100); {
	case n < 8:
		return feedWrite{"POST", "/roles", fmt.Sprintf(`{"name":%q}`, r)}
	case n < 16:
		return feedWrite{"PUT", "/roles/" + r, ""}
	case n < 18:
		return feedWrite{"DELETE", "/roles/" + r, ""}
	case n < 24:
		if rng.IntN(3) == 0 {
			return feedWrite{"PUT", "/roles/" + r, `{"description":null}`}
		}
		return feedWrite{"PUT", "/roles/" + r, fmt.Sprintf(`{"description":"d%d"}`, rng.IntN(100))}
	case n < 40:
		return feedWrite{"PUT", "/roles/" + r + "/permissions/" + p, expiry()}
	case n < 47:
		return feedWrite{"DELETE", "/roles/" + r + "/permissions/" + p, ""}
	case n < 67:
		return feedWrite{"PUT", "/roles/" + r + "/members/" + u, expiry()}
	case n < 74:
		return feedWrite{"DELETE", "/roles/" + r + "/members/" + u, ""}
	case n < 90:
		return feedWrite{"PUT", "/roles/" + r + "/parents/" + q, ""}
	case n < 96:
		return feedWrite{"DELETE", "/roles/" + r + "/parents/" + q, ""}
	default:
		return feedWrite{"DELETE", "/users/" + u, ""}
	}
}

// changeExpected is the change a write reporting one must show in the
// feed at its revision (only the op and the names are compared).
func changeExpected(w feedWrite, data json.RawMessage) (feedItem, bool, error) {
	var d struct {
		Created            *bool  `json:"created"`
		Deleted            *bool  `json:"deleted"`
		MembershipsRemoved *int   `json:"memberships_removed"`
		Name               string `json:"name"`
		Parent             string `json:"parent"`
		Permission         string `json:"permission"`
		Role               string `json:"role"`
		User               string `json:"user"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return feedItem{}, false, err
	}
	parts := strings.Split(strings.TrimPrefix(w.path, "/"), "/")
	switch {
	case w.method == "POST": // POST /roles answers 201 when it created
		return feedItem{Op: "create_role", Role: d.Name}, true, nil
	case parts[0] == "users":
		return feedItem{Op: "delete_user", User: d.User}, d.MembershipsRemoved != nil && *d.MembershipsRemoved > 0, nil
	case len(parts) == 2 && w.method == "PUT":
		return feedItem{Op: "create_role", Role: d.Name}, d.Created != nil && *d.Created, nil
	case len(parts) == 2:
		return feedItem{Op: "delete_role", Role: d.Role}, d.Deleted != nil && *d.Deleted, nil
	}
	ops := map[string][2]string{"permissions": {"grant", "revoke"}, "members": {"add_member", "remove_member"}, "parents": {"add_parent", "remove_parent"}}[parts[2]]
	it := feedItem{Role: d.Role, Permission: d.Permission, User: d.User, Parent: d.Parent}
	if w.method == "PUT" {
		it.Op = ops[0]
		return it, d.Created != nil && *d.Created, nil
	}
	it.Op = ops[1]
	return it, d.Deleted != nil && *d.Deleted, nil
}

// sameChange reports whether got is the change want names.
func sameChange(got, want feedItem) bool {
	return got.Op == want.Op && got.Role == want.Role && got.User == want.User &&
		got.Permission == want.Permission && got.Parent == want.Parent
}

// acceptedRefusal reports whether a write's error answer is one the random
// writes may get: a missing role, a role that exists, a cycle or a chain
// too deep, or a replica that asks to try again.
func acceptedRefusal(status int, reason any) bool {
	switch status {
	case 404:
		return reason == "role_not_found"
	case 409:
		return reason == "role_exists" || reason == "role_cycle" || reason == "role_depth"
	case 503:
		return true
	}
	return false
}

// TestChangeFeedRebuild: three replicas take random writes at once while a
// consumer follows GET /api/v2/changes from revision 0, on the replicas in
// turn, and rebuilds the policy from the changes. Once the writers stop
// and the consumer has caught up, the rebuilt policy equals the export
// (roles, grants, members, parents), the listings (expiries, descriptions),
// and a fresh read of the whole feed; every write that reported a change
// is in the feed at its revision.
func TestChangeFeedRebuild(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3)
	key := newKey(t)
	servers := rs.servers()

	type reported struct {
		revision int64
		want     feedItem
		write    string
	}
	var (
		mu       sync.Mutex
		failures []string
		changed  []reported
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}

	// The consumer.
	var (
		target   atomic.Int64 // > 0: stop once caught up to it
		consumed []feedItem
		rebuilt  = newPolicyState()
		position int64
		polls    int
	)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		var cursor *string
		deadline := time.Now().Add(60 * time.Second)
		seen := map[string]bool{}
		for i := 0; ; i++ {
			if time.Now().After(deadline) {
				fail("consumer: not caught up to revision %d within the deadline; at %d", target.Load(), position)
				return
			}
			s := servers[i%len(servers)]
			var q string
			switch {
			case cursor != nil:
				q = fmt.Sprintf("cursor=%s&limit=%d", url.QueryEscape(*cursor), feedPageLimit)
			case target.Load() > 0 && position >= target.Load():
				return
			default:
				q = fmt.Sprintf("since=%d&limit=%d&wait=2s", position, feedPageLimit)
			}
			pg, _, err := s.changes(key, q)
			if err != nil {
				fail("consumer on %s: %v", s.base, err)
				return
			}
			polls++
			for _, it := range pg.Items {
				if it.Revision <= 0 || (len(consumed) > 0 && it.Revision < consumed[len(consumed)-1].Revision) {
					fail("consumer: revision %d after %d: %s", it.Revision, consumed[len(consumed)-1].Revision, it)
					return
				}
				if cursor == nil && it.Revision <= position {
					fail("consumer: since=%d answered a change at revision %d: %s", position, it.Revision, it)
					return
				}
				id := it.String()
				if seen[id] {
					fail("consumer: change %s read twice", it)
					return
				}
				seen[id] = true
				consumed = append(consumed, it)
				if err := rebuilt.apply(it); err != nil {
					fail("consumer: %v", err)
					return
				}
			}
			if pg.Revision < position {
				fail("consumer: data.revision %d after %d", pg.Revision, position)
				return
			}
			position, cursor = pg.Revision, pg.NextCursor
		}
	}()

	// The writers, one per replica.
	var wg sync.WaitGroup
	for w, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, 16))
			var last int64
			for i := 0; i < feedWritesPerReplica; i++ {
				wr := randomFeedWrite(rng)
				r, a, err := s.v2Call(key, wr.method, wr.path, wr.body)
				if err != nil {
					fail("writer %d: %v", w, err)
					return
				}
				desc := fmt.Sprintf("%s %s %s on %s", wr.method, wr.path, wr.body, s.base)
				if r.status >= 400 {
					if !acceptedRefusal(r.status, a.Details["reason"]) {
						fail("writer %d: %s", w, r)
					}
					continue
				}
				rev, err := revisionOf(r, a)
				if err != nil {
					fail("writer %d: %v", w, err)
					continue
				}
				if rev <= last {
					fail("writer %d: %s took revision %d after its previous write's %d", w, desc, rev, last)
				}
				last = rev
				want, ok, err := changeExpected(wr, a.Data)
				if err != nil {
					fail("writer %d: %s: %v", w, r, err)
				} else if ok {
					mu.Lock()
					changed = append(changed, reported{revision: rev, want: want, write: desc})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()

	_, latest, err := servers[0].exported(key, "full")
	if err != nil {
		t.Fatal(err)
	}
	target.Store(latest)
	<-consumerDone
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d writes reported a change, %d changes read in %d polls up to revision %d; rebuilt: %d roles, %d grants, %d members, %d parent links",
		len(changed), len(consumed), polls, latest, len(rebuilt.roles), len(rebuilt.grants), len(rebuilt.members), len(rebuilt.parents))
	if len(changed) < feedWritesPerReplica {
		t.Errorf("only %d of %d writes reported a change: the random writes do not exercise the feed", len(changed), 3*feedWritesPerReplica)
	}

	t.Run("every reported change is in the feed", func(t *testing.T) {
		byRev := map[int64][]feedItem{}
		for _, it := range consumed {
			byRev[it.Revision] = append(byRev[it.Revision], it)
		}
		for _, c := range changed {
			found := false
			for _, it := range byRev[c.revision] {
				found = found || sameChange(it, c.want)
			}
			if !found {
				t.Errorf("%s reported a change at revision %d; the feed has there %v, want %s", c.write, c.revision, byRev[c.revision], c.want)
			}
		}
	})
	t.Run("the rebuilt policy equals the export", func(t *testing.T) {
		for _, s := range servers {
			exp, rev, err := s.exported(key, atLeast(latest))
			if err != nil {
				t.Fatal(err)
			}
			if rev != latest {
				t.Errorf("export on %s at revision %d, want %d (no write since)", s.base, rev, latest)
			}
			if got, want := rebuilt.withoutExpiry().text(false, false), exp.text(false, false); got != want {
				t.Errorf("rebuilt from the feed:\n%s\nexport on %s:\n%s", got, s.base, want)
			}
		}
	})
	t.Run("the rebuilt expiries and descriptions equal the listings", func(t *testing.T) {
		listed := newPolicyState()
		s := servers[1]
		roles, _, err := s.listAll(key, "/roles?consistency="+url.QueryEscape(atLeast(latest)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roles {
			listed.roles[r.Name] = r.Description
		}
		for _, r := range roles {
			for kind, m := range map[string]map[pair]string{"permissions": listed.grants, "members": listed.members} {
				items, _, err := s.listAll(key, "/roles/"+r.Name+"/"+kind+"?consistency="+url.QueryEscape(atLeast(latest)))
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					exp, err := expiryKey(it.ExpiresAt)
					if err != nil {
						t.Fatal(err)
					}
					m[pair{r.Name, it.Name + it.User}] = exp
				}
			}
		}
		rebuiltText := rebuilt.text(true, true)
		// The listings have no parents: take them from the rebuilt state.
		for k := range rebuilt.parents {
			listed.parents[k] = true
		}
		if got := listed.text(true, true); got != rebuiltText {
			t.Errorf("rebuilt from the feed:\n%s\nlistings:\n%s", rebuiltText, got)
		}
	})
	t.Run("a fresh read of the feed says the same", func(t *testing.T) {
		for i, limit := range []int{1000, 3} {
			s := servers[(i+1)%len(servers)]
			items, rev, err := s.feedAll(key, 0, limit)
			if err != nil {
				t.Fatal(err)
			}
			if rev != latest {
				t.Errorf("the feed read on %s ends at revision %d, want %d", s.base, rev, latest)
			}
			if got, want := itemsText(items), itemsText(consumed); got != want {
				t.Errorf("feed read with limit %d on %s:\n%s\nwant what the consumer read:\n%s", limit, s.base, got, want)
			}
		}
		// Part way: since=n leaves out exactly the changes up to n.
		mid := consumed[len(consumed)/2].Revision
		items, _, err := servers[2].feedAll(key, mid, 100)
		if err != nil {
			t.Fatal(err)
		}
		var want []feedItem
		for _, it := range consumed {
			if it.Revision > mid {
				want = append(want, it)
			}
		}
		if got, w := itemsText(items), itemsText(want); got != w {
			t.Errorf("feed since=%d:\n%s\nwant:\n%s", mid, got, w)
		}
	})
	t.Run("parameters", func(t *testing.T) {
		s := servers[0]
		for _, tc := range []struct{ query, parameter string }{
			{"since=-1", "since"}, {"since=x", "since"},
			{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=x", "limit"},
			{"cursor=not-a-cursor", "cursor"},
			{"wait=61s", "wait"}, {"wait=-1s", "wait"}, {"wait=soon", "wait"},
		} {
			_, r, err := s.changes(key, tc.query)
			if err == nil {
				t.Errorf("GET /api/v2/changes?%s answered 200", tc.query)
				continue
			}
			expectV2Error(t, r, 400, "invalid_parameter", map[string]any{"parameter": tc.parameter})
		}
	})
	t.Run("long-poll wake-up across replicas", func(t *testing.T) {
		testLongPollWake(t, servers[0], servers[1], key, latest)
	})
}

// itemsText writes changes one a line without their times.
func itemsText(items []feedItem) string {
	var b strings.Builder
	for _, it := range items {
		it.At = ""
		b.WriteString(it.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// testLongPollWake measures how soon a long poll (wait=30s) on waiter
// answers a write on writer, from the write's answer to the poll's answer,
// wakeRounds times, and reports p50 and max; no bound is asserted. The
// poll must answer with the write's change.
func testLongPollWake(t *testing.T, writer, waiter *server, key string, since int64) {
	t.Helper()
	hc := &http.Client{Timeout: 45 * time.Second}
	defer hc.CloseIdleConnections()
	var took []time.Duration
	for i := 0; i < wakeRounds; i++ {
		type result struct {
			pg  feedPage
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		sent := make(chan struct{})
		go func() {
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) }}
			req, err := http.NewRequest("GET", waiter.base+fmt.Sprintf("/api/v2/changes?since=%d&wait=30s", since), nil)
			if err != nil {
				done <- result{err: err}
				return
			}
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			pg, _, err := waiter.changesDo(hc, req, key)
			done <- result{pg: pg, err: err, at: time.Now()}
		}()
		select {
		case <-sent:
		case res := <-done:
			t.Fatalf("the long poll answered before it was sent: %v", res.err)
		}
		// The request is on the wire; the write follows.
		desc := fmt.Sprintf(`{"description":"wake %d"}`, i)
		r, a := writer.v2Must(t, key, "PUT", "/roles/wake", desc, map[bool]int{true: 201, false: 200}[i == 0])
		wrote := mustRevision(t, r, a)
		answered := time.Now()
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		found := false
		for _, it := range res.pg.Items {
			found = found || it.Revision == wrote
		}
		if !found {
			t.Fatalf("round %d: the long poll since=%d answered %+v without the write at revision %d", i, since, res.pg, wrote)
		}
		took = append(took, max(res.at.Sub(answered), 0))
		since = wrote
	}
	reportLine(t, fmt.Sprintf("feed long-poll wake p50=%d max=%d",
		percentile(took, 0.5).Milliseconds(), percentile(took, 1).Milliseconds()))
}

// TestChangeFeedExpired: with AUTH_CHANGES_RETENTION=1m, changes older
// than the retention (aged in the database, since the smallest retention is
// a minute) leave the feed at the purge a server runs when it starts. A
// position before them (since or a cursor) answers 410 changes_expired
// with the oldest revision still held; the export's revision is a position
// to continue from.
func TestChangeFeedExpired(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	s := postgresServer(t, "AUTH_CHANGES_RETENTION=1m")
	key := newKey(t)
	var revs []int64
	for _, w := range []string{"/roles/r", "/roles/r/permissions/p1", "/roles/r/permissions/p2", "/roles/r/permissions/p3", "/roles/r/permissions/p4"} {
		r, a := s.v2Must(t, key, "PUT", w, "", 201)
		revs = append(revs, mustRevision(t, r, a))
	}
	first, _, err := s.changes(key, "since=0&limit=1")
	if err != nil {
		t.Fatal(err)
	}
	if first.NextCursor == nil || len(first.Items) != 1 || first.Items[0].Revision != revs[0] {
		t.Fatalf("first page %+v: want revision %d and a next_cursor", first, revs[0])
	}
	// The first three revisions are two minutes old.
	db := s.openDB(t)
	if _, err := db.Exec(`UPDATE policy_changes SET at = at - 120000000 WHERE tenant_id = $1 AND revision <= $2`,
		tenantID(t, db, key), revs[2]); err != nil {
		t.Fatal(err)
	}
	s = s.restart(t)
	eventually(t, 10*time.Second, "the purge at start", func() (string, error) {
		_, r, err := s.changes(key, "since=0")
		if err != nil && r.status == 410 {
			return "", nil
		}
		return fmt.Sprintf("GET /api/v2/changes?since=0: %v", err), err
	})
	oldest := float64(revs[2] + 1)
	for _, q := range []string{"since=0", fmt.Sprintf("since=%d", revs[1]), "cursor=" + url.QueryEscape(*first.NextCursor)} {
		_, r, err := s.changes(key, q)
		if err == nil {
			t.Errorf("GET /api/v2/changes?%s answered 200 after the purge", q)
			continue
		}
		expectV2Error(t, r, 410, "changes_expired", map[string]any{"oldest": oldest})
		if !strings.Contains(string(r.body), "/api/v2/policy/export") {
			t.Errorf("%s: the message does not say to resynchronise from the export", r)
		}
	}
	items, latest, err := s.feedAll(key, revs[2], 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Revision != revs[3] || items[1].Revision != revs[4] || latest != revs[4] {
		t.Errorf("feed since=%d after the purge: %s(latest %d), want the grants of revisions %d and %d", revs[2], itemsText(items), latest, revs[3], revs[4])
	}
	// Resynchronising: the export's revision is a position the feed holds.
	_, rev, err := s.exported(key, "")
	if err != nil {
		t.Fatal(err)
	}
	pg, _, err := s.changes(key, fmt.Sprintf("since=%d", rev))
	if err != nil || len(pg.Items) != 0 || pg.Revision != rev {
		t.Errorf("feed since the export's revision %d: %+v, %v; want no items at revision %d", rev, pg, err, rev)
	}
}
