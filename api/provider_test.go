package api

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourway/auth/internal/jwks"
	"github.com/ourway/auth/internal/jwks/jwkstest"
	"github.com/ourway/auth/policy"
)

const (
	idpIssuer   = "https://idp.example.test/"
	idpAudience = "auth-api-provider"
	// tenantSeven is the handle of tenant 7 in fakeTenants.
	tenantSeven = policy.KeyHash("7777777777777777777777777777777777777777777777777777777777777777")
)

// fakeTenants resolves "7" and tenantSeven to tenant 7, "8" to a tenant
// without active keys, and fails on "500".
type fakeTenants struct{}

func (fakeTenants) Resolve(_ context.Context, ref string) (policy.KeyHash, error) {
	switch ref {
	case "7", string(tenantSeven):
		return tenantSeven, nil
	case "8":
		return "", policy.ErrTenantInactive
	case "500":
		return "", errors.New("database down")
	}
	return "", policy.ErrTenantUnknown
}

// tenantEcho answers user_roles with the tenant it was called for, and
// accepts role creation.
type tenantEcho struct{ Authorizer }

func (tenantEcho) UserRoles(_ context.Context, key policy.KeyHash, _ string) ([]string, error) {
	return []string{string(key)}, nil
}

func (tenantEcho) CreateRole(context.Context, policy.KeyHash, string) (bool, error) { return true, nil }

// frozen is a clock that does not move unless told.
type frozen struct{ t time.Time }

func (f *frozen) now() time.Time { return f.t }

// providerServer is the API with HMAC tokens (unless hmac is false) and the
// tokens of idp.
func providerServer(t *testing.T, idp *jwkstest.Provider, clk *frozen, hmac bool) *Server {
	t.Helper()
	set, err := jwks.New(jwks.Options{URL: idp.URL(), Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{
		Policy: tenantEcho{}, Keys: &fakeKeys{}, Tenants: fakeTenants{},
		Provider: &ProviderConfig{Keys: set, Issuer: idpIssuer, Audience: idpAudience},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if hmac {
		deps.Tokens = &TokenConfig{Secret: []byte(unitSecret), Algorithm: "HS256", TTL: unitTTL, Issuer: unitIssuer, Audience: unitAudience}
	}
	return New(Config{}, deps)
}

func idpClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": idpIssuer, "aud": []string{"other-api", idpAudience}, "sub": "svc-orders",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "tenant": "7",
	}
}

// withHeader signs claims with k but with extra or changed header fields.
func withHeader(t *testing.T, k jwkstest.Key, m jwt.SigningMethod, header map[string]any, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = k.ID
	for n, v := range header {
		if v == nil {
			delete(tok.Header, n)
		} else {
			tok.Header[n] = v
		}
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hmacWithKid signs claims HS256 with secret, naming kid in the header.
func hmacWithKid(t *testing.T, kid string, secret []byte, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publicKeyForms are the provider's RSA public key as bytes an attacker
// could use as an HMAC secret: PEM (PKIX and PKCS#1), DER, the JWK and the
// whole JWK set as published.
func publicKeyForms(t *testing.T, idp *jwkstest.Provider) map[string][]byte {
	pub := idp.RSA.Private.Public().(*rsa.PublicKey)
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	jwk, _ := json.Marshal(jwkstest.JWK(idp.RSA))
	set, _ := json.Marshal(map[string]any{"keys": []any{jwkstest.JWK(idp.RSA), jwkstest.JWK(idp.EC), jwkstest.JWK(idp.Ed)}})
	return map[string][]byte{
		"PKIX PEM":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS#1 PEM":   pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"PKIX DER":     pkix,
		"PKCS#1 DER":   pkcs1,
		"JWK":          jwk,
		"JWK set":      set,
		"modulus":      pub.N.Bytes(),
		"JWK modulus":  []byte(jwkstest.JWK(idp.RSA)["n"].(string)),
		"HMAC secret+": []byte(unitSecret + "x"),
	}
}

// TestProviderTokens: tokens of the identity provider are accepted for the
// tenant they name, with the provider's keys only, and refused otherwise.
func TestProviderTokens(t *testing.T) {
	idp := jwkstest.New(t)
	clk := &frozen{t: time.Now()}
	s := providerServer(t, idp, clk, true)
	now := clk.t
	with := func(edit func(c jwt.MapClaims)) jwt.MapClaims {
		c := idpClaims(now)
		edit(c)
		return c
	}
	stranger := jwkstest.NewKey(t, "rsa", "rsa-1") // the provider's kid, another key
	ecAsRSA := jwkstest.Key{ID: idp.EC.ID, Private: idp.RSA.Private, Method: jwt.SigningMethodRS256}

	type tc struct {
		name   string
		token  string
		status int
		msg    string
	}
	ok := func(name, tok string) tc { return tc{name, tok, 200, ""} }
	bad := func(name, tok string) tc { return tc{name, tok, 401, msgBadToken} }
	cases := []tc{
		ok("RS256", jwkstest.Sign(t, idp.RSA, idpClaims(now))),
		ok("ES256", jwkstest.Sign(t, idp.EC, idpClaims(now))),
		ok("EdDSA", jwkstest.Sign(t, idp.Ed, idpClaims(now))),
		ok("PS256 with the RSA key", withHeader(t, idp.RSA, jwt.SigningMethodPS256, nil, idpClaims(now))),
		ok("tenant by handle", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["tenant"] = string(tenantSeven) }))),
		ok("tenant id as a number", jwkstest.Sign(t, idp.Ed, with(func(c jwt.MapClaims) { c["tenant"] = 7 }))),
		ok("aud a single string", jwkstest.Sign(t, idp.EC, with(func(c jwt.MapClaims) { c["aud"] = idpAudience }))),
		ok("typ at+jwt", withHeader(t, idp.RSA, jwt.SigningMethodRS256, map[string]any{"typ": "at+jwt"}, idpClaims(now))),
		ok("no typ", withHeader(t, idp.RSA, jwt.SigningMethodRS256, map[string]any{"typ": nil}, idpClaims(now))),
		ok("expired within the leeway", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() }))),

		bad("wrong iss", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" }))),
		bad("our own iss", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["iss"] = unitIssuer }))),
		bad("iss missing", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { delete(c, "iss") }))),
		bad("wrong aud", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["aud"] = []string{"other-api"} }))),
		bad("our HMAC tokens' aud", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["aud"] = unitAudience }))),
		bad("aud missing", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { delete(c, "aud") }))),
		bad("expired", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))),
		bad("exp missing", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { delete(c, "exp") }))),
		bad("nbf in the future", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))),
		bad("iat in the future", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }))),
		bad("unknown kid", jwkstest.Sign(t, jwkstest.NewKey(t, "ec", "ec-unknown"), idpClaims(now))),
		bad("no kid", withHeader(t, idp.RSA, jwt.SigningMethodRS256, map[string]any{"kid": nil}, idpClaims(now))),
		bad("kid of the provider, another key", jwkstest.Sign(t, stranger, idpClaims(now))),
		bad("RS256 with the kid of the EC key", jwkstest.Sign(t, ecAsRSA, idpClaims(now))),
		bad("ES256 with the kid of the Ed25519 key", withHeader(t, idp.EC, jwt.SigningMethodES256, map[string]any{"kid": idp.Ed.ID}, idpClaims(now))),
		bad("ES384 with the P-256 key", withHeader(t, idp.EC, jwt.SigningMethodES256, map[string]any{"alg": "ES384"}, idpClaims(now))),
		bad("alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, idpClaims(now))),
		bad("typ of another token type", withHeader(t, idp.RSA, jwt.SigningMethodRS256, map[string]any{"typ": "dpop+jwt"}, idpClaims(now))),
		bad("crit header", withHeader(t, idp.RSA, jwt.SigningMethodRS256, map[string]any{"crit": []string{"exp"}}, idpClaims(now))),
		bad("tenant missing", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { delete(c, "tenant") }))),
		bad("tenant a list", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["tenant"] = []string{"7"} }))),
		bad("scope a list", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["scope"] = []string{"full"} }))),
		{"unknown tenant", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["tenant"] = "99" })), 401, msgUnknownTenant},
		{"tenant without an active key", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["tenant"] = "8" })), 401, msgInactiveTenant},
		{"tenant lookup fails", jwkstest.Sign(t, idp.RSA, with(func(c jwt.MapClaims) { c["tenant"] = "500" })), 500, "An internal error occurred"},
	}
	for name, secret := range publicKeyForms(t, idp) {
		cases = append(cases, bad("HS256 with the provider's key as secret: "+name, hmacWithKid(t, idp.RSA.ID, secret, idpClaims(now))))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+c.token)
			if r.status != c.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, c.status)
			}
			if c.status == 200 {
				if want := `{"result":[{"role":"` + string(tenantSeven) + `","user":"alice"}]}`; strings.TrimSpace(r.body) != want {
					t.Errorf("body %s, want %s (the tenant of the token)", r.body, want)
				}
				return
			}
			if got := r.message(t); got != c.msg {
				t.Errorf("message %q, want %q", got, c.msg)
			}
		})
	}
	// Unknown kids within MinRefresh of the first load (the clock does not
	// move) fetch nothing more; past it, a burst of them fetches once.
	if n := idp.Fetches(); n != 1 {
		t.Errorf("%d key set fetches, want 1 (the first load)", n)
	}
	clk.t = clk.t.Add(jwks.DefaultMinRefresh)
	unknown := jwkstest.Sign(t, jwkstest.NewKey(t, "ed", "ed-unknown"), idpClaims(now))
	for i := 0; i < 10; i++ {
		if r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+unknown); r.status != 401 {
			t.Fatalf("unknown kid: %d %s", r.status, r.body)
		}
	}
	if n := idp.Fetches(); n != 2 {
		t.Errorf("%d key set fetches, want 2 (one refresh for ten unknown kids)", n)
	}
	// HMAC tokens of this service keep working beside them.
	if r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+token(t, s, "")); r.status != 200 {
		t.Errorf("HMAC token: %d %s", r.status, r.body)
	}
}

// TestProviderTokenScope: a provider token may change things only if its
// scope claim lists "full"; without it (or with anything else) it is a
// check-only token. It never mints tokens or rotates keys.
func TestProviderTokenScope(t *testing.T) {
	idp := jwkstest.New(t)
	clk := &frozen{t: time.Now()}
	s := providerServer(t, idp, clk, true)
	scoped := func(scope any) string {
		c := idpClaims(clk.t)
		if scope != nil {
			c["scope"] = scope
		}
		return jwkstest.Sign(t, idp.RSA, c)
	}
	for _, tc := range []struct {
		scope  any
		status int
	}{
		{nil, 403}, {"", 403}, {"check", 403}, {"openid profile", 403}, {"fullaccess", 403}, {"FULL", 403},
		{"full", 200}, {"openid full", 200}, {"check full", 200},
	} {
		tok := scoped(tc.scope)
		if r := call(s, "POST", "/api/role/admin", "", "Bearer "+tok); r.status != tc.status {
			t.Errorf("scope %v: POST /api/role/admin: %d %s, want %d", tc.scope, r.status, r.body, tc.status)
		} else if tc.status == 403 && r.message(t) != msgCheckScopeForTest {
			t.Errorf("scope %v: message %q", tc.scope, r.message(t))
		}
		if r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+tok); r.status != 200 {
			t.Errorf("scope %v: GET: %d %s", tc.scope, r.status, r.body)
		}
	}
	full := scoped("full")
	for _, path := range []string{"/api/token", "/api/keys/rotate"} {
		if r := call(s, "POST", path, "", "Bearer "+full); r.status != 403 || r.message(t) != "This operation needs the client key, not a token." {
			t.Errorf("POST %s with a provider token: %d %s", path, r.status, r.body)
		}
	}
}

// TestProviderOnly: without HMAC tokens, an HMAC token is refused whatever
// its secret (the provider's public key included), and provider tokens
// work.
func TestProviderOnly(t *testing.T) {
	idp := jwkstest.New(t)
	clk := &frozen{t: time.Now()}
	s := providerServer(t, idp, clk, false)
	for name, secret := range publicKeyForms(t, idp) {
		tok := hmacWithKid(t, idp.RSA.ID, secret, idpClaims(clk.t))
		if r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+tok); r.status != 401 || r.message(t) != msgBadToken {
			t.Errorf("HS256 with %s: %d %s", name, r.status, r.body)
		}
	}
	if r := call(s, "GET", "/api/user_roles/alice", "", "Bearer "+jwkstest.Sign(t, idp.Ed, idpClaims(clk.t))); r.status != 200 {
		t.Errorf("provider token: %d %s", r.status, r.body)
	}
}

func TestTokenAlg(t *testing.T) {
	for _, tc := range []struct{ tok, want string }{
		{"eyJhbGciOiJSUzI1NiJ9.e30.x", "RS256"},
		{"eyJhbGciOiJSUzI1NiJ9", ""},
		{"eyJhbGciOiJSUzI1NiJ9=.e30.x", ""},
		{"bm90IGpzb24.e30.x", ""},
		{".e30.x", ""},
	} {
		if got := tokenAlg(tc.tok); got != tc.want {
			t.Errorf("tokenAlg(%q) = %q, want %q", tc.tok, got, tc.want)
		}
	}
}
