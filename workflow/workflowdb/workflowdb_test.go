package workflowdb_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ourway/auth/workflow"
)

func TestPutGetReplace(t *testing.T) {
	desc := "pays people"
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		d := def("payroll")
		d.Description = &desc
		d.WebhookURL = "https://hooks.example.com/auth"
		w, created, err := e.store.PutWorkflow(ctx, h, d, "whsec_one")
		if err != nil || !created {
			t.Fatalf("create: created %v, err %v", created, err)
		}
		if w.ID == 0 || w.TenantID == 0 || w.Tenant != h || w.Revision != 1 || !w.CreatedAt.Equal(w.UpdatedAt) ||
			!reflect.DeepEqual(w.Definition, d) {
			t.Fatalf("created %+v", w)
		}
		got, ok, err := e.store.GetWorkflow(ctx, h, "payroll")
		if err != nil || !ok || !reflect.DeepEqual(got, w) {
			t.Fatalf("get: %+v %v %v, want %+v", got, ok, err, w)
		}

		// A replace: a full new definition, the secret and creation kept.
		d2 := workflow.Definition{Name: "payroll", Permission: "pay", Schedule: "0 2 * * *", Enabled: false,
			Notify: workflow.NotifyAlways, CatchUp: false}
		r, created, err := e.store.PutWorkflow(ctx, h, d2, "whsec_ignored")
		if err != nil || created {
			t.Fatalf("replace: created %v, err %v", created, err)
		}
		if r.ID != w.ID || r.Revision != 2 || !r.CreatedAt.Equal(w.CreatedAt) || r.UpdatedAt.Before(w.UpdatedAt) ||
			!reflect.DeepEqual(r.Definition, d2) {
			t.Fatalf("replaced %+v (was %+v)", r, w)
		}
		if got, _, _ := e.store.GetWorkflow(ctx, h, "payroll"); !reflect.DeepEqual(got, r) {
			t.Fatalf("get after replace: %+v, want %+v", got, r)
		}
		sec, err := e.store.Secrets(ctx, w.ID)
		if err != nil || sec != (workflow.Secrets{Current: "whsec_one"}) {
			t.Fatalf("secrets after replace: %+v %v", sec, err)
		}

		// The permission defaults to the name.
		p := put(t, e.store, h, workflow.Definition{Name: "nightly", Schedule: "1h", Enabled: true}, "s")
		if p.Permission != "nightly" || p.Notify != workflow.NotifyChanges {
			t.Fatalf("defaults: %+v", p)
		}
	})
}

func TestUnknownTenant(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		if _, _, err := e.store.PutWorkflow(ctx, handle(9), def("payroll"), "s"); !errors.Is(err, workflow.ErrNoTenant) {
			t.Fatalf("PutWorkflow: %v, want ErrNoTenant", err)
		}
		checks := []struct {
			name string
			run  func() (bool, error)
		}{
			{"get", func() (bool, error) { _, ok, err := e.store.GetWorkflow(ctx, handle(9), "payroll"); return ok, err }},
			{"delete", func() (bool, error) { return e.store.DeleteWorkflow(ctx, handle(9), "payroll") }},
			{"rotate", func() (bool, error) {
				return e.store.RotateSecret(ctx, handle(9), "payroll", "s2", time.Now().Add(time.Hour))
			}},
			{"list", func() (bool, error) { l, err := e.store.ListWorkflows(ctx, handle(9), "", 0); return len(l) > 0, err }},
			{"runs", func() (bool, error) {
				l, err := e.store.ListRuns(ctx, handle(9), "payroll", 0, 0)
				return len(l) > 0, err
			}},
		}
		for _, c := range checks {
			if found, err := c.run(); found || err != nil {
				t.Errorf("%s for an unknown tenant: %v, %v; want false, nil", c.name, found, err)
			}
		}
	})
}

func TestListAndDelete(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h1, h2 := tenant(t, e.db, 1), tenant(t, e.db, 2)
		// Byte order: '-' < 'B' < 'Z' < '_' < 'a'.
		for _, n := range []string{"a", "_x", "Z9", "B", "-y"} {
			put(t, e.store, h1, def(n), "s")
		}
		put(t, e.store, h2, def("a"), "s") // another tenant's
		names := func(ws []workflow.Stored) []string {
			out := []string{}
			for _, w := range ws {
				out = append(out, w.Name)
			}
			return out
		}
		cases := []struct {
			after string
			limit int
			want  []string
		}{
			{"", 0, []string{"-y", "B", "Z9", "_x", "a"}},
			{"", 2, []string{"-y", "B"}},
			{"B", 2, []string{"Z9", "_x"}},
			{"_x", 10, []string{"a"}},
			{"a", 10, []string{}},
		}
		for _, c := range cases {
			got, err := e.store.ListWorkflows(ctx, h1, c.after, c.limit)
			if err != nil || !reflect.DeepEqual(names(got), c.want) {
				t.Errorf("ListWorkflows(after %q, limit %d) = %v, %v; want %v", c.after, c.limit, names(got), err, c.want)
			}
		}

		deleted, err := e.store.DeleteWorkflow(ctx, h1, "a")
		if err != nil || !deleted {
			t.Fatalf("delete: %v %v", deleted, err)
		}
		if deleted, err := e.store.DeleteWorkflow(ctx, h1, "a"); err != nil || deleted {
			t.Fatalf("delete again: %v %v", deleted, err)
		}
		if _, ok, _ := e.store.GetWorkflow(ctx, h1, "a"); ok {
			t.Fatal("deleted workflow still there")
		}
		if _, ok, _ := e.store.GetWorkflow(ctx, h2, "a"); !ok {
			t.Fatal("the other tenant's workflow went too")
		}
	})
}

func TestRegistryVersion(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		version := func() int64 {
			v, err := e.store.RegistryVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		steps := []struct {
			name    string
			do      func()
			changes bool
		}{
			{"create", func() { put(t, e.store, h, def("payroll"), "s") }, true},
			{"replace", func() { put(t, e.store, h, def("payroll"), "s") }, true},
			{"failed put", func() { _, _, _ = e.store.PutWorkflow(ctx, handle(9), def("x"), "s") }, false},
			{"delete missing", func() { _, _ = e.store.DeleteWorkflow(ctx, h, "nothing") }, false},
			{"delete", func() { _, _ = e.store.DeleteWorkflow(ctx, h, "payroll") }, true},
		}
		for _, s := range steps {
			before := version()
			s.do()
			if after := version(); (after != before) != s.changes {
				t.Errorf("%s: version %d -> %d, want a change: %v", s.name, before, after, s.changes)
			}
		}
	})
}

func TestEnabledWorkflows(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h1, h2 := tenant(t, e.db, 1), tenant(t, e.db, 2)
		a := put(t, e.store, h1, def("a"), "s")
		off := def("off")
		off.Enabled = false
		put(t, e.store, h1, off, "s")
		b := put(t, e.store, h2, def("b"), "s")
		got, err := e.store.EnabledWorkflows(ctx)
		if err != nil || !reflect.DeepEqual(got, []workflow.Stored{a, b}) {
			t.Fatalf("EnabledWorkflows = %+v, %v; want %+v", got, err, []workflow.Stored{a, b})
		}
	})
}

func TestRotateSecret(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "whsec_1")
		until := time.Now().Add(24 * time.Hour)
		if ok, err := e.store.RotateSecret(ctx, h, "payroll", "whsec_2", until); err != nil || !ok {
			t.Fatalf("rotate: %v %v", ok, err)
		}
		sec, err := e.store.Secrets(ctx, w.ID)
		if err != nil || sec.Current != "whsec_2" || sec.Previous != "whsec_1" ||
			!sec.PreviousUntil.Equal(until.UTC().Truncate(time.Microsecond)) {
			t.Fatalf("after a rotation with grace: %+v %v", sec, err)
		}
		if ok, err := e.store.RotateSecret(ctx, h, "payroll", "whsec_3", time.Time{}); err != nil || !ok {
			t.Fatalf("rotate: %v %v", ok, err)
		}
		if sec, err := e.store.Secrets(ctx, w.ID); err != nil || sec != (workflow.Secrets{Current: "whsec_3"}) {
			t.Fatalf("after a rotation without grace: %+v %v", sec, err)
		}
		if ok, err := e.store.RotateSecret(ctx, h, "nothing", "s", until); err != nil || ok {
			t.Fatalf("rotate a missing workflow: %v %v", ok, err)
		}
		if _, err := e.store.Secrets(ctx, w.ID+100); err == nil {
			t.Fatal("Secrets of a missing workflow: no error")
		}
	})
}
