// Package api is the HTTP API of auth-server: the routes of the compatible
// REST contract (under /api and /api/v1), their middleware and the one
// mapping from errors to JSON responses.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/metrics"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
)

// Authorizer is what the API needs from the policy core: its changes, and
// its checks and listings with every answer recorded (decision.Policy). The
// core validates every name; its policy.NameError is answered 400.
type Authorizer interface {
	decision.Core
}

// Workflows is what the API needs from the workflow package (which records
// its answers itself).
type Workflows interface {
	UsersFor(ctx context.Context, key policy.KeyHash, workflow string) ([]policy.Membership, error)
	CanRun(ctx context.Context, key policy.KeyHash, user, workflow string) (bool, error)
}

// MaxHeaderBytes is the largest request head (request line and headers)
// the service reads; a larger one is answered 431.
const MaxHeaderBytes = 16 << 10

// headerReadSlop is what net/http reads past http.Server.MaxHeaderBytes
// before it refuses a request head.
const headerReadSlop = 4096

// HTTPMaxHeaderBytes is the value for http.Server.MaxHeaderBytes that makes
// MaxHeaderBytes the real limit: net/http allows headerReadSlop on top of it.
const HTTPMaxHeaderBytes = MaxHeaderBytes - headerReadSlop

// Config is the HTTP section of the configuration.
type Config struct {
	// AllowCORS turns CORS on; CORSOrigins lists the allowed origins ("*"
	// for any).
	AllowCORS   bool
	CORSOrigins []string
	// BodyLimit bounds request bodies (default "64K").
	BodyLimit string
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (none: the peer address is the client).
	TrustedProxies []*net.IPNet
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// SeparateOps serves /metrics only on OpsHandler (a listener of its
	// own), not beside the API; /health and /ready are served by both.
	SeparateOps bool
}

// Deps are the services behind the API.
type Deps struct {
	Policy    Authorizer
	Workflows Workflows
	// Registry keeps the tenants' workflows (nil: no /api/v2/workflows
	// routes).
	Registry Registry
	// Ready reports whether the service can serve (database reachable,
	// schema current); nil means always ready.
	Ready func(ctx context.Context) error
	// Audit records failed requests, reads of the trail and issued tokens,
	// and serves GET /api/audit (nil: none of these).
	Audit Auditor
	// Metrics, when set, is served on /metrics and counts refusals.
	Metrics *metrics.Metrics
	// Keys resolves client keys to tenants and rotates them (nil: every
	// UUID4 is its own tenant and rotation is not offered).
	Keys KeyResolver
	// Tokens configures JWT issuance and validation (nil: no JWTs).
	Tokens *TokenConfig
	// Provider, when set, accepts the tokens of an external identity
	// provider; Tenants resolves the tenants they name.
	Provider *ProviderConfig
	Tenants  TenantResolver
	// RateLimiter limits /api requests per tenant, and per client IP
	// those the authentication gate refuses (nil: no limits).
	RateLimiter *ratelimit.Limiter
	Logger      *slog.Logger
}

// KeyResolver is what the API needs from client-key management.
type KeyResolver interface {
	Resolve(ctx context.Context, key policy.KeyHash) (policy.KeyHash, error)
	Rotate(ctx context.Context, key policy.KeyHash) (string, time.Time, error)
	// CheckActive reports, from the database, whether key may issue
	// tokens (policy.ErrKeyInGrace for a key rotated away).
	CheckActive(ctx context.Context, key policy.KeyHash) error
	// RevokeOthers revokes the other live keys of key's tenant and returns
	// how many; key must be active.
	RevokeOthers(ctx context.Context, key policy.KeyHash) (int, error)
}

// Server is the HTTP API.
type Server struct {
	echo   *echo.Echo
	deps   Deps
	log    *slog.Logger
	tokens *tokens
	// provider validates external identity providers' tokens (nil: none).
	provider *provider
	// metricsToken guards /metrics ("": open).
	metricsToken string
	// separateOps leaves /metrics to OpsHandler.
	separateOps bool
	// routeSet holds the registered route patterns (see isRoute).
	routeSetOnce sync.Once
	routeSet     map[string]bool
	// gateChain is the authentication gate as one handler (see gate).
	gateOnce  sync.Once
	gateChain echo.HandlerFunc
}

// New builds the API with every route registered.
func New(cfg Config, deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if cfg.BodyLimit == "" {
		cfg.BodyLimit = "64K"
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Debug = false
	e.JSONSerializer = jsonSerializer{}
	// The peer address is the client: forwarding headers are believed only
	// from trusted proxies.
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	s := &Server{echo: e, deps: deps, log: deps.Logger}
	s.metricsToken = cfg.MetricsToken
	s.separateOps = cfg.SeparateOps
	if deps.Tokens != nil {
		s.tokens = newTokens(*deps.Tokens)
	}
	if deps.Provider != nil {
		s.provider = newProvider(*deps.Provider)
	}
	e.HTTPErrorHandler = s.handleError
	var cors echo.MiddlewareFunc
	if cfg.AllowCORS {
		cors = middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodOptions},
			AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderXRequestID},
			ExposeHeaders: append([]string{echo.HeaderXRequestID}, rateLimitHeaders...),
		})
	}
	e.Use(s.frame(cors, bodyLimit(cfg.BodyLimit)))
	s.routes()
	return s
}

// Handler is the http.Handler that serves the API.
func (s *Server) Handler() http.Handler { return s.echo }

// OpsHandler serves the operational endpoints alone (/health, /ready and
// /metrics), for a listener of their own that only the operators' network
// reaches; anything else answers 404.
func (s *Server) OpsHandler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort, e.Debug = true, true, false
	e.JSONSerializer = jsonSerializer{}
	e.HTTPErrorHandler = s.handleError
	e.Pre(requestID)
	e.Use(s.recoverer, securityHeaders)
	s.opsRoutes(e, true)
	return e
}

// requestID gives every request an id: the caller's X-Request-ID when it is
// well formed, a fresh random one otherwise. It is echoed in the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		identify(c)
		return next(c)
	}
}

// identify is requestID's work: the id in the response's headers, and the
// id, the client's IP and user agent in the request's context (for the
// audit trail).
func identify(c echo.Context) {
	r := c.Request()
	id := r.Header.Get(echo.HeaderXRequestID)
	if !wellFormedID(id) {
		var b [16]byte
		var h [32]byte
		_, _ = rand.Read(b[:])
		hex.Encode(h[:], b[:])
		id = string(h[:])
	}
	c.Response().Header()[echo.HeaderXRequestID] = []string{id}
	c.SetRequest(r.WithContext(audit.WithRequest(r.Context(), audit.Request{
		ID: id, IP: c.RealIP(), UserAgent: clamp(r.UserAgent(), 512),
	})))
}

// wellFormedID reports whether a caller's request id may be kept: 1 to 128
// characters of A-Z a-z 0-9 . _ : - (checked without a regular expression:
// it runs on every request).
func wellFormedID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

func clamp(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// securityHeaders sets the headers every response carries, errors included.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		secure(c)
		return next(c)
	}
}

// The values of the security headers, shared by every response (a header
// value slice is never written in place: Set replaces it, Add copies it).
var (
	hvNosniff = []string{"nosniff"}
	hvDeny    = []string{"DENY"}
	hvNoRef   = []string{"no-referrer"}
	hvNoStore = []string{"no-store"}
	hvHSTS    = []string{"max-age=31536000"}
	hvVary    = []string{echo.HeaderOrigin}
)

// secure is securityHeaders' work.
func secure(c echo.Context) {
	h := c.Response().Header()
	h["X-Content-Type-Options"] = hvNosniff
	h["X-Frame-Options"] = hvDeny
	h["Referrer-Policy"] = hvNoRef
	h["Cache-Control"] = hvNoStore
	if c.Request().TLS != nil {
		h["Strict-Transport-Security"] = hvHSTS
	}
}

// frame is the middleware every request of the API goes through, in this
// order: request id, request metrics, panic recovery, security headers,
// access log, CORS, body limit and JSON-only bodies. Echo applies the
// middleware of Use to each request anew (a closure per middleware per
// request), so the steps are one middleware here, and CORS and the body
// limit are only set up for the requests that need them (a request with an
// Origin header, or a preflight; a request with a body).
func (s *Server) frame(cors, limit echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			identify(c)
			start := time.Now()
			if err := s.guarded(c, next, cors, limit); err != nil {
				c.Error(err)
			}
			s.observed(c, start)
			return nil
		}
	}
}

// guarded is what frame runs inside the request metrics: recoverer,
// securityHeaders and accessLog around the rest of the chain.
func (s *Server) guarded(c echo.Context, next echo.HandlerFunc, cors, limit echo.MiddlewareFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(c, r)
		}
	}()
	secure(c)
	revisioned(c)
	start := time.Now()
	if err := bounded(c, next, cors, limit); err != nil {
		c.Error(err)
	}
	s.logRequest(c, start)
	return nil
}

// bounded applies CORS, the body limit and requireJSON, each only where it
// has something to do.
func bounded(c echo.Context, next echo.HandlerFunc, cors, limit echo.MiddlewareFunc) error {
	r := c.Request()
	if r.Body != nil && r.Body != http.NoBody {
		next = limit(requireJSON(next))
	}
	if cors == nil {
		return next(c)
	}
	if r.Method != http.MethodOptions && r.Header.Get(echo.HeaderOrigin) == "" {
		// What the CORS middleware does for a request that is not a
		// browser's cross-origin one.
		c.Response().Header()[echo.HeaderVary] = append(c.Response().Header()[echo.HeaderVary], hvVary...)
		return next(c)
	}
	return cors(next)(c)
}

// recoverer turns a panic into a 500 with the stack in the log.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = s.recovered(c, r)
			}
		}()
		return next(c)
	}
}

// recovered logs a recovered panic and returns the 500 it answers (an
// http.ErrAbortHandler panics on: it means "abort the response").
func (s *Server) recovered(c echo.Context, r any) error {
	if r == http.ErrAbortHandler {
		panic(r)
	}
	s.log.ErrorContext(c.Request().Context(), "panic in handler", "panic", r,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return &Error{Code: http.StatusInternalServerError, Message: "An internal error occurred"}
}

// logRequest writes the access log's line of a request (never the
// Authorization header), at debug level.
func (s *Server) logRequest(c echo.Context, start time.Time) {
	if s.log.Enabled(c.Request().Context(), slog.LevelDebug) {
		s.log.LogAttrs(c.Request().Context(), slog.LevelDebug, "request",
			slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.Int("status", c.Response().Status),
			slog.Duration("took", time.Since(start)))
	}
}

// Messages of the authentication gate, as the original service wrote them.
const (
	msgMissingHeader = "Authorization header is missing."
	msgBadHeader     = "Invalid Authorization header format. Must be 'Bearer <token>'."
	msgBadKey        = "Invalid client key. Must be a valid UUID4."
	msgBadToken      = "Invalid or expired token."
	msgUnknownKey    = "Unknown client key."
	msgRevokedKey    = "Client key has been revoked or has expired."
	msgDupHeader     = "Send one Authorization header, not several."
	// Provider tokens whose tenant claim names no tenant, or a tenant
	// without an active client key.
	msgUnknownTenant  = "The token names an unknown tenant."
	msgInactiveTenant = "The token's tenant has no active client key."
)

const ctxKeyTenant = "auth.tenant"

// authenticate is the gate of every /api route: it runs before name
// validation and before any database work. The token is never echoed.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var (
			key   policy.KeyHash
			scope = scopeFull
		)
		if pc, ok := c.Get(ctxKeyClaims).(*providerClaims); ok {
			// An identity provider's token, validated by jwtMiddleware:
			// it names the tenant itself (there is no client key).
			h, reason, err := s.providerTenant(c.Request().Context(), pc)
			if err != nil {
				if reason != "" {
					s.refuse(c, reason)
				}
				return err
			}
			c.Set(ctxKeyTenant, h)
			c.Set(ctxKeyScope, pc.Scope)
			return next(c)
		}
		if claims, ok := c.Get(ctxKeyClaims).(*tokenClaims); ok {
			// A JWT already validated by jwtMiddleware.
			key, scope = policy.KeyHash(claims.Key), claims.Scope
		} else {
			k, reason, err := credential(c.Request().Header)
			if err != nil {
				// Not a tenant event: counted and logged, never put in a chain.
				s.refuse(c, reason)
				return err
			}
			key = k
			c.Set(ctxKeyClientKey, k)
		}
		handle := key
		if s.deps.Keys != nil {
			h, err := s.deps.Keys.Resolve(c.Request().Context(), key)
			switch {
			case errors.Is(err, policy.ErrKeyUnknown):
				s.refuse(c, "unknown_key")
				return &Error{Code: http.StatusUnauthorized, Message: msgUnknownKey}
			case errors.Is(err, policy.ErrKeyRevoked):
				s.refuse(c, "revoked_key")
				return &Error{Code: http.StatusUnauthorized, Message: msgRevokedKey}
			case err != nil:
				return err
			}
			handle = h
		}
		if claims, ok := c.Get(ctxKeyClaims).(*tokenClaims); ok && claims.Tenant != string(handle) {
			s.refuse(c, "bad_token")
			return &Error{Code: http.StatusUnauthorized, Message: msgBadToken}
		}
		c.Set(ctxKeyTenant, handle)
		c.Set(ctxKeyScope, scope)
		return next(c)
	}
}

// credential reads the tenant's key from the Authorization header, or says
// why it cannot.
func credential(h http.Header) (policy.KeyHash, string, error) {
	values, present := h[echo.HeaderAuthorization]
	if !present {
		return "", "missing_header", &Error{Code: http.StatusUnauthorized, Message: msgMissingHeader}
	}
	if len(values) > 1 {
		// Two credentials: which one counts would depend on who reads
		// the headers (a proxy, this server); refuse both.
		return "", "duplicate_header", &Error{Code: http.StatusBadRequest, Message: msgDupHeader}
	}
	// A header that is there but blank (net/http trims a whitespace-only
	// value to "") is a malformed one, not a missing one.
	v := ""
	if len(values) > 0 {
		v = values[0]
	}
	parts := strings.Fields(v)
	if len(parts) != 2 || !strings.EqualFold(parts[0], "bearer") {
		return "", "bad_header", &Error{Code: http.StatusUnauthorized, Message: msgBadHeader}
	}
	token := parts[1]
	if strings.Count(token, ".") == 2 {
		// Shaped like a JWT; this version accepts client keys only.
		return "", "bad_token", &Error{Code: http.StatusUnauthorized, Message: msgBadToken}
	}
	key, err := policy.ParseClientKey(token)
	if err != nil {
		return "", "bad_key", &Error{Code: http.StatusBadRequest, Message: msgBadKey}
	}
	return key, "", nil
}

func tenantOf(c echo.Context) policy.KeyHash {
	k, _ := c.Get(ctxKeyTenant).(policy.KeyHash)
	return k
}
