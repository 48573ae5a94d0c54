package workflow

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/ourway/auth/policy"
)

// fixedUsers answers the same users for every workflow.
type fixedUsers []string

func (u fixedUsers) UsersFor(context.Context, policy.KeyHash, string, string) ([]string, error) {
	return u, nil
}

// A job added with catch-up runs, once, the latest slot missed since its
// previous run, and only one later than its last change; without catch-up,
// or with nothing missed, it waits for its next slot.
func TestCatchUp(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		catchUp  bool
		last     time.Time // the previous scheduled run (zero: none)
		updated  time.Time
		wantSlot time.Time // zero: no catch-up run
	}{
		{"missed slots", true, now.Add(-3 * time.Hour).Truncate(time.Hour), now.Add(-5 * time.Hour), now.Truncate(time.Hour)},
		{"catch-up off", false, now.Add(-3 * time.Hour).Truncate(time.Hour), now.Add(-5 * time.Hour), time.Time{}},
		{"nothing missed", true, now.Truncate(time.Hour), now.Add(-5 * time.Hour), time.Time{}},
		{"never run", true, time.Time{}, now.Add(-5 * time.Hour), time.Time{}},
		{"changed since the missed slot", true, now.Add(-3 * time.Hour).Truncate(time.Hour), now.Add(-time.Minute), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(now)
			store := newMemRuns()
			const wf = 7
			if !tc.last.IsZero() {
				r, ok, err := store.ClaimRun(context.Background(), Claim{WorkflowID: wf, Scheduled: tc.last,
					Trigger: TriggerSchedule, Owner: "before", Started: tc.last})
				if err != nil || !ok {
					t.Fatal(ok, err)
				}
				r.Outcome = OutcomeOK
				if err := store.FinishRun(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			s, err := newScheduler(fixedUsers{"ana"}, SchedulerOptions{Clock: clock, store: store})
			if err != nil {
				t.Fatal(err)
			}
			ran := make(chan Run, 2)
			sch, err := Every(time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Add(Job{Tenant: "t", Workflow: "payroll", Schedule: sch, CatchUp: tc.catchUp, id: wf,
				updated: tc.updated, Func: func(_ context.Context, r Run) error { ran <- r; return nil }}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			if !tc.wantSlot.IsZero() {
				r := <-ran
				if r.Trigger != TriggerCatchUp || !r.Scheduled.Equal(tc.wantSlot) {
					t.Errorf("ran %s at %v, want catch_up at %v", r.Trigger, r.Scheduled, tc.wantSlot)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Run has waited for the catch-up pass: nothing else ran.
			select {
			case r := <-ran:
				t.Errorf("unexpected run %s at %v", r.Trigger, r.Scheduled)
			default:
			}
		})
	}
}
