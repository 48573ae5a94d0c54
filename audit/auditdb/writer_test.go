package auditdb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/audit/auditdb"
	"github.com/ourway/auth/internal/sqldb"
)

// A batch larger than one statement's worth of rows (several SQLite
// INSERTs, one PostgreSQL array statement), with tenants interleaved and
// text that needs care (quotes, backslashes, non-ASCII, long values),
// is stored exactly as sealed, in sequence order, and verifies.
func TestAppendLargeMixedBatchRoundTrips(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		tenants := []string{k.TenantFingerprint("a"), k.TenantFingerprint("b"), k.TenantFingerprint("c")}
		odd := []string{"", `it's "quoted"`, `back\slash`, "ünïcödé ✓", "semi;colon -- comment", strings.Repeat("x", 500)}
		var batch []audit.Record
		for i := 0; i < 150; i++ {
			r := entry(tenants[i%len(tenants)], i, audit.CheckPermission, fmt.Sprintf("u_%d", i), "perm"+odd[i%len(odd)])
			r.UserAgent, r.Success, r.RequestID = odd[(i+1)%len(odd)], i%4 != 0, fmt.Sprintf("req-%d", i)
			r.Details = fmt.Sprintf(`{"allowed":%v,"n":%d,"s":%q}`, r.Success, i, odd[i%len(odd)])
			batch = append(batch, r)
		}
		if err := st.Append(ctx, batch); err != nil {
			t.Fatalf("Append: %v", err)
		}
		// A second batch continues every chain.
		more := []audit.Record{entry(tenants[2], 200, audit.ListRoles, "", "all"), entry(tenants[0], 201, audit.ListRoles, "", "all")}
		if err := st.Append(ctx, more); err != nil {
			t.Fatalf("Append: %v", err)
		}
		want := map[string][]audit.Record{}
		for _, r := range append(batch, more...) {
			want[r.Tenant] = append(want[r.Tenant], r)
		}
		for _, tfp := range tenants {
			n, err := st.Verify(ctx, tfp)
			if err != nil || n != int64(len(want[tfp])) {
				t.Fatalf("Verify(%s) = %d, %v; want %d, nil", tfp, n, err, len(want[tfp]))
			}
			recs, _, err := st.List(ctx, tfp, "", audit.Query{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(want[tfp]) {
				t.Fatalf("List(%s): %d records, want %d", tfp, len(recs), len(want[tfp]))
			}
			for i, got := range recs {
				w := want[tfp][len(recs)-1-i] // newest first
				if got.Seq != int64(len(recs)-i) {
					t.Errorf("record %d: seq %d, want %d", i, got.Seq, len(recs)-i)
				}
				got.ID = 0
				if !got.Time.Equal(w.Time) {
					t.Errorf("seq %d: time %v, want %v", got.Seq, got.Time, w.Time)
				}
				got.Time = w.Time
				if got != w {
					t.Errorf("seq %d read back\n%+v\nwant\n%+v", got.Seq, got, w)
				}
			}
			h, ok, err := st.Head(ctx, tfp)
			if err != nil || !ok || h.Seq != int64(len(want[tfp])) || h.MAC != want[tfp][len(want[tfp])-1].MAC {
				t.Errorf("Head(%s) = %+v, %v, %v; want seq %d and the last record's MAC", tfp, h, ok, err, len(want[tfp]))
			}
		}
	})
}

// A record that cannot be stored fails the whole append: no record of the
// batch is stored and no head moves.
func TestAppendIsAllOrNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *sqldb.DB, _ func() *sqldb.DB) {
		ctx := context.Background()
		k := keyring(t)
		st := auditdb.New(db, k)
		a := k.TenantFingerprint("a")
		if err := st.Append(ctx, []audit.Record{entry(a, 0, audit.CreateRole, "", "x")}); err != nil {
			t.Fatal(err)
		}
		var batch []audit.Record
		for i := 1; i <= 40; i++ {
			batch = append(batch, entry(a, i, audit.CheckPermission, "", "read"))
		}
		// A duplicate (tenant, seq) in the database makes the insert fail
		// part-way, after the first rows went in.
		if err := db.Gorm().Exec(`INSERT INTO audit_log (tenant_fp, seq, occurred_at, user_fp, action, resource, success, details, ip, user_agent, request_id, mac)
			VALUES (?, 35, '2026-01-01T00:00:00.000000Z', '', 'X', '', true, '{}', '', '', '', 'm')`, a).Error; err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, batch); err == nil {
			t.Fatal("Append over a duplicate sequence number succeeded")
		}
		if c, _ := st.Count(ctx, a, string(audit.CheckPermission)); c != 0 {
			t.Errorf("%d records of the failed batch stored, want 0", c)
		}
		if h, _, _ := st.Head(ctx, a); h.Seq != 1 {
			t.Errorf("head seq after the failed batch = %d, want 1", h.Seq)
		}
	})
}
