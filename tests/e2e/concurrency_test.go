package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConcurrentWritersSQLite(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runConcurrentWriters(t, sqliteServer)
}

func TestConcurrentWritersPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runConcurrentWriters(t, postgresServer)
}

// runConcurrentWriters: 100 clients write at once to one tenant, on names
// of their own and on shared ones. Every write must succeed (no "database
// is locked") and every change must be visible afterwards, also after a
// restart.
func runConcurrentWriters(t *testing.T, newServer factory) {
	const writers = 100
	s := newServer(t)
	key := newKey(t)

	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	// Each writer also has a tenant of its own: writes of one tenant are
	// serialised in the server, those of different tenants meet in the
	// database.
	own := make([]string, writers)
	for i := range own {
		own[i] = newKey(t)
	}
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start // all at once
			type req struct{ key, path string }
			var reqs []req
			for _, p := range []string{
				"/api/role/shared",
				fmt.Sprintf("/api/role/r%d", i),
				fmt.Sprintf("/api/permission/r%d/p%d", i, i),
				fmt.Sprintf("/api/permission/shared/p%d", i),
				"/api/permission/shared/common",
				fmt.Sprintf("/api/membership/u%d/r%d", i, i),
				fmt.Sprintf("/api/membership/u%d/shared", i),
				fmt.Sprintf("/api/membership/everyone/r%d", i),
			} {
				reqs = append(reqs, req{key, p}, req{own[i], p})
			}
			for _, rq := range reqs {
				r, err := s.send("POST", rq.path, "Authorization: Bearer "+rq.key)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"result":true}` ||
					strings.Contains(strings.ToLower(string(r.body)), "locked") {
					mu.Lock()
					failures = append(failures, r.String())
					mu.Unlock()
				}
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("concurrent write failed: %s", f)
	}

	verify := func(s *server) {
		for i, k := range own {
			c := s.client(k)
			expect(t, c.get(t, "/api/roles"), 200, res(fmt.Sprintf(`[{"description":null,"role":"shared"},{"description":null,"role":"r%d"}]`, i)))
			expect(t, c.get(t, "/api/user_permissions/u"+fmt.Sprint(i)), 200, env(
				fmt.Sprintf(`{"count":3,"permissions":[{"name":"p%d"},{"name":"p%d"},{"name":"common"}]}`, i, i),
				fmt.Sprintf("Retrieved permissions for user 'u%d'", i)))
		}
		c := s.client(key)
		var wantRoles, wantShared, wantMembers, wantEveryone []string
		wantRoles = append(wantRoles, "shared")
		wantShared = append(wantShared, "common")
		for i := 0; i < writers; i++ {
			wantRoles = append(wantRoles, fmt.Sprintf("r%d", i))
			wantShared = append(wantShared, fmt.Sprintf("p%d", i))
			wantMembers = append(wantMembers, fmt.Sprintf("u%d", i))
			wantEveryone = append(wantEveryone, fmt.Sprintf("r%d", i))
		}
		sameSet(t, "roles", resultField(t, c.get(t, "/api/roles"), "role"), wantRoles)
		sameSet(t, "permissions of shared", rolePermissionNames(t, c.get(t, "/api/role_permissions/shared")), wantShared)
		sameSet(t, "members of shared", resultField(t, c.get(t, "/api/members/shared"), "user"), wantMembers)
		sameSet(t, "roles of everyone", resultField(t, c.get(t, "/api/user_roles/everyone"), "role"), wantEveryone)
		sameSet(t, "users who can run common", resultField(t, c.get(t, "/api/which_users_can/common"), "user"), wantMembers)
		names, n := permissionNames(t, c.get(t, "/api/user_permissions/everyone"))
		if n != writers || len(names) != writers {
			t.Errorf("user_permissions everyone: count %d with %d names, want %d", n, len(names), writers)
		}
		for i := 0; i < writers; i++ {
			r := c.get(t, fmt.Sprintf("/api/members/r%d", i))
			want := fmt.Sprintf(`[{"role":"r%d","user":"u%d"},{"role":"r%d","user":"everyone"}]`, i, i, i)
			if got := normalized(t, r); got != res(want) {
				// Either order of the two joins is right.
				alt := res(fmt.Sprintf(`[{"role":"r%d","user":"everyone"},{"role":"r%d","user":"u%d"}]`, i, i, i))
				if got != alt {
					t.Errorf("members of r%d = %s, want u%d and everyone", i, got, i)
				}
			}
			if i%10 == 0 {
				names, n := permissionNames(t, c.get(t, fmt.Sprintf("/api/user_permissions/u%d", i)))
				if n != writers+2 {
					t.Errorf("user_permissions u%d: count %d, want %d (p%d through r%d, and %d through shared)", i, n, writers+2, i, i, writers+1)
				}
				containsAll(t, fmt.Sprintf("user_permissions u%d", i), names, fmt.Sprintf("p%d", i), "common")
			}
			if !hasPermission(t, c.get(t, fmt.Sprintf("/api/has_permission/u%d/p%d", i, (i+1)%writers))) {
				t.Errorf("u%d lacks p%d through shared", i, (i+1)%writers)
			}
		}
	}
	verify(s)
	s2 := s.restart(t)
	verify(s2)
	for _, srv := range []*server{s, s2} {
		if log := strings.ToLower(srv.stderr.String()); strings.Contains(log, "database is locked") || strings.Contains(log, "sqlite_busy") {
			t.Errorf("server log reports a locked database:\n%s", srv.stderr.String())
		}
	}
}

// TestShutdownKeepsAcknowledgedWrites stops the server with SIGTERM while
// clients are writing: requests in flight are drained (no 5xx), the exit is
// clean, and every write that was answered 200 is there after a restart.
func TestShutdownKeepsAcknowledgedWrites(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	s := sqliteServer(t)
	key := newKey(t)
	const clients = 20
	var (
		mu    sync.Mutex
		acked []string
		bad   []string
		wg    sync.WaitGroup
	)
	progress := make(chan struct{}, 1)
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; ; n++ {
				role := fmt.Sprintf("g%d-%d", g, n)
				r, err := s.send("POST", "/api/role/"+role, "Authorization: Bearer "+key)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				if r.status == 200 && strings.TrimSpace(string(r.body)) == `{"result":true}` {
					acked = append(acked, role)
				} else {
					bad = append(bad, r.String())
				}
				mu.Unlock()
				select {
				case progress <- struct{}{}:
				default:
				}
				if r.status != 200 {
					return
				}
			}
		}(g)
	}
	deadline := time.After(30 * time.Second)
	for enough := false; !enough; {
		select {
		case <-progress:
			mu.Lock()
			enough = len(acked) >= 200
			mu.Unlock()
		case <-deadline:
			t.Fatalf("fewer than 200 writes acknowledged within 30s")
		}
	}
	s.stop(t) // SIGTERM while the clients keep writing; checks exit status 0
	wg.Wait()
	for _, b := range bad {
		t.Errorf("during shutdown: %s", b)
	}
	s2 := startServer(t, s.env)
	got := resultField(t, s2.client(key).get(t, "/api/roles"), "role")
	have := map[string]bool{}
	for _, r := range got {
		have[r] = true
	}
	lost := 0
	for _, r := range acked {
		if !have[r] {
			lost++
			if lost <= 10 {
				t.Errorf("role %s was acknowledged before the shutdown but is gone after the restart", r)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(acked))
	}
	if len(got) < len(acked) {
		t.Errorf("%d roles after restart, fewer than the %d acknowledged", len(got), len(acked))
	}
}
