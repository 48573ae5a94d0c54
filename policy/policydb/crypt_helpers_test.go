package policydb

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// Master keys of the tests (32+ characters, not placeholders).
const (
	keyA = "k3Jq9vX2mP7wT4zR8nB5cY1hL6dF0gSa"
	keyB = "Zt8Qw2Ex4Rc6Vb1Nm3Kl5Jh7Gf9Ds0Ap"
)

// backends are the databases every store test runs on.
var backends = []struct {
	name string
	open func(testing.TB) *sqldb.DB
}{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

// eachBackend runs fn as a parallel subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func openSQLite(t testing.TB) *sqldb.DB { return testenv.SQLite(t) }

func openPostgres(t testing.TB) *sqldb.DB {
	t.Helper()
	if testing.Short() {
		t.Skip("PostgreSQL skipped in -short mode")
	}
	return testenv.Postgres(t)
}

// keyring builds a keyring: the current key first, then previous ones.
func keyring(t testing.TB, current string, previous ...string) *fieldcrypt.Keyring {
	t.Helper()
	k, err := fieldcrypt.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// storeWith is a store over db encrypting with the given keys (current
// first), or a clear-text store without keys.
func storeWith(t testing.TB, db *sqldb.DB, keys ...string) *Store {
	t.Helper()
	s := New(db)
	if len(keys) == 0 {
		return s
	}
	return s.WithEncryption(keyring(t, keys[0], keys[1:]...))
}

// keyID is the id ciphertexts made under key carry.
func keyID(t testing.TB, key string) string {
	t.Helper()
	return keyring(t, key).CurrentID()
}

// tenantKey is a tenant's key hash (any 64 hex digits will do here).
func tenantKey(n int) policy.KeyHash { return policy.KeyHash(fmt.Sprintf("%064x", n)) }

// change runs fn in one transaction of s and fails the test on error.
func change(t testing.TB, s *Store, fn func(ctx context.Context, tx policy.Tx) error) {
	t.Helper()
	if err := s.Change(context.Background(), fn); err != nil {
		t.Fatalf("Change: %v", err)
	}
}

// tenantID creates (or finds) the tenant n and returns its id and domain.
func tenantID(t testing.TB, s *Store, n int) (int64, string) {
	t.Helper()
	var id int64
	change(t, s, func(ctx context.Context, tx policy.Tx) error {
		var err error
		id, err = tx.EnsureTenant(ctx, tenantKey(n))
		return err
	})
	return id, fmt.Sprint(id)
}

// seedTenant writes roles, grants (role, perm) and memberships (user, role)
// of a tenant with s, and parent links (role, parent).
func seedTenant(t testing.TB, s *Store, id int64, roles []string, grants, members, parents [][2]string) {
	t.Helper()
	dom := fmt.Sprint(id)
	change(t, s, func(ctx context.Context, tx policy.Tx) error {
		for _, r := range roles {
			if _, err := tx.CreateRole(ctx, id, r); err != nil {
				return err
			}
		}
		var p, g [][]string
		for _, x := range grants {
			p = append(p, []string{"role:" + x[0], dom, x[1]})
		}
		for _, x := range members {
			g = append(g, []string{x[0], "role:" + x[1], dom})
		}
		for _, x := range parents {
			g = append(g, []string{"role:" + x[0], "role:" + x[1], dom})
		}
		if len(p) > 0 {
			if err := tx.AddRules(ctx, "p", p); err != nil {
				return err
			}
		}
		if len(g) > 0 {
			if err := tx.AddRules(ctx, "g", g); err != nil {
				return err
			}
		}
		return nil
	})
}

// rawRule is a casbin_rule row as stored.
type rawRule struct {
	ID                            int64
	Ptype, V0, V1, V2, V3, V4, V5 string
}

func rawRules(t testing.TB, db *sqldb.DB) []rawRule {
	t.Helper()
	var rows []rawRule
	if err := db.Gorm().Raw("SELECT id, ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule ORDER BY id").Scan(&rows).Error; err != nil {
		t.Fatalf("read casbin_rule: %v", err)
	}
	return rows
}

func rawRoles(t testing.TB, db *sqldb.DB) []roleRow {
	t.Helper()
	var rows []roleRow
	if err := db.Gorm().Order("id").Find(&rows).Error; err != nil {
		t.Fatalf("read roles: %v", err)
	}
	return rows
}

// storedValues returns every sealed value of casbin_rule and roles (the
// fields that hold names), with where it is.
func storedValues(t testing.TB, db *sqldb.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range rawRules(t, db) {
		fs := []string{r.V0, r.V1, r.V2}
		for i, v := range fs {
			if sealed(r.Ptype[:1], i) {
				out[fmt.Sprintf("casbin_rule %d v%d", r.ID, i)] = v
			}
		}
	}
	for _, r := range rawRoles(t, db) {
		out[fmt.Sprintf("roles %d name", r.ID)] = r.Name
		if r.Description != nil {
			out[fmt.Sprintf("roles %d description", r.ID)] = *r.Description
		}
	}
	return out
}

// keyIDs counts the stored names by the key id they are under ("" for
// clear text).
func keyIDs(t testing.TB, db *sqldb.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, v := range storedValues(t, db) {
		out[fieldcrypt.KeyID(v)]++
	}
	return out
}

// view is a tenant as the store loads it, in a comparable form.
type view struct {
	P, G  []string
	Roles []string
}

func (v view) String() string {
	return fmt.Sprintf("p=%q g=%q roles=%q", v.P, v.G, v.Roles)
}

// load loads tenant id with s.
func load(t testing.TB, s *Store, id int64) (view, error) {
	t.Helper()
	var v view
	// A rule stored under two keys (during a rotation) comes twice; the
	// service holds it once, as this view does.
	seen := map[string]bool{}
	snap, found, err := s.LoadTenant(context.Background(), keyOf(t, s, id), func(ptype string, r []string) error {
		s := strings.Join(r, ",")
		if seen[ptype+":"+s] {
			return nil
		}
		seen[ptype+":"+s] = true
		switch ptype {
		case "p":
			v.P = append(v.P, s)
		case "g":
			v.G = append(v.G, s)
		default:
			t.Fatalf("rule of ptype %q", ptype)
		}
		return nil
	})
	if err != nil {
		return view{}, err
	}
	if !found {
		t.Fatalf("LoadTenant: no tenant %d", id)
	}
	for _, r := range snap.Roles {
		name := r.Name
		if r.Description != nil {
			name += "=" + *r.Description
		}
		v.Roles = append(v.Roles, name)
	}
	sort.Strings(v.P)
	sort.Strings(v.G)
	return v, nil
}

// keyOf returns the key hash of tenant id.
func keyOf(t testing.TB, s *Store, id int64) policy.KeyHash {
	t.Helper()
	var key string
	if err := s.db.Gorm().Raw("SELECT key_hash FROM tenants WHERE id = ?", id).Scan(&key).Error; err != nil || key == "" {
		t.Fatalf("key of tenant %d: %q, %v", id, key, err)
	}
	return policy.KeyHash(key)
}

func mustLoad(t testing.TB, s *Store, id int64) view {
	t.Helper()
	v, err := load(t, s, id)
	if err != nil {
		t.Fatalf("LoadTenant(%d): %v", id, err)
	}
	return v
}

// exec runs a statement on db.
func exec(t testing.TB, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if err := db.Gorm().Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// insertRule writes a casbin_rule row as is.
func insertRule(t testing.TB, db *sqldb.DB, ptype string, v ...string) {
	t.Helper()
	for len(v) < 3 {
		v = append(v, "")
	}
	exec(t, db, "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES (?, ?, ?, ?)", ptype, v[0], v[1], v[2])
}

// inTx runs fn in a transaction of db.
func inTx(t testing.TB, db *sqldb.DB, fn func(tx *gorm.DB) error) {
	t.Helper()
	if err := db.InTx(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}
