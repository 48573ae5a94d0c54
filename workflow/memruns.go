package workflow

import (
	"context"
	"slices"
	"sync"
	"time"
)

// memRuns keeps the runs of a scheduler without a store: in memory, for
// one process.
type memRuns struct {
	mu     sync.Mutex
	nextID int64
	runs   map[int64]*RunRecord
	slots  map[memSlot]int64
}

type memSlot struct {
	workflow int64
	at       time.Time
}

func newMemRuns() *memRuns {
	return &memRuns{runs: map[int64]*RunRecord{}, slots: map[memSlot]int64{}}
}

func (m *memRuns) ClaimRun(_ context.Context, c Claim) (RunRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memSlot{c.WorkflowID, c.Scheduled.UTC()}
	if _, ok := m.slots[k]; ok {
		return RunRecord{}, false, nil
	}
	m.nextID++
	r := &RunRecord{ID: m.nextID, WorkflowID: c.WorkflowID, Scheduled: c.Scheduled.UTC(), Trigger: c.Trigger,
		Attempt: 1, Outcome: OutcomeRunning, Owner: c.Owner, LeaseUntil: c.LeaseUntil, Started: c.Started}
	m.runs[r.ID], m.slots[k] = r, r.ID
	return *r, true, nil
}

func (m *memRuns) RenewRun(_ context.Context, id int64, owner string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[id]; ok && r.Owner == owner && r.Outcome == OutcomeRunning {
		r.LeaseUntil = until
	}
	return nil
}

func (m *memRuns) FinishRun(_ context.Context, rec RunRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[rec.ID]; ok && r.Owner == rec.Owner && r.Outcome == OutcomeRunning {
		*r = rec
	}
	return nil
}

func (m *memRuns) PreviousUsers(_ context.Context, workflowID int64, before time.Time) ([]string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *RunRecord
	for _, r := range m.runs {
		if r.WorkflowID == workflowID && r.Outcome == OutcomeOK && r.Scheduled.Before(before) &&
			(best == nil || r.Scheduled.After(best.Scheduled)) {
			best = r
		}
	}
	if best == nil {
		return nil, false, nil
	}
	return slices.Clone(best.Users), true, nil
}

func (m *memRuns) LastScheduled(_ context.Context, workflowID int64) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var last time.Time
	for _, r := range m.runs {
		if r.WorkflowID == workflowID && r.Trigger != TriggerManual && r.Scheduled.After(last) {
			last = r.Scheduled
		}
	}
	return last, !last.IsZero(), nil
}
