package policy_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ourway/auth/policy"
)

// TestReplicaResourceChanges: a description set and a user deleted on one
// replica reach another replica's memory through the published operations
// (applied, not reloaded), as that replica would load them from the
// database.
func TestReplicaResourceChanges(t *testing.T) {
	p := newReplicaPair(t)
	ctx := p.ctx
	for _, r := range []string{"r1", "r2"} {
		created, _, err := p.a.PutRole(ctx, p.key, r, false, nil)
		mustTrue(t, created, err)
		ok, err := p.a.PutMember(ctx, p.key, "gone", r)
		mustTrue(t, ok, err)
		ok, err = p.a.PutMember(ctx, p.key, "stays", r)
		mustTrue(t, ok, err)
	}
	if got := roleNames(t, p.b, p.key); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("b loads roles %q", got)
	}
	p.aBus.take()

	desc := "first role"
	created, now, err := p.a.PutRole(ctx, p.key, "r1", true, &desc)
	if err != nil || created || now == nil || *now != desc {
		t.Fatalf("PutRole(r1, %q) = %v, %v, %v", desc, created, now, err)
	}
	n, err := p.a.DeleteUser(ctx, p.key, "gone")
	if err != nil || n != 2 {
		t.Fatalf("DeleteUser(gone) = %d, %v; want 2", n, err)
	}
	cs := p.aBus.take()
	if got, want := deliver(t, p.b, cs), []string{"applied", "applied"}; !slices.Equal(got, want) {
		t.Fatalf("b: %q, want %q", got, want)
	}
	info, err := p.b.RoleInfo(ctx, p.key, "r1")
	if err != nil || info.Description == nil || *info.Description != desc || info.Members != 1 {
		t.Fatalf("b: RoleInfo(r1) = %+v, %v; want the description and one member", info, err)
	}
	for _, u := range []struct {
		user  string
		roles int
	}{{"gone", 0}, {"stays", 2}} {
		roles, err := p.b.UserRoleTree(ctx, p.key, u.user)
		if err != nil || len(roles) != u.roles {
			t.Errorf("b: roles of %s = %+v, %v; want %d", u.user, roles, err, u.roles)
		}
	}
	// A null description clears it.
	if _, now, err := p.a.PutRole(ctx, p.key, "r1", true, nil); err != nil || now != nil {
		t.Fatalf("PutRole(r1, null) = %v, %v", now, err)
	}
	deliver(t, p.b, p.aBus.take())
	if info, err := p.b.RoleInfo(ctx, p.key, "r1"); err != nil || info.Description != nil {
		t.Fatalf("b: RoleInfo(r1) = %+v, %v; want no description", info, err)
	}
}

// TestResourceChangesAnswerWhatChanged: PUT-style changes answer whether
// they created, DELETE-style ones whether they removed, and both refuse a
// missing role.
func TestResourceChangesAnswerWhatChanged(t *testing.T) {
	p := newReplicaPair(t)
	ctx, s, key := p.ctx, p.a, p.key
	var nf *policy.RoleNotFoundError
	if _, err := s.PutGrant(ctx, key, "ghost", "read"); !errors.As(err, &nf) || nf.Role != "ghost" {
		t.Fatalf("PutGrant on a missing role: %v", err)
	}
	if _, err := s.DeleteMember(ctx, key, "alice", "ghost"); !errors.As(err, &nf) {
		t.Fatalf("DeleteMember on a missing role: %v", err)
	}
	if ok, err := s.CreateRoleDescribed(ctx, key, "a", nil); err != nil || !ok {
		t.Fatalf("CreateRoleDescribed(a) = %v, %v", ok, err)
	}
	if ok, err := s.CreateRoleDescribed(ctx, key, "a", nil); err != nil || ok {
		t.Fatalf("CreateRoleDescribed(a) again = %v, %v; want false", ok, err)
	}
	if _, err := s.PutParent(ctx, key, "a", "ghost"); !errors.As(err, &nf) || nf.Role != "ghost" {
		t.Fatalf("PutParent to a missing parent: %v", err)
	}
	for _, step := range []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"grant", func() (bool, error) { return s.PutGrant(ctx, key, "a", "read") }, true},
		{"grant again", func() (bool, error) { return s.PutGrant(ctx, key, "a", "read") }, false},
		{"revoke", func() (bool, error) { return s.DeleteGrant(ctx, key, "a", "read") }, true},
		{"revoke again", func() (bool, error) { return s.DeleteGrant(ctx, key, "a", "read") }, false},
		{"member", func() (bool, error) { return s.PutMember(ctx, key, "alice", "a") }, true},
		{"member again", func() (bool, error) { return s.PutMember(ctx, key, "alice", "a") }, false},
		{"remove member", func() (bool, error) { return s.DeleteMember(ctx, key, "alice", "a") }, true},
		{"remove member again", func() (bool, error) { return s.DeleteMember(ctx, key, "alice", "a") }, false},
	} {
		if got, err := step.do(); err != nil || got != step.want {
			t.Errorf("%s = %v, %v; want %v", step.name, got, err, step.want)
		}
	}
}
