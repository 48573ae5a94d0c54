package dataset

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// The shape of every tenant of a Many set: SmallRoles roles, SmallGrants
// grants and SmallMembers memberships (user-r is a member of role-r).
const (
	SmallRoles   = 3
	SmallGrants  = 4
	SmallMembers = 3
	// SmallPerms is the number of permission names a small tenant's grants
	// are drawn from.
	SmallPerms = 4
)

// SmallKey is the client key (a UUID4) of tenant i of a Many set: derived
// from i alone, so that a load generator knows every key without reading
// the database.
func SmallKey(i int) string {
	sum := sha256.Sum256([]byte("auth-bench small tenant " + strconv.Itoa(i)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// smallGrants are the permissions of role r in tenant i: role-0 holds two,
// the others one each, rotated by i so that tenants differ.
func smallGrants(i, r int) []int {
	switch r {
	case 0:
		return []int{i % SmallPerms, (i + 1) % SmallPerms}
	default:
		return []int{(i + 1 + r) % SmallPerms}
	}
}

// SmallAllowed is the decision of tenant i for user-u and perm-p: user-u is
// a member of role-u only.
func SmallAllowed(i, u, p int) bool {
	if u < 0 || u >= SmallRoles {
		return false
	}
	for _, q := range smallGrants(i, u) {
		if q == p {
			return true
		}
	}
	return false
}

// smallRows calls fn with the fields of tenant i's rows (id = i+1): the
// tenant, its key, its roles and its rules.
type smallRows struct {
	tenant func(id int64, keyHash string) error
	role   func(id int64, name string) error
	rule   func(ptype, v0, v1, v2 string) error
}

func (w smallRows) write(i int) error {
	id := int64(i + 1)
	h, err := policy.ParseClientKey(SmallKey(i))
	if err != nil {
		return err
	}
	if err := w.tenant(id, string(h)); err != nil {
		return err
	}
	dom := strconv.FormatInt(id, 10)
	for r := range SmallRoles {
		if err := w.role(id, Role(r)); err != nil {
			return err
		}
	}
	for r := range SmallRoles {
		for _, p := range smallGrants(i, r) {
			if err := w.rule("p", "role:"+Role(r), dom, Permission(p)); err != nil {
				return err
			}
		}
	}
	for u := range SmallMembers {
		if err := w.rule("g", User(u), "role:"+Role(u), dom); err != nil {
			return err
		}
	}
	return nil
}

// LoadMany writes n small tenants (ids 1 to n, tenant i+1 with client key
// SmallKey(i)) into db, an open, migrated and empty database of the
// service, as the service's own writes: each tenant row with its first
// client key, its roles and its rules, at policy version 1. No audit
// record is written: the tenants are for reading (a change to one is
// refused, its audit chain being absent). progress, if not nil, is called
// now and then with the number of tenants written.
func LoadMany(ctx context.Context, db *sqldb.DB, n int, progress func(int)) error {
	if progress == nil {
		progress = func(int) {}
	}
	if db.Dialect() == sqldb.Postgres {
		return loadManyPostgres(ctx, db, n, progress)
	}
	return loadManySQLite(ctx, db, n, progress)
}

// loadManySQLite writes the rows in one transaction with casbin_rule's
// indexes and triggers dropped and created again at the end, as Load does
// for a large tenant.
func loadManySQLite(ctx context.Context, db *sqldb.DB, n int, progress func(int)) error {
	return db.InOwnTx(ctx, func(tx *gorm.DB) error {
		exec := func(q string, args ...any) error {
			_, err := tx.Statement.ConnPool.ExecContext(ctx, q, args...)
			return err
		}
		var idx []struct{ Type, Name, SQL string }
		if err := tx.Raw("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = 'casbin_rule' AND sql IS NOT NULL").Scan(&idx).Error; err != nil {
			return err
		}
		for _, x := range idx {
			if err := exec("DROP " + strings.ToUpper(x.Type) + " " + x.Name); err != nil {
				return err
			}
		}
		// The batches of each table fill at their own pace: a role may be
		// written before its tenant, checked at the commit.
		if err := exec("PRAGMA defer_foreign_keys = ON"); err != nil {
			return err
		}
		if err := exec("PRAGMA cache_size = -524288"); err != nil {
			return err
		}
		defer func() { _ = exec("PRAGMA cache_size = -2000") }()
		now := time.Now().UTC()
		tenants := newBatch("INSERT INTO tenants (id, key_hash, policy_version, created_at) VALUES ", 4, exec)
		keys := newBatch("INSERT INTO tenant_keys (key_hash, tenant_id, created_at) VALUES ", 3, exec)
		roles := newBatch("INSERT INTO roles (tenant_id, name, created_at) VALUES ", 3, exec)
		rules := newBatch("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ", 4, exec)
		w := smallRows{
			tenant: func(id int64, h string) error {
				if err := tenants.add(id, h, 1, now); err != nil {
					return err
				}
				return keys.add(h, id, now)
			},
			role: func(id int64, name string) error { return roles.add(id, name, now) },
			rule: func(ptype, v0, v1, v2 string) error { return rules.add(ptype, v0, v1, v2) },
		}
		for i := range n {
			if err := w.write(i); err != nil {
				return err
			}
			if (i+1)%100_000 == 0 {
				progress(i + 1)
			}
		}
		for _, b := range []*batch{tenants, keys, roles, rules} {
			if err := b.flush(); err != nil {
				return err
			}
		}
		for _, x := range idx {
			if err := exec(x.SQL); err != nil {
				return err
			}
		}
		return exec("ANALYZE")
	})
}

// loadManyPostgres writes the rows with COPY in one transaction.
func loadManyPostgres(ctx context.Context, db *sqldb.DB, n int, progress func(int)) error {
	return pgxWrite(ctx, db, "ANALYZE", func(tx pgx.Tx) error {
		now := time.Now().UTC()
		var tenants, keys, roles, rules [][]any
		w := smallRows{
			tenant: func(id int64, h string) error {
				tenants = append(tenants, []any{id, h, int64(1), now})
				keys = append(keys, []any{h, id, now})
				return nil
			},
			role: func(id int64, name string) error { roles = append(roles, []any{id, name, now}); return nil },
			rule: func(ptype, v0, v1, v2 string) error { rules = append(rules, []any{ptype, v0, v1, v2}); return nil },
		}
		for i := range n {
			if err := w.write(i); err != nil {
				return err
			}
		}
		copies := []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"tenants", []string{"id", "key_hash", "policy_version", "created_at"}, tenants},
			{"tenant_keys", []string{"key_hash", "tenant_id", "created_at"}, keys},
			{"roles", []string{"tenant_id", "name", "created_at"}, roles},
			{"casbin_rule", []string{"ptype", "v0", "v1", "v2"}, rules},
		}
		for _, c := range copies {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("copy %s: %w", c.table, err)
			}
		}
		progress(n)
		_, err := tx.Exec(ctx, "SELECT setval(pg_get_serial_sequence('tenants', 'id'), $1)", int64(n))
		return err
	})
}
