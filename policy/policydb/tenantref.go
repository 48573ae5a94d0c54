package policydb

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

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
	infos, err := s.tenantInfos(ctx, func(q *gorm.DB) *gorm.DB { return q.Where(cond, arg).Limit(1) })
	if err != nil {
		return policy.TenantInfo{}, false, fmt.Errorf("find tenant: %w", err)
	}
	if len(infos) == 0 {
		return policy.TenantInfo{}, false, nil
	}
	return infos[0], true, nil
}

// tenantInfos returns the tenants scope selects (it adds conditions and
// order to the query), each with its count of active keys.
func (s *Store) tenantInfos(ctx context.Context, scope func(q *gorm.DB) *gorm.DB) ([]policy.TenantInfo, error) {
	var rows []struct {
		ID        int64     `gorm:"column:id"`
		KeyHash   string    `gorm:"column:key_hash"`
		CreatedAt time.Time `gorm:"column:created_at"`
		Active    int       `gorm:"column:active"`
	}
	q := s.db.Gorm().WithContext(ctx).Table("tenants t").
		Select("t.id, t.key_hash, t.created_at, (SELECT COUNT(*) FROM tenant_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)) AS active", time.Now().UTC())
	if err := scope(q).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]policy.TenantInfo, len(rows))
	for i, r := range rows {
		out[i] = policy.TenantInfo{ID: r.ID, Handle: policy.KeyHash(r.KeyHash), CreatedAt: r.CreatedAt, ActiveKeys: r.Active}
	}
	return out, nil
}
