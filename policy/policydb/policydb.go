// Package policydb stores the policy core's state with gorm: Casbin rules in
// the casbin_rule table through gorm-adapter, tenants and roles in tables of
// their own. It implements policy.Store.
package policydb

import (
	"context"
	"errors"
	"fmt"
	"time"

	gormadapter "github.com/casbin/gorm-adapter/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// Store is the gorm implementation of policy.Store.
type Store struct {
	db   *sqldb.DB
	keys *fieldcrypt.Keyring // nil: names are stored in clear
}

var (
	_ policy.Store = (*Store)(nil)
	_ policy.Tx    = (*tx)(nil)
)

// New returns a Store over an open, migrated database.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// WithEncryption makes the store encrypt user, role and permission names and
// role descriptions with keys (see internal/fieldcrypt).
func (s *Store) WithEncryption(keys *fieldcrypt.Keyring) *Store {
	return &Store{db: s.db, keys: keys}
}

type tenantRow struct {
	ID            int64     `gorm:"column:id;primaryKey"`
	KeyHash       string    `gorm:"column:key_hash"`
	PolicyVersion int64     `gorm:"column:policy_version"`
	CreatedAt     time.Time `gorm:"column:created_at"`
}

func (tenantRow) TableName() string { return "tenants" }

type roleRow struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	TenantID    int64     `gorm:"column:tenant_id"`
	Name        string    `gorm:"column:name"`
	Description *string   `gorm:"column:description"`
	CreatedAt   time.Time `gorm:"column:created_at"`
}

func (roleRow) TableName() string { return "roles" }

// adapter returns a gorm-adapter bound to db (a transaction or the pool),
// with its own migration switched off: the schema is ours.
func adapter(db *gorm.DB) (*gormadapter.Adapter, error) {
	d := db.Session(&gorm.Session{})
	gormadapter.TurnOffAutoMigrate(d)
	return gormadapter.NewAdapterByDB(d)
}

// FindTenant implements policy.Store.
func (s *Store) FindTenant(ctx context.Context, key policy.KeyHash) (int64, bool, error) {
	var row tenantRow
	err := s.db.Gorm().WithContext(ctx).Where("key_hash = ?", string(key)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("find tenant: %w", err)
	}
	return row.ID, true, nil
}

// Change implements policy.Store. The transaction is the service's own
// (sqldb.InOwnTxContext): the rule triggers, which note changes made by
// other programs, leave it alone, since it bumps the version itself.
func (s *Store) Change(ctx context.Context, fn func(ctx context.Context, tx policy.Tx) error) error {
	return s.db.InOwnTxContext(ctx, func(ctx context.Context, g *gorm.DB) error {
		a, err := s.ruleAdapterFor(g)
		if err != nil {
			return err
		}
		return fn(ctx, &tx{g: g, a: a, keys: s.keys, dialect: s.db.Dialect()})
	})
}

// Ping implements policy.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

type tx struct {
	g       *gorm.DB
	a       ruleAdapter
	keys    *fieldcrypt.Keyring
	dialect sqldb.Dialect
	// noExpiries says that the tenant has never had a time-bound rule
	// (read with the version, see BumpVersion): its changes skip the
	// table of ends.
	noExpiries bool
	// expiriesOf is the tenant whose tenants.has_expiries is known to be
	// set (0: none), which a load relies on to read the table of ends.
	expiriesOf int64
}

// roleNames returns the stored forms a role name may have: itself, or its
// ciphertext under every configured key (current first).
func (t *tx) roleNames(id int64, role string) ([]string, error) {
	if t.keys == nil {
		return []string{role}, nil
	}
	return t.keys.Variants(fmt.Sprint(id), role)
}

func (t *tx) EnsureTenant(ctx context.Context, key policy.KeyHash) (int64, error) {
	g := t.g.WithContext(ctx)
	var existing tenantRow
	err := g.Where("key_hash = ?", string(key)).Take(&existing).Error
	if err == nil {
		return existing.ID, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, fmt.Errorf("read tenant: %w", err)
	}
	row := tenantRow{KeyHash: string(key), CreatedAt: time.Now().UTC()}
	res := g.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key_hash"}}, DoNothing: true}).
		Omit("id").Create(&row)
	if res.Error != nil {
		return 0, fmt.Errorf("create tenant: %w", res.Error)
	}
	var got tenantRow
	if err := g.Where("key_hash = ?", string(key)).Take(&got).Error; err != nil {
		return 0, fmt.Errorf("read tenant: %w", err)
	}
	if res.RowsAffected > 0 {
		// The creating key is the tenant's first client key.
		if err := registerKey(g, got.ID, key); err != nil {
			return 0, fmt.Errorf("register client key: %w", err)
		}
	}
	return got.ID, nil
}

func (t *tx) BumpVersion(ctx context.Context, id int64) (int64, error) {
	g := t.g.WithContext(ctx)
	if err := g.Exec("UPDATE tenants SET policy_version = policy_version + 1 WHERE id = ?", id).Error; err != nil {
		return 0, fmt.Errorf("bump policy version: %w", err)
	}
	var row struct {
		PolicyVersion int64 `gorm:"column:policy_version"`
		HasExpiries   bool  `gorm:"column:has_expiries"`
	}
	if err := g.Raw("SELECT policy_version, has_expiries FROM tenants WHERE id = ?", id).Scan(&row).Error; err != nil {
		return 0, fmt.Errorf("read policy version: %w", err)
	}
	t.noExpiries = !row.HasExpiries
	if row.HasExpiries {
		t.expiriesOf = id
	}
	return row.PolicyVersion, nil
}

func (t *tx) RoleExists(ctx context.Context, id int64, role string) (bool, error) {
	names, err := t.roleNames(id, role)
	if err != nil {
		return false, err
	}
	var n int64
	if err := t.g.WithContext(ctx).Model(&roleRow{}).Where("tenant_id = ? AND name IN ?", id, names).Count(&n).Error; err != nil {
		return false, fmt.Errorf("find role: %w", err)
	}
	return n > 0, nil
}

func (t *tx) CreateRole(ctx context.Context, id int64, role string) (bool, error) {
	names, err := t.roleNames(id, role)
	if err != nil {
		return false, err
	}
	if t.keys != nil {
		// Under an older key the role exists already.
		if ok, err := t.RoleExists(ctx, id, role); err != nil || ok {
			return false, err
		}
	}
	res := t.g.WithContext(ctx).
		Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "tenant_id"}, {Name: "name"}}, DoNothing: true}).
		Omit("id").Create(&roleRow{TenantID: id, Name: names[0], CreatedAt: time.Now().UTC()})
	if res.Error != nil {
		return false, fmt.Errorf("create role: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

func (t *tx) DeleteRole(ctx context.Context, id int64, role string) (bool, error) {
	names, err := t.roleNames(id, role)
	if err != nil {
		return false, err
	}
	res := t.g.WithContext(ctx).Where("tenant_id = ? AND name IN ?", id, names).Delete(&roleRow{})
	if res.Error != nil {
		return false, fmt.Errorf("delete role: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

func (t *tx) SetRoleDescription(ctx context.Context, id int64, role string, desc *string) (bool, error) {
	names, err := t.roleNames(id, role)
	if err != nil {
		return false, err
	}
	stored := desc
	if desc != nil && t.keys != nil {
		sealed, err := t.keys.Encrypt(fmt.Sprint(id), *desc)
		if err != nil {
			return false, fmt.Errorf("encrypt role description: %w", err)
		}
		stored = &sealed
	}
	res := t.g.WithContext(ctx).Model(&roleRow{}).Where("tenant_id = ? AND name IN ?", id, names).
		Update("description", stored)
	if res.Error != nil {
		return false, fmt.Errorf("update role description: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

func (t *tx) AddRules(ctx context.Context, ptype string, rules [][]string) error {
	if err := checkRules(rules); err != nil {
		return err
	}
	// One INSERT per batch: a statement binds 7 values a rule, and SQLite
	// takes at most 32 766 of them (PostgreSQL 65 535).
	for len(rules) > 0 {
		n := min(len(rules), maxRulesPerInsert)
		if err := t.a.AddPoliciesCtx(ctx, ptype[:1], ptype, rules[:n]); err != nil {
			return fmt.Errorf("add rules: %w", err)
		}
		rules = rules[n:]
	}
	return nil
}

// maxRulesPerInsert bounds the rules one INSERT adds (7 bound values each).
const maxRulesPerInsert = 1000

func (t *tx) RemoveRules(ctx context.Context, ptype string, rules [][]string) error {
	if err := checkRules(rules); err != nil {
		return err
	}
	// One statement per rule: gorm-adapter's batch removal ignores errors.
	for _, r := range rules {
		if err := t.a.RemovePolicyCtx(ctx, ptype[:1], ptype, r); err != nil {
			return fmt.Errorf("remove rule: %w", err)
		}
		if err := t.removeExpiries(ctx, ptype, 0, r); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) RemoveFilteredRules(ctx context.Context, ptype string, fieldIndex int, values ...string) error {
	if err := t.a.RemoveFilteredPolicyCtx(ctx, ptype[:1], ptype, fieldIndex, values...); err != nil {
		return fmt.Errorf("remove rules: %w", err)
	}
	return t.removeExpiries(ctx, ptype, fieldIndex, values)
}

// openRole decrypts a stored role row (a no-op without encryption).
func (s *Store) openRole(dom string, r roleRow) (string, *string, error) {
	if s.keys == nil {
		return r.Name, r.Description, nil
	}
	name, err := s.keys.Decrypt(dom, r.Name)
	if err != nil {
		return "", nil, fmt.Errorf("policydb: role %d of tenant %s: %w", r.ID, dom, err)
	}
	if r.Description == nil {
		return name, nil, nil
	}
	d, err := s.keys.Decrypt(dom, *r.Description)
	if err != nil {
		return "", nil, fmt.Errorf("policydb: role %d description of tenant %s: %w", r.ID, dom, err)
	}
	return name, &d, nil
}

// checkRules refuses empty fields: gorm-adapter treats "" as a wildcard on
// delete and cannot load a rule that ends with one.
func checkRules(rules [][]string) error {
	for _, r := range rules {
		for _, v := range r {
			if v == "" {
				return errors.New("policydb: empty rule field")
			}
		}
	}
	return nil
}

// openRule decrypts in place the sealed fields of a stored rule of domain
// dom; opened holds the values decrypted so far. A value that does not
// decrypt fails the load: neither ciphertext nor clear text is ever taken
// for a name.
func (s *Store) openRule(sec, dom string, r []string, opened map[string]string) error {
	for i, v := range r {
		if !sealed(sec, i) || v == "" {
			continue
		}
		if p, ok := opened[v]; ok {
			r[i] = p
			continue
		}
		p, err := s.keys.Decrypt(dom, v)
		if err != nil {
			return fmt.Errorf("policydb: %s rule field %d of tenant %s: %w", sec, i, dom, err)
		}
		opened[v] = p
		r[i] = p
	}
	return nil
}
