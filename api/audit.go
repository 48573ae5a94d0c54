package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Auditor is what the API needs from the audit trail. Answered checks and
// listings are not the API's to record: the policy core's decision layer
// records them (decision.Policy), whoever asks.
type Auditor interface {
	// RecordEvent records a failed request, a read of the trail itself or
	// an issued token.
	RecordEvent(ctx context.Context, e audit.Entry)
	// Search reads a tenant's records, newest first.
	Search(ctx context.Context, tenant string, q audit.Query) ([]audit.Record, int64, error)
}

// auditSpec says how a route is audited when it fails. A change that
// succeeds is recorded inside its transaction, an answered check or listing
// by the decision layer below the API.
type auditSpec struct {
	action audit.Action
	// write routes are changes.
	write bool
	// always records a success too, whatever the decision mode: the API's
	// own events (reads of the trail, issued tokens).
	always bool
	// user names the path parameter holding the user, if any.
	user string
	// params are joined with ":" into the resource.
	params        []string
	prefix        string
	fixedResource string
	// query takes user and params from the query string, not the path.
	query bool
}

func read(a audit.Action, user string, params ...string) auditSpec {
	return auditSpec{action: a, user: user, params: params}
}

func write(a audit.Action, user string, params ...string) auditSpec {
	return auditSpec{action: a, write: true, user: user, params: params}
}

func (s auditSpec) fixed(r string) auditSpec    { s.fixedResource = r; return s }
func (s auditSpec) prefixed(p string) auditSpec { s.prefix = p; return s }
func (s auditSpec) fromQuery() auditSpec        { s.query = true; return s }

// value is the request's value of the parameter name: from the path, or
// from the query string for a spec fromQuery.
func (s auditSpec) value(c echo.Context, name string) string {
	if s.query {
		return c.QueryParam(name)
	}
	return param(c, name)
}

func (s auditSpec) resource(c echo.Context) string {
	if s.fixedResource != "" {
		return s.fixedResource
	}
	vals := make([]string, 0, len(s.params))
	for _, p := range s.params {
		vals = append(vals, s.value(c, p))
	}
	return clamp(s.prefix+strings.Join(vals, ":"), 256)
}

const ctxKeyAllowed = "auth.allowed"

// decided notes a check's decision for the decision metrics (and the
// record of an issued token).
func decided(c echo.Context, allowed bool) { c.Set(ctxKeyAllowed, allowed) }

// audited records a refused or failed authenticated request in the audit
// trail once its handler has answered, and the successes of the API's own
// events (spec.always). Unauthenticated requests never reach it: they are
// not tenant events.
func (s *Server) audited(spec auditSpec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if s.deps.Audit == nil || errors.Is(err, policy.ErrTenantCreationRefused) {
				// A write refused because it would create a tenant has no
				// tenant to be recorded for: like other 429s it is counted,
				// not audited, so that invented keys cannot fill the trail.
				return err
			}
			status := c.Response().Status
			if err != nil {
				if isV2(c) {
					status, _, _, _ = v2StatusOf(err)
				} else {
					status, _ = statusOf(err)
				}
			}
			success := status < 400
			if success && !spec.always {
				// A change is recorded inside its transaction, a check or
				// listing by the decision layer.
				return err
			}
			e := audit.Entry{
				Time: time.Now().UTC(), Tenant: string(tenantOf(c)), Action: spec.action,
				Resource: spec.resource(c), Success: success,
				Details: map[string]any{"status_code": status},
			}
			if spec.user != "" {
				e.User = clamp(spec.value(c, spec.user), 256)
			}
			if !success {
				e.Details["reason"] = reason(status)
			}
			if v, ok := c.Get(ctxKeyAllowed).(bool); ok {
				e.Details["allowed"] = v
			}
			s.deps.Audit.RecordEvent(context.WithoutCancel(c.Request().Context()), e)
			return err
		}
	}
}

func reason(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return "validation_error"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "server_error"
	default:
		return "client_error"
	}
}

// Wire shapes of GET /api/audit (sorted keys).
type (
	auditEntry struct {
		Action    string  `json:"action"`
		Details   any     `json:"details"`
		IPAddress string  `json:"ip_address"`
		RequestID string  `json:"request_id"`
		Resource  string  `json:"resource"`
		Seq       int64   `json:"seq"`
		Success   bool    `json:"success"`
		Timestamp string  `json:"timestamp"`
		User      *string `json:"user"`
		UserAgent string  `json:"user_agent"`
	}
	auditPage struct {
		Entries    []auditEntry `json:"entries"`
		Limit      int          `json:"limit"`
		NextCursor *string      `json:"next_cursor"`
	}
)

// auditTrail answers GET /api/audit: the calling tenant's own records,
// newest first, with cursor pagination and filters. Users appear only as
// fingerprints; the user filter takes a name and matches its fingerprint.
func (s *Server) auditTrail(c echo.Context) error {
	if s.deps.Audit == nil {
		return &Error{Code: http.StatusNotFound, Message: "Not Found"}
	}
	q, err := parseAuditQuery(c)
	if err != nil {
		return err
	}
	recs, next, err := s.deps.Audit.Search(c.Request().Context(), string(tenantOf(c)), q)
	if err != nil {
		return err
	}
	page := auditPage{Entries: make([]auditEntry, 0, len(recs)), Limit: q.Limit}
	for _, r := range recs {
		var details any = map[string]any{}
		_ = json.Unmarshal([]byte(r.Details), &details)
		e := auditEntry{Action: string(r.Action), Details: details, IPAddress: r.IP, RequestID: r.RequestID,
			Resource: r.Resource, Seq: r.Seq, Success: r.Success, Timestamp: audit.FormatTime(r.Time), UserAgent: r.UserAgent}
		if r.User != "" {
			u := r.User
			e.User = &u
		}
		page.Entries = append(page.Entries, e)
	}
	if next > 0 {
		cur := strconv.FormatInt(next, 10)
		page.NextCursor = &cur
	}
	return ok(c, page, "Audit trail retrieved")
}

func parseAuditQuery(c echo.Context) (audit.Query, error) {
	q := audit.Query{Limit: 50}
	v := c.QueryParams()
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, badRequest("limit must be an integer")
		}
		if n < 1 || n > 500 {
			return q, badRequest("limit must be between 1 and 500")
		}
		q.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, badRequest("cursor must be a next_cursor value from a previous page")
		}
		q.Before = n
	}
	if s := v.Get("action"); s != "" {
		a := audit.Action(strings.ToUpper(s))
		known := false
		for _, k := range audit.Actions {
			known = known || k == a
		}
		if !known {
			return q, badRequest("Unknown action: " + clamp(s, 64))
		}
		q.Action = a
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, badRequest(f.name + " must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*f.dst = t
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, badRequest("until must not be before since")
	}
	if u := v.Get("user"); u != "" {
		if !policy.ValidUser(u) {
			return q, badRequest("Invalid user name: " + clamp(u, 64) + ". " + ruleUser)
		}
		q.User = u
	}
	return q, nil
}
