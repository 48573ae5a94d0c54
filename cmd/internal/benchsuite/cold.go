package benchsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// coldShape is the large tenant: 1 000 000 memberships of 500 000 users in
// 1 000 roles, and 20 grants per role.
var coldShape = dataset.Shape{Users: 500_000, Roles: 1000, Permissions: 2000, Grants: 20_000, Memberships: 1_000_000}

// coldEnv are the settings of a cold server beyond the common ones: none,
// the tenant fits the default memory budget and loads within the default
// database deadline.
var coldEnv []string

// runCold times the first check of the large tenant on a fresh server.
func (s *suite) runCold(ctx context.Context) error {
	shape := coldShape
	if s.cfg.Quick {
		shape = dataset.Shape{Users: 50_000, Roles: 100, Permissions: 200, Grants: 2000, Memberships: 100_000}
	}
	s.log.Info("generating the cold tenant", "memberships", shape.Memberships)
	tenant, err := dataset.Generate(shape, 9)
	if err != nil {
		return err
	}
	dbs := []string{benchreport.SQLite}
	if s.pg {
		dbs = append(dbs, benchreport.Postgres)
	}
	for _, kind := range dbs {
		c, err := s.cold(ctx, kind, tenant)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		s.rep.Cold = append(s.rep.Cold, c)
	}
	return nil
}

// cold writes the tenant into a fresh database, starts a server on it and
// times its first two checks; on SQLite it also measures the live heap of
// loading the tenant in this process.
func (s *suite) cold(ctx context.Context, kind string, tenant *dataset.Tenant) (c benchreport.Cold, err error) {
	grants, members := tenant.Rules()
	c = benchreport.Cold{Database: kind, Users: tenant.Shape.Users, Roles: tenant.Shape.Roles,
		Memberships: members, Grants: grants, Env: coldEnv}
	name := "cold-" + strings.ToLower(kind)
	d, err := s.newDatabase(ctx, kind, name, tenant)
	if err != nil {
		return c, err
	}
	defer func() {
		if cerr := d.cleanup(); err == nil {
			err = cerr
		}
	}()
	c.Seed = d.seed
	s.log.Info("cold tenant written", "db", kind, "in", d.seed)
	started := time.Now()
	srv, err := s.startServer(ctx, name, d, "all", coldEnv...)
	if err != nil {
		return c, err
	}
	c.Start = time.Since(started)
	stopped := false
	defer func() {
		if !stopped {
			srv.kill()
		}
	}()
	client := &http.Client{Timeout: 10 * time.Minute}
	// One request first opens the keep-alive connection.
	if _, err := get(ctx, client, srv.base+"/ping", ""); err != nil {
		return c, err
	}
	before, err := srv.rss()
	if err != nil {
		return c, err
	}
	// user-0 holds the permissions of its roles: the answer must be true.
	perm := dataset.Permission(int(tenant.RolePerms[tenant.UserRoles[0][0]][0]))
	path := "/api/has_permission/" + dataset.User(0) + "/" + perm
	for i, dst := range []*time.Duration{&c.FirstCheck, &c.SecondCheck} {
		t0 := time.Now()
		body, err := get(ctx, client, srv.base+path, tenant.Key)
		*dst = time.Since(t0)
		if err != nil {
			return c, fmt.Errorf("check %d: %w", i+1, err)
		}
		var v checkData
		if err := json.Unmarshal(body, &v); err != nil || v.Data.HasPermission == nil || !*v.Data.HasPermission {
			return c, fmt.Errorf("check %d: answer %.200q, want has_permission true", i+1, body)
		}
	}
	after, err := srv.rss()
	if err != nil {
		return c, err
	}
	c.RSSBytes = after - before
	s.log.Info("cold check", "db", kind, "first", c.FirstCheck, "second", c.SecondCheck, "rss growth", c.RSSBytes)
	stopped = true
	if err := srv.stop(); err != nil {
		return c, err
	}
	if kind == benchreport.SQLite {
		if c.HeapBytes, err = s.heapOfLoad(ctx, filepath.Join(s.tmp, name+".sqlite3"), tenant); err != nil {
			return c, err
		}
		s.log.Info("cold heap", "bytes", c.HeapBytes, "per membership", c.HeapBytes/int64(max(members, 1)))
	}
	return c, nil
}

// get sends GET url (with the client key, if any) and returns the body of
// a 200 answer.
func get(ctx context.Context, client *http.Client, url, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: status %d: %.300s", url, resp.StatusCode, body)
	}
	return body, nil
}

// heapOfLoad loads the tenant from the SQLite file with the policy package,
// as the server does, and returns the growth of the live heap.
func (s *suite) heapOfLoad(ctx context.Context, path string, tenant *dataset.Tenant) (int64, error) {
	db, err := sqldb.Open(ctx, sqldb.Options{Dialect: sqldb.SQLite, Path: path})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{IdleTimeout: time.Hour})
	if err != nil {
		return 0, err
	}
	key, err := policy.ParseClientKey(tenant.Key)
	if err != nil {
		return 0, err
	}
	before := liveHeap()
	if _, err := svc.HasPermission(ctx, key, dataset.User(0), dataset.Permission(0)); err != nil {
		return 0, err
	}
	grown := liveHeap() - before
	runtime.KeepAlive(svc)
	return grown, nil
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
