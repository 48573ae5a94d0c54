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

// TestEncryptedStorage: names are stored encrypted under the tenant's key,
// tenant and ptype in clear, and load back as they were written.
func TestEncryptedStorage(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := storeWith(t, db, keyA)
		if err := s.CheckEncryption(context.Background()); err != nil {
			t.Fatalf("CheckEncryption on an empty database: %v", err)
		}
		names := []string{"admin", "editor", "read", "write", "john", "jane@example.com"}
		var ids []int64
		for n := 1; n <= 2; n++ {
			id, _ := tenantID(t, s, n)
			ids = append(ids, id)
			seedTenant(t, s, id, []string{"admin", "editor"},
				[][2]string{{"admin", "read"}, {"admin", "write"}, {"editor", "read"}},
				[][2]string{{"john", "admin"}, {"jane@example.com", "editor"}},
				[][2]string{{"editor", "admin"}})
		}
		idA := keyID(t, keyA)
		// ciphertexts[tenant][plain] = stored value
		ciphertexts := map[string]map[string]string{}
		note := func(dom, plain, stored string) {
			if ciphertexts[dom] == nil {
				ciphertexts[dom] = map[string]string{}
			}
			if prev, ok := ciphertexts[dom][plain]; ok && prev != stored {
				t.Errorf("tenant %s: %q stored as %q and as %q; want one deterministic ciphertext", dom, plain, prev, stored)
			}
			ciphertexts[dom][plain] = stored
		}
		k := keyring(t, keyA)
		for _, r := range rawRules(t, db) {
			fields := []string{r.V0, r.V1, r.V2}
			sec := r.Ptype
			if sec != "p" && sec != "g" {
				t.Errorf("row %d: ptype %q, want p or g in clear", r.ID, r.Ptype)
				continue
			}
			dom := fields[domainField(sec)]
			if dom != fmt.Sprint(ids[0]) && dom != fmt.Sprint(ids[1]) {
				t.Errorf("row %d: domain field %q is not a tenant id in clear", r.ID, dom)
			}
			if r.V3 != "" || r.V4 != "" || r.V5 != "" {
				t.Errorf("row %d: v3..v5 = %q %q %q, want empty", r.ID, r.V3, r.V4, r.V5)
			}
			for i, v := range fields {
				if !sealed(sec, i) {
					continue
				}
				if got := fieldcrypt.KeyID(v); got != idA {
					t.Errorf("row %d v%d = %q: key id %q, want key A's %q", r.ID, i, v, got, idA)
					continue
				}
				plain, err := k.Decrypt(dom, v)
				if err != nil {
					t.Errorf("row %d v%d: %v", r.ID, i, err)
				}
				note(dom, plain, v)
			}
		}
		for _, r := range rawRoles(t, db) {
			if r.Description != nil {
				t.Errorf("role %d: description %q, want NULL (none was set)", r.ID, *r.Description)
			}
			plain, err := k.Decrypt(fmt.Sprint(r.TenantID), r.Name)
			if err != nil {
				t.Errorf("role %d name %q: %v", r.ID, r.Name, err)
			}
			note(fmt.Sprint(r.TenantID), plain, r.Name)
		}
		for where, v := range storedValues(t, db) {
			for _, n := range names {
				if strings.Contains(v, n) {
					t.Errorf("%s = %q holds the name %q in clear", where, v, n)
				}
			}
		}
		// Equal names of the two tenants are stored differently.
		d1, d2 := fmt.Sprint(ids[0]), fmt.Sprint(ids[1])
		if len(ciphertexts[d1]) == 0 || len(ciphertexts[d1]) != len(ciphertexts[d2]) {
			t.Fatalf("stored names per tenant: %d and %d, want the same non-zero number", len(ciphertexts[d1]), len(ciphertexts[d2]))
		}
		for plain, c1 := range ciphertexts[d1] {
			if c2 := ciphertexts[d2][plain]; c1 == c2 {
				t.Errorf("%q is stored alike in both tenants: %q", plain, c1)
			}
		}
		// Casbin gets clear values.
		want := view{
			P:     []string{"role:admin,%s,read", "role:admin,%s,write", "role:editor,%s,read"},
			G:     []string{"jane@example.com,role:editor,%s", "john,role:admin,%s", "role:editor,role:admin,%s"},
			Roles: []string{"admin", "editor"},
		}
		for _, id := range ids {
			w := view{Roles: want.Roles}
			for _, p := range want.P {
				w.P = append(w.P, fmt.Sprintf(p, fmt.Sprint(id)))
			}
			for _, g := range want.G {
				w.G = append(w.G, fmt.Sprintf(g, fmt.Sprint(id)))
			}
			if got := mustLoad(t, s, id); !reflect.DeepEqual(got, w) {
				t.Errorf("tenant %d loads as\n %v\nwant\n %v", id, got, w)
			}
		}
	})
}

// TestClearStorageUnchanged: without encryption the rows hold the names as
// they are (the table is Casbin's), and no key-check record is written.
func TestClearStorageUnchanged(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := storeWith(t, db)
		if err := s.CheckEncryption(context.Background()); err != nil {
			t.Fatal(err)
		}
		id, dom := tenantID(t, s, 1)
		seedTenant(t, s, id, []string{"admin"}, [][2]string{{"admin", "read"}}, [][2]string{{"john", "admin"}}, nil)
		got := rawRules(t, db)
		want := [][]string{{"p", "role:admin", dom, "read"}, {"g", "john", "role:admin", dom}}
		if len(got) != len(want) {
			t.Fatalf("rows = %+v, want %q", got, want)
		}
		for i, r := range got {
			if g := []string{r.Ptype, r.V0, r.V1, r.V2}; !reflect.DeepEqual(g, want[i]) {
				t.Errorf("row %d = %q, want %q", i, g, want[i])
			}
		}
		if roles := rawRoles(t, db); len(roles) != 1 || roles[0].Name != "admin" {
			t.Errorf("roles = %+v, want admin in clear", roles)
		}
		if _, found, _ := s.keyCheck(context.Background()); found {
			t.Errorf("a key-check record was written without encryption")
		}
	})
}

// TestCryptAdapterVariants: while data is re-encrypted a row may be under
// the previous key or the current one; removals (exact and filtered, with
// wildcards) find it either way, and never reach another tenant.
func TestCryptAdapterVariants(t *testing.T) {
	type op func(ctx context.Context, tx policy.Tx, id int64, dom string) error
	cases := []struct {
		name    string
		op      op
		removed []string // rules (p: and g: prefixed) of tenant 1 that go
		roles   []string // roles of tenant 1 that remain
	}{
		{"exact rule under the previous key",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveRules(ctx, "p", [][]string{{"role:editor", dom, "read"}})
			}, []string{"p:role:editor,%s,read"}, nil},
		{"exact rule under the current key",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveRules(ctx, "p", [][]string{{"role:editor", dom, "deploy"}})
			}, []string{"p:role:editor,%s,deploy"}, nil},
		{"exact membership under each key",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveRules(ctx, "g", [][]string{{"john", "role:editor", dom}, {"ann", "role:editor", dom}})
			}, []string{"g:john,role:editor,%s", "g:ann,role:editor,%s"}, nil},
		{"grants of a role",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveFilteredRules(ctx, "p", 0, "role:editor", dom)
			}, []string{"p:role:editor,%s,read", "p:role:editor,%s,write", "p:role:editor,%s,deploy"}, nil},
		{"members and children of a role",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveFilteredRules(ctx, "g", 1, "role:editor", dom)
			}, []string{"g:john,role:editor,%s", "g:ann,role:editor,%s"}, nil},
		{"parent links of a role, middle field a wildcard",
			func(ctx context.Context, tx policy.Tx, _ int64, dom string) error {
				return tx.RemoveFilteredRules(ctx, "g", 0, "role:editor", "", dom)
			}, []string{"g:role:editor,role:viewer,%s", "g:role:editor,role:base,%s"}, nil},
		{"role row under the previous key",
			func(ctx context.Context, tx policy.Tx, id int64, _ string) error {
				ok, err := tx.DeleteRole(ctx, id, "viewer")
				if err == nil && !ok {
					err = errors.New("DeleteRole(viewer) = false")
				}
				return err
			}, nil, []string{"admin", "editor", "base"}},
		{"role row under the current key",
			func(ctx context.Context, tx policy.Tx, id int64, _ string) error {
				ok, err := tx.DeleteRole(ctx, id, "base")
				if err == nil && !ok {
					err = errors.New("DeleteRole(base) = false")
				}
				return err
			}, nil, []string{"admin", "editor", "viewer"}},
		{"existing roles are found under either key",
			func(ctx context.Context, tx policy.Tx, id int64, _ string) error {
				for _, r := range []string{"viewer", "base"} {
					if ok, err := tx.RoleExists(ctx, id, r); err != nil || !ok {
						return fmt.Errorf("RoleExists(%s) = %v, %v", r, ok, err)
					}
					if created, err := tx.CreateRole(ctx, id, r); err != nil || created {
						return fmt.Errorf("CreateRole(%s) of an existing role = %v, %v", r, created, err)
					}
				}
				return nil
			}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				sA, sB, sBA := storeWith(t, db, keyA), storeWith(t, db, keyB), storeWith(t, db, keyB, keyA)
				id1, dom1 := tenantID(t, sA, 1)
				id2, _ := tenantID(t, sA, 2)
				for _, id := range []int64{id1, id2} {
					// Under the previous key A...
					seedTenant(t, sA, id, []string{"admin", "editor", "viewer"},
						[][2]string{{"admin", "read"}, {"editor", "read"}, {"editor", "write"}},
						[][2]string{{"john", "editor"}, {"jane", "admin"}},
						[][2]string{{"editor", "viewer"}})
					// ...and some under the current key B.
					seedTenant(t, sB, id, []string{"base"},
						[][2]string{{"editor", "deploy"}}, [][2]string{{"ann", "editor"}}, [][2]string{{"editor", "base"}})
				}
				before1, before2 := mustLoad(t, sBA, id1), mustLoad(t, sBA, id2)
				if len(before1.P) != 4 || len(before1.G) != 5 || len(before1.Roles) != 4 {
					t.Fatalf("tenant 1 before: %v; want 4 grants, 5 links, 4 roles", before1)
				}
				rows2 := len(rawRules(t, db))
				change(t, sBA, func(ctx context.Context, tx policy.Tx) error { return tc.op(ctx, tx, id1, dom1) })

				want := view{Roles: before1.Roles}
				if tc.roles != nil {
					want.Roles = tc.roles
				}
				gone := map[string]bool{}
				for _, r := range tc.removed {
					gone[fmt.Sprintf(r, dom1)] = true
				}
				for _, p := range before1.P {
					if !gone["p:"+p] {
						want.P = append(want.P, p)
					}
				}
				for _, g := range before1.G {
					if !gone["g:"+g] {
						want.G = append(want.G, g)
					}
				}
				if got := mustLoad(t, sBA, id1); !reflect.DeepEqual(got, want) {
					t.Errorf("tenant 1 after:\n got %v\nwant %v", got, want)
				}
				if got := len(rawRules(t, db)); got != rows2-len(tc.removed) {
					t.Errorf("casbin_rule holds %d rows, want %d (%d removed)", got, rows2-len(tc.removed), len(tc.removed))
				}
				if got := mustLoad(t, sBA, id2); !reflect.DeepEqual(got, before2) {
					t.Errorf("tenant 2 changed:\n got %v\nwant %v", got, before2)
				}
			})
		})
	}
}

// TestCryptAdapterNeedsTenant: a rule or filter without its tenant cannot
// be encrypted, and is refused rather than written or matched in clear.
func TestCryptAdapterNeedsTenant(t *testing.T) {
	db := openSQLite(t)
	s := storeWith(t, db, keyA)
	id, dom := tenantID(t, s, 1)
	seedTenant(t, s, id, []string{"admin"}, [][2]string{{"admin", "read"}}, [][2]string{{"john", "admin"}}, nil)
	before := len(rawRules(t, db))
	a, err := s.ruleAdapterFor(db.Gorm())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
	}{
		{"add p without tenant", func() error { return a.AddPoliciesCtx(ctx, "p", "p", [][]string{{"role:admin"}}) }},
		{"add g with an empty tenant", func() error { return a.AddPoliciesCtx(ctx, "g", "g", [][]string{{"john", "role:admin", ""}}) }},
		{"remove g without tenant", func() error { return a.RemovePolicyCtx(ctx, "g", "g", []string{"john", "role:admin"}) }},
		{"filter p without tenant", func() error { return a.RemoveFilteredPolicyCtx(ctx, "p", "p", 0, "role:admin") }},
		{"filter g without tenant", func() error { return a.RemoveFilteredPolicyCtx(ctx, "g", "g", 0, "john", "role:admin") }},
		{"filter g with a wildcard tenant", func() error { return a.RemoveFilteredPolicyCtx(ctx, "g", "g", 1, "role:admin", "") }},
	}
	for _, tc := range cases {
		if err := tc.call(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if got := len(rawRules(t, db)); got != before {
		t.Errorf("casbin_rule holds %d rows, want the %d it had", got, before)
	}
	// The same calls with the tenant work.
	if err := a.RemoveFilteredPolicyCtx(ctx, "g", "g", 1, "role:admin", dom); err != nil {
		t.Fatal(err)
	}
	if got := len(rawRules(t, db)); got != before-1 {
		t.Errorf("casbin_rule holds %d rows after removing the membership, want %d", got, before-1)
	}
}

// flip changes one base64 character inside a ciphertext's body (not the
// last one, whose spare bits a lax decoder would ignore).
func flip(v string) string {
	i := len(v) - 5
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}

// TestLoadFailsClosed: a stored name that does not authenticate fails the
// tenant's load with the matching error; the error shows neither a name
// nor a ciphertext, and other tenants load as before.
func TestLoadFailsClosed(t *testing.T) {
	type fixture struct {
		db       *sqldb.DB
		ids      [2]int64
		doms     [2]string
		p, g     [2]rawRule // each tenant's first p and g rows
		role     [2]roleRow
		keysA    *fieldcrypt.Keyring
		keysB    *fieldcrypt.Keyring
		roleDesc string // tenant 0's description, as stored
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T, f *fixture) int // the tenant (0 or 1) that must fail
		want   error
		// other tenant's rules change too (a row moved out of it)
		otherChanged bool
	}{
		{"p subject copied from the other tenant", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", f.p[1].V0, f.p[0].ID)
			return 0
		}, fieldcrypt.ErrTampered, false},
		{"p object flipped", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE casbin_rule SET v2 = ? WHERE id = ?", flip(f.p[0].V2), f.p[0].ID)
			return 0
		}, fieldcrypt.ErrTampered, false},
		{"g role copied from the other tenant", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE casbin_rule SET v1 = ? WHERE id = ?", f.g[0].V1, f.g[1].ID)
			return 1
		}, fieldcrypt.ErrTampered, false},
		{"g user in clear", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", "vjohn", f.g[0].ID)
			return 0
		}, fieldcrypt.ErrNotEncrypted, false},
		{"g user under an unknown key", func(t *testing.T, f *fixture) int {
			v, _ := f.keysB.Encrypt(f.doms[0], "vjohn")
			exec(t, f.db, "UPDATE casbin_rule SET v0 = ? WHERE id = ?", v, f.g[0].ID)
			return 0
		}, fieldcrypt.ErrUnknownKey, false},
		{"whole p row moved to the other tenant", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE casbin_rule SET v1 = ? WHERE id = ?", f.doms[1], f.p[0].ID)
			return 1
		}, fieldcrypt.ErrTampered, true},
		{"role name flipped", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE roles SET name = ? WHERE id = ?", flip(f.role[0].Name), f.role[0].ID)
			return 0
		}, fieldcrypt.ErrTampered, false},
		{"role name copied from the other tenant", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE roles SET name = ? WHERE id = ?", f.role[1].Name, f.role[0].ID)
			return 0
		}, fieldcrypt.ErrTampered, false},
		{"role name in clear", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE roles SET name = ? WHERE id = ?", "donor", f.role[1].ID)
			return 1
		}, fieldcrypt.ErrNotEncrypted, false},
		{"role description copied from the other tenant", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE roles SET description = ? WHERE id = ?", f.roleDesc, f.role[1].ID)
			return 1
		}, fieldcrypt.ErrTampered, false},
		{"role description flipped", func(t *testing.T, f *fixture) int {
			exec(t, f.db, "UPDATE roles SET description = ? WHERE id = ?", flip(f.roleDesc), f.role[0].ID)
			return 0
		}, fieldcrypt.ErrTampered, false},
	}
	names := []string{"victim", "vread", "vjohn", "donor", "dread", "djohn", "secret plans"}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				s := storeWith(t, db, keyA)
				f := &fixture{db: db, keysA: keyring(t, keyA), keysB: keyring(t, keyB)}
				for i, n := range []string{"v", "d"} {
					f.ids[i], f.doms[i] = tenantID(t, s, i+1)
					role := map[string]string{"v": "victim", "d": "donor"}[n]
					seedTenant(t, s, f.ids[i], []string{role}, [][2]string{{role, n + "read"}}, [][2]string{{n + "john", role}}, nil)
				}
				desc, _ := f.keysA.Encrypt(f.doms[0], "secret plans")
				f.roleDesc = desc
				exec(t, db, "UPDATE roles SET description = ? WHERE tenant_id = ?", desc, f.ids[0])
				for _, r := range rawRules(t, db) {
					i := 0
					if (r.Ptype == "p" && r.V1 == f.doms[1]) || (r.Ptype == "g" && r.V2 == f.doms[1]) {
						i = 1
					}
					if r.Ptype == "p" {
						f.p[i] = r
					} else {
						f.g[i] = r
					}
				}
				for _, r := range rawRoles(t, db) {
					i := 0
					if r.TenantID == f.ids[1] {
						i = 1
					}
					f.role[i] = r
				}
				before := [2]view{mustLoad(t, s, f.ids[0]), mustLoad(t, s, f.ids[1])}
				if before[0].Roles[0] != "victim=secret plans" {
					t.Fatalf("tenant 1 roles = %q, want the description loaded", before[0].Roles)
				}
				bad := tc.tamper(t, f)
				got, err := load(t, s, f.ids[bad])
				if !errors.Is(err, tc.want) {
					t.Fatalf("load of the tampered tenant: %v, %v; want %v", got, err, tc.want)
				}
				if !reflect.DeepEqual(got, view{}) {
					t.Errorf("load of the tampered tenant returned %v with its error", got)
				}
				msg := err.Error()
				for _, n := range append(names, fieldcrypt.Prefix) {
					if strings.Contains(msg, n) {
						t.Errorf("the load error shows %q: %s", n, msg)
					}
				}
				if other := mustLoad(t, s, f.ids[1-bad]); !tc.otherChanged && !reflect.DeepEqual(other, before[1-bad]) {
					t.Errorf("the other tenant loads as %v, want %v", other, before[1-bad])
				}
			})
		})
	}
}
