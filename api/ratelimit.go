package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
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

// rateLimitedError is a request refused by a rate limit: 429, with the
// rate-limit headers of result.
type rateLimitedError struct {
	limit      ratelimit.Limit
	retryAfter int // seconds
	result     ratelimit.Result
	// creation marks a refused tenant creation (see TenantAdmission).
	creation bool
}

// newRateLimited is the error of a refusal.
func newRateLimited(r ratelimit.Result) *rateLimitedError {
	return &rateLimitedError{limit: r.Limit, retryAfter: max(1, ceilSeconds(r.RetryAfter)), result: r}
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("rate limit %s exceeded", e.limit)
}

func (e *rateLimitedError) message() string {
	if e.creation {
		return fmt.Sprintf("Tenant creation limit exceeded (%s): this request would create a new tenant. Retry after %d seconds.", e.limit, e.retryAfter)
	}
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
	setRateLimitHeaders(c.Response().Header(), r)
	if r.Allowed {
		return nil
	}
	e := newRateLimited(r)
	c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(e.retryAfter))
	return e
}

// setRateLimitHeaders writes the rate-limit headers of r; a request of a
// class without limits (r names no limit) gets none.
func setRateLimitHeaders(h http.Header, r ratelimit.Result) {
	if r.Limit.Count == 0 {
		return
	}
	h.Set(headerRateLimit, strconv.Itoa(r.Limit.Count))
	h.Set(headerRateRemaining, strconv.Itoa(r.Remaining))
	h.Set(headerRateReset, strconv.Itoa(ceilSeconds(r.ResetAfter)))
	if r.Policy != "" {
		h.Set(headerRatePolicy, r.Policy)
	}
}

// TenantAdmission is the admission the policy core asks before a write
// creates a tenant (policy.Options.Admit): the creation counts against
// the client IP's budget (ratelimit.TenantCreation, the IP as the rate
// limits key it: an IPv6 client by its /64), then against the whole
// service's (ratelimit.TenantCreationGlobal, shared by the replicas when
// the limiter's store is). The client IP is the one the API recorded in the
// request's context (audit.RequestFrom), which trusts X-Forwarded-For only
// from AUTH_TRUSTED_PROXIES. A refusal is answered 429, with Retry-After
// and the rate-limit headers of the limit that refused. Writes to existing
// tenants and reads are never counted: the policy core does not ask.
func TenantAdmission(lim *ratelimit.Limiter) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, _ := audit.RequestFrom(ctx)
		r := lim.Allow(ctx, ratelimit.TenantCreation, "ip:"+rateLimitIP(req.IP))
		if r.Allowed {
			r = lim.Allow(ctx, ratelimit.TenantCreationGlobal, "all")
		}
		if r.Allowed {
			return nil
		}
		e := newRateLimited(r)
		e.creation = true
		return e
	}
}

// limitTenant counts an authenticated request against its tenant's limits:
// GET and HEAD as reads, anything else as writes. It runs after the
// authentication gate, which has named the tenant. Without limits for
// either class (the default) it is not in the chain at all.
func (s *Server) limitTenant(next echo.HandlerFunc) echo.HandlerFunc {
	if lim := s.deps.RateLimiter; lim == nil || (!lim.Limited(ratelimit.Reads) && !lim.Limited(ratelimit.Writes)) {
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
