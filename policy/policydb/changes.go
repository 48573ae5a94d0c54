package policydb

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// The change log (policy_changes) and the ends of time-bound rules
// (rule_expiries). Names in both are sealed like the rules' when field
// encryption is on; rule_expiries keeps a rule's stored fields as
// casbin_rule has them, so that the same filters select both.

type expiryRow struct {
	TenantID  int64  `gorm:"column:tenant_id"`
	Ptype     string `gorm:"column:ptype"`
	V0        string `gorm:"column:v0"`
	V1        string `gorm:"column:v1"`
	V2        string `gorm:"column:v2"`
	ExpiresAt int64  `gorm:"column:expires_at"`
}

func (expiryRow) TableName() string { return "rule_expiries" }

// removeExpiries deletes the ends of the rules a filter selects.
func (t *tx) removeExpiries(ctx context.Context, ptype string, fieldIndex int, values []string) error {
	if t.noExpiries {
		return nil
	}
	// rule_expiries keeps v0..v2 only: later fields match anything.
	where, args, err := ruleFilter(t.keys, ptype, fieldIndex, values, 3)
	if err != nil {
		return err
	}
	if err := t.g.WithContext(ctx).Where(where, args...).Delete(&expiryRow{}).Error; err != nil {
		return fmt.Errorf("remove rule expiries: %w", err)
	}
	return nil
}

// SetExpiry implements policy.Tx.
func (t *tx) SetExpiry(ctx context.Context, tenantID int64, ptype string, rules [][]string, at *time.Time) error {
	if at == nil && t.noExpiries {
		return nil // a tenant that never had a time-bound rule
	}
	if at != nil && t.expiriesOf != tenantID {
		// A load reads the table of ends only for a tenant so marked.
		if err := t.g.WithContext(ctx).Exec("UPDATE tenants SET has_expiries = TRUE WHERE id = ?", tenantID).Error; err != nil {
			return fmt.Errorf("note time-bound rules: %w", err)
		}
		t.noExpiries, t.expiriesOf = false, tenantID
	}
	for _, r := range rules {
		if len(r) < 3 {
			return fmt.Errorf("policydb: a time-bound rule has three fields")
		}
		if err := t.removeExpiries(ctx, ptype, 0, r[:3]); err != nil {
			return err
		}
		if at == nil {
			continue
		}
		// Stored as the rule is stored: under the current key.
		vs, err := ruleVariants(t.keys, ptype[:1], r[:3])
		if err != nil {
			return err
		}
		row := expiryRow{TenantID: tenantID, Ptype: ptype, V0: vs[0][0], V1: vs[0][1], V2: vs[0][2], ExpiresAt: at.UnixMicro()}
		if err := t.g.WithContext(ctx).Create(&row).Error; err != nil {
			return fmt.Errorf("set rule expiry: %w", err)
		}
	}
	return nil
}

// ExpireRule implements policy.Tx.
func (t *tx) ExpireRule(ctx context.Context, tenantID int64, ptype string, rule []string, now time.Time) (bool, error) {
	if len(rule) < 3 {
		return false, nil
	}
	where, args, err := ruleFilter(t.keys, ptype, 0, rule[:3], 3)
	if err != nil {
		return false, err
	}
	var n int64
	if err := t.g.WithContext(ctx).Model(&expiryRow{}).
		Where(where+" AND tenant_id = ? AND expires_at <= ?", append(args, tenantID, now.UnixMicro())...).
		Count(&n).Error; err != nil {
		return false, fmt.Errorf("read rule expiry: %w", err)
	}
	if n == 0 {
		return false, nil // extended, made permanent or swept meanwhile
	}
	if err := t.RemoveRules(ctx, ptype, [][]string{rule}); err != nil {
		return false, err
	}
	return true, nil
}

type changeRow struct {
	TenantID    int64   `gorm:"column:tenant_id"`
	Revision    int64   `gorm:"column:revision"`
	Seq         int     `gorm:"column:seq"`
	Op          string  `gorm:"column:op"`
	Role        *string `gorm:"column:role"`
	Permission  *string `gorm:"column:permission"`
	UserName    *string `gorm:"column:user_name"`
	Parent      *string `gorm:"column:parent"`
	Description *string `gorm:"column:description"`
	ExpiresAt   *int64  `gorm:"column:expires_at"`
	At          int64   `gorm:"column:at"`
}

func (changeRow) TableName() string { return "policy_changes" }

// seal returns v sealed for tenant dom (nil for "" or a nil pointer).
func seal(keys *fieldcrypt.Keyring, dom string, v *string) (*string, error) {
	if v == nil {
		return nil, nil
	}
	if keys == nil {
		return v, nil
	}
	c, err := keys.Encrypt(dom, *v)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func nonEmpty(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// AppendChanges implements policy.Tx.
func (t *tx) AppendChanges(ctx context.Context, tenantID, revision int64, at time.Time, records []policy.ChangeRecord) error {
	dom := fmt.Sprint(tenantID)
	rows := make([]changeRow, 0, len(records))
	for _, r := range records {
		row := changeRow{TenantID: tenantID, Revision: revision, Seq: r.Seq, Op: r.Op, At: at.UnixMicro()}
		for _, f := range []struct {
			dst **string
			v   *string
		}{
			{&row.Role, nonEmpty(r.Role)}, {&row.Permission, nonEmpty(r.Permission)},
			{&row.UserName, nonEmpty(r.User)}, {&row.Parent, nonEmpty(r.Parent)}, {&row.Description, r.Description},
		} {
			v, err := seal(t.keys, dom, f.v)
			if err != nil {
				return fmt.Errorf("seal change item: %w", err)
			}
			*f.dst = v
		}
		if r.ExpiresAt != nil {
			e := r.ExpiresAt.UnixMicro()
			row.ExpiresAt = &e
		}
		rows = append(rows, row)
	}
	// Hand-written statements of a few rows each: gorm's builder costs
	// more than the insert, and the SQLite driver binds parameters in
	// time quadratic in their number.
	const perStatement = 16
	for len(rows) > 0 {
		n := min(len(rows), perStatement)
		var b strings.Builder
		b.WriteString("INSERT INTO policy_changes (tenant_id, revision, seq, op, role, permission, user_name, parent, description, expires_at, at) VALUES ")
		args := make([]any, 0, 11*n)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range 11 {
				if j > 0 {
					b.WriteByte(',')
				}
				if t.dialect == sqldb.Postgres {
					b.WriteString("$" + strconv.Itoa(11*i+j+1))
				} else {
					b.WriteByte('?')
				}
			}
			b.WriteByte(')')
			args = append(args, r.TenantID, r.Revision, r.Seq, r.Op, r.Role, r.Permission, r.UserName, r.Parent,
				r.Description, r.ExpiresAt, r.At)
		}
		// Straight to the transaction's connection: no gorm callbacks.
		if _, err := t.g.Statement.ConnPool.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("write change log: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// Revision implements policy.Store.
func (s *Store) Revision(ctx context.Context, key policy.KeyHash) (int64, int64, bool, error) {
	var row tenantRow
	err := s.db.Gorm().WithContext(ctx).Select("id", "policy_version").Where("key_hash = ?", string(key)).Limit(1).Find(&row).Error
	if err != nil {
		return 0, 0, false, fmt.Errorf("read tenant revision: %w", err)
	}
	return row.ID, row.PolicyVersion, row.ID != 0, nil
}

// readSnapshot runs fn in a read transaction that sees one snapshot.
func (s *Store) readSnapshot(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.db.Dialect() == sqldb.Postgres {
		return s.db.Gorm().WithContext(ctx).Transaction(fn, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	}
	return s.db.InTx(ctx, fn)
}

// ReadChanges implements policy.Store.
func (s *Store) ReadChanges(ctx context.Context, tenantID int64, after policy.Position, limit int) (policy.ChangeBatch, error) {
	var b policy.ChangeBatch
	dom := fmt.Sprint(tenantID)
	err := s.readSnapshot(ctx, func(tx *gorm.DB) error {
		var t struct {
			PolicyVersion int64 `gorm:"column:policy_version"`
			ChangesFloor  int64 `gorm:"column:changes_floor"`
		}
		if err := tx.Raw("SELECT policy_version, changes_floor FROM tenants WHERE id = ?", tenantID).Scan(&t).Error; err != nil {
			return fmt.Errorf("read tenant: %w", err)
		}
		b.Latest, b.Floor = t.PolicyVersion, t.ChangesFloor
		var rows []changeRow
		q := tx.Where("tenant_id = ? AND revision > ?", tenantID, after.Revision)
		if after.Seq >= 0 {
			q = tx.Where("tenant_id = ? AND (revision > ? OR (revision = ? AND seq > ?))",
				tenantID, after.Revision, after.Revision, after.Seq)
		}
		if err := q.Order("revision").Order("seq").Limit(limit).Find(&rows).Error; err != nil {
			return fmt.Errorf("read change log: %w", err)
		}
		opened := map[string]string{}
		open := func(v *string) (string, error) {
			if v == nil {
				return "", nil
			}
			if s.keys == nil {
				return *v, nil
			}
			if p, ok := opened[*v]; ok {
				return p, nil
			}
			p, err := s.keys.Decrypt(dom, *v)
			if err != nil {
				return "", fmt.Errorf("policydb: change log of tenant %s: %w", dom, err)
			}
			opened[*v] = p
			return p, nil
		}
		for _, r := range rows {
			rec := policy.ChangeRecord{Revision: r.Revision, Seq: r.Seq, Op: r.Op, At: time.UnixMicro(r.At).UTC()}
			for _, f := range []struct {
				dst *string
				v   *string
			}{{&rec.Role, r.Role}, {&rec.Permission, r.Permission}, {&rec.User, r.UserName}, {&rec.Parent, r.Parent}} {
				p, err := open(f.v)
				if err != nil {
					return err
				}
				*f.dst = p
			}
			if r.Description != nil {
				p, err := open(r.Description)
				if err != nil {
					return err
				}
				rec.Description = &p
			}
			if r.ExpiresAt != nil {
				e := time.UnixMicro(*r.ExpiresAt).UTC()
				rec.ExpiresAt = &e
			}
			b.Records = append(b.Records, rec)
		}
		return nil
	})
	return b, err
}

// PurgeChanges implements policy.Store. It also drops the ends of rules
// that no longer exist (removed by another program) once they are past.
func (s *Store) PurgeChanges(ctx context.Context, before time.Time) (int64, error) {
	cut := before.UnixMicro()
	var n int64
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`UPDATE tenants SET changes_floor = (
			SELECT MAX(revision) FROM policy_changes c WHERE c.tenant_id = tenants.id AND c.at < ?)
			WHERE id IN (SELECT tenant_id FROM policy_changes WHERE at < ?)`, cut, cut).Error; err != nil {
			return fmt.Errorf("raise change log floors: %w", err)
		}
		res := tx.Exec("DELETE FROM policy_changes WHERE at < ?", cut)
		if res.Error != nil {
			return fmt.Errorf("purge change log: %w", res.Error)
		}
		n = res.RowsAffected
		if err := tx.Exec(`DELETE FROM rule_expiries WHERE expires_at <= ? AND NOT EXISTS (
			SELECT 1 FROM casbin_rule r WHERE r.ptype = rule_expiries.ptype AND r.v0 = rule_expiries.v0
			AND r.v1 = rule_expiries.v1 AND r.v2 = rule_expiries.v2)`, time.Now().UnixMicro()).Error; err != nil {
			return fmt.Errorf("drop ends of removed rules: %w", err)
		}
		return nil
	})
	return n, err
}

// DueExpiries implements policy.Store: the rules still in casbin_rule whose
// end is at or before now, earliest first, names in clear.
func (s *Store) DueExpiries(ctx context.Context, now time.Time, limit int) ([]policy.DueExpiry, error) {
	var rows []struct {
		TenantID  int64  `gorm:"column:tenant_id"`
		Ptype     string `gorm:"column:ptype"`
		V0        string `gorm:"column:v0"`
		V1        string `gorm:"column:v1"`
		V2        string `gorm:"column:v2"`
		ExpiresAt int64  `gorm:"column:expires_at"`
		KeyHash   string `gorm:"column:key_hash"`
	}
	err := s.db.Gorm().WithContext(ctx).Raw(`SELECT e.tenant_id, e.ptype, e.v0, e.v1, e.v2, e.expires_at, t.key_hash
		FROM rule_expiries e JOIN tenants t ON t.id = e.tenant_id
		WHERE e.expires_at <= ? AND EXISTS (SELECT 1 FROM casbin_rule r
			WHERE r.ptype = e.ptype AND r.v0 = e.v0 AND r.v1 = e.v1 AND r.v2 = e.v2)
		ORDER BY e.expires_at LIMIT ?`, now.UnixMicro(), limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read ended rules: %w", err)
	}
	out := make([]policy.DueExpiry, 0, len(rows))
	for _, r := range rows {
		rule, err := s.openExpiry(expiryRow{TenantID: r.TenantID, Ptype: r.Ptype, V0: r.V0, V1: r.V1, V2: r.V2, ExpiresAt: r.ExpiresAt})
		if err != nil {
			return nil, err
		}
		out = append(out, policy.DueExpiry{TenantID: r.TenantID, Tenant: policy.KeyHash(r.KeyHash), Expiry: rule})
	}
	return out, nil
}

// openExpiry returns a stored expiry with its rule's names in clear.
func (s *Store) openExpiry(r expiryRow) (policy.Expiry, error) {
	if r.Ptype != "p" && r.Ptype != "g" {
		return policy.Expiry{}, fmt.Errorf("policydb: rule expiry of unknown type %q", r.Ptype)
	}
	rule := []string{r.V0, r.V1, r.V2}
	sec := r.Ptype[:1]
	if s.keys != nil {
		dom := rule[domainField(sec)]
		for i, v := range rule {
			if !sealed(sec, i) || v == "" {
				continue
			}
			p, err := s.keys.Decrypt(dom, v)
			if err != nil {
				return policy.Expiry{}, fmt.Errorf("policydb: rule expiry of tenant %s: %w", dom, err)
			}
			rule[i] = p
		}
	}
	return policy.Expiry{Ptype: r.Ptype, Rule: rule, At: time.UnixMicro(r.ExpiresAt).UTC()}, nil
}
