package workflowdb

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// rekeyBatch is how many rows Rekey re-encrypts per transaction.
const rekeyBatch = 500

// Rekey re-encrypts every stored workflow value (names, permissions,
// descriptions, webhook URLs, secrets, and the user lists of runs) to the
// current key, in batches, each in its own transaction, and returns how
// many rows it changed. clearText says that the database is being
// encrypted from clear text: a clear value is then taken for the value;
// otherwise a value that does not decrypt stops it (fail closed). It is a
// policydb.RekeyPass: `auth-server rekey` runs it with the policy's rekey,
// before the key-check record is written. Run again, it resumes.
//
// Should one workflow be stored under two keys (written during a rotation
// by a server that did not know the current key), the oldest row is kept
// and the other deleted with its runs.
func (s *Store) Rekey(ctx context.Context, clearText bool) (int, error) {
	if s.keys == nil {
		return 0, errors.New("workflowdb: rekey needs encryption keys")
	}
	n, err := rekeyTable(ctx, s, "workflows", func(q *gorm.DB) *gorm.DB { return q },
		func(r workflowRow) int64 { return r.ID },
		func(tx *gorm.DB, rows []workflowRow) (int, error) { return s.rekeyWorkflows(tx, rows, clearText) })
	if err != nil {
		return n, err
	}
	m, err := rekeyTable(ctx, s, "workflow runs", func(q *gorm.DB) *gorm.DB { return q.Select("id, tenant_id, users, added, removed") },
		func(r runRow) int64 { return r.ID },
		func(tx *gorm.DB, rows []runRow) (int, error) { return s.rekeyRuns(tx, rows, clearText) })
	return n + m, err
}

// rekeyTable re-encrypts one table: rows of at most rekeyBatch, read in id
// order (with the columns cols selects) after the last batch's, each batch
// rekeyed in a transaction of its own. It returns how many rows changed.
func rekeyTable[R any](ctx context.Context, s *Store, what string, cols func(*gorm.DB) *gorm.DB, id func(R) int64,
	rekey func(tx *gorm.DB, rows []R) (int, error)) (int, error) {
	changed := 0
	for last := int64(0); ; {
		var rows []R
		if err := cols(s.db.Gorm().WithContext(ctx)).Where("id > ?", last).Order("id").Limit(rekeyBatch).Find(&rows).Error; err != nil {
			return changed, fmt.Errorf("read %s: %w", what, err)
		}
		if len(rows) == 0 {
			return changed, nil
		}
		last = id(rows[len(rows)-1])
		n := 0
		if err := s.db.InTx(ctx, func(tx *gorm.DB) error {
			var err error
			n, err = rekey(tx, rows)
			return err
		}); err != nil {
			return changed, err
		}
		changed += n
	}
}

// maxRekeyTries bounds how often a row changed by a server meanwhile is
// read again and re-encrypted.
const maxRekeyTries = 10

// column is a sealed column's name and stored value (nil: NULL).
type column struct {
	name string
	v    *string
}

// reseal returns the new values of the columns not under the current key,
// and the condition (with its arguments) that the row still holds the
// values they were made from: the update is a compare-and-swap, so that a
// value a server writes meanwhile is not overwritten with an older one.
func (s *Store) reseal(tenantID, id int64, cols []column, clearText bool) (map[string]any, string, []any, error) {
	set := map[string]any{}
	cond, args := "id = ?", []any{id}
	for _, c := range cols {
		if c.v == nil {
			continue
		}
		out, ch, err := s.keys.Reseal(dom(tenantID), *c.v, clearText)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", c.name, err)
		}
		if ch {
			set[c.name] = out
			cond += " AND " + c.name + " = ?"
			args = append(args, *c.v)
		}
	}
	return set, cond, args, nil
}

func workflowColumns(r workflowRow) []column {
	return []column{{"name", &r.Name}, {"permission", &r.Permission}, {"secret", &r.Secret},
		{"webhook_url", r.WebhookURL}, {"description", r.Description}, {"previous_secret", r.PreviousSecret}}
}

func runColumns(r runRow) []column {
	return []column{{"users", &r.Users}, {"added", &r.Added}, {"removed", &r.Removed}}
}

func (s *Store) rekeyWorkflows(tx *gorm.DB, rows []workflowRow, clearText bool) (int, error) {
	n := 0
	merged := false
	for _, r := range rows {
		for try := 0; ; try++ {
			if try == maxRekeyTries {
				return 0, fmt.Errorf("workflows id %d: changed %d times while being re-encrypted", r.ID, try)
			}
			if try > 0 {
				var fresh []workflowRow
				if err := tx.Where("id = ?", r.ID).Limit(1).Find(&fresh).Error; err != nil {
					return 0, fmt.Errorf("workflows id %d: %w", r.ID, err)
				}
				if len(fresh) == 0 {
					break // deleted meanwhile
				}
				r = fresh[0]
			}
			set, cond, args, err := s.reseal(r.TenantID, r.ID, workflowColumns(r), clearText)
			if err != nil {
				return 0, fmt.Errorf("workflows id %d %w", r.ID, err)
			}
			if len(set) == 0 {
				break
			}
			if name, ok := set["name"]; ok {
				gone, dropped, err := dropDuplicates(tx, r, name)
				if err != nil {
					return 0, err
				}
				n += dropped
				merged = merged || dropped > 0
				if gone {
					break
				}
			}
			res := tx.Model(&workflowRow{}).Where(cond, args...).Updates(set)
			if res.Error != nil {
				return 0, fmt.Errorf("workflows id %d: %w", r.ID, res.Error)
			}
			if res.RowsAffected == 1 {
				n++
				break
			}
		}
	}
	if merged {
		// The deleted duplicates leave the registry.
		if err := bumpRegistry(tx); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// dropDuplicates deletes, when r's name under the current key (name) is
// also another row's of the tenant, the younger of the two (with its
// runs). gone says that it was r; dropped counts the rows deleted.
func dropDuplicates(tx *gorm.DB, r workflowRow, name any) (gone bool, dropped int, err error) {
	var dups []int64
	if err := tx.Model(&workflowRow{}).Where("tenant_id = ? AND name = ? AND id <> ?", r.TenantID, name, r.ID).
		Order("id").Pluck("id", &dups).Error; err != nil {
		return false, 0, fmt.Errorf("workflows id %d: %w", r.ID, err)
	}
	switch {
	case len(dups) == 0:
		return false, 0, nil
	case dups[0] < r.ID:
		if err := tx.Delete(&workflowRow{}, r.ID).Error; err != nil {
			return false, 0, fmt.Errorf("workflows id %d: %w", r.ID, err)
		}
		return true, 1, nil
	default:
		if err := tx.Delete(&workflowRow{}, dups).Error; err != nil {
			return false, 0, fmt.Errorf("workflows id %d: %w", r.ID, err)
		}
		return false, len(dups), nil
	}
}

func (s *Store) rekeyRuns(tx *gorm.DB, rows []runRow, clearText bool) (int, error) {
	n := 0
	for _, r := range rows {
		for try := 0; ; try++ {
			if try == maxRekeyTries {
				return 0, fmt.Errorf("workflow_runs id %d: changed %d times while being re-encrypted", r.ID, try)
			}
			if try > 0 {
				var fresh []runRow
				if err := tx.Select("id, tenant_id, users, added, removed").Where("id = ?", r.ID).Limit(1).Find(&fresh).Error; err != nil {
					return 0, fmt.Errorf("workflow_runs id %d: %w", r.ID, err)
				}
				if len(fresh) == 0 {
					break // deleted meanwhile, with its workflow
				}
				r = fresh[0]
			}
			set, cond, args, err := s.reseal(r.TenantID, r.ID, runColumns(r), clearText)
			if err != nil {
				return 0, fmt.Errorf("workflow_runs id %d %w", r.ID, err)
			}
			if len(set) == 0 {
				break
			}
			res := tx.Model(&runRow{}).Where(cond, args...).Updates(set)
			if res.Error != nil {
				return 0, fmt.Errorf("workflow_runs id %d: %w", r.ID, res.Error)
			}
			if res.RowsAffected == 1 {
				n++
				break
			}
		}
	}
	return n, nil
}
