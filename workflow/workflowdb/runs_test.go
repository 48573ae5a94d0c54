package workflowdb_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/workflow"
	"github.com/ourway/auth/workflow/workflowdb"
)

func TestClaimRun(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "s")
		r, ok := claim(t, e.store, w.ID, t0, workflow.TriggerSchedule, "p1")
		if !ok {
			t.Fatal("first claim lost")
		}
		want := workflow.RunRecord{ID: r.ID, WorkflowID: w.ID, TenantID: w.TenantID, Scheduled: t0,
			Trigger: workflow.TriggerSchedule, Attempt: 1, Outcome: workflow.OutcomeRunning, Owner: "p1",
			LeaseUntil: t0.Add(30 * time.Second), Started: t0, Users: []string{}, Added: []string{},
			Removed: []string{}, WorkflowRev: 1}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("claimed %+v\nwant    %+v", r, want)
		}
		if got, ok, err := e.store.GetRun(ctx, r.ID); err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetRun = %+v, %v, %v", got, ok, err)
		}
		// The same slot, however spelled, is taken.
		slots := []struct {
			name string
			at   time.Time
		}{
			{"same", t0},
			{"nanoseconds below the microsecond", t0.Add(789 * time.Nanosecond)},
			{"another zone", t0.In(time.FixedZone("X", 5*3600))},
		}
		for _, s := range slots {
			if _, ok := claim(t, e.store, w.ID, s.at, workflow.TriggerManual, "p2"); ok {
				t.Errorf("second claim of the slot (%s) won", s.name)
			}
		}
		if _, ok := claim(t, e.store, w.ID, t0.Add(time.Microsecond), workflow.TriggerSchedule, "p2"); !ok {
			t.Error("the next microsecond's slot was taken")
		}
		if _, ok := claim(t, e.store, w.ID+100, t0, workflow.TriggerSchedule, "p2"); ok {
			t.Error("claimed a slot of a missing workflow")
		}
	})
}

func TestClaimRunConcurrently(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := workflowdb.New(db)
		h := tenant(t, db, 1)
		w := put(t, s, h, def("payroll"), "s")
		const n = 8
		for slot := range 3 {
			at := t0.Add(time.Duration(slot) * time.Minute)
			var wg sync.WaitGroup
			wins := make(chan string, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					owner := fmt.Sprint("p", i)
					_, ok, err := s.ClaimRun(context.Background(), workflow.Claim{WorkflowID: w.ID, Scheduled: at,
						Trigger: workflow.TriggerSchedule, Owner: owner, LeaseUntil: at.Add(time.Minute), Started: at})
					if err != nil {
						t.Errorf("claim: %v", err)
					}
					if ok {
						wins <- owner
					}
				}()
			}
			close(start)
			wg.Wait()
			close(wins)
			var winners []string
			for o := range wins {
				winners = append(winners, o)
			}
			if len(winners) != 1 {
				t.Fatalf("slot %d: winners %v, want exactly one", slot, winners)
			}
		}
	})
}

func TestRenewAndFinish(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "s")
		r, _ := claim(t, e.store, w.ID, t0, workflow.TriggerSchedule, "p1")
		get := func() workflow.RunRecord {
			got, ok, err := e.store.GetRun(ctx, r.ID)
			if err != nil || !ok {
				t.Fatalf("GetRun: %v %v", ok, err)
			}
			return got
		}

		if err := e.store.RenewRun(ctx, r.ID, "p2", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := get(); !got.LeaseUntil.Equal(r.LeaseUntil) {
			t.Fatalf("another owner renewed the lease: %v", got.LeaseUntil)
		}
		if err := e.store.RenewRun(ctx, r.ID, "p1", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := get(); !got.LeaseUntil.Equal(t0.Add(time.Hour)) {
			t.Fatalf("renewed lease: %v", got.LeaseUntil)
		}

		done := r
		done.Owner = "p2"
		done.Outcome = workflow.OutcomeOK
		done.Users = []string{"alice", "bob"}
		if err := e.store.FinishRun(ctx, done); err != nil {
			t.Fatal(err)
		}
		if got := get(); got.Outcome != workflow.OutcomeRunning || len(got.Users) != 0 {
			t.Fatalf("another owner finished the run: %+v", got)
		}
		done.Owner = "p1"
		done.Added, done.Removed = []string{"bob"}, []string{"carol"}
		done.Error = ""
		done.Webhook = &workflow.WebhookResult{Outcome: workflow.WebhookDelivered, Attempts: 2, Status: 200, Error: "first: 503"}
		done.Finished, done.DurationMS = t0.Add(1500*time.Millisecond), 1500
		if err := e.store.FinishRun(ctx, done); err != nil {
			t.Fatal(err)
		}
		want := done
		want.Owner = ""
		want.LeaseUntil = t0.Add(time.Hour)
		if got := get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("finished %+v\nwant     %+v", got, want)
		}
		// A finished run is no longer its owner's to renew.
		if err := e.store.RenewRun(ctx, r.ID, "p1", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := get(); !got.LeaseUntil.Equal(t0.Add(time.Hour)) {
			t.Fatalf("a finished run's lease was renewed: %v", got.LeaseUntil)
		}

		// A run without a webhook has none; a failed run keeps its error.
		f, _ := claim(t, e.store, w.ID, t0.Add(time.Minute), workflow.TriggerSchedule, "p1")
		f.Outcome, f.Error, f.Finished = workflow.OutcomeFailed, "policy unavailable", f.Started
		if err := e.store.FinishRun(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, _, _ := e.store.GetRun(ctx, f.ID)
		if got.Outcome != workflow.OutcomeFailed || got.Error != "policy unavailable" || got.Webhook != nil {
			t.Fatalf("failed run: %+v", got)
		}
	})
}

func TestExpireAndReclaim(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "s")
		off := def("off")
		off.Enabled = false
		wOff := put(t, e.store, h, off, "s")
		r1, _ := claim(t, e.store, w.ID, t0, workflow.TriggerSchedule, "p1")                   // lease t0+30s
		r2, _ := claim(t, e.store, w.ID, t0.Add(10*time.Second), workflow.TriggerManual, "p1") // lease t0+40s
		rOff, _ := claim(t, e.store, wOff.ID, t0.Add(-time.Minute), workflow.TriggerSchedule, "p1")

		if n, err := e.store.ExpireRuns(ctx, t0.Add(-31*time.Second)); err != nil || n != 0 {
			t.Fatalf("ExpireRuns before any lease ended: %d %v", n, err)
		}
		if _, ok, err := e.store.ReclaimRun(ctx, "p2", t0, t0.Add(time.Minute)); err != nil || ok {
			t.Fatalf("ReclaimRun with nothing interrupted: %v %v", ok, err)
		}
		if n, err := e.store.ExpireRuns(ctx, t0.Add(35*time.Second)); err != nil || n != 2 {
			t.Fatalf("ExpireRuns: %d %v, want 2 (r1 and the disabled one)", n, err)
		}
		if got, _, _ := e.store.GetRun(ctx, r1.ID); got.Outcome != workflow.OutcomeInterrupted || got.Owner != "" {
			t.Fatalf("expired run: %+v", got)
		}
		if got, _, _ := e.store.GetRun(ctx, r2.ID); got.Outcome != workflow.OutcomeRunning {
			t.Fatalf("a run still leased expired: %+v", got)
		}
		// The interrupted run's owner can no longer finish it.
		late := r1
		late.Outcome = workflow.OutcomeOK
		if err := e.store.FinishRun(ctx, late); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := e.store.GetRun(ctx, r1.ID); got.Outcome != workflow.OutcomeInterrupted {
			t.Fatalf("the interrupted run was finished by its old owner: %+v", got)
		}

		at := t0.Add(time.Minute)
		got, ok, err := e.store.ReclaimRun(ctx, "p2", at, at.Add(30*time.Second))
		if err != nil || !ok {
			t.Fatalf("ReclaimRun: %v %v", ok, err)
		}
		if got.ID != r1.ID || got.Attempt != 2 || got.Outcome != workflow.OutcomeRunning || got.Owner != "p2" ||
			!got.Started.Equal(at) || !got.LeaseUntil.Equal(at.Add(30*time.Second)) || !got.Scheduled.Equal(t0) ||
			got.Trigger != workflow.TriggerSchedule {
			t.Fatalf("reclaimed %+v", got)
		}
		// The disabled workflow's run stays interrupted.
		if _, ok, err := e.store.ReclaimRun(ctx, "p3", at, at.Add(30*time.Second)); err != nil || ok {
			t.Fatalf("ReclaimRun again: %v %v", ok, err)
		}
		if got, _, _ := e.store.GetRun(ctx, rOff.ID); got.Outcome != workflow.OutcomeInterrupted {
			t.Fatalf("the disabled workflow's run: %+v", got)
		}
	})
}

func TestReclaimRunConcurrently(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := workflowdb.New(db)
		h := tenant(t, db, 1)
		w := put(t, s, h, def("payroll"), "s")
		const runs, takers = 5, 4
		for i := range runs {
			claim(t, s, w.ID, t0.Add(time.Duration(i)*time.Minute), workflow.TriggerSchedule, "dead")
		}
		if n, err := s.ExpireRuns(ctx, t0.Add(time.Hour)); err != nil || n != runs {
			t.Fatalf("ExpireRuns: %d %v", n, err)
		}
		var (
			mu   sync.Mutex
			took = map[int64]string{}
			wg   sync.WaitGroup
		)
		for i := range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprint("p", i)
				for {
					r, ok, err := s.ReclaimRun(ctx, owner, t0.Add(time.Hour), t0.Add(2*time.Hour))
					if err != nil {
						t.Errorf("ReclaimRun: %v", err)
						return
					}
					if !ok {
						return
					}
					mu.Lock()
					if prev, dup := took[r.ID]; dup {
						t.Errorf("run %d taken by %s and %s", r.ID, prev, owner)
					}
					took[r.ID] = owner
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(took) != runs {
			t.Fatalf("took %v, want all %d runs once", took, runs)
		}
	})
}

func TestPreviousUsersAndLastScheduled(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "s")
		other := put(t, e.store, h, def("other"), "s")
		if _, ok, err := e.store.LastScheduled(ctx, w.ID); err != nil || ok {
			t.Fatalf("LastScheduled without runs: %v %v", ok, err)
		}
		slot := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
		r1, _ := claim(t, e.store, w.ID, slot(1), workflow.TriggerSchedule, "p")
		finish(t, e.store, r1, workflow.OutcomeOK, "alice")
		r2, _ := claim(t, e.store, w.ID, slot(2), workflow.TriggerCatchUp, "p")
		finish(t, e.store, r2, workflow.OutcomeFailed)
		r3, _ := claim(t, e.store, w.ID, slot(3), workflow.TriggerManual, "p")
		finish(t, e.store, r3, workflow.OutcomeOK, "alice", "bob")
		claim(t, e.store, w.ID, slot(4), workflow.TriggerManual, "p") // running
		o, _ := claim(t, e.store, other.ID, slot(5), workflow.TriggerSchedule, "p")
		finish(t, e.store, o, workflow.OutcomeOK, "zed")

		cases := []struct {
			before time.Time
			want   []string
			found  bool
		}{
			{slot(1), nil, false},
			{slot(2), []string{"alice"}, true},
			{slot(3), []string{"alice"}, true}, // the failed run is passed over
			{slot(4), []string{"alice", "bob"}, true},
			{slot(9), []string{"alice", "bob"}, true},
		}
		for _, c := range cases {
			got, found, err := e.store.PreviousUsers(ctx, w.ID, c.before)
			if err != nil || found != c.found || (found && !reflect.DeepEqual(got, c.want)) {
				t.Errorf("PreviousUsers(before %v) = %v, %v, %v; want %v, %v", c.before, got, found, err, c.want, c.found)
			}
		}
		// Manual runs are not slots of the schedule.
		if last, ok, err := e.store.LastScheduled(ctx, w.ID); err != nil || !ok || !last.Equal(slot(2)) {
			t.Fatalf("LastScheduled = %v, %v, %v; want %v", last, ok, err, slot(2))
		}
	})
}

func TestListRunsAndCascade(t *testing.T) {
	eachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		h := tenant(t, e.db, 1)
		w := put(t, e.store, h, def("payroll"), "s")
		other := put(t, e.store, h, def("other"), "s")
		var ids []int64
		for i := range 5 {
			r, _ := claim(t, e.store, w.ID, t0.Add(time.Duration(i)*time.Minute), workflow.TriggerSchedule, "p")
			ids = append(ids, r.ID)
			o, _ := claim(t, e.store, other.ID, t0.Add(time.Duration(i)*time.Minute), workflow.TriggerSchedule, "p")
			_ = o
		}
		runIDs := func(rs []workflow.RunRecord) []int64 {
			out := []int64{}
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		cases := []struct {
			before int64
			limit  int
			want   []int64
		}{
			{0, 0, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
			{0, 2, []int64{ids[4], ids[3]}},
			{ids[3], 2, []int64{ids[2], ids[1]}},
			{ids[1], 2, []int64{ids[0]}},
			{ids[0], 2, []int64{}},
		}
		for _, c := range cases {
			got, err := e.store.ListRuns(ctx, h, "payroll", c.before, c.limit)
			if err != nil || !reflect.DeepEqual(runIDs(got), c.want) {
				t.Errorf("ListRuns(before %d, limit %d) = %v, %v; want %v", c.before, c.limit, runIDs(got), err, c.want)
			}
		}
		if got, err := e.store.ListRuns(ctx, h, "nothing", 0, 10); err != nil || len(got) != 0 {
			t.Fatalf("ListRuns of a missing workflow: %v %v", got, err)
		}

		if ok, err := e.store.DeleteWorkflow(ctx, h, "payroll"); err != nil || !ok {
			t.Fatalf("delete: %v %v", ok, err)
		}
		var left int64
		if err := e.db.Gorm().Table("workflow_runs").Where("workflow_id = ?", w.ID).Count(&left).Error; err != nil || left != 0 {
			t.Fatalf("runs left after the delete: %d %v", left, err)
		}
		if _, ok, _ := e.store.GetRun(ctx, ids[0]); ok {
			t.Fatal("GetRun found a run of a deleted workflow")
		}
		if got, _ := e.store.ListRuns(ctx, h, "other", 0, 0); len(got) != 5 {
			t.Fatalf("the other workflow's runs: %d, want 5", len(got))
		}
	})
}
