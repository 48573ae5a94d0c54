package policydb

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

var _ policy.ExternalChanges = (*Store)(nil)

// externalRow is the note of one tenant's changes made by other programs
// (kept by the rule triggers, see internal/sqldb).
type externalRow struct {
	TenantID     int64 `gorm:"column:tenant_id;primaryKey"`
	Added        int64 `gorm:"column:added"`
	Removed      int64 `gorm:"column:removed"`
	FirstVersion int64 `gorm:"column:first_version"`
	LastVersion  int64 `gorm:"column:last_version"`
}

func (externalRow) TableName() string { return "casbin_rule_external" }

// ClaimExternalChanges implements policy.ExternalChanges. Its first read
// is outside any transaction, so that a pass with nothing to claim (the
// usual case) takes no write lock. The claim itself locks the notes (FOR
// UPDATE on PostgreSQL; SQLite has one writer at a time), so that another
// replica claiming at once waits and then finds them gone.
func (s *Store) ClaimExternalChanges(ctx context.Context, fn func(ctx context.Context, cs []policy.ExternalChange) error) error {
	var n int64
	if err := s.db.Gorm().WithContext(ctx).Model(&externalRow{}).Limit(1).Count(&n).Error; err != nil {
		return fmt.Errorf("read external rule changes: %w", err)
	}
	if n == 0 {
		return nil
	}
	return s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		q := tx.Order("tenant_id")
		if s.db.Dialect() == sqldb.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var rows []externalRow
		if err := q.Find(&rows).Error; err != nil {
			return fmt.Errorf("read external rule changes: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.TenantID
		}
		var tenants []tenantRow
		if err := tx.Select("id, key_hash").Where("id IN ?", ids).Find(&tenants).Error; err != nil {
			return fmt.Errorf("read tenants: %w", err)
		}
		handles := make(map[int64]policy.KeyHash, len(tenants))
		for _, t := range tenants {
			handles[t.ID] = policy.KeyHash(t.KeyHash)
		}
		cs := make([]policy.ExternalChange, 0, len(rows))
		for _, r := range rows {
			h, ok := handles[r.TenantID]
			if !ok {
				continue // the tenant is gone: nothing to record it in
			}
			cs = append(cs, policy.ExternalChange{TenantID: r.TenantID, Tenant: h, Added: r.Added, Removed: r.Removed,
				FirstVersion: r.FirstVersion, Version: r.LastVersion})
		}
		if err := tx.Where("tenant_id IN ?", ids).Delete(&externalRow{}).Error; err != nil {
			return fmt.Errorf("claim external rule changes: %w", err)
		}
		if len(cs) == 0 {
			return nil
		}
		// The change feed says, at a revision of its own (after every
		// revision a consumer may have read), that the rules changed
		// outside the service: a consumer resynchronises from an export.
		now := time.Now().UnixMicro()
		for _, c := range cs {
			if err := tx.Exec("UPDATE tenants SET policy_version = policy_version + 1 WHERE id = ?", c.TenantID).Error; err != nil {
				return fmt.Errorf("bump policy version: %w", err)
			}
			var rev int64
			if err := tx.Raw("SELECT policy_version FROM tenants WHERE id = ?", c.TenantID).Scan(&rev).Error; err != nil {
				return fmt.Errorf("read policy version: %w", err)
			}
			if err := tx.Create(&changeRow{TenantID: c.TenantID, Revision: rev, Op: policy.ChangeExternal, At: now}).Error; err != nil {
				return fmt.Errorf("write change log: %w", err)
			}
		}
		return fn(ctx, cs)
	})
}
