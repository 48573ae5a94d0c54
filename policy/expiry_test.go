package policy_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
)

// timeBound is one kind of time-bound rule as the tests make it: alice
// holds "write" through it.
type timeBound struct {
	name string
	// put makes the rule, ending at until (nil: for good).
	put    func(ctx context.Context, s *policy.Service, k policy.KeyHash, until *time.Time) (bool, error)
	remove func(ctx context.Context, s *policy.Service, k policy.KeyHash) (bool, error)
	// ptype and the audit action and change item of its expiry.
	ptype  string
	action audit.Action
	item   string
	user   string // the audit entry's user
	res    string // the audit entry's resource
}

var timeBounds = []timeBound{
	{
		name: "membership",
		put: func(ctx context.Context, s *policy.Service, k policy.KeyHash, until *time.Time) (bool, error) {
			return s.PutMemberUntil(ctx, k, "alice", "admin", until)
		},
		remove: func(ctx context.Context, s *policy.Service, k policy.KeyHash) (bool, error) {
			return s.DeleteMember(ctx, k, "alice", "admin")
		},
		ptype: "g", action: audit.ExpireMembership, item: "expire role=admin user=alice", user: "alice", res: "admin",
	},
	{
		name: "grant",
		put: func(ctx context.Context, s *policy.Service, k policy.KeyHash, until *time.Time) (bool, error) {
			return s.PutGrantUntil(ctx, k, "admin", "write", until)
		},
		remove: func(ctx context.Context, s *policy.Service, k policy.KeyHash) (bool, error) {
			return s.DeleteGrant(ctx, k, "admin", "write")
		},
		ptype: "p", action: audit.ExpirePermission, item: "expire role=admin permission=write", res: "admin:write",
	},
}

// setupTimeBound gives the tenant the role admin, with the permanent grant
// "read" and, for a time-bound grant, the permanent member alice; then the
// rule of tb ending at until.
func setupTimeBound(t *testing.T, svc *policy.Service, k policy.KeyHash, tb timeBound, until *time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateRole(ctx, k, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutGrant(ctx, k, "admin", "read"); err != nil {
		t.Fatal(err)
	}
	if tb.ptype == "g" {
		if _, err := svc.PutGrant(ctx, k, "admin", "write"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutMember(ctx, k, "bob", "admin"); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := svc.PutMember(ctx, k, "alice", "admin"); err != nil {
			t.Fatal(err)
		}
	}
	if created, err := tb.put(ctx, svc, k, until); err != nil || !created {
		t.Fatalf("time-bound %s = %v, %v; want created", tb.name, created, err)
	}
}

// surface is every read that shows alice's "write" through the rule of tb:
// each answers whether it sees the rule.
func surface(svc *policy.Service, k policy.KeyHash, tb timeBound, end time.Time) map[string]func() (bool, error) {
	ctx := context.Background()
	reads := map[string]func() (bool, error){
		"HasPermission": func() (bool, error) { return svc.HasPermission(ctx, k, "alice", "write") },
		"CheckBatch": func() (bool, error) {
			got, err := svc.CheckBatch(ctx, k, []policy.Check{{User: "bob", Permission: "read"}, {User: "alice", Permission: "write"}})
			if err == nil && (len(got) != 2 || !got[0] && tb.ptype == "g") {
				err = fmt.Errorf("CheckBatch = %v", got)
			}
			return len(got) == 2 && got[1], err
		},
		"Explain": func() (bool, error) {
			e, err := svc.Explain(ctx, k, "alice", "write")
			return e.Allowed, err
		},
		"UserPermissions": func() (bool, error) {
			got, err := svc.UserPermissions(ctx, k, "alice")
			return slices.Contains(got, "write"), err
		},
		"UserGrants": func() (bool, error) {
			got, err := svc.UserGrants(ctx, k, "alice")
			return slices.ContainsFunc(got, func(h policy.HeldPermission) bool { return h.Name == "write" }), err
		},
		"WhichUsersCan": func() (bool, error) {
			got, err := svc.WhichUsersCan(ctx, k, "write")
			return slices.Contains(got, policy.Membership{User: "alice", Role: "admin"}), err
		},
		"ExportPolicy": func() (bool, error) {
			f, err := svc.ExportPolicy(ctx, k)
			want := "g alice role:admin"
			if tb.ptype == "p" {
				want = "p role:admin write"
			}
			for _, r := range f.Rules {
				if r.Ptype+" "+r.Fields[0]+" "+r.Fields[len(r.Fields)-1] == want ||
					r.Ptype+" "+r.Fields[0]+" "+r.Fields[1] == want {
					return true, err
				}
			}
			return false, err
		},
	}
	// The listing of the rule states its end.
	listed := func(got []policy.Held, err error, name string) (bool, error) {
		i := slices.IndexFunc(got, func(h policy.Held) bool { return h.Name == name })
		if i < 0 || err != nil {
			return false, err
		}
		if at := got[i].ExpiresAt; at == nil || !at.Equal(end) || at.Location() != time.UTC {
			return true, fmt.Errorf("%s listed with end %v, want %v UTC", name, at, end)
		}
		return true, nil
	}
	if tb.ptype == "g" {
		reads["DirectMembers"] = func() (bool, error) {
			got, err := svc.DirectMembers(ctx, k, "admin")
			return listed(got, err, "alice")
		}
		reads["IsMember"] = func() (bool, error) { return svc.IsMember(ctx, k, "alice", "admin") }
		reads["UserRoles"] = func() (bool, error) {
			got, err := svc.UserRoles(ctx, k, "alice")
			return slices.Contains(got, "admin"), err
		}
		reads["Members"] = func() (bool, error) {
			got, err := svc.Members(ctx, k, "admin")
			return slices.Contains(got, "alice"), err
		}
	} else {
		reads["DirectGrants"] = func() (bool, error) {
			got, err := svc.DirectGrants(ctx, k, "admin")
			return listed(got, err, "write")
		}
		reads["RoleHasPermission"] = func() (bool, error) { return svc.RoleHasPermission(ctx, k, "admin", "write") }
		reads["RolePermissions"] = func() (bool, error) {
			got, err := svc.RolePermissions(ctx, k, "admin")
			return slices.Contains(got, "write"), err
		}
		reads["WhichRolesCan"] = func() (bool, error) {
			got, err := svc.WhichRolesCan(ctx, k, "write")
			return slices.Contains(got, "admin"), err
		}
		reads["PermissionRoles"] = func() (bool, error) {
			got, err := svc.PermissionRoles(ctx, k, "write")
			return slices.ContainsFunc(got, func(r policy.RoleHolding) bool { return r.Name == "admin" }), err
		}
	}
	return reads
}

// expectSurface checks that every read sees (or does not see) the rule.
func expectSurface(t *testing.T, when string, reads map[string]func() (bool, error), sees bool) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(reads)) {
		got, err := reads[name]()
		if err != nil || got != sees {
			t.Errorf("%s: %s sees the rule = %v, %v; want %v", when, name, got, err, sees)
		}
	}
}

func countRows(t testing.TB, db *sqldb.DB, table string) int {
	t.Helper()
	var n int64
	if err := db.Gorm().Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return int(n)
}

// ruleStored reports whether casbin_rule holds the rule of tb.
func ruleStored(t testing.TB, db *sqldb.DB, tb timeBound) bool {
	t.Helper()
	p, g := dbRules(t, db)
	for _, r := range append(p, g...) {
		if tb.ptype == "g" && r[0] == "alice" || tb.ptype == "p" && r[0] == "role:admin" && r[2] == "write" {
			return true
		}
	}
	return false
}

// TestTimeBoundRules: a membership or grant with an end is seen by every
// read until just before it and by none at the instant and after, with no
// sweep and after a restart; the sweep then removes it from the database as
// a change of its own (one item, one audit entry), once.
func TestTimeBoundRules(t *testing.T) {
	for _, tb := range timeBounds {
		t.Run(tb.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				clock := newClock(epoch)
				rec := &recorder{}
				svc := clockedService(t, db, clock, policy.Options{Recorder: rec})
				k := mustKey(t, keyA)
				end := epoch.Add(time.Hour)
				setupTimeBound(t, svc, k, tb, &end)
				reads := surface(svc, k, tb, end)
				expectSurface(t, "at the start", reads, true)
				clock.set(end.Add(-time.Microsecond))
				expectSurface(t, "just before the end", reads, true)

				// A restart before the end sees it, with its end.
				early := clockedService(t, db, clock, policy.Options{})
				expectSurface(t, "restarted just before the end", surface(early, k, tb, end), true)

				clock.set(end)
				expectSurface(t, "at the end", reads, false)
				expectSurface(t, "restarted just before, read at the end", surface(early, k, tb, end), false)
				clock.set(end.Add(time.Hour))
				expectSurface(t, "after the end", reads, false)
				if !ruleStored(t, db, tb) || countRows(t, db, "rule_expiries") != 1 {
					t.Fatalf("the rule left the database before the sweep")
				}
				later := clockedService(t, db, clock, policy.Options{})
				expectSurface(t, "restarted after the end", surface(later, k, tb, end), false)

				// The permanent rules stay.
				if ok, err := svc.HasPermission(ctx, k, "alice", "read"); (tb.ptype == "p") != ok || err != nil {
					t.Errorf("alice read after the end = %v, %v", ok, err)
				}

				before, err := svc.Changes(ctx, k, policy.After(0), 1000, 0)
				if err != nil {
					t.Fatal(err)
				}
				rec.mu.Lock()
				rec.entries = nil
				rec.mu.Unlock()
				if n, err := svc.SweepExpired(ctx); err != nil || n != 1 {
					t.Fatalf("SweepExpired = %d, %v; want 1", n, err)
				}
				if ruleStored(t, db, tb) || countRows(t, db, "rule_expiries") != 0 {
					t.Errorf("the sweep left the rule or its end in the database")
				}
				page, err := svc.Changes(ctx, k, policy.After(before.Revision), 1000, 0)
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("%d %s", before.Revision+1, tb.item)
				if got := itemStrings(page.Items); len(got) != 1 || got[0] != want {
					t.Errorf("items of the sweep = %q, want %q", got, want)
				}
				rec.mu.Lock()
				entries := rec.entries
				rec.mu.Unlock()
				if len(entries) != 1 || entries[0].Action != tb.action || entries[0].User != tb.user ||
					entries[0].Resource != tb.res || !entries[0].Success || entries[0].Version != before.Revision+1 {
					t.Errorf("audit entries of the sweep: %+v; want one %s of %s/%s", entries, tb.action, tb.user, tb.res)
				} else if at := entries[0].Details["expired_at"]; at != end.Format(time.RFC3339Nano) {
					t.Errorf("audit entry of the sweep: expired_at %v, want %s", at, end.Format(time.RFC3339Nano))
				}
				// Every replica agrees, the one that swept and the others.
				expectSurface(t, "after the sweep", reads, false)
				expectSurface(t, "after the sweep, on another replica", surface(later, k, tb, end), false)

				// Nothing left to do.
				if n, err := svc.SweepExpired(ctx); err != nil || n != 0 {
					t.Errorf("second SweepExpired = %d, %v; want 0", n, err)
				}
				if page, err := svc.Changes(ctx, k, policy.After(before.Revision+1), 1000, 0); err != nil ||
					len(page.Items) != 0 || page.Revision != before.Revision+1 {
					t.Errorf("after the second sweep: %q at %d, %v", itemStrings(page.Items), page.Revision, err)
				}
				if len(rec.entries) != 1 {
					t.Errorf("the second sweep recorded %d more audit entries", len(rec.entries)-1)
				}
			})
		})
	}
}

// TestTimeBoundRulesChangeEnd: a PUT of an existing time-bound rule
// replaces its end: a later end keeps it past the first, an earlier end
// takes it away sooner, no end makes it permanent.
func TestTimeBoundRulesChangeEnd(t *testing.T) {
	for _, tb := range timeBounds {
		t.Run(tb.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				clock := newClock(epoch)
				svc := clockedService(t, db, clock, policy.Options{})
				k := mustKey(t, keyA)
				first := epoch.Add(time.Hour)
				setupTimeBound(t, svc, k, tb, &first)
				held := func() bool {
					t.Helper()
					ok, err := svc.HasPermission(ctx, k, "alice", "write")
					if err != nil {
						t.Fatal(err)
					}
					return ok
				}
				sweep := func(want int) {
					t.Helper()
					if n, err := svc.SweepExpired(ctx); err != nil || n != want {
						t.Fatalf("SweepExpired = %d, %v; want %d", n, err, want)
					}
				}
				put := func(until *time.Time) {
					t.Helper()
					if created, err := tb.put(ctx, svc, k, until); err != nil || created {
						t.Fatalf("re-PUT until %v = %v, %v; want not created", until, created, err)
					}
				}

				// Extended before its end: held past the first end.
				clock.set(epoch.Add(30 * time.Minute))
				put(clock.at(90 * time.Minute)) // to epoch+2h
				clock.set(first)
				sweep(0)
				if !held() {
					t.Errorf("extended rule not held at its first end")
				}
				// Shortened: gone at the new, earlier end.
				put(clock.at(10 * time.Minute)) // to epoch+1h10m
				clock.set(first.Add(10*time.Minute - time.Microsecond))
				if !held() {
					t.Errorf("shortened rule not held just before its new end")
				}
				clock.set(first.Add(10 * time.Minute))
				if held() {
					t.Errorf("shortened rule held at its new end")
				}
				sweep(1)
				if ruleStored(t, db, tb) || countRows(t, db, "rule_expiries") != 0 {
					t.Errorf("the swept rule is still in the database")
				}

				// Made permanent by a PUT without an end.
				if created, err := tb.put(ctx, svc, k, clock.at(time.Hour)); err != nil || !created {
					t.Fatalf("PUT after the sweep = %v, %v; want created", created, err)
				}
				put(nil)
				if n := countRows(t, db, "rule_expiries"); n != 0 {
					t.Errorf("a permanent rule keeps %d ends", n)
				}
				clock.add(10 * 24 * time.Hour)
				sweep(0)
				if !held() || !ruleStored(t, db, tb) {
					t.Errorf("permanent rule not held")
				}
				restarted := clockedService(t, db, clock, policy.Options{})
				if ok, err := restarted.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
					t.Errorf("permanent rule after a restart = %v, %v", ok, err)
				}
			})
		})
	}
}

// TestExpiredRuleMadeAgain: a rule past its end that the sweep has not
// removed yet is absent: a PUT creates it again (with its new end), a
// delete finds nothing, and the sweep then keeps it.
func TestExpiredRuleMadeAgain(t *testing.T) {
	for _, tb := range timeBounds {
		t.Run(tb.name, func(t *testing.T) {
			db := openSQLite(t)
			ctx := context.Background()
			clock := newClock(epoch)
			svc := clockedService(t, db, clock, policy.Options{})
			k := mustKey(t, keyA)
			end := epoch.Add(time.Hour)
			setupTimeBound(t, svc, k, tb, &end)
			clock.set(end)
			if removed, err := tb.remove(ctx, svc, k); err != nil || removed {
				t.Errorf("delete of an ended rule = %v, %v; want nothing removed", removed, err)
			}
			if created, err := tb.put(ctx, svc, k, clock.at(time.Hour)); err != nil || !created {
				t.Fatalf("PUT of an ended rule = %v, %v; want created", created, err)
			}
			if n, err := svc.SweepExpired(ctx); err != nil || n != 0 {
				t.Errorf("SweepExpired = %d, %v; want the renewed rule kept", n, err)
			}
			if ok, err := svc.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
				t.Errorf("renewed rule = %v, %v", ok, err)
			}
		})
	}
}

// TestExpiryRefused: an end that is not in the future or too far ahead is
// an *ExpiryError; any end under a model the index does not decide is
// ErrExpiryUnsupported. Nothing is written.
func TestExpiryRefused(t *testing.T) {
	ctx := context.Background()
	clock := newClock(epoch)
	db := openSQLite(t)
	svc := clockedService(t, db, clock, policy.Options{})
	k := mustKey(t, keyA)
	if _, err := svc.CreateRole(ctx, k, "admin"); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) *time.Time { t := epoch.Add(d); return &t }
	for _, tb := range timeBounds {
		for _, tc := range []struct {
			name  string
			until *time.Time
			ok    bool
		}{
			{"an hour ago", at(-time.Hour), false},
			{"now", at(0), false},
			{"within the microsecond", at(time.Nanosecond * 999), false}, // kept to the microsecond: now
			{"a microsecond on", at(time.Microsecond), true},
			{"at the limit", at(policy.MaxRuleLifetime), true},
			{"past the limit", at(policy.MaxRuleLifetime + time.Microsecond), false},
			{"in another zone", func() *time.Time {
				t := epoch.Add(time.Hour).In(time.FixedZone("X", 5*3600))
				return &t
			}(), true},
		} {
			_, err := tb.put(ctx, svc, k, tc.until)
			var ee *policy.ExpiryError
			if tc.ok != (err == nil) || !tc.ok && !errors.As(err, &ee) {
				t.Errorf("%s until %s: %v; want ok %v (else ExpiryError)", tb.name, tc.name, err, tc.ok)
			}
			if !tc.ok && (errors.Is(err, policy.ErrUnavailable) || ee == nil || ee.Reason == "") {
				t.Errorf("%s until %s: %#v", tb.name, tc.name, err)
			}
		}
	}
	if n := countRows(t, db, "rule_expiries"); n != 2 {
		t.Errorf("%d ends stored, want the last accepted one of each kind", n)
	}
	for _, m := range []string{"keymatch2.conf", "superuser.conf"} {
		pdb := openSQLite(t)
		psvc := newService(t, pdb, readModel(t, m), policy.Options{})
		if _, err := psvc.CreateRole(ctx, k, "admin"); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Hour)
		for _, tb := range timeBounds {
			if _, err := tb.put(ctx, psvc, k, &future); !errors.Is(err, policy.ErrExpiryUnsupported) {
				t.Errorf("%s: time-bound %s: %v; want ErrExpiryUnsupported", m, tb.name, err)
			}
			// Without an end it is an ordinary rule.
			if _, err := tb.put(ctx, psvc, k, nil); err != nil {
				t.Errorf("%s: permanent %s: %v", m, tb.name, err)
			}
		}
		if n := countRows(t, pdb, "rule_expiries"); n != 0 {
			t.Errorf("%s: %d ends stored", m, n)
		}
	}
}

// TestRemovalDropsEnd: every way a time-bound rule goes (delete, v1
// revoke and removal, deleting the role, deleting the user, an import that
// drops it) takes its end with it.
func TestRemovalDropsEnd(t *testing.T) {
	removals := []struct {
		name   string
		remove func(ctx context.Context, s *policy.Service, k policy.KeyHash) error
	}{
		{"DeleteMember and DeleteGrant", func(ctx context.Context, s *policy.Service, k policy.KeyHash) error {
			if _, err := s.DeleteMember(ctx, k, "alice", "admin"); err != nil {
				return err
			}
			_, err := s.DeleteGrant(ctx, k, "admin", "write")
			return err
		}},
		{"v1 RemoveMember and Revoke", func(ctx context.Context, s *policy.Service, k policy.KeyHash) error {
			if _, err := s.RemoveMember(ctx, k, "alice", "admin"); err != nil {
				return err
			}
			_, err := s.Revoke(ctx, k, "admin", "write")
			return err
		}},
		{"DeleteRole", func(ctx context.Context, s *policy.Service, k policy.KeyHash) error {
			_, err := s.DeleteRole(ctx, k, "admin")
			return err
		}},
		{"DeleteUser and DeleteGrant", func(ctx context.Context, s *policy.Service, k policy.KeyHash) error {
			if _, err := s.DeleteUser(ctx, k, "alice"); err != nil {
				return err
			}
			_, err := s.DeleteGrant(ctx, k, "admin", "write")
			return err
		}},
		{"import", func(ctx context.Context, s *policy.Service, k policy.KeyHash) error {
			f, err := policy.ParsePolicyCSV(strings.NewReader("# role: admin\np, role:admin, 1, read\n"))
			if err != nil {
				return err
			}
			_, err = s.ImportPolicy(ctx, k, f, policy.ImportOptions{})
			return err
		}},
	}
	for _, r := range removals {
		t.Run(r.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *sqldb.DB) {
				ctx := context.Background()
				clock := newClock(epoch)
				svc := clockedService(t, db, clock, policy.Options{})
				k := mustKey(t, keyA)
				end := epoch.Add(time.Hour)
				setupTimeBound(t, svc, k, timeBounds[0], &end)
				if _, err := svc.PutGrantUntil(ctx, k, "admin", "write", &end); err != nil {
					t.Fatal(err)
				}
				if n := countRows(t, db, "rule_expiries"); n != 2 {
					t.Fatalf("%d ends stored, want 2", n)
				}
				if err := r.remove(ctx, svc, k); err != nil {
					t.Fatal(err)
				}
				if n := countRows(t, db, "rule_expiries"); n != 0 {
					t.Errorf("%d ends left after the rules went", n)
				}
				// Made again for good, they are not taken by the old end.
				if _, err := svc.CreateRole(ctx, k, "admin"); err != nil {
					t.Fatal(err)
				}
				for _, tb := range timeBounds {
					if _, err := tb.put(ctx, svc, k, nil); err != nil {
						t.Fatal(err)
					}
				}
				clock.set(end.Add(time.Hour))
				if n, err := svc.SweepExpired(ctx); err != nil || n != 0 {
					t.Errorf("SweepExpired = %d, %v; want nothing", n, err)
				}
				restarted := clockedService(t, db, clock, policy.Options{})
				if ok, err := restarted.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
					t.Errorf("rules made again = %v, %v; want held", ok, err)
				}
			})
		})
	}
}
