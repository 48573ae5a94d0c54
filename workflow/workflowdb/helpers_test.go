package workflowdb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/workflow"
	"github.com/ourway/auth/workflow/workflowdb"
)

// Master keys of the tests (32+ characters, not placeholders).
const (
	keyA = "k3Jq9vX2mP7wT4zR8nB5cY1hL6dF0gSa"
	keyB = "Zt8Qw2Ex4Rc6Vb1Nm3Kl5Jh7Gf9Ds0Ap"
)

// backends are the databases every test runs on.
var backends = []struct {
	name string
	open func(testing.TB) *sqldb.DB
}{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

// modes are the encryption settings every store test runs with.
var modes = []struct {
	name string
	keys []string // current first; none: clear text
}{
	{"clear", nil},
	{"encrypted", []string{keyA}},
}

// env is one test's database and store.
type env struct {
	db    *sqldb.DB
	store *workflowdb.Store
	keys  *fieldcrypt.Keyring
}

// eachEnv runs fn as a parallel subtest per backend and encryption mode.
func eachEnv(t *testing.T, fn func(t *testing.T, e env)) {
	t.Helper()
	for _, b := range backends {
		for _, m := range modes {
			t.Run(b.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				db := b.open(t)
				e := env{db: db, store: workflowdb.New(db)}
				if m.keys != nil {
					e.keys = keyring(t, m.keys[0], m.keys[1:]...)
					e.store = e.store.WithEncryption(e.keys)
				}
				fn(t, e)
			})
		}
	}
}

// eachBackend runs fn as a parallel subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func openSQLite(t testing.TB) *sqldb.DB { return testenv.SQLite(t) }

func openPostgres(t testing.TB) *sqldb.DB {
	t.Helper()
	if testing.Short() {
		t.Skip("PostgreSQL skipped in -short mode")
	}
	return testenv.Postgres(t)
}

func keyring(t testing.TB, current string, previous ...string) *fieldcrypt.Keyring {
	t.Helper()
	k, err := fieldcrypt.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// handle is the handle of test tenant n.
func handle(n int) policy.KeyHash {
	return policy.KeyHash(fmt.Sprintf("%064x", n))
}

// tenant creates test tenant n and returns its handle.
func tenant(t testing.TB, db *sqldb.DB, n int) policy.KeyHash {
	t.Helper()
	h := handle(n)
	if _, err := policydb.New(db).CreateTenant(context.Background(), h); err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	return h
}

// def is a workflow definition with the defaults of the API.
func def(name string) workflow.Definition {
	return workflow.Definition{Name: name, Permission: "run_" + name, Schedule: "5m", Enabled: true,
		Notify: workflow.NotifyChanges, CatchUp: true}
}

// put registers d for tenant h and fails the test on an error.
func put(t testing.TB, s *workflowdb.Store, h policy.KeyHash, d workflow.Definition, secret string) workflow.Stored {
	t.Helper()
	w, _, err := s.PutWorkflow(context.Background(), h, d, secret)
	if err != nil {
		t.Fatalf("PutWorkflow %s: %v", d.Name, err)
	}
	return w
}

// t0 is the base time of run tests: a slot with a microsecond fraction.
var t0 = time.Date(2026, 12, 6, 2, 5, 0, 123456000, time.UTC)

// claim claims slot at of workflow id for owner, leased for 30s.
func claim(t testing.TB, s *workflowdb.Store, id int64, at time.Time, trig workflow.Trigger, owner string) (workflow.RunRecord, bool) {
	t.Helper()
	r, ok, err := s.ClaimRun(context.Background(), workflow.Claim{WorkflowID: id, Scheduled: at, Trigger: trig,
		Owner: owner, LeaseUntil: at.Add(30 * time.Second), Started: at})
	if err != nil {
		t.Fatalf("ClaimRun: %v", err)
	}
	return r, ok
}

// finish records run r as finished ok with users.
func finish(t testing.TB, s *workflowdb.Store, r workflow.RunRecord, outcome workflow.Outcome, users ...string) {
	t.Helper()
	r.Outcome, r.Users, r.Added, r.Finished = outcome, users, users, r.Started.Add(time.Second)
	if err := s.FinishRun(context.Background(), r); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
}

// rawText returns every text value of table, for checks on what is stored.
func rawText(t testing.TB, db *sqldb.DB, table string) string {
	t.Helper()
	var rows []map[string]any
	if err := db.Gorm().Table(table).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		for k, v := range r {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprintf(&b, "%s=%v\n", k, v)
		}
	}
	return b.String()
}
