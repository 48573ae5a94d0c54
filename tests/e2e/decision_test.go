package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/workflow"
)

// decisionRow is what a stored decision record says, and the fields that
// tell two records apart (seq, time, request id, MAC).
type decisionRow struct {
	Seq        int64
	OccurredAt string
	User       string
	Action     string
	Resource   string
	Success    bool
	Details    string
	IP         string
	UserAgent  string
	RequestID  string
	MAC        string
}

// same reports whether two records say the same thing: every field but
// seq, time, request id and MAC.
func (r decisionRow) same(o decisionRow) bool {
	r.Seq, r.OccurredAt, r.RequestID, r.MAC = o.Seq, o.OccurredAt, o.RequestID, o.MAC
	return r == o
}

// A check made without HTTP, by a Go caller of the policy core, produces
// the same decision record as the same check made through the API: the
// checks and listings of every kind, through the real server and then
// through the core (with the decision layer and the workflow package, as
// the server wires them) on the same database with the same request facts.
func TestDecisionRecordsWithoutHTTP(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "auth.sqlite3")
	env := serverEnv(dbPath)
	s := startServer(t, env)
	key := newKey(t)
	c := s.client(key)
	for _, p := range []string{"/api/role/editor", "/api/permission/editor/read", "/api/membership/alice/editor"} {
		if r := c.post(t, p); r.status != 200 {
			t.Fatalf("POST %s: %s", p, r)
		}
	}
	const agent = "decision-test/1.0"
	kh := policy.KeyHash(keyHash(t, key))
	// Each question, and what its record has always said: action, user,
	// resource (after the user's fingerprint, for a question about a user)
	// and details.
	type question struct {
		path                   string
		action, user, resource string
		details                string
		ask                    func(ctx context.Context, p *decision.Policy, w *workflow.Service) error
	}
	const (
		allowed = `{"allowed":true,"status_code":200}`
		denied  = `{"allowed":false,"status_code":200}`
		listing = `{"status_code":200}`
	)
	check := func(_ bool, err error) error { return err }
	list := func(_ any, err error) error { return err }
	questions := []question{
		{"/api/has_permission/alice/read", "CHECK_PERMISSION", "alice", "read", allowed, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return check(p.HasPermission(ctx, kh, "alice", "read"))
		}},
		{"/api/has_permission/bob/read", "CHECK_PERMISSION", "bob", "read", denied, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return check(p.HasPermission(ctx, kh, "bob", "read"))
		}},
		{"/api/membership/alice/editor", "CHECK_MEMBERSHIP", "alice", "editor", allowed, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return check(p.IsMember(ctx, kh, "alice", "editor"))
		}},
		{"/api/permission/editor/write", "CHECK_PERMISSION", "", "editor:write", denied, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return check(p.RoleHasPermission(ctx, kh, "editor", "write"))
		}},
		{"/api/user_permissions/alice", "USER_PERMISSIONS", "alice", "", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.UserPermissions(ctx, kh, "alice"))
		}},
		{"/api/role_permissions/editor", "LIST_PERMISSIONS", "", "editor", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.RolePermissions(ctx, kh, "editor"))
		}},
		{"/api/user_roles/alice", "LIST_MEMBERSHIPS", "alice", "", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.UserRoles(ctx, kh, "alice"))
		}},
		{"/api/members/editor", "LIST_MEMBERSHIPS", "", "editor", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.Members(ctx, kh, "editor"))
		}},
		{"/api/roles", "LIST_ROLES", "", "all", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.ListRoles(ctx, kh))
		}},
		{"/api/which_roles_can/read", "LIST_ROLES", "", "read", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.WhichRolesCan(ctx, kh, "read"))
		}},
		{"/api/which_users_can/read", "LIST_MEMBERSHIPS", "", "read", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.WhichUsersCan(ctx, kh, "read"))
		}},
		{"/api/role/editor/parents", "LIST_ROLES", "", "parents:editor", listing, func(ctx context.Context, p *decision.Policy, _ *workflow.Service) error {
			return list(p.RoleParents(ctx, kh, "editor"))
		}},
		{"/api/workflow/user/alice/can_run/read", "CHECK_PERMISSION", "alice", "workflow:read", allowed, func(ctx context.Context, _ *decision.Policy, w *workflow.Service) error {
			return check(w.CanRun(ctx, kh, "alice", "read"))
		}},
		{"/api/workflow/users/read", "LIST_MEMBERSHIPS", "", "workflow:read", listing, func(ctx context.Context, _ *decision.Policy, w *workflow.Service) error {
			return list(w.UsersFor(ctx, kh, "read"))
		}},
	}
	for i, q := range questions {
		if r := c.call(t, "GET", q.path, fmt.Sprintf("X-Request-ID: api-%d", i), "User-Agent: "+agent); r.status != 200 {
			t.Fatalf("GET %s: %s", q.path, r)
		}
	}
	s.stop(t) // flushes the decision queue

	// The same questions from Go, on the same database, with the same
	// request facts, through a core wired as the server wires it.
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Options{Dialect: sqldb.SQLite, Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var trail *audit.Trail
	queue := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error { return trail.WriteBatch(ctx, recs) },
		audit.QueueOptions{Logger: quiet})
	trail = audit.NewTrail(auditKeys, auditdb.New(db, auditKeys), queue, audit.TrailOptions{
		AfterCommit: sqldb.AfterCommit, Logger: quiet,
	})
	done := make(chan struct{})
	go func() { defer close(done); queue.Run(ctx) }()
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{Recorder: trail, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	log := decision.NewLog(trail)
	core, flows := decision.New(svc, log), workflow.New(svc, log)
	for i, q := range questions {
		rctx := audit.WithRequest(ctx, audit.Request{ID: fmt.Sprintf("core-%d", i), IP: "127.0.0.1", UserAgent: agent})
		if err := q.ask(rctx, core, flows); err != nil {
			t.Fatalf("%s from Go: %v", q.path, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := queue.Close(cctx); err != nil {
		t.Fatalf("flush the decision queue: %v", err)
	}
	<-done

	byID := map[string][]decisionRow{}
	for _, r := range decisionRows(t, dbPath, tenantFP(t, key)) {
		byID[r.RequestID] = append(byID[r.RequestID], r)
	}
	for i, q := range questions {
		viaAPI, viaCore := byID[fmt.Sprintf("api-%d", i)], byID[fmt.Sprintf("core-%d", i)]
		if len(viaAPI) != 1 || len(viaCore) != 1 {
			t.Errorf("%s: %d records through the API, %d from Go; want one each", q.path, len(viaAPI), len(viaCore))
			continue
		}
		want := decisionRow{Action: q.action, Resource: q.resource, Success: true, Details: q.details,
			IP: "127.0.0.1", UserAgent: agent}
		if q.user != "" {
			want.User = userFP(t, key, q.user)
			want.Resource = want.User
			if q.resource != "" {
				want.Resource += ":" + q.resource
			}
		}
		if !viaAPI[0].same(want) {
			t.Errorf("%s: the API's record\n%+v, want\n%+v", q.path, viaAPI[0], want)
		}
		if !viaAPI[0].same(viaCore[0]) {
			t.Errorf("%s: the record from Go differs from the API's:\nAPI %+v\nGo  %+v", q.path, viaAPI[0], viaCore[0])
		}
	}
	mustVerify(t, env) // the records from Go extend the same chain
}

// decisionRows reads a tenant's stored records in chain order.
func decisionRows(t *testing.T, path, tenant string) []decisionRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac
		FROM audit_log WHERE tenant_fp = $1 ORDER BY seq`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []decisionRow
	for rows.Next() {
		var r decisionRow
		if err := rows.Scan(&r.Seq, &r.OccurredAt, &r.User, &r.Action, &r.Resource, &r.Success, &r.Details,
			&r.IP, &r.UserAgent, &r.RequestID, &r.MAC); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
