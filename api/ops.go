package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/internal/breaker"
)

// NotReady is the error of a failed readiness check: Check ("database",
// "migrations", "schema" or "policies") is shown in the /ready answer, Err only in the
// log.
type NotReady struct {
	Check string
	Err   error
}

func (e *NotReady) Error() string { return e.Check + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *NotReady) Unwrap() error { return e.Err }

// readyTimeout bounds a readiness check, so that a black-holed database
// makes /ready answer 503 rather than hang the probe.
const readyTimeout = 2 * time.Second

// ready answers 200 when the database answers, the schema is current and
// policies can be loaded, and 503 with the failed check otherwise.
func (s *Server) ready(c echo.Context) error {
	if s.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
		defer cancel()
		if err := s.deps.Ready(ctx); err != nil {
			check := "database"
			var nr *NotReady
			if errors.As(err, &nr) {
				check = nr.Check
			}
			s.log.WarnContext(c.Request().Context(), "not ready", "check", check, "err", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "check": check})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// metricsHandler serves /metrics, behind a bearer token when one is set.
func (s *Server) metricsHandler() echo.HandlerFunc {
	h := echo.WrapHandler(s.deps.Metrics.Handler())
	if s.metricsToken == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.metricsToken))
	return func(c echo.Context) error {
		if len(c.Request().Header.Values(echo.HeaderAuthorization)) > 1 {
			return &Error{Code: http.StatusBadRequest, Message: msgDupHeader}
		}
		// Compare digests in constant time: neither the token nor its
		// length leaks through the timing.
		got := sha256.Sum256([]byte(bearer(c.Request().Header.Get(echo.HeaderAuthorization))))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			return &Error{Code: http.StatusUnauthorized, Message: "A valid metrics token is required."}
		}
		return h(c)
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" value, or "".
func bearer(v string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// observed counts every answered request by route pattern, method and status,
// with its latency, and every check's decision by kind.
func (s *Server) observed(c echo.Context, start time.Time) {
	if s.deps.Metrics == nil {
		return
	}
	route := c.Path()
	if !s.isRoute(route) {
		route = "unmatched" // not a route pattern (a 404): never the raw path
	}
	s.deps.Metrics.ObserveRequest(route, c.Request().Method, c.Response().Status, time.Since(start))
	if allowed, ok := c.Get(ctxKeyAllowed).(bool); ok {
		s.deps.Metrics.Decision(checkKind(route), allowed)
	}
}

// isRoute reports whether path is one of the registered route patterns
// (the set is built on first use, once every route is registered).
func (s *Server) isRoute(path string) bool {
	s.routeSetOnce.Do(func() {
		s.routeSet = map[string]bool{}
		for _, r := range s.echo.Routes() {
			s.routeSet[r.Path] = true
		}
	})
	return s.routeSet[path]
}

// checkKind names the kind of check a route answers: the first segment
// after the API prefix (has_permission, permission for a role's, membership,
// workflow).
func checkKind(route string) string {
	rest := strings.TrimPrefix(route, "/api")
	if strings.HasPrefix(rest, "/v") {
		if i := strings.Index(rest[1:], "/"); i >= 0 {
			rest = rest[1+i:]
		}
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch seg {
	case "permission":
		return "role_permission"
	case "":
		return "other"
	}
	return seg
}

// retryAfter is the Retry-After value (whole seconds, at least 1) for an
// unavailable answer: the hint the error carries, or 1.
func retryAfter(err error) string {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) && h.RetryAfter() > time.Second {
		return strconv.Itoa(int(math.Ceil(h.RetryAfter().Seconds())))
	}
	return "1"
}

// quietError reports whether a 5xx needs no log line of its own: a call a
// circuit breaker rejected (the breaker logs its opening, and a metric
// counts the rejections).
func quietError(err error) bool { return errors.Is(err, breaker.ErrOpen) }
