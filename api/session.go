package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/policy"
)

// Identity is who a credential names: its tenant, whether it may change the
// tenant's policy, and when it stops being valid (zero for a client key).
type Identity struct {
	Tenant   policy.KeyHash
	ReadOnly bool
	Expires  time.Time
}

// Session is a sign-in's credential: a token the API accepts as a bearer
// credential, valid until Expires, and the identity it names.
type Session struct {
	Token string
	Identity
}

// ErrNoTokens is OpenSession's error when the server issues no tokens.
var ErrNoTokens = errors.New("api: this server issues no tokens")

// gate is the authentication of every /api route, as one handler: the rate
// limit of refused credentials, token validation and the key gate. It
// leaves the tenant, scope and claims in the context it is given.
func (s *Server) gate() echo.HandlerFunc {
	s.gateOnce.Do(func() {
		s.gateChain = s.limitUnauthenticated(s.jwtMiddleware()(s.authenticate(func(echo.Context) error { return nil })))
	})
	return s.gateChain
}

// Authenticate checks credential (a client key or a token, as the bearer
// credential of an /api request would carry it) exactly as every /api
// request is checked, for a request from r's client: a refused credential
// counts against that client's rate limit, and a revoked key or a bad token
// is refused as the API refuses it. The error is the API's (ErrorStatus
// gives its status and message).
func (s *Server) Authenticate(r *http.Request, credential string) (Identity, error) {
	id, _, err := s.authenticateFor(r, credential)
	return id, err
}

// authenticateFor is Authenticate; it also returns the echo context the
// gate ran in, for OpenSession to read the credential's details from.
func (s *Server) authenticateFor(r *http.Request, credential string) (Identity, echo.Context, error) {
	req := r.Clone(r.Context())
	req.Header = req.Header.Clone()
	req.Header.Set(echo.HeaderAuthorization, "Bearer "+credential)
	req.Body = http.NoBody
	c := s.echo.NewContext(req, &discardWriter{h: http.Header{}})
	if err := s.gate()(c); err != nil {
		return Identity{}, c, err
	}
	id := Identity{Tenant: tenantOf(c), ReadOnly: c.Get(ctxKeyScope) == scopeCheck}
	switch claims := c.Get(ctxKeyClaims).(type) {
	case *tokenClaims:
		id.Expires = claims.ExpiresAt.Time
	case *providerClaims:
		id.Expires = claims.Expires
	}
	return id, c, nil
}

// OpenSession authenticates credential as Authenticate does and opens a
// session with it. A client key, or a token of this service, is exchanged
// for a new token of this service with the same tenant and scope, valid for
// ttl: no longer than the configured token lifetime, nor than the token
// signed in with. A key rotated away (in its grace period) may not open
// one, as it may not issue tokens. An identity provider's token is its own
// session. The session is recorded in the audit trail as an issued token
// (ISSUE_TOKEN, resource "console_session").
func (s *Server) OpenSession(r *http.Request, credential string, ttl time.Duration) (Session, error) {
	id, c, err := s.authenticateFor(r, credential)
	if err != nil {
		return Session{}, err
	}
	if _, ok := c.Get(ctxKeyClaims).(*providerClaims); ok {
		return Session{Token: credential, Identity: id}, nil
	}
	if s.tokens == nil {
		return Session{}, ErrNoTokens
	}
	key, isKey := c.Get(ctxKeyClientKey).(policy.KeyHash)
	if !isKey {
		key = policy.KeyHash(c.Get(ctxKeyClaims).(*tokenClaims).Key)
	} else if s.deps.Keys != nil {
		if err := s.deps.Keys.CheckActive(r.Context(), key); err != nil {
			return Session{}, err
		}
	}
	now := time.Now()
	ttl = min(ttl, s.tokens.cfg.TTL)
	if !id.Expires.IsZero() {
		ttl = min(ttl, id.Expires.Sub(now))
	}
	if ttl < time.Second {
		return Session{}, &Error{Code: http.StatusUnauthorized, Message: msgBadToken}
	}
	scope := scopeFull
	if id.ReadOnly {
		scope = scopeCheck
	}
	tok, err := s.tokens.issueFor(id.Tenant, key, scope, now, ttl)
	if err != nil {
		return Session{}, err
	}
	id.Expires = now.Add(ttl).Truncate(time.Second)
	if s.deps.Audit != nil {
		s.deps.Audit.RecordEvent(context.WithoutCancel(r.Context()), audit.Entry{
			Time: now.UTC(), Tenant: string(id.Tenant), Action: audit.IssueToken, Resource: "console_session",
			Success: true, Details: map[string]any{"status_code": http.StatusOK, "scope": scope},
		})
	}
	return Session{Token: tok, Identity: id}, nil
}

// ErrorStatus is the status and message the API answers for err (500 and
// a generic message for an error it does not know).
func ErrorStatus(err error) (int, string) { return statusOf(err) }

// discardWriter is the response of a gate run outside a request of the
// API: headers are kept (and dropped), the body is discarded.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// AdmitRead counts a read of tenant's policy made for the request r (a page
// of the console) against the tenant's rate limit of reads, as an /api read
// is counted; over the limit it answers the API's 429 error.
func (s *Server) AdmitRead(r *http.Request, tenant policy.KeyHash) error {
	lim := s.deps.RateLimiter
	if lim == nil || !lim.Limited(ratelimit.Reads) {
		return nil
	}
	res := lim.Allow(r.Context(), ratelimit.Reads, "t:"+string(tenant))
	if res.Allowed {
		return nil
	}
	return newRateLimited(res)
}

// WithRequestFacts returns r carrying, for the audit trail, the facts of the
// request as every request of the API carries them (audit.WithRequest): its
// id (the caller's X-Request-ID when well formed, else a fresh one), the
// client's address as the trusted proxies let it be known, and its user
// agent; and the id, for the response to echo.
func (s *Server) WithRequestFacts(r *http.Request) (*http.Request, string) {
	c := s.echo.NewContext(r, &discardWriter{h: http.Header{}})
	identify(c)
	return c.Request(), c.Response().Header().Get(echo.HeaderXRequestID)
}
