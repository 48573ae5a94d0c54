package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/webhook"
	"github.com/ourway/auth/workflow"
)

// V2Prefix is where API v2 is served.
const V2Prefix = "/api/v2"

// Pagination bounds of every v2 list.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// Reasons are the stable, machine-readable causes of v2 errors, sent in
// details.reason of the error envelope. Clients branch on them, never on
// messages; the list is closed and documented in the OpenAPI document.
const (
	ReasonBadRequest           = "bad_request"
	ReasonInvalidName          = "invalid_name"
	ReasonInvalidParameter     = "invalid_parameter"
	ReasonInvalidCursor        = "invalid_cursor"
	ReasonInvalidBody          = "invalid_body"
	ReasonBatchTooLarge        = "batch_too_large"
	ReasonInvalidPolicy        = "invalid_policy"
	ReasonUnauthenticated      = "unauthenticated"
	ReasonForbidden            = "forbidden"
	ReasonNotFound             = "not_found"
	ReasonRoleNotFound         = "role_not_found"
	ReasonMethodNotAllowed     = "method_not_allowed"
	ReasonRoleExists           = "role_exists"
	ReasonRoleCycle            = "role_cycle"
	ReasonRoleDepth            = "role_depth"
	ReasonKeyRotated           = "key_rotated"
	ReasonConflict             = "conflict"
	ReasonBodyTooLarge         = "body_too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonRateLimited          = "rate_limited"
	ReasonChainMissing         = "audit_chain_missing"
	ReasonInternal             = "internal"
	ReasonUnavailable          = "unavailable"
	ReasonWorkflowNotFound     = "workflow_not_found"
	ReasonInvalidSchedule      = "invalid_schedule"
	ReasonWebhookRefused       = "webhook_refused"
	// ReasonRevisionAhead: at_least names a revision the tenant has not
	// reached in the database.
	ReasonRevisionAhead = "revision_ahead"
	// ReasonConsistencyUnavailable: the replica is behind the revision
	// asked for and could not read the database in time.
	ReasonConsistencyUnavailable = "consistency_unavailable"
	// ReasonChangesExpired: the change feed no longer holds the position
	// asked for; resynchronise from an export.
	ReasonChangesExpired = "changes_expired"
	// ReasonExpiryUnsupported: time-bound rules need the default model.
	ReasonExpiryUnsupported = "expiry_unsupported"
)

// Reasons lists every reason, for the OpenAPI document and its test.
var Reasons = []string{
	ReasonBadRequest, ReasonInvalidName, ReasonInvalidParameter, ReasonInvalidCursor, ReasonInvalidBody,
	ReasonBatchTooLarge, ReasonInvalidPolicy, ReasonUnauthenticated, ReasonForbidden, ReasonNotFound,
	ReasonRoleNotFound, ReasonMethodNotAllowed, ReasonRoleExists, ReasonRoleCycle, ReasonRoleDepth,
	ReasonKeyRotated, ReasonConflict, ReasonBodyTooLarge, ReasonUnsupportedMediaType, ReasonRateLimited,
	ReasonChainMissing, ReasonInternal, ReasonUnavailable, ReasonWorkflowNotFound, ReasonInvalidSchedule,
	ReasonWebhookRefused, ReasonRevisionAhead, ReasonConsistencyUnavailable, ReasonChangesExpired,
	ReasonExpiryUnsupported,
}

// v2Error is an error of a v2 handler with its status, message, reason and
// extra details (merged into details beside reason).
type v2Error struct {
	code    int
	reason  string
	message string
	details map[string]any
}

func (e *v2Error) Error() string { return strconv.Itoa(e.code) + " " + e.reason + ": " + e.message }

// v2Fail returns the error a v2 handler answers with.
func v2Fail(code int, reason, message string, details ...map[string]any) error {
	e := &v2Error{code: code, reason: reason, message: message}
	if len(details) > 0 {
		e.details = details[0]
	}
	return e
}

// isV2 reports whether the request is one of API v2.
func isV2(c echo.Context) bool {
	p := c.Request().URL.Path
	return p == V2Prefix || strings.HasPrefix(p, V2Prefix+"/")
}

// v2StatusOf maps an error of a v2 request to status, message, reason and
// details. It differs from v1 (statusOf) where v1 kept the original
// service's status: role cycles and depth are conflicts (409), not 400.
func v2StatusOf(err error) (int, string, string, map[string]any) {
	var ve *v2Error
	if errors.As(err, &ve) {
		return ve.code, ve.message, ve.reason, ve.details
	}
	code, msg := statusOf(err)
	var ra *policy.RevisionAheadError
	var cx *policy.ChangesExpiredError
	var ee *policy.ExpiryError
	var ne *policy.NameError
	var rn *policy.RoleNotFoundError
	var ce *policy.CheckError
	var ie *policy.ImportError
	var wn *workflow.NotFoundError
	var se *workflow.ScheduleError
	var fe *workflow.FieldError
	var we *webhook.RefusedError
	switch {
	case errors.As(err, &ra):
		return http.StatusBadRequest, fmt.Sprintf("Revision %d is ahead of the tenant's latest revision %d: "+
				"pass a revision this service returned for this tenant.", ra.Revision, ra.Latest),
			ReasonRevisionAhead, map[string]any{"revision": ra.Revision, "latest": ra.Latest}
	case errors.Is(err, policy.ErrConsistencyUnavailable):
		return http.StatusServiceUnavailable, "This replica is behind the revision asked for and could not read " +
			"the database in time; retrying is safe.", ReasonConsistencyUnavailable, nil
	case errors.As(err, &cx):
		return http.StatusGone, fmt.Sprintf("The change log no longer holds changes before revision %d: "+
				"resynchronise from GET /api/v2/policy/export and continue with since=<its revision>.", cx.Oldest),
			ReasonChangesExpired, map[string]any{"oldest": cx.Oldest}
	case errors.As(err, &ee):
		return http.StatusBadRequest, "expires_at " + ee.Reason + ".", ReasonInvalidBody, map[string]any{"field": "expires_at"}
	case errors.Is(err, policy.ErrExpiryUnsupported):
		return http.StatusBadRequest, "Time-bound memberships and grants need the default model; this server serves another.",
			ReasonExpiryUnsupported, nil
	case errors.As(err, &wn):
		return http.StatusNotFound, wn.Error(), ReasonWorkflowNotFound, map[string]any{"workflow": wn.Name}
	case errors.As(err, &se):
		return http.StatusBadRequest, se.Message, ReasonInvalidSchedule, map[string]any{"schedule": se.Schedule}
	case errors.As(err, &fe):
		return http.StatusBadRequest, fe.Message, ReasonInvalidBody, map[string]any{"field": fe.Field}
	case errors.As(err, &we):
		return http.StatusBadRequest, we.Error(), ReasonWebhookRefused, map[string]any{"webhook_url": we.URL}
	case errors.As(err, &rn):
		return code, msg, ReasonRoleNotFound, map[string]any{"role": rn.Role}
	case errors.As(err, &ce) && errors.As(err, &ne):
		return code, "Check " + strconv.Itoa(ce.Index) + ": " + msg, ReasonInvalidName,
			map[string]any{"kind": ne.Kind, "index": ce.Index}
	case errors.As(err, &ie):
		lines := make([]string, 0, len(ie.Problems)+1)
		for _, p := range ie.Problems {
			lines = append(lines, p.Error())
		}
		if ie.More > 0 {
			lines = append(lines, "… and "+strconv.Itoa(ie.More)+" more")
		}
		return http.StatusBadRequest, "The policy file does not validate (details.errors: one problem a line).",
			ReasonInvalidPolicy, map[string]any{"errors": lines}
	case errors.Is(err, policy.ErrInvalidPolicy):
		return http.StatusBadRequest, "The policy file does not validate.", ReasonInvalidPolicy,
			map[string]any{"errors": []string{err.Error()}}
	case errors.As(err, &ne):
		return code, msg, ReasonInvalidName, map[string]any{"kind": ne.Kind}
	case errors.Is(err, policy.ErrRoleCycle):
		return http.StatusConflict, msg, ReasonRoleCycle, nil
	case errors.Is(err, policy.ErrRoleDepth):
		return http.StatusConflict, msg, ReasonRoleDepth, nil
	case errors.Is(err, policy.ErrKeyRotated):
		return code, msg, ReasonKeyRotated, nil
	case errors.Is(err, audit.ErrChainMissing):
		return code, msg, ReasonChainMissing, nil
	case errors.Is(err, errUnsupportedMediaType):
		return code, msg, ReasonUnsupportedMediaType, nil
	}
	return code, msg, reasonForStatus(code), nil
}

// reasonForStatus is the reason of an error that has no more precise one.
func reasonForStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return ReasonBadRequest
	case http.StatusUnauthorized:
		return ReasonUnauthenticated
	case http.StatusForbidden:
		return ReasonForbidden
	case http.StatusNotFound:
		return ReasonNotFound
	case http.StatusMethodNotAllowed:
		return ReasonMethodNotAllowed
	case http.StatusConflict:
		return ReasonConflict
	case http.StatusRequestEntityTooLarge:
		return ReasonBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return ReasonUnsupportedMediaType
	case http.StatusTooManyRequests:
		return ReasonRateLimited
	case http.StatusServiceUnavailable:
		return ReasonUnavailable
	}
	if code >= 500 {
		return ReasonInternal
	}
	return ReasonBadRequest
}

// v2JSON writes the v2 success envelope.
func v2JSON(c echo.Context, code int, message string, data any) error {
	return c.JSON(code, envelope{
		Code: code, Data: data, Message: message, Success: true, Timestamp: timestamp(time.Now()),
	})
}

// Page is the data of every v2 list: the items of this page and the cursor
// of the next one (null on the last page).
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
	// Revision is the tenant's revision the list was computed at (lists
	// of the policy only).
	Revision *int64 `json:"revision,omitempty"`
}

// pageRequest is a list request's limit and position.
type pageRequest struct {
	limit int
	after string // the key of the last item of the previous page; "" for the first (keys are names, never empty)
}

// parsePage reads limit (1..MaxPageLimit, default DefaultPageLimit) and
// cursor (opaque, from next_cursor) of a v2 list request.
func parsePage(c echo.Context) (pageRequest, error) {
	p := pageRequest{limit: DefaultPageLimit}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, v2Fail(http.StatusBadRequest, ReasonInvalidParameter,
				"limit must be a whole number from 1 to "+strconv.Itoa(MaxPageLimit)+".",
				map[string]any{"parameter": "limit"})
		}
		p.limit = n
	}
	if v := c.QueryParam("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !strings.HasPrefix(string(raw), cursorPrefix) {
			return p, v2Fail(http.StatusBadRequest, ReasonInvalidCursor,
				"cursor is not one this service returned: pass next_cursor of the previous page unchanged.",
				map[string]any{"parameter": "cursor"})
		}
		p.after = strings.TrimPrefix(string(raw), cursorPrefix)
	}
	return p, nil
}

// cursorPrefix versions the cursor format.
const cursorPrefix = "k1:"

func encodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

// paginate returns the page of items after p's position. Items are sorted
// by key and de-duplicated here, so a page never repeats an item and no item
// is lost between pages (an item added or removed meanwhile appears or not,
// according to where it sorts); the cursor is the key of the page's last
// item, so a list is never silently truncated.
func paginate[T any](items []T, key func(T) string, p pageRequest) Page[T] {
	sort.SliceStable(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	uniq := items[:0:0]
	for i, it := range items {
		if i > 0 && key(it) == key(items[i-1]) {
			continue
		}
		uniq = append(uniq, it)
	}
	start := sort.Search(len(uniq), func(i int) bool { return key(uniq[i]) > p.after })
	end := min(start+p.limit, len(uniq))
	out := Page[T]{Items: append([]T{}, uniq[start:end]...)}
	if end < len(uniq) && end > start {
		next := encodeCursor(key(uniq[end-1]))
		out.NextCursor = &next
	}
	return out
}

// v2Add registers a v2 route (path relative to V2Prefix) behind the same
// gate as v1: rate limits per client IP around the gate and per tenant
// after it, authentication, and for changes (write) a token that may write.
func (s *Server) v2Add(methods []string, path string, h echo.HandlerFunc, write bool, extra ...echo.MiddlewareFunc) {
	mw := []echo.MiddlewareFunc{s.limitUnauthenticated, s.jwtMiddleware(), s.authenticate, s.limitTenant}
	if write {
		mw = append(mw, requireWrite)
	}
	s.echo.Match(methods, V2Prefix+path, h, append(mw, extra...)...)
}

// v2Routes registers API v2. Each group of routes lives in a file of its
// own (v2_*.go) and registers itself here.
func (s *Server) v2Routes() {
	s.v2Resources()
	s.v2Checks()
	s.v2Workflows()
}
