package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestReplicaChangesVisibleEverywhere: three replicas; every kind of change
// made on one is seen on the other two within visibleWithin. The
// anti-entropy pass runs once an hour here, so only pub/sub can deliver, and
// no replica may need a reload (each change is applied from its message).
func TestReplicaChangesVisibleEverywhere(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3, "AUTH_SYNC_INTERVAL=1h")
	a, b, c := rs.nodes[0].s, rs.nodes[1].s, rs.nodes[2].s
	all := rs.servers()
	key := newKey(t)

	// The tenant exists and is in every replica's memory before the
	// changes under test.
	a.write(t, key, "POST", "/api/role/admin", true)
	everywhere(t, visibleWithin, "roles", all, func(s *server) (string, error) { return s.roles(key) }, "admin")
	// From here on, each change is applied everywhere before the next one
	// is made (rs.change), so that no replica ever writes from a memory
	// behind the database (which would make it reload).

	t.Run("role created", func(t *testing.T) {
		rs.change(t, a, key, "POST", "/api/role/editor", true)
		everywhere(t, visibleWithin, "roles", rs.others(a), func(s *server) (string, error) { return s.roles(key) }, "admin editor")
	})
	t.Run("grant", func(t *testing.T) {
		rs.change(t, b, key, "POST", "/api/permission/editor/write", true)
		everywhere(t, visibleWithin, "permissions of editor", rs.others(b),
			func(s *server) (string, error) { return s.rolePermissions(key, "editor") }, "write")
	})
	t.Run("membership", func(t *testing.T) {
		rs.change(t, c, key, "POST", "/api/membership/alice/editor", true)
		everywhere(t, visibleWithin, "members of editor", rs.others(c),
			func(s *server) (string, error) { return s.members(key, "editor") }, "alice")
		everywhere(t, visibleWithin, "alice can write", all,
			func(s *server) (string, error) { return s.hasText(key, "alice", "write") }, "true")
	})
	t.Run("role inheritance", func(t *testing.T) {
		rs.change(t, a, key, "POST", "/api/permission/admin/delete", true)
		rs.change(t, b, key, "POST", "/api/role/admin/parents/editor", true)
		rs.change(t, c, key, "POST", "/api/membership/bob/admin", true)
		everywhere(t, visibleWithin, "parents of admin", all,
			func(s *server) (string, error) { return s.parents(key, "admin") }, "editor")
		everywhere(t, visibleWithin, "permissions of admin", all,
			func(s *server) (string, error) { return s.rolePermissions(key, "admin") }, "delete write")
		everywhere(t, visibleWithin, "bob can write (inherited)", all,
			func(s *server) (string, error) { return s.hasText(key, "bob", "write") }, "true")
	})
	t.Run("revoke is denied everywhere", func(t *testing.T) {
		rs.change(t, a, key, "DELETE", "/api/permission/editor/write", true)
		for _, user := range []string{"alice", "bob"} {
			everywhere(t, visibleWithin, user+" can write", all,
				func(s *server) (string, error) { return s.hasText(key, user, "write") }, "false")
		}
		everywhere(t, visibleWithin, "bob can delete", all,
			func(s *server) (string, error) { return s.hasText(key, "bob", "delete") }, "true")
	})
	t.Run("membership and parent removed", func(t *testing.T) {
		rs.change(t, b, key, "DELETE", "/api/membership/alice/editor", true)
		rs.change(t, c, key, "DELETE", "/api/role/admin/parents/editor", true)
		everywhere(t, visibleWithin, "members of editor", all,
			func(s *server) (string, error) { return s.members(key, "editor") }, "")
		everywhere(t, visibleWithin, "parents of admin", all,
			func(s *server) (string, error) { return s.parents(key, "admin") }, "")
	})
	t.Run("role deleted and created again", func(t *testing.T) {
		rs.change(t, b, key, "POST", "/api/permission/editor/publish", true)
		rs.change(t, b, key, "POST", "/api/membership/carol/editor", true)
		everywhere(t, visibleWithin, "carol can publish", all,
			func(s *server) (string, error) { return s.hasText(key, "carol", "publish") }, "true")
		rs.change(t, a, key, "DELETE", "/api/role/editor", true)
		everywhere(t, visibleWithin, "roles", all, func(s *server) (string, error) { return s.roles(key) }, "admin")
		everywhere(t, visibleWithin, "carol can publish", all,
			func(s *server) (string, error) { return s.hasText(key, "carol", "publish") }, "false")
		rs.change(t, c, key, "POST", "/api/role/editor", true)
		everywhere(t, visibleWithin, "roles", all, func(s *server) (string, error) { return s.roles(key) }, "admin editor")
		// Its grants and members went with it: nothing comes back.
		everywhere(t, visibleWithin, "permissions of the new editor", all,
			func(s *server) (string, error) { return s.rolePermissions(key, "editor") }, "")
		everywhere(t, visibleWithin, "members of the new editor", all,
			func(s *server) (string, error) { return s.members(key, "editor") }, "")
	})
	t.Run("writes that change nothing", func(t *testing.T) {
		// A grant to a missing role answers false but still takes a
		// version: the replicas stay in step (no reload below).
		rs.change(t, a, key, "POST", "/api/permission/ghost/read", false)
		rs.change(t, b, key, "POST", "/api/role/admin", true)
		rs.change(t, c, key, "POST", "/api/permission/admin/read", true)
		everywhere(t, visibleWithin, "permissions of admin", all,
			func(s *server) (string, error) { return s.rolePermissions(key, "admin") }, "delete read")
	})
	t.Run("every replica equals the database", func(t *testing.T) {
		rs.converged(t, rs.openDB(t), visibleWithin, key, universe{
			roles: []string{"admin", "editor", "ghost"},
			users: []string{"alice", "bob", "carol"},
			perms: []string{"write", "delete", "publish", "read"},
		})
	})
	t.Run("tenant not loaded on a replica", func(t *testing.T) {
		key2 := newKey(t)
		a.write(t, key2, "POST", "/api/role/r2", true)
		a.write(t, key2, "POST", "/api/permission/r2/p2", true)
		a.write(t, key2, "POST", "/api/membership/dave/r2", true)
		// c has never seen the tenant: its first read loads it.
		if ok, err := c.has(key2, "dave", "p2"); err != nil || !ok {
			t.Fatalf("dave can p2 on a replica that had not loaded the tenant = %v, %v; want true", ok, err)
		}
		// Now loaded there, it follows the changes.
		a.write(t, key2, "DELETE", "/api/permission/r2/p2", true)
		everywhere(t, visibleWithin, "dave can p2", []*server{a, c},
			func(s *server) (string, error) { return s.hasText(key2, "dave", "p2") }, "false")
		// b never held it in memory: its first read is current too.
		if ok, err := b.has(key2, "dave", "p2"); err != nil || ok {
			t.Fatalf("dave can p2 on b = %v, %v; want false", ok, err)
		}
	})
	t.Run("tenant read before it existed", func(t *testing.T) {
		key3 := newKey(t)
		if got, err := b.roles(key3); err != nil || got != "" {
			t.Fatalf("roles of an unknown tenant = %q, %v; want none", got, err)
		}
		c.write(t, key3, "POST", "/api/role/late", true)
		everywhere(t, visibleWithin, "roles", all, func(s *server) (string, error) { return s.roles(key3) }, "late")
	})
	t.Run("metrics", func(t *testing.T) {
		for _, r := range rs.nodes {
			for sample, check := range map[string]func(float64) bool{
				"auth_replica_published_total":        func(v float64) bool { return v > 0 },
				"auth_replica_applied_total":          func(v float64) bool { return v > 0 },
				"auth_replica_publish_failures_total": func(v float64) bool { return v == 0 },
				"auth_replica_reloads_total":          func(v float64) bool { return v == 0 },
				"auth_replica_redis_connected":        func(v float64) bool { return v == 1 },
			} {
				v, err := r.s.metric(sample)
				if err != nil {
					t.Fatal(err)
				}
				if !check(v) {
					t.Errorf("%s: %s = %v", r.name, sample, v)
				}
			}
		}
	})
}

// TestReplicaNoWriteBack: a change made on one replica reaches the others
// without any of them writing to the database, through pub/sub and through
// the reload after a Redis outage alike. Every write statement on the
// tables of the service is counted per connection application_name by a
// statement trigger.
func TestReplicaNoWriteBack(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3)
	a, b, c := rs.nodes[0].s, rs.nodes[1].s, rs.nodes[2].s
	db := rs.openDB(t)
	key := newKey(t)
	u := universe{
		roles: []string{"r0", "r1", "r2", "r3"},
		users: []string{"u0", "u1", "u2"},
		perms: []string{"p0", "p1", "p2", "p3"},
	}
	a.write(t, key, "POST", "/api/role/r0", true)
	rs.converged(t, db, visibleWithin, key, u) // loaded everywhere

	installWriteCounters(t, db)
	before := writeCounts(t, db)
	auditBefore := count(t, db, "audit_log")

	changes := 0
	do := func(method, path string, want bool) {
		t.Helper()
		a.write(t, key, method, path, want)
		changes++
	}
	for i := 1; i <= 3; i++ {
		do("POST", fmt.Sprintf("/api/role/r%d", i), true)
	}
	for i := 0; i < 4; i++ {
		do("POST", fmt.Sprintf("/api/permission/r%d/p%d", i, i), true)
	}
	do("POST", "/api/permission/r9/p0", false) // missing role
	do("POST", "/api/membership/u0/r0", true)
	do("POST", "/api/membership/u1/r1", true)
	do("POST", "/api/membership/u2/r3", true)
	do("POST", "/api/role/r1/parents/r2", true)
	do("DELETE", "/api/permission/r0/p0", true)
	do("DELETE", "/api/membership/u1/r1", true)
	do("DELETE", "/api/role/r3", true)
	rs.converged(t, db, visibleWithin, key, u)

	// b misses changes while Redis is away from it, and catches up by
	// reloading from the database when it is back.
	rs.nodes[1].proxy.Cut()
	do("POST", "/api/membership/u1/r2", true)
	do("DELETE", "/api/role/r2/parents/r2", true)
	do("POST", "/api/permission/r1/p3", true)
	rs.nodes[1].proxy.Restore()
	rs.converged(t, db, convergeWithin, key, u)

	after := writeCounts(t, db)
	for _, r := range []*replica{rs.nodes[1], rs.nodes[2]} {
		for k, n := range after {
			if k.app == r.name && n != before[k] {
				t.Errorf("%s wrote to the database: %d %s statement(s) on %s", r.name, n-before[k], k.op, k.table)
			}
		}
	}
	if got := after[writeKey{"replica-a", "audit_log", "INSERT"}] - before[writeKey{"replica-a", "audit_log", "INSERT"}]; got == 0 {
		t.Errorf("no INSERT on audit_log counted for replica-a: the counters do not work")
	}
	if got, want := count(t, db, "audit_log")-auditBefore, changes; got != want {
		t.Errorf("audit_log grew by %d records for %d changes", got, want)
	}
	if v, err := b.metric("auth_replica_reloads_total"); err != nil || v < 1 {
		t.Errorf("b: auth_replica_reloads_total = %v, %v; want at least one reload after the outage", v, err)
	}
	if v, err := c.metric("auth_replica_applied_total"); err != nil || v < float64(changes) {
		t.Errorf("c: auth_replica_applied_total = %v, %v; want at least %d", v, err, changes)
	}
}

// writeKey names a counter of write statements.
type writeKey struct{ app, table, op string }

// installWriteCounters counts every INSERT, UPDATE and DELETE statement on
// the service's tables, per application_name.
func installWriteCounters(t testing.TB, db *sql.DB) {
	t.Helper()
	stmts := []string{
		`CREATE TABLE replica_test_writes (app TEXT NOT NULL, tbl TEXT NOT NULL, op TEXT NOT NULL,
			n BIGINT NOT NULL, PRIMARY KEY (app, tbl, op))`,
		`CREATE FUNCTION replica_test_count() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO replica_test_writes (app, tbl, op, n)
			VALUES (current_setting('application_name'), TG_TABLE_NAME, TG_OP, 1)
			ON CONFLICT (app, tbl, op) DO UPDATE SET n = replica_test_writes.n + 1;
			RETURN NULL;
		END $$`,
	}
	for _, table := range []string{"casbin_rule", "tenants", "roles", "audit_log", "audit_heads", "tenant_keys", "settings"} {
		stmts = append(stmts, `CREATE TRIGGER replica_test_count AFTER INSERT OR UPDATE OR DELETE ON `+table+
			` FOR EACH STATEMENT EXECUTE FUNCTION replica_test_count()`)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func writeCounts(t testing.TB, db *sql.DB) map[writeKey]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT app, tbl, op, n FROM replica_test_writes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[writeKey]int64{}
	for rows.Next() {
		var k writeKey
		var n int64
		if err := rows.Scan(&k.app, &k.table, &k.op, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplicaRedisOutage: Redis goes away from every replica for 5 s while
// writes go on through all three; the writes neither fail nor stall, and
// once Redis is back every replica equals the database within 10 s. The
// anti-entropy pass runs once an hour here: the catch-up comes from the
// reload each replica does when its subscription is live again.
func TestReplicaRedisOutage(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3, "AUTH_SYNC_INTERVAL=1h")
	db := rs.openDB(t)
	key := newKey(t)
	u := universe{
		roles: []string{"r0", "r1", "r2", "r3"},
		users: []string{"u0", "u1", "u2", "u3", "u4"},
		perms: []string{"p0", "p1", "p2", "p3", "p4", "p5"},
	}
	for i := 0; i < 4; i++ {
		rs.nodes[i%3].s.write(t, key, "POST", fmt.Sprintf("/api/role/r%d", i), true)
	}
	rs.converged(t, db, visibleWithin, key, u)

	for _, r := range rs.nodes {
		r.proxy.Cut()
	}
	outage := time.Now()
	var slowest time.Duration
	writes := 0
	tick := time.NewTicker(20 * time.Millisecond)
	for time.Since(outage) < 5*time.Second {
		<-tick.C
		s := rs.nodes[writes%3].s
		var path, method string
		switch r := fmt.Sprintf("r%d", writes%4); writes % 3 {
		case 0:
			method, path = "POST", fmt.Sprintf("/api/permission/%s/p%d", r, writes%6)
		case 1:
			method, path = "DELETE", fmt.Sprintf("/api/permission/%s/p%d", r, (writes+3)%6)
		default:
			method = []string{"POST", "DELETE"}[writes/3%2]
			path = fmt.Sprintf("/api/membership/u%d/%s", writes%5, r)
		}
		start := time.Now()
		s.write(t, key, method, path, true)
		slowest = max(slowest, time.Since(start))
		writes++
	}
	tick.Stop()
	t.Logf("%d writes during the outage, slowest %v", writes, slowest)
	if slowest > 500*time.Millisecond {
		t.Errorf("a write took %v while Redis was down: publishing must not hold writes up", slowest)
	}
	// The replicas notice that Redis is gone.
	for _, r := range rs.nodes {
		eventually(t, 5*time.Second, r.name+" reports Redis down", func() (string, error) {
			v, err := r.s.metric("auth_replica_redis_connected")
			if err != nil || v == 0 {
				return "", err
			}
			return fmt.Sprintf("auth_replica_redis_connected = %v", v), nil
		})
	}
	for _, r := range rs.nodes {
		r.proxy.Restore()
	}
	took := rs.converged(t, db, convergeWithin, key, u)
	t.Logf("every replica equal to the database %v after Redis came back", took)
	for _, r := range rs.nodes {
		r.waitLive(t)
	}
	// pub/sub works again.
	rs.nodes[0].s.write(t, key, "POST", "/api/role/after", true)
	everywhere(t, visibleWithin, "roles", rs.servers(), func(s *server) (string, error) { return s.roles(key) }, "r0 r1 r2 r3 after")
}

// TestReplicaRestartCatchesUp: a replica killed while the others change the
// tenant answers the current state as soon as it is back, and follows
// later changes through pub/sub again. It uses a channel of its own
// (AUTH_WATCHER_CHANNEL).
func TestReplicaRestartCatchesUp(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3, "AUTH_SYNC_INTERVAL=1h", "AUTH_WATCHER_CHANNEL=/auth/test/"+newKey(t))
	a, b := rs.nodes[0].s, rs.nodes[1].s
	c := rs.nodes[2]
	db := rs.openDB(t)
	key := newKey(t)
	u := universe{roles: []string{"r", "s"}, users: []string{"u", "v"}, perms: []string{"p1", "p2", "p3"}}
	a.write(t, key, "POST", "/api/role/r", true)
	a.write(t, key, "POST", "/api/permission/r/p1", true)
	b.write(t, key, "POST", "/api/membership/u/r", true)
	rs.converged(t, db, visibleWithin, key, u)

	c.kill()
	a.write(t, key, "POST", "/api/permission/r/p2", true)
	b.write(t, key, "DELETE", "/api/permission/r/p1", true)
	a.write(t, key, "POST", "/api/role/s", true)
	b.write(t, key, "POST", "/api/membership/v/s", true)
	a.write(t, key, "POST", "/api/role/s/parents/r", true)
	c.restart(t)
	// Back, it answers from the database at once.
	want, err := dbView(db, key, u)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.s.view(key, u); err != nil || got != want {
		t.Fatalf("restarted replica (err %v):\n got: %s\nwant: %s", err, got, want)
	}
	a.write(t, key, "POST", "/api/permission/s/p3", true)
	everywhere(t, visibleWithin, "v can p3", []*server{c.s}, func(s *server) (string, error) { return s.hasText(key, "v", "p3") }, "true")
	b.write(t, key, "DELETE", "/api/role/r", true)
	everywhere(t, visibleWithin, "v can p2", []*server{c.s}, func(s *server) (string, error) { return s.hasText(key, "v", "p2") }, "false")
	rs.converged(t, db, visibleWithin, key, u)
}

// TestReplicaConcurrentAddRemove: the three replicas add and remove the same
// rules at once; afterwards every replica equals the database. The
// anti-entropy pass runs once an hour here, so the replicas must get there
// through what they publish.
func TestReplicaConcurrentAddRemove(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t, 3, "AUTH_SYNC_INTERVAL=1h")
	db := rs.openDB(t)
	key := newKey(t)
	u := universe{roles: []string{"r", "s", "tmp"}, users: []string{"u", "v"}, perms: []string{"p", "q", "x"}}
	rs.nodes[0].s.write(t, key, "POST", "/api/role/r", true)
	rs.nodes[1].s.write(t, key, "POST", "/api/role/s", true)
	rs.converged(t, db, visibleWithin, key, u)

	type op struct {
		method, path string
		// any: either result is right, whatever the other writers did;
		// otherwise the result must be true.
		any bool
	}
	// Adding a parent decides on the replica's memory (cycles, depth): a
	// replica whose memory is behind reloads and tries again, and answers
	// 503 "try again" after 5 tries while the other replicas keep writing.
	const parentAdd = "/api/role/s/parents/r"
	ops := []op{
		{"POST", "/api/permission/r/p", false},
		{"DELETE", "/api/permission/r/p", false},
		{"POST", "/api/permission/s/q", false},
		{"DELETE", "/api/permission/s/q", false},
		{"POST", "/api/membership/u/r", false},
		{"DELETE", "/api/membership/u/r", false},
		{"POST", "/api/membership/v/s", false},
		{"DELETE", "/api/membership/v/s", false},
		{"POST", parentAdd, false},
		{"DELETE", "/api/role/s/parents/r", false},
		{"POST", "/api/role/tmp", false},
		{"DELETE", "/api/role/tmp", true},       // false when already gone
		{"POST", "/api/permission/tmp/x", true}, // false when tmp is gone
		{"POST", "/api/membership/u/tmp", true},
	}
	const perWorker = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	busy := 0
	for w := 0; w < 9; w++ {
		s := rs.nodes[w%3].s
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < perWorker; i++ {
				o := ops[rnd.IntN(len(ops))]
				r, err := s.send(o.method, o.path, "Authorization: Bearer "+key)
				if err == nil && o.path == parentAdd && r.status == 503 {
					mu.Lock()
					busy++
					mu.Unlock()
					continue
				}
				if err == nil {
					var ok bool
					if ok, err = resultOf(r); err == nil && !ok && !o.any {
						err = fmt.Errorf("%s: result false", r)
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("on %s: %v", s.base, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d parent additions answered 503 (try again)", busy)
	took := rs.converged(t, db, convergeWithin, key, u)
	t.Logf("replicas equal to the database %v after the last write", took)
}

// TestReplicaSetsShareRedis: two deployments on different databases share
// one Redis and the default channel. The same client key is tenant 1 in
// both, at the same policy version: a change in one must never show in the
// other.
func TestReplicaSetsShareRedis(t *testing.T) {
	t.Parallel()
	x := newReplicaSet(t, 2, "AUTH_SYNC_INTERVAL=1h")
	y := newReplicaSet(t, 1, "AUTH_SYNC_INTERVAL=1h")
	key := newKey(t)
	x1, x2, y1 := x.nodes[0].s, x.nodes[1].s, y.nodes[0].s
	x1.write(t, key, "POST", "/api/role/r", true)
	y1.write(t, key, "POST", "/api/role/r", true)
	everywhere(t, visibleWithin, "roles", []*server{x2}, func(s *server) (string, error) { return s.roles(key) }, "r")

	x1.write(t, key, "POST", "/api/permission/r/only-x", true)
	x1.write(t, key, "POST", "/api/membership/u/r", true)
	everywhere(t, visibleWithin, "u can only-x", []*server{x2}, func(s *server) (string, error) { return s.hasText(key, "u", "only-x") }, "true")
	if got, err := y1.rolePermissions(key, "r"); err != nil || got != "" {
		t.Errorf("the other deployment's change shows: permissions of r = %q, %v; want none", got, err)
	}
	if got, err := y1.members(key, "r"); err != nil || got != "" {
		t.Errorf("the other deployment's change shows: members of r = %q, %v; want none", got, err)
	}
	for _, sample := range []string{"auth_replica_applied_total", "auth_replica_reloads_total"} {
		if v, err := y1.metric(sample); err != nil || v != 0 {
			t.Errorf("y: %s = %v, %v; want 0", sample, v, err)
		}
	}
}
