package workflow_test

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

// holders is a policy core whose holders of each permission a test sets.
type holders struct {
	mu      sync.Mutex
	members map[string][]policy.Membership // by permission
}

func (h *holders) set(perm string, m ...policy.Membership) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.members == nil {
		h.members = map[string][]policy.Membership{}
	}
	h.members[perm] = m
}

func (h *holders) HasPermission(_ context.Context, _ policy.KeyHash, user, perm string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.members[perm] {
		if m.User == user {
			return true, nil
		}
	}
	return false, nil
}

func (h *holders) WhichUsersCan(_ context.Context, _ policy.KeyHash, perm string) ([]policy.Membership, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.members[perm]), nil
}

// newScheduler returns a scheduler on a fake clock over core, running until
// the test ends, and the function that stops it.
func newScheduler(t *testing.T, core *holders, clock *clockwork.FakeClock, rec *sink) (*workflow.Scheduler, func() error) {
	t.Helper()
	s, err := workflow.NewScheduler(workflow.New(core, decision.NewLog(rec)),
		workflow.SchedulerOptions{Clock: clock, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// An interval job runs on its epoch-anchored slots with the holders of
// the workflow's permission; the question is recorded as one about the
// workflow.
func TestEveryRunsOnItsSlots(t *testing.T) {
	clock := clockwork.NewFakeClockAt(at("2026-12-06T10:00:30Z"))
	core := &holders{}
	core.set("payroll", policy.Membership{User: "bob", Role: "hr"}, policy.Membership{User: "alice", Role: "hr"},
		policy.Membership{User: "alice", Role: "finance"})
	rec := &sink{}
	s, _ := newScheduler(t, core, clock, rec)
	runs := make(chan workflow.Run, 4)
	if err := s.Every(tenant, "payroll", time.Minute, func(_ context.Context, r workflow.Run) error {
		runs <- r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	r := <-runs
	want := workflow.Run{Tenant: tenant, Workflow: "payroll", Permission: "payroll", Trigger: workflow.TriggerSchedule,
		Scheduled: at("2026-12-06T10:01:00Z"), Started: r.Started, ID: r.ID, Attempt: 1,
		Users: []string{"alice", "bob"}, Added: []string{"alice", "bob"}, Removed: []string{}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("run\n%+v, want\n%+v", r, want)
	}
	if len(rec.entries) != 1 || rec.entries[0].Action != audit.ListMemberships || rec.entries[0].Resource != "workflow:payroll" {
		t.Errorf("recorded %+v, want one LIST_MEMBERSHIPS of workflow:payroll", rec.entries)
	}
}

// Each run reports the users added and removed since the previous one.
func TestRunsReportChanges(t *testing.T) {
	clock := clockwork.NewFakeClockAt(at("2026-12-06T10:00:00Z"))
	core := &holders{}
	s, _ := newScheduler(t, core, clock, &sink{})
	if err := s.Add(workflow.Job{Tenant: tenant, Workflow: "deploy", Permission: "ship",
		Schedule: mustSchedule(t, "1h"), Func: func(context.Context, workflow.Run) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		holders        []string
		added, removed []string
	}{
		{[]string{"alice", "bob"}, []string{"alice", "bob"}, []string{}},
		{[]string{"alice", "bob"}, []string{}, []string{}},
		{[]string{"bob", "carol"}, []string{"carol"}, []string{"alice"}},
		{nil, []string{}, []string{"bob", "carol"}},
	}
	for i, st := range steps {
		var m []policy.Membership
		for _, u := range st.holders {
			m = append(m, policy.Membership{User: u, Role: "ops"})
		}
		core.set("ship", m...)
		clock.Advance(time.Second) // each manual run at an instant of its own
		r, err := s.RunNow(t.Context(), tenant, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome != workflow.OutcomeOK || r.Trigger != workflow.TriggerManual ||
			!reflect.DeepEqual(r.Added, st.added) || !reflect.DeepEqual(r.Removed, st.removed) {
			t.Errorf("run %d: %+v; want ok, manual, added %v, removed %v", i, r, st.added, st.removed)
		}
	}
	if _, err := s.RunNow(t.Context(), tenant, "nightly"); err == nil {
		t.Error("RunNow of a job never added did not fail")
	}
}

// When the scheduler stops, a run under way may finish within the stop
// timeout; one that does not is interrupted and recorded as such.
func TestStopLetsARunFinishOrInterruptsIt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		finish  bool
		outcome workflow.Outcome
	}{
		{"finishes in time", true, workflow.OutcomeOK},
		{"interrupted", false, workflow.OutcomeInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(at("2026-12-06T10:00:00Z"))
			core := &holders{}
			core.set("deploy", policy.Membership{User: "alice", Role: "ops"})
			s, stop := newScheduler(t, core, clock, &sink{})
			started, release := make(chan struct{}), make(chan struct{})
			if err := s.Every(tenant, "deploy", time.Hour, func(ctx context.Context, _ workflow.Run) error {
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return ctx.Err()
			}); err != nil {
				t.Fatal(err)
			}
			got := make(chan workflow.RunRecord, 1)
			go func() {
				r, err := s.RunNow(context.Background(), tenant, "deploy")
				if err != nil {
					t.Error(err)
				}
				got <- r
			}()
			<-started
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			// The run's stop timer and its lease renewal wait on the clock.
			if err := clock.BlockUntilContext(t.Context(), 2); err != nil {
				t.Fatal(err)
			}
			if tc.finish {
				close(release)
			} else {
				clock.Advance(5 * time.Second)
			}
			r := <-got
			if r.Outcome != tc.outcome {
				t.Errorf("outcome %q (%s), want %q", r.Outcome, r.Error, tc.outcome)
			}
		})
	}
}

func mustSchedule(t *testing.T, s string) workflow.Schedule {
	t.Helper()
	sch, err := workflow.ParseSchedule(s)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}
