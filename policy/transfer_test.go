package policy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// entries records the audit entries of changes.
type entries struct {
	mu   sync.Mutex
	list []audit.Entry
}

func (e *entries) RecordChange(_ context.Context, x audit.Entry) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, x)
	return nil
}

func (e *entries) since(n int) []audit.Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Entry(nil), e.list[n:]...)
}

func (e *entries) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.list)
}

// transferFixture is a Service over one database with a tenant to export
// (src) and an empty one to import into (dst).
type transferFixture struct {
	t        *testing.T
	ctx      context.Context
	db       *sqldb.DB
	svc      *policy.Service
	rec      *entries
	src, dst policy.KeyHash
}

func newTransferFixture(t *testing.T, db *sqldb.DB, store *policydb.Store, modelText string) *transferFixture {
	t.Helper()
	rec := &entries{}
	svc, err := policy.New(store, modelText, policy.Options{Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	return &transferFixture{t: t, ctx: context.Background(), db: db, svc: svc, rec: rec,
		src: mustKey(t, keyA), dst: mustKey(t, keyB)}
}

func (f *transferFixture) must(what string, ok bool, err error) {
	f.t.Helper()
	if err != nil || !ok {
		f.t.Fatalf("%s = %v, %v; want true", what, ok, err)
	}
}

// export returns the tenant's policy file as text.
func (f *transferFixture) export(key policy.KeyHash) string {
	f.t.Helper()
	pf, err := f.svc.ExportPolicy(f.ctx, key)
	if err != nil {
		f.t.Fatalf("ExportPolicy: %v", err)
	}
	var b bytes.Buffer
	if err := pf.WriteCSV(&b); err != nil {
		f.t.Fatalf("WriteCSV: %v", err)
	}
	return b.String()
}

func (f *transferFixture) parse(text string) policy.PolicyFile {
	f.t.Helper()
	pf, err := policy.ParsePolicyCSV(strings.NewReader(text))
	if err != nil {
		f.t.Fatalf("ParsePolicyCSV: %v\n%s", err, text)
	}
	return pf
}

// decisions renders every answer of the service about the names given.
func (f *transferFixture) decisions(key policy.KeyHash, users, roles, perms []string) string {
	f.t.Helper()
	ctx, svc := f.ctx, f.svc
	var b strings.Builder
	must := func(err error) {
		f.t.Helper()
		if err != nil {
			f.t.Fatal(err)
		}
	}
	rs, err := svc.ListRoles(ctx, key)
	must(err)
	for _, r := range rs {
		fmt.Fprintf(&b, "role %s ", r.Name)
	}
	b.WriteString("\n")
	for _, r := range roles {
		ps, err := svc.RolePermissions(ctx, key, r)
		must(err)
		ms, err := svc.Members(ctx, key, r)
		must(err)
		pa, err := svc.RoleParents(ctx, key, r)
		must(err)
		fmt.Fprintf(&b, "role %s perms %q members %v parents %v", r, sortedCopy(ps), ms, pa)
		for _, p := range perms {
			ok, err := svc.RoleHasPermission(ctx, key, r, p)
			must(err)
			fmt.Fprintf(&b, " %s=%v", p, ok)
		}
		b.WriteString("\n")
	}
	for _, u := range users {
		ps, err := svc.UserPermissions(ctx, key, u)
		must(err)
		rs, err := svc.UserRoles(ctx, key, u)
		must(err)
		fmt.Fprintf(&b, "user %s perms %q roles %v", u, sortedCopy(ps), rs)
		for _, p := range perms {
			ok, err := svc.HasPermission(ctx, key, u, p)
			must(err)
			fmt.Fprintf(&b, " %s=%v", p, ok)
		}
		b.WriteString("\n")
	}
	for _, p := range perms {
		ws, err := svc.WhichRolesCan(ctx, key, p)
		must(err)
		us, err := svc.WhichUsersCan(ctx, key, p)
		must(err)
		fmt.Fprintf(&b, "perm %s roles %v users %v\n", p, ws, us)
	}
	return b.String()
}

// A round trip, export then import into an empty tenant, reproduces every
// decision, under the default model and under a glob model whose patterns
// need CSV quoting, in clear and with field encryption.
func TestExportImportRoundTripSQLite(t *testing.T) {
	t.Parallel()
	runRoundTrip(t, func(t *testing.T) *sqldb.DB { return openSQLite(t) })
}

func TestExportImportRoundTripPostgres(t *testing.T) {
	t.Parallel()
	runRoundTrip(t, func(t *testing.T) *sqldb.DB { return openPostgres(t) })
}

func runRoundTrip(t *testing.T, open func(t *testing.T) *sqldb.DB) {
	glob := readModel(t, "globmatch.conf")
	for _, tc := range []struct {
		name      string
		model     string
		encrypted bool
		grants    [][2]string // role, permission
		perms     []string    // checked
	}{
		{"default", auth.DefaultModel, false,
			[][2]string{{"viewer", "read"}, {"admin", "write"}, {"ops", "deploy"}, {"admin", "read"}},
			[]string{"read", "write", "deploy", "none"}},
		{"default/encrypted", auth.DefaultModel, true,
			[][2]string{{"viewer", "read"}, {"admin", "write"}, {"ops", "deploy"}},
			[]string{"read", "write", "deploy", "none"}},
		{"globmatch/encrypted", glob, true,
			[][2]string{{"viewer", "/reports/{q1,q2}"}, {"admin", "/reports/**"}, {"ops", "/deploy/[!x]?"}, {"admin", "/a,b"}},
			[]string{"/reports/q1", "/reports/q3", "/reports/x/y", "/deploy/ab", "/deploy/xb", "/a,b", "/a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			store := policydb.New(db)
			if tc.encrypted {
				keys, err := fieldcrypt.NewKeyring(benchEncryptionKey)
				if err != nil {
					t.Fatal(err)
				}
				store = store.WithEncryption(keys)
			}
			f := newTransferFixture(t, db, store, tc.model)
			ctx, svc := f.ctx, f.svc
			for _, r := range []string{"admin", "ops", "viewer", "empty"} {
				ok, err := svc.CreateRole(ctx, f.src, r)
				f.must("CreateRole "+r, ok, err)
			}
			for _, g := range tc.grants {
				ok, err := svc.Grant(ctx, f.src, g[0], g[1])
				f.must("Grant "+g[0]+" "+g[1], ok, err)
			}
			ok, err := svc.AddRoleParent(ctx, f.src, "admin", "viewer")
			f.must("AddRoleParent", ok, err)
			for _, m := range [][2]string{{"alice", "admin"}, {"bob", "viewer"}, {"dave", "ops"}, {"erin@x.org", "ops"}} {
				ok, err := svc.AddMember(ctx, f.src, m[0], m[1])
				f.must("AddMember", ok, err)
			}
			// The destination exists (as `tenant create` makes it) and is empty.
			ok, err = svc.CreateRole(ctx, f.dst, "tmp")
			f.must("CreateRole dst", ok, err)
			ok, err = svc.DeleteRole(ctx, f.dst, "tmp")
			f.must("DeleteRole dst", ok, err)

			text := f.export(f.src)
			res, err := svc.ImportPolicy(ctx, f.dst, f.parse(text), policy.ImportOptions{})
			if err != nil {
				t.Fatalf("ImportPolicy: %v\n%s", err, text)
			}
			if res.RolesCreated != 4 || res.RolesDeleted != 0 || res.RulesRemoved != 0 || res.RulesAdded != len(tc.grants)+5 || res.Version != 3 {
				t.Errorf("import result %+v", res)
			}
			users := []string{"alice", "bob", "dave", "erin@x.org", "ghost"}
			roles := []string{"admin", "ops", "viewer", "empty", "ghost"}
			want := f.decisions(f.src, users, roles, tc.perms)
			if got := f.decisions(f.dst, users, roles, tc.perms); got != want {
				t.Errorf("decisions after the round trip:\n%s\nwant:\n%s\nfile:\n%s", got, want, text)
			}
			// The destination exports the same roles and rules, in its domain.
			srcDom, _ := tenantDomain(t, db, f.src)
			dstDom, _ := tenantDomain(t, db, f.dst)
			same := func(text, dom string) policy.PolicyFile {
				pf := f.parse(text)
				for i, r := range pf.Rules {
					d := &r.Fields[1]
					if r.Ptype == "g" {
						d = &r.Fields[2]
					}
					if *d != dom {
						t.Errorf("rule %v of an export is not in domain %s", r.Fields, dom)
					}
					*d = "D"
					pf.Rules[i].Line = 0
				}
				return pf
			}
			if got, want := same(f.export(f.dst), dstDom), same(text, srcDom); !reflect.DeepEqual(got, want) {
				t.Errorf("export of the imported tenant:\n%+v\nwant:\n%+v", got, want)
			}
			// Names are stored encrypted: the database holds none in clear.
			if tc.encrypted {
				var n int64
				if err := db.Gorm().Raw("SELECT COUNT(*) FROM casbin_rule WHERE v0 = 'alice' OR v1 = 'role:admin' OR v0 = 'role:admin'").Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d rules hold names in clear under encryption", n)
				}
			}
			// A service started afresh over the database answers the same.
			f2 := newTransferFixture(t, db, store, tc.model)
			if got := f2.decisions(f.dst, users, roles, tc.perms); got != want {
				t.Errorf("decisions after a restart:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A dry run validates and counts, and changes nothing: no rule, no role, no
// version, no audit entry, and no tenant is created.
func TestImportDryRun(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	f := newTransferFixture(t, db, policydb.New(db), auth.DefaultModel)
	ctx, svc := f.ctx, f.svc
	ok, err := svc.CreateRole(ctx, f.src, "old")
	f.must("CreateRole", ok, err)
	ok, err = svc.Grant(ctx, f.src, "old", "read")
	f.must("Grant", ok, err)
	before, n := f.export(f.src), f.rec.len()
	file := f.parse("# role: extra\np, role:admin, 9, read\np, role:admin, 9, write\ng, alice, role:admin, 9\n")
	res, err := svc.ImportPolicy(ctx, f.src, file, policy.ImportOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.ImportResult{Roles: 2, Rules: 3, RolesCreated: 2, RolesDeleted: 1, RulesAdded: 3, RulesRemoved: 1}
	if res != want {
		t.Errorf("dry run = %+v, want %+v", res, want)
	}
	if after := f.export(f.src); after != before || f.rec.len() != n {
		t.Errorf("a dry run changed the tenant:\n%s\nwas:\n%s", after, before)
	}
	// Into a tenant that does not exist: counted, and nothing created.
	if _, err := svc.ImportPolicy(ctx, f.dst, file, policy.ImportOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, found := tenantDomain(t, db, f.dst); found {
		t.Errorf("a dry run created its tenant")
	}
	// Merge counts no removal.
	res, err = svc.ImportPolicy(ctx, f.src, file, policy.ImportOptions{DryRun: true, Merge: true})
	if err != nil || res.RolesDeleted != 0 || res.RulesRemoved != 0 || res.RulesAdded != 3 {
		t.Errorf("merge dry run = %+v, %v", res, err)
	}
}

// Replace removes what the file lacks; merge keeps it. Each import is one
// audited change with its counts, and bumps the version once.
func TestImportReplaceAndMerge(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	f := newTransferFixture(t, db, policydb.New(db), auth.DefaultModel)
	ctx, svc := f.ctx, f.svc
	for _, r := range []string{"old", "admin"} {
		ok, err := svc.CreateRole(ctx, f.src, r)
		f.must("CreateRole", ok, err)
	}
	ok, err := svc.Grant(ctx, f.src, "old", "legacy")
	f.must("Grant", ok, err)
	ok, err = svc.AddMember(ctx, f.src, "carl", "old")
	f.must("AddMember", ok, err)
	n := f.rec.len()
	res, err := svc.ImportPolicy(ctx, f.src, f.parse("p, role:admin, 7, read\ng, alice, role:admin, 7\ng, alice, role:admin, 7\n"), policy.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.RolesDeleted != 1 || res.RulesRemoved != 2 || res.RulesAdded != 2 || res.Rules != 2 || res.Version != 5 {
		t.Errorf("replace = %+v", res)
	}
	es := f.rec.since(n)
	if len(es) != 1 || es[0].Action != audit.ImportPolicy || es[0].Resource != "policy" || !es[0].Success || es[0].Version != 5 ||
		es[0].Details["mode"] != "replace" || es[0].Details["rules_added"] != 2 || es[0].Details["rules_removed"] != 2 {
		t.Errorf("audit entries %+v, want one IMPORT_POLICY replace entry", es)
	}
	got := f.decisions(f.src, []string{"alice", "carl"}, []string{"admin", "old"}, []string{"read", "legacy"})
	want := "role admin \n" +
		"role admin perms [\"read\"] members [alice] parents [] read=true legacy=false\n" +
		"role old perms [] members [] parents [] read=false legacy=false\n" +
		"user alice perms [\"read\"] roles [admin] read=true legacy=false\n" +
		"user carl perms [] roles [] read=false legacy=false\n" +
		"perm read roles [admin] users [{alice admin}]\n" +
		"perm legacy roles [] users []\n"
	if got != want {
		t.Errorf("after replace:\n%s\nwant:\n%s", got, want)
	}
	res, err = svc.ImportPolicy(ctx, f.src, f.parse("p, role:ops, 7, deploy\ng, alice, role:admin, 7\n"), policy.ImportOptions{Merge: true})
	if err != nil || res.RolesCreated != 1 || res.RulesAdded != 1 || res.RulesRemoved != 0 || res.RolesDeleted != 0 {
		t.Errorf("merge = %+v, %v", res, err)
	}
	if ok, err := svc.HasPermission(ctx, f.src, "alice", "read"); err != nil || !ok {
		t.Errorf("merge dropped alice's read: %v, %v", ok, err)
	}
	if ws, err := svc.WhichRolesCan(ctx, f.src, "deploy"); err != nil || len(ws) != 1 || ws[0] != "ops" {
		t.Errorf("WhichRolesCan(deploy) = %v, %v after merge", ws, err)
	}
}

// Every bad line is reported with its number, and nothing is imported.
func TestImportValidation(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	f := newTransferFixture(t, db, policydb.New(db), readModel(t, "keymatch2.conf"))
	ctx, svc := f.ctx, f.svc
	ok, err := svc.CreateRole(ctx, f.src, "keep")
	f.must("CreateRole", ok, err)
	for _, tc := range []struct {
		name  string
		file  string
		merge bool
		want  []string // "line N: substring"
	}{
		{"names and shapes", strings.Join([]string{
			"p, role:admin, 1, /reports/*", // 1: fine
			"p, alice, 1, read",            // 2: a user grant
			"p, role:a.b, 1, read",         // 3: bad role
			"p, role:admin, 1, /a b",       // 4: bad permission
			"p, role:admin, 1, /a/**",      // 5: not a keyMatch2 pattern
			"g, bad user, role:admin, 1",   // 6
			"g, alice, admin, 1",           // 7: role without role:
			"g2, alice, role:admin, 1",     // 8: unknown type
			"p, role:admin, 1",             // 9: too few fields
			"p, role:admin, 2, read",       // 10: another domain
			"g, role:admin, role:admin, 1", // 11: a self link
			"p, role:admin, , read",        // 12: empty domain
		}, "\n"), false, []string{
			"line 2: subject \"alice\" must be a role",
			"line 3: subject \"role:a.b\": role names",
			"line 4: invalid permission name \"/a b\": Under this model (keyMatch2)",
			"line 5: invalid permission name \"/a/**\": It is not a valid keyMatch2 pattern",
			"line 6: user \"bad user\"",
			"line 7: role \"admin\" must be a role, written role:NAME",
			"line 8: rule type \"g2\"",
			"line 9: a p rule has 3 fields",
			"line 10: domain \"2\" differs from domain \"1\" of line 1",
			"line 11: role admin cannot inherit from itself",
			"line 12: empty domain",
		}},
		{"cycle", "g, role:a, role:b, 1\ng, role:b, role:c, 1\ng, role:c, role:a, 1\n", false,
			[]string{"closes a cycle of role inheritance"}},
		{"too deep", func() string {
			var b strings.Builder
			for i := range 9 {
				fmt.Fprintf(&b, "g, role:r%d, role:r%d, 1\n", i, i+1)
			}
			return b.String()
		}(), false, []string{"line 1: role r0 would inherit through a chain of 9 links, more than the maximum of 8"}},
		{"bad declaration", "# role: a.b\n", false, []string{"role declaration \"a.b\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, n := f.export(f.src), f.rec.len()
			file, err := policy.ParsePolicyCSV(strings.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, dry := range []bool{true, false} {
				_, err = svc.ImportPolicy(ctx, f.src, file, policy.ImportOptions{DryRun: dry, Merge: tc.merge})
				var ie *policy.ImportError
				if !errors.As(err, &ie) || !errors.Is(err, policy.ErrInvalidPolicy) {
					t.Fatalf("dry=%v: error %v, want an *ImportError", dry, err)
				}
				if len(ie.Problems) != len(tc.want) {
					t.Errorf("dry=%v: %d problems, want %d:\n%v", dry, len(ie.Problems), len(tc.want), err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("dry=%v: error does not say %q:\n%v", dry, w, err)
					}
				}
			}
			if after := f.export(f.src); after != before || f.rec.len() != n {
				t.Errorf("a refused import changed the tenant")
			}
		})
	}
}

// TestImportManyRules: an import adds more rules than one SQL statement may
// bind (SQLite takes 32 766 values, 7 a rule), on both databases.
func TestImportManyRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		f := newTransferFixture(t, db, policydb.New(db), auth.DefaultModel)
		var text strings.Builder
		const roles, perms = 10, 500 // 5 000 grants
		for r := 0; r < roles; r++ {
			for p := 0; p < perms; p++ {
				fmt.Fprintf(&text, "p, role:r%d, 7, perm%d\n", r, p)
			}
		}
		text.WriteString("g, alice, role:r3, 7\n")
		res, err := f.svc.ImportPolicy(f.ctx, f.dst, f.parse(text.String()), policy.ImportOptions{})
		if err != nil {
			t.Fatalf("import of %d rules: %v", roles*perms+1, err)
		}
		if res.RulesAdded != roles*perms+1 {
			t.Errorf("import added %d rules, want %d", res.RulesAdded, roles*perms+1)
		}
		if ok, err := f.svc.HasPermission(f.ctx, f.dst, "alice", "perm499"); err != nil || !ok {
			t.Errorf("alice perm499 = %v, %v; want true", ok, err)
		}
	})
}
