package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// bulkRows is the size above which SQLite's casbin_rule indexes and
// triggers are dropped for the load and created again afterwards from the
// same SQL (an index built once is faster than one kept up row by row, and
// a trigger evaluated per row costs as much as the row's insert).
var bulkRows = 100_000

// Load writes t into db, an open and migrated database of the service, as
// `auth-server policy import` would leave it: the tenant and its client key
// (as the service creates them), its roles, one casbin_rule row per grant
// (p, role:ROLE, DOMAIN, PERMISSION) and per membership (g, USER,
// role:ROLE, DOMAIN), the domain being the tenant's id, the policy version
// bumped once, and the first record of the tenant's audit chain, an
// IMPORT_POLICY record sealed with keys (the audit key of the servers that
// will serve the database: a tenant with rules but no chain has its
// changes refused). The rules are written in one transaction marked as the
// service's own (sqldb.InOwnTx), so the triggers that note other
// programs' changes leave them alone. It returns the tenant's id.
func Load(ctx context.Context, db *sqldb.DB, keys *audit.Keyring, t *Tenant) (int64, error) {
	handle := policy.KeyHash(t.KeyHash())
	id, err := policydb.New(db).CreateTenant(ctx, handle)
	if err != nil {
		return 0, fmt.Errorf("create tenant: %w", err)
	}
	if db.Dialect() == sqldb.Postgres {
		err = loadPostgres(ctx, db, t, id)
	} else {
		err = loadSQLite(ctx, db, t, id)
	}
	if err != nil {
		return 0, fmt.Errorf("load tenant %d: %w", id, err)
	}
	grants, members := t.Rules()
	details, err := json.Marshal(map[string]any{"mode": "replace", "result": true,
		"roles_created": t.Shape.Roles, "roles_deleted": 0, "rules_added": grants + members, "rules_removed": 0})
	if err != nil {
		return 0, err
	}
	rec := audit.Record{Tenant: keys.TenantFingerprint(string(handle)), Time: time.Now().UTC(),
		Action: audit.ImportPolicy, Resource: "policy", Success: true, Details: string(details), Version: 1}
	if err := auditdb.New(db, keys).Append(ctx, []audit.Record{rec}); err != nil {
		return 0, fmt.Errorf("record the import of tenant %d: %w", id, err)
	}
	return id, nil
}

// rows calls fn with the fields of every role row and every rule row.
func (t *Tenant) rows(id int64, role func(name string) error, rule func(ptype, v0, v1, v2 string) error) error {
	dom := fmt.Sprint(id)
	for r := range t.Shape.Roles {
		if err := role(Role(r)); err != nil {
			return err
		}
	}
	for r, ps := range t.RolePerms {
		for _, p := range ps {
			if err := rule("p", "role:"+Role(r), dom, Permission(int(p))); err != nil {
				return err
			}
		}
	}
	for u, rs := range t.UserRoles {
		for _, r := range rs {
			if err := rule("g", User(u), "role:"+Role(int(r)), dom); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadSQLite writes the rows with multi-row INSERTs; past bulkRows the
// table's indexes and triggers are dropped and created again in the same
// transaction, so no other connection ever sees the table without them.
func loadSQLite(ctx context.Context, db *sqldb.DB, t *Tenant, id int64) error {
	grants, members := t.Rules()
	return db.InOwnTx(ctx, func(tx *gorm.DB) error {
		exec := func(q string, args ...any) error {
			// Straight to the driver: gorm's statement building costs more
			// than the insert itself.
			_, err := tx.Statement.ConnPool.ExecContext(ctx, q, args...)
			return err
		}
		var idx []struct{ Type, Name, SQL string }
		if grants+members > bulkRows {
			if err := tx.Raw("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = 'casbin_rule' AND sql IS NOT NULL").Scan(&idx).Error; err != nil {
				return err
			}
			for _, x := range idx {
				if err := exec("DROP " + strings.ToUpper(x.Type) + " " + x.Name); err != nil {
					return err
				}
			}
		}
		if grants+members > bulkRows {
			// Room to sort the index keys in memory (256 MiB of this
			// connection's page cache, given back below).
			if err := exec("PRAGMA cache_size = -262144"); err != nil {
				return err
			}
			defer func() { _ = exec("PRAGMA cache_size = -2000") }()
		}
		now := time.Now().UTC()
		roles := newBatch("INSERT INTO roles (tenant_id, name, created_at) VALUES ", 3, exec)
		rules := newBatch("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ", 4, exec)
		err := t.rows(id,
			func(name string) error { return roles.add(id, name, now) },
			func(ptype, v0, v1, v2 string) error { return rules.add(ptype, v0, v1, v2) })
		if err != nil {
			return err
		}
		if err := roles.flush(); err != nil {
			return err
		}
		if err := rules.flush(); err != nil {
			return err
		}
		for _, x := range idx {
			if err := exec(x.SQL); err != nil {
				return err
			}
		}
		return exec("UPDATE tenants SET policy_version = policy_version + 1 WHERE id = ?", id)
	})
}

// batch accumulates rows of a multi-row INSERT.
type batch struct {
	head string
	cols int
	exec func(q string, args ...any) error
	args []any
}

// batchRows is the number of rows per INSERT statement. The SQLite driver
// matches each bound value against the statement's parameters one by one,
// a cost that grows with the square of the statement's size: small
// statements are faster.
const batchRows = 100

func newBatch(head string, cols int, exec func(string, ...any) error) *batch {
	return &batch{head: head, cols: cols, exec: exec}
}

func (b *batch) add(fields ...any) error {
	b.args = append(b.args, fields...)
	if len(b.args) >= batchRows*b.cols {
		return b.flush()
	}
	return nil
}

func (b *batch) flush() error {
	n := len(b.args) / b.cols
	if n == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString(b.head)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", b.cols), ",") + ")"
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(row)
	}
	err := b.exec(sb.String(), b.args...)
	b.args = b.args[:0]
	return err
}

// pgxWrite runs fn in one pgx transaction on one connection of db's pool,
// marked as the service's own write (the rule triggers skip it), then runs
// analyze on the same connection: fresh statistics, as a database in
// service has, so that the planner reads a tenant's rules through the
// indexes.
func pgxWrite(ctx context.Context, db *sqldb.DB, analyze string, fn func(tx pgx.Tx) error) error {
	sqlDB, err := db.Gorm().DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("PostgreSQL driver connection is a %T, not pgx's", dc)
		}
		return pgx.BeginFunc(ctx, sc.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('auth.own_write', 'on', true)"); err != nil {
				return err
			}
			return fn(tx)
		})
	})
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, analyze)
	return err
}

// loadPostgres writes the rows with COPY, on one connection of db's pool.
func loadPostgres(ctx context.Context, db *sqldb.DB, t *Tenant, id int64) error {
	return pgxWrite(ctx, db, "ANALYZE casbin_rule", func(tx pgx.Tx) error {
		now := time.Now().UTC()
		var roles, rules [][]any
		err := t.rows(id,
			func(name string) error { roles = append(roles, []any{id, name, now}); return nil },
			func(ptype, v0, v1, v2 string) error { rules = append(rules, []any{ptype, v0, v1, v2}); return nil })
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"roles"}, []string{"tenant_id", "name", "created_at"}, pgx.CopyFromRows(roles)); err != nil {
			return fmt.Errorf("copy roles: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"casbin_rule"}, []string{"ptype", "v0", "v1", "v2"}, pgx.CopyFromRows(rules)); err != nil {
			return fmt.Errorf("copy rules: %w", err)
		}
		_, err = tx.Exec(ctx, "UPDATE tenants SET policy_version = policy_version + 1 WHERE id = $1", id)
		return err
	})
}
