package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Reasons of API v2 errors about revisions, consistency, the change feed
// and time-bound rules (APIError.Reason).
const (
	// ReasonRevisionAhead: a read asked for a revision newer than the
	// tenant's latest (400; Details "revision" and "latest"). Matches
	// ErrRevisionAhead.
	ReasonRevisionAhead = "revision_ahead"
	// ReasonConsistencyUnavailable: the replica is behind the revision asked
	// for and could not reach its database in time (503, retrying is safe).
	// Matches ErrConsistencyUnavailable.
	ReasonConsistencyUnavailable = "consistency_unavailable"
	// ReasonChangesExpired: the change feed no longer holds the changes
	// asked for (410; Details "oldest"). Matches ErrChangesExpired.
	ReasonChangesExpired = "changes_expired"
	// ReasonExpiryUnsupported: a time-bound membership or grant under a
	// model other than the default RBAC one (400).
	ReasonExpiryUnsupported = "expiry_unsupported"
)

// DefaultChangesWait is how long FollowChanges lets the service hold each
// request once it has caught up, when the caller gives no wait.
const DefaultChangesWait = 30 * time.Second

// Consistency says how fresh the state a read is computed from must be.
// The zero value sends nothing: the service's default, MinimizeLatency.
type Consistency struct {
	mode string
	rev  int64
}

// MinimizeLatency answers from the replica's current state (the service's
// default).
func MinimizeLatency() Consistency { return Consistency{mode: "minimize_latency"} }

// AtLeast answers from a state at or after revision n, such as the
// LastRevision of a client or the Revision of an answer. The replica waits
// a bounded time for it, then reads the database; it never answers from an
// older state. A revision newer than the tenant's latest fails with
// ErrRevisionAhead, a replica that cannot catch up in time with
// ErrConsistencyUnavailable. A negative n is taken as 0.
func AtLeast(n int64) Consistency { return Consistency{mode: "at_least", rev: max(n, 0)} }

// Full answers at or after the tenant's current revision, read from the
// database.
func Full() Consistency { return Consistency{mode: "full"} }

// String is the value of the consistency query parameter: "", "full",
// "minimize_latency" or "at_least:<n>".
func (c Consistency) String() string {
	if c.mode == "at_least" {
		return "at_least:" + strconv.FormatInt(c.rev, 10)
	}
	return c.mode
}

// WithConsistency returns a copy of v whose reads that accept a
// consistency (Check, CheckRevision, Explain, CheckBatch, the lists under
// roles, users and permissions, GetRole and ExportPolicy) ask for c. It wins
// over session consistency; the zero Consistency restores it.
func (v *V2) WithConsistency(c Consistency) *V2 {
	cp := *v
	cp.consistency = c
	return &cp
}

// WithSessionConsistency returns a copy of v with session consistency, as
// Options.SessionConsistency gives to the whole client: once the client
// has written something, each read that accepts a consistency asks for
// AtLeast(LastRevision()), so it sees every write of this client (unless
// WithConsistency chose another consistency).
func (v *V2) WithSessionConsistency() *V2 {
	cp := *v
	cp.session = true
	return &cp
}

// readConsistency is the consistency v's reads send, "" for none.
func (v *V2) readConsistency() string {
	if v.consistency.mode != "" {
		return v.consistency.String()
	}
	if v.session || v.c.session {
		if n := v.c.LastRevision(); n > 0 {
			return AtLeast(n).String()
		}
	}
	return ""
}

// setConsistency adds v's consistency, if any, to q.
func (v *V2) setConsistency(q url.Values) {
	if c := v.readConsistency(); c != "" {
		q.Set("consistency", c)
	}
}

// consistencyQuery is v's consistency as an encoded query, "" for none.
func (v *V2) consistencyQuery() string {
	q := url.Values{}
	v.setConsistency(q)
	return q.Encode()
}

// revisionOf is data.revision when the answer has it, else its
// X-Auth-Revision header (0 when it has neither).
func revisionOf(data *int64, meta answerMeta) int64 {
	if data != nil {
		return *data
	}
	return meta.revision
}

// Decision is a check's answer with the revision it was computed at.
type Decision struct {
	// Allowed is the decision.
	Allowed bool
	// Revision is the revision of the tenant's policy the decision was
	// computed at (0 when the service does not say).
	Revision int64
}

// CheckRevision is Check that also says the revision the decision was
// computed at (GET /api/v2/check). As with Check, a non-nil error is never
// a denial.
func (v *V2) CheckRevision(ctx context.Context, user, perm string) (Decision, error) {
	e, err := v.check(ctx, user, perm, false)
	return Decision{Allowed: e.Allowed, Revision: e.Revision}, err
}

// BatchResult is the answer of CheckBatchRevision.
type BatchResult struct {
	// Results are the answers, in the order of the pairs.
	Results []Result
	// Revision is the lowest revision one of the batch's requests was
	// computed at: every result was computed at a state at or after it.
	Revision int64
}

// PutResult is the answer of a time-bound PUT of a membership or a grant.
type PutResult struct {
	// Created is true when the membership or grant is new (false when an
	// existing one got the new expiry).
	Created bool
	// ExpiresAt is when it ends; nil when it is permanent.
	ExpiresAt *time.Time
	// Revision is the revision the write committed.
	Revision int64
}

// PutMemberUntil makes user a member of role until t (PUT
// /api/v2/roles/{role}/members/{user} with {"expires_at": t}); a zero t
// makes the membership permanent. An existing membership gets the new
// expiry (extended, shortened or made permanent). A t in the past is an
// *APIError of 400 with Reason ReasonInvalidBody; under a model other than
// the default RBAC one, ReasonExpiryUnsupported.
func (v *V2) PutMemberUntil(ctx context.Context, role, user string, t time.Time) (PutResult, error) {
	return v.putExpiring(ctx, until(t), "roles/{}/members/{}", role, user)
}

// PutMemberFor makes user a member of role for ttl from when the service
// commits it (PUT /api/v2/roles/{role}/members/{user} with {"ttl": ttl}).
// ttl must be positive; an existing membership gets the new expiry.
func (v *V2) PutMemberFor(ctx context.Context, role, user string, ttl time.Duration) (PutResult, error) {
	if ttl <= 0 {
		return PutResult{}, fmt.Errorf("auth: ttl %v: must be positive", ttl)
	}
	return v.putExpiring(ctx, expiry{TTL: ttl.String()}, "roles/{}/members/{}", role, user)
}

// PutPermissionUntil grants perm to role until t (PUT
// /api/v2/roles/{role}/permissions/{perm} with {"expires_at": t}); a zero t
// makes the grant permanent. An existing grant gets the new expiry.
func (v *V2) PutPermissionUntil(ctx context.Context, role, perm string, t time.Time) (PutResult, error) {
	return v.putExpiring(ctx, until(t), "roles/{}/permissions/{}", role, perm)
}

// PutPermissionFor grants perm to role for ttl from when the service
// commits it (PUT /api/v2/roles/{role}/permissions/{perm} with {"ttl":
// ttl}). ttl must be positive; an existing grant gets the new expiry.
func (v *V2) PutPermissionFor(ctx context.Context, role, perm string, ttl time.Duration) (PutResult, error) {
	if ttl <= 0 {
		return PutResult{}, fmt.Errorf("auth: ttl %v: must be positive", ttl)
	}
	return v.putExpiring(ctx, expiry{TTL: ttl.String()}, "roles/{}/permissions/{}", role, perm)
}

// expiry is the body of a time-bound PUT; both empty sends no body.
type expiry struct {
	ExpiresAt string `json:"expires_at,omitempty"`
	TTL       string `json:"ttl,omitempty"`
}

func until(t time.Time) expiry {
	if t.IsZero() {
		return expiry{}
	}
	return expiry{ExpiresAt: t.UTC().Format(time.RFC3339Nano)}
}

func (v *V2) putExpiring(ctx context.Context, e expiry, route string, values ...string) (PutResult, error) {
	path, err := v2Path(route, values...)
	if err != nil {
		return PutResult{}, err
	}
	var body []byte
	if e != (expiry{}) {
		if body, err = json.Marshal(e); err != nil {
			return PutResult{}, err
		}
	}
	var meta answerMeta
	r := v.req(http.MethodPut, path, body)
	r.meta = &meta
	d, err := v2Call[struct {
		Created   *bool   `json:"created"`
		ExpiresAt *string `json:"expires_at"`
		Revision  *int64  `json:"revision"`
	}](ctx, v, r)
	if err != nil {
		return PutResult{}, err
	}
	if d.Created == nil {
		return PutResult{}, shapeError(http.MethodPut, path, "created")
	}
	exp, err := parseTime(d.ExpiresAt)
	if err != nil {
		return PutResult{}, fmt.Errorf("auth: PUT %s: expires_at: %w", path, err)
	}
	return PutResult{Created: *d.Created, ExpiresAt: exp, Revision: revisionOf(d.Revision, meta)}, nil
}

// parseTime parses an RFC 3339 time; nil stays nil.
func parseTime(s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Member is a direct member of a role, with the membership's expiry.
type Member struct {
	// User is the member's name.
	User string
	// ExpiresAt is when the membership ends; nil when it is permanent.
	ExpiresAt *time.Time
}

// Grant is a direct grant of a role, with its expiry.
type Grant struct {
	// Permission is the permission granted.
	Permission string
	// ExpiresAt is when the grant ends; nil when it is permanent.
	ExpiresAt *time.Time
}

// expiringItem is a list item with an expiry, as v2 sends it.
type expiringItem struct {
	Name      string  `json:"name"`
	User      string  `json:"user"`
	ExpiresAt *string `json:"expires_at"`
}

// MembersDetailed iterates over role's direct members with their expiries,
// sorted (GET /api/v2/roles/{role}/members). Expired memberships are left
// out by the service.
func (v *V2) MembersDetailed(ctx context.Context, role string) iter.Seq2[Member, error] {
	return func(yield func(Member, error) bool) {
		for it, err := range readList[expiringItem](ctx, v, "roles/{}/members", role) {
			var m Member
			if err == nil {
				m.User = it.User
				if m.ExpiresAt, err = parseTime(it.ExpiresAt); err != nil {
					err = fmt.Errorf("auth: member %q: expires_at: %w", it.User, err)
				}
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// PermissionsDetailed iterates over role's direct grants with their
// expiries, sorted (GET /api/v2/roles/{role}/permissions). Expired grants
// are left out by the service.
func (v *V2) PermissionsDetailed(ctx context.Context, role string) iter.Seq2[Grant, error] {
	return func(yield func(Grant, error) bool) {
		for it, err := range readList[expiringItem](ctx, v, "roles/{}/permissions", role) {
			var g Grant
			if err == nil {
				g.Permission = it.Name
				if g.ExpiresAt, err = parseTime(it.ExpiresAt); err != nil {
					err = fmt.Errorf("auth: permission %q: expires_at: %w", it.Name, err)
				}
			}
			if !yield(g, err) || err != nil {
				return
			}
		}
	}
}

// Ops of the change feed (Change.Op).
const (
	OpCreateRole     = "create_role"
	OpDeleteRole     = "delete_role"
	OpSetDescription = "set_description"
	OpGrant          = "grant"
	OpRevoke         = "revoke"
	OpAddMember      = "add_member"
	OpRemoveMember   = "remove_member"
	OpAddParent      = "add_parent"
	OpRemoveParent   = "remove_parent"
	OpDeleteUser     = "delete_user"
	OpExpire         = "expire"
)

// Change is one change of the tenant's policy, from the change feed. The
// fields an op does not use are empty.
type Change struct {
	// Revision is the revision that committed the change; several changes
	// may share one.
	Revision int64
	// Op is what changed: one of the Op constants.
	Op string
	// Role, Permission, User and Parent name what the change is about.
	Role, Permission, User, Parent string
	// Description is the new description of OpSetDescription; nil when it
	// was cleared (and for the other ops).
	Description *string
	// ExpiresAt is the expiry of a time-bound OpGrant or OpAddMember; nil
	// when it is permanent. A grant or membership that exists already is
	// stated again when its expiry changes.
	ExpiresAt *time.Time
	// At is when the change was committed.
	At time.Time
}

// ChangesQuery selects a page of the change feed.
type ChangesQuery struct {
	// Since is the position: changes with a revision greater than it.
	Since int64
	// Cursor is the NextCursor of the previous page; Since is then ignored.
	Cursor string
	// Limit is the page size, 1–1000 (0: the service's default, 100).
	Limit int
	// Wait, 0–60s, lets the service hold the request, when there is nothing
	// after the position, until a change commits or Wait ends (a long
	// poll). The request's timeout is extended by Wait.
	Wait time.Duration
}

// ChangesPage is one page of the change feed.
type ChangesPage struct {
	// Items are the changes, in commit order.
	Items []Change
	// NextCursor, when not "", fetches the changes that follow now.
	NextCursor string
	// Revision is, when NextCursor is "", the tenant's latest revision:
	// continue with Since = Revision. Otherwise it is the last item's.
	Revision int64
}

// changeWire is a change as the feed sends it.
type changeWire struct {
	At          string  `json:"at"`
	Op          string  `json:"op"`
	Revision    int64   `json:"revision"`
	Role        string  `json:"role"`
	Permission  string  `json:"permission"`
	User        string  `json:"user"`
	Parent      string  `json:"parent"`
	Description *string `json:"description"`
	ExpiresAt   *string `json:"expires_at"`
}

// Changes reads one page of the tenant's change feed (GET
// /api/v2/changes). A position older than the feed's retention is an
// error matching ErrChangesExpired: resynchronise from ExportPolicy and
// continue from its Revision.
func (v *V2) Changes(ctx context.Context, q ChangesQuery) (ChangesPage, error) {
	if q.Wait < 0 || q.Wait > maxWait {
		return ChangesPage{}, fmt.Errorf("auth: changes: wait %v: want 0s to %v", q.Wait, maxWait)
	}
	vals := url.Values{}
	if q.Cursor != "" {
		vals.Set("cursor", q.Cursor)
	} else if q.Since != 0 {
		vals.Set("since", strconv.FormatInt(q.Since, 10))
	}
	if q.Limit != 0 {
		vals.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Wait > 0 {
		vals.Set("wait", q.Wait.String())
	}
	path := "/api/v2/changes"
	if len(vals) > 0 {
		path += "?" + vals.Encode()
	}
	r := v.req(http.MethodGet, path, nil)
	r.wait = q.Wait
	d, err := v2Call[struct {
		Items      *[]changeWire `json:"items"`
		NextCursor *string       `json:"next_cursor"`
		Revision   *int64        `json:"revision"`
	}](ctx, v, r)
	if err != nil {
		return ChangesPage{}, err
	}
	if d.Items == nil {
		return ChangesPage{}, shapeError(http.MethodGet, path, "items")
	}
	if d.Revision == nil {
		return ChangesPage{}, shapeError(http.MethodGet, path, "revision")
	}
	page := ChangesPage{Items: make([]Change, 0, len(*d.Items)), Revision: *d.Revision}
	if d.NextCursor != nil {
		page.NextCursor = *d.NextCursor
	}
	for i, w := range *d.Items {
		at, err := time.Parse(time.RFC3339Nano, w.At)
		if err != nil {
			return ChangesPage{}, fmt.Errorf("auth: GET %s: item %d: at: %w", path, i, err)
		}
		exp, err := parseTime(w.ExpiresAt)
		if err != nil {
			return ChangesPage{}, fmt.Errorf("auth: GET %s: item %d: expires_at: %w", path, i, err)
		}
		page.Items = append(page.Items, Change{
			Revision: w.Revision, Op: w.Op, Role: w.Role, Permission: w.Permission, User: w.User,
			Parent: w.Parent, Description: w.Description, ExpiresAt: exp, At: at,
		})
	}
	return page, nil
}

// FollowChanges iterates over the tenant's changes with a revision greater
// than since, in commit order, for as long as ctx lasts: it follows each
// page's next cursor and, once it has caught up, long-polls (each request
// held up to wait; 0 means DefaultChangesWait) for the changes to come. The
// page size is WithPageSize's.
//
// When ctx ends the iteration ends, with no error. Any other failure is
// yielded once and ends it; one matching ErrChangesExpired means that the
// position is older than the feed keeps: resynchronise from ExportPolicy
// and follow again from its Revision. Keep the Revision of the last change
// handled to resume after a restart.
func (v *V2) FollowChanges(ctx context.Context, since int64, wait time.Duration) iter.Seq2[Change, error] {
	if wait == 0 {
		wait = DefaultChangesWait
	}
	return func(yield func(Change, error) bool) {
		q := ChangesQuery{Since: since, Limit: v.limit}
		for ctx.Err() == nil {
			q.Wait = 0
			if q.Cursor == "" {
				q.Wait = wait
			}
			page, err := v.Changes(ctx, q)
			if err != nil {
				if ctx.Err() != nil && !errors.Is(err, ErrChangesExpired) {
					return
				}
				yield(Change{}, err)
				return
			}
			for _, c := range page.Items {
				if !yield(c, nil) {
					return
				}
			}
			if page.NextCursor != "" {
				if page.NextCursor == q.Cursor {
					yield(Change{}, fmt.Errorf("auth: GET /api/v2/changes: next_cursor repeats the cursor"))
					return
				}
				q.Cursor = page.NextCursor
				continue
			}
			q.Cursor = ""
			q.Since = max(q.Since, page.Revision)
			if n := len(page.Items); n > 0 {
				q.Since = max(q.Since, page.Items[n-1].Revision)
			}
		}
	}
}
