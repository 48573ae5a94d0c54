package policy_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// openSQLite opens and migrates a fresh SQLite file in a temporary directory.
func openSQLite(t testing.TB) *sqldb.DB { return testenv.SQLite(t) }

// openPostgres opens and migrates a fresh PostgreSQL database of its own
// (skipped, or failed in CI, when PostgreSQL is not reachable).
func openPostgres(t testing.TB) *sqldb.DB { return testenv.Postgres(t) }

// newService builds a Service over db with the model text.
func newService(t testing.TB, db *sqldb.DB, modelText string, opts policy.Options) *policy.Service {
	t.Helper()
	s, err := policy.New(policydb.New(db), modelText, opts)
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	return s
}

// readModel returns the text of a model file in testdata/.
func readModel(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// randomKey returns a random canonical UUID4 drawn from rng.
func randomKey(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// mustKey parses a client key or fails the test.
func mustKey(t testing.TB, s string) policy.KeyHash {
	t.Helper()
	k, err := policy.ParseClientKey(s)
	if err != nil {
		t.Fatalf("ParseClientKey(%q): %v", s, err)
	}
	return k
}

// tenantDomain returns the Casbin domain of a tenant (its id) and whether
// the tenant exists in the database.
func tenantDomain(t testing.TB, db *sqldb.DB, key policy.KeyHash) (string, bool) {
	t.Helper()
	var ids []int64
	if err := db.Gorm().Raw("SELECT id FROM tenants WHERE key_hash = ?", string(key)).Scan(&ids).Error; err != nil {
		t.Fatalf("read tenant: %v", err)
	}
	if len(ids) == 0 {
		return "", false
	}
	return fmt.Sprint(ids[0]), true
}

// dbRules reads every Casbin rule from the database, grouped by ptype, each
// trimmed to the model's three fields.
func dbRules(t testing.TB, db *sqldb.DB) (p, g [][]string) {
	t.Helper()
	type row struct {
		Ptype, V0, V1, V2, V3, V4, V5 string
	}
	var rows []row
	if err := db.Gorm().Raw("SELECT ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule ORDER BY id").Scan(&rows).Error; err != nil {
		t.Fatalf("read casbin_rule: %v", err)
	}
	for _, r := range rows {
		if r.V3 != "" || r.V4 != "" || r.V5 != "" {
			t.Fatalf("casbin_rule row has more than three fields: %+v", r)
		}
		rule := []string{r.V0, r.V1, r.V2}
		switch r.Ptype {
		case "p":
			p = append(p, rule)
		case "g":
			g = append(g, rule)
		default:
			t.Fatalf("casbin_rule row with ptype %q", r.Ptype)
		}
	}
	return p, g
}

func sortedCopy(a []string) []string {
	out := append([]string(nil), a...)
	sort.Strings(out)
	return out
}

func setOf(a []string) map[string]bool {
	m := make(map[string]bool, len(a))
	for _, s := range a {
		m[s] = true
	}
	return m
}

func setKeys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b map[string]bool) bool {
	return strings.Join(setKeys(a), "\x00") == strings.Join(setKeys(b), "\x00")
}
