package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Error is an error with the status and message the client is to see.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Messages of key management.
const (
	msgKeyRotated = "This key has already been rotated."
	msgKeyInGrace = "This key has been rotated and is in its grace period: it can still make API calls, " +
		"but only an active key can issue tokens, rotate or revoke keys. Use the new key."
)

func badRequest(msg string) error { return &Error{Code: http.StatusBadRequest, Message: msg} }

// errorBody is the JSON error envelope; fields are in sorted order, as the
// original service wrote them.
type errorBody struct {
	Code      int            `json:"code"`
	Details   map[string]any `json:"details"`
	Message   string         `json:"message"`
	Success   bool           `json:"success"`
	Timestamp string         `json:"timestamp"`
}

// statusOf maps an error to the status and message the client sees. It is
// the one place where domain errors meet HTTP.
func statusOf(err error) (int, string) {
	var ae *Error
	var he *echo.HTTPError
	var ne *policy.NameError
	var rn *policy.RoleNotFoundError
	var rl *rateLimitedError
	switch {
	case errors.As(err, &ae):
		return ae.Code, ae.Message
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, rl.message()
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, "Content-Type must be application/json when a request has a body."
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code != http.StatusInternalServerError {
			msg = m
		}
		return he.Code, msg
	case errors.As(err, &ne):
		return http.StatusBadRequest, wording{}.nameMessage(ne)
	case errors.As(err, &rn):
		return http.StatusNotFound, fmt.Sprintf("Role '%s' does not exist.", rn.Role)
	case errors.Is(err, policy.ErrKeyRotated):
		return http.StatusConflict, msgKeyRotated
	case errors.Is(err, policy.ErrKeyInGrace):
		return http.StatusForbidden, msgKeyInGrace
	case errors.Is(err, policy.ErrKeyRevoked):
		// Revoked or expired since the gate resolved it.
		return http.StatusUnauthorized, msgRevokedKey
	case errors.Is(err, policy.ErrRoleCycle):
		return http.StatusBadRequest, "Role inheritance would form a cycle."
	case errors.Is(err, policy.ErrRoleDepth):
		return http.StatusBadRequest, "Role inheritance chain would be too deep."
	case errors.Is(err, audit.ErrChainMissing):
		return http.StatusInternalServerError, "The change was refused: this tenant's audit chain is missing. " +
			"An operator must run `auth-server audit reset` for it before changes are accepted again."
	case errors.Is(err, policy.ErrTenantCreationRefused):
		return http.StatusTooManyRequests, "Too many new tenants. Retry later."
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, policy.ErrUnavailable), errors.Is(err, audit.ErrUnavailable):
		// Retry-After: see handleError.
		return http.StatusServiceUnavailable, "The service is temporarily unavailable."
	default:
		return http.StatusInternalServerError, "An internal error occurred"
	}
}

// wording is how a route words an invalid name in its 400 answer (the
// messages of the contract, README "Errors"): every message names the
// invalid name and states the rule a valid one follows; the /permission
// routes call a role a group. The policy core validates every name
// (policy.NameError); only the words are the API's.
type wording struct {
	role string // the word for a role ("": "role")
}

// roleAsGroup is the wording of the /permission routes.
var roleAsGroup = worded(wording{role: "group"})

// The rules of the names, as the policy core checks them (policy.ValidUser,
// ValidRole, ValidPermission, Service.ValidGrant).
const (
	ruleUser = "User names must be 1-64 characters long and contain only alphanumeric, underscore, hyphen, or email characters (@ . +)."
	ruleRole = "Role names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
	// A group is a role (the /permission routes' word).
	ruleGroup      = "Group (role) names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen."
	rulePermission = "Permission names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
	ruleWorkflow   = "Workflow names must be 1-128 characters long and contain only alphanumeric, underscore, and hyphen."
)

// nameMessage is the message for an invalid name: which name, and the rule
// of its kind.
func (w wording) nameMessage(e *policy.NameError) string {
	kind, rule := e.Kind, ""
	switch e.Kind {
	case "user":
		rule = ruleUser
	case "role":
		rule = ruleRole
		if w.role == "group" {
			kind, rule = "group", ruleGroup
		}
	case "permission":
		rule = rulePermission
	case "workflow":
		rule = ruleWorkflow
	}
	msg := "Invalid " + kind + " name: " + e.Value
	if e.Rule != "" {
		// The served model's own rule (a pattern model's permissions).
		return msg + ". " + e.Rule + "."
	}
	if rule != "" {
		msg += ". " + rule
	}
	return msg
}

// worded answers the invalid names of a route's handler in the route's
// words (any other error passes).
func worded(w wording) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			var ne *policy.NameError
			if errors.As(err, &ne) {
				return badRequest(w.nameMessage(ne))
			}
			return err
		}
	}
}

// handleError is installed as Echo's HTTPErrorHandler: every error becomes
// the JSON error envelope; internal causes go to the log with the request
// id, never to the client.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := statusOf(err)
	details := map[string]any{}
	if isV2(c) {
		// API v2: a stable reason in details, and v2's own statuses.
		var reason string
		var extra map[string]any
		code, msg, reason, extra = v2StatusOf(err)
		for k, v := range extra {
			details[k] = v
		}
		details["reason"] = reason
	}
	if code == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", retryAfter(err))
	}
	var rl *rateLimitedError
	if code == http.StatusTooManyRequests && errors.As(err, &rl) {
		// A refusal from below the middleware (a tenant creation): the
		// headers of the limit that refused.
		setRateLimitHeaders(c.Response().Header(), rl.result)
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(rl.retryAfter))
	}
	if code >= 500 && !quietError(err) {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"method", c.Request().Method, "route", c.Path(), "err", err)
	}
	body := errorBody{Code: code, Details: details, Message: msg, Success: false, Timestamp: timestamp(time.Now())}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(code)
	} else {
		err = c.JSON(code, body)
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "write error response", "err", err)
	}
}

// timestamp formats t as UTC RFC 3339 with microseconds.
func timestamp(t time.Time) string {
	return t.UTC().Format(timestampLayout)
}

// timestampLayout is the layout of the envelopes' timestamps.
const timestampLayout = "2006-01-02T15:04:05.000000Z07:00"
