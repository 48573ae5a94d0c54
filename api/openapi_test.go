package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/api"
	"github.com/ourway/auth/api/openapitest"
	"github.com/ourway/auth/internal/metrics"
)

// v2RoutesPending is true while API v2 is documented but its routes are
// not all registered yet: documented /api/v2 operations without a route are
// then only logged. Set it to false once every v2 route is registered, so
// that the document and the routes must match exactly.
const v2RoutesPending = false

// fullServer is a server with every optional route registered (/metrics
// beside the API).
func fullServer(t *testing.T) *echo.Echo {
	t.Helper()
	s := api.New(api.Config{}, api.Deps{Metrics: metrics.New()})
	e, ok := s.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("Handler is %T, want *echo.Echo", s.Handler())
	}
	return e
}

func validator(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.New(api.OpenAPIDocument())
	if err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return v
}

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPICoversRoutes: every route registered is documented, and every
// documented operation is registered. A HEAD route is covered by its GET
// (the document says every GET also answers HEAD); the /api/v1 twins are
// documented as paths of their own (x-alias-of names the /api path).
func TestOpenAPICoversRoutes(t *testing.T) {
	documented := map[string]bool{}
	for _, op := range validator(t).Operations() {
		documented[op] = true
	}
	registered := map[string]bool{}
	for _, r := range fullServer(t).Routes() {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		registered[method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var undocumented, missing, pending []string
	for op := range registered {
		if !documented[op] {
			undocumented = append(undocumented, op)
		}
	}
	for op := range documented {
		if registered[op] {
			continue
		}
		if _, path, _ := strings.Cut(op, " "); v2RoutesPending && strings.HasPrefix(path, api.V2Prefix+"/") {
			pending = append(pending, op)
			continue
		}
		missing = append(missing, op)
	}
	sort.Strings(undocumented)
	sort.Strings(missing)
	sort.Strings(pending)
	if len(undocumented) > 0 {
		t.Errorf("routes registered but not in the OpenAPI document (add them to api/openapi_schema.go):\n  %s",
			strings.Join(undocumented, "\n  "))
	}
	if len(missing) > 0 {
		t.Errorf("operations in the OpenAPI document that no route serves:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(pending) > 0 {
		t.Logf("v2 operations documented, not registered yet (v2RoutesPending):\n  %s", strings.Join(pending, "\n  "))
	}
	// The table has v1 routes, each served twice: the document must hold them.
	for _, p := range []string{"GET /api/roles", "GET /api/v1/roles", "POST /api/token", "POST /api/v1/keys/rotate",
		"GET /api/audit", "GET /ping", "GET /health", "GET /ready", "GET /metrics", "GET /openapi.json", "GET /docs"} {
		if !documented[p] {
			t.Errorf("%s is not documented", p)
		}
	}
}

// TestOpenAPIDocumentsV2 holds the document to docs/api-v2.md: every v2
// route, and every error reason.
func TestOpenAPIDocumentsV2(t *testing.T) {
	v := validator(t)
	documented := map[string]bool{}
	for _, op := range v.Operations() {
		documented[op] = true
	}
	for _, op := range []string{
		"GET /roles", "POST /roles", "GET /roles/{role}", "PUT /roles/{role}", "DELETE /roles/{role}",
		"GET /roles/{role}/permissions", "PUT /roles/{role}/permissions/{permission}", "DELETE /roles/{role}/permissions/{permission}",
		"GET /roles/{role}/members", "PUT /roles/{role}/members/{user}", "DELETE /roles/{role}/members/{user}",
		"GET /roles/{role}/parents", "PUT /roles/{role}/parents/{parent}", "DELETE /roles/{role}/parents/{parent}",
		"GET /users/{user}/roles", "GET /users/{user}/permissions", "DELETE /users/{user}",
		"GET /permissions/{permission}/roles", "GET /permissions/{permission}/users",
		"GET /check", "POST /check", "GET /policy/export", "POST /policy/import",
	} {
		m, p, _ := strings.Cut(op, " ")
		if !documented[m+" "+api.V2Prefix+p] {
			t.Errorf("%s %s%s is not documented", m, api.V2Prefix, p)
		}
	}
	var reasons []string
	for _, r := range v.Doc()["components"].(map[string]any)["schemas"].(map[string]any)["ErrorV2"].(map[string]any)["properties"].(map[string]any)["details"].(map[string]any)["properties"].(map[string]any)["reason"].(map[string]any)["enum"].([]any) {
		reasons = append(reasons, r.(string))
	}
	if !slices.Equal(reasons, api.Reasons) {
		t.Errorf("details.reason enumerates %v, want api.Reasons %v", reasons, api.Reasons)
	}
}

// TestOpenAPIValidatesAnswers: the validator accepts the real shapes and
// refuses others, by status, media type and schema.
func TestOpenAPIValidatesAnswers(t *testing.T) {
	v := validator(t)
	const ts = `"timestamp":"2026-12-06T02:00:00.000000Z"`
	cases := []struct {
		name, method, path string
		status             int
		media, body        string
		wantErr            string // "" for valid
	}{
		{"bare result", "POST", "/api/role/admin", 200, "application/json", `{"result":true}`, ""},
		{"bare result twin", "POST", "/api/v1/role/admin", 200, "application/json", `{"result":false}`, ""},
		{"envelope", "GET", "/api/has_permission/u%40x/read?x=1", 200, "application/json; charset=UTF-8",
			`{"code":200,"data":{"has_permission":true},"message":"m","success":true,` + ts + `}`, ""},
		{"v1 error", "GET", "/api/roles", 401, "application/json",
			`{"code":401,"details":{},"message":"m","success":false,` + ts + `}`, ""},
		{"v1 error with details", "GET", "/api/roles", 401, "application/json",
			`{"code":401,"details":{"reason":"unauthenticated"},"message":"m","success":false,` + ts + `}`, "details"},
		{"v2 error", "GET", "/api/v2/roles/x", 404, "application/json",
			`{"code":404,"details":{"reason":"role_not_found","role":"x"},"message":"m","success":false,` + ts + `}`, ""},
		{"v2 unknown reason", "GET", "/api/v2/roles/x", 404, "application/json",
			`{"code":404,"details":{"reason":"gone"},"message":"m","success":false,` + ts + `}`, "reason"},
		{"extra key", "POST", "/api/role/admin", 200, "application/json", `{"result":true,"x":1}`, "additional"},
		{"wrong type", "GET", "/api/roles", 200, "application/json", `{"result":[{"description":1,"role":"a"}]}`, "description"},
		{"bad timestamp", "GET", "/api/role_permissions/a", 200, "application/json",
			`{"code":200,"data":[],"message":"m","success":true,"timestamp":"2026-12-06T02:00:00Z"}`, "timestamp"},
		{"undocumented status", "GET", "/ping", 418, "application/json", `{}`, "not documented"},
		{"wrong media type", "GET", "/ping", 200, "text/plain", `PONG`, "media type"},
		{"metrics", "GET", "/metrics", 200, "text/plain; version=0.0.4", "# HELP x\n", ""},
		{"head", "HEAD", "/api/roles", 200, "application/json", ``, ""},
		{"405", "PUT", "/api/roles", 405, "application/json", `{}`, ""},
		{"preflight", "OPTIONS", "/api/roles", 204, "", ``, ""},
		{"OPTIONS with a body", "OPTIONS", "/api/roles", 200, "application/json", `{}`, "not documented"},
		{"undocumented method", "PUT", "/api/roles", 200, "application/json", `{}`, "not documented"},
		{"v2 page", "GET", "/api/v2/roles?limit=1", 200, "application/json",
			`{"code":200,"data":{"items":[{"description":null,"name":"a"}],"next_cursor":"azE6YQ","revision":3},"message":"m","success":true,` + ts + `}`, ""},
		{"v2 created", "PUT", "/api/v2/roles/a", 201, "application/json",
			`{"code":201,"data":{"created":true,"description":null,"name":"a","revision":4},"message":"m","success":true,` + ts + `}`, ""},
		{"v2 code differs from status", "PUT", "/api/v2/roles/a", 201, "application/json",
			`{"code":200,"data":{"created":true,"description":null,"name":"a","revision":4},"message":"m","success":true,` + ts + `}`, "code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.ValidateResponse(tc.method, tc.path, tc.status, tc.media, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("valid answer refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("invalid answer accepted, want an error about %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
	if err := v.ValidateResponse("GET", "/nowhere", 404, "application/json", []byte(`{}`)); err == nil {
		t.Error("an undocumented path was accepted")
	}
}

// TestOpenAPIServed: /openapi.json is the document, without a credential;
// /docs is a page of every path under a strict CSP, with its style sheet.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(fullServer(t))
	defer srv.Close()
	v := validator(t)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateResponse("GET", path, resp.StatusCode, resp.Header.Get("Content-Type"), b); err != nil {
			t.Error(err)
		}
		return resp, string(b)
	}

	resp, body := get(api.OpenAPIPath)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if body != string(api.OpenAPIDocument()) {
		t.Error("GET /openapi.json is not api.OpenAPIDocument()")
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q (%v), want 3.1.0", doc.OpenAPI, err)
	}

	resp, page := get(api.DocsPath)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, p := range v.Paths() {
		if !strings.Contains(page, "<code class=\"path\">"+p+"</code>") {
			t.Errorf("/docs does not list %s", p)
		}
	}
	for _, r := range api.Reasons {
		if !strings.Contains(page, "<code>"+r+"</code>") {
			t.Errorf("/docs does not list the reason %s", r)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", " style="} {
		if strings.Contains(page, bad) {
			t.Errorf("/docs contains %q: only the embedded style sheet may be loaded", bad)
		}
	}
	if !strings.Contains(page, `href="`+api.DocsCSSPath+`"`) {
		t.Error("/docs does not link its style sheet")
	}
	resp, css := get(api.DocsCSSPath)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, "body") {
		t.Errorf("GET /docs/style.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
