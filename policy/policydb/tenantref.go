package policydb

import (
	"context"
	"fmt"
	"time"

	"github.com/ourway/auth/policy"
)

var _ policy.TenantStore = (*Store)(nil)

// TenantByID implements policy.TenantStore.
func (s *Store) TenantByID(ctx context.Context, id int64) (policy.TenantInfo, bool, error) {
	return s.findTenantInfo(ctx, "t.id = ?", id)
}

// TenantByHandle implements policy.TenantStore.
func (s *Store) TenantByHandle(ctx context.Context, handle policy.KeyHash) (policy.TenantInfo, bool, error) {
	return s.findTenantInfo(ctx, "t.key_hash = ?", string(handle))
}

// findTenantInfo returns the one tenant where cond holds, with its count of
// active keys.
func (s *Store) findTenantInfo(ctx context.Context, cond string, arg any) (policy.TenantInfo, bool, error) {
	var rows []struct {
		ID        int64     `gorm:"column:id"`
		KeyHash   string    `gorm:"column:key_hash"`
		CreatedAt time.Time `gorm:"column:created_at"`
		Active    int       `gorm:"column:active"`
	}
	now := time.Now().UTC()
	err := s.db.Gorm().WithContext(ctx).Table("tenants t").
		Select("t.id, t.key_hash, t.created_at, (SELECT COUNT(*) FROM tenant_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)) AS active", now).
		Where(cond, arg).Limit(1).Scan(&rows).Error
	if err != nil {
		return policy.TenantInfo{}, false, fmt.Errorf("find tenant: %w", err)
	}
	if len(rows) == 0 {
		return policy.TenantInfo{}, false, nil
	}
	r := rows[0]
	return policy.TenantInfo{ID: r.ID, Handle: policy.KeyHash(r.KeyHash), CreatedAt: r.CreatedAt, ActiveKeys: r.Active}, true, nil
}
