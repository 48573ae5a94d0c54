package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Decisions says which checks and listings are recorded.
type Decisions string

// The decision-logging modes.
const (
	DecisionsAll    Decisions = "all"
	DecisionsDenied Decisions = "denied"
	DecisionsNone   Decisions = "none"
)

// Store keeps sealed records: Append writes inside the transaction carried
// by ctx when there is one; List reads a tenant's records newest first.
type Store interface {
	Append(ctx context.Context, recs []Record) error
	List(ctx context.Context, tenantFP, userFP string, q Query) (recs []Record, next int64, err error)
}

// Query selects records of one tenant.
type Query struct {
	Action Action
	User   string // a user name; matched through its fingerprint
	Since  time.Time
	Until  time.Time
	// Before is the pagination cursor: only records with a lower sequence
	// number (0: from the newest).
	Before int64
	Limit  int
}

// Trail is the audit trail of the service: it fingerprints, seals and
// stores every record, writes changes in their own transaction (fail
// closed), queues checks and listings, and emits each record as one JSON log
// line for a SIEM.
type Trail struct {
	keys      *Keyring
	store     Store
	queue     *Queue
	decisions Decisions
	stream    *slog.Logger
	// streamChanges limits the stream to committed changes.
	streamChanges bool
	after         func(ctx context.Context, f func())
	sealRes       bool
	now           func() time.Time
	log           *slog.Logger
	missing       atomic.Int64
	// handles maps the fingerprints of the tenants seen to their handles,
	// for Handle.
	handles sync.Map
	// tenantFPs caches tenants' fingerprints (handle → fingerprint), at
	// most maxCachedTenants of them (cachedTenants).
	tenantFPs     sync.Map
	cachedTenants atomic.Int64
	// details caches decoded details for the log lines (details string →
	// decoded value), at most maxDecodedDetails of them.
	details       sync.Map
	cachedDetails atomic.Int64
}

// TrailOptions tune a Trail.
type TrailOptions struct {
	Decisions Decisions
	// Stream receives one line per stored record (nil: none).
	Stream *slog.Logger
	// StreamChangesOnly limits Stream to the records of committed changes:
	// checks, listings and other events are stored but not streamed.
	StreamChangesOnly bool
	// AfterCommit runs f once the transaction carried by ctx commits (nil:
	// at once). A change's log line is emitted only if the change commits.
	AfterCommit func(ctx context.Context, f func())
	// SealResources stores every name in a resource as a keyed fingerprint
	// (for field encryption: no name reaches the database in clear).
	SealResources bool
	// Logger receives an error for every record refused because its
	// tenant's chain is missing (nil: slog.Default()).
	Logger *slog.Logger
}

// NewTrail builds a trail over store; checks go through queue.
func NewTrail(keys *Keyring, store Store, queue *Queue, opts TrailOptions) *Trail {
	if opts.Decisions == "" {
		opts.Decisions = DecisionsAll
	}
	if opts.AfterCommit == nil {
		opts.AfterCommit = func(_ context.Context, f func()) { f() }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Trail{keys: keys, store: store, queue: queue, decisions: opts.Decisions, stream: opts.Stream,
		streamChanges: opts.StreamChangesOnly, after: opts.AfterCommit, sealRes: opts.SealResources, now: time.Now, log: opts.Logger}
}

// Handle returns the handle of a tenant the trail has recorded something
// for since it started, by fingerprint (a store asks it when a tenant has
// no chain, to look up the tenant's history).
func (t *Trail) Handle(tenantFP string) (string, bool) {
	h, ok := t.handles.Load(tenantFP)
	if !ok {
		return "", false
	}
	return h.(string), true
}

// ChainMissing counts the records refused because their tenant changed
// before but has no audit chain (see ErrChainMissing): changes refused and
// records of checks not written.
func (t *Trail) ChainMissing() int64 { return t.missing.Load() }

// Search returns a tenant's records newest first and the cursor of the next
// page (0 when there is none).
func (t *Trail) Search(ctx context.Context, tenant string, q Query) ([]Record, int64, error) {
	tfp := t.keys.TenantFingerprint(tenant)
	ufp := ""
	if q.User != "" {
		ufp = t.keys.UserFingerprint(tfp, q.User)
	}
	return t.store.List(ctx, tfp, ufp, q)
}

// Fingerprint returns the fingerprint that stands for a tenant in records.
func (t *Trail) Fingerprint(tenant string) string { return t.keys.TenantFingerprint(tenant) }

// record turns an entry into an unsealed record.
func (t *Trail) record(ctx context.Context, e Entry) Record {
	r := t.capture(ctx, e)
	t.finish(&r)
	return r
}

// capture takes what a record needs from an entry and the request facts in
// ctx, without fingerprinting or encoding anything yet (finish does): it is
// all a check's request pays for its record. The entry's Details map is
// kept, not copied.
func (t *Trail) capture(ctx context.Context, e Entry) Record {
	at := e.Time
	if at.IsZero() {
		at = t.now()
	}
	r := Record{Time: at, Action: e.Action, Resource: e.Resource, Success: e.Success, Version: e.Version,
		raw: raw{set: true, tenant: e.Tenant, user: e.User}}
	if e.Details != nil {
		r.raw.details = e.Details
	}
	if req, ok := RequestFrom(ctx); ok {
		r.IP, r.UserAgent, r.RequestID = req.IP, req.UserAgent, req.ID
	}
	return r
}

// finish turns a captured record into a storable one: fingerprints of the
// tenant, the user and (with SealResources) the names, the canonical
// details, times in UTC and text cut to size.
func (t *Trail) finish(r *Record) {
	if !r.raw.set {
		return
	}
	tfp := t.tenantFP(r.raw.tenant)
	d, _ := r.raw.details.(map[string]any)
	r.Tenant, r.Time, r.User = tfp, r.Time.UTC(), t.keys.UserFingerprint(tfp, r.raw.user)
	r.Resource, r.Details = text(r.Resource, 1024), CanonicalDetails(d)
	r.IP, r.UserAgent, r.RequestID = text(r.IP, 64), text(r.UserAgent, 512), text(r.RequestID, 128)
	r.raw = raw{}
	if t.sealRes && r.Resource != "" {
		parts := strings.Split(r.Resource, ":")
		for i, p := range parts {
			parts[i] = t.keys.NameFingerprint(tfp, p)
		}
		r.Resource = strings.Join(parts, ":")
	}
	// A resource that names the user names it by fingerprint only.
	if r.User != "" {
		if r.Resource == "" {
			r.Resource = r.User
		} else {
			r.Resource = r.User + ":" + r.Resource
		}
	}
}

// maxCachedTenants bounds the cache of tenant fingerprints (requests with
// made-up keys must not grow it without end).
const maxCachedTenants = 1 << 14

// tenantFP returns the tenant's fingerprint, computed once per tenant, and
// remembers the tenant's handle for Handle.
func (t *Trail) tenantFP(tenant string) string {
	if fp, ok := t.tenantFPs.Load(tenant); ok {
		return fp.(string)
	}
	fp := t.keys.TenantFingerprint(tenant)
	t.handles.LoadOrStore(fp, tenant)
	if t.cachedTenants.Load() < maxCachedTenants {
		if _, loaded := t.tenantFPs.LoadOrStore(tenant, fp); !loaded {
			t.cachedTenants.Add(1)
		}
	}
	return fp
}

// text makes a client-supplied string storable: valid UTF-8 without NUL
// bytes (PostgreSQL refuses both, which would fail the change and wedge the
// decision queue on one request), at most n bytes, cut on a character
// boundary.
func text(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RecordChange stores a change's record inside the change's transaction
// (carried by ctx): if it fails, the change fails.
func (t *Trail) RecordChange(ctx context.Context, e Entry) error {
	r := t.record(ctx, e)
	recs := []Record{r}
	if err := t.store.Append(ctx, recs); err != nil {
		if errors.Is(err, ErrChainMissing) {
			t.missing.Add(1)
			t.log.ErrorContext(ctx, "change refused: the tenant's audit chain is missing; run `auth-server audit reset`",
				"tenant", r.Tenant, "action", string(r.Action), "request_id", r.RequestID)
		}
		return err
	}
	t.after(ctx, func() { t.emit(context.WithoutCancel(ctx), recs[0]) })
	return nil
}

// RecordDecision records a check or listing according to the decision mode;
// allowed is the decision (listings count as allowed).
//
// The request pays only for queueing the entry's fields as they are (the
// trail keeps e.Details: the caller must not change it afterwards); the
// queue's writer (WriteBatch) fingerprints, encodes and seals them.
func (t *Trail) RecordDecision(ctx context.Context, e Entry, allowed bool) {
	switch t.decisions {
	case DecisionsNone:
		return
	case DecisionsDenied:
		if allowed && e.Success {
			return
		}
	}
	t.queue.Enqueue(ctx, t.capture(ctx, e))
}

// RecordEvent records, whatever the decision mode, an event that is not a
// committed change: a failed request, or a read of the audit trail itself.
// Like RecordDecision, it keeps e.Details.
func (t *Trail) RecordEvent(ctx context.Context, e Entry) {
	t.queue.Enqueue(ctx, t.capture(ctx, e))
}

// WriteBatch is the queue's writer: it finishes the records queued by
// RecordDecision and RecordEvent (fingerprints, details), stores them and
// emits them. It seals recs in place (the queue hands it a copy of its
// batch, so that a retry starts again from the records as queued).
//
// Records of a tenant whose chain is missing are not written (nor retried:
// the checks were answered; only their records are lost), so that one
// such tenant cannot hold up every other tenant's records. Each is counted
// and logged; the chain stays missing for `audit verify` to report.
func (t *Trail) WriteBatch(ctx context.Context, recs []Record) error {
	for i := range recs {
		t.finish(&recs[i])
	}
	for {
		err := t.store.Append(ctx, recs)
		var cm *ChainMissingError
		if !errors.As(err, &cm) {
			if err != nil {
				return err
			}
			break
		}
		kept := make([]Record, 0, len(recs))
		for _, r := range recs {
			if r.Tenant != cm.Tenant {
				kept = append(kept, r)
			}
		}
		if len(kept) == len(recs) {
			return err // not one of ours: keep the queue's retry
		}
		dropped := len(recs) - len(kept)
		t.missing.Add(int64(dropped))
		t.log.ErrorContext(ctx, "audit records not written: the tenant's audit chain is missing; run `auth-server audit reset`",
			"tenant", cm.Tenant, "records", dropped)
		if recs = kept; len(recs) == 0 {
			return nil
		}
	}
	if !t.streamChanges {
		for _, r := range recs {
			t.emit(ctx, r)
		}
	}
	return nil
}

// maxDecodedDetails bounds the cache of decoded details: checks have a
// handful of distinct ones, other records are decoded each time.
const maxDecodedDetails = 256

// decoded returns details decoded for a log line. Decoded values are
// cached and shared between lines: handlers only read them.
func (t *Trail) decoded(details string) any {
	if v, ok := t.details.Load(details); ok {
		return v
	}
	var v any
	_ = json.Unmarshal([]byte(details), &v)
	if len(details) <= 128 && t.cachedDetails.Load() < maxDecodedDetails {
		if _, loaded := t.details.LoadOrStore(details, v); !loaded {
			t.cachedDetails.Add(1)
		}
	}
	return v
}

// emit writes one JSON log line for a stored record: fingerprints only,
// never a key, a user name or a secret.
func (t *Trail) emit(ctx context.Context, r Record) {
	if t.stream == nil {
		return
	}
	t.stream.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.String("tenant", r.Tenant), slog.Int64("seq", r.Seq), slog.String("occurred_at", FormatTime(r.Time)),
		slog.String("user", r.User), slog.String("action", string(r.Action)), slog.String("resource", r.Resource),
		slog.Bool("success", r.Success), slog.Any("details", t.decoded(r.Details)), slog.String("ip", r.IP),
		slog.String("request_id", r.RequestID), slog.String("mac", r.MAC))
}
