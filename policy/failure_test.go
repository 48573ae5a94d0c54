package policy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

var errInjected = errors.New("injected storage failure")

// faultyStore is a policy.Store over a real one whose calls fail on demand.
// A failing Change runs the whole change inside the real transaction and
// then fails it, so the transaction rolls back after the Service has done
// all of its work: the case of a commit that fails.
type faultyStore struct {
	policy.Store
	mu                 sync.Mutex
	loadErr, chgErr    error
	loads, changeCalls int
}

func (s *faultyStore) set(load, change error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadErr, s.chgErr = load, change
}

func (s *faultyStore) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (policy.Snapshot, bool, error) {
	s.mu.Lock()
	err := s.loadErr
	s.loads++
	s.mu.Unlock()
	if err != nil {
		return policy.Snapshot{}, false, err
	}
	return s.Store.LoadTenant(ctx, key, add)
}

func (s *faultyStore) Change(ctx context.Context, fn func(ctx context.Context, tx policy.Tx) error) error {
	s.mu.Lock()
	injected := s.chgErr
	s.changeCalls++
	s.mu.Unlock()
	return s.Store.Change(ctx, func(ctx context.Context, tx policy.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return injected // nil: commit
	})
}

// A database error is an error, never a false, and a change whose
// transaction fails leaves memory and database as they were.
func TestChangeFailureSurfacesAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	store := &faultyStore{Store: policydb.New(db)}
	svc, err := policy.New(store, auth.DefaultModel, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := mustKey(t, keyA)
	populate(t, ctx, svc, k)
	if ok, err := svc.CreateRole(ctx, k, "spare"); err != nil || !ok {
		t.Fatalf("CreateRole(spare) = %v, %v", ok, err)
	}
	before := answers(t, ctx, svc, k)
	rolesBefore := fmt.Sprint(svc.ListRoles(ctx, k))

	writes := []struct {
		name string
		call func() (bool, error)
	}{
		{"CreateRole(new)", func() (bool, error) { return svc.CreateRole(ctx, k, "fresh") }},
		{"CreateRole(existing)", func() (bool, error) { return svc.CreateRole(ctx, k, "admin") }},
		{"DeleteRole(existing)", func() (bool, error) { return svc.DeleteRole(ctx, k, "admin") }},
		{"DeleteRole(missing)", func() (bool, error) { return svc.DeleteRole(ctx, k, "ghost") }},
		{"Grant(new)", func() (bool, error) { return svc.Grant(ctx, k, "viewer", "export") }},
		{"Grant(missing role)", func() (bool, error) { return svc.Grant(ctx, k, "ghost", "export") }},
		{"Revoke(existing)", func() (bool, error) { return svc.Revoke(ctx, k, "viewer", "read") }},
		{"AddMember(new)", func() (bool, error) { return svc.AddMember(ctx, k, "zoe", "admin") }},
		{"RemoveMember(existing)", func() (bool, error) { return svc.RemoveMember(ctx, k, "alice", "admin") }},
		{"AddRoleParent(new)", func() (bool, error) { return svc.AddRoleParent(ctx, k, "ops", "viewer") }},
		{"RemoveRoleParent(existing)", func() (bool, error) { return svc.RemoveRoleParent(ctx, k, "admin", "viewer") }},
		{"DeleteRole(spare)", func() (bool, error) { return svc.DeleteRole(ctx, k, "spare") }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			store.set(nil, errInjected)
			got, err := w.call()
			store.set(nil, nil)
			if !errors.Is(err, errInjected) {
				t.Errorf("error = %v, want the storage error", err)
			}
			if got {
				t.Errorf("result = true with a failed transaction")
			}
			if after := answers(t, ctx, svc, k); after != before {
				t.Errorf("memory changed by a failed change:\n%s\nwant:\n%s", after, before)
			}
			if got := fmt.Sprint(svc.ListRoles(ctx, k)); got != rolesBefore {
				t.Errorf("ListRoles = %s, want %s", got, rolesBefore)
			}
			fresh := newService(t, db, auth.DefaultModel, policy.Options{})
			if after := answers(t, ctx, fresh, k); after != before {
				t.Errorf("database changed by a failed change:\n%s\nwant:\n%s", after, before)
			}
		})
	}

	// The tenant is still in a good state: the next change applies.
	if ok, err := svc.Grant(ctx, k, "viewer", "export"); err != nil || !ok {
		t.Fatalf("Grant after failures = %v, %v", ok, err)
	}
	if ok, err := svc.HasPermission(ctx, k, "bob", "export"); err != nil || !ok {
		t.Errorf("HasPermission after recovery = %v, %v; want true", ok, err)
	}
	// A brand-new tenant whose first write fails exists nowhere.
	k2 := mustKey(t, keyB)
	store.set(nil, errInjected)
	if ok, err := svc.CreateRole(ctx, k2, "admin"); ok || !errors.Is(err, errInjected) {
		t.Errorf("CreateRole on a new tenant with a failing store = %v, %v; want false, the error", ok, err)
	}
	store.set(nil, nil)
	if _, ok := tenantDomain(t, db, k2); ok {
		t.Errorf("a failed first write left the tenant in the database")
	}
	if rs, err := svc.ListRoles(ctx, k2); err != nil || len(rs) != 0 {
		t.Errorf("ListRoles of the new tenant = %v, %v; want none", rs, err)
	}
}

// A read that cannot reach the store returns the error, not false.
func TestReadFailureSurfaces(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	k := mustKey(t, keyA)
	populate(t, ctx, newService(t, db, auth.DefaultModel, policy.Options{}), k)

	for _, tc := range []struct {
		name string
		load error
	}{
		// The load finds the tenant too: there is no separate lookup.
		{"LoadTenant fails", errInjected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &faultyStore{Store: policydb.New(db)}
			svc, err := policy.New(store, auth.DefaultModel, policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			store.set(tc.load, nil)
			checks := map[string]func() error{
				"HasPermission": func() error {
					ok, err := svc.HasPermission(ctx, k, "alice", "read")
					if ok {
						return errors.New("answered true")
					}
					return err
				},
				"RoleHasPermission": func() error { _, err := svc.RoleHasPermission(ctx, k, "admin", "read"); return err },
				"IsMember":          func() error { _, err := svc.IsMember(ctx, k, "alice", "admin"); return err },
				"UserPermissions":   func() error { _, err := svc.UserPermissions(ctx, k, "alice"); return err },
				"WhichUsersCan":     func() error { _, err := svc.WhichUsersCan(ctx, k, "read"); return err },
				"WhichRolesCan":     func() error { _, err := svc.WhichRolesCan(ctx, k, "read"); return err },
				"ListRoles":         func() error { _, err := svc.ListRoles(ctx, k); return err },
				"Members":           func() error { _, err := svc.Members(ctx, k, "admin"); return err },
				"Grant":             func() error { _, err := svc.Grant(ctx, k, "admin", "x"); return err },
			}
			for name, call := range checks {
				if err := call(); !errors.Is(err, errInjected) {
					t.Errorf("%s: error %v, want the storage error", name, err)
				}
			}
			if n := svc.LoadedTenants(); n != 0 {
				t.Errorf("LoadedTenants = %d after failed loads, want 0", n)
			}
			store.set(nil, nil)
			if ok, err := svc.HasPermission(ctx, k, "alice", "read"); err != nil || !ok {
				t.Errorf("HasPermission after the store recovered = %v, %v; want true", ok, err)
			}
		})
	}
}

// downStore is a store that cannot be reached at all.
type downStore struct{}

func (downStore) FindTenant(context.Context, policy.KeyHash) (int64, bool, error) {
	return 0, false, policy.ErrUnavailable
}

func (downStore) LoadTenant(context.Context, policy.KeyHash, policy.RuleFunc) (policy.Snapshot, bool, error) {
	return policy.Snapshot{}, false, policy.ErrUnavailable
}

func (downStore) Change(context.Context, func(context.Context, policy.Tx) error) error {
	return policy.ErrUnavailable
}

func (downStore) Ping(context.Context) error { return policy.ErrUnavailable }

func (downStore) Revision(context.Context, policy.KeyHash) (int64, int64, bool, error) {
	return 0, 0, false, policy.ErrUnavailable
}

func (downStore) ReadChanges(context.Context, int64, policy.Position, int) (policy.ChangeBatch, error) {
	return policy.ChangeBatch{}, policy.ErrUnavailable
}

func (downStore) PurgeChanges(context.Context, time.Time) (int64, error) {
	return 0, policy.ErrUnavailable
}

func (downStore) DueExpiries(context.Context, time.Time, int) ([]policy.DueExpiry, error) {
	return nil, policy.ErrUnavailable
}

func TestUnreachableStore(t *testing.T) {
	ctx := context.Background()
	svc, err := policy.New(downStore{}, auth.DefaultModel, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := mustKey(t, keyA)
	if err := svc.Ping(ctx); !errors.Is(err, policy.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
	for name, call := range map[string]func() (bool, error){
		"CreateRole":    func() (bool, error) { return svc.CreateRole(ctx, k, "admin") },
		"Revoke":        func() (bool, error) { return svc.Revoke(ctx, k, "admin", "read") },
		"RemoveMember":  func() (bool, error) { return svc.RemoveMember(ctx, k, "alice", "admin") },
		"HasPermission": func() (bool, error) { return svc.HasPermission(ctx, k, "alice", "read") },
	} {
		if ok, err := call(); ok || !errors.Is(err, policy.ErrUnavailable) {
			t.Errorf("%s = %v, %v; want false, ErrUnavailable", name, ok, err)
		}
	}
}

// recorder keeps the audit entries it is given, or fails.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
	err     error
}

func (r *recorder) RecordChange(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.entries = append(r.entries, e)
	return nil
}

func TestAuditRecords(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	rec := &recorder{}
	svc := newService(t, db, auth.DefaultModel, policy.Options{Recorder: rec})
	k := mustKey(t, keyA)
	for _, call := range []func() (bool, error){
		func() (bool, error) { return svc.CreateRole(ctx, k, "admin") },
		func() (bool, error) { return svc.Grant(ctx, k, "ghost", "read") },
		func() (bool, error) { return svc.AddMember(ctx, k, "alice", "admin") },
	} {
		if _, err := call(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		string(k) + " CREATE_ROLE admin  true",
		string(k) + " ADD_PERMISSION ghost:read  false",
		string(k) + " ADD_MEMBERSHIP admin alice true",
	}
	if len(rec.entries) != len(want) {
		t.Fatalf("%d audit entries, want %d: %+v", len(rec.entries), len(want), rec.entries)
	}
	for i, e := range rec.entries {
		got := fmt.Sprintf("%s %s %s %s %v", e.Tenant, e.Action, e.Resource, e.User, e.Success)
		if got != want[i] {
			t.Errorf("entry %d = %q, want %q", i, got, want[i])
		}
		if e.Time.IsZero() || e.Time.Location().String() != "UTC" {
			t.Errorf("entry %d time %v, want a UTC time", i, e.Time)
		}
	}

	// A failing recorder fails the change: nothing is committed.
	rec.err = errInjected
	if ok, err := svc.Grant(ctx, k, "admin", "read"); ok || !errors.Is(err, errInjected) {
		t.Errorf("Grant with a failing recorder = %v, %v; want false, the error", ok, err)
	}
	rec.err = nil
	if ok, err := svc.HasPermission(ctx, k, "alice", "read"); err != nil || ok {
		t.Errorf("HasPermission after an unrecorded grant = %v, %v; want false", ok, err)
	}
	var n int64
	if err := db.Gorm().Raw("SELECT COUNT(*) FROM casbin_rule WHERE ptype = 'p'").Scan(&n).Error; err != nil || n != 0 {
		t.Errorf("%d p rules stored after an unrecorded grant (%v), want 0", n, err)
	}
}
