package policydb

import (
	"context"
	"errors"
	"fmt"

	gormadapter "github.com/casbin/gorm-adapter/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The key-check record: a known value encrypted under the key the data is
// encrypted with, so that a wrong key is caught at start, not on a load.
const (
	keyCheckName   = "encryption_check"
	keyCheckTenant = "key-check"
	keyCheckValue  = "auth-encryption-check-v1"
	// migratingName marks a clear-text database that rekey has started to
	// encrypt: from the first encrypted row until the key-check record is
	// written (in the same transaction as the marker goes).
	migratingName = "encryption_migration"
)

// Errors of the encryption checks.
var (
	// ErrWrongKey: the database was encrypted under a key that is not
	// configured.
	ErrWrongKey = errors.New("ENCRYPTION_KEY does not match the key this database was encrypted with " +
		"(set ENCRYPTION_KEY_PREVIOUS to the old key while `auth-server rekey` re-encrypts)")
	// ErrEncryptedDatabase: encryption is off but the database is encrypted.
	ErrEncryptedDatabase = errors.New("the database holds encrypted names: set ENABLE_ENCRYPTION=true and its ENCRYPTION_KEY")
	// ErrClearDatabase: encryption is on but the database holds clear names.
	ErrClearDatabase = errors.New("the database holds clear-text names: run `auth-server rekey` to encrypt them " +
		"before starting with ENABLE_ENCRYPTION=true")
	// ErrMigrating: encryption is off but an unfinished rekey has encrypted
	// part of a clear-text database.
	ErrMigrating = errors.New("the database is partly encrypted (an `auth-server rekey` stopped before it finished): " +
		"run `auth-server rekey` again with ENABLE_ENCRYPTION=true and ENCRYPTION_KEY to finish it")
)

type settingRow struct {
	Name  string `gorm:"column:name;primaryKey"`
	Value string `gorm:"column:value"`
}

func (settingRow) TableName() string { return "settings" }

func (s *Store) keyCheck(ctx context.Context) (string, bool, error) {
	return s.setting(ctx, keyCheckName)
}

func (s *Store) setting(ctx context.Context, name string) (string, bool, error) {
	var row settingRow
	err := s.db.Gorm().WithContext(ctx).Where("name = ?", name).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", name, err)
	}
	return row.Value, true, nil
}

// writeKeyCheck records that the database is encrypted under the current
// key (which ends a migration from clear text).
func (s *Store) writeKeyCheck(tx *gorm.DB) error {
	v, err := s.keys.Encrypt(keyCheckTenant, keyCheckValue)
	if err != nil {
		return err
	}
	if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoUpdates: clause.AssignmentColumns([]string{"value"})}).
		Create(&settingRow{Name: keyCheckName, Value: v}).Error; err != nil {
		return err
	}
	return tx.Where("name = ?", migratingName).Delete(&settingRow{}).Error
}

// CheckEncryption makes sure the database and the configured encryption
// agree before the service starts: with encryption off the database must
// not be encrypted; with it on, the key must open the database's key-check
// record, and a database without one must be empty (it then gets one).
func (s *Store) CheckEncryption(ctx context.Context) error {
	v, found, err := s.keyCheck(ctx)
	if err != nil {
		return err
	}
	if s.keys == nil {
		if found {
			return ErrEncryptedDatabase
		}
		if _, migrating, err := s.setting(ctx, migratingName); err != nil {
			return err
		} else if migrating {
			return ErrMigrating
		}
		return nil
	}
	if found {
		if p, err := s.keys.Decrypt(keyCheckTenant, v); err != nil || p != keyCheckValue {
			return ErrWrongKey
		}
		return nil
	}
	return s.db.InTx(ctx, func(tx *gorm.DB) error {
		var n int64
		// Workflow names are stored encrypted too (workflow/workflowdb).
		for _, table := range []string{"casbin_rule", "roles", "workflows"} {
			var c int64
			if err := tx.Table(table).Count(&c).Error; err != nil {
				return err
			}
			n += c
		}
		if n > 0 {
			return ErrClearDatabase
		}
		return s.writeKeyCheck(tx)
	})
}

// RekeyStats counts what Rekey changed.
type RekeyStats struct {
	Rules, Roles, Merged int
	// Changes counts the rows of the change log and of the ends of
	// time-bound rules re-sealed.
	Changes int
	// Other counts the rows the passes (RekeyPass) changed.
	Other int
}

// A RekeyPass re-encrypts values stored outside the policy tables (the
// workflow registry, say) as part of Rekey, after the rules and roles and
// before the key-check record is written. clearText is true while a
// clear-text database is being encrypted: a clear value is then a value to
// encrypt, and otherwise an error. It returns how many rows it changed,
// and must be safe to run again after an interruption.
type RekeyPass func(ctx context.Context, clearText bool) (int, error)

// Rekey re-encrypts every stored name to the current key, in batches of
// batch rows, each batch in its own transaction: it can run while servers
// are serving (they read every configured key) and, if interrupted, simply
// be run again. The names of a clear-text database (one that had
// encryption off: it has no key-check record) are encrypted too; in an
// encrypted database a clear-text name is not taken for a name but, like
// any value that does not decrypt, stops rekey (fail closed). The passes
// run after the rules and roles, in order; progress is called after a pass
// that changed rows.
func (s *Store) Rekey(ctx context.Context, batch int, progress func(RekeyStats), passes ...RekeyPass) (RekeyStats, error) {
	var st RekeyStats
	if s.keys == nil {
		return st, errors.New("rekey needs ENABLE_ENCRYPTION=true and ENCRYPTION_KEY")
	}
	v, found, err := s.keyCheck(ctx)
	if err != nil {
		return st, err
	}
	if found {
		if _, err := s.keys.Decrypt(keyCheckTenant, v); err != nil {
			return st, ErrWrongKey
		}
	} else {
		// Mark the database before its first name is encrypted, so that a
		// server with encryption off refuses it until rekey has finished.
		if err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			return tx.Clauses(clause.OnConflict{DoNothing: true}).
				Create(&settingRow{Name: migratingName, Value: s.keys.CurrentID()}).Error
		}); err != nil {
			return st, fmt.Errorf("mark the migration: %w", err)
		}
	}
	clearText := !found
	if batch <= 0 {
		batch = 500
	}
	for last := int64(0); ; {
		var rows []gormadapter.CasbinRule
		if err := s.db.Gorm().WithContext(ctx).Where("id > ?", last).Order("id").Limit(batch).Find(&rows).Error; err != nil {
			return st, err
		}
		if len(rows) == 0 {
			break
		}
		last = int64(rows[len(rows)-1].ID)
		// Re-encrypted rules are the same rules: not a change for the
		// rule triggers.
		if err := s.db.InOwnTx(ctx, func(tx *gorm.DB) error { return s.rekeyRules(tx, rows, clearText, &st) }); err != nil {
			return st, err
		}
		if progress != nil {
			progress(st)
		}
	}
	for last := int64(0); ; {
		var rows []roleRow
		if err := s.db.Gorm().WithContext(ctx).Where("id > ?", last).Order("id").Limit(batch).Find(&rows).Error; err != nil {
			return st, err
		}
		if len(rows) == 0 {
			break
		}
		last = rows[len(rows)-1].ID
		if err := s.db.InTx(ctx, func(tx *gorm.DB) error { return s.rekeyRoles(tx, rows, clearText, &st) }); err != nil {
			return st, err
		}
		if progress != nil {
			progress(st)
		}
	}
	// The change log and the ends of time-bound rules, then the passes.
	run := func(passes []RekeyPass, count *int) error {
		for _, pass := range passes {
			n, err := pass(ctx, clearText)
			*count += n
			if err != nil {
				return err
			}
			if n > 0 && progress != nil {
				progress(st)
			}
		}
		return nil
	}
	if err := run([]RekeyPass{s.rekeyExpiries, s.rekeyChanges}, &st.Changes); err != nil {
		return st, err
	}
	if err := run(passes, &st.Other); err != nil {
		return st, err
	}
	return st, s.db.InTx(ctx, s.writeKeyCheck)
}

// reseal returns the rule field v encrypted under the current key ("", an
// absent field, stays as it is).
func (s *Store) reseal(dom, v string, clearText bool) (string, bool, error) {
	if v == "" {
		return v, false, nil
	}
	return s.resealValue(dom, v, clearText)
}

// resealValue returns v encrypted under the current key; changed is false
// when it already is. A clear-text v is taken for a name only if clearText
// (the database is being migrated from clear text). Unlike a rule field, an
// empty role description is a value, which the server will decrypt.
func (s *Store) resealValue(dom, v string, clearText bool) (string, bool, error) {
	return s.keys.Reseal(dom, v, clearText)
}

func (s *Store) rekeyRules(tx *gorm.DB, rows []gormadapter.CasbinRule, clearText bool, st *RekeyStats) error {
	for _, r := range rows {
		if r.Ptype == "" {
			continue
		}
		sec := r.Ptype[:1]
		fields := []*string{&r.V0, &r.V1, &r.V2, &r.V3, &r.V4, &r.V5}
		dom := *fields[domainField(sec)]
		changed := false
		for i, f := range fields {
			if !sealed(sec, i) {
				continue
			}
			nv, ch, err := s.reseal(dom, *f, clearText)
			if err != nil {
				return fmt.Errorf("casbin_rule id %d: %w", r.ID, err)
			}
			*f, changed = nv, changed || ch
		}
		if !changed {
			continue
		}
		// The same rule may already exist under the current key (written
		// by a server during the rotation). The oldest row is kept, so that
		// the rule keeps its place in the order rules load in.
		var dups []int64
		if err := tx.Model(&gormadapter.CasbinRule{}).Where(
			"ptype = ? AND v0 = ? AND v1 = ? AND v2 = ? AND v3 = ? AND v4 = ? AND v5 = ? AND id <> ?",
			r.Ptype, r.V0, r.V1, r.V2, r.V3, r.V4, r.V5, r.ID).Order("id").Pluck("id", &dups).Error; err != nil {
			return err
		}
		if len(dups) > 0 && dups[0] < int64(r.ID) {
			if err := tx.Delete(&gormadapter.CasbinRule{}, r.ID).Error; err != nil {
				return err
			}
			st.Merged++
			continue
		}
		if len(dups) > 0 {
			if err := tx.Delete(&gormadapter.CasbinRule{}, dups).Error; err != nil {
				return err
			}
			st.Merged += len(dups)
		}
		if err := tx.Model(&gormadapter.CasbinRule{}).Where("id = ?", r.ID).Updates(map[string]any{
			"v0": r.V0, "v1": r.V1, "v2": r.V2, "v3": r.V3, "v4": r.V4, "v5": r.V5}).Error; err != nil {
			return err
		}
		st.Rules++
	}
	return nil
}

func (s *Store) rekeyRoles(tx *gorm.DB, rows []roleRow, clearText bool, st *RekeyStats) error {
	for _, r := range rows {
		dom := fmt.Sprint(r.TenantID)
		name, ch1, err := s.resealValue(dom, r.Name, clearText)
		if err != nil {
			return fmt.Errorf("roles id %d: %w", r.ID, err)
		}
		desc := r.Description
		ch2 := false
		if desc != nil {
			d, ch, err := s.resealValue(dom, *desc, clearText)
			if err != nil {
				return fmt.Errorf("roles id %d description: %w", r.ID, err)
			}
			desc, ch2 = &d, ch
		}
		if !ch1 && !ch2 {
			continue
		}
		// As with rules, the oldest row of a role is kept: roles list in
		// the order they were created.
		var dups []int64
		if err := tx.Model(&roleRow{}).Where("tenant_id = ? AND name = ? AND id <> ?", r.TenantID, name, r.ID).
			Order("id").Pluck("id", &dups).Error; err != nil {
			return err
		}
		if len(dups) > 0 && dups[0] < r.ID {
			if err := tx.Delete(&roleRow{}, r.ID).Error; err != nil {
				return err
			}
			st.Merged++
			continue
		}
		if len(dups) > 0 {
			if err := tx.Delete(&roleRow{}, dups).Error; err != nil {
				return err
			}
			st.Merged += len(dups)
		}
		if err := tx.Model(&roleRow{}).Where("id = ?", r.ID).
			Updates(map[string]any{"name": name, "description": desc}).Error; err != nil {
			return err
		}
		st.Roles++
	}
	return nil
}

// rekeyExpiries re-seals the rule fields that key the ends of time-bound
// rules, as rekeyRules re-seals the rules themselves (a rule under two keys
// keeps the earlier end).
func (s *Store) rekeyExpiries(ctx context.Context, clearText bool) (int, error) {
	var rows []expiryRow
	if err := s.db.Gorm().WithContext(ctx).Order("tenant_id").Find(&rows).Error; err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rows {
		sec := r.Ptype[:1]
		dom := []string{r.V0, r.V1, r.V2}[domainField(sec)]
		nr := r
		changed := false
		for i, f := range []*string{&nr.V0, &nr.V1, &nr.V2} {
			if !sealed(sec, i) {
				continue
			}
			v, ch, err := s.reseal(dom, *f, clearText)
			if err != nil {
				return n, fmt.Errorf("rule_expiries of tenant %d: %w", r.TenantID, err)
			}
			*f, changed = v, changed || ch
		}
		if !changed {
			continue
		}
		err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			var existing []expiryRow
			if err := tx.Where("ptype = ? AND v0 = ? AND v1 = ? AND v2 = ?", nr.Ptype, nr.V0, nr.V1, nr.V2).Find(&existing).Error; err != nil {
				return err
			}
			for _, e := range existing {
				nr.ExpiresAt = min(nr.ExpiresAt, e.ExpiresAt)
			}
			if err := tx.Where("ptype = ? AND v0 = ? AND v1 = ? AND v2 = ?", nr.Ptype, nr.V0, nr.V1, nr.V2).Delete(&expiryRow{}).Error; err != nil {
				return err
			}
			if err := tx.Where("ptype = ? AND v0 = ? AND v1 = ? AND v2 = ?", r.Ptype, r.V0, r.V1, r.V2).Delete(&expiryRow{}).Error; err != nil {
				return err
			}
			return tx.Create(&nr).Error
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// rekeyChanges re-seals the names of the change log, in batches.
func (s *Store) rekeyChanges(ctx context.Context, clearText bool) (int, error) {
	n := 0
	var last changeRow
	for first := true; ; first = false {
		var rows []changeRow
		q := s.db.Gorm().WithContext(ctx)
		if !first {
			q = q.Where("tenant_id > ? OR (tenant_id = ? AND (revision > ? OR (revision = ? AND seq > ?)))",
				last.TenantID, last.TenantID, last.Revision, last.Revision, last.Seq)
		}
		if err := q.Order("tenant_id").Order("revision").Order("seq").Limit(500).Find(&rows).Error; err != nil {
			return n, err
		}
		if len(rows) == 0 {
			return n, nil
		}
		last = rows[len(rows)-1]
		err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			for _, r := range rows {
				dom := fmt.Sprint(r.TenantID)
				changed := false
				for _, f := range []**string{&r.Role, &r.Permission, &r.UserName, &r.Parent, &r.Description} {
					if *f == nil {
						continue
					}
					v, ch, err := s.resealValue(dom, **f, clearText)
					if err != nil {
						return fmt.Errorf("policy_changes of tenant %d revision %d: %w", r.TenantID, r.Revision, err)
					}
					if ch {
						*f, changed = &v, true
					}
				}
				if !changed {
					continue
				}
				if err := tx.Model(&changeRow{}).Where("tenant_id = ? AND revision = ? AND seq = ?", r.TenantID, r.Revision, r.Seq).
					Updates(map[string]any{"role": r.Role, "permission": r.Permission, "user_name": r.UserName,
						"parent": r.Parent, "description": r.Description}).Error; err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
}
