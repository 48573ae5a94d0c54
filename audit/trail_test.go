package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ourway/auth/audit"
)

// memStore is an in-memory audit.Store that seals records as the database
// store does.
type memStore struct {
	k    *audit.Keyring
	mu   sync.Mutex
	recs []audit.Record
	head map[string]audit.Record
	fail error
	// missing holds the fingerprints of tenants whose chain is missing.
	missing map[string]bool
	// listed is the last List call's arguments.
	listedTenant, listedUser string
	listedQuery              audit.Query
}

func newMemStore(k *audit.Keyring) *memStore {
	return &memStore{k: k, head: map[string]audit.Record{}}
}

func (m *memStore) Append(_ context.Context, recs []audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for _, r := range recs {
		if m.missing[r.Tenant] {
			return &audit.ChainMissingError{Tenant: r.Tenant}
		}
	}
	for i := range recs {
		r := &recs[i]
		h, ok := m.head[r.Tenant]
		prev := m.k.Genesis(r.Tenant)
		if ok {
			prev = h.MAC
		}
		r.Seq = h.Seq + 1
		m.k.Seal(prev, r)
		m.head[r.Tenant] = *r
		m.recs = append(m.recs, *r)
	}
	return nil
}

func (m *memStore) List(_ context.Context, tenantFP, userFP string, q audit.Query) ([]audit.Record, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listedTenant, m.listedUser, m.listedQuery = tenantFP, userFP, q
	return nil, 0, nil
}

func (m *memStore) records() []audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Record(nil), m.recs...)
}

// newTrail builds a trail over a memory store whose decision queue writes
// through the trail, as the server wires it.
func newTrail(t *testing.T, mode audit.Decisions, stream *slog.Logger) (*audit.Trail, *memStore, *audit.Queue) {
	t.Helper()
	k := keyring(t, testKey)
	st := newMemStore(k)
	var trail *audit.Trail
	q := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error { return trail.WriteBatch(ctx, recs) },
		audit.QueueOptions{FlushInterval: time.Hour, Logger: quietLogger()})
	trail = audit.NewTrail(k, st, q, audit.TrailOptions{Decisions: mode, Stream: stream})
	go q.Run(context.Background())
	t.Cleanup(func() { closeQueue(t, q) })
	return trail, st, q
}

func closeQueue(t *testing.T, q *audit.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("close queue: %v", err)
	}
}

func TestTrailDecisionModes(t *testing.T) {
	type decision struct {
		allowed, success bool
	}
	allowed, denied, failed := decision{true, true}, decision{false, true}, decision{true, false}
	cases := []struct {
		mode audit.Decisions
		d    decision
		want bool
	}{
		{audit.DecisionsAll, allowed, true},
		{audit.DecisionsAll, denied, true},
		{audit.DecisionsAll, failed, true},
		{audit.DecisionsDenied, allowed, false},
		{audit.DecisionsDenied, denied, true},
		{audit.DecisionsDenied, failed, true},
		{audit.DecisionsNone, allowed, false},
		{audit.DecisionsNone, denied, false},
		{audit.DecisionsNone, failed, false},
		{"", allowed, true}, // the default is all
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/allowed=%v/success=%v", tc.mode, tc.d.allowed, tc.d.success), func(t *testing.T) {
			trail, st, q := newTrail(t, tc.mode, nil)
			trail.RecordDecision(context.Background(), audit.Entry{Tenant: "tenant", User: "john",
				Action: audit.CheckPermission, Resource: "read", Success: tc.d.success}, tc.d.allowed)
			closeQueue(t, q)
			if got := len(st.records()) == 1; got != tc.want {
				t.Errorf("recorded = %v (%d records), want %v", got, len(st.records()), tc.want)
			}
		})
	}
}

// Events (failed requests, reads of the trail) and changes are recorded
// whatever the decision mode.
func TestTrailEventsAndChangesIgnoreMode(t *testing.T) {
	for _, mode := range []audit.Decisions{audit.DecisionsAll, audit.DecisionsDenied, audit.DecisionsNone} {
		t.Run(string(mode), func(t *testing.T) {
			trail, st, q := newTrail(t, mode, nil)
			ctx := context.Background()
			trail.RecordEvent(ctx, audit.Entry{Tenant: "tenant", Action: audit.GetAudit, Resource: "audit", Success: true})
			if err := trail.RecordChange(ctx, audit.Entry{Tenant: "tenant", Action: audit.CreateRole, Resource: "admin", Success: true}); err != nil {
				t.Fatal(err)
			}
			// The change is stored synchronously, before the queue runs.
			if got := st.records(); len(got) != 1 || got[0].Action != audit.CreateRole {
				t.Fatalf("after RecordChange: %+v, want the CREATE_ROLE record", got)
			}
			closeQueue(t, q)
			var got []audit.Action
			for _, r := range st.records() {
				got = append(got, r.Action)
			}
			if len(got) != 2 || got[1] != audit.GetAudit {
				t.Errorf("actions = %v, want [CREATE_ROLE GET_AUDIT]", got)
			}
		})
	}
}

// A record holds fingerprints, never the tenant or user, and the facts of
// the request carried by the context.
func TestTrailRecordFields(t *testing.T) {
	trail, st, _ := newTrail(t, audit.DecisionsAll, nil)
	k := keyring(t, testKey)
	tfp := k.TenantFingerprint("tenant-hash")
	ufp := k.UserFingerprint(tfp, "john@example.com")
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	ctx := audit.WithRequest(context.Background(), audit.Request{ID: "req-1", IP: "192.0.2.7", UserAgent: strings.Repeat("a", 600)})
	cases := []struct {
		name         string
		e            audit.Entry
		wantUser     string
		wantResource string
	}{
		{"user and resource", audit.Entry{Time: at, Tenant: "tenant-hash", User: "john@example.com", Action: audit.AddMembership,
			Resource: "admin", Success: true, Details: map[string]any{"result": true}}, ufp, ufp + ":admin"},
		{"user only", audit.Entry{Time: at, Tenant: "tenant-hash", User: "john@example.com", Action: audit.ListMemberships,
			Success: true}, ufp, ufp},
		{"no user", audit.Entry{Time: at, Tenant: "tenant-hash", Action: audit.CreateRole, Resource: "admin",
			Success: false, Details: map[string]any{"result": false}}, "", "admin"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := trail.RecordChange(ctx, tc.e); err != nil {
				t.Fatal(err)
			}
			r := st.records()[i]
			want := audit.Record{Tenant: tfp, Seq: int64(i + 1), Time: at.UTC(), User: tc.wantUser, Action: tc.e.Action,
				Resource: tc.wantResource, Success: tc.e.Success, Details: audit.CanonicalDetails(tc.e.Details),
				IP: "192.0.2.7", UserAgent: strings.Repeat("a", 512), RequestID: "req-1"}
			got := r
			got.MAC = ""
			if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v in UTC", got.Time, want.Time)
			}
			got.Time = want.Time
			if got != want {
				t.Errorf("record =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
	for _, r := range st.records() {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "john") || strings.Contains(string(b), "tenant-hash") {
			t.Errorf("record holds a raw name: %s", b)
		}
	}
}

// A record without a time gets the current time; one without request facts
// has none.
func TestTrailRecordDefaults(t *testing.T) {
	trail, st, _ := newTrail(t, audit.DecisionsAll, nil)
	before := time.Now().UTC()
	if err := trail.RecordChange(context.Background(), audit.Entry{Tenant: "t", Action: audit.CreateRole, Resource: "r"}); err != nil {
		t.Fatal(err)
	}
	r := st.records()[0]
	if r.Time.Before(before.Add(-time.Second)) || r.Time.After(time.Now().Add(time.Second)) || r.Time.Location() != time.UTC {
		t.Errorf("time = %v, want about now in UTC", r.Time)
	}
	if r.IP != "" || r.UserAgent != "" || r.RequestID != "" || r.Details != "{}" {
		t.Errorf("record without a request: ip %q, ua %q, id %q, details %s", r.IP, r.UserAgent, r.RequestID, r.Details)
	}
}

// Whatever bytes a client sends (a user agent or a path segment that is
// not UTF-8, a NUL byte, a multi-byte character across the length limit),
// the record is valid UTF-8 text: PostgreSQL refuses anything else, which
// would fail a change and wedge the decision queue.
func TestTrailRecordIsValidText(t *testing.T) {
	trail, st, _ := newTrail(t, audit.DecisionsAll, nil)
	cases := []struct {
		name     string
		ua, res  string
		wantUA   string
		wantRes  string
		uaMaxLen int
	}{
		{"invalid UTF-8", "agent\xff\xfe/1.0", "role\xc3", "agent\ufffd/1.0", "role\ufffd", 512},
		{"NUL bytes", "a\x00b", "x\x00y", "a\ufffdb", "x\ufffdy", 512},
		{"multi-byte character at the limit", strings.Repeat("a", 511) + "é", "é", strings.Repeat("a", 511), "é", 512},
		{"plain", "curl/8.0", "admin", "curl/8.0", "admin", 512},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := audit.WithRequest(context.Background(), audit.Request{ID: "r", IP: "127.0.0.1", UserAgent: tc.ua})
			if err := trail.RecordChange(ctx, audit.Entry{Tenant: "t", Action: audit.CreateRole, Resource: tc.res}); err != nil {
				t.Fatal(err)
			}
			r := st.records()[i]
			for _, f := range []string{r.UserAgent, r.Resource} {
				if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
					t.Errorf("field %q is not valid text", f)
				}
			}
			if len(r.UserAgent) > tc.uaMaxLen {
				t.Errorf("user agent of %d bytes, want at most %d", len(r.UserAgent), tc.uaMaxLen)
			}
			if r.UserAgent != tc.wantUA || r.Resource != tc.wantRes {
				t.Errorf("user agent %q, resource %q; want %q, %q", r.UserAgent, r.Resource, tc.wantUA, tc.wantRes)
			}
		})
	}
}

// A change whose record cannot be stored fails (the caller rolls the
// change back), and no log line claims it.
func TestTrailRecordChangeFailure(t *testing.T) {
	var buf syncBuffer
	trail, st, _ := newTrail(t, audit.DecisionsAll, slog.New(slog.NewJSONHandler(&buf, nil)))
	st.fail = errors.New("disk on fire")
	err := trail.RecordChange(context.Background(), audit.Entry{Tenant: "t", Action: audit.CreateRole, Resource: "r", Success: true})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("RecordChange = %v, want the store's error", err)
	}
	if buf.String() != "" {
		t.Errorf("log line for a record that was not stored: %s", buf.String())
	}
}

// A change's log line is written once its transaction commits, not before,
// and not at all if it rolls back.
func TestTrailChangeLinesAfterCommit(t *testing.T) {
	var buf syncBuffer
	k := keyring(t, testKey)
	st := newMemStore(k)
	var pending []func()
	trail := audit.NewTrail(k, st, nil, audit.TrailOptions{
		Stream:      slog.New(slog.NewJSONHandler(&buf, nil)),
		AfterCommit: func(_ context.Context, f func()) { pending = append(pending, f) },
	})
	if err := trail.RecordChange(context.Background(), audit.Entry{Tenant: "t", Action: audit.CreateRole, Resource: "r"}); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "" || len(pending) != 1 {
		t.Fatalf("before commit: log %q, %d pending; want no line and 1 pending", buf.String(), len(pending))
	}
	pending[0]()
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("after commit: %d lines, want 1:\n%s", n, buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every stored record is one JSON line "audit" with log=audit, carrying
// fingerprints and the record's seq and MAC, never a raw name or the key.
func TestTrailLogStream(t *testing.T) {
	var buf syncBuffer
	stream := slog.New(slog.NewJSONHandler(&buf, nil)).With("log", "audit")
	trail, st, q := newTrail(t, audit.DecisionsAll, stream)
	ctx := audit.WithRequest(context.Background(), audit.Request{ID: "req-9", IP: "192.0.2.9", UserAgent: "ua"})
	if err := trail.RecordChange(ctx, audit.Entry{Tenant: "tenant-hash", User: "john@example.com", Action: audit.AddMembership,
		Resource: "admin", Success: true, Details: map[string]any{"result": true}}); err != nil {
		t.Fatal(err)
	}
	trail.RecordDecision(ctx, audit.Entry{Tenant: "tenant-hash", User: "john@example.com", Action: audit.CheckPermission,
		Resource: "read", Success: true, Details: map[string]any{"allowed": false}}, false)
	trail.RecordEvent(ctx, audit.Entry{Tenant: "tenant-hash", Action: audit.GetAudit, Resource: "audit", Success: true})
	closeQueue(t, q)
	recs := st.records()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(recs) || len(recs) != 3 {
		t.Fatalf("%d log lines for %d records, want 3 and 3:\n%s", len(lines), len(recs), buf.String())
	}
	for i, line := range lines {
		var got struct {
			Msg, Log, Tenant, User, Action, Resource, IP, MAC string
			RequestID                                         string `json:"request_id"`
			OccurredAt                                        string `json:"occurred_at"`
			Seq                                               int64
			Success                                           bool
			Details                                           map[string]any
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		r := recs[i]
		if got.Msg != "audit" || got.Log != "audit" || got.Tenant != r.Tenant || got.Seq != r.Seq || got.User != r.User ||
			got.Action != string(r.Action) || got.Resource != r.Resource || got.Success != r.Success || got.MAC != r.MAC ||
			got.IP != "192.0.2.9" || got.RequestID != "req-9" || got.OccurredAt != audit.FormatTime(r.Time) || got.Details == nil {
			t.Errorf("line %d = %s\nwant the record %+v", i, line, r)
		}
		for _, secret := range []string{"john", "tenant-hash", testKey} {
			if strings.Contains(line, secret) {
				t.Errorf("line %d holds %q: %s", i, secret, line)
			}
		}
	}
}

// Search looks a tenant's records up by fingerprint, and a user by the
// fingerprint of the name given.
func TestTrailSearch(t *testing.T) {
	trail, st, _ := newTrail(t, audit.DecisionsAll, nil)
	k := keyring(t, testKey)
	tfp := k.TenantFingerprint("tenant-hash")
	cases := []struct {
		name     string
		q        audit.Query
		wantUser string
	}{
		{"no user", audit.Query{Limit: 10, Action: audit.CreateRole}, ""},
		{"user", audit.Query{Limit: 10, User: "john"}, k.UserFingerprint(tfp, "john")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := trail.Search(context.Background(), "tenant-hash", tc.q); err != nil {
				t.Fatal(err)
			}
			if st.listedTenant != tfp || st.listedUser != tc.wantUser || st.listedQuery != tc.q {
				t.Errorf("List(%q, %q, %+v), want List(%q, %q, %+v)", st.listedTenant, st.listedUser, st.listedQuery, tfp, tc.wantUser, tc.q)
			}
		})
	}
	if got := trail.Fingerprint("tenant-hash"); got != tfp {
		t.Errorf("Fingerprint = %s, want %s", got, tfp)
	}
}

// Records of a tenant whose chain is missing: a change is refused (counted
// and logged); a batch of checks is written without that tenant's records
// (counted and logged), so that it does not hold up the other tenants.
func TestTrailChainMissing(t *testing.T) {
	var logs syncBuffer
	k := keyring(t, testKey)
	st := newMemStore(k)
	gone := k.TenantFingerprint("gone")
	st.missing = map[string]bool{gone: true}
	trail := audit.NewTrail(k, st, nil, audit.TrailOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	err := trail.RecordChange(context.Background(), audit.Entry{Tenant: "gone", Action: audit.CreateRole, Resource: "r", Version: 3})
	if !errors.Is(err, audit.ErrChainMissing) {
		t.Fatalf("RecordChange = %v, want ErrChainMissing", err)
	}
	if got := trail.ChainMissing(); got != 1 {
		t.Errorf("ChainMissing() = %d after a refused change, want 1", got)
	}
	if h, ok := trail.Handle(gone); !ok || h != "gone" {
		t.Errorf("Handle(%s) = %q, %v; want the tenant's handle", gone, h, ok)
	}

	fine := k.TenantFingerprint("fine")
	batch := []audit.Record{
		{Tenant: fine, Action: audit.CheckPermission, Details: "{}"},
		{Tenant: gone, Action: audit.CheckPermission, Details: "{}"},
		{Tenant: fine, Action: audit.CheckPermission, Details: "{}"},
		{Tenant: gone, Action: audit.CheckPermission, Details: "{}"},
	}
	if err := trail.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("WriteBatch = %v, want nil (the other tenant's records written)", err)
	}
	var written []string
	for _, r := range st.records() {
		written = append(written, r.Tenant)
	}
	if len(written) != 2 || written[0] != fine || written[1] != fine {
		t.Errorf("written records of %v, want the two of %s", written, fine)
	}
	if got := trail.ChainMissing(); got != 3 {
		t.Errorf("ChainMissing() = %d, want 3 (one change, two checks)", got)
	}
	if n := strings.Count(logs.String(), gone); n != 2 || !strings.Contains(logs.String(), "audit reset") {
		t.Errorf("log lines naming %s: %d, want 2 that say how to recover:\n%s", gone, n, logs.String())
	}
	// A batch of that tenant alone is dropped, not retried.
	if err := trail.WriteBatch(context.Background(), batch[1:2]); err != nil {
		t.Errorf("WriteBatch of the missing tenant only = %v, want nil", err)
	}
}

// With StreamChangesOnly the log gets the changes' lines only: checks,
// listings and other events are stored all the same.
func TestTrailStreamChangesOnly(t *testing.T) {
	for _, tc := range []struct {
		name        string
		changesOnly bool
		wantLines   int
	}{
		{"every record", false, 3},
		{"changes only", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			k := keyring(t, testKey)
			st := newMemStore(k)
			var trail *audit.Trail
			q := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error { return trail.WriteBatch(ctx, recs) },
				audit.QueueOptions{FlushInterval: time.Hour, Logger: quietLogger()})
			trail = audit.NewTrail(k, st, q, audit.TrailOptions{
				Stream: slog.New(slog.NewJSONHandler(&buf, nil)), StreamChangesOnly: tc.changesOnly,
			})
			go q.Run(context.Background())
			ctx := context.Background()
			if err := trail.RecordChange(ctx, audit.Entry{Tenant: "t", Action: audit.CreateRole, Resource: "r"}); err != nil {
				t.Fatal(err)
			}
			trail.RecordDecision(ctx, audit.Entry{Tenant: "t", Action: audit.CheckPermission, Resource: "p", Success: true}, true)
			trail.RecordEvent(ctx, audit.Entry{Tenant: "t", Action: audit.GetAudit, Resource: "audit", Success: true})
			closeQueue(t, q)
			if n := len(st.records()); n != 3 {
				t.Fatalf("%d records stored, want 3", n)
			}
			if n := strings.Count(buf.String(), "\n"); n != tc.wantLines {
				t.Errorf("%d log lines, want %d:\n%s", n, tc.wantLines, buf.String())
			}
			if tc.changesOnly && !strings.Contains(buf.String(), `"action":"CREATE_ROLE"`) {
				t.Errorf("the change's line is missing:\n%s", buf.String())
			}
		})
	}
}

// A decision's record is finished by the queue's writer, not by the
// request: what it stores is exactly what the synchronous path (a change)
// stores for the same entry and request, fingerprints, canonical details,
// cut text and sealed names included; and a retried batch starts again
// from the records as queued.
func TestTrailDecisionRecordMatchesChangeRecord(t *testing.T) {
	for _, sealRes := range []bool{false, true} {
		t.Run(fmt.Sprintf("SealResources=%v", sealRes), func(t *testing.T) {
			k := keyring(t, testKey)
			decided, changed := newMemStore(k), newMemStore(k)
			var trail *audit.Trail
			decided.fail = errors.New("injected failure") // the first write fails after finishing the records
			q := audit.NewQueue(func(ctx context.Context, recs []audit.Record) error {
				err := trail.WriteBatch(ctx, recs)
				if err != nil {
					decided.mu.Lock()
					decided.fail = nil
					decided.mu.Unlock()
				}
				return err
			}, audit.QueueOptions{FlushInterval: time.Hour, Logger: quietLogger()})
			trail = audit.NewTrail(k, decided, q, audit.TrailOptions{SealResources: sealRes})
			sync := audit.NewTrail(k, changed, nil, audit.TrailOptions{SealResources: sealRes})
			go q.Run(context.Background())
			ctx := audit.WithRequest(context.Background(), audit.Request{ID: "req-\x00-1", IP: "192.0.2.7\xff",
				UserAgent: strings.Repeat("é", 300)})
			at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
			entries := []audit.Entry{
				{Time: at, Tenant: "tenant-a", User: "john", Action: audit.CheckPermission, Resource: "docs:read", Success: true,
					Details: map[string]any{"status_code": 200, "allowed": true}},
				{Time: at, Tenant: "tenant-b", Action: audit.ListRoles, Success: true, Details: map[string]any{"reason": "a<b"}},
				{Time: at, Tenant: "tenant-a", User: "mary", Action: audit.CheckMembership, Resource: strings.Repeat("r", 2000), Success: false},
			}
			for _, e := range entries {
				trail.RecordDecision(ctx, e, e.Success)
				if err := sync.RecordChange(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			closeQueue(t, q)
			got, want := decided.records(), changed.records()
			if len(got) != len(want) {
				t.Fatalf("%d decision records, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("decision record %d =\n%+v\nwant (as a change records it)\n%+v", i, got[i], want[i])
				}
			}
			if h, ok := trail.Handle(k.TenantFingerprint("tenant-b")); !ok || h != "tenant-b" {
				t.Errorf("Handle(tenant-b's fingerprint) = %q, %v; want tenant-b, true", h, ok)
			}
		})
	}
}
