package policydb

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"

	"github.com/ourway/auth/policy"
)

// The kinds of row loadQuery returns, in the order it returns them.
const (
	rowTenant = iota
	rowRole
	rowP
	rowG
	rowExpiry
)

// loadQuery reads a whole tenant, found by its key hash, in one statement:
// one statement reads one consistent snapshot on both databases, so the
// load needs no transaction (and, on SQLite, no write lock). Every row has
// the columns (kind, id, a, b, c, d, e, n):
//
//   - rowTenant: the tenant's id and, in n, its policy version; it comes
//     first, and only if the tenant exists.
//   - rowRole: the role's id, name (a) and description (b), in creation
//     order.
//   - rowP, rowG: the rule's id and its fields other than the domain (v0,
//     v2 to v5 for p; v0, v1, v3 to v5 for g), in the order they were
//     written. ptype and the domain column are never encrypted, so the
//     filter works with field encryption on.
//   - rowExpiry: the end (n, Unix microseconds) of a time-bound rule: its
//     ptype (a) and stored fields v0 to v2 (b to d); read only for a
//     tenant that has had time-bound rules (tenants.has_expiries).
//
// Each part is served by an index: tenants' unique key_hash, roles'
// (tenant_id, name), casbin_rule's (ptype, v1) and (ptype, v2) and
// rule_expiries' tenant_id.
const loadQuery = `WITH t AS (SELECT id, policy_version, has_expiries, CAST(id AS TEXT) AS dom FROM tenants WHERE key_hash = ?)
SELECT 0 AS kind, t.id AS id, NULL AS a, NULL AS b, NULL AS c, NULL AS d, NULL AS e, t.policy_version AS n FROM t
UNION ALL SELECT 1, r.id, r.name, r.description, NULL, NULL, NULL, NULL FROM t JOIN roles r ON r.tenant_id = t.id
UNION ALL SELECT 2, c.id, c.v0, c.v2, c.v3, c.v4, c.v5, NULL FROM t JOIN casbin_rule c ON c.ptype = 'p' AND c.v1 = t.dom
UNION ALL SELECT 3, c.id, c.v0, c.v1, c.v3, c.v4, c.v5, NULL FROM t JOIN casbin_rule c ON c.ptype = 'g' AND c.v2 = t.dom
UNION ALL SELECT 4, 0, e.ptype, e.v0, e.v1, e.v2, NULL, e.expires_at FROM t JOIN rule_expiries e ON t.has_expiries AND e.tenant_id = t.id
ORDER BY 1, 2`

// LoadTenant implements policy.Store: the tenant with this key hash, its
// version, roles, rules and rule expiries are read by one statement
// (loadQuery), so they agree with each other, and the rules are streamed
// from the database to add as they come (see sqldb.DB.Read: no
// transaction, no write lock). Sealed names come back as stored
// and are decrypted here, each distinct stored value once. A tenant that
// does not exist is reported with found false.
func (s *Store) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (snap policy.Snapshot, found bool, err error) {
	err = s.db.Read(ctx, func(g *gorm.DB) error {
		var err error
		snap, found, err = s.readTenant(g, key, add)
		return err
	})
	if err != nil {
		return policy.Snapshot{}, false, err
	}
	return snap, found, nil
}

// readTenant runs loadQuery for key on g and decodes its rows.
func (s *Store) readTenant(g *gorm.DB, key policy.KeyHash, add policy.RuleFunc) (snap policy.Snapshot, found bool, err error) {
	rows, err := g.Raw(loadQuery, string(key)).Rows()
	if err != nil {
		return policy.Snapshot{}, false, fmt.Errorf("read tenant: %w", err)
	}
	defer rows.Close()
	var (
		opened map[string]string // stored value -> name, with encryption
		seen   map[string]bool   // role names loaded
		dom    string
		rule   [6]string
		kind   int
		id     int64
		f      [5]sql.NullString
		n      sql.NullInt64
	)
	if s.keys != nil {
		opened = map[string]string{}
	}
	for rows.Next() {
		if err := rows.Scan(&kind, &id, &f[0], &f[1], &f[2], &f[3], &f[4], &n); err != nil {
			return policy.Snapshot{}, false, fmt.Errorf("read tenant: %w", err)
		}
		if kind != rowTenant && !found {
			return policy.Snapshot{}, false, fmt.Errorf("read tenant: row of kind %d before the tenant's", kind)
		}
		switch kind {
		case rowTenant:
			found = true
			snap.TenantID, snap.Version = id, n.Int64
			dom = fmt.Sprint(id)
			seen = map[string]bool{}
		case rowRole:
			name, desc, err := s.openRole(dom, roleRow{ID: id, Name: f[0].String, Description: nullable(f[1])})
			if err != nil {
				return policy.Snapshot{}, false, err
			}
			if seen[name] {
				continue // the same role under two keys during rotation
			}
			seen[name] = true
			snap.Roles = append(snap.Roles, policy.Role{Name: name, Description: desc})
		case rowP, rowG:
			ptype := "p"
			d := 1 // the domain's field
			if kind == rowG {
				ptype, d = "g", 2
			}
			// f holds the fields other than the domain, in order.
			for i, j := 0, 0; i < len(rule); i++ {
				if i == d {
					rule[i] = dom
					continue
				}
				rule[i] = f[j].String
				j++
			}
			// Shaped as gorm-adapter shapes it: trailing empty fields dropped.
			m := len(rule)
			for m > 0 && rule[m-1] == "" {
				m--
			}
			if s.keys != nil {
				if err := s.openRule(ptype, dom, rule[:m], opened); err != nil {
					return policy.Snapshot{}, false, err
				}
			}
			if err := add(ptype, rule[:m]); err != nil {
				return policy.Snapshot{}, false, fmt.Errorf("load rules: %w", err)
			}
		case rowExpiry:
			e, err := s.openExpiry(expiryRow{TenantID: snap.TenantID, Ptype: f[0].String,
				V0: f[1].String, V1: f[2].String, V2: f[3].String, ExpiresAt: n.Int64})
			if err != nil {
				return policy.Snapshot{}, false, err
			}
			snap.Expiries = append(snap.Expiries, e)
		default:
			return policy.Snapshot{}, false, fmt.Errorf("read tenant: row of unknown kind %d", kind)
		}
	}
	if err := rows.Err(); err != nil {
		return policy.Snapshot{}, false, fmt.Errorf("read tenant: %w", err)
	}
	return snap, found, nil
}

// nullable is v's string, or nil for NULL.
func nullable(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}
