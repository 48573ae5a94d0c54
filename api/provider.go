package api

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourway/auth/policy"
)

// ProviderConfig configures the tokens of an external identity provider
// (OIDC/OAuth): signed with the provider's asymmetric keys, published as a
// JWKS, and naming a tenant in a claim.
type ProviderConfig struct {
	// Keys gives the provider's public key for a kid and an algorithm.
	Keys ProviderKeys
	// Issuer and Audience are required in iss and aud.
	Issuer   string
	Audience string
	// TenantClaim names the claim that holds the tenant: its id, as
	// `auth-server tenant create` prints it, or its handle (default
	// "tenant").
	TenantClaim string
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 60s).
	Leeway time.Duration

	// now is the clock of validation (tests; nil: time.Now).
	now func() time.Time
}

// ProviderKeys is what the API needs from the provider's key set (see
// internal/jwks): the key with this kid, if it fits the algorithm.
type ProviderKeys interface {
	Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error)
}

// TenantResolver resolves the tenant named in a provider's token (an id or
// a handle) to its handle; it fails with policy.ErrTenantUnknown or
// policy.ErrTenantInactive.
type TenantResolver interface {
	Resolve(ctx context.Context, ref string) (policy.KeyHash, error)
}

// providerAlgs are the algorithms of provider tokens: asymmetric only, so
// that no key of the set can ever serve as an HMAC secret.
var providerAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// maxProviderTokenLen bounds a provider's token (they carry more claims
// than ours and longer signatures).
const maxProviderTokenLen = 8192

// providerClaims is what a valid provider token says.
type providerClaims struct {
	// Tenant is the tenant reference (id or handle), not yet resolved.
	Tenant string
	Scope  string
	// Expires is the token's exp (required by the parser).
	Expires time.Time
}

// provider validates provider tokens.
type provider struct {
	cfg    ProviderConfig
	parser *jwt.Parser
}

func newProvider(cfg ProviderConfig) *provider {
	if cfg.Leeway == 0 {
		cfg.Leeway = 60 * time.Second
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	// Claims as JSON numbers: a numeric tenant id keeps every digit.
	parser := strictParser(providerAlgs, cfg.Issuer, cfg.Audience, cfg.Leeway, cfg.now, jwt.WithJSONNumber())
	return &provider{cfg: cfg, parser: parser}
}

// parse validates a provider token: an asymmetric algorithm, a key of the
// provider's set chosen by kid that fits that algorithm, a valid signature,
// exp required, iss and aud as configured, an access-token type, and a
// tenant claim. The scope is full only if the scope claim lists "full".
func (p *provider) parse(ctx context.Context, s string) (*providerClaims, error) {
	if len(s) > maxProviderTokenLen || strings.Count(s, ".") != 2 || !tokenChars(s) {
		return nil, errBadToken
	}
	claims := jwt.MapClaims{}
	tok, err := p.parser.ParseWithClaims(s, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// No extension is understood here (RFC 7515 §4.1.11).
			return nil, errBadToken
		}
		if typ, ok := t.Header["typ"]; ok {
			ts, _ := typ.(string)
			switch strings.ToLower(ts) {
			case "jwt", "at+jwt", "application/at+jwt":
			default:
				return nil, errBadToken
			}
		}
		kid, _ := t.Header["kid"].(string)
		return p.cfg.Keys.Key(ctx, kid, t.Method.Alg())
	})
	if err != nil || !tok.Valid {
		return nil, errBadToken
	}
	var c providerClaims
	switch v := claims[p.cfg.TenantClaim].(type) {
	case string:
		c.Tenant = v
	case json.Number:
		c.Tenant = v.String()
	default:
		return nil, errBadToken
	}
	c.Scope = scopeCheck
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		c.Expires = exp.Time
	}
	switch v := claims["scope"].(type) {
	case nil:
	case string:
		for _, w := range strings.Fields(v) {
			if w == scopeFull {
				c.Scope = scopeFull
			}
		}
	default:
		return nil, errBadToken
	}
	return &c, nil
}

// tokenAlg returns the alg of a token's header ("" if it cannot be read).
// It only dispatches the token to the one validator of that algorithm,
// which checks everything again.
func tokenAlg(s string) string {
	head, _, ok := strings.Cut(s, ".")
	if !ok || len(head) > 1024 {
		return ""
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Alg
}

// parseToken dispatches a token strictly by its algorithm: the HMAC
// algorithm of this service's tokens to the HMAC secret only, asymmetric
// algorithms to the provider's keys only, anything else refused.
func (s *Server) parseToken(ctx context.Context, tok string) (any, error) {
	tok = strings.TrimSpace(tok)
	alg := tokenAlg(tok)
	switch {
	case alg == "":
	case s.tokens != nil && alg == s.tokens.cfg.Algorithm:
		return s.tokens.parse(tok)
	case s.provider != nil && slices.Contains(providerAlgs, alg):
		return s.provider.parse(ctx, tok)
	}
	return nil, errBadToken
}

// providerTenant resolves the tenant of a provider token, or says why not.
func (s *Server) providerTenant(ctx context.Context, c *providerClaims) (policy.KeyHash, string, error) {
	if s.deps.Tenants == nil {
		return "", "unknown_tenant", &Error{Code: http.StatusUnauthorized, Message: msgUnknownTenant}
	}
	h, err := s.deps.Tenants.Resolve(ctx, c.Tenant)
	switch {
	case errors.Is(err, policy.ErrTenantUnknown):
		return "", "unknown_tenant", &Error{Code: http.StatusUnauthorized, Message: msgUnknownTenant}
	case errors.Is(err, policy.ErrTenantInactive):
		return "", "inactive_tenant", &Error{Code: http.StatusUnauthorized, Message: msgInactiveTenant}
	case err != nil:
		return "", "", err
	}
	return h, "", nil
}
