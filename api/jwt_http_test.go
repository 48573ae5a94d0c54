package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ourway/auth/policy"
)

// fakeKeys is a KeyResolver: keys map to handles or errors.
type fakeKeys struct {
	handles   map[policy.KeyHash]policy.KeyHash
	errs      map[policy.KeyHash]error
	rotateErr error
	rotated   []policy.KeyHash
	// activeErr is CheckActive's and RevokeOthers' answer.
	activeErr error
	revokers  []policy.KeyHash
}

func (f *fakeKeys) CheckActive(context.Context, policy.KeyHash) error { return f.activeErr }

func (f *fakeKeys) RevokeOthers(_ context.Context, k policy.KeyHash) (int, error) {
	if f.activeErr != nil {
		return 0, f.activeErr
	}
	f.revokers = append(f.revokers, k)
	return 2, nil
}

func (f *fakeKeys) Resolve(_ context.Context, k policy.KeyHash) (policy.KeyHash, error) {
	if err := f.errs[k]; err != nil {
		return "", err
	}
	if h, ok := f.handles[k]; ok {
		return h, nil
	}
	return k, nil
}

func (f *fakeKeys) Rotate(_ context.Context, k policy.KeyHash) (string, time.Time, error) {
	if f.rotateErr != nil {
		return "", time.Time{}, f.rotateErr
	}
	f.rotated = append(f.rotated, k)
	return keyB, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil
}

// unitServer is the API with tokens and fake keys; routes that need the
// policy service are not called.
func unitServer(keys KeyResolver, withTokens bool) *Server {
	cfg := TokenConfig{Secret: []byte(unitSecret), Algorithm: "HS256", TTL: unitTTL, Issuer: unitIssuer, Audience: unitAudience}
	deps := Deps{Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if withTokens {
		deps.Tokens = &cfg
	}
	return New(Config{}, deps)
}

type reply struct {
	status int
	body   string
}

func call(s *Server, method, path, body string, auth ...string) reply {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return reply{rec.Code, rec.Body.String()}
}

func (r reply) message(t *testing.T) string {
	t.Helper()
	var b struct{ Message string }
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return b.Message
}

// token asks the server for a token with key A.
func token(t *testing.T, s *Server, body string) string {
	t.Helper()
	r := call(s, "POST", "/api/token", body, "Bearer "+keyA)
	if r.status != 200 {
		t.Fatalf("POST /api/token: %d %s", r.status, r.body)
	}
	var tr tokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

func TestTokenRoutes(t *testing.T) {
	hA, hB := unitHash(t, keyA), unitHash(t, keyB)
	keys := &fakeKeys{handles: map[policy.KeyHash]policy.KeyHash{}, errs: map[policy.KeyHash]error{}}
	s := unitServer(keys, true)
	full, check := token(t, s, ""), token(t, s, `{"scope":"check"}`)
	if c, err := s.tokens.parse(check); err != nil || c.Scope != scopeCheck || c.Tenant != string(hA) || c.Key != string(hA) {
		t.Fatalf("check token claims %+v, %v", c, err)
	}
	// A missing scope (no body, {}) keeps its documented default: full.
	for _, body := range []string{"", "{}", " { } "} {
		if c, err := s.tokens.parse(token(t, s, body)); err != nil || c.Scope != scopeFull {
			t.Fatalf("token for body %q: %+v, %v; want scope full", body, c, err)
		}
	}

	cases := []struct {
		name         string
		method, path string
		body         string
		auth         []string
		status       int
		msg          string
	}{
		{"token with a token", "POST", "/api/token", "", []string{"Bearer " + full}, 403, "This operation needs the client key, not a token."},
		{"token with a check token", "POST", "/api/v1/token", "", []string{"Bearer " + check}, 403, "This operation needs the client key, not a token."},
		{"rotate with a token", "POST", "/api/keys/rotate", "", []string{"Bearer " + full}, 403, "This operation needs the client key, not a token."},
		{"rotate with a check token", "POST", "/api/keys/rotate", "", []string{"Bearer " + check}, 403, msgCheckScopeForTest},
		{"check token writes", "POST", "/api/role/admin", "", []string{"Bearer " + check}, 403, msgCheckScopeForTest},
		{"check token deletes", "DELETE", "/api/v1/membership/john/admin", "", []string{"Bearer " + check}, 403, msgCheckScopeForTest},
		{"bad scope", "POST", "/api/token", `{"scope":"root"}`, []string{"Bearer " + keyA}, 400, "scope must be full or check"},
		{"trailing data", "POST", "/api/token", `{"scope":"check"}[]`, []string{"Bearer " + keyA}, 400, msgTokenBody},
		{"body too long", "POST", "/api/token", `{"scope":"check"}` + strings.Repeat(" ", maxTokenBody), []string{"Bearer " + keyA}, 400, msgTokenBody},
		{"forged JWT", "GET", "/api/roles", "", []string{"Bearer a.b.c"}, 401, msgBadToken},
		{"JWT in a second header only", "GET", "/api/roles", "", []string{"Bearer x.y.z", "Bearer " + full}, 400, msgDupHeader},
		{"JWT in the first header, another after", "GET", "/api/roles", "", []string{"Bearer " + full, "Bearer x.y.z"}, 400, msgDupHeader},
		{"the same JWT twice", "GET", "/api/roles", "", []string{"Bearer " + full, "Bearer " + full}, 400, msgDupHeader},
		{"client key, then JWT", "GET", "/api/roles", "", []string{"Bearer " + keyA, "Bearer " + full}, 400, msgDupHeader},
		{"the same client key twice", "POST", "/api/token", "", []string{"Bearer " + keyA, "Bearer " + keyA}, 400, msgDupHeader},
		{"an empty second header", "GET", "/api/roles", "", []string{"Bearer " + keyA, ""}, 400, msgDupHeader},
		{"empty scope", "POST", "/api/token", `{"scope":""}`, []string{"Bearer " + keyA}, 400, "scope must be full or check"},
		{"null scope", "POST", "/api/token", `{"scope":null}`, []string{"Bearer " + keyA}, 400, "scope must be full or check"},
		{"null scope in another case", "POST", "/api/token", `{"SCOPE":null}`, []string{"Bearer " + keyA}, 400, "scope must be full or check"},
		{"rotate", "POST", "/api/keys/rotate", "", []string{"Bearer " + keyA}, 200, "Client key rotated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(s, tc.method, tc.path, tc.body, tc.auth...)
			if r.status != tc.status || r.message(t) != tc.msg {
				t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, r.status, r.body, tc.status, tc.msg)
			}
		})
	}
	if len(keys.rotated) != 1 || keys.rotated[0] != hA {
		t.Errorf("rotations = %v, want one of key A", keys.rotated)
	}

	// The key behind a token is resolved on every request: when it stops
	// resolving to the token's tenant, the token stops working.
	t.Run("key now resolves to another tenant", func(t *testing.T) {
		keys.handles[hA] = hB
		defer delete(keys.handles, hA)
		if r := call(s, "GET", "/api/audit", "", "Bearer "+full); r.status != 401 || r.message(t) != msgBadToken {
			t.Errorf("token whose key moved: %d %s", r.status, r.body)
		}
	})
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{policy.ErrKeyRevoked, 401, msgRevokedKey},
		{policy.ErrKeyUnknown, 401, msgUnknownKey},
		{errors.New("database down"), 500, "An internal error occurred"},
	} {
		t.Run("resolve "+tc.err.Error(), func(t *testing.T) {
			keys.errs[hA] = tc.err
			defer delete(keys.errs, hA)
			for _, cred := range []string{keyA, full, check} {
				if r := call(s, "GET", "/api/audit", "", "Bearer "+cred); r.status != tc.status || r.message(t) != tc.msg {
					t.Errorf("%d %s, want %d %q", r.status, r.body, tc.status, tc.msg)
				}
			}
		})
	}
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{policy.ErrKeyUnknown, 409, "This tenant has no data yet: there is nothing to rotate."},
		{policy.ErrKeyRevoked, 401, msgRevokedKey},
		{errors.New("database down"), 500, "An internal error occurred"},
	} {
		t.Run("rotate "+tc.err.Error(), func(t *testing.T) {
			keys.rotateErr = tc.err
			defer func() { keys.rotateErr = nil }()
			if r := call(s, "POST", "/api/keys/rotate", "", "Bearer "+keyA); r.status != tc.status || r.message(t) != tc.msg {
				t.Errorf("%d %s, want %d %q", r.status, r.body, tc.status, tc.msg)
			}
		})
	}
}

const msgCheckScopeForTest = "This token may only check permissions and list; changes need a client key or a full token."

func TestTokensDisabled(t *testing.T) {
	s := unitServer(nil, false)
	for _, tc := range []struct {
		method, path, auth string
		status             int
	}{
		{"POST", "/api/token", "Bearer " + keyA, 404},
		{"POST", "/api/keys/rotate", "Bearer " + keyA, 404},
		{"POST", "/api/keys/revoke_others", "Bearer " + keyA, 404},
		{"GET", "/api/audit", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(unitSecret), goodClaims(t, time.Now())), 401},
	} {
		if r := call(s, tc.method, tc.path, "", tc.auth); r.status != tc.status {
			t.Errorf("%s %s without tokens or keys: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}
}

// The key-management answers: a key in its grace period may not mint
// tokens nor revoke keys (403), a key already rotated may not rotate (409),
// revoke_others answers the count and needs an active client key.
func TestKeyManagementRoutes(t *testing.T) {
	keys := &fakeKeys{handles: map[policy.KeyHash]policy.KeyHash{}, errs: map[policy.KeyHash]error{}}
	s := unitServer(keys, true)
	full, check := token(t, s, ""), token(t, s, `{"scope":"check"}`)
	cases := []struct {
		name         string
		method, path string
		auth         string
		activeErr    error
		rotateErr    error
		status       int
		msg          string
	}{
		{"revoke others", "POST", "/api/keys/revoke_others", keyA, nil, nil, 200, "Revoked 2 other client key(s)"},
		{"revoke others v1", "POST", "/api/v1/keys/revoke_others", keyA, nil, nil, 200, "Revoked 2 other client key(s)"},
		{"revoke others with a token", "POST", "/api/keys/revoke_others", full, nil, nil, 403, "This operation needs the client key, not a token."},
		{"revoke others with a check token", "POST", "/api/keys/revoke_others", check, nil, nil, 403, msgCheckScopeForTest},
		{"revoke others in grace", "POST", "/api/keys/revoke_others", keyA, policy.ErrKeyInGrace, nil, 403, msgKeyInGrace},
		{"revoke others revoked meanwhile", "POST", "/api/keys/revoke_others", keyA, policy.ErrKeyRevoked, nil, 401, msgRevokedKey},
		{"revoke others without a tenant", "POST", "/api/keys/revoke_others", keyA, policy.ErrKeyUnknown, nil, 200, "Revoked 0 other client key(s)"},
		{"token in grace", "POST", "/api/token", keyA, policy.ErrKeyInGrace, nil, 403, msgKeyInGrace},
		{"token revoked meanwhile", "POST", "/api/v1/token", keyA, policy.ErrKeyRevoked, nil, 401, msgRevokedKey},
		{"token database down", "POST", "/api/token", keyA, policy.ErrUnavailable, nil, 503, "The service is temporarily unavailable."},
		{"rotate already rotated", "POST", "/api/keys/rotate", keyA, nil, policy.ErrKeyRotated, 409, "This key has already been rotated."},
		{"revoke others GET", "GET", "/api/keys/revoke_others", keyA, nil, nil, 405, "Method Not Allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys.activeErr, keys.rotateErr = tc.activeErr, tc.rotateErr
			defer func() { keys.activeErr, keys.rotateErr = nil, nil }()
			r := call(s, tc.method, tc.path, "", "Bearer "+tc.auth)
			if r.status != tc.status || r.message(t) != tc.msg {
				t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, r.status, r.body, tc.status, tc.msg)
			}
			if tc.status == 200 && !strings.Contains(r.body, `"data":{"revoked":`) {
				t.Errorf("body %s: want data.revoked", r.body)
			}
		})
	}
	if hA := unitHash(t, keyA); len(keys.revokers) != 2 || keys.revokers[0] != hA {
		t.Errorf("RevokeOthers calls = %v, want two, by key A", keys.revokers)
	}
}
