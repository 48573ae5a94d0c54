package policysync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
)

// fakeStore names a database and has no tenants.
type fakeStore struct{ scope string }

func (f fakeStore) ReplicaScope(context.Context) (string, error) { return f.scope, nil }

func (fakeStore) Versions(context.Context, []int64) (map[int64]int64, error) {
	return map[int64]int64{}, nil
}

// recorder is an Applier that records the changes it is given.
type recorder struct {
	mu      sync.Mutex
	changes []policy.Change
	resyncs int
}

func (r *recorder) ApplyRemote(_ context.Context, c policy.Change) (policy.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	return policy.Applied, nil
}

func (r *recorder) Resync(context.Context, policy.VersionReader) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs++
	return 0, nil
}

func (r *recorder) got() []policy.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]policy.Change(nil), r.changes...)
}

func (r *recorder) resynced() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a Sync on redisURL and waits until its subscription is live.
func start(t *testing.T, redisURL, channel, scope string) (*Sync, *recorder) {
	t.Helper()
	s := New(fakeStore{scope}, Options{RedisURL: redisURL, Channel: channel, Interval: time.Hour, Logger: quiet})
	r := &recorder{}
	s.SetApplier(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	waitFor(t, 5*time.Second, "subscription live", func() bool { return s.Stats().Connected })
	return s, r
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// every kind of operation a change can carry
var sample = policy.Change{TenantID: 7, Version: 42, Ops: []policy.Op{
	{Kind: policy.OpAddRole, Role: "editor"},
	{Kind: policy.OpAddRules, Ptype: "p", Rules: [][]string{{"role:editor", "7", "write"}, {"role:editor", "7", "read"}}},
	{Kind: policy.OpAddRules, Ptype: "g", Rules: [][]string{{"alice", "role:editor", "7"}}},
	{Kind: policy.OpRemoveRules, Ptype: "p", Rules: [][]string{{"role:editor", "7", "read"}}},
	{Kind: policy.OpRemoveFiltered, Ptype: "p", FieldIndex: 0, Values: []string{"role:admin", "7"}},
	{Kind: policy.OpRemoveFiltered, Ptype: "g", FieldIndex: 1, Values: []string{"role:admin", "7"}},
	{Kind: policy.OpRemoveFiltered, Ptype: "g", FieldIndex: 0, Values: []string{"role:admin", "", "7"}},
	{Kind: policy.OpRemoveRole, Role: "admin"},
}}

func TestChangesRoundTrip(t *testing.T) {
	url := testenv.RedisURL(t)
	channel, scope := "/auth/test/"+unique(), unique()
	a, fromA := start(t, url, channel, scope)
	b, fromB := start(t, url, channel, scope)
	other, fromOther := start(t, url, channel, unique()) // another database

	if err := a.Publish(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	hint := policy.Change{TenantID: 8, Version: 9, Reload: true}
	if err := a.Publish(context.Background(), hint); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b receives both changes", func() bool { return len(fromB.got()) == 2 })
	if got := fromB.got(); !reflect.DeepEqual(got, []policy.Change{sample, hint}) {
		t.Errorf("b received\n%+v\nwant\n%+v", got, []policy.Change{sample, hint})
	}
	// other publishes, then b: a gets them in that order on the one
	// channel, so once it has b's change it has seen other's, and ignored it.
	if err := other.Publish(context.Background(), policy.Change{TenantID: 1, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), policy.Change{TenantID: 1, Version: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a receives b's change", func() bool { return len(fromA.got()) > 0 })
	if got := fromA.got(); !reflect.DeepEqual(got, []policy.Change{{TenantID: 1, Version: 2}}) {
		t.Errorf("a received %+v, want b's change only (not its own, not another database's)", got)
	}
	if got := fromOther.got(); len(got) != 0 {
		t.Errorf("a replica of another database applied %+v", got)
	}
	if st := a.Stats(); st.Published != 2 || st.PublishFailures != 0 || st.Applied != 1 {
		t.Errorf("a's stats %+v", st)
	}
}

// TestRedisOutage: while Redis is away a publish fails fast, the replica
// reports itself disconnected, and once Redis is back the others are told
// to reload the tenants whose changes were lost, and it compares versions
// with the database.
func TestRedisOutage(t *testing.T) {
	url := testenv.RedisURL(t)
	proxy := testenv.NewProxy(t, testenv.RedisAddr(t))
	channel, scope := "/auth/test/"+unique(), unique()
	a, fromA := start(t, "redis://"+proxy.Addr(), channel, scope)
	_, fromB := start(t, url, channel, scope)
	before := fromA.resynced()

	proxy.Cut()
	var slowest time.Duration
	for v := int64(1); v <= 20; v++ {
		began := time.Now()
		if err := a.Publish(context.Background(), policy.Change{TenantID: 3, Version: v}); err == nil {
			t.Fatalf("publish %d succeeded with Redis away", v)
		}
		slowest = max(slowest, time.Since(began))
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("a publish took %v with Redis away", slowest)
	}
	waitFor(t, 5*time.Second, "a reports Redis down", func() bool { return !a.Stats().Connected })
	if st := a.Stats(); st.PublishFailures != 20 {
		t.Errorf("publish failures %d, want 20", st.PublishFailures)
	}

	proxy.Restore()
	waitFor(t, 5*time.Second, "a reconnected", func() bool { return a.Stats().Connected })
	waitFor(t, 5*time.Second, "b told to reload tenant 3", func() bool { return len(fromB.got()) > 0 })
	if got, want := fromB.got(), []policy.Change{{TenantID: 3, Version: 20, Reload: true}}; !reflect.DeepEqual(got, want) {
		t.Errorf("b received %+v, want %+v", got, want)
	}
	waitFor(t, 5*time.Second, "a compares versions", func() bool { return fromA.resynced() > before })
}

func TestRedisURLFor(t *testing.T) {
	for _, tc := range []struct{ watcher, rateLimit, want string }{
		{"", "memory://", ""},
		{"", "redis://r:6379/0", "redis://r:6379/0"},
		{"", "rediss://r:6379/0", "rediss://r:6379/0"},
		{"redis://w:6379/2", "redis://r:6379/0", "redis://w:6379/2"},
		{"redis://w:6379/2", "memory://", "redis://w:6379/2"},
	} {
		if got := RedisURLFor(tc.watcher, tc.rateLimit); got != tc.want {
			t.Errorf("RedisURLFor(%q, %q) = %q, want %q", tc.watcher, tc.rateLimit, got, tc.want)
		}
	}
}

// Run refuses to start without the policy core, and without Redis it still
// runs the passes asked for until its context ends.
func TestRun(t *testing.T) {
	if err := New(fakeStore{"s"}, Options{Logger: quiet}).Run(context.Background()); err == nil || err.Error() != "policysync: Run before SetApplier" {
		t.Errorf("Run without an applier = %v, want the SetApplier error", err)
	}
	s := New(fakeStore{"s"}, Options{Logger: quiet})
	r := &recorder{}
	s.SetApplier(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.triggerResync()
	waitFor(t, 5*time.Second, "a pass asked for runs", func() bool { return r.resynced() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// Job is the anti-entropy pass at the configured interval (5s by default).
func TestJob(t *testing.T) {
	for _, tc := range []struct {
		interval, want time.Duration
	}{{0, 5 * time.Second}, {time.Minute, time.Minute}} {
		s := New(fakeStore{"s"}, Options{Interval: tc.interval, Logger: quiet})
		r := &recorder{}
		s.SetApplier(r)
		j := s.Job()
		if j.Name != "replica anti-entropy" || j.Every != tc.want || j.Immediately {
			t.Errorf("Job() with Interval %v = {%q every %v, immediately %v}, want {replica anti-entropy every %v}",
				tc.interval, j.Name, j.Every, j.Immediately, tc.want)
		}
		j.Run(context.Background())
		if r.resynced() != 1 {
			t.Errorf("Job().Run compared versions %d times, want 1", r.resynced())
		}
	}
}

// A change is published after its commit even if the request that made it
// has ended meanwhile (its deadline ran out): the breaker does not refuse a
// publish for its caller's context.
func TestPublishAfterRequestEnded(t *testing.T) {
	url := testenv.RedisURL(t)
	channel, scope := "/auth/test/"+unique(), unique()
	a, _ := start(t, url, channel, scope)
	_, fromB := start(t, url, channel, scope)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Publish(ended, sample); err != nil {
		t.Fatalf("Publish with the request's context ended: %v", err)
	}
	waitFor(t, 2*time.Second, "b receives the change", func() bool { return len(fromB.got()) == 1 })
	if st := a.Stats(); st.Published != 1 || st.PublishFailures != 0 {
		t.Errorf("a's stats %+v, want 1 published, no failure", st)
	}
}
