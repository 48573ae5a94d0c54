package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/internal/ratelimit"
)

// Rate-limit headers (draft-ietf-httpapi-ratelimit-headers-06): Limit is
// the reported (most restrictive) limit's count, Remaining what it still
// allows, Reset the delta seconds until it is full again, Policy every limit
// that applies ("100;w=60, 1000;w=3600").
const (
	headerRateLimit     = "RateLimit-Limit"
	headerRateRemaining = "RateLimit-Remaining"
	headerRateReset     = "RateLimit-Reset"
	headerRatePolicy    = "RateLimit-Policy"
)

// rateLimitHeaders are exposed to browsers through CORS.
var rateLimitHeaders = []string{headerRateLimit, headerRateRemaining, headerRateReset, headerRatePolicy, echo.HeaderRetryAfter}

// rateLimitedError is a request refused by a rate limit: 429.
type rateLimitedError struct {
	limit      ratelimit.Limit
	retryAfter int // seconds
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("rate limit %s exceeded", e.limit)
}

func (e *rateLimitedError) message() string {
	return fmt.Sprintf("Rate limit exceeded (%s). Retry after %d seconds.", e.limit, e.retryAfter)
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// applyRateLimit writes the headers of r and returns the 429 error when
// it refuses the request.
func applyRateLimit(c echo.Context, r ratelimit.Result) error {
	h := c.Response().Header()
	h.Set(headerRateLimit, strconv.Itoa(r.Limit.Count))
	h.Set(headerRateRemaining, strconv.Itoa(r.Remaining))
	h.Set(headerRateReset, strconv.Itoa(ceilSeconds(r.ResetAfter)))
	if r.Policy != "" {
		h.Set(headerRatePolicy, r.Policy)
	}
	if r.Allowed {
		return nil
	}
	retry := max(1, ceilSeconds(r.RetryAfter))
	h.Set(echo.HeaderRetryAfter, strconv.Itoa(retry))
	return &rateLimitedError{limit: r.Limit, retryAfter: retry}
}

// limitTenant counts an authenticated request against its tenant's limits:
// GET and HEAD as reads, anything else as writes. It runs after the
// authentication gate, which has named the tenant.
func (s *Server) limitTenant(next echo.HandlerFunc) echo.HandlerFunc {
	if s.deps.RateLimiter == nil {
		return next
	}
	return func(c echo.Context) error {
		class := ratelimit.Writes
		if m := c.Request().Method; m == http.MethodGet || m == http.MethodHead {
			class = ratelimit.Reads
		}
		r := s.deps.RateLimiter.Allow(c.Request().Context(), class, "t:"+string(tenantOf(c)))
		if err := applyRateLimit(c, r); err != nil {
			s.logRateLimited(c, class, r)
			return err
		}
		return next(c)
	}
}

// limitUnauthenticated wraps the authentication gate. A request the gate
// refuses (a 4xx before a tenant is known) is counted against its client
// IP; an IP over its limit gets 429 instead of the gate's answer, and while
// its wait lasts every /api request from it is refused before the gate does
// any work (no token parsing, no key lookup). The IP is the one the
// configured IP extractor trusts, never a forwarding header from an
// untrusted peer.
func (s *Server) limitUnauthenticated(next echo.HandlerFunc) echo.HandlerFunc {
	if s.deps.RateLimiter == nil {
		return next
	}
	return func(c echo.Context) error {
		ip := "ip:" + rateLimitIP(c.RealIP())
		if r, blocked := s.deps.RateLimiter.Blocked(ratelimit.Unauthenticated, ip); blocked {
			s.logRateLimited(c, ratelimit.Unauthenticated, r)
			return applyRateLimit(c, r)
		}
		err := next(c)
		if err == nil || tenantOf(c) != "" {
			return err
		}
		if code, _ := statusOf(err); code < 400 || code >= 500 {
			return err
		}
		r := s.deps.RateLimiter.Allow(c.Request().Context(), ratelimit.Unauthenticated, ip)
		if rerr := applyRateLimit(c, r); rerr != nil {
			s.logRateLimited(c, ratelimit.Unauthenticated, r)
			return rerr
		}
		return err
	}
}

func (s *Server) logRateLimited(c echo.Context, class string, r ratelimit.Result) {
	s.log.DebugContext(c.Request().Context(), "rate limited", "class", class, "limit", r.Limit.String(),
		"retry_after", r.RetryAfter.String(), "local", r.Local,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "ip", c.RealIP())
}

// rateLimitIP is the rate-limit key of a client address: the address
// itself for IPv4, its /64 network for IPv6 (one subscriber usually holds a
// whole /64).
func rateLimitIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
