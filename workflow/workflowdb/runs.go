package workflowdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

type runRow struct {
	ID              int64      `gorm:"column:id;primaryKey"`
	WorkflowID      int64      `gorm:"column:workflow_id"`
	TenantID        int64      `gorm:"column:tenant_id"`
	ScheduledAt     time.Time  `gorm:"column:scheduled_at"`
	Trigger         string     `gorm:"column:trigger"`
	Attempt         int        `gorm:"column:attempt"`
	Outcome         string     `gorm:"column:outcome"`
	Owner           string     `gorm:"column:owner"`
	LeaseUntil      time.Time  `gorm:"column:lease_until"`
	StartedAt       time.Time  `gorm:"column:started_at"`
	FinishedAt      *time.Time `gorm:"column:finished_at"`
	Users           string     `gorm:"column:users"`
	Added           string     `gorm:"column:added"`
	Removed         string     `gorm:"column:removed"`
	UserCount       int        `gorm:"column:user_count"`
	Error           string     `gorm:"column:error"`
	WebhookOutcome  *string    `gorm:"column:webhook_outcome"`
	WebhookAttempts int        `gorm:"column:webhook_attempts"`
	WebhookStatus   int        `gorm:"column:webhook_status"`
	WebhookError    string     `gorm:"column:webhook_error"`
	DurationMS      int64      `gorm:"column:duration_ms"`
	WorkflowRev     int64      `gorm:"column:workflow_rev"`
}

func (runRow) TableName() string { return "workflow_runs" }

// sealList returns names as stored: a JSON array (never null), sealed
// whole under the tenant's key.
func (s *Store) sealList(tenantID int64, names []string) (string, error) {
	if names == nil {
		names = []string{}
	}
	b, err := json.Marshal(names)
	if err != nil {
		return "", err
	}
	return s.seal(tenantID, string(b))
}

// openList returns the names of a stored list.
func (s *Store) openList(tenantID int64, v string) ([]string, error) {
	p, err := s.open(tenantID, v)
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal([]byte(p), &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// record returns the row as a run, its user lists decrypted.
func (s *Store) record(r runRow) (workflow.RunRecord, error) {
	rec := workflow.RunRecord{
		ID:          r.ID,
		WorkflowID:  r.WorkflowID,
		TenantID:    r.TenantID,
		Scheduled:   r.ScheduledAt.UTC(),
		Trigger:     workflow.Trigger(r.Trigger),
		Attempt:     r.Attempt,
		Outcome:     workflow.Outcome(r.Outcome),
		Owner:       r.Owner,
		LeaseUntil:  r.LeaseUntil.UTC(),
		Started:     r.StartedAt.UTC(),
		Error:       r.Error,
		DurationMS:  r.DurationMS,
		WorkflowRev: r.WorkflowRev,
	}
	if r.FinishedAt != nil {
		rec.Finished = r.FinishedAt.UTC()
	}
	lists := []struct {
		name string
		v    string
		out  *[]string
	}{{"users", r.Users, &rec.Users}, {"added", r.Added, &rec.Added}, {"removed", r.Removed, &rec.Removed}}
	for _, l := range lists {
		names, err := s.openList(r.TenantID, l.v)
		if err != nil {
			return rec, fmt.Errorf("workflow run %d %s: %w", r.ID, l.name, err)
		}
		*l.out = names
	}
	if r.WebhookOutcome != nil {
		rec.Webhook = &workflow.WebhookResult{Outcome: workflow.WebhookOutcome(*r.WebhookOutcome),
			Attempts: r.WebhookAttempts, Status: r.WebhookStatus, Error: r.WebhookError}
	}
	return rec, nil
}

// takeRun returns the run q selects.
func (s *Store) takeRun(q *gorm.DB) (workflow.RunRecord, bool, error) {
	var rows []runRow
	if err := q.Limit(1).Find(&rows).Error; err != nil {
		return workflow.RunRecord{}, false, fmt.Errorf("read workflow run: %w", err)
	}
	if len(rows) == 0 {
		return workflow.RunRecord{}, false, nil
	}
	rec, err := s.record(rows[0])
	if err != nil {
		return workflow.RunRecord{}, false, err
	}
	return rec, true, nil
}

// ClaimRun implements workflow.Store: the slot's row is inserted unless
// one exists (INSERT … ON CONFLICT DO NOTHING: of concurrent claims
// exactly one inserts). ok is false too when the workflow no longer
// exists (it was deleted meanwhile).
func (s *Store) ClaimRun(ctx context.Context, c workflow.Claim) (workflow.RunRecord, bool, error) {
	var (
		rec workflow.RunRecord
		ok  bool
	)
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		var wf []workflowRow
		if err := tx.Select("id, tenant_id, revision").Where("id = ?", c.WorkflowID).Limit(1).Find(&wf).Error; err != nil {
			return fmt.Errorf("claim workflow run: %w", err)
		}
		if len(wf) == 0 {
			return nil
		}
		empty, err := s.sealList(wf[0].TenantID, nil)
		if err != nil {
			return err
		}
		res := tx.Exec(`INSERT INTO workflow_runs (workflow_id, tenant_id, scheduled_at, "trigger", attempt, outcome,
			owner, lease_until, started_at, users, added, removed, workflow_rev)
			VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_id, scheduled_at) DO NOTHING`,
			c.WorkflowID, wf[0].TenantID, stamp(c.Scheduled), string(c.Trigger), string(workflow.OutcomeRunning),
			c.Owner, stamp(c.LeaseUntil), stamp(c.Started), empty, empty, empty, wf[0].Revision)
		if res.Error != nil {
			return fmt.Errorf("claim workflow run: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		var found bool
		rec, found, err = s.takeRun(tx.Where("workflow_id = ? AND scheduled_at = ?", c.WorkflowID, stamp(c.Scheduled)))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("claim workflow run: the claimed slot %s of workflow %d does not read back", stamp(c.Scheduled), c.WorkflowID)
		}
		ok = true
		return nil
	})
	if err != nil {
		return workflow.RunRecord{}, false, err
	}
	return rec, ok, nil
}

// RenewRun implements workflow.Store. A run its owner no longer holds (its
// lease ran out and it was marked interrupted) is left alone, silently.
func (s *Store) RenewRun(ctx context.Context, runID int64, owner string, until time.Time) error {
	return s.db.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&runRow{}).Where("id = ? AND owner = ? AND outcome = ?", runID, owner, string(workflow.OutcomeRunning)).
			Update("lease_until", stamp(until)).Error; err != nil {
			return fmt.Errorf("renew workflow run lease: %w", err)
		}
		return nil
	})
}

// FinishRun implements workflow.Store: r.ID's row, if r.Owner still runs
// it, gets r's outcome, users, added, removed, error, webhook, finished
// time and duration, and loses its owner. Otherwise nothing changes (the
// run was marked interrupted and will run again).
func (s *Store) FinishRun(ctx context.Context, r workflow.RunRecord) error {
	return s.db.InTx(ctx, func(tx *gorm.DB) error {
		var tenants []int64
		if err := tx.Model(&runRow{}).Where("id = ?", r.ID).Limit(1).Pluck("tenant_id", &tenants).Error; err != nil {
			return fmt.Errorf("finish workflow run: %w", err)
		}
		if len(tenants) == 0 {
			return nil
		}
		set := map[string]any{
			"outcome": string(r.Outcome), "owner": "", "user_count": len(r.Users), "error": r.Error,
			"webhook_outcome": nil, "webhook_attempts": 0, "webhook_status": 0, "webhook_error": "",
			"duration_ms": r.DurationMS,
		}
		finished := r.Finished
		if finished.IsZero() {
			finished = time.Now()
		}
		set["finished_at"] = stamp(finished)
		for col, names := range map[string][]string{"users": r.Users, "added": r.Added, "removed": r.Removed} {
			v, err := s.sealList(tenants[0], names)
			if err != nil {
				return err
			}
			set[col] = v
		}
		if w := r.Webhook; w != nil {
			set["webhook_outcome"], set["webhook_attempts"], set["webhook_status"], set["webhook_error"] =
				string(w.Outcome), w.Attempts, w.Status, w.Error
		}
		if err := tx.Model(&runRow{}).Where("id = ? AND owner = ? AND outcome = ?", r.ID, r.Owner, string(workflow.OutcomeRunning)).
			Updates(set).Error; err != nil {
			return fmt.Errorf("finish workflow run: %w", err)
		}
		return nil
	})
}

// ExpireRuns implements workflow.Store.
func (s *Store) ExpireRuns(ctx context.Context, at time.Time) (int, error) {
	n := 0
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&runRow{}).Where("outcome = ? AND lease_until < ?", string(workflow.OutcomeRunning), stamp(at)).
			Updates(map[string]any{"outcome": string(workflow.OutcomeInterrupted), "owner": ""})
		if res.Error != nil {
			return fmt.Errorf("expire workflow runs: %w", res.Error)
		}
		n = int(res.RowsAffected)
		return nil
	})
	return n, err
}

// ReclaimRun implements workflow.Store: the oldest interrupted run (by
// scheduled time) of an enabled workflow is taken by a compare-and-swap on
// its outcome; a run another process took first is passed over for the
// next.
func (s *Store) ReclaimRun(ctx context.Context, owner string, at, until time.Time) (workflow.RunRecord, bool, error) {
	g := s.db.Gorm().WithContext(ctx)
	for {
		if err := ctx.Err(); err != nil {
			return workflow.RunRecord{}, false, err
		}
		var ids []int64
		if err := g.Table("workflow_runs r").Select("r.id").Joins("JOIN workflows w ON w.id = r.workflow_id").
			Where("r.outcome = ? AND w.enabled = ?", string(workflow.OutcomeInterrupted), true).
			Order("r.scheduled_at, r.id").Limit(1).Pluck("r.id", &ids).Error; err != nil {
			return workflow.RunRecord{}, false, fmt.Errorf("find interrupted workflow runs: %w", err)
		}
		if len(ids) == 0 {
			return workflow.RunRecord{}, false, nil
		}
		var (
			rec workflow.RunRecord
			won bool
		)
		err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			res := tx.Model(&runRow{}).Where("id = ? AND outcome = ?", ids[0], string(workflow.OutcomeInterrupted)).
				Updates(map[string]any{"outcome": string(workflow.OutcomeRunning), "attempt": gorm.Expr("attempt + 1"),
					"owner": owner, "lease_until": stamp(until), "started_at": stamp(at), "finished_at": nil})
			if res.Error != nil {
				return fmt.Errorf("reclaim workflow run: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				return nil
			}
			var err error
			rec, won, err = s.takeRun(tx.Where("id = ?", ids[0]))
			return err
		})
		if err != nil {
			return workflow.RunRecord{}, false, err
		}
		if won {
			return rec, true, nil
		}
	}
}

// PreviousUsers implements workflow.Store.
func (s *Store) PreviousUsers(ctx context.Context, workflowID int64, before time.Time) ([]string, bool, error) {
	rec, ok, err := s.takeRun(s.db.Gorm().WithContext(ctx).
		Where("workflow_id = ? AND outcome = ? AND scheduled_at < ?", workflowID, string(workflow.OutcomeOK), stamp(before)).
		Order("scheduled_at DESC, id DESC"))
	if err != nil || !ok {
		return nil, false, err
	}
	return rec.Users, true, nil
}

// LastScheduled implements workflow.Store.
func (s *Store) LastScheduled(ctx context.Context, workflowID int64) (time.Time, bool, error) {
	var rows []runRow
	if err := s.db.Gorm().WithContext(ctx).Select("scheduled_at").
		Where(`workflow_id = ? AND "trigger" IN ?`, workflowID, []string{string(workflow.TriggerSchedule), string(workflow.TriggerCatchUp)}).
		Order("scheduled_at DESC").Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, false, fmt.Errorf("read last scheduled workflow run: %w", err)
	}
	if len(rows) == 0 {
		return time.Time{}, false, nil
	}
	return rows[0].ScheduledAt.UTC(), true, nil
}

// ListRuns implements workflow.Store. An unknown workflow has no runs.
func (s *Store) ListRuns(ctx context.Context, tenant policy.KeyHash, name string, beforeID int64, limit int) ([]workflow.RunRecord, error) {
	g := s.db.Gorm().WithContext(ctx)
	id, ok, err := tenantID(g, tenant)
	if err != nil || !ok {
		return nil, err
	}
	wf, ok, err := s.find(g, id, name)
	if err != nil || !ok {
		return nil, err
	}
	q := g.Where("workflow_id = ?", wf.ID)
	if beforeID > 0 {
		q = q.Where("id < ?", beforeID)
	}
	if limit > 0 {
		q = q.Limit(limit)
	}
	var rows []runRow
	if err := q.Order("id DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list workflow runs: %w", err)
	}
	out := make([]workflow.RunRecord, 0, len(rows))
	for _, r := range rows {
		rec, err := s.record(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// GetRun implements workflow.Store.
func (s *Store) GetRun(ctx context.Context, runID int64) (workflow.RunRecord, bool, error) {
	return s.takeRun(s.db.Gorm().WithContext(ctx).Where("id = ?", runID))
}
