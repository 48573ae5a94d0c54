package policydb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/ourway/auth/policy"
)

var _ policy.KeyStore = (*Store)(nil)

type keyRow struct {
	KeyHash   string     `gorm:"column:key_hash;primaryKey"`
	TenantID  int64      `gorm:"column:tenant_id"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	ExpiresAt *time.Time `gorm:"column:expires_at"`
	RevokedAt *time.Time `gorm:"column:revoked_at"`
}

func (keyRow) TableName() string { return "tenant_keys" }

// FindKey implements policy.KeyStore.
func (s *Store) FindKey(ctx context.Context, key policy.KeyHash) (policy.KeyRecord, bool, error) {
	var row struct {
		TenantID  int64      `gorm:"column:tenant_id"`
		CreatedAt time.Time  `gorm:"column:created_at"`
		ExpiresAt *time.Time `gorm:"column:expires_at"`
		RevokedAt *time.Time `gorm:"column:revoked_at"`
		Handle    string     `gorm:"column:handle"`
	}
	err := s.db.Gorm().WithContext(ctx).Table("tenant_keys k").
		Select("k.tenant_id, k.created_at, k.expires_at, k.revoked_at, t.key_hash AS handle").
		Joins("JOIN tenants t ON t.id = k.tenant_id").
		Where("k.key_hash = ?", string(key)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return policy.KeyRecord{}, false, nil
	}
	if err != nil {
		return policy.KeyRecord{}, false, fmt.Errorf("find client key: %w", err)
	}
	return policy.KeyRecord{Handle: policy.KeyHash(row.Handle), TenantID: row.TenantID, CreatedAt: row.CreatedAt,
		ExpiresAt: row.ExpiresAt, RevokedAt: row.RevokedAt}, true, nil
}

// RotateKey implements policy.KeyStore.
func (s *Store) RotateKey(ctx context.Context, current, next policy.KeyHash, expires time.Time,
	record func(ctx context.Context, handle policy.KeyHash) error) error {
	return s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		var cur keyRow
		if err := tx.Where("key_hash = ?", string(current)).Take(&cur).Error; err != nil {
			return fmt.Errorf("find client key: %w", err)
		}
		// Lock the tenant (PostgreSQL) so rotations and writes queue up.
		if err := tx.Exec("UPDATE tenants SET policy_version = policy_version WHERE id = ?", cur.TenantID).Error; err != nil {
			return err
		}
		if err := tx.Create(&keyRow{KeyHash: string(next), TenantID: cur.TenantID, CreatedAt: time.Now().UTC()}).Error; err != nil {
			return fmt.Errorf("add client key: %w", err)
		}
		if err := tx.Model(&keyRow{}).Where("key_hash = ? AND (expires_at IS NULL OR expires_at > ?)", string(current), expires).
			Update("expires_at", expires).Error; err != nil {
			return fmt.Errorf("expire client key: %w", err)
		}
		var handle string
		if err := tx.Raw("SELECT key_hash FROM tenants WHERE id = ?", cur.TenantID).Scan(&handle).Error; err != nil {
			return err
		}
		return record(ctx, policy.KeyHash(handle))
	})
}

// CreateTenant implements policy.KeyStore.
func (s *Store) CreateTenant(ctx context.Context, key policy.KeyHash) (int64, error) {
	var id int64
	err := s.db.InTx(ctx, func(g *gorm.DB) error {
		t := &tx{g: g, dialect: s.db.Dialect()}
		var err error
		id, err = t.EnsureTenant(ctx, key)
		return err
	})
	return id, err
}

// RevokeKey implements policy.KeyStore.
func (s *Store) RevokeKey(ctx context.Context, key policy.KeyHash) (bool, error) {
	res := s.db.Gorm().WithContext(ctx).Model(&keyRow{}).Where("key_hash = ? AND revoked_at IS NULL", string(key)).
		Update("revoked_at", time.Now().UTC())
	if res.Error != nil {
		return false, fmt.Errorf("revoke client key: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

// ListTenants implements policy.KeyStore.
func (s *Store) ListTenants(ctx context.Context) ([]policy.TenantInfo, error) {
	var rows []struct {
		ID        int64     `gorm:"column:id"`
		KeyHash   string    `gorm:"column:key_hash"`
		CreatedAt time.Time `gorm:"column:created_at"`
		Active    int       `gorm:"column:active"`
	}
	now := time.Now().UTC()
	err := s.db.Gorm().WithContext(ctx).Table("tenants t").
		Select("t.id, t.key_hash, t.created_at, (SELECT COUNT(*) FROM tenant_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)) AS active", now).
		Order("t.id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out := make([]policy.TenantInfo, len(rows))
	for i, r := range rows {
		out[i] = policy.TenantInfo{ID: r.ID, Handle: policy.KeyHash(r.KeyHash), CreatedAt: r.CreatedAt, ActiveKeys: r.Active}
	}
	return out, nil
}

// registerKey records key as a key of tenant id (its first one).
func registerKey(g *gorm.DB, id int64, key policy.KeyHash) error {
	return g.Clauses(clause.OnConflict{DoNothing: true}).
		Create(&keyRow{KeyHash: string(key), TenantID: id, CreatedAt: time.Now().UTC()}).Error
}

// Versions implements policy.VersionReader: the policy versions of tenants.
func (s *Store) Versions(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(ids))
	const chunk = 500
	for start := 0; start < len(ids); start += chunk {
		end := start + chunk
		if end > len(ids) {
			end = len(ids)
		}
		var rows []tenantRow
		if err := s.db.Gorm().WithContext(ctx).Select("id, policy_version").Where("id IN ?", ids[start:end]).
			Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("read policy versions: %w", err)
		}
		for _, r := range rows {
			out[r.ID] = r.PolicyVersion
		}
	}
	return out, nil
}
