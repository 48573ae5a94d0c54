package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// Replica sets: auth-server processes on one PostgreSQL database, each
// reaching the shared Redis through a TCP proxy of its own (testenv.Proxy),
// so that a test can take Redis away from one replica or from all of them
// without touching the machine's Redis.

const (
	// visibleWithin is how soon a change made on one replica must be seen
	// on the others through pub/sub.
	visibleWithin = time.Second
	// convergeWithin bounds how long the replicas may take to agree with
	// the database after Redis comes back (the acceptance bound).
	convergeWithin = 10 * time.Second
)

// replica is one auth-server process of a replica set.
type replica struct {
	name  string
	env   []string
	proxy *testenv.Proxy
	s     *server
}

// replicaSet is n auth-server processes on one PostgreSQL database.
type replicaSet struct {
	pgURL string
	nodes []*replica
}

// newReplicaSet starts n replicas on a new PostgreSQL database, each with a
// Redis proxy of its own, and waits until each one's subscription is live.
// Settings: AUTH_SYNC_INTERVAL=1s and AUTH_AUDIT_DECISIONS=none (reads write
// nothing, so that every database write is a change's), then extra.
// Replica i connects with application_name replica-<letter>.
func newReplicaSet(t testing.TB, n int, extra ...string) *replicaSet {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	redis, err := url.Parse(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	target := testenv.RedisAddr(t)
	rs := &replicaSet{pgURL: testenv.PostgresURL(t)}
	for i := 0; i < n; i++ {
		name := "replica-" + string(rune('a'+i))
		proxy := testenv.NewProxy(t, target)
		via := *redis
		via.Host = proxy.Addr()
		env := serverEnv(filepath.Join(t.TempDir(), "unused.sqlite3"), append([]string{
			"AUTH_DB_TYPE=postgresql",
			"POSTGRESQL_URL=" + withAppName(t, rs.pgURL, name),
			"AUTH_WATCHER_REDIS_URL=" + via.String(),
			"AUTH_SYNC_INTERVAL=1s",
			"AUTH_AUDIT_DECISIONS=none",
		}, extra...)...)
		rs.nodes = append(rs.nodes, &replica{name: name, env: env, proxy: proxy})
	}
	// The first replica migrates the new database; the others find it
	// current.
	for _, r := range rs.nodes {
		r.s = startServer(t, r.env)
	}
	for _, r := range rs.nodes {
		r.waitLive(t)
	}
	return rs
}

func withAppName(t testing.TB, pgURL, name string) string {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// servers lists the running processes.
func (rs *replicaSet) servers() []*server {
	var out []*server
	for _, r := range rs.nodes {
		out = append(out, r.s)
	}
	return out
}

// others lists the servers other than s.
func (rs *replicaSet) others(s *server) []*server {
	var out []*server
	for _, r := range rs.nodes {
		if r.s != s {
			out = append(out, r.s)
		}
	}
	return out
}

func (rs *replicaSet) openDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", rs.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// waitLive waits until the replica's subscription to Redis is confirmed
// (auth_replica_redis_connected 1).
func (r *replica) waitLive(t testing.TB) {
	t.Helper()
	eventually(t, convergeWithin, r.name+" subscribed to Redis", func() (string, error) {
		v, err := r.s.metric("auth_replica_redis_connected")
		if err != nil || v == 1 {
			return "", err
		}
		return fmt.Sprintf("auth_replica_redis_connected = %v", v), nil
	})
}

// kill ends the replica's process at once (SIGKILL), as a crash would.
func (r *replica) kill() {
	r.s.kill()
}

// restart starts the replica again with its environment.
func (r *replica) restart(t testing.TB) {
	t.Helper()
	r.s = startServer(t, r.env)
	r.waitLive(t)
}

// metric reads one sample of /metrics (absent: 0).
func (s *server) metric(sample string) (float64, error) {
	r, err := s.send("GET", "/metrics")
	if err != nil {
		return 0, err
	}
	if r.status != 200 {
		return 0, fmt.Errorf("GET /metrics: %d", r.status)
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && name == sample {
			return strconv.ParseFloat(strings.TrimSpace(val), 64)
		}
	}
	return 0, nil
}

// eventually polls check until it reports no difference ("") and returns how
// long that took; past within it fails the test with the last difference.
// An error from check fails the test at once.
func eventually(t testing.TB, within time.Duration, what string, check func() (string, error)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		diff, err := check()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diff == "" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v:\n%s", what, within, diff)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// everywhere polls check on every server until all agree with want.
func everywhere(t testing.TB, within time.Duration, what string, servers []*server, check func(s *server) (string, error), want string) {
	t.Helper()
	for _, s := range servers {
		eventually(t, within, what+" on "+s.base, func() (string, error) {
			got, err := check(s)
			if err != nil || got == want {
				return "", err
			}
			return fmt.Sprintf(" got: %s\nwant: %s", got, want), nil
		})
	}
}

// getJSON sends an authenticated GET and decodes a 200 answer into v.
func (s *server) getJSON(key, path string, v any) error {
	r, err := s.send("GET", path, "Authorization: Bearer "+key)
	if err != nil {
		return err
	}
	if r.status != 200 {
		return fmt.Errorf("%s", r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("%s: %v", r, err)
	}
	return nil
}

// write sends an authenticated change and checks its result.
func (s *server) write(t testing.TB, key, method, path string, want bool) {
	t.Helper()
	r := s.do(t, method, path, "Authorization: Bearer "+key)
	got, err := resultOf(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s: result = %v, want %v", r, got, want)
	}
}

// resultOf reads the result of a write: {"result": b}, or data.result in
// the envelope of DELETE /api/role.
func resultOf(r response) (bool, error) {
	if r.status != 200 {
		return false, fmt.Errorf("%s: want status 200", r)
	}
	var b struct {
		Result *bool
		Data   struct{ Result *bool }
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		return false, fmt.Errorf("%s: %v", r, err)
	}
	switch {
	case b.Result != nil:
		return *b.Result, nil
	case b.Data.Result != nil:
		return *b.Data.Result, nil
	}
	return false, fmt.Errorf("%s: no result", r)
}

// change makes a change on via and waits until every other replica has
// applied it from its messages (its auth_replica_applied_total grows): the
// next change, wherever it is made, then starts from the same state. The
// tenant must be loaded on every replica.
func (rs *replicaSet) change(t testing.TB, via *server, key, method, path string, want bool) {
	t.Helper()
	before := map[*server]float64{}
	for _, s := range rs.others(via) {
		v, err := s.metric("auth_replica_applied_total")
		if err != nil {
			t.Fatal(err)
		}
		before[s] = v
	}
	via.write(t, key, method, path, want)
	for s, n := range before {
		eventually(t, visibleWithin, method+" "+path+" applied on "+s.base, func() (string, error) {
			v, err := s.metric("auth_replica_applied_total")
			if err != nil || v > n {
				return "", err
			}
			return fmt.Sprintf("auth_replica_applied_total = %v", v), nil
		})
	}
}

// Reads as one-line answers, for comparing replicas.

func (s *server) roles(key string) (string, error) {
	var b struct{ Result []struct{ Role string } }
	if err := s.getJSON(key, "/api/roles", &b); err != nil {
		return "", err
	}
	var out []string
	for _, r := range b.Result {
		out = append(out, r.Role)
	}
	return strings.Join(out, " "), nil
}

func (s *server) rolePermissions(key, role string) (string, error) {
	var b struct{ Data []struct{ Name string } }
	if err := s.getJSON(key, "/api/role_permissions/"+role, &b); err != nil {
		return "", err
	}
	var out []string
	for _, p := range b.Data {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return strings.Join(out, " "), nil
}

func (s *server) members(key, role string) (string, error) {
	var b struct{ Result []struct{ User string } }
	if err := s.getJSON(key, "/api/members/"+role, &b); err != nil {
		return "", err
	}
	var out []string
	for _, m := range b.Result {
		out = append(out, m.User)
	}
	sort.Strings(out)
	return strings.Join(out, " "), nil
}

func (s *server) parents(key, role string) (string, error) {
	var b struct{ Result []struct{ Parent string } }
	if err := s.getJSON(key, "/api/role/"+role+"/parents", &b); err != nil {
		return "", err
	}
	var out []string
	for _, p := range b.Result {
		out = append(out, p.Parent)
	}
	sort.Strings(out)
	return strings.Join(out, " "), nil
}

func (s *server) has(key, user, perm string) (bool, error) {
	var b struct {
		Data struct {
			HasPermission *bool `json:"has_permission"`
		}
	}
	if err := s.getJSON(key, "/api/has_permission/"+user+"/"+perm, &b); err != nil {
		return false, err
	}
	if b.Data.HasPermission == nil {
		return false, fmt.Errorf("has_permission %s %s: no data.has_permission", user, perm)
	}
	return *b.Data.HasPermission, nil
}

func (s *server) hasText(key, user, perm string) (string, error) {
	ok, err := s.has(key, user, perm)
	return strconv.FormatBool(ok), err
}

// universe names the roles, users and permissions a view covers.
type universe struct {
	roles, users, perms []string
}

// view is a tenant's state as one text: the roles in creation order, each
// candidate role's permissions (inherited too), members and parents, and
// every user's decision on every permission.
func (s *server) view(key string, u universe) (string, error) {
	var b strings.Builder
	roles, err := s.roles(key)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "roles: [%s]\n", roles)
	for _, r := range u.roles {
		perms, err := s.rolePermissions(key, r)
		if err != nil {
			return "", err
		}
		members, err := s.members(key, r)
		if err != nil {
			return "", err
		}
		parents, err := s.parents(key, r)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s: permissions [%s] members [%s] parents [%s]\n", r, perms, members, parents)
	}
	for _, user := range u.users {
		var allowed []string
		for _, p := range u.perms {
			ok, err := s.has(key, user, p)
			if err != nil {
				return "", err
			}
			if ok {
				allowed = append(allowed, p)
			}
		}
		fmt.Fprintf(&b, "%s can [%s]\n", user, strings.Join(allowed, " "))
	}
	return b.String(), nil
}

// dbView is view computed from the database's rows (names are stored in
// clear: the replica tests do not turn encryption on).
func dbView(db *sql.DB, key string, u universe) (string, error) {
	kh, err := clientKeyHash(key)
	if err != nil {
		return "", err
	}
	var id int64
	switch err := db.QueryRow(`SELECT id FROM tenants WHERE key_hash = $1`, kh).Scan(&id); {
	case err == sql.ErrNoRows:
		id = 0
	case err != nil:
		return "", err
	}
	dom := strconv.FormatInt(id, 10)
	var roles []string
	rows, err := db.Query(`SELECT name FROM roles WHERE tenant_id = $1 ORDER BY id`, id)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return "", err
		}
		roles = append(roles, n)
	}
	rows.Close()
	grants := map[string][]string{}  // role -> permissions
	members := map[string][]string{} // role -> users
	parents := map[string][]string{} // role -> parent roles
	memberOf := map[string][]string{}
	rows, err = db.Query(`SELECT ptype, v0, v1, v2 FROM casbin_rule
		WHERE (ptype = 'p' AND v1 = $1) OR (ptype = 'g' AND v2 = $1) ORDER BY id`, dom)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var ptype, v0, v1, v2 string
		if err := rows.Scan(&ptype, &v0, &v1, &v2); err != nil {
			rows.Close()
			return "", err
		}
		switch {
		case ptype == "p" && strings.HasPrefix(v0, "role:"):
			grants[v0[5:]] = append(grants[v0[5:]], v2)
		case ptype == "g" && strings.HasPrefix(v1, "role:") && strings.HasPrefix(v0, "role:"):
			parents[v0[5:]] = append(parents[v0[5:]], v1[5:])
		case ptype == "g" && strings.HasPrefix(v1, "role:"):
			members[v1[5:]] = append(members[v1[5:]], v0)
			memberOf[v0] = append(memberOf[v0], v1[5:])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	// reach returns the roles given and every role they inherit from.
	reach := func(start []string) []string {
		seen := map[string]bool{}
		var out []string
		level := start
		for len(level) > 0 {
			var next []string
			for _, r := range level {
				if !seen[r] {
					seen[r] = true
					out = append(out, r)
					next = append(next, parents[r]...)
				}
			}
			level = next
		}
		return out
	}
	sorted := func(l []string) string {
		l = slices.Clone(l)
		sort.Strings(l)
		return strings.Join(l, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "roles: [%s]\n", strings.Join(roles, " "))
	for _, r := range u.roles {
		var perms []string
		if slices.Contains(roles, r) {
			for _, a := range reach([]string{r}) {
				perms = append(perms, grants[a]...)
			}
		}
		fmt.Fprintf(&b, "%s: permissions [%s] members [%s] parents [%s]\n", r, sorted(perms), sorted(members[r]), sorted(parents[r]))
	}
	for _, user := range u.users {
		held := map[string]bool{}
		for _, r := range reach(memberOf[user]) {
			for _, p := range grants[r] {
				held[p] = true
			}
		}
		var allowed []string
		for _, p := range u.perms {
			if held[p] {
				allowed = append(allowed, p)
			}
		}
		fmt.Fprintf(&b, "%s can [%s]\n", user, strings.Join(allowed, " "))
	}
	return b.String(), nil
}

// clientKeyHash is the key hash a tenant is stored under.
func clientKeyHash(key string) (string, error) {
	kh, err := policy.ParseClientKey(key)
	return string(kh), err
}

// converged polls until every server's view of the tenant equals the
// database's, and returns how long that took.
func (rs *replicaSet) converged(t testing.TB, db *sql.DB, within time.Duration, key string, u universe) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, within, "replicas equal to the database", func() (string, error) {
		want, err := dbView(db, key, u)
		if err != nil {
			return "", err
		}
		var diffs []string
		for _, r := range rs.nodes {
			got, err := r.s.view(key, u)
			if err != nil {
				return "", err
			}
			if got != want {
				diffs = append(diffs, fmt.Sprintf("%s:\n%s", r.name, got))
			}
		}
		if len(diffs) == 0 {
			return "", nil
		}
		return fmt.Sprintf("database:\n%s%s", want, strings.Join(diffs, "")), nil
	})
	return time.Since(start)
}
