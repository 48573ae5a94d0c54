package workflowdb_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
	"github.com/ourway/auth/workflow"
	"github.com/ourway/auth/workflow/workflowdb"
)

// secretWords are the clear values seed stores; none may be in the tables
// when encryption is on.
var secretWords = []string{"payroll", "run_payroll", "whsec_", "pays-people", "hooks.example", "alice", "bob"}

// state is everything the store returns about a tenant's workflows.
type state struct {
	Workflows []workflow.Stored
	Secrets   []workflow.Secrets
	Runs      [][]workflow.RunRecord
	Previous  []string
}

// seed registers a workflow with every encrypted field set and two runs.
func seed(t *testing.T, s *workflowdb.Store, h policy.KeyHash) {
	t.Helper()
	ctx := context.Background()
	desc := "pays-people"
	d := def("payroll")
	d.Description, d.WebhookURL = &desc, "https://hooks.example.com/auth"
	w := put(t, s, h, d, "whsec_first")
	if ok, err := s.RotateSecret(ctx, h, "payroll", "whsec_second", time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("rotate: %v %v", ok, err)
	}
	r1, _ := claim(t, s, w.ID, t0, workflow.TriggerSchedule, "p")
	finish(t, s, r1, workflow.OutcomeOK, "alice")
	r2, _ := claim(t, s, w.ID, t0.Add(time.Minute), workflow.TriggerSchedule, "p")
	finish(t, s, r2, workflow.OutcomeOK, "alice", "bob")
}

// read returns the state of tenant h's workflows as s reads it.
func read(t *testing.T, s *workflowdb.Store, h policy.KeyHash) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	if st.Workflows, err = s.ListWorkflows(ctx, h, "", 0); err != nil {
		t.Fatalf("ListWorkflows: %v", err)
	}
	for _, w := range st.Workflows {
		got, ok, err := s.GetWorkflow(ctx, h, w.Name)
		if err != nil || !ok || !reflect.DeepEqual(got, w) {
			t.Fatalf("GetWorkflow(%s) = %+v, %v, %v", w.Name, got, ok, err)
		}
		sec, err := s.Secrets(ctx, w.ID)
		if err != nil {
			t.Fatalf("Secrets: %v", err)
		}
		st.Secrets = append(st.Secrets, sec)
		runs, err := s.ListRuns(ctx, h, w.Name, 0, 0)
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		st.Runs = append(st.Runs, runs)
		prev, _, err := s.PreviousUsers(ctx, w.ID, t0.Add(time.Hour))
		if err != nil {
			t.Fatalf("PreviousUsers: %v", err)
		}
		st.Previous = append(st.Previous, prev...)
	}
	return st
}

// storedValues returns the encrypted columns' values of both tables.
func storedValues(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	var out []string
	cols := map[string][]string{
		"workflows":     {"name", "permission", "description", "webhook_url", "secret", "previous_secret"},
		"workflow_runs": {"users", "added", "removed"},
	}
	for table, cs := range cols {
		for _, c := range cs {
			var vs []sql.NullString
			if err := db.Gorm().Table(table).Pluck(c, &vs).Error; err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				if v.Valid {
					out = append(out, v.String)
				}
			}
		}
	}
	return out
}

// allUnder fails unless every stored value is a ciphertext under key.
func allUnder(t *testing.T, db *sqldb.DB, key string) {
	t.Helper()
	id := keyring(t, key).CurrentID()
	for _, v := range storedValues(t, db) {
		if fieldcrypt.KeyID(v) != id {
			t.Errorf("stored value %q is not under key %s", v, id)
		}
	}
}

func TestEncryptedAtRest(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := workflowdb.New(db).WithEncryption(keyring(t, keyA))
		h := tenant(t, db, 1)
		seed(t, s, h)
		for _, table := range []string{"workflows", "workflow_runs"} {
			raw := rawText(t, db, table)
			for _, w := range secretWords {
				if strings.Contains(raw, w) {
					t.Errorf("table %s holds %q in clear:\n%s", table, w, raw)
				}
			}
		}
		allUnder(t, db, keyA)
		st := read(t, s, h)
		if len(st.Workflows) != 1 || st.Workflows[0].Name != "payroll" || st.Workflows[0].Permission != "run_payroll" ||
			*st.Workflows[0].Description != "pays-people" || st.Workflows[0].WebhookURL != "https://hooks.example.com/auth" {
			t.Fatalf("workflows: %+v", st.Workflows)
		}
		if sec := st.Secrets[0]; sec.Current != "whsec_second" || sec.Previous != "whsec_first" {
			t.Fatalf("secrets: %+v", sec)
		}
		if !reflect.DeepEqual(st.Previous, []string{"alice", "bob"}) || len(st.Runs[0]) != 2 ||
			!reflect.DeepEqual(st.Runs[0][1].Users, []string{"alice"}) {
			t.Fatalf("runs: %+v, previous users %v", st.Runs, st.Previous)
		}
		// Another tenant's key does not open them: names are per tenant.
		h2 := tenant(t, db, 2)
		if _, ok, err := s.GetWorkflow(context.Background(), h2, "payroll"); err != nil || ok {
			t.Fatalf("another tenant found the workflow: %v %v", ok, err)
		}
	})
}

func TestRekey(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		h := tenant(t, db, 1)
		oldStore := workflowdb.New(db).WithEncryption(keyring(t, keyA))
		seed(t, oldStore, h)
		want := read(t, oldStore, h)

		// A server with the new key and the old one reads and writes the
		// rows still under the old key.
		both := workflowdb.New(db).WithEncryption(keyring(t, keyB, keyA))
		if got := read(t, both, h); !reflect.DeepEqual(got, want) {
			t.Fatalf("read under both keys:\n%+v\nwant\n%+v", got, want)
		}
		if _, created, err := both.PutWorkflow(ctx, h, want.Workflows[0].Definition, "x"); err != nil || created {
			t.Fatalf("replace under both keys: created %v, %v", created, err)
		}
		want = read(t, both, h)

		n, err := both.Rekey(ctx, false)
		if err != nil || n != 3 { // the workflow and its two runs
			t.Fatalf("Rekey = %d, %v; want 3", n, err)
		}
		allUnder(t, db, keyB)
		newStore := workflowdb.New(db).WithEncryption(keyring(t, keyB))
		if got := read(t, newStore, h); !reflect.DeepEqual(got, want) {
			t.Fatalf("read under the new key after rekey:\n%+v\nwant\n%+v", got, want)
		}
		if n, err := both.Rekey(ctx, false); err != nil || n != 0 {
			t.Fatalf("second Rekey = %d, %v; want 0", n, err)
		}
	})
}

func TestRekeyMergesDuplicates(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		h := tenant(t, db, 1)
		a := workflowdb.New(db).WithEncryption(keyring(t, keyA))
		old := put(t, a, h, def("payroll"), "s1")
		claim(t, a, old.ID, t0, workflow.TriggerSchedule, "p")
		// A server that knows only the new key writes the same workflow.
		b := workflowdb.New(db).WithEncryption(keyring(t, keyB))
		young := put(t, b, h, def("payroll"), "s2")
		if young.ID == old.ID {
			t.Fatal("the server without the old key found the old row")
		}
		claim(t, b, young.ID, t0, workflow.TriggerSchedule, "p")
		both := workflowdb.New(db).WithEncryption(keyring(t, keyB, keyA))
		if _, err := both.Rekey(ctx, false); err != nil {
			t.Fatal(err)
		}
		got, err := both.ListWorkflows(ctx, h, "", 0)
		if err != nil || len(got) != 1 || got[0].ID != old.ID {
			t.Fatalf("after rekey: %+v, %v; want the oldest row only", got, err)
		}
		var runs int64
		if err := db.Gorm().Table("workflow_runs").Count(&runs).Error; err != nil || runs != 1 {
			t.Fatalf("runs after the merge: %d, %v; want 1", runs, err)
		}
		allUnder(t, db, keyB)
	})
}

func TestRekeyFromClearText(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		h := tenant(t, db, 1)
		clear := workflowdb.New(db)
		seed(t, clear, h)
		want := read(t, clear, h)
		keys := keyring(t, keyA)
		policies := policydb.New(db).WithEncryption(keys)
		if err := policies.CheckEncryption(ctx); !errors.Is(err, policydb.ErrClearDatabase) {
			t.Fatalf("CheckEncryption over clear workflows: %v, want ErrClearDatabase", err)
		}
		enc := workflowdb.New(db).WithEncryption(keys)
		if _, err := enc.Rekey(ctx, false); !errors.Is(err, fieldcrypt.ErrNotEncrypted) {
			t.Fatalf("Rekey of clear values in an encrypted database: %v, want ErrNotEncrypted", err)
		}
		st, err := policies.Rekey(ctx, 10, nil, enc.Rekey)
		if err != nil || st.Other != 3 {
			t.Fatalf("policy Rekey with the workflow pass: %+v, %v; want 3 other rows", st, err)
		}
		if err := policies.CheckEncryption(ctx); err != nil {
			t.Fatalf("CheckEncryption after rekey: %v", err)
		}
		allUnder(t, db, keyA)
		if got := read(t, enc, h); !reflect.DeepEqual(got, want) {
			t.Fatalf("read after encrypting:\n%+v\nwant\n%+v", got, want)
		}
	})
}
