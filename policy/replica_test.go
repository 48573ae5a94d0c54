package policy_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/ourway/auth"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// bus records what a replica publishes.
type bus struct {
	mu      sync.Mutex
	changes []policy.Change
}

func (b *bus) Publish(_ context.Context, c policy.Change) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changes = append(b.changes, c)
	return nil
}

// take returns and forgets what was published.
func (b *bus) take() []policy.Change {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.changes
	b.changes = nil
	return out
}

// hookStore is a store whose loads and changes a test can hold up or fail.
type hookStore struct {
	*policydb.Store
	afterLoad func()       // runs after a tenant's snapshot is read
	change    func() error // fails Change when it returns an error
}

func (s *hookStore) LoadTenant(ctx context.Context, key policy.KeyHash, add policy.RuleFunc) (policy.Snapshot, bool, error) {
	snap, found, err := s.Store.LoadTenant(ctx, key, add)
	if s.afterLoad != nil {
		s.afterLoad()
	}
	return snap, found, err
}

func (s *hookStore) Change(ctx context.Context, fn func(ctx context.Context, tx policy.Tx) error) error {
	if s.change != nil {
		if err := s.change(); err != nil {
			return err
		}
	}
	return s.Store.Change(ctx, fn)
}

// replicaPair is two services on one database, each publishing to a bus of
// its own; nothing is delivered unless the test does it.
type replicaPair struct {
	store      *policydb.Store
	a, b       *policy.Service
	aBus, bBus *bus
	bStore     *hookStore
	key        policy.KeyHash
	ctx        context.Context
}

func newReplicaPair(t *testing.T) *replicaPair {
	t.Helper()
	db := openSQLite(t)
	p := &replicaPair{store: policydb.New(db), aBus: &bus{}, bBus: &bus{}, ctx: context.Background()}
	p.bStore = &hookStore{Store: p.store}
	var err error
	if p.a, err = policy.New(p.store, auth.DefaultModel, policy.Options{Publisher: p.aBus}); err != nil {
		t.Fatal(err)
	}
	if p.b, err = policy.New(p.bStore, auth.DefaultModel, policy.Options{Publisher: p.bBus}); err != nil {
		t.Fatal(err)
	}
	p.key = mustKey(t, "7d1b2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e")
	return p
}

func mustTrue(t *testing.T, ok bool, err error) {
	t.Helper()
	if err != nil || !ok {
		t.Fatalf("got %v, %v; want true", ok, err)
	}
}

func roleNames(t *testing.T, s *policy.Service, key policy.KeyHash) []string {
	t.Helper()
	roles, err := s.ListRoles(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range roles {
		out = append(out, r.Name)
	}
	return out
}

// deliver applies changes to s and returns what it did with each.
func deliver(t *testing.T, s *policy.Service, cs []policy.Change) []string {
	t.Helper()
	var out []string
	for _, c := range cs {
		what, err := s.ApplyRemote(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, what.String())
	}
	return out
}

// TestReplicaChangesApplyInOrder: a change's operations, applied to another
// replica's memory, give what that replica would load from the database; a
// change seen twice is ignored, and a gap makes the replica reload.
func TestReplicaChangesApplyInOrder(t *testing.T) {
	p := newReplicaPair(t)
	ctx := p.ctx
	ok, err := p.a.CreateRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	if got := roleNames(t, p.b, p.key); !slices.Equal(got, []string{"admin"}) {
		t.Fatalf("b loads roles %q", got)
	}
	p.aBus.take()

	ok, err = p.a.Grant(ctx, p.key, "admin", "read")
	mustTrue(t, ok, err)
	ok, err = p.a.AddMember(ctx, p.key, "alice", "admin")
	mustTrue(t, ok, err)
	ok, err = p.a.DeleteRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	ok, err = p.a.CreateRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	cs := p.aBus.take()
	if len(cs) != 4 {
		t.Fatalf("a published %d changes, want 4", len(cs))
	}
	if got, want := deliver(t, p.b, cs[:2]), []string{"applied", "applied"}; !slices.Equal(got, want) {
		t.Fatalf("b: %q, want %q", got, want)
	}
	has, err := p.b.HasPermission(ctx, p.key, "alice", "read")
	mustTrue(t, has, err)
	if got, want := deliver(t, p.b, cs[:2]), []string{"already applied", "already applied"}; !slices.Equal(got, want) {
		t.Fatalf("b, same changes again: %q, want %q", got, want)
	}
	// cs[2] is lost: cs[3] leaves a gap.
	if got, want := deliver(t, p.b, cs[3:]), []string{"reloaded"}; !slices.Equal(got, want) {
		t.Fatalf("b after a lost change: %q, want %q", got, want)
	}
	if has, err := p.b.HasPermission(ctx, p.key, "alice", "read"); err != nil || has {
		t.Fatalf("alice can read on b after the role was deleted and made again: %v, %v", has, err)
	}
	if got := deliver(t, p.b, cs[2:3]); !slices.Equal(got, []string{"already applied"}) {
		t.Fatalf("b, the lost change late: %q", got)
	}
	if len(p.bBus.take()) != 0 {
		t.Fatal("b published changes it received")
	}
}

// TestReplicaStaleWriteAsksForReload: a replica whose memory is behind the
// database when it writes reloads, and publishes a reload hint (it does not
// know the operations of the changes it missed); a replica behind that
// version reloads on it.
func TestReplicaStaleWriteAsksForReload(t *testing.T) {
	p := newReplicaPair(t)
	ctx := p.ctx
	ok, err := p.a.CreateRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	roleNames(t, p.b, p.key) // loaded on b
	p.aBus.take()

	ok, err = p.a.Grant(ctx, p.key, "admin", "read") // b does not hear of it
	mustTrue(t, ok, err)
	fromA := p.aBus.take()
	ok, err = p.b.Grant(ctx, p.key, "admin", "write")
	mustTrue(t, ok, err)
	fromB := p.bBus.take()
	if len(fromB) != 1 || !fromB[0].Reload || fromB[0].Version != 3 || len(fromB[0].Ops) != 0 {
		t.Fatalf("b published %+v, want one reload hint for version 3", fromB)
	}
	if has, err := p.b.RoleHasPermission(ctx, p.key, "admin", "read"); err != nil || !has {
		t.Fatalf("b after its stale write: admin can read = %v, %v; want true (reloaded)", has, err)
	}
	if got := deliver(t, p.a, fromB); !slices.Equal(got, []string{"reloaded"}) {
		t.Fatalf("a on the hint: %q, want reloaded", got)
	}
	has, err := p.a.RoleHasPermission(ctx, p.key, "admin", "write")
	mustTrue(t, has, err)
	if got := deliver(t, p.b, fromA); !slices.Equal(got, []string{"already applied"}) {
		t.Fatalf("b on a's late change: %q", got)
	}
}

// TestReplicaChangeDuringLoad: a change of another replica that arrives
// while this replica is loading the tenant (after its snapshot was read)
// is not lost: the load reads the tenant again.
func TestReplicaChangeDuringLoad(t *testing.T) {
	p := newReplicaPair(t)
	ctx := p.ctx
	ok, err := p.a.CreateRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	p.aBus.take()

	loaded := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	p.bStore.afterLoad = func() {
		once.Do(func() {
			close(loaded)
			<-release
		})
	}
	done := make(chan []string)
	go func() {
		roles, _ := p.b.ListRoles(ctx, p.key)
		var names []string
		for _, r := range roles {
			names = append(names, r.Name)
		}
		done <- names
	}()
	<-loaded // b has read the tenant, and has not installed it yet
	ok, err = p.a.CreateRole(ctx, p.key, "editor")
	mustTrue(t, ok, err)
	if got := deliver(t, p.b, p.aBus.take()); !slices.Equal(got, []string{"not loaded"}) {
		t.Fatalf("b during its load: %q", got)
	}
	close(release)
	if got := <-done; !slices.Equal(got, []string{"admin", "editor"}) {
		t.Fatalf("b's first read = %q, want admin editor (the load reads again)", got)
	}
}

// TestReplicaResyncTenantCreatedElsewhere: a replica that holds a tenant as
// not existing yet (its own first write failed) picks it up on the next
// anti-entropy pass once another replica has created it; a stale loaded
// tenant is reloaded by the pass too.
func TestReplicaResyncTenantCreatedElsewhere(t *testing.T) {
	p := newReplicaPair(t)
	ctx := p.ctx
	p.bStore.change = func() error { return errors.New("database blip") }
	if _, err := p.b.CreateRole(ctx, p.key, "admin"); err == nil {
		t.Fatal("b's write did not fail")
	}
	p.bStore.change = nil
	ok, err := p.a.CreateRole(ctx, p.key, "admin")
	mustTrue(t, ok, err)
	if got := roleNames(t, p.b, p.key); len(got) != 0 {
		t.Fatalf("b before the pass = %q (the test needs it stale)", got)
	}
	n, err := p.b.Resync(ctx, p.store)
	if err != nil || n != 1 {
		t.Fatalf("Resync = %d, %v; want 1 tenant reloaded", n, err)
	}
	if got := roleNames(t, p.b, p.key); !slices.Equal(got, []string{"admin"}) {
		t.Fatalf("b after the pass = %q", got)
	}
	ok, err = p.a.CreateRole(ctx, p.key, "editor") // b does not hear of it
	mustTrue(t, ok, err)
	if n, err := p.b.Resync(ctx, p.store); err != nil || n != 1 {
		t.Fatalf("Resync = %d, %v; want 1 tenant reloaded", n, err)
	}
	if got := roleNames(t, p.b, p.key); !slices.Equal(got, []string{"admin", "editor"}) {
		t.Fatalf("b after the second pass = %q", got)
	}
	if n, err := p.b.Resync(ctx, p.store); err != nil || n != 0 {
		t.Fatalf("Resync when current = %d, %v; want 0", n, err)
	}
}
