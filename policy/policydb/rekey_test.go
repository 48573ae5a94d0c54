package policydb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// TestCheckEncryption is the start-up matrix: the state the database is in
// against the keys a server starts with.
func TestCheckEncryption(t *testing.T) {
	const keyC = "u1I2o3P4a5S6d7F8g9H0j1K2l3Z4x5C6"
	states := []struct {
		name  string
		setup func(t *testing.T, db *sqldb.DB)
	}{
		{"empty", func(t *testing.T, db *sqldb.DB) {}},
		{"clear data", func(t *testing.T, db *sqldb.DB) {
			s := storeWith(t, db)
			id, _ := tenantID(t, s, 1)
			seedTenant(t, s, id, []string{"admin"}, [][2]string{{"admin", "read"}}, nil, nil)
		}},
		{"clear role only", func(t *testing.T, db *sqldb.DB) {
			s := storeWith(t, db)
			id, _ := tenantID(t, s, 1)
			seedTenant(t, s, id, []string{"admin"}, nil, nil, nil)
		}},
		{"encrypted under A", func(t *testing.T, db *sqldb.DB) {
			s := storeWith(t, db, keyA)
			if err := s.CheckEncryption(context.Background()); err != nil {
				t.Fatal(err)
			}
			id, _ := tenantID(t, s, 1)
			seedTenant(t, s, id, []string{"admin"}, [][2]string{{"admin", "read"}}, nil, nil)
		}},
		{"empty, first started under A", func(t *testing.T, db *sqldb.DB) {
			if err := storeWith(t, db, keyA).CheckEncryption(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"migration to A stopped", func(t *testing.T, db *sqldb.DB) {
			s := storeWith(t, db)
			id, _ := tenantID(t, s, 1)
			seedTenant(t, s, id, []string{"admin"}, [][2]string{{"admin", "read"}, {"admin", "write"}}, nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := storeWith(t, db, keyA).Rekey(ctx, 1, func(RekeyStats) { cancel() }); !errors.Is(err, context.Canceled) {
				t.Fatalf("stopped Rekey: %v", err)
			}
		}},
	}
	keys := []struct {
		name string
		keys []string
	}{
		{"off", nil},
		{"A", []string{keyA}},
		{"B", []string{keyB}},
		{"B+A", []string{keyB, keyA}},
		{"A+B", []string{keyA, keyB}},
		{"B+C", []string{keyB, keyC}},
	}
	want := map[string][]error{ // per state, in the order of keys
		"empty":                        {nil, nil, nil, nil, nil, nil},
		"clear data":                   {nil, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase},
		"clear role only":              {nil, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase},
		"encrypted under A":            {ErrEncryptedDatabase, nil, ErrWrongKey, nil, nil, ErrWrongKey},
		"empty, first started under A": {ErrEncryptedDatabase, nil, ErrWrongKey, nil, nil, ErrWrongKey},
		"migration to A stopped":       {ErrMigrating, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase, ErrClearDatabase},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				st.setup(t, db)
				settings := readSettings(t, db)
				for i, k := range keys {
					t.Run(k.name, func(t *testing.T) {
						// Each keyring meets the database as set up: the
						// one thing a check writes is the key-check record.
						defer restoreSettings(t, db, settings)
						before := storedValues(t, db)
						err := storeWith(t, db, k.keys...).CheckEncryption(context.Background())
						if w := want[st.name][i]; !errors.Is(err, w) || (w == nil) != (err == nil) {
							t.Fatalf("CheckEncryption = %v, want %v", err, w)
						}
						if got := storedValues(t, db); !reflect.DeepEqual(got, before) {
							t.Errorf("CheckEncryption changed stored names: %v -> %v", before, got)
						}
						after := readSettings(t, db)
						v, found := after[keyCheckName]
						switch {
						case err == nil && k.keys != nil:
							// A successful check with keys leaves a key-check
							// record that the keys open.
							if !found {
								t.Fatalf("no key-check record after a successful check with keys")
							}
							if p, derr := keyring(t, k.keys[0], k.keys[1:]...).Decrypt(keyCheckTenant, v); derr != nil || p != keyCheckValue {
								t.Errorf("key-check record %q does not open with the keys: %q, %v", v, p, derr)
							}
						case !reflect.DeepEqual(after, settings):
							t.Errorf("settings changed from %v to %v", settings, after)
						}
					})
				}
			})
		})
	}
	// The messages say what to do.
	for _, c := range []struct {
		err  error
		want []string
	}{
		{ErrWrongKey, []string{"ENCRYPTION_KEY", "ENCRYPTION_KEY_PREVIOUS"}},
		{ErrEncryptedDatabase, []string{"ENABLE_ENCRYPTION", "ENCRYPTION_KEY"}},
		{ErrClearDatabase, []string{"auth-server rekey"}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("%q does not mention %q", c.err, w)
			}
		}
	}
}

// rotationFixture is two tenants written under key A.
func rotationFixture(t *testing.T, db *sqldb.DB, keys ...string) (ids []int64, before []view) {
	t.Helper()
	s := storeWith(t, db, keys...)
	if err := s.CheckEncryption(context.Background()); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		id, _ := tenantID(t, s, n)
		ids = append(ids, id)
		var grants [][2]string
		for i := 0; i < 12; i++ {
			grants = append(grants, [2]string{fmt.Sprintf("role%d", i%3), fmt.Sprintf("perm%d", i)})
		}
		seedTenant(t, s, id, []string{"role0", "role1", "role2"}, grants,
			[][2]string{{"john", "role0"}, {"jane", "role1"}, {"ann", "role2"}}, [][2]string{{"role1", "role0"}})
	}
	for _, id := range ids {
		before = append(before, mustLoad(t, s, id))
	}
	return ids, before
}

// TestRekeyRotates: data under A, rekey with B (reading A) re-encrypts every
// name to B; afterwards B alone opens the database and A no longer does.
func TestRekeyRotates(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		ids, before := rotationFixture(t, db, keyA)
		idA, idB := keyID(t, keyA), keyID(t, keyB)
		nRules, nRoles := len(rawRules(t, db)), len(rawRoles(t, db))
		if got := keyIDs(t, db); len(got) != 1 || got[idA] == 0 {
			t.Fatalf("stored names by key id: %v, want all under A (%s)", got, idA)
		}
		sBA := storeWith(t, db, keyB, keyA)
		if err := sBA.CheckEncryption(ctx); err != nil {
			t.Fatalf("CheckEncryption with B+A before rekey: %v", err)
		}
		if err := storeWith(t, db, keyB).CheckEncryption(ctx); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("CheckEncryption with B alone before rekey: %v, want ErrWrongKey", err)
		}
		var batches int
		st, err := sBA.Rekey(ctx, 5, func(RekeyStats) { batches++ })
		if err != nil {
			t.Fatalf("Rekey: %v", err)
		}
		if want := (RekeyStats{Rules: nRules, Roles: nRoles}); st != want {
			t.Errorf("Rekey stats = %+v, want %+v", st, want)
		}
		if want := (nRules+4)/5 + (nRoles+4)/5; batches != want {
			t.Errorf("%d batches reported, want %d", batches, want)
		}
		if got := keyIDs(t, db); len(got) != 1 || got[idB] != nRules*2+nRoles {
			t.Errorf("stored names by key id after rekey: %v, want all %d under B (%s)", got, nRules*2+nRoles, idB)
		}
		sB := storeWith(t, db, keyB)
		if err := sB.CheckEncryption(ctx); err != nil {
			t.Errorf("CheckEncryption with B alone after rekey: %v", err)
		}
		if err := storeWith(t, db, keyA).CheckEncryption(ctx); !errors.Is(err, ErrWrongKey) {
			t.Errorf("CheckEncryption with A after rekey: %v, want ErrWrongKey", err)
		}
		for i, id := range ids {
			if got := mustLoad(t, sB, id); !reflect.DeepEqual(got, before[i]) {
				t.Errorf("tenant %d after rekey:\n got %v\nwant %v", id, got, before[i])
			}
		}
		// A second run has nothing to do.
		if st, err := sB.Rekey(ctx, 5, nil); err != nil || st != (RekeyStats{}) {
			t.Errorf("second Rekey = %+v, %v; want nothing done", st, err)
		}
	})
}

// TestRekeyMergesDuplicates: a rule or role written under both keys during
// the rotation is kept once.
func TestRekeyMergesDuplicates(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sA, sB, sBA := storeWith(t, db, keyA), storeWith(t, db, keyB), storeWith(t, db, keyB, keyA)
		if err := sA.CheckEncryption(ctx); err != nil {
			t.Fatal(err)
		}
		id, _ := tenantID(t, sA, 1)
		id2, _ := tenantID(t, sA, 2)
		seedTenant(t, sA, id, []string{"admin", "editor"}, [][2]string{{"admin", "read"}, {"editor", "read"}},
			[][2]string{{"john", "admin"}}, nil)
		var firstRules, firstRoles []int64
		for _, r := range rawRules(t, db) {
			firstRules = append(firstRules, r.ID)
		}
		for _, r := range rawRoles(t, db) {
			firstRoles = append(firstRoles, r.ID)
		}
		// The same role, grant and membership again under B (a server that
		// did not see them under A would write them so).
		seedTenant(t, sB, id, []string{"admin"}, [][2]string{{"admin", "read"}}, [][2]string{{"john", "admin"}}, nil)
		// The same names in another tenant are not duplicates.
		seedTenant(t, sB, id2, []string{"admin"}, [][2]string{{"admin", "read"}}, [][2]string{{"john", "admin"}}, nil)
		if n := len(rawRules(t, db)); n != 7 {
			t.Fatalf("casbin_rule holds %d rows, want 7 (3 + 2 duplicates + 2)", n)
		}
		if n := len(rawRoles(t, db)); n != 4 {
			t.Fatalf("roles holds %d rows, want 4 (2 + 1 duplicate + 1)", n)
		}
		want := mustLoad(t, sBA, id)
		if len(want.P) != 2 || len(want.G) != 1 || len(want.Roles) != 2 {
			t.Fatalf("tenant 1 loads as %v; want duplicates folded: 2 grants, 1 membership, 2 roles", want)
		}
		st, err := sBA.Rekey(ctx, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The oldest row of each is kept (re-encrypted), the newer deleted.
		if wantSt := (RekeyStats{Rules: 3, Roles: 2, Merged: 3}); st != wantSt {
			t.Errorf("Rekey stats = %+v, want %+v", st, wantSt)
		}
		if n := len(rawRules(t, db)); n != 5 {
			t.Errorf("casbin_rule holds %d rows after rekey, want 5", n)
		}
		if n := len(rawRoles(t, db)); n != 3 {
			t.Errorf("roles holds %d rows after rekey, want 3", n)
		}
		// The oldest rows stay, so rules and roles keep their order.
		var rules1, roles1 []int64
		for _, r := range rawRules(t, db) {
			if r.V1 == fmt.Sprint(id) || r.V2 == fmt.Sprint(id) {
				rules1 = append(rules1, r.ID)
			}
		}
		for _, r := range rawRoles(t, db) {
			if r.TenantID == id {
				roles1 = append(roles1, r.ID)
			}
		}
		if !reflect.DeepEqual(rules1, firstRules) || !reflect.DeepEqual(roles1, firstRoles) {
			t.Errorf("tenant 1 rows after rekey: rules %v, roles %v; want the first ones %v, %v", rules1, roles1, firstRules, firstRoles)
		}
		sB2 := storeWith(t, db, keyB)
		if got := mustLoad(t, sB2, id); !reflect.DeepEqual(got, want) {
			t.Errorf("tenant 1 after rekey:\n got %v\nwant %v", got, want)
		}
		if got := mustLoad(t, sB2, id2); len(got.P) != 1 || len(got.G) != 1 || len(got.Roles) != 1 {
			t.Errorf("tenant 2 after rekey: %v, want its one grant, membership and role", got)
		}
	})
}

// TestRekeyResumes: a rekey stopped after its first batch leaves a database
// that servers with both keys read as before (and one with only the new key
// refuses); running it again finishes the job.
func TestRekeyResumes(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ids, before := rotationFixture(t, db, keyA)
		idA, idB := keyID(t, keyA), keyID(t, keyB)
		sBA := storeWith(t, db, keyB, keyA)
		ctx, cancel := context.WithCancel(context.Background())
		var calls int
		st, err := sBA.Rekey(ctx, 4, func(RekeyStats) {
			calls++
			cancel()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Rekey cancelled after the first batch = %+v, %v; want context.Canceled", st, err)
		}
		if calls != 1 || st.Rules != 4 {
			t.Errorf("stopped Rekey: %d batches, stats %+v; want 1 batch of 4 rules", calls, st)
		}
		mixed := keyIDs(t, db)
		if mixed[idA] == 0 || mixed[idB] != 8 {
			t.Errorf("stored names by key id after the stop: %v, want 8 under B (4 rules) and the rest under A", mixed)
		}
		bg := context.Background()
		if err := storeWith(t, db, keyB).CheckEncryption(bg); !errors.Is(err, ErrWrongKey) {
			t.Errorf("CheckEncryption with B alone mid-rekey: %v, want ErrWrongKey", err)
		}
		if err := sBA.CheckEncryption(bg); err != nil {
			t.Errorf("CheckEncryption with B+A mid-rekey: %v", err)
		}
		for i, id := range ids {
			if got := mustLoad(t, sBA, id); !reflect.DeepEqual(got, before[i]) {
				t.Errorf("tenant %d mid-rekey:\n got %v\nwant %v", id, got, before[i])
			}
		}
		st, err = sBA.Rekey(bg, 4, nil)
		if err != nil {
			t.Fatalf("resumed Rekey: %v", err)
		}
		if total := len(rawRules(t, db)); st.Rules != total-4 || st.Roles != len(rawRoles(t, db)) {
			t.Errorf("resumed Rekey stats %+v, want the %d rules left and every role", st, total-4)
		}
		if got := keyIDs(t, db); len(got) != 1 || got[idB] == 0 {
			t.Errorf("stored names by key id after the resumed rekey: %v, want all under B", got)
		}
		sB := storeWith(t, db, keyB)
		if err := sB.CheckEncryption(bg); err != nil {
			t.Errorf("CheckEncryption with B after the resumed rekey: %v", err)
		}
		for i, id := range ids {
			if got := mustLoad(t, sB, id); !reflect.DeepEqual(got, before[i]) {
				t.Errorf("tenant %d after rekey:\n got %v\nwant %v", id, got, before[i])
			}
		}
	})
}

// TestRekeyMigratesClearDatabase: rekey encrypts a database written without
// encryption; the server then starts with encryption and reads the same.
// Stopped half-way, the database is refused both with encryption off (it
// holds ciphertexts) and on (it holds clear names) until rekey finishes.
func TestRekeyMigratesClearDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ids, _ := rotationFixture(t, db)
		bg := context.Background()
		plain, sA := storeWith(t, db), storeWith(t, db, keyA)
		// Descriptions come from outside the API (an import): an empty one
		// is a value too.
		exec(t, db, "UPDATE roles SET description = '' WHERE name = 'role0'")
		exec(t, db, "UPDATE roles SET description = 'Role one' WHERE name = 'role1'")
		var before []view
		for _, id := range ids {
			before = append(before, mustLoad(t, plain, id))
		}
		if got := before[0].Roles; !reflect.DeepEqual(got, []string{"role0=", "role1=Role one", "role2"}) {
			t.Fatalf("roles with descriptions: %q", got)
		}
		if err := sA.CheckEncryption(bg); !errors.Is(err, ErrClearDatabase) {
			t.Fatalf("CheckEncryption with A on a clear database: %v, want ErrClearDatabase", err)
		}
		ctx, cancel := context.WithCancel(bg)
		_, err := sA.Rekey(ctx, 3, func(RekeyStats) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped Rekey: %v, want context.Canceled", err)
		}
		if got := keyIDs(t, db); got[""] == 0 || got[keyID(t, keyA)] != 6 {
			t.Fatalf("stored names by key id after the stop: %v, want 6 under A and the rest clear", got)
		}
		if err := plain.CheckEncryption(bg); err == nil {
			t.Errorf("CheckEncryption without encryption on a half-encrypted database: nil, want a refusal " +
				"(the server would serve ciphertexts as names)")
		} else if !strings.Contains(err.Error(), "rekey") {
			t.Errorf("the refusal %q does not say to finish with rekey", err)
		}
		if err := sA.CheckEncryption(bg); !errors.Is(err, ErrClearDatabase) {
			t.Errorf("CheckEncryption with A on a half-encrypted database: %v, want ErrClearDatabase", err)
		}
		st, err := sA.Rekey(bg, 3, nil)
		if err != nil {
			t.Fatalf("resumed Rekey: %v", err)
		}
		if st.Rules != len(rawRules(t, db))-3 || st.Roles != len(rawRoles(t, db)) {
			t.Errorf("resumed Rekey stats %+v", st)
		}
		if got := keyIDs(t, db); len(got) != 1 || got[keyID(t, keyA)] == 0 {
			t.Errorf("stored names by key id after rekey: %v, want all under A", got)
		}
		for where, v := range storedValues(t, db) {
			if !fieldcrypt.IsEncrypted(v) {
				t.Errorf("%s = %q is still clear", where, v)
			}
		}
		if err := sA.CheckEncryption(bg); err != nil {
			t.Errorf("CheckEncryption with A after rekey: %v", err)
		}
		if err := plain.CheckEncryption(bg); !errors.Is(err, ErrEncryptedDatabase) {
			t.Errorf("CheckEncryption without encryption after rekey: %v, want ErrEncryptedDatabase", err)
		}
		for i, id := range ids {
			if got := mustLoad(t, sA, id); !reflect.DeepEqual(got, before[i]) {
				t.Errorf("tenant %d after rekey:\n got %v\nwant %v", id, got, before[i])
			}
		}
	})
}

// TestRekeyFailsClosed: a stored value that does not open stops rekey with
// its error; nothing of its batch is written, and a clear name found in an
// encrypted database is not taken for a name to encrypt.
func TestRekeyFailsClosed(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *sqldb.DB, id int64, dom string)
		want   error
		table  string // the table whose batch fails (rules go first)
	}{
		{"flipped rule field", func(t *testing.T, db *sqldb.DB, _ int64, dom string) {
			r := rawRules(t, db)[0]
			exec(t, db, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", flip(r.V0), r.ID)
		}, fieldcrypt.ErrTampered, "casbin_rule"},
		{"rule field of another tenant", func(t *testing.T, db *sqldb.DB, _ int64, dom string) {
			v, _ := keyring(t, keyA).Encrypt(dom+"0", "role:role0")
			r := rawRules(t, db)[0]
			exec(t, db, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", v, r.ID)
		}, fieldcrypt.ErrTampered, "casbin_rule"},
		{"clear rule field injected", func(t *testing.T, db *sqldb.DB, _ int64, dom string) {
			insertRule(t, db, "g", "mallory", "role:role0", dom)
		}, fieldcrypt.ErrNotEncrypted, "casbin_rule"},
		{"clear role injected", func(t *testing.T, db *sqldb.DB, id int64, _ string) {
			exec(t, db, "INSERT INTO roles (tenant_id, name, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)", id, "superuser")
		}, fieldcrypt.ErrNotEncrypted, "roles"},
		{"rule under an unknown key", func(t *testing.T, db *sqldb.DB, _ int64, dom string) {
			const keyC = "u1I2o3P4a5S6d7F8g9H0j1K2l3Z4x5C6"
			v, _ := keyring(t, keyC).Encrypt(dom, "mallory")
			insertRule(t, db, "g", v, "role:role0", dom)
		}, fieldcrypt.ErrUnknownKey, "casbin_rule"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			db := openSQLite(t)
			ids, _ := rotationFixture(t, db, keyA)
			tc.tamper(t, db, ids[0], fmt.Sprint(ids[0]))
			before := tableValues(t, db, tc.table)
			_, err := storeWith(t, db, keyB, keyA).Rekey(context.Background(), 1000, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Rekey = %v, want %v", err, tc.want)
			}
			if got := tableValues(t, db, tc.table); !reflect.DeepEqual(got, before) {
				t.Errorf("the failed batch changed %s", tc.table)
			}
			if err := storeWith(t, db, keyB).CheckEncryption(context.Background()); !errors.Is(err, ErrWrongKey) {
				t.Errorf("after a failed rekey the key-check moved to B: CheckEncryption(B) = %v", err)
			}
		})
	}
}

// TestRekeyRefusesWrongKey: rekey with a key that does not open the
// database (and no previous key that does) changes nothing.
func TestRekeyRefusesWrongKey(t *testing.T) {
	db := openSQLite(t)
	rotationFixture(t, db, keyA)
	before := storedValues(t, db)
	if _, err := storeWith(t, db, keyB).Rekey(context.Background(), 10, nil); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Rekey with B alone = %v, want ErrWrongKey", err)
	}
	if _, err := storeWith(t, db).Rekey(context.Background(), 10, nil); err == nil {
		t.Errorf("Rekey without keys succeeded")
	}
	if got := storedValues(t, db); !reflect.DeepEqual(got, before) {
		t.Errorf("a refused rekey changed stored names")
	}
}

// tableValues are the stored names of one table (casbin_rule or roles).
func tableValues(t testing.TB, db *sqldb.DB, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for where, v := range storedValues(t, db) {
		if strings.HasPrefix(where, table+" ") {
			out[where] = v
		}
	}
	if len(out) == 0 {
		t.Fatalf("no stored names in %s", table)
	}
	return out
}

// TestRemoveDuringRekey: a removal that meets a row rekey is re-encrypting
// in a transaction not yet committed (PostgreSQL: writers of other
// processes run concurrently) must still remove it once rekey commits.
// Deleting each key's form in a statement of its own missed it: the
// current key's form did not match the row yet, the previous key's no
// longer did when the lock was granted.
func TestRemoveDuringRekey(t *testing.T) {
	cases := []struct {
		name string
		op   func(ctx context.Context, tx policy.Tx, id int64, dom string) error
	}{
		{"exact rule", func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
			return tx.RemoveRules(ctx, "p", [][]string{{"role:admin", dom, "read"}})
		}},
		{"filtered rules", func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
			return tx.RemoveFilteredRules(ctx, "p", 0, "role:admin", dom)
		}},
		{"role row", func(ctx context.Context, tx policy.Tx, id int64, _ string) error {
			_, err := tx.DeleteRole(ctx, id, "admin")
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			db := openPostgres(t)
			ctx := context.Background()
			sA, sBA := storeWith(t, db, keyA), storeWith(t, db, keyB, keyA)
			id, dom := tenantID(t, sA, 1)
			seedTenant(t, sA, id, []string{"admin"}, [][2]string{{"admin", "read"}}, nil, nil)
			kB := keyring(t, keyB)
			// Rekey's batch, held open: the row and the role under B.
			rekeyTx := db.Gorm().Begin()
			defer rekeyTx.Rollback()
			sub, _ := kB.Encrypt(dom, "role:admin")
			obj, _ := kB.Encrypt(dom, "read")
			name, _ := kB.Encrypt(dom, "admin")
			if err := rekeyTx.Exec("UPDATE casbin_rule SET v0 = ?, v2 = ? WHERE ptype = 'p'", sub, obj).Error; err != nil {
				t.Fatal(err)
			}
			if err := rekeyTx.Exec("UPDATE roles SET name = ?", name).Error; err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				errc <- sBA.Change(ctx, func(ctx context.Context, tx policy.Tx) error { return tc.op(ctx, tx, id, dom) })
			}()
			// Wait until the removal waits for the row lock (or is done).
			for waiting := false; !waiting; {
				select {
				case err := <-errc:
					errc <- err
					waiting = true
					continue
				default:
				}
				var n int64
				if err := db.Gorm().Raw(`SELECT COUNT(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'DELETE%'`).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				waiting = n > 0
			}
			if err := rekeyTx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("removal: %v", err)
			}
			table, left := "casbin_rule", len(rawRules(t, db))
			if tc.name == "role row" {
				table, left = "roles", len(rawRoles(t, db))
			}
			if left != 0 {
				t.Errorf("%s holds %d rows after the removal, want 0: the removal missed the row rekey re-encrypted", table, left)
			}
		})
	}
}

// readSettings returns the settings table.
func readSettings(t testing.TB, db *sqldb.DB) map[string]string {
	t.Helper()
	var rows []settingRow
	if err := db.Gorm().Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.Name] = r.Value
	}
	return out
}

// restoreSettings puts the settings table back as it was.
func restoreSettings(t testing.TB, db *sqldb.DB, settings map[string]string) {
	t.Helper()
	exec(t, db, "DELETE FROM settings")
	for k, v := range settings {
		exec(t, db, "INSERT INTO settings (name, value) VALUES (?, ?)", k, v)
	}
}
