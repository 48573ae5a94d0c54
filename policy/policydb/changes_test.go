package policydb

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// The names the change log and expiry tests write: none may be stored in
// clear with encryption on.
const (
	secretRole   = "payroll-admins"
	secretPerm   = "salaries:read"
	secretUser   = "alice@example.com"
	secretParent = "finance-staff"
	secretDesc   = "Administrators of the payroll"
)

// sealedRows returns the name columns of policy_changes and the sealed
// fields of rule_expiries as stored, by where they are.
func sealedRows(t testing.TB, db *sqldb.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	var changes []changeRow
	if err := db.Gorm().Order("revision").Order("seq").Find(&changes).Error; err != nil {
		t.Fatalf("read policy_changes: %v", err)
	}
	for _, r := range changes {
		for col, v := range map[string]*string{"role": r.Role, "permission": r.Permission, "user_name": r.UserName,
			"parent": r.Parent, "description": r.Description} {
			if v != nil {
				out[fmt.Sprintf("policy_changes %d.%d %s", r.Revision, r.Seq, col)] = *v
			}
		}
	}
	var ends []expiryRow
	if err := db.Gorm().Order("ptype").Find(&ends).Error; err != nil {
		t.Fatalf("read rule_expiries: %v", err)
	}
	for _, r := range ends {
		for i, v := range []string{r.V0, r.V1, r.V2} {
			if sealed(r.Ptype, i) {
				out[fmt.Sprintf("rule_expiries %s v%d", r.Ptype, i)] = v
			}
		}
	}
	return out
}

// TestChangeLogAndExpiriesEncrypted: with field encryption, the change log
// and the ends of time-bound rules hold no name in clear and read back in
// clear; Rekey re-seals them under the new key, after which only the new
// key reads them.
func TestChangeLogAndExpiriesEncrypted(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sA := storeWith(t, db, keyA)
		if err := sA.CheckEncryption(ctx); err != nil {
			t.Fatal(err)
		}
		id, dom := tenantID(t, sA, 1)
		seedTenant(t, sA, id, []string{secretRole, secretParent}, [][2]string{{secretRole, secretPerm}},
			[][2]string{{secretUser, secretRole}}, nil)
		at := time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)
		end := at.Add(time.Hour)
		desc := secretDesc
		records := []policy.ChangeRecord{
			{Seq: 0, Op: policy.ChangeSetDescription, Role: secretRole, Description: &desc},
			{Seq: 1, Op: policy.ChangeGrant, Role: secretRole, Permission: secretPerm, ExpiresAt: &end},
			{Seq: 2, Op: policy.ChangeAddMember, Role: secretRole, User: secretUser, ExpiresAt: &end},
			{Seq: 3, Op: policy.ChangeAddParent, Role: secretRole, Parent: secretParent},
			{Seq: 4, Op: policy.ChangeSetDescription, Role: secretRole},
		}
		grant := []string{"role:" + secretRole, dom, secretPerm}
		member := []string{secretUser, "role:" + secretRole, dom}
		change(t, sA, func(ctx context.Context, tx policy.Tx) error {
			if err := tx.SetExpiry(ctx, id, "p", [][]string{grant}, &end); err != nil {
				return err
			}
			if err := tx.SetExpiry(ctx, id, "g", [][]string{member}, &end); err != nil {
				return err
			}
			return tx.AppendChanges(ctx, id, 1, at, records)
		})
		exec(t, db, "UPDATE tenants SET policy_version = 1 WHERE id = ?", id)

		stored := sealedRows(t, db)
		if len(stored) != 9+4 { // 9 names in the log (a role in each item), 2 sealed fields of each end
			t.Fatalf("stored sealed values: %v", stored)
		}
		clear := []string{secretRole, secretPerm, secretUser, secretParent, secretDesc}
		checkSealed := func(when, key string) {
			t.Helper()
			for where, v := range sealedRows(t, db) {
				for _, c := range clear {
					if strings.Contains(v, c) {
						t.Errorf("%s: %s holds %q in clear: %q", when, where, c, v)
					}
				}
				if id := fieldcrypt.KeyID(v); id != keyID(t, key) {
					t.Errorf("%s: %s is under key %q, want %q", when, where, id, keyID(t, key))
				}
			}
		}
		checkSealed("written", keyA)

		wantRecords := make([]policy.ChangeRecord, len(records))
		for i, r := range records {
			r.Revision, r.At = 1, at
			wantRecords[i] = r
		}
		wantEnds := []policy.Expiry{{Ptype: "g", Rule: member, At: end}, {Ptype: "p", Rule: grant, At: end}}
		reads := func(s *Store) error {
			t.Helper()
			b, err := s.ReadChanges(ctx, id, policy.After(0), 10)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(b.Records, wantRecords) || b.Latest != 1 || b.Floor != 0 {
				t.Errorf("ReadChanges = %+v\nwant records %+v at latest 1", b, wantRecords)
			}
			snap, found, err := s.LoadTenant(ctx, tenantKey(1), func(string, []string) error { return nil })
			if err != nil {
				return err
			}
			if !found {
				t.Errorf("LoadTenant: tenant not found")
			}
			if got := sortedEnds(snap.Expiries); !reflect.DeepEqual(got, wantEnds) {
				t.Errorf("LoadTenant expiries = %+v\nwant %+v", got, wantEnds)
			}
			due, err := s.DueExpiries(ctx, end, 10)
			if err != nil {
				return err
			}
			var ends []policy.Expiry
			for _, d := range due {
				if d.TenantID != id || d.Tenant != tenantKey(1) {
					t.Errorf("DueExpiries: %+v of another tenant", d)
				}
				ends = append(ends, d.Expiry)
			}
			if got := sortedEnds(ends); !reflect.DeepEqual(got, wantEnds) {
				t.Errorf("DueExpiries = %+v\nwant %+v", got, wantEnds)
			}
			if due, err := s.DueExpiries(ctx, end.Add(-time.Microsecond), 10); err != nil || len(due) != 0 {
				t.Errorf("DueExpiries before the end = %+v, %v", due, err)
			}
			return nil
		}
		if err := reads(sA); err != nil {
			t.Fatalf("reads under A: %v", err)
		}

		sBA := storeWith(t, db, keyB, keyA)
		st, err := sBA.Rekey(ctx, 5, nil)
		if err != nil {
			t.Fatalf("Rekey: %v", err)
		}
		if st.Changes != 2+len(records) || st.Other != 0 {
			t.Errorf("Rekey re-sealed %d rows of the log and the ends, want %d", st.Changes, 2+len(records))
		}
		checkSealed("rekeyed", keyB)
		if got := len(sealedRows(t, db)); got != len(stored) {
			t.Errorf("%d sealed values after Rekey, want %d", got, len(stored))
		}
		sB := storeWith(t, db, keyB)
		if err := reads(sB); err != nil {
			t.Fatalf("reads under B after Rekey: %v", err)
		}
		if _, err := sA.ReadChanges(ctx, id, policy.After(0), 10); err == nil {
			t.Errorf("the change log reads with the old key after Rekey")
		}
		if _, err := sA.DueExpiries(ctx, end, 10); err == nil {
			t.Errorf("the ends read with the old key after Rekey")
		}
		// The ends still select their rules: a removal takes them.
		change(t, sB, func(ctx context.Context, tx policy.Tx) error {
			return tx.RemoveRules(ctx, "g", [][]string{member})
		})
		var n int64
		if err := db.Gorm().Raw("SELECT COUNT(*) FROM rule_expiries WHERE ptype = 'g'").Scan(&n).Error; err != nil || n != 0 {
			t.Errorf("the end of a removed membership is left after Rekey: %d, %v", n, err)
		}
		if st, err := sB.Rekey(ctx, 5, nil); err != nil || st.Other != 0 {
			t.Errorf("second Rekey = %+v, %v; want nothing re-sealed", st, err)
		}
	})
}

// TestExpireRule: a rule is expired only at or after its end, once, and not
// when its end has moved on.
func TestExpireRule(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		s := storeWith(t, db, keyA)
		id, dom := tenantID(t, s, 1)
		seedTenant(t, s, id, []string{"admin"}, nil, [][2]string{{"alice", "admin"}}, nil)
		end := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		rule := []string{"alice", "role:admin", dom}
		set := func(at *time.Time) {
			change(t, s, func(ctx context.Context, tx policy.Tx) error {
				return tx.SetExpiry(ctx, id, "g", [][]string{rule}, at)
			})
		}
		expire := func(now time.Time) bool {
			var ok bool
			change(t, s, func(ctx context.Context, tx policy.Tx) error {
				var err error
				ok, err = tx.ExpireRule(ctx, id, "g", rule, now)
				return err
			})
			return ok
		}
		set(&end)
		if expire(end.Add(-time.Microsecond)) {
			t.Fatal("expired before its end")
		}
		later := end.Add(time.Hour)
		set(&later) // extended meanwhile
		if expire(end) {
			t.Fatal("expired at the end it no longer has")
		}
		set(nil) // made permanent
		if expire(later) {
			t.Fatal("a permanent rule expired")
		}
		set(&end)
		if !expire(end) {
			t.Fatal("not expired at its end")
		}
		if v := mustLoad(t, s, id); len(v.G) != 0 {
			t.Errorf("rules after the expiry: %v", v)
		}
		if expire(later) {
			t.Error("expired twice")
		}
	})
}

func sortedEnds(es []policy.Expiry) []policy.Expiry {
	out := append([]policy.Expiry(nil), es...)
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Ptype < out[j-1].Ptype; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
