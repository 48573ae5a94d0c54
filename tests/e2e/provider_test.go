package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourway/auth/internal/jwks/jwkstest"
)

const (
	idpIssuer   = "https://idp.example.test/"
	idpAudience = "auth-api-e2e"
	// Messages of provider tokens naming no usable tenant.
	msgUnknownTenant = "The token names an unknown tenant."
)

var createdTenantRE = regexp.MustCompile(`(?m)^tenant (\d+) created$`)

// createTenantID runs `auth-server tenant create` and returns the tenant's
// id (as printed) and its client key.
func (s *server) createTenantID(t testing.TB) (id, key string) {
	t.Helper()
	code, out, errOut := s.tenantCLI(t, "create")
	m, k := createdTenantRE.FindStringSubmatch(out), createdKeyRE.FindStringSubmatch(out)
	if code != 0 || m == nil || k == nil {
		t.Fatalf("tenant create: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return m[1], k[1]
}

// idpToken signs a provider token for tenant with k; edit changes the
// claims first.
func idpToken(t testing.TB, k jwkstest.Key, tenant any, edit func(c jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": idpIssuer, "aud": idpAudience, "sub": "svc-orders",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "tenant": tenant,
	}
	if edit != nil {
		edit(c)
	}
	return jwkstest.Sign(t, k, c)
}

// TestProviderTokens: with AUTH_JWKS_URL, the tokens of an identity
// provider (a JWKS served by this test process on loopback) act for the
// tenant their claim names, read-only unless their scope says full; tokens
// the provider did not sign, or not for this service, are refused; a key
// rotation at the provider is picked up with one fetch.
func TestProviderTokens(t *testing.T) {
	t.Parallel()
	idp := jwkstest.New(t)
	s := sqliteServer(t, "AUTH_JWKS_URL="+idp.URL(), "AUTH_JWKS_ISSUER="+idpIssuer, "AUTH_JWKS_AUDIENCE="+idpAudience)
	idA, keyA := s.createTenantID(t)
	idB, keyB := s.createTenantID(t)
	for _, role := range []string{"a_admin", "a_viewer"} {
		mustResult(t, s.client(keyA).post(t, "/api/role/"+role), true)
	}
	mustResult(t, s.client(keyB).post(t, "/api/role/b_only"), true)

	t.Run("accepted for the named tenant", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			k      jwkstest.Key
			tenant any
			want   []string
		}{
			{"RS256, tenant A by id", idp.RSA, idA, []string{"a_admin", "a_viewer"}},
			{"ES256, tenant B by id", idp.EC, idB, []string{"b_only"}},
			{"EdDSA, tenant A by handle", idp.Ed, keyHash(t, keyA), []string{"a_admin", "a_viewer"}},
		} {
			tok := idpToken(t, tc.k, tc.tenant, nil)
			sameSet(t, tc.name, resultField(t, s.client(tok).get(t, "/api/roles"), "role"), tc.want)
		}
	})

	t.Run("scope", func(t *testing.T) {
		readOnly := idpToken(t, idp.RSA, idA, nil)
		expectError(t, s.client(readOnly).post(t, "/api/role/from_idp"), 403, msgCheckScope)
		full := idpToken(t, idp.RSA, idA, func(c jwt.MapClaims) { c["scope"] = "openid full" })
		mustResult(t, s.client(full).post(t, "/api/role/from_idp"), true)
		sameSet(t, "A's roles seen with A's key", resultField(t, s.client(keyA).get(t, "/api/roles"), "role"),
			[]string{"a_admin", "a_viewer", "from_idp"})
		sameSet(t, "B's roles", resultField(t, s.client(keyB).get(t, "/api/roles"), "role"), []string{"b_only"})
		expectError(t, s.requestToken(t, full, ""), 403, msgNeedsKey)
		expectError(t, s.client(full).post(t, "/api/keys/rotate"), 403, msgNeedsKey)
	})

	t.Run("refused", func(t *testing.T) {
		pub, err := x509.MarshalPKIXPublicKey(idp.RSA.Private.Public())
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		hmacWith := func(secret []byte) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"iss": idpIssuer, "aud": idpAudience, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "tenant": idA})
			tok.Header["kid"] = idp.RSA.ID
			str, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			return str
		}
		ecKidRSAKey := jwkstest.Key{ID: idp.EC.ID, Private: idp.RSA.Private, Method: jwt.SigningMethodRS256}
		for _, tc := range []struct {
			name, tok, msg string
		}{
			{"wrong iss", idpToken(t, idp.RSA, idA, func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" }), msgBadToken},
			{"wrong aud", idpToken(t, idp.RSA, idA, func(c jwt.MapClaims) { c["aud"] = defaultAudience }), msgBadToken},
			{"expired", idpToken(t, idp.RSA, idA, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-5 * time.Minute).Unix() }), msgBadToken},
			{"unknown kid", idpToken(t, jwkstest.NewKey(t, "rsa", "rsa-unknown"), idA, nil), msgBadToken},
			{"RS256 with the kid of the EC key", idpToken(t, ecKidRSAKey, idA, nil), msgBadToken},
			{"HS256 with the provider's PEM public key", hmacWith(pemKey), msgBadToken},
			{"HS256 with the provider's DER public key", hmacWith(pub), msgBadToken},
			{"unknown tenant id", idpToken(t, idp.RSA, "999999", nil), msgUnknownTenant},
			{"a client key as tenant", idpToken(t, idp.RSA, keyA, nil), msgUnknownTenant},
		} {
			expectError(t, s.client(tc.tok).get(t, "/api/roles"), 401, tc.msg)
		}
		// Two Authorization headers, a provider token in either.
		tok := idpToken(t, idp.RSA, idA, nil)
		expectError(t, s.do(t, "GET", "/api/roles", "Authorization: Bearer "+tok, "Authorization: Bearer "+keyB), 400, msgDupHeader)
		// The service's own tokens keep working beside the provider's.
		expect(t, s.client(s.issueToken(t, keyB, "check")).get(t, "/api/roles"), 200, res(`[{"description":null,"role":"b_only"}]`))
	})

	t.Run("rotation at the provider", func(t *testing.T) {
		next := jwkstest.NewKey(t, "ec", "ec-2")
		oldTok := idpToken(t, idp.RSA, idA, nil)
		idp.Publish(next, idp.Ed) // the RSA and the first EC key are withdrawn
		before := idp.Fetches()
		tok := idpToken(t, next, idA, nil)
		// Unknown kids refresh at most once every 10 s: poll until the new
		// key is picked up.
		deadline := time.Now().Add(30 * time.Second)
		polls := 0
		for {
			r, err := s.send("GET", "/api/roles", "Authorization: Bearer "+tok)
			if err != nil {
				t.Fatal(err)
			}
			polls++
			if r.status == 200 {
				break
			}
			expectError(t, r, 401, msgBadToken)
			if time.Now().After(deadline) {
				t.Fatalf("the new key was not picked up within 30s (%d fetches)", idp.Fetches()-before)
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
		if n := idp.Fetches() - before; n != 1 {
			t.Errorf("%d fetches for %d requests with the new kid, want 1", n, polls)
		}
		expectError(t, s.client(oldTok).get(t, "/api/roles"), 401, msgBadToken)
		t.Logf("new kid accepted after %d requests and %d fetch", polls, idp.Fetches()-before)
		// The fetches are counted in /metrics.
		m := s.do(t, "GET", "/metrics")
		if want := fmt.Sprintf("\nauth_jwks_fetches_total %d\n", idp.Fetches()); m.status != 200 || !strings.Contains(string(m.body), want) {
			t.Errorf("GET /metrics: %d, want a line %q", m.status, strings.TrimSpace(want))
		}
	})
}

// TestProviderSettingsRequired: AUTH_JWKS_URL without the issuer or the
// audience, or over plain http to a remote host, refuses to start and names
// the setting.
func TestProviderSettingsRequired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     []string
		setting string
	}{
		{"issuer missing", []string{"AUTH_JWKS_URL=https://idp.example.test/jwks", "AUTH_JWKS_AUDIENCE=a"}, "AUTH_JWKS_ISSUER"},
		{"audience missing", []string{"AUTH_JWKS_URL=https://idp.example.test/jwks", "AUTH_JWKS_ISSUER=i"}, "AUTH_JWKS_AUDIENCE"},
		{"plain http", []string{"AUTH_JWKS_URL=http://idp.example.test/jwks", "AUTH_JWKS_ISSUER=i", "AUTH_JWKS_AUDIENCE=a"}, "AUTH_JWKS_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stderr := startFailure(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), tc.env...))
			if !strings.Contains(stderr, tc.setting) {
				t.Errorf("stderr does not name %s:\n%s", tc.setting, stderr)
			}
		})
	}
}
