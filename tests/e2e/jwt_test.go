package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Messages of the token and key checks.
const (
	msgBadToken   = "Invalid or expired token."
	msgUnknownKey = "Unknown client key."
	msgRevoked    = "Client key has been revoked or has expired."
	msgCheckScope = "This token may only check permissions and list; changes need a client key or a full token."
	msgNeedsKey   = "This operation needs the client key, not a token."
	msgTokenBody  = `The body must be a JSON object such as {"scope":"check"}.`
	msgBadScope   = "scope must be full or check"
	msgDupHeader  = "Send one Authorization header, not several."
	// The defaults of config.yaml.
	defaultIssuer   = "auth-server"
	defaultAudience = "auth-api"
)

// requestToken sends POST /api/token with credential cred and body (none
// when empty).
func (s *server) requestToken(t testing.TB, cred, body string) response {
	t.Helper()
	headers := []string{"Authorization: Bearer " + cred}
	var b []byte
	if body != "" {
		b = []byte(body)
		headers = append(headers, "Content-Type: application/json")
	}
	return s.doBody(t, "POST", "/api/token", b, headers...)
}

type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   *int64 `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// issueToken asks for a token of scope ("" for the default) with key.
func (s *server) issueToken(t testing.TB, key, scope string) string {
	t.Helper()
	body := ""
	if scope != "" {
		body = `{"scope":"` + scope + `"}`
	}
	r := s.requestToken(t, key, body)
	var tr tokenReply
	decode(t, r, &tr)
	if tr.AccessToken == "" {
		t.Fatalf("POST /api/token: no access_token in %s", r.body)
	}
	return tr.AccessToken
}

// unverified decodes a token without checking it.
func unverified(t testing.TB, tok string) (header map[string]any, claims jwt.MapClaims) {
	t.Helper()
	claims = jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	if err != nil {
		t.Fatalf("decode token %q: %v", tok, err)
	}
	return parsed.Header, claims
}

// forge signs claims with method and key.
func forge(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// claimsFor are the claims the server would put in a full token for key
// (lifetime 5 minutes, within every test server's JWT_ACCESS_TOKEN_EXPIRE_MINUTES).
func claimsFor(t testing.TB, key string, now time.Time) jwt.MapClaims {
	h := keyHash(t, key)
	var id [16]byte
	_, _ = rand.Read(id[:])
	return jwt.MapClaims{
		"iss": defaultIssuer, "aud": []string{defaultAudience}, "sub": "tenant",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": hex.EncodeToString(id[:]), "tenant": h, "ckh": h, "scope": "full",
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	s := sqliteServer(t, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES=7")
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s *server)
	}{
		{"Issuance", testTokenIssuance},
		{"EveryRouteWithFullToken", testFullTokenRoutes},
		{"CheckScope", testCheckScope},
		{"TokenNeedsClientKey", testTokenNeedsClientKey},
		{"BadBodies", testTokenBadBodies},
		{"HeaderForms", testTokenHeaderForms},
		{"Forged", testForgedTokens},
		{"TenantIsolation", testTokenTenantIsolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

// testTokenIssuance: the response shape, and the claims of the token.
func testTokenIssuance(t *testing.T, s *server) {
	key := newKey(t)
	jtis := map[string]bool{}
	for _, tc := range []struct{ body, scope string }{
		{"", "full"}, {"{}", "full"}, {`{"scope":"full"}`, "full"}, {`{"scope":"check"}`, "check"},
		{`  {"scope":"check"}  `, "check"}, {"", "full"},
	} {
		before := time.Now().Add(-time.Second).Unix()
		r := s.requestToken(t, key, tc.body)
		if r.status != 200 {
			t.Fatalf("POST /api/token %q: %s", tc.body, r)
		}
		checkJSONType(t, r)
		if keys, err := topKeys(r.body); err != nil || !slices.Equal(keys, []string{"access_token", "expires_in", "token_type"}) {
			t.Errorf("body keys = %v (%v), want access_token, expires_in, token_type: %s", keys, err, r.body)
		}
		var tr tokenReply
		decode(t, r, &tr)
		if tr.TokenType != "bearer" || tr.ExpiresIn == nil || *tr.ExpiresIn != 7*60 {
			t.Errorf("token_type %q expires_in %v, want bearer and 420: %s", tr.TokenType, tr.ExpiresIn, r.body)
		}
		header, c := unverified(t, tr.AccessToken)
		if header["alg"] != "HS256" || header["typ"] != "JWT" {
			t.Errorf("header = %v, want alg HS256, typ JWT", header)
		}
		// Signed with JWT_SECRET_KEY.
		if _, err := jwt.Parse(tr.AccessToken, func(*jwt.Token) (any, error) { return []byte(testJWTSecret), nil },
			jwt.WithValidMethods([]string{"HS256"})); err != nil {
			t.Errorf("token does not verify with JWT_SECRET_KEY: %v", err)
		}
		if c["iss"] != defaultIssuer {
			t.Errorf("iss = %v, want %q", c["iss"], defaultIssuer)
		}
		if aud, err := c.GetAudience(); err != nil || !slices.Equal([]string(aud), []string{defaultAudience}) {
			t.Errorf("aud = %v (%v), want [%s]", c["aud"], err, defaultAudience)
		}
		iat, _ := c.GetIssuedAt()
		exp, _ := c.GetExpirationTime()
		if iat == nil || exp == nil {
			t.Fatalf("iat %v exp %v: both required", c["iat"], c["exp"])
		}
		if got := exp.Sub(iat.Time); got != 7*time.Minute {
			t.Errorf("exp - iat = %v, want 7m (JWT_ACCESS_TOKEN_EXPIRE_MINUTES)", got)
		}
		if iat.Unix() < before || iat.Unix() > time.Now().Add(time.Second).Unix() {
			t.Errorf("iat = %v, want now", iat)
		}
		jti, _ := c["jti"].(string)
		if len(jti) < 16 || jtis[jti] {
			t.Errorf("jti %q: want a long unique id", jti)
		}
		jtis[jti] = true
		if c["tenant"] != keyHash(t, key) || c["ckh"] != keyHash(t, key) || c["scope"] != tc.scope {
			t.Errorf("tenant %v ckh %v scope %v; want the key's hash twice and scope %s", c["tenant"], c["ckh"], c["scope"], tc.scope)
		}
		if strings.Contains(r.String()+string(decodedPayload(t, tr.AccessToken)), key) {
			t.Errorf("the client key is in the token or the response")
		}
	}

	// Issuance is audited.
	s.client(key).waitAudit(t, "action=ISSUE_TOKEN", "6 ISSUE_TOKEN records", func(es []auditEntry) bool { return len(es) == 6 })

	// Another algorithm, issuer and audience: the tokens of one server are
	// refused by the other although the secret is the same.
	other := sqliteServer(t, "JWT_ALGORITHM=HS512", "AUTH_JWT_ISSUER=issuer-two", "AUTH_JWT_AUDIENCE=audience-two")
	tok2 := other.issueToken(t, key, "")
	header, c := unverified(t, tok2)
	if header["alg"] != "HS512" || c["iss"] != "issuer-two" {
		t.Errorf("HS512 server: alg %v iss %v", header["alg"], c["iss"])
	}
	if aud, _ := c.GetAudience(); !slices.Equal([]string(aud), []string{"audience-two"}) {
		t.Errorf("HS512 server: aud %v", c["aud"])
	}
	expect(t, other.client(tok2).get(t, "/api/roles"), 200, res("[]"))
	expectError(t, s.client(tok2).get(t, "/api/roles"), 401, msgBadToken)
	expectError(t, other.client(s.issueToken(t, key, "")).get(t, "/api/roles"), 401, msgBadToken)
}

func decodedPayload(t testing.TB, tok string) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	return b
}

// route is a method and a path under /api (or /api/v1 once prefixed).
type route struct{ method, path string }

// writeRoutes are every change route, on names set up by setupTenant.
var writeRoutes = []route{
	{"POST", "/role/extra"},
	{"DELETE", "/role/base"},
	{"POST", "/permission/admin/write"},
	{"DELETE", "/permission/admin/read"},
	{"POST", "/membership/jane/admin"},
	{"DELETE", "/membership/john/admin"},
	{"POST", "/role/base/parents/extra"},
	{"DELETE", "/role/admin/parents/base"},
	{"POST", "/keys/rotate"},
}

// readRoutes are every read route (readAllRoutes plus the audit trail),
// without the /api prefix.
func readRoutes() []string {
	var out []string
	for _, p := range readAllRoutes {
		out = append(out, strings.TrimPrefix(p, "/api"))
	}
	return append(out, "/audit?limit=5")
}

// setupTenant gives key roles admin and base (admin inherits base), grants
// admin read and base view, and makes john an admin.
func setupTenant(t testing.TB, s *server, key string) {
	t.Helper()
	c := s.client(key)
	for _, p := range []string{"/api/role/admin", "/api/role/base", "/api/permission/admin/read",
		"/api/permission/base/view", "/api/membership/john/admin", "/api/role/admin/parents/base"} {
		mustResult(t, c.post(t, p), true)
	}
}

// snapshot is every read route's answer for a tenant (timestamps and the
// audit trail left out).
func snapshot(t testing.TB, c client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range readAllRoutes {
		r := c.get(t, p)
		if r.status != 200 {
			t.Fatalf("GET %s: %s", p, r)
		}
		out[p] = normalized(t, r)
	}
	return out
}

// testFullTokenRoutes: a full token works as Bearer on every route, reads
// and writes, under both prefixes, on the tenant of its key.
func testFullTokenRoutes(t *testing.T, s *server) {
	for _, prefix := range prefixes {
		t.Run(prefix, func(t *testing.T) {
			key := newKey(t)
			setupTenant(t, s, key)
			tc := s.client(s.issueToken(t, key, ""))
			for _, p := range readRoutes() {
				if r := tc.get(t, prefix+p); r.status != 200 {
					t.Errorf("full token: %s", r)
				}
			}
			if !hasPermission(t, tc.get(t, prefix+"/has_permission/john/view")) {
				t.Errorf("full token: john cannot view (inherited through admin)")
			}
			for _, w := range writeRoutes {
				if w.path == "/keys/rotate" {
					continue // needs the client key itself
				}
				r := tc.call(t, w.method, prefix+w.path)
				if r.status != 200 {
					t.Errorf("full token: %s", r)
				}
			}
			// The changes were made in the key's tenant.
			kc := s.client(key)
			sameSet(t, "roles after writes with the token", resultField(t, kc.get(t, "/api/roles"), "role"), []string{"admin", "extra"})
			sameSet(t, "admin's permissions", rolePermissionNames(t, kc.get(t, "/api/role_permissions/admin")), []string{"write"})
			sameSet(t, "admin's members", resultField(t, kc.get(t, "/api/members/admin"), "user"), []string{"jane"})
			r := kc.get(t, "/api/role/base/parents")
			expect(t, r, 200, res(`[]`)) // base was deleted with its links
		})
	}
}

// testCheckScope: a check-scope token reads everything and changes nothing.
func testCheckScope(t *testing.T, s *server) {
	key := newKey(t)
	setupTenant(t, s, key)
	kc := s.client(key)
	before := snapshot(t, kc)
	tok := s.issueToken(t, key, "check")
	cc := s.client(tok)
	for _, prefix := range prefixes {
		for _, w := range writeRoutes {
			r := cc.call(t, w.method, prefix+w.path)
			expectError(t, r, 403, msgCheckScope)
		}
		// Refused before the name is looked at.
		expectError(t, cc.post(t, prefix+"/role/bad.name"), 403, msgCheckScope)
		expectError(t, cc.post(t, prefix+"/token"), 403, msgNeedsKey)
		for _, p := range readRoutes() {
			r := cc.get(t, prefix+p)
			if r.status != 200 {
				t.Errorf("check token: %s", r)
				continue
			}
			if want, ok := before["/api"+p]; ok && normalized(t, r) != want {
				t.Errorf("check token GET %s%s = %s, want what the key reads: %s", prefix, p, normalized(t, r), want)
			}
		}
		if r := cc.call(t, "HEAD", prefix+"/roles"); r.status != 200 {
			t.Errorf("check token: %s", r)
		}
	}
	if !hasPermission(t, cc.get(t, "/api/has_permission/john/read")) {
		t.Errorf("check token: john cannot read")
	}
	after := snapshot(t, kc)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("GET %s changed after check-token writes:\nbefore %s\nafter  %s", p, b, after[p])
		}
	}
	// The refusals are in the tenant's audit trail.
	want := 2 * (len(writeRoutes) + 2)
	kc.waitAudit(t, "", fmt.Sprint(want, " forbidden records"), func(es []auditEntry) bool {
		forbidden := 0
		for _, e := range es {
			if !e.Success && e.Details["reason"] == "forbidden" {
				forbidden++
			}
		}
		return forbidden == want
	})
}

// testTokenNeedsClientKey: tokens cannot mint tokens or rotate the key.
func testTokenNeedsClientKey(t *testing.T, s *server) {
	key := newKey(t)
	setupTenant(t, s, key)
	for _, scope := range []string{"full", "check"} {
		tok := s.issueToken(t, key, scope)
		for _, body := range []string{"", `{"scope":"check"}`, `{"scope":"full"}`} {
			expectError(t, s.requestToken(t, tok, body), 403, msgNeedsKey)
		}
		want := msgNeedsKey
		if scope == "check" {
			want = msgCheckScope
		}
		for _, prefix := range prefixes {
			expectError(t, s.client(tok).post(t, prefix+"/keys/rotate"), 403, want)
		}
	}
	// The key still works: nothing was rotated.
	expect(t, s.client(key).get(t, "/api/role/admin/parents"), 200, res(`[{"parent":"base","role":"admin"}]`))
}

// testTokenBadBodies: POST /api/token takes nothing, {}, or {"scope":…}.
func testTokenBadBodies(t *testing.T, s *server) {
	key := newKey(t)
	for _, tc := range []struct{ body, msg string }{
		{`{"scope":"admin"}`, msgBadScope},
		// A scope named but not given is not the (full) default.
		{`{"scope":""}`, msgBadScope},
		{`{"scope":null}`, msgBadScope},
		{`{"Scope":null}`, msgBadScope},
		{`{"scope":"CHECK"}`, msgBadScope},
		{`{"scope":" check"}`, msgBadScope},
		{`{"scope":1}`, msgTokenBody},
		{`{"scope":["check"]}`, msgTokenBody},
		{`{"scope":"check","extra":1}`, msgTokenBody},
		{`{"Scope":"check","ttl":999999}`, msgTokenBody},
		{`not json`, msgTokenBody},
		{`{`, msgTokenBody},
		{`[]`, msgTokenBody},
		{`"check"`, msgTokenBody},
		{`null`, msgTokenBody},
		{`{"scope":"check"}{"scope":"full"}`, msgTokenBody},
		{`{"scope":"check"} x`, msgTokenBody},
		{`{"scope":"check"}}`, msgTokenBody},
		{strings.Repeat(" ", 5000) + `{"scope":"check"}`, msgTokenBody},
		{`{"scope":"check"}` + strings.Repeat(" ", 5000), msgTokenBody},
		{strings.Repeat(" ", 5000), msgTokenBody},
	} {
		r := s.requestToken(t, key, tc.body)
		expectError(t, r, 400, tc.msg)
	}
	// A body that is not JSON at all.
	r := s.doBody(t, "POST", "/api/token", []byte("scope=check"), "Authorization: Bearer "+key, "Content-Type: application/x-www-form-urlencoded")
	expectError(t, r, 415, "")
	// The gate comes first.
	expectError(t, s.doBody(t, "POST", "/api/token", []byte(`{"scope":"admin"}`), "Content-Type: application/json"), 401, msgMissing)
}

// testTokenHeaderForms: a token is read from the Authorization header as a
// client key is, in the same forms; two such headers are refused.
func testTokenHeaderForms(t *testing.T, s *server) {
	key := newKey(t)
	setupTenant(t, s, key)
	tok := s.issueToken(t, key, "")
	want := res(`[{"parent":"base","role":"admin"}]`)
	for _, h := range []string{"bearer " + tok, "BEARER " + tok, "Bearer    " + tok, "Bearer\t" + tok} {
		expect(t, s.do(t, "GET", "/api/role/admin/parents", "Authorization: "+h), 200, want)
	}
	for _, h := range []string{"Basic " + tok, "Bearer " + tok + " x", "Token " + tok} {
		expectError(t, s.do(t, "GET", "/api/role/admin/parents", "Authorization: "+h), 401, msgBadFormat)
	}
	// Two Authorization headers are refused, whichever comes first: a
	// proxy and this server could each read another one.
	for _, pair := range [][2]string{
		{"Bearer x.y.z", "Bearer " + tok}, {"Basic x", "Bearer " + tok}, {"Bearer " + tok, "Bearer x.y.z"},
		{"Bearer " + tok, "Bearer " + tok}, {"Bearer " + key, "Bearer " + tok}, {"Bearer " + key, "Bearer " + key},
	} {
		expectError(t, s.do(t, "GET", "/api/role/admin/parents", "Authorization: "+pair[0], "Authorization: "+pair[1]), 400, msgDupHeader)
	}
}

// testForgedTokens is the negative suite: every token the server did not
// issue, or no longer accepts, answers 401 without echoing it.
func testForgedTokens(t *testing.T, s *server) {
	key, other := newKey(t), newKey(t)
	setupTenant(t, s, key)
	setupTenant(t, s, other)
	secret := []byte(testJWTSecret)
	now := time.Now()
	with := func(edit func(c jwt.MapClaims)) jwt.MapClaims {
		c := claimsFor(t, key, now)
		edit(c)
		return c
	}
	hs := func(c jwt.MapClaims) string { return forge(t, jwt.SigningMethodHS256, secret, c) }

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	good := hs(claimsFor(t, key, now))
	parts := strings.Split(good, ".")
	tamperedSig := []byte(good)
	if i := len(parts[0]) + len(parts[1]) + 10; tamperedSig[i] == 'A' {
		tamperedSig[i] = 'B'
	} else {
		tamperedSig[i] = 'A'
	}
	checkClaims, _ := json.Marshal(with(func(c jwt.MapClaims) { c["scope"] = "check" }))
	checkTok := hs(with(func(c jwt.MapClaims) { c["scope"] = "check" }))
	cp := strings.Split(checkTok, ".")
	fullClaims, _ := json.Marshal(claimsFor(t, key, now))
	_ = checkClaims

	// Controls: the forgery is right when it should be.
	for name, tok := range map[string]string{
		"forged like the server": good,
		"expired within the leeway": hs(with(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-4*time.Minute).Unix(), now.Add(-10*time.Second).Unix()
		})),
		"nbf in the future, within it":  hs(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })),
		"new namespace, its own tenant": hs(claimsFor(t, newKey(t), now)),
	} {
		if r := s.client(tok).get(t, "/api/roles"); r.status != 200 {
			t.Errorf("control %q: %s", name, r)
		}
	}

	cases := []struct{ name, token string }{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor(t, key, now))},
		{"HS256 with the RSA public key PEM as secret", forge(t, jwt.SigningMethodHS256, rsaPEM, claimsFor(t, key, now))},
		{"RS256", forge(t, jwt.SigningMethodRS256, rsaKey, claimsFor(t, key, now))},
		{"HS512 with the secret", forge(t, jwt.SigningMethodHS512, secret, claimsFor(t, key, now))},
		{"another secret", forge(t, jwt.SigningMethodHS256, []byte("e2e-jwt-0000000000000000000000000000000000"), claimsFor(t, key, now))},
		{"expired", hs(with(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-6*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
		}))},
		{"nbf in the future", hs(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() }))},
		{"iat in the future", hs(with(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(2*time.Minute).Unix(), nil, now.Add(6*time.Minute).Unix()
		}))},
		{"wrong aud", hs(with(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} }))},
		{"no aud", hs(with(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong iss", hs(with(func(c jwt.MapClaims) { c["iss"] = "someone-else" }))},
		{"no iss", hs(with(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"tampered signature", string(tamperedSig)},
		{"check token with full claims", cp[0] + "." + base64.RawURLEncoding.EncodeToString(fullClaims) + "." + cp[2]},
		{"no signature", parts[0] + "." + parts[1] + "."},
		{"oversized", hs(with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 5000) }))},
		{"missing exp", hs(with(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"missing iat", hs(with(func(c jwt.MapClaims) { delete(c, "iat") }))},
		{"lifetime longer than issued", hs(with(func(c jwt.MapClaims) { c["exp"] = now.Add(2 * time.Hour).Unix() }))},
		{"missing tenant", hs(with(func(c jwt.MapClaims) { delete(c, "tenant") }))},
		{"missing ckh", hs(with(func(c jwt.MapClaims) { delete(c, "ckh") }))},
		{"missing scope", hs(with(func(c jwt.MapClaims) { delete(c, "scope") }))},
		{"missing jti", hs(with(func(c jwt.MapClaims) { delete(c, "jti") }))},
		{"scope admin", hs(with(func(c jwt.MapClaims) { c["scope"] = "admin" }))},
		{"scope Check", hs(with(func(c jwt.MapClaims) { c["scope"] = "Check" }))},
		{"tenant of another key", hs(with(func(c jwt.MapClaims) { c["tenant"] = keyHash(t, other) }))},
		{"key of another tenant", hs(with(func(c jwt.MapClaims) { c["ckh"] = keyHash(t, other) }))},
		{"tenant of a new namespace", hs(with(func(c jwt.MapClaims) { c["tenant"] = keyHash(t, newKey(t)) }))},
		{"ckh is the client key", hs(with(func(c jwt.MapClaims) { c["ckh"] = key }))},
		{"plain claims, no JWT", "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(fullClaims) + "."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			payload := strings.Split(tc.token, ".")[1]
			for _, rt := range []route{{"GET", "/api/roles"}, {"GET", "/api/v1/has_permission/john/read"},
				{"POST", "/api/v1/role/forged"}, {"DELETE", "/api/role/admin"}, {"POST", "/api/token"},
				{"POST", "/api/keys/rotate"}, {"GET", "/api/audit"}} {
				r := s.client(tc.token).call(t, rt.method, rt.path)
				expectError(t, r, 401, msgBadToken)
				if len(payload) > 8 && strings.Contains(string(r.body), payload[:8]) {
					t.Errorf("%s: the body echoes the token: %s", rt.path, r.body)
				}
			}
		})
	}
	// Nothing was changed by the forgeries.
	sameSet(t, "roles after forged writes", resultField(t, s.client(key).get(t, "/api/roles"), "role"), []string{"admin", "base"})
}

// testTokenTenantIsolation: a token reads and writes its own tenant only.
func testTokenTenantIsolation(t *testing.T, s *server) {
	a, b := newKey(t), newKey(t)
	setupTenant(t, s, a)
	tb := s.client(s.issueToken(t, b, ""))
	expect(t, tb.get(t, "/api/roles"), 200, res(`[]`))
	mustResult(t, tb.post(t, "/api/role/b_only"), true)
	sameSet(t, "a's roles", resultField(t, s.client(a).get(t, "/api/roles"), "role"), []string{"admin", "base"})
	sameSet(t, "b's roles", resultField(t, s.client(b).get(t, "/api/roles"), "role"), []string{"b_only"})
}

// TestJWTSecretRequired: outside development mode the server refuses to
// start without JWT_SECRET_KEY, with a weak one or with the audit key as
// JWT secret (and never prints it);
// in development mode it starts without one.
func TestJWTSecretRequired(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, secret string
		extra        []string
	}{
		{"missing", "", nil},
		{"missing, production named", "", []string{"AUTH_ENV=production"}},
		{"changeme", "changeme", nil},
		{"changeme padded", "changeme-changeme-changeme-changeme-changeme", nil},
		{"change_me padded", "please_change_me_0123456789abcdef01234567", nil},
		{"short", "k3Yq9vX2", nil},
		{"31 random characters", "a8f3c1e9b7d2f4a6c0e8b1d3f5a7c9e", nil},
		{"original default", "default_secret_key_for_development", nil},
		{"one repeated character", strings.Repeat("z", 48), nil},
		{"a short sequence repeated", strings.Repeat("ab", 24), nil},
		{"an ascending run", "0123456789abcdefghijklmnopqrstuvwxyz", nil},
		{"equal to the audit key", testAuditKey, nil},
		{"equal to the audit key file", testAuditKey, []string{"AUTH_AUDIT_KEY=", "AUTH_AUDIT_KEY_FILE=" + auditKeyFile(t)}},
		{"placeholder in development mode", "default_secret_key_for_development", []string{"AUTH_ENV=development"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), append([]string{"JWT_SECRET_KEY=" + tc.secret}, tc.extra...)...)
			stderr := startFailure(t, env)
			if !strings.Contains(stderr, "JWT_SECRET_KEY") {
				t.Errorf("stderr does not name JWT_SECRET_KEY:\n%s", stderr)
			}
			if tc.secret != "" && strings.Contains(stderr, tc.secret) {
				t.Errorf("stderr shows the secret:\n%s", stderr)
			}
		})
	}
	t.Run("development mode without a secret", func(t *testing.T) {
		t.Parallel()
		s := sqliteServer(t, "AUTH_ENV=development", "JWT_SECRET_KEY=")
		key := newKey(t)
		tok := s.issueToken(t, key, "check")
		expect(t, s.client(tok).get(t, "/api/roles"), 200, res(`[]`))
		// Signed with a key of its own, not a known default.
		for _, secret := range []string{testJWTSecret, "", "default_secret_key_for_development", "changeme"} {
			forged := forge(t, jwt.SigningMethodHS256, []byte(secret), claimsFor(t, key, time.Now()))
			expectError(t, s.client(forged).get(t, "/api/roles"), 401, msgBadToken)
		}
		if !strings.Contains(s.stderr.String(), "JWT_SECRET_KEY") {
			t.Errorf("no warning about the missing JWT_SECRET_KEY in the log")
		}
	})
	t.Run("a strong secret starts", func(t *testing.T) {
		t.Parallel()
		secret := fmt.Sprintf("%x", sha256.Sum256([]byte(t.Name())))
		s := sqliteServer(t, "JWT_SECRET_KEY="+secret)
		key := newKey(t)
		tok := s.issueToken(t, key, "")
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
			t.Errorf("token not signed with JWT_SECRET_KEY: %v", err)
		}
		if strings.Contains(s.stderr.String(), secret) {
			t.Errorf("the log shows JWT_SECRET_KEY")
		}
	})
}

// auditKeyFile writes the test audit key to a file and returns its path.
func auditKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit-key")
	if err := os.WriteFile(p, []byte(testAuditKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
