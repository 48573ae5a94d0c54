package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// TokenConfig configures the JWTs this service issues and accepts.
type TokenConfig struct {
	Secret    []byte
	Algorithm string // HS256, HS384 or HS512: the one algorithm accepted
	TTL       time.Duration
	Issuer    string
	Audience  string
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration

	// now is the clock of validation (tests; nil: time.Now).
	now func() time.Time
}

// Scopes of issued tokens.
const (
	scopeFull  = "full"
	scopeCheck = "check"
)

// maxTokenLen bounds the size of a token before it is parsed.
const maxTokenLen = 4096

// tokenClaims are the claims of an issued token.
type tokenClaims struct {
	jwt.RegisteredClaims
	// Tenant is the tenant's handle; Key is the hash of the client key the
	// token was issued for, so that revoking the key revokes its tokens.
	Tenant string `json:"tenant"`
	Key    string `json:"ckh"`
	Scope  string `json:"scope"`
}

// tokens issues and checks JWTs.
type tokens struct {
	cfg    TokenConfig
	parser *jwt.Parser
	method jwt.SigningMethod
}

func newTokens(cfg TokenConfig) *tokens {
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	parser := strictParser([]string{cfg.Algorithm}, cfg.Issuer, cfg.Audience, cfg.Leeway, cfg.now)
	return &tokens{cfg: cfg, method: jwt.GetSigningMethod(cfg.Algorithm), parser: parser}
}

// strictParser is the one shape of JWT validation of the service: only
// algs, exp required, iat not in the future, iss and aud required, within
// leeway, and only the canonical encoding (a lenient decoder ignores the
// spare bits of the last character, so one signature would have several
// spellings: a token would not be one string). now, when set, is the clock.
func strictParser(algs []string, issuer, audience string, leeway time.Duration, now func() time.Time, extra ...jwt.ParserOption) *jwt.Parser {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	}
	if now != nil {
		opts = append(opts, jwt.WithTimeFunc(now))
	}
	return jwt.NewParser(append(opts, extra...)...)
}

// errBadToken is every token failure: the client learns nothing more.
var errBadToken = errors.New("api: invalid token")

// parse validates a token strictly: the one configured algorithm, a valid
// signature, exp required, iat not in the future, iss and aud checked, a
// lifetime no longer than this service issues, and our own claims present.
func (t *tokens) parse(s string) (*tokenClaims, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTokenLen || strings.Count(s, ".") != 2 || !tokenChars(s) {
		return nil, errBadToken
	}
	var c tokenClaims
	tok, err := t.parser.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return t.cfg.Secret, nil })
	if err != nil || !tok.Valid {
		return nil, errBadToken
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > t.cfg.TTL+time.Second ||
		(c.Scope != scopeFull && c.Scope != scopeCheck) || c.ID == "" {
		return nil, errBadToken
	}
	if !isKeyHash(c.Key) || !isKeyHash(c.Tenant) {
		return nil, errBadToken
	}
	return &c, nil
}

// tokenChars reports whether s holds only base64url characters and dots.
// The base64 decoder skips line breaks even in strict mode: without this,
// a signature with a line break in it would verify too.
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// isKeyHash reports whether s is a key hash as this service writes it: 64
// lower-case hexadecimal digits.
func isKeyHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// issue signs a token for a tenant, valid for the configured lifetime.
func (t *tokens) issue(handle, key policy.KeyHash, scope string, now time.Time) (string, error) {
	return t.issueFor(handle, key, scope, now, t.cfg.TTL)
}

// issueFor signs a token for a tenant, valid for ttl (at most the
// configured lifetime: parse refuses a longer one).
func (t *tokens) issueFor(handle, key policy.KeyHash, scope string, now time.Time, ttl time.Duration) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	c := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: t.cfg.Issuer, Audience: jwt.ClaimStrings{t.cfg.Audience}, Subject: "tenant",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: hex.EncodeToString(id[:]),
		},
		Tenant: string(handle), Key: string(key), Scope: scope,
	}
	return jwt.NewWithClaims(t.method, c).SignedString(t.cfg.Secret)
}

// bearerJWT returns the token of an "Authorization: Bearer a.b.c" header;
// with several Authorization headers there is none (credential refuses
// them).
func bearerJWT(h http.Header) (string, bool) {
	if len(h.Values(echo.HeaderAuthorization)) != 1 {
		return "", false
	}
	parts := strings.Fields(h.Get(echo.HeaderAuthorization))
	if len(parts) != 2 || !strings.EqualFold(parts[0], "bearer") || strings.Count(parts[1], ".") != 2 {
		return "", false
	}
	return parts[1], true
}

const ctxKeyClaims = "auth.claims"

// jwtMiddleware validates JWT bearer tokens (echo-jwt with our strict
// parser); other credentials pass through to authenticate.
func (s *Server) jwtMiddleware() echo.MiddlewareFunc {
	return echojwt.WithConfig(echojwt.Config{
		Skipper: func(c echo.Context) bool {
			_, ok := bearerJWT(c.Request().Header)
			return !ok
		},
		ContextKey: ctxKeyClaims,
		// The token is read as credential reads a client key: from the
		// one Authorization header, "Bearer" in any case and any
		// whitespace (echo-jwt's own lookup would try every header).
		TokenLookupFuncs: []middleware.ValuesExtractor{func(c echo.Context) ([]string, error) {
			tok, ok := bearerJWT(c.Request().Header)
			if !ok {
				return nil, errBadToken
			}
			return []string{tok}, nil
		}},
		ParseTokenFunc: func(c echo.Context, auth string) (any, error) {
			return s.parseToken(c.Request().Context(), auth)
		},
		ErrorHandler: func(c echo.Context, err error) error {
			s.refuse(c, "bad_token")
			return &Error{Code: http.StatusUnauthorized, Message: msgBadToken}
		},
	})
}

// refuse counts and logs a request refused before its tenant was known.
func (s *Server) refuse(c echo.Context, reason string) {
	if s.deps.Metrics != nil {
		s.deps.Metrics.Unauthenticated.WithLabelValues(reason).Inc()
	}
	s.log.InfoContext(c.Request().Context(), "unauthenticated request", "reason", reason,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "ip", c.RealIP(),
		"method", c.Request().Method, "route", c.Path())
}

const ctxKeyScope = "auth.scope"
const ctxKeyClientKey = "auth.client_key"

// requireWrite refuses changes to read-only (check-scope) tokens.
func requireWrite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Get(ctxKeyScope) == scopeCheck {
			return &Error{Code: http.StatusForbidden, Message: "This token may only check permissions and list; changes need a client key or a full token."}
		}
		return next(c)
	}
}

// requireClientKey refuses tokens where the client key itself is needed.
func requireClientKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := c.Get(ctxKeyClientKey).(policy.KeyHash); !ok {
			return &Error{Code: http.StatusForbidden, Message: "This operation needs the client key, not a token."}
		}
		return next(c)
	}
}

// maxTokenBody bounds the body of POST /api/token.
const maxTokenBody = 4096

const msgTokenBody = `The body must be a JSON object such as {"scope":"check"}.`

const msgBadScope = "scope must be full or check"

// tokenRequest is the body of POST /api/token.
type tokenRequest struct {
	Scope presentString `json:"scope"`
}

// presentString is a JSON string that remembers whether it was in the
// object at all, so that an explicit "" or null is told apart from no
// value (only a missing scope takes the default).
type presentString struct {
	set   bool
	null  bool
	value string
}

// UnmarshalJSON implements json.Unmarshaler.
func (p *presentString) UnmarshalJSON(b []byte) error {
	p.set = true
	if string(b) == "null" {
		p.null = true
		return nil
	}
	return json.Unmarshal(b, &p.value)
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// issueToken answers POST /api/token: a JWT for the calling tenant,
// authenticated by its client key. {"scope":"check"} gives a read-only one.
func (s *Server) issueToken(c echo.Context) error {
	if s.tokens == nil {
		return &Error{Code: http.StatusNotFound, Message: "Not Found"}
	}
	scope := scopeFull
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxTokenBody+1))
	if err != nil {
		return badRequest("Could not read the request body.")
	}
	if len(body) > maxTokenBody {
		// Never read a cut body: what was cut off might matter.
		return badRequest(msgTokenBody)
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		var req tokenRequest
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		// One JSON object and nothing after it.
		if text[0] != '{' || dec.Decode(&req) != nil || !atEOF(dec) {
			return badRequest(msgTokenBody)
		}
		if req.Scope.set {
			// An explicit "" or null is not a request for the default:
			// the default is the full scope.
			if req.Scope.null {
				return badRequest(msgBadScope)
			}
			scope = req.Scope.value
		}
	}
	if scope != scopeFull && scope != scopeCheck {
		return badRequest(msgBadScope)
	}
	key, _ := c.Get(ctxKeyClientKey).(policy.KeyHash)
	if s.deps.Keys != nil {
		// From the database, not the gate's cache: a key rotated away (in
		// its grace period) may not mint credentials that outlive it.
		if err := s.deps.Keys.CheckActive(c.Request().Context(), key); err != nil {
			return err
		}
	}
	now := time.Now()
	tok, err := s.tokens.issue(tenantOf(c), key, scope, now)
	if err != nil {
		return err
	}
	c.Set(ctxKeyAllowed, true)
	return c.JSON(http.StatusOK, tokenResponse{AccessToken: tok, ExpiresIn: int64(s.tokens.cfg.TTL / time.Second), TokenType: "bearer"})
}

// atEOF reports whether dec has nothing left to read.
func atEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

type rotateData struct {
	NewKey          string `json:"new_key"`
	OldKeyExpiresAt string `json:"old_key_expires_at"`
}

// rotateKey answers POST /api/keys/rotate: a new client key for the calling
// tenant; its rules stay as they are, and the old key keeps working for the
// configured grace period.
func (s *Server) rotateKey(c echo.Context) error {
	if s.deps.Keys == nil {
		return &Error{Code: http.StatusNotFound, Message: "Not Found"}
	}
	key, _ := c.Get(ctxKeyClientKey).(policy.KeyHash)
	next, expires, err := s.deps.Keys.Rotate(c.Request().Context(), key)
	if errors.Is(err, policy.ErrKeyUnknown) {
		return &Error{Code: http.StatusConflict, Message: "This tenant has no data yet: there is nothing to rotate."}
	}
	if err != nil {
		// A key already rotated (409), in its grace period or revoked:
		// mapped in statusOf.
		return err
	}
	return ok(c, rotateData{NewKey: next, OldKeyExpiresAt: audit.FormatTime(expires)}, "Client key rotated")
}

type revokeOthersData struct {
	Revoked int `json:"revoked"`
}

// revokeOtherKeys answers POST /api/keys/revoke_others: every other live
// key of the calling tenant (active or in its grace period) is revoked, for
// when a key may have leaked. Only an active client key may ask.
func (s *Server) revokeOtherKeys(c echo.Context) error {
	if s.deps.Keys == nil {
		return &Error{Code: http.StatusNotFound, Message: "Not Found"}
	}
	key, _ := c.Get(ctxKeyClientKey).(policy.KeyHash)
	n, err := s.deps.Keys.RevokeOthers(c.Request().Context(), key)
	if errors.Is(err, policy.ErrKeyUnknown) {
		// A tenant without data has no keys but this one.
		n, err = 0, nil
	}
	if err != nil {
		return err
	}
	return ok(c, revokeOthersData{Revoked: n}, "Revoked %d other client key(s)", n)
}
