package auditdb_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/internal/testenv"
)

const testKey = "k3y-0f-the-audit-trail-9c1e5b7d2a4f6e8091b3c5d7"

// backend opens a fresh, migrated database of one dialect; open returns
// another handle on the same database (another replica).
type backend struct {
	name string
	open func(t *testing.T) (first *sqldb.DB, another func() *sqldb.DB)
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) (*sqldb.DB, func() *sqldb.DB) {
			path := filepath.Join(t.TempDir(), "audit.sqlite3")
			o := sqldb.Options{Dialect: sqldb.SQLite, Path: path}
			return testenv.OpenDB(t, o), func() *sqldb.DB { return testenv.OpenDB(t, o) }
		}},
		{"postgres", func(t *testing.T) (*sqldb.DB, func() *sqldb.DB) {
			if testing.Short() {
				t.Skip("PostgreSQL skipped in -short mode")
			}
			o := sqldb.Options{Dialect: sqldb.Postgres, URL: testenv.PostgresURL(t)}
			return testenv.OpenDB(t, o), func() *sqldb.DB { return testenv.OpenDB(t, o) }
		}},
	}
}

func keyring(t testing.TB) *audit.Keyring {
	t.Helper()
	k, err := audit.NewKeyring([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// forEachBackend runs f on SQLite and PostgreSQL.
func forEachBackend(t *testing.T, f func(t *testing.T, db *sqldb.DB, another func() *sqldb.DB)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db, another := b.open(t)
			f(t, db, another)
		})
	}
}

var base = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// entry is a record of tenant fp at base + minutes.
func entry(fp string, minutes int, action audit.Action, user, resource string) audit.Record {
	return audit.Record{Tenant: fp, Time: base.Add(time.Duration(minutes) * time.Minute), User: user, Action: action,
		Resource: resource, Success: true, Details: `{"status_code":200}`, IP: "127.0.0.1", UserAgent: "test",
		RequestID: fmt.Sprintf("req-%s-%d", resource, minutes)}
}

func seqs(recs []audit.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendAndVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a, b := k.TenantFingerprint("a"), k.TenantFingerprint("b")
		// Batches mixing tenants, in no particular tenant order.
		batches := [][]audit.Record{
			{entry(b, 1, audit.CreateRole, "", "x"), entry(a, 1, audit.CreateRole, "", "x"), entry(b, 2, audit.DeleteRole, "", "x")},
			{entry(a, 3, audit.ListRoles, "", "all")},
			{},
			{entry(a, 4, audit.CheckPermission, "u_1", "read"), entry(a, 5, audit.CheckPermission, "u_2", "read")},
		}
		for _, batch := range batches {
			if err := st.Append(ctx, batch); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		// Append numbers the caller's records in the order given.
		if got := seqs(batches[0]); !equalInts(got, []int64{1, 1, 2}) {
			t.Errorf("seqs of the first batch = %v, want [1 1 2]", got)
		}
		for _, tc := range []struct {
			tenant string
			want   int64
		}{{a, 4}, {b, 2}} {
			n, err := st.Verify(ctx, tc.tenant)
			if err != nil || n != tc.want {
				t.Errorf("Verify(%s) = %d, %v; want %d, nil", tc.tenant, n, err, tc.want)
			}
			c, err := st.Count(ctx, tc.tenant, "")
			if err != nil || c != tc.want {
				t.Errorf("Count(%s) = %d, %v; want %d", tc.tenant, c, err, tc.want)
			}
		}
		if c, _ := st.Count(ctx, a, string(audit.CheckPermission)); c != 2 {
			t.Errorf("Count(a, CHECK_PERMISSION) = %d, want 2", c)
		}
		tenants, err := st.Tenants(ctx)
		want := []string{a, b}
		sort.Strings(want)
		if err != nil || strings.Join(tenants, ",") != strings.Join(want, ",") {
			t.Errorf("Tenants = %v, %v; want %v", tenants, err, want)
		}
		// What List returns is exactly what was sealed.
		recs, _, err := st.List(ctx, a, "", audit.Query{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(recs); !equalInts(got, []int64{4, 3, 2, 1}) {
			t.Fatalf("List seqs = %v, want [4 3 2 1]", got)
		}
		sealed := batches[3][1]
		got := recs[0]
		got.ID = 0
		if !got.Time.Equal(sealed.Time) {
			t.Errorf("time read back %v, want %v", got.Time, sealed.Time)
		}
		got.Time = sealed.Time
		if got != sealed {
			t.Errorf("record read back\n%+v\nwant\n%+v", got, sealed)
		}
		if n, err := st.Verify(ctx, k.TenantFingerprint("nobody")); err == nil {
			t.Errorf("Verify of a tenant without a chain = %d, nil; want a problem", n)
		}
	})
}

// Append inside a caller's transaction commits and rolls back with it.
func TestAppendJoinsTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		fp := k.TenantFingerprint("a")
		if err := st.Append(ctx, []audit.Record{entry(fp, 1, audit.CreateRole, "", "kept")}); err != nil {
			t.Fatal(err)
		}
		injected := errors.New("the change failed")
		err := db.InTxContext(ctx, func(ctx context.Context, _ *gorm.DB) error {
			if err := st.Append(ctx, []audit.Record{entry(fp, 2, audit.CreateRole, "", "rolled-back")}); err != nil {
				return err
			}
			return injected
		})
		if !errors.Is(err, injected) {
			t.Fatalf("InTxContext = %v", err)
		}
		if err := db.InTxContext(ctx, func(ctx context.Context, _ *gorm.DB) error {
			return st.Append(ctx, []audit.Record{entry(fp, 3, audit.CreateRole, "", "committed")})
		}); err != nil {
			t.Fatal(err)
		}
		recs, _, err := st.List(ctx, fp, "", audit.Query{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%d:%s", r.Seq, r.Resource))
		}
		if strings.Join(got, ",") != "2:committed,1:kept" {
			t.Errorf("records = %v, want [2:committed 1:kept] (no gap left by the rollback)", got)
		}
		if n, err := st.Verify(ctx, fp); err != nil || n != 2 {
			t.Errorf("Verify = %d, %v; want 2, nil", n, err)
		}
	})
}

func TestList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a, b := k.TenantFingerprint("a"), k.TenantFingerprint("b")
		ua, ub := k.UserFingerprint(a, "john"), k.UserFingerprint(a, "jane")
		var recs []audit.Record
		for i := 1; i <= 30; i++ {
			action, user := audit.CheckPermission, ua
			switch i % 3 {
			case 1:
				action, user = audit.CreateRole, ""
			case 2:
				user = ub
			}
			recs = append(recs, entry(a, i, action, user, fmt.Sprintf("r%d", i)))
		}
		recs = append(recs, entry(b, 1, audit.CreateRole, "", "other"))
		if err := st.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		span := func(from, to int) []int64 { // seqs to..from, newest first
			var out []int64
			for i := to; i >= from; i-- {
				out = append(out, int64(i))
			}
			return out
		}
		filter := func(pred func(i int) bool) []int64 {
			var out []int64
			for i := 30; i >= 1; i-- {
				if pred(i) {
					out = append(out, int64(i))
				}
			}
			return out
		}
		cases := []struct {
			name   string
			tenant string
			user   string
			q      audit.Query
			want   []int64
		}{
			{"all", a, "", audit.Query{Limit: 100}, span(1, 30)},
			{"other tenant", b, "", audit.Query{Limit: 100}, []int64{1}},
			{"unknown tenant", k.TenantFingerprint("c"), "", audit.Query{Limit: 100}, nil},
			{"action", a, "", audit.Query{Limit: 100, Action: audit.CreateRole}, filter(func(i int) bool { return i%3 == 1 })},
			{"user", a, ua, audit.Query{Limit: 100}, filter(func(i int) bool { return i%3 == 0 })},
			{"user and action without match", a, ua, audit.Query{Limit: 100, Action: audit.CreateRole}, nil},
			{"since", a, "", audit.Query{Limit: 100, Since: base.Add(25 * time.Minute)}, span(25, 30)},
			{"until", a, "", audit.Query{Limit: 100, Until: base.Add(5 * time.Minute)}, span(1, 5)},
			{"since and until", a, "", audit.Query{Limit: 100, Since: base.Add(10 * time.Minute), Until: base.Add(12 * time.Minute)}, span(10, 12)},
			{"since in another zone", a, "", audit.Query{Limit: 100, Since: base.Add(29 * time.Minute).In(time.FixedZone("X", -5*3600))}, span(29, 30)},
			{"before", a, "", audit.Query{Limit: 100, Before: 4}, span(1, 3)},
			{"limit", a, "", audit.Query{Limit: 3}, span(28, 30)},
			{"default limit", a, "", audit.Query{}, span(1, 30)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, _, err := st.List(ctx, tc.tenant, tc.user, tc.q)
				if err != nil {
					t.Fatal(err)
				}
				if !equalInts(seqs(got), tc.want) {
					t.Errorf("seqs = %v, want %v", seqs(got), tc.want)
				}
				for _, r := range got {
					if r.Tenant != tc.tenant {
						t.Errorf("record of tenant %s listed for %s", r.Tenant, tc.tenant)
					}
				}
			})
		}
		// Paging with the cursor walks every record once, newest first.
		for _, limit := range []int{1, 7, 10, 30, 31} {
			var walked []int64
			cursor, pages := int64(0), 0
			for {
				got, next, err := st.List(ctx, a, "", audit.Query{Limit: limit, Before: cursor})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				walked = append(walked, seqs(got)...)
				if len(got) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(got))
				}
				if next == 0 {
					break
				}
				if pages > 100 {
					t.Fatalf("limit %d: cursor does not end", limit)
				}
				cursor = next
			}
			if !equalInts(walked, span(1, 30)) {
				t.Errorf("limit %d: walked %v, want 30..1", limit, walked)
			}
			if want := (30 + limit - 1) / limit; pages != want {
				t.Errorf("limit %d: %d pages, want %d (no empty last page)", limit, pages, want)
			}
		}
	})
}

// tamper edits the database behind the store's back.
type tamper struct {
	name string
	sql  func(d sqldb.Dialect) []string
	// wantIn are substrings of the problem; %A is replaced by the tenant.
	wantIn []string
}

func tampers() []tamper {
	one := func(s ...string) func(sqldb.Dialect) []string { return func(sqldb.Dialect) []string { return s } }
	return []tamper{
		{"resource modified", one(`UPDATE audit_log SET resource = 'evil' WHERE tenant_fp = '%A' AND seq = 3`),
			[]string{"seq 3", "MAC mismatch"}},
		{"success flipped", one(`UPDATE audit_log SET success = (CASE WHEN success THEN false ELSE true END) WHERE tenant_fp = '%A' AND seq = 2`),
			[]string{"seq 2", "MAC mismatch"}},
		{"middle record deleted", one(`DELETE FROM audit_log WHERE tenant_fp = '%A' AND seq = 3`),
			[]string{"seq 4", "records 3 to 3 are missing"}},
		{"forged record inserted", one(`INSERT INTO audit_log (tenant_fp, seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac)
			SELECT tenant_fp, seq + 1, occurred_at, user_fp, action, 'forged', success, details, ip, user_agent, request_id, mac
			FROM audit_log WHERE tenant_fp = '%A' AND seq = 6`),
			[]string{"seq 7", "MAC mismatch"}},
		{"sequence numbers swapped", one(
			`UPDATE audit_log SET seq = -1 WHERE tenant_fp = '%A' AND seq = 2`,
			`UPDATE audit_log SET seq = 2 WHERE tenant_fp = '%A' AND seq = 3`,
			`UPDATE audit_log SET seq = 3 WHERE tenant_fp = '%A' AND seq = -1`),
			[]string{"seq 3", "missing"}},
		{"tail truncated", one(`DELETE FROM audit_log WHERE tenant_fp = '%A' AND seq > 4`),
			[]string{"truncated tail", "seq 4"}},
		{"head moved back", one(`UPDATE audit_heads SET seq = 4 WHERE tenant_fp = '%A'`),
			[]string{"chain head does not authenticate"}},
		{"head deleted", one(`DELETE FROM audit_heads WHERE tenant_fp = '%A'`),
			[]string{"no audit chain"}},
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a, b := k.TenantFingerprint("a"), k.TenantFingerprint("b")
		var recs []audit.Record
		for i := 1; i <= 6; i++ {
			recs = append(recs, entry(a, i, audit.CreateRole, "", fmt.Sprint("r", i)), entry(b, i, audit.CreateRole, "", fmt.Sprint("r", i)))
		}
		if err := st.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		g := db.Gorm()
		for _, tbl := range []string{"audit_log", "audit_heads"} {
			if err := g.Exec("CREATE TABLE " + tbl + "_saved AS SELECT * FROM " + tbl).Error; err != nil {
				t.Fatal(err)
			}
		}
		restore := func() {
			for _, tbl := range []string{"audit_log", "audit_heads"} {
				if err := g.Exec("DELETE FROM " + tbl).Error; err != nil {
					t.Fatal(err)
				}
				if err := g.Exec("INSERT INTO " + tbl + " SELECT * FROM " + tbl + "_saved").Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range tampers() {
			t.Run(tc.name, func(t *testing.T) {
				restore()
				for _, tn := range []string{a, b} {
					if _, err := st.Verify(ctx, tn); err != nil {
						t.Fatalf("before tampering: %v", err)
					}
				}
				for _, q := range tc.sql(db.Dialect()) {
					if err := g.Exec(strings.ReplaceAll(q, "%A", a)).Error; err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				_, err := st.Verify(ctx, a)
				var p *audit.Problem
				if !errors.As(err, &p) {
					t.Fatalf("Verify after tampering = %v, want an *audit.Problem", err)
				}
				for _, w := range tc.wantIn {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("problem %q does not contain %q", err, w)
					}
				}
				// The other tenant's chain is untouched.
				if _, err := st.Verify(ctx, b); err != nil {
					t.Errorf("tenant b after tampering with a: %v", err)
				}
				// Every tenant with records is verified, even one whose
				// head was removed.
				tenants, err := st.Tenants(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(tenants, ",") != strings.Join(sortedStrings(a, b), ",") {
					t.Errorf("Tenants = %v, want both tenants", tenants)
				}
			})
		}
	})
}

func sortedStrings(s ...string) []string {
	sort.Strings(s)
	return s
}

// Purge removes what is older than the cutoff and leaves a chain that
// verifies, keeps growing and keeps verifying; purging again is harmless.
func TestPurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a, b, c := k.TenantFingerprint("a"), k.TenantFingerprint("b"), k.TenantFingerprint("c")
		var recs []audit.Record
		for i := 1; i <= 10; i++ {
			recs = append(recs, entry(a, i, audit.CreateRole, "", fmt.Sprint("r", i)))
		}
		recs = append(recs, entry(b, 1, audit.CreateRole, "", "old"), entry(b, 2, audit.CreateRole, "", "old"),
			entry(c, 100, audit.CreateRole, "", "new"))
		if err := st.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		cutoff := base.Add(5*time.Minute + 30*time.Second) // a: 1..5 old; b: all old; c: none
		n, err := st.Purge(ctx, cutoff)
		if err != nil || n != 7 {
			t.Fatalf("Purge = %d, %v; want 7, nil", n, err)
		}
		cases := []struct {
			tenant string
			want   []int64
		}{{a, []int64{10, 9, 8, 7, 6}}, {b, nil}, {c, []int64{1}}}
		for _, tc := range cases {
			got, _, err := st.List(ctx, tc.tenant, "", audit.Query{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(seqs(got), tc.want) {
				t.Errorf("after purge: seqs %v, want %v", seqs(got), tc.want)
			}
			if n, err := st.Verify(ctx, tc.tenant); err != nil || n != int64(len(tc.want)) {
				t.Errorf("Verify after purge = %d, %v; want %d, nil", n, err, len(tc.want))
			}
		}
		if n, err := st.Purge(ctx, cutoff); err != nil || n != 0 {
			t.Errorf("second Purge = %d, %v; want 0, nil", n, err)
		}
		// The chains grow on from where they were.
		more := []audit.Record{entry(a, 200, audit.DeleteRole, "", "x"), entry(b, 200, audit.DeleteRole, "", "x")}
		if err := st.Append(ctx, more); err != nil {
			t.Fatal(err)
		}
		if more[0].Seq != 11 || more[1].Seq != 3 {
			t.Errorf("seqs after purge = %d, %d; want 11, 3", more[0].Seq, more[1].Seq)
		}
		for _, tc := range []struct {
			tenant string
			want   int64
		}{{a, 6}, {b, 1}, {c, 1}} {
			if n, err := st.Verify(ctx, tc.tenant); err != nil || n != tc.want {
				t.Errorf("Verify after growing = %d, %v; want %d, nil", n, err, tc.want)
			}
		}
		// Purging everything leaves empty chains that still verify.
		if _, err := st.Purge(ctx, base.Add(time.Hour*24)); err != nil {
			t.Fatal(err)
		}
		for _, tn := range []string{a, b, c} {
			if n, err := st.Verify(ctx, tn); err != nil || n != 0 {
				t.Errorf("Verify after purging all = %d, %v; want 0, nil", n, err)
			}
		}
		// Deleting a record that the anchor did not account for is still
		// found; so is a forged anchor.
		if err := st.Append(ctx, []audit.Record{entry(a, 300, audit.CreateRole, "", "y"), entry(a, 301, audit.CreateRole, "", "z")}); err != nil {
			t.Fatal(err)
		}
		g := db.Gorm()
		if err := g.Exec("DELETE FROM audit_log WHERE tenant_fp = ? AND seq = 12", a).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := st.Verify(ctx, a); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("oldest record deleted past the anchor: %v, want a gap", err)
		}
		if err := g.Exec("UPDATE audit_heads SET base_seq = 12 WHERE tenant_fp = ?", a).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := st.Verify(ctx, a); err == nil || !strings.Contains(err.Error(), "retention anchor") {
			t.Errorf("anchor moved by hand: %v, want the anchor refused", err)
		}
	})
}

// Several replicas (database handles of their own, each with its own
// write lock) append to the same tenants at once: every chain is numbered
// 1..N without a gap or a fork and verifies.
func TestConcurrentAppendAcrossReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, another func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		tenants := []string{k.TenantFingerprint("a"), k.TenantFingerprint("b"), k.TenantFingerprint("c")}
		stores := []*auditdb.Store{auditdb.New(db, k), auditdb.New(another(), k), auditdb.New(another(), k)}
		const writers, batches = 4, 15
		var wg sync.WaitGroup
		errc := make(chan error, len(stores)*writers)
		for si, st := range stores {
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(st *auditdb.Store, id string) {
					defer wg.Done()
					for i := 0; i < batches; i++ {
						// Batches of one to three tenants, in varying order.
						var batch []audit.Record
						for j := 0; j <= i%3; j++ {
							batch = append(batch, entry(tenants[(i+j)%3], i, audit.CheckPermission, "", id))
						}
						if err := st.Append(ctx, batch); err != nil {
							errc <- err
							return
						}
					}
				}(st, fmt.Sprintf("s%dw%d", si, w))
			}
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatalf("concurrent Append: %v", err)
		}
		total := int64(0)
		st := stores[0]
		for _, tn := range tenants {
			n, err := st.Verify(ctx, tn)
			if err != nil {
				t.Errorf("Verify(%s): %v", tn, err)
			}
			var got []int64
			if err := db.Gorm().Raw("SELECT seq FROM audit_log WHERE tenant_fp = ? ORDER BY seq", tn).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			for i, s := range got {
				if s != int64(i+1) {
					t.Fatalf("tenant %s: seqs %v are not 1..%d", tn, got, len(got))
				}
			}
			if int64(len(got)) != n {
				t.Errorf("tenant %s: %d rows, Verify counted %d", tn, len(got), n)
			}
			total += n
		}
		// Each batch i held 1 + i%3 records.
		want := int64(0)
		for i := 0; i < batches; i++ {
			want += int64(1 + i%3)
		}
		want *= int64(len(stores) * writers)
		if total != want {
			t.Errorf("%d records in all, want %d", total, want)
		}
	})
}

// Verifying while another replica appends (a scheduled check on a live
// service) sees one consistent state of the chain: no false alarm.
func TestVerifyWhileAppending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, another func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		fp := k.TenantFingerprint("a")
		writer, reader := auditdb.New(another(), k), auditdb.New(db, k)
		if err := writer.Append(ctx, []audit.Record{entry(fp, 0, audit.CreateRole, "", "first")}); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if err := writer.Append(ctx, []audit.Record{entry(fp, i, audit.CheckPermission, "", "x")}); err != nil {
					done <- err
					return
				}
			}
		}()
		var last int64
		for i := 0; i < 40; i++ {
			n, err := reader.Verify(ctx, fp)
			if err != nil {
				close(stop)
				<-done
				t.Fatalf("Verify #%d while appending (after %d records): %v", i, last, err)
			}
			last = n
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if last < 1 {
			t.Errorf("Verify counted %d records", last)
		}
	})
}

// Purging leaves a tampered chain as evidence: a tenant whose head was
// removed keeps no head (the purge neither invents one nor deletes its
// records), so verify still reports the missing head.
func TestPurgeLeavesHeadlessChainAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a, b := k.TenantFingerprint("a"), k.TenantFingerprint("b")
		if err := st.Append(ctx, []audit.Record{entry(a, 1, audit.CreateRole, "", "x"), entry(b, 1, audit.CreateRole, "", "x"),
			entry(b, 2, audit.CreateRole, "", "y")}); err != nil {
			t.Fatal(err)
		}
		if err := db.Gorm().Exec("DELETE FROM audit_heads WHERE tenant_fp = ?", b).Error; err != nil {
			t.Fatal(err)
		}
		n, err := st.Purge(ctx, base.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("Purge = %d, %v; want 1 (tenant a's record), nil", n, err)
		}
		var heads int64
		if err := db.Gorm().Raw("SELECT COUNT(*) FROM audit_heads WHERE tenant_fp = ?", b).Scan(&heads).Error; err != nil {
			t.Fatal(err)
		}
		if heads != 0 {
			t.Errorf("the purge created a head for a headless chain")
		}
		if c, _ := st.Count(ctx, b, ""); c != 2 {
			t.Errorf("headless chain: %d records left, want 2", c)
		}
		if _, err := st.Verify(ctx, b); err == nil || !strings.Contains(err.Error(), "no audit chain") {
			t.Errorf("Verify of the headless chain after a purge = %v, want the missing head reported", err)
		}
		if n, err := st.Verify(ctx, a); err != nil || n != 0 {
			t.Errorf("Verify(a) = %d, %v; want 0, nil", n, err)
		}
	})
}

// Purging does not launder tampering: a chain that does not verify up to
// the cutoff keeps its records (the evidence) and its anchor, the purge
// says why, and the other tenants are purged all the same.
func TestPurgeRefusesBrokenChain(t *testing.T) {
	cases := []struct {
		name   string
		tamper string // on tenant a, whose records 1..6 are older than the cutoff
		want   string
	}{
		{"old record modified", `UPDATE audit_log SET resource = 'evil' WHERE tenant_fp = '%A' AND seq = 2`, "seq 2"},
		{"old record deleted", `DELETE FROM audit_log WHERE tenant_fp = '%A' AND seq = 3`, "records 3 to 3 are missing"},
		{"head edited", `UPDATE audit_heads SET seq = 3 WHERE tenant_fp = '%A'`, "chain head does not authenticate"},
	}
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				k := keyring(t)
				st := auditdb.New(db, k)
				// A tenant of its own per case: the database is shared.
				a, b := k.TenantFingerprint("a-"+tc.name), k.TenantFingerprint("b-"+tc.name)
				var recs []audit.Record
				for i := 1; i <= 8; i++ {
					recs = append(recs, entry(a, i, audit.CreateRole, "", "r"), entry(b, i, audit.CreateRole, "", "r"))
				}
				if err := st.Append(ctx, recs); err != nil {
					t.Fatal(err)
				}
				if err := db.Gorm().Exec(strings.ReplaceAll(tc.tamper, "%A", a)).Error; err != nil {
					t.Fatal(err)
				}
				before, _ := st.Count(ctx, a, "")
				_, err := st.Purge(ctx, base.Add(6*time.Minute+30*time.Second))
				if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Purge = %v, want an error naming tenant a and %q", err, tc.want)
				}
				if after, _ := st.Count(ctx, a, ""); after != before {
					t.Errorf("tenant a: %d records after the purge, want the %d it had", after, before)
				}
				if _, err := st.Verify(ctx, a); err == nil {
					t.Errorf("tenant a verifies after a refused purge")
				}
				if n, err := st.Verify(ctx, b); err != nil || n != 2 {
					t.Errorf("tenant b: Verify = %d, %v; want 2 records left and intact", n, err)
				}
			})
		}
	})
}
