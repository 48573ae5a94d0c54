// Package workflowdb stores the workflow registry and the workflows' runs
// with gorm, in the service's database (tables workflows, workflow_runs
// and workflow_registry; see internal/sqldb's migration 0007). It
// implements workflow.Store.
//
// With field encryption on, a workflow's name, permission, description,
// webhook URL and secrets, and a run's user lists, are stored encrypted
// under the tenant's key, deterministically (as role names are in
// policy/policydb), so that a workflow is still found by its name.
//
// Times are stored as UTC to the microsecond (PostgreSQL's precision): a
// run's scheduled time is the key of its slot and must read back equal.
package workflowdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/workflow"
)

// Store is the gorm implementation of workflow.Store.
type Store struct {
	db   *sqldb.DB
	keys *fieldcrypt.Keyring // nil: values are stored in clear
}

var _ workflow.Store = (*Store)(nil)

// New returns a Store over an open, migrated database.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// WithEncryption returns a Store that encrypts names, user lists and
// secrets with keys (see internal/fieldcrypt).
func (s *Store) WithEncryption(keys *fieldcrypt.Keyring) *Store {
	return &Store{db: s.db, keys: keys}
}

type workflowRow struct {
	ID             int64      `gorm:"column:id;primaryKey"`
	TenantID       int64      `gorm:"column:tenant_id"`
	Name           string     `gorm:"column:name"`
	Permission     string     `gorm:"column:permission"`
	Schedule       string     `gorm:"column:schedule"`
	WebhookURL     *string    `gorm:"column:webhook_url"`
	Description    *string    `gorm:"column:description"`
	Enabled        bool       `gorm:"column:enabled"`
	Notify         string     `gorm:"column:notify"`
	CatchUp        bool       `gorm:"column:catch_up"`
	Secret         string     `gorm:"column:secret"`
	PreviousSecret *string    `gorm:"column:previous_secret"`
	PreviousUntil  *time.Time `gorm:"column:previous_until"`
	Revision       int64      `gorm:"column:revision"`
	CreatedAt      time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt      time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (workflowRow) TableName() string { return "workflows" }

// stamp is t as stored: UTC, to the microsecond.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// now is the current time as stored.
func now() time.Time { return stamp(time.Now()) }

// dom is the encryption domain of a tenant's values (as in policydb).
func dom(tenantID int64) string { return fmt.Sprint(tenantID) }

// seal returns v as stored for the tenant.
func (s *Store) seal(tenantID int64, v string) (string, error) {
	if s.keys == nil {
		return v, nil
	}
	return s.keys.Encrypt(dom(tenantID), v)
}

// sealPtr seals *v; nil stays nil.
func (s *Store) sealPtr(tenantID int64, v *string) (*string, error) {
	if v == nil {
		return nil, nil
	}
	out, err := s.seal(tenantID, *v)
	return &out, err
}

// open returns the clear value of a tenant's stored v. It fails closed.
func (s *Store) open(tenantID int64, v string) (string, error) {
	if s.keys == nil {
		return v, nil
	}
	return s.keys.Decrypt(dom(tenantID), v)
}

// forms returns the stored forms a tenant's value may have: itself, or its
// ciphertext under every configured key (current first).
func (s *Store) forms(tenantID int64, v string) ([]string, error) {
	if s.keys == nil {
		return []string{v}, nil
	}
	return s.keys.Variants(dom(tenantID), v)
}

// tenantID returns the id of the tenant with handle.
func tenantID(g *gorm.DB, handle policy.KeyHash) (int64, bool, error) {
	var ids []int64
	if err := g.Raw("SELECT id FROM tenants WHERE key_hash = ?", string(handle)).Scan(&ids).Error; err != nil {
		return 0, false, fmt.Errorf("find tenant: %w", err)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// find returns the tenant's workflow name (the oldest row, should it be
// stored under two keys during a key rotation).
func (s *Store) find(g *gorm.DB, tenantID int64, name string) (workflowRow, bool, error) {
	forms, err := s.forms(tenantID, name)
	if err != nil {
		return workflowRow{}, false, err
	}
	var rows []workflowRow
	if err := g.Where("tenant_id = ? AND name IN ?", tenantID, forms).Order("id").Limit(1).Find(&rows).Error; err != nil {
		return workflowRow{}, false, fmt.Errorf("find workflow: %w", err)
	}
	if len(rows) == 0 {
		return workflowRow{}, false, nil
	}
	return rows[0], true, nil
}

// stored returns the row as a workflow of the tenant with handle, its
// values decrypted.
func (s *Store) stored(r workflowRow, handle policy.KeyHash) (workflow.Stored, error) {
	w := workflow.Stored{
		Definition: workflow.Definition{
			Schedule: r.Schedule,
			Enabled:  r.Enabled,
			Notify:   workflow.Notify(r.Notify),
			CatchUp:  r.CatchUp,
		},
		ID:        r.ID,
		TenantID:  r.TenantID,
		Tenant:    handle,
		Revision:  r.Revision,
		CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC(),
	}
	var err error
	if w.Name, err = s.open(r.TenantID, r.Name); err != nil {
		return w, fmt.Errorf("workflow %d name: %w", r.ID, err)
	}
	if w.Permission, err = s.open(r.TenantID, r.Permission); err != nil {
		return w, fmt.Errorf("workflow %d permission: %w", r.ID, err)
	}
	if r.WebhookURL != nil {
		if w.WebhookURL, err = s.open(r.TenantID, *r.WebhookURL); err != nil {
			return w, fmt.Errorf("workflow %d webhook_url: %w", r.ID, err)
		}
	}
	if r.Description != nil {
		d, err := s.open(r.TenantID, *r.Description)
		if err != nil {
			return w, fmt.Errorf("workflow %d description: %w", r.ID, err)
		}
		w.Description = &d
	}
	return w, nil
}

// bumpRegistry bumps the registry version. Being the first write of a
// registry change, it also queues concurrent registry writes (PostgreSQL
// row lock; SQLite has one writer).
func bumpRegistry(tx *gorm.DB) error {
	if err := tx.Exec("UPDATE workflow_registry SET version = version + 1 WHERE id = 1").Error; err != nil {
		return fmt.Errorf("bump workflow registry version: %w", err)
	}
	return nil
}

// PutWorkflow implements workflow.Store. The registry version is bumped
// first: it serialises registry writes, so that of two concurrent creations
// of one workflow the second one finds the first and replaces it.
func (s *Store) PutWorkflow(ctx context.Context, tenant policy.KeyHash, d workflow.Definition, secret string) (workflow.Stored, bool, error) {
	if d.Permission == "" {
		d.Permission = d.Name
	}
	if d.Notify == "" {
		d.Notify = workflow.NotifyChanges
	}
	var (
		out     workflow.Stored
		created bool
	)
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		id, ok, err := tenantID(tx, tenant)
		if err != nil {
			return err
		}
		if !ok {
			return workflow.ErrNoTenant
		}
		if err := bumpRegistry(tx); err != nil {
			return err
		}
		cur, found, err := s.find(tx, id, d.Name)
		if err != nil {
			return err
		}
		perm, err := s.seal(id, d.Permission)
		if err != nil {
			return err
		}
		desc, err := s.sealPtr(id, d.Description)
		if err != nil {
			return err
		}
		var hook *string
		if d.WebhookURL != "" {
			if hook, err = s.sealPtr(id, &d.WebhookURL); err != nil {
				return err
			}
		}
		at := now()
		if found {
			if err := tx.Model(&workflowRow{}).Where("id = ?", cur.ID).Updates(map[string]any{
				"permission": perm, "schedule": d.Schedule, "webhook_url": hook, "description": desc,
				"enabled": d.Enabled, "notify": string(d.Notify), "catch_up": d.CatchUp,
				"revision": gorm.Expr("revision + 1"), "updated_at": at,
			}).Error; err != nil {
				return fmt.Errorf("replace workflow: %w", err)
			}
			if err := tx.Where("id = ?", cur.ID).Take(&cur).Error; err != nil {
				return fmt.Errorf("read workflow: %w", err)
			}
		} else {
			name, err := s.seal(id, d.Name)
			if err != nil {
				return err
			}
			sec, err := s.seal(id, secret)
			if err != nil {
				return err
			}
			cur = workflowRow{TenantID: id, Name: name, Permission: perm, Schedule: d.Schedule, WebhookURL: hook,
				Description: desc, Enabled: d.Enabled, Notify: string(d.Notify), CatchUp: d.CatchUp, Secret: sec,
				Revision: 1, CreatedAt: at, UpdatedAt: at}
			if err := tx.Create(&cur).Error; err != nil {
				return fmt.Errorf("create workflow: %w", err)
			}
			created = true
		}
		out, err = s.stored(cur, tenant)
		return err
	})
	if err != nil {
		return workflow.Stored{}, false, err
	}
	return out, created, nil
}

// GetWorkflow implements workflow.Store.
func (s *Store) GetWorkflow(ctx context.Context, tenant policy.KeyHash, name string) (workflow.Stored, bool, error) {
	g := s.db.Gorm().WithContext(ctx)
	id, ok, err := tenantID(g, tenant)
	if err != nil || !ok {
		return workflow.Stored{}, false, err
	}
	row, ok, err := s.find(g, id, name)
	if err != nil || !ok {
		return workflow.Stored{}, false, err
	}
	w, err := s.stored(row, tenant)
	if err != nil {
		return workflow.Stored{}, false, err
	}
	return w, true, nil
}

// ListWorkflows implements workflow.Store. Names sort by their bytes on
// both databases. Encrypted names are sorted after decryption, so the
// tenant's workflows are all read then.
func (s *Store) ListWorkflows(ctx context.Context, tenant policy.KeyHash, after string, limit int) ([]workflow.Stored, error) {
	g := s.db.Gorm().WithContext(ctx)
	id, ok, err := tenantID(g, tenant)
	if err != nil || !ok {
		return nil, err
	}
	q := g.Where("tenant_id = ?", id)
	if s.keys == nil {
		name := "name"
		if s.db.Dialect() == sqldb.Postgres {
			name = `name COLLATE "C"`
		}
		if after != "" {
			q = q.Where(name+" > ?", after)
		}
		q = q.Order(name)
		if limit > 0 {
			q = q.Limit(limit)
		}
	} else {
		q = q.Order("id")
	}
	var rows []workflowRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	out, err := s.storedAll(rows, func(workflowRow) policy.KeyHash { return tenant })
	if err != nil {
		return nil, err
	}
	if s.keys == nil {
		return out, nil
	}
	slices.SortStableFunc(out, func(a, b workflow.Stored) int { return cmp.Compare(a.Name, b.Name) })
	out = slices.DeleteFunc(out, func(w workflow.Stored) bool { return w.Name <= after })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// storedAll decrypts rows read in id order, keeping the oldest row of a
// workflow stored under two keys during a key rotation.
func (s *Store) storedAll(rows []workflowRow, handle func(workflowRow) policy.KeyHash) ([]workflow.Stored, error) {
	out := make([]workflow.Stored, 0, len(rows))
	type key struct {
		tenant int64
		name   string
	}
	seen := map[key]bool{}
	for _, r := range rows {
		w, err := s.stored(r, handle(r))
		if err != nil {
			return nil, err
		}
		if k := (key{r.TenantID, w.Name}); s.keys != nil {
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, w)
	}
	return out, nil
}

// DeleteWorkflow implements workflow.Store: the workflow's runs go with it
// (ON DELETE CASCADE).
func (s *Store) DeleteWorkflow(ctx context.Context, tenant policy.KeyHash, name string) (bool, error) {
	deleted := false
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		id, ok, err := tenantID(tx, tenant)
		if err != nil || !ok {
			return err
		}
		forms, err := s.forms(id, name)
		if err != nil {
			return err
		}
		res := tx.Where("tenant_id = ? AND name IN ?", id, forms).Delete(&workflowRow{})
		if res.Error != nil {
			return fmt.Errorf("delete workflow: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		deleted = true
		return bumpRegistry(tx)
	})
	return deleted, err
}

// RotateSecret implements workflow.Store. It is not a registry change:
// the registry version stays.
func (s *Store) RotateSecret(ctx context.Context, tenant policy.KeyHash, name, secret string, previousUntil time.Time) (bool, error) {
	found := false
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		id, ok, err := tenantID(tx, tenant)
		if err != nil || !ok {
			return err
		}
		cur, ok, err := s.find(tx, id, name)
		if err != nil || !ok {
			return err
		}
		sec, err := s.seal(id, secret)
		if err != nil {
			return err
		}
		set := map[string]any{"secret": sec, "previous_secret": nil, "previous_until": nil}
		if previousUntil.After(time.Now()) {
			// The current secret's stored form is valid as it is.
			set["previous_secret"], set["previous_until"] = cur.Secret, stamp(previousUntil)
		}
		if err := tx.Model(&workflowRow{}).Where("id = ?", cur.ID).Updates(set).Error; err != nil {
			return fmt.Errorf("rotate workflow secret: %w", err)
		}
		found = true
		return nil
	})
	return found, err
}

// Secrets implements workflow.Store.
func (s *Store) Secrets(ctx context.Context, workflowID int64) (workflow.Secrets, error) {
	var rows []workflowRow
	if err := s.db.Gorm().WithContext(ctx).Where("id = ?", workflowID).Limit(1).Find(&rows).Error; err != nil {
		return workflow.Secrets{}, fmt.Errorf("read workflow secrets: %w", err)
	}
	if len(rows) == 0 {
		return workflow.Secrets{}, fmt.Errorf("read workflow secrets: workflow %d does not exist", workflowID)
	}
	r := rows[0]
	var out workflow.Secrets
	var err error
	if out.Current, err = s.open(r.TenantID, r.Secret); err != nil {
		return workflow.Secrets{}, fmt.Errorf("workflow %d secret: %w", r.ID, err)
	}
	if r.PreviousSecret != nil {
		if out.Previous, err = s.open(r.TenantID, *r.PreviousSecret); err != nil {
			return workflow.Secrets{}, fmt.Errorf("workflow %d previous secret: %w", r.ID, err)
		}
		if r.PreviousUntil != nil {
			out.PreviousUntil = r.PreviousUntil.UTC()
		}
	}
	return out, nil
}

// RegistryVersion implements workflow.Store.
func (s *Store) RegistryVersion(ctx context.Context) (int64, error) {
	var v []int64
	if err := s.db.Gorm().WithContext(ctx).Raw("SELECT version FROM workflow_registry WHERE id = 1").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("read workflow registry version: %w", err)
	}
	if len(v) == 0 {
		return 0, errors.New("read workflow registry version: the registry row is missing")
	}
	return v[0], nil
}

// EnabledWorkflows implements workflow.Store, in the order of tenants and
// then of creation.
func (s *Store) EnabledWorkflows(ctx context.Context) ([]workflow.Stored, error) {
	var rows []struct {
		Row    workflowRow `gorm:"embedded"`
		Handle string      `gorm:"column:handle"`
	}
	if err := s.db.Gorm().WithContext(ctx).Table("workflows w").Select("w.*, t.key_hash AS handle").
		Joins("JOIN tenants t ON t.id = w.tenant_id").Where("w.enabled = ?", true).
		Order("w.tenant_id, w.id").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("list enabled workflows: %w", err)
	}
	plain := make([]workflowRow, len(rows))
	handles := make(map[int64]policy.KeyHash, len(rows))
	for i, r := range rows {
		plain[i] = r.Row
		handles[r.Row.ID] = policy.KeyHash(r.Handle)
	}
	return s.storedAll(plain, func(r workflowRow) policy.KeyHash { return handles[r.ID] })
}
