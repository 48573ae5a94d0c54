package policy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// backends are the databases the integration tests of this file, of the
// change feed, expiry and cold-load tests, and the cold-load benchmark run
// on (PostgreSQL not with -short).
var backends = []struct {
	name string
	open func(testing.TB) *sqldb.DB
}{
	{"sqlite", openSQLite},
	{"postgres", func(t testing.TB) *sqldb.DB {
		if testing.Short() {
			t.Skip("PostgreSQL skipped in -short mode")
		}
		return openPostgres(t)
	}},
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

func TestParseConsistency(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  policy.Consistency
		str   string // String of the result ("" : in)
		valid bool
	}{
		{"", policy.Consistency{}, "minimize_latency", true},
		{"minimize_latency", policy.Consistency{}, "", true},
		{"full", policy.Consistency{Mode: policy.Full}, "", true},
		{"at_least:0", policy.Consistency{Mode: policy.AtLeast}, "", true},
		{"at_least:1", policy.Consistency{Mode: policy.AtLeast, Revision: 1}, "", true},
		{"at_least:42", policy.Consistency{Mode: policy.AtLeast, Revision: 42}, "", true},
		{"at_least:9223372036854775807", policy.Consistency{Mode: policy.AtLeast, Revision: 1<<63 - 1}, "", true},

		{"at_least:9223372036854775808", policy.Consistency{}, "", false}, // overflows int64
		{"at_least:", policy.Consistency{}, "", false},
		{"at_least", policy.Consistency{}, "", false},
		{"at_least:-1", policy.Consistency{}, "", false},
		{"at_least:-0", policy.Consistency{}, "", false},
		{"at_least:+5", policy.Consistency{}, "", false},
		{"at_least:05", policy.Consistency{}, "", false},
		{"at_least:00", policy.Consistency{}, "", false},
		{"at_least: 5", policy.Consistency{}, "", false},
		{"at_least:5 ", policy.Consistency{}, "", false},
		{"at_least:5x", policy.Consistency{}, "", false},
		{"at_least:1e3", policy.Consistency{}, "", false},
		{"at_least:0x10", policy.Consistency{}, "", false},
		{"at_least:1_000", policy.Consistency{}, "", false},
		{"at_least:5:6", policy.Consistency{}, "", false},
		{"AT_LEAST:5", policy.Consistency{}, "", false},
		{"at-least:5", policy.Consistency{}, "", false},
		{"at_most:5", policy.Consistency{}, "", false},
		{"Full", policy.Consistency{}, "", false},
		{"FULL", policy.Consistency{}, "", false},
		{" full", policy.Consistency{}, "", false},
		{"full ", policy.Consistency{}, "", false},
		{"Minimize_Latency", policy.Consistency{}, "", false},
		{"minimize-latency", policy.Consistency{}, "", false},
		{"latest", policy.Consistency{}, "", false},
		{"5", policy.Consistency{}, "", false},
		{"full:1", policy.Consistency{}, "", false},
		{"minimize_latency:1", policy.Consistency{}, "", false},
	} {
		got, err := policy.ParseConsistency(tc.in)
		if !tc.valid {
			if err == nil {
				t.Errorf("ParseConsistency(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseConsistency(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if s := got.String(); s != str {
			t.Errorf("ParseConsistency(%q).String() = %q, want %q", tc.in, s, str)
		}
		if back, err := policy.ParseConsistency(got.String()); err != nil || back != got {
			t.Errorf("ParseConsistency(%q) after String = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
}

// FuzzParseConsistency: ParseConsistency never panics; what it accepts
// round-trips through String, and String gives the input back unless the
// input was the empty default.
func FuzzParseConsistency(f *testing.F) {
	for _, s := range []string{"", "minimize_latency", "full", "at_least:0", "at_least:17",
		"at_least:-1", "at_least:+1", "at_least:01", "at_least:", "at_least:9223372036854775808", "full\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := policy.ParseConsistency(s)
		if err != nil {
			return
		}
		if c.Mode == policy.AtLeast && c.Revision < 0 {
			t.Fatalf("ParseConsistency(%q) = %+v: a negative revision", s, c)
		}
		back, err := policy.ParseConsistency(c.String())
		if err != nil || back != c {
			t.Fatalf("ParseConsistency(%q) = %+v; String %q reads back as %+v, %v", s, c, c.String(), back, err)
		}
		if s != "" && c.String() != s {
			t.Fatalf("ParseConsistency(%q).String() = %q", s, c.String())
		}
	})
}

// readAt runs a read of svc under the consistency need and returns the
// receipt it left.
func readAt(ctx context.Context, need policy.Consistency, read func(ctx context.Context) error) (*policy.Receipt, error) {
	rc := &policy.Receipt{Need: need}
	err := read(policy.WithReceipt(ctx, rc))
	return rc, err
}

func atLeast(n int64) policy.Consistency {
	return policy.Consistency{Mode: policy.AtLeast, Revision: n}
}

// TestConsistencyAcrossReplicas: two services on one database, without a
// bus between them, are two replicas that never hear of each other's
// changes. B, loaded before A revokes, answers minimize_latency reads from
// the state it has (stale, as documented); at_least:<A's revision> and full
// answer from the new state and say so; a revision the database has not
// reached is refused with the latest one.
func TestConsistencyAcrossReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		store := policydb.New(db)
		// B reloads at once: its wait for a message that never comes is
		// not what is tested here.
		a, err := policy.New(store, auth.DefaultModel, policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := policy.New(store, auth.DefaultModel, policy.Options{ConsistencyWait: -1})
		if err != nil {
			t.Fatal(err)
		}
		k := mustKey(t, keyA)
		populate(t, ctx, a, k)
		if ok, err := b.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
			t.Fatalf("B: alice write before the revoke = %v, %v", ok, err)
		}
		loaded, err := readAt(ctx, policy.Consistency{}, func(ctx context.Context) error {
			_, err := b.HasPermission(ctx, k, "alice", "write")
			return err
		})
		if err != nil || loaded.Revision == 0 {
			t.Fatalf("B: receipt of a read = %+v, %v; want the revision read", loaded, err)
		}

		wrote := &policy.Receipt{}
		if ok, err := a.Revoke(policy.WithReceipt(ctx, wrote), k, "admin", "write"); err != nil || !ok {
			t.Fatalf("A: Revoke = %v, %v", ok, err)
		}
		if !wrote.Wrote || wrote.Revision != loaded.Revision+1 {
			t.Fatalf("A: receipt of the revoke = %+v; want written at revision %d", wrote, loaded.Revision+1)
		}
		rev := wrote.Revision

		check := func(need policy.Consistency) (bool, *policy.Receipt, error) {
			var ok bool
			rc, err := readAt(ctx, need, func(ctx context.Context) error {
				var err error
				ok, err = b.HasPermission(ctx, k, "alice", "write")
				return err
			})
			return ok, rc, err
		}
		// minimize_latency: B's own (stale) state, at the revision it has.
		ok, rc, err := check(policy.Consistency{})
		if err != nil || !ok || rc.Revision != loaded.Revision {
			t.Fatalf("B minimize_latency = %v at %d, %v; want the stale true at %d", ok, rc.Revision, err, loaded.Revision)
		}
		for _, need := range []policy.Consistency{atLeast(rev), atLeast(rev - 1), {Mode: policy.Full}} {
			ok, rc, err := check(need)
			if err != nil || ok || rc.Revision < rev {
				t.Errorf("B %s = %v at %d, %v; want false at %d or later", need, ok, rc.Revision, err, rev)
			}
			if rc.Wrote {
				t.Errorf("B %s: a read's receipt says it wrote", need)
			}
		}
		// Other reads honour the need too.
		perms := func(b *policy.Service, need policy.Consistency) ([]string, error) {
			var out []string
			_, err := readAt(ctx, need, func(ctx context.Context) error {
				var err error
				out, err = b.UserPermissions(ctx, k, "alice")
				return err
			})
			return out, err
		}
		if _, err := a.Grant(ctx, k, "admin", "audit"); err != nil {
			t.Fatal(err)
		}
		got, err := perms(b, atLeast(rev+1))
		if err != nil || !setOf(got)["audit"] {
			t.Errorf("B UserPermissions at_least:%d = %q, %v; want audit among them", rev+1, got, err)
		}

		// A revision the database has not reached.
		for _, need := range []policy.Consistency{atLeast(rev + 2), atLeast(rev + 100)} {
			_, _, err := check(need)
			var ahead *policy.RevisionAheadError
			if !errors.As(err, &ahead) || ahead.Revision != need.Revision || ahead.Latest != rev+1 {
				t.Errorf("B %s: %v; want RevisionAheadError{%d, latest %d}", need, err, need.Revision, rev+1)
			}
			if errors.Is(err, policy.ErrUnavailable) {
				t.Errorf("B %s: %v matches ErrUnavailable; it is the caller's mistake", need, err)
			}
		}
		// A tenant that does not exist is at revision 0.
		ghost := mustKey(t, keyB)
		for _, tc := range []struct {
			need  policy.Consistency
			ahead bool
		}{{atLeast(0), false}, {policy.Consistency{Mode: policy.Full}, false}, {atLeast(1), true}} {
			rc, err := readAt(ctx, tc.need, func(ctx context.Context) error {
				_, err := b.HasPermission(ctx, ghost, "alice", "write")
				return err
			})
			var ahead *policy.RevisionAheadError
			switch {
			case tc.ahead && (!errors.As(err, &ahead) || ahead.Latest != 0):
				t.Errorf("missing tenant %s: %v; want RevisionAheadError with latest 0", tc.need, err)
			case !tc.ahead && (err != nil || rc.Revision != 0):
				t.Errorf("missing tenant %s: revision %d, %v; want 0", tc.need, rc.Revision, err)
			}
		}
	})
}

// revOutage is an outage store whose revision reads fail too.
type revOutage struct{ *outageStore }

func (s revOutage) Revision(ctx context.Context, key policy.KeyHash) (int64, int64, bool, error) {
	if err := s.fault(ctx); err != nil {
		return 0, 0, false, err
	}
	return s.outageStore.Revision(ctx, key)
}

// TestConsistencyUnavailable: a replica behind the revision asked for whose
// database does not answer fails the read with ErrConsistencyUnavailable,
// never with an answer from its older state; minimize_latency still answers
// from memory.
func TestConsistencyUnavailable(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	a := newService(t, db, auth.DefaultModel, policy.Options{})
	store := &outageStore{Store: policydb.New(db)}
	b, err := policy.New(revOutage{store}, auth.DefaultModel, policy.Options{ConsistencyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	k := mustKey(t, keyA)
	populate(t, ctx, a, k)
	if ok, err := b.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
		t.Fatalf("B before the revoke = %v, %v", ok, err)
	}
	wrote := &policy.Receipt{}
	if _, err := a.Revoke(policy.WithReceipt(ctx, wrote), k, "admin", "write"); err != nil {
		t.Fatal(err)
	}
	store.mode.Store(int32(refused))
	for _, need := range []policy.Consistency{atLeast(wrote.Revision), {Mode: policy.Full}} {
		var ok bool
		_, err := readAt(ctx, need, func(ctx context.Context) error {
			var err error
			ok, err = b.HasPermission(ctx, k, "alice", "write")
			return err
		})
		if !errors.Is(err, policy.ErrConsistencyUnavailable) || !errors.Is(err, policy.ErrUnavailable) || ok {
			t.Errorf("B %s during the outage = %v, %v; want ErrConsistencyUnavailable and no answer", need, ok, err)
		}
	}
	// What B has is enough for an older revision, and for minimize_latency.
	for _, need := range []policy.Consistency{{}, atLeast(wrote.Revision - 1)} {
		var ok bool
		_, err := readAt(ctx, need, func(ctx context.Context) error {
			var err error
			ok, err = b.HasPermission(ctx, k, "alice", "write")
			return err
		})
		if err != nil || !ok {
			t.Errorf("B %s during the outage = %v, %v; want its own answer", need, ok, err)
		}
	}
	store.mode.Store(int32(up))
	var ok bool
	if _, err := readAt(ctx, atLeast(wrote.Revision), func(ctx context.Context) error {
		var err error
		ok, err = b.HasPermission(ctx, k, "alice", "write")
		return err
	}); err != nil || ok {
		t.Errorf("B at_least:%d after the outage = %v, %v; want false", wrote.Revision, ok, err)
	}
}

// TestConsistencyWaitsForMessage: an at_least read on a replica behind
// waits for the other replica's message and answers from it, without
// reloading the tenant from the database.
func TestConsistencyWaitsForMessage(t *testing.T) {
	db := openSQLite(t)
	aBus := &bus{}
	a, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{Publisher: aBus})
	if err != nil {
		t.Fatal(err)
	}
	// A wait long enough never to end before the message.
	b, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{ConsistencyWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, k := context.Background(), mustKey(t, keyA)
	populate(t, ctx, a, k)
	if ok, err := b.HasPermission(ctx, k, "alice", "write"); err != nil || !ok {
		t.Fatalf("B = %v, %v", ok, err)
	}
	aBus.take()
	wrote := &policy.Receipt{}
	if _, err := a.Revoke(policy.WithReceipt(ctx, wrote), k, "admin", "write"); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		ok  bool
		rc  *policy.Receipt
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var ok bool
		rc, err := readAt(ctx, atLeast(wrote.Revision), func(ctx context.Context) error {
			var err error
			ok, err = b.HasPermission(ctx, k, "alice", "write")
			return err
		})
		done <- answer{ok, rc, err}
	}()
	// Applied, not ignored: B did not reload on its own meanwhile.
	if got := deliver(t, b, aBus.take()); len(got) != 1 || got[0] != policy.Applied.String() {
		t.Fatalf("B applies the revoke: %q", got)
	}
	got := <-done
	if got.err != nil || got.ok || got.rc.Revision != wrote.Revision {
		t.Fatalf("B at_least:%d = %v at %d, %v; want false at %d", wrote.Revision, got.ok, got.rc.Revision, got.err, wrote.Revision)
	}
}

// TestReceiptNotesWrites: every write notes the revision it committed; a
// request of several writes keeps the newest; a write refused before the
// transaction notes nothing.
func TestReceiptNotesWrites(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, openSQLite(t), auth.DefaultModel, policy.Options{})
	k := mustKey(t, keyA)
	var last int64
	for i, w := range []func(ctx context.Context) error{
		func(ctx context.Context) error { _, err := svc.CreateRole(ctx, k, "admin"); return err },
		func(ctx context.Context) error { _, err := svc.PutGrant(ctx, k, "admin", "read"); return err },
		func(ctx context.Context) error { _, err := svc.PutMember(ctx, k, "alice", "admin"); return err },
		// Changes nothing, takes a revision all the same.
		func(ctx context.Context) error { _, err := svc.PutMember(ctx, k, "alice", "admin"); return err },
		func(ctx context.Context) error { _, err := svc.DeleteUser(ctx, k, "alice"); return err },
	} {
		rc := &policy.Receipt{}
		if err := w(policy.WithReceipt(ctx, rc)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if !rc.Wrote || rc.Revision != last+1 {
			t.Fatalf("write %d: receipt %+v, want written at %d", i, rc, last+1)
		}
		last = rc.Revision
	}
	rc := &policy.Receipt{}
	ctx2 := policy.WithReceipt(ctx, rc)
	for _, r := range []string{"x", "y", "z"} {
		if _, err := svc.CreateRole(ctx2, k, r); err != nil {
			t.Fatal(err)
		}
	}
	if !rc.Wrote || rc.Revision != last+3 {
		t.Errorf("three writes under one receipt: %+v, want written at %d", rc, last+3)
	}
	if policy.ReceiptFrom(ctx2) != rc || policy.ReceiptFrom(ctx) != nil {
		t.Errorf("ReceiptFrom does not give back the receipt given")
	}
	rc = &policy.Receipt{}
	if _, err := svc.PutGrant(policy.WithReceipt(ctx, rc), k, "bad name!", "read"); err == nil {
		t.Fatal("PutGrant with an invalid role name succeeded")
	}
	if rc.Wrote || rc.Revision != 0 {
		t.Errorf("refused write noted %+v", rc)
	}
	// The revision is the tenant's policy version.
	f, err := svc.ExportPolicy(ctx, k)
	if err != nil || f.Version != last+3 {
		t.Errorf("export version = %d, %v; want %d", f.Version, err, last+3)
	}
}
