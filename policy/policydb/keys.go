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
	KeyHash    string     `gorm:"column:key_hash;primaryKey"`
	TenantID   int64      `gorm:"column:tenant_id"`
	CreatedAt  time.Time  `gorm:"column:created_at"`
	ExpiresAt  *time.Time `gorm:"column:expires_at"`
	RevokedAt  *time.Time `gorm:"column:revoked_at"`
	LastUsedAt *time.Time `gorm:"column:last_used_at"`
}

func (keyRow) TableName() string { return "tenant_keys" }

// record is the row as a policy.KeyRecord of the tenant with this handle.
func (r keyRow) record(handle string) policy.KeyRecord {
	return policy.KeyRecord{Hash: policy.KeyHash(r.KeyHash), Handle: policy.KeyHash(handle), TenantID: r.TenantID,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt}
}

// FindKey implements policy.KeyStore.
func (s *Store) FindKey(ctx context.Context, key policy.KeyHash) (policy.KeyRecord, bool, error) {
	var row struct {
		KeyHash    string     `gorm:"column:key_hash"`
		TenantID   int64      `gorm:"column:tenant_id"`
		CreatedAt  time.Time  `gorm:"column:created_at"`
		ExpiresAt  *time.Time `gorm:"column:expires_at"`
		RevokedAt  *time.Time `gorm:"column:revoked_at"`
		LastUsedAt *time.Time `gorm:"column:last_used_at"`
		Handle     string     `gorm:"column:handle"`
	}
	err := s.db.Gorm().WithContext(ctx).Table("tenant_keys k").
		Select("k.key_hash, k.tenant_id, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, t.key_hash AS handle").
		Joins("JOIN tenants t ON t.id = k.tenant_id").
		Where("k.key_hash = ?", string(key)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return policy.KeyRecord{}, false, nil
	}
	if err != nil {
		return policy.KeyRecord{}, false, fmt.Errorf("find client key: %w", err)
	}
	return keyRow{KeyHash: row.KeyHash, TenantID: row.TenantID, CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt,
		RevokedAt: row.RevokedAt, LastUsedAt: row.LastUsedAt}.record(row.Handle), true, nil
}

// lockTenant takes the tenant's row lock (PostgreSQL; SQLite has one
// writer), so that rotations, revocations and policy writes of a tenant
// queue up, and returns its handle; false if there is no such tenant.
func lockTenant(tx *gorm.DB, id int64) (string, bool, error) {
	res := tx.Exec("UPDATE tenants SET policy_version = policy_version WHERE id = ?", id)
	if res.Error != nil {
		return "", false, fmt.Errorf("lock tenant: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return "", false, nil
	}
	var handle string
	if err := tx.Raw("SELECT key_hash FROM tenants WHERE id = ?", id).Scan(&handle).Error; err != nil {
		return "", false, fmt.Errorf("read tenant: %w", err)
	}
	return handle, true, nil
}

// claimActive is the compare-and-swap on a key's state: it takes the row
// lock of key if it is an active key (never rotated, not revoked) of tenant
// id, setting expires_at when expires is not nil, and otherwise says why
// not (policy.ErrKeyRevoked, or inGrace for a key already rotated away).
func claimActive(tx *gorm.DB, key policy.KeyHash, id int64, expires *time.Time, inGrace error) error {
	q := tx.Model(&keyRow{}).Where("key_hash = ? AND tenant_id = ? AND revoked_at IS NULL AND expires_at IS NULL", string(key), id)
	var res *gorm.DB
	if expires != nil {
		res = q.Update("expires_at", *expires)
	} else {
		res = q.Update("key_hash", gorm.Expr("key_hash"))
	}
	if res.Error != nil {
		return fmt.Errorf("claim client key: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var cur keyRow
	err := tx.Where("key_hash = ?", string(key)).Take(&cur).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return policy.ErrKeyUnknown
	case err != nil:
		return fmt.Errorf("find client key: %w", err)
	case cur.RevokedAt != nil || cur.TenantID != id:
		return policy.ErrKeyRevoked
	}
	return inGrace
}

// RotateKey implements policy.KeyStore: the current key is claimed (a
// conditional update of its state, checked to have changed one row) in the
// transaction that adds the new key and the audit record, so that of
// concurrent rotations of one key exactly one commits.
func (s *Store) RotateKey(ctx context.Context, current, next policy.KeyHash, expires time.Time,
	record func(ctx context.Context, handle policy.KeyHash) error) error {
	return s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		var cur keyRow
		err := tx.Where("key_hash = ?", string(current)).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return policy.ErrKeyUnknown
		}
		if err != nil {
			return fmt.Errorf("find client key: %w", err)
		}
		handle, ok, err := lockTenant(tx, cur.TenantID)
		if err != nil {
			return err
		}
		if !ok {
			return policy.ErrKeyUnknown
		}
		if err := claimActive(tx, current, cur.TenantID, &expires, policy.ErrKeyRotated); err != nil {
			return err
		}
		if err := tx.Create(&keyRow{KeyHash: string(next), TenantID: cur.TenantID, CreatedAt: time.Now().UTC()}).Error; err != nil {
			return fmt.Errorf("add client key: %w", err)
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

// RevokeKeys implements policy.KeyStore. The tenant's row is locked first,
// as rotations do, so that a revocation and a rotation of the same tenant
// never interleave.
func (s *Store) RevokeKeys(ctx context.Context, sel policy.KeySelection, at time.Time,
	record func(ctx context.Context, handle policy.KeyHash, revoked []policy.KeyHash) error) ([]policy.KeyHash, error) {
	var revoked []policy.KeyHash
	err := s.db.InTxContext(ctx, func(ctx context.Context, tx *gorm.DB) error {
		revoked = nil
		id := sel.TenantID
		key := sel.Key
		switch {
		case key != "":
			var row keyRow
			err := tx.Where("key_hash = ?", string(key)).Take(&row).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("find client key: %w", err)
			}
			id = row.TenantID
		case sel.ID != "":
			var rows []keyRow
			q := tx.Where("key_hash LIKE ?", sel.ID+"%")
			if id != 0 {
				q = q.Where("tenant_id = ?", id)
			}
			if err := q.Limit(2).Find(&rows).Error; err != nil {
				return fmt.Errorf("find client key: %w", err)
			}
			switch len(rows) {
			case 0:
				return nil
			case 1:
				key, id = policy.KeyHash(rows[0].KeyHash), rows[0].TenantID
			default:
				return policy.ErrKeyIDAmbiguous
			}
		case id == 0:
			return errors.New("revoke client keys: empty selection")
		}
		handle, ok, err := lockTenant(tx, id)
		if err != nil || !ok {
			return err
		}
		q := tx.Model(&keyRow{}).Where("tenant_id = ? AND revoked_at IS NULL", id)
		if key != "" {
			q = q.Where("key_hash = ?", string(key))
		} else {
			q = q.Where("(expires_at IS NULL OR expires_at > ?)", at)
		}
		if sel.Except != "" {
			if err := claimActive(tx, sel.Except, id, nil, policy.ErrKeyInGrace); err != nil {
				return err
			}
			q = q.Where("key_hash <> ?", string(sel.Except))
		}
		var hashes []string
		if err := q.Order("created_at, key_hash").Pluck("key_hash", &hashes).Error; err != nil {
			return fmt.Errorf("find client keys: %w", err)
		}
		if len(hashes) > 0 {
			if err := tx.Model(&keyRow{}).Where("key_hash IN ? AND revoked_at IS NULL", hashes).
				Update("revoked_at", at).Error; err != nil {
				return fmt.Errorf("revoke client keys: %w", err)
			}
		}
		revoked = make([]policy.KeyHash, len(hashes))
		for i, h := range hashes {
			revoked[i] = policy.KeyHash(h)
		}
		return record(ctx, policy.KeyHash(handle), revoked)
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// ListKeys implements policy.KeyStore.
func (s *Store) ListKeys(ctx context.Context, tenantID int64) ([]policy.KeyRecord, bool, error) {
	var handles []string
	g := s.db.Gorm().WithContext(ctx)
	if err := g.Raw("SELECT key_hash FROM tenants WHERE id = ?", tenantID).Scan(&handles).Error; err != nil {
		return nil, false, fmt.Errorf("read tenant: %w", err)
	}
	if len(handles) == 0 {
		return nil, false, nil
	}
	var rows []keyRow
	if err := g.Where("tenant_id = ?", tenantID).Order("created_at, key_hash").Find(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("list client keys: %w", err)
	}
	out := make([]policy.KeyRecord, len(rows))
	for i, r := range rows {
		out[i] = r.record(handles[0])
	}
	return out, true, nil
}

// TouchKey implements policy.KeyStore.
func (s *Store) TouchKey(ctx context.Context, key policy.KeyHash, at time.Time) error {
	return s.db.InTx(ctx, func(tx *gorm.DB) error {
		err := tx.Model(&keyRow{}).Where("key_hash = ? AND (last_used_at IS NULL OR last_used_at < ?)", string(key), at).
			Update("last_used_at", at).Error
		if err != nil {
			return fmt.Errorf("record client key use: %w", err)
		}
		return nil
	})
}

// ListTenants implements policy.KeyStore.
func (s *Store) ListTenants(ctx context.Context) ([]policy.TenantInfo, error) {
	out, err := s.tenantInfos(ctx, func(q *gorm.DB) *gorm.DB { return q.Order("t.id") })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
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
