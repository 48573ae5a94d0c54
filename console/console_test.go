package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth"
	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/console"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policydb"
)

// stack is the API and the console over a real policy core on SQLite,
// served by a real HTTP server.
type stack struct {
	srv  *httptest.Server
	key  string
	seen *listings
}

// listings records the page views the console records.
type listings struct {
	mu  sync.Mutex
	got []decision.Question
}

func (l *listings) Listed(_ context.Context, _ policy.KeyHash, q decision.Question) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, q)
}

func (l *listings) take() []decision.Question {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.got
	l.got = nil
	return out
}

func newStack(t *testing.T) *stack {
	t.Helper()
	db := testenv.SQLite(t)
	svc, err := policy.New(policydb.New(db), auth.DefaultModel, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tokens := &api.TokenConfig{Secret: []byte("console-test-secret-0123456789abcdef"), Algorithm: "HS256",
		TTL: time.Hour, Issuer: "auth-server", Audience: "auth-api"}
	a := api.New(api.Config{}, api.Deps{Policy: decision.New(svc, decision.NewLog(nil)), Tokens: tokens, Logger: quiet})
	seen := &listings{}
	c, err := console.New(console.Config{SessionTTL: 10 * time.Minute, Secret: []byte("csrf-key")}, console.Deps{
		Gate: a, API: a.Handler(), Directory: svc, Recorder: seen, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, console.Prefix) {
			c.Handler().ServeHTTP(w, r)
			return
		}
		a.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &stack{srv: srv, key: "6c1f7f8e-2a9b-4c3d-8e5f-0a1b2c3d4e5f", seen: seen}
}

// apiDo makes an API request with the tenant's key and decodes its data.
func (s *stack) apiDo(t *testing.T, method, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data map[string]any `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env.Data
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t    *testing.T
	s    *stack
	c    *http.Client
	csrf string
}

func (s *stack) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if m := csrfMeta.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.s.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form; csrf adds the page's token as a form field.
func (b *browser) post(path string, form url.Values, csrf bool, headers ...string) page {
	if csrf {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

func (b *browser) signIn(cred string) page {
	b.t.Helper()
	p := b.post("/console/signin", url.Values{"credential": {cred}}, false)
	if p.status == http.StatusSeeOther {
		b.get("/console/roles") // reads the session's CSRF token
	}
	return p
}

func TestSignInSetsAStrictSessionCookie(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	p := b.signIn(s.key)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/roles" {
		t.Fatalf("sign-in: %d to %q, want 303 to /console/roles; body %s", p.status, p.header.Get("Location"), p.body)
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: p.header}).Cookies() {
		if ck.Name == console.CookieSession {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=/console", session)
	}
	if session.MaxAge <= 0 || session.MaxAge > 600 {
		t.Errorf("session cookie lives %d s, want at most the configured 600", session.MaxAge)
	}
	if session.Value == s.key || strings.Contains(p.body, s.key) {
		t.Error("the client key itself was handed back to the browser")
	}
	// The session is a token the API accepts, for the same tenant.
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/api/v2/roles", nil)
	req.Header.Set("Authorization", "Bearer "+session.Value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the session token is refused by the API: %d", resp.StatusCode)
	}
}

func TestSignInRefusals(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name, cred string
		status     int
	}{
		{"empty", "", http.StatusBadRequest},
		{"not a key", "not-a-key", http.StatusBadRequest},
		{"bad token", "a.b.c", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := s.browser(t)
			p := b.signIn(tc.cred)
			if p.status != tc.status || !strings.Contains(p.body, `id="error"`) {
				t.Fatalf("sign-in with %q: %d, want %d with #error; body %s", tc.cred, p.status, tc.status, p.body)
			}
			if strings.Contains(p.header.Get("Set-Cookie"), console.CookieSession+"=e") {
				t.Error("a refused sign-in set a session")
			}
		})
	}
	t.Run("cross-origin", func(t *testing.T) {
		b := s.browser(t)
		p := b.post("/console/signin", url.Values{"credential": {s.key}}, false, "Origin", "https://evil.example")
		if p.status != http.StatusForbidden {
			t.Fatalf("cross-origin sign-in: %d, want 403", p.status)
		}
	})
}

func TestPagesNeedASession(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	for _, path := range []string{"/console/roles", "/console/matrix", "/console/users", "/console/check", "/console/audit", "/console/workflows"} {
		p := b.get(path)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/console/signin") {
			t.Errorf("%s without a session: %d to %q, want 303 to the sign-in page", path, p.status, p.header.Get("Location"))
		}
	}
	p := b.post("/console/roles", url.Values{"role": {"x"}}, false)
	if p.status != http.StatusSeeOther {
		t.Errorf("a change without a session: %d, want 303 to sign in", p.status)
	}
	if code, _ := s.apiDo(t, http.MethodGet, "/api/v2/roles/x"); code != http.StatusNotFound {
		t.Errorf("the change without a session was made: GET role %d", code)
	}
}

func TestChangesNeedTheCSRFToken(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	if b.csrf == "" {
		t.Fatal("no CSRF token on the roles page")
	}
	tests := []struct {
		name    string
		csrf    bool
		headers []string
	}{
		{"none", false, nil},
		{"wrong header", false, []string{console.HeaderCSRF, "forged"}},
		{"right token, other origin", true, []string{"Origin", "https://evil.example"}},
		{"right token, cross-site fetch", true, []string{"Sec-Fetch-Site", "cross-site"}},
		{"right token, null origin without fetch metadata", true, []string{"Origin", "null"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/console/roles", url.Values{"role": {"forged"}}, tc.csrf, tc.headers...)
			if p.status != http.StatusForbidden {
				t.Fatalf("create without a valid CSRF token: %d, want 403", p.status)
			}
			if code, _ := s.apiDo(t, http.MethodGet, "/api/v2/roles/forged"); code != http.StatusNotFound {
				t.Fatalf("the refused change was made (GET role %d)", code)
			}
		})
	}
	// With the token, by form field or by header, the change is made.
	if p := b.post("/console/roles", url.Values{"role": {"by-field"}}, true); p.status != http.StatusSeeOther {
		t.Fatalf("create with the form's token: %d", p.status)
	}
	if p := b.post("/console/roles", url.Values{"role": {"by-header"}}, false, console.HeaderCSRF, b.csrf); p.status != http.StatusSeeOther {
		t.Fatalf("create with the header's token: %d", p.status)
	}
	// A browser's same-origin POST under Referrer-Policy no-referrer: Origin
	// null, with the fetch metadata that says where it came from.
	if p := b.post("/console/roles", url.Values{"role": {"by-browser"}}, true, "Origin", "null", "Sec-Fetch-Site", "same-origin"); p.status != http.StatusSeeOther {
		t.Fatalf("create as a browser sends it: %d", p.status)
	}
	for _, r := range []string{"by-field", "by-header", "by-browser"} {
		if code, _ := s.apiDo(t, http.MethodGet, "/api/v2/roles/"+r); code != http.StatusOK {
			t.Errorf("role %s not created: GET %d", r, code)
		}
	}
}

func TestPagesCarryAStrictCSP(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	check := func(path string, p page) {
		t.Helper()
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "style-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if inline := regexp.MustCompile(`<script(?:[^>]*)>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`).FindString(p.body); inline != "" {
			t.Errorf("%s: inline script or style %q", path, inline)
		}
	}
	check("/console/signin", b.get("/console/signin"))
	b.signIn(s.key)
	for _, path := range []string{"/console/roles", "/console/matrix", "/console/users?user=alice", "/console/check?user=a&permission=b", "/console/workflows"} {
		check(path, b.get(path))
	}
}

func TestConsoleChangesReachTheAPI(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	steps := []struct {
		path string
		form url.Values
	}{
		{"/console/roles", url.Values{"role": {"editors"}, "description": {"Edit things"}}},
		{"/console/roles", url.Values{"role": {"staff"}}},
		{"/console/roles/editors/permissions/add", url.Values{"permission": {"write"}}},
		{"/console/roles/editors/members/add", url.Values{"user": {"alice"}}},
		{"/console/roles/editors/parents/add", url.Values{"parent": {"staff"}}},
		{"/console/roles/staff/permissions/add", url.Values{"permission": {"read"}}},
		{"/console/matrix", url.Values{"role": {"staff"}, "permission": {"badge"}, "grant": {"true"}}},
	}
	for _, st := range steps {
		if p := b.post(st.path, st.form, true); p.status != http.StatusSeeOther {
			t.Fatalf("POST %s %v: %d %s", st.path, st.form, p.status, p.body)
		}
	}
	// The API sees every change.
	_, check := s.apiDo(t, http.MethodGet, "/api/v2/check?user=alice&permission=read")
	if check["allowed"] != true {
		t.Errorf("alice may not read after the console's changes: %v", check)
	}
	_, info := s.apiDo(t, http.MethodGet, "/api/v2/roles/staff")
	if info["permissions"] != float64(2) {
		t.Errorf("staff has %v permissions, want 2 (read, and badge from the matrix)", info["permissions"])
	}
	// The pages show them: the user page with the path of an inherited
	// permission, the role page with its child.
	up := b.get("/console/users?user=alice")
	if !strings.Contains(up.body, `data-name="read"`) || !regexp.MustCompile(`(?s)user alice.*role editors.*role staff.*permission read`).MatchString(up.body) {
		t.Errorf("the user page does not show read with its path: %s", up.body)
	}
	rp := b.get("/console/roles/staff")
	if !regexp.MustCompile(`(?s)id="children".*data-name="editors"`).MatchString(rp.body) {
		t.Errorf("the staff page does not list editors as a child")
	}
	// Removing through the console, and deleting after the confirmation.
	if p := b.post("/console/roles/staff/children/remove", url.Values{"child": {"editors"}}, true); p.status != http.StatusSeeOther {
		t.Fatalf("remove child: %d", p.status)
	}
	_, check = s.apiDo(t, http.MethodGet, "/api/v2/check?user=alice&permission=read")
	if check["allowed"] != false {
		t.Errorf("alice still reads after the link was removed")
	}
	confirm := b.get("/console/roles/editors/delete")
	if !strings.Contains(confirm.body, `id="confirm-delete"`) || !strings.Contains(confirm.body, "1 membership") ||
		!strings.Contains(confirm.body, "1 permission grant") {
		t.Errorf("the confirmation does not say what is removed: %s", confirm.body)
	}
	if code, _ := s.apiDo(t, http.MethodGet, "/api/v2/roles/editors"); code != http.StatusOK {
		t.Fatal("the confirmation page deleted the role")
	}
	if p := b.post("/console/roles/editors/delete", url.Values{}, true); p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", p.status)
	}
	if code, _ := s.apiDo(t, http.MethodGet, "/api/v2/roles/editors"); code != http.StatusNotFound {
		t.Errorf("editors still exists after the delete: %d", code)
	}
}

func TestMatrixCellToggles(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"ops"}}, true)
	b.post("/console/roles/ops/permissions/add", url.Values{"permission": {"deploy"}}, true)
	m := b.get("/console/matrix")
	if !regexp.MustCompile(`data-role="ops" data-permission="deploy" aria-pressed="true"`).MatchString(m.body) {
		t.Fatalf("the matrix does not show ops/deploy granted: %s", m.body)
	}
	// An htmx toggle answers the cell alone, now revoked.
	p := b.post("/console/matrix", url.Values{"role": {"ops"}, "permission": {"deploy"}, "grant": {"false"}}, false,
		"HX-Request", "true", console.HeaderCSRF, b.csrf)
	if p.status != http.StatusOK || strings.Contains(p.body, "<html") ||
		!strings.Contains(p.body, `data-permission="deploy" aria-pressed="false"`) {
		t.Fatalf("htmx toggle: %d %s", p.status, p.body)
	}
	if _, d := s.apiDo(t, http.MethodGet, "/api/v2/roles/ops"); d["permissions"] != float64(0) {
		t.Errorf("ops still holds deploy after the toggle: %v", d)
	}
	// A refused toggle (a role that does not exist) says why in the cell.
	p = b.post("/console/matrix", url.Values{"role": {"ghost"}, "permission": {"deploy"}, "grant": {"true"}}, false,
		"HX-Request", "true", console.HeaderCSRF, b.csrf)
	if !strings.Contains(p.body, `class="cellerror"`) || !strings.Contains(p.body, `aria-pressed="false"`) {
		t.Errorf("refused toggle: %s", p.body)
	}
}

func TestReadOnlySession(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"viewers"}}, true)
	// A check-only token, from the API.
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/api/token", strings.NewReader(`{"scope":"check"}`))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	ro := s.browser(t)
	if p := ro.signIn(tok.AccessToken); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in with a check token: %d %s", p.status, p.body)
	}
	page := ro.get("/console/roles/viewers")
	if !strings.Contains(page.body, `data-readonly="true"`) || strings.Contains(page.body, `id="add-member"`) ||
		strings.Contains(page.body, `id="delete-role"`) {
		t.Errorf("the read-only role page offers changes")
	}
	if p := ro.post("/console/roles/viewers/members/add", url.Values{"user": {"mallory"}}, true); p.status != http.StatusForbidden {
		t.Errorf("a read-only change: %d, want 403", p.status)
	}
	if _, d := s.apiDo(t, http.MethodGet, "/api/v2/roles/viewers"); d["members"] != float64(0) {
		t.Errorf("the read-only session changed the role: %v", d)
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	if p := b.post("/console/signout", url.Values{}, false); p.status != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", p.status)
	}
	if p := b.get("/console/roles"); p.status != http.StatusOK {
		t.Fatalf("the refused sign-out ended the session: %d", p.status)
	}
	p := b.post("/console/signout", url.Values{}, true)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/signin" {
		t.Fatalf("sign-out: %d to %q", p.status, p.header.Get("Location"))
	}
	if p := b.get("/console/roles"); p.status != http.StatusSeeOther {
		t.Errorf("the roles page after sign-out: %d, want 303 to sign in", p.status)
	}
}

func TestRolesSearchAndPaging(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	for _, r := range []string{"alpha", "beta", "gamma", "delta", "alphabet"} {
		b.post("/console/roles", url.Values{"role": {r}}, true)
	}
	rows := regexp.MustCompile(`<tr data-role="([^"]+)"`)
	names := func(p page) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(p.body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	tests := []struct {
		path string
		want string
	}{
		{"/console/roles", "alpha alphabet beta delta gamma"},
		{"/console/roles?q=ALPHA", "alpha alphabet"},
		{"/console/roles?limit=2", "alpha alphabet"},
		{"/console/roles?limit=2&after=alphabet", "beta delta"},
		{"/console/roles?q=zzz", ""},
	}
	for _, tc := range tests {
		if got := strings.Join(names(b.get(tc.path)), " "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.path, got, tc.want)
		}
	}
	if p := b.get("/console/roles?limit=2"); !strings.Contains(p.body, `id="next" href="/console/roles?after=alphabet&amp;limit=2"`) {
		t.Errorf("no next link to after=alphabet: %s", p.body)
	}
}

func TestCheckPageExplains(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"auditors"}}, true)
	b.post("/console/roles/auditors/permissions/add", url.Values{"permission": {"read_ledger"}}, true)
	b.post("/console/roles/auditors/members/add", url.Values{"user": {"bob"}}, true)
	tests := []struct {
		user, perm, want string
	}{
		{"bob", "read_ledger", `data-allowed="true"`},
		{"eve", "read_ledger", `data-allowed="false"`},
	}
	for _, tc := range tests {
		p := b.get("/console/check?user=" + tc.user + "&permission=" + tc.perm)
		if !strings.Contains(p.body, tc.want) || !strings.Contains(p.body, `id="explanation"`) {
			t.Errorf("check %s/%s: want %s: %s", tc.user, tc.perm, tc.want, p.body)
		}
	}
	if p := b.get("/console/check?user=bob&permission=read_ledger"); !regexp.MustCompile(`(?s)role <strong>auditors</strong>`).MatchString(p.body) {
		t.Errorf("the explanation does not name the role")
	}
	if p := b.get("/console/check?user=bad%20name&permission=x"); !strings.Contains(p.body, `id="error"`) {
		t.Errorf("a bad user name shows no error")
	}
}

// TestVendoredChecksums: the vendored htmx is the file VENDOR.md records.
func TestVendoredChecksums(t *testing.T) {
	doc, err := os.ReadFile("static/VENDOR.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) == 0 {
		t.Fatal("VENDOR.md records no file")
	}
	for _, m := range rows {
		b, err := os.ReadFile("static/" + m[1])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != m[2] {
			t.Errorf("static/%s: sha256 %s, VENDOR.md records %s", m[1], got, m[2])
		}
	}
}

// TestControlsAreLabelled: every visible form control of every page has a
// label (for screen readers), and every page has one h1 and the skip link.
func TestControlsAreLabelled(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	pages := map[string]string{"/console/signin": b.get("/console/signin").body}
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"tellers"}}, true)
	b.post("/console/roles/tellers/members/add", url.Values{"user": {"ann"}}, true)
	b.post("/console/roles/tellers/permissions/add", url.Values{"permission": {"count"}}, true)
	for _, p := range []string{"/console/roles", "/console/roles/tellers", "/console/roles/tellers/delete", "/console/matrix",
		"/console/users?user=ann", "/console/check?user=ann&permission=count", "/console/workflows"} {
		pages[p] = b.get(p).body
	}
	control := regexp.MustCompile(`<(input|select|textarea)\b([^>]*)>`)
	attr := func(tag, name string) string {
		m := regexp.MustCompile(`\b` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for path, body := range pages {
		if n := strings.Count(body, "<h1>"); n != 1 {
			t.Errorf("%s: %d h1, want 1", path, n)
		}
		if !strings.Contains(body, `class="skip" href="#main"`) {
			t.Errorf("%s: no skip link", path)
		}
		for _, m := range control.FindAllStringSubmatch(body, -1) {
			if attr(m[2], "type") == "hidden" {
				continue
			}
			id := attr(m[2], "id")
			if attr(m[2], "aria-label") == "" && (id == "" || !strings.Contains(body, `<label for="`+id+`"`)) {
				t.Errorf("%s: control without a label: %s", path, m[0])
			}
		}
		for _, m := range regexp.MustCompile(`<button\b[^>]*>([^<]*)</button>`).FindAllStringSubmatch(body, -1) {
			if strings.TrimSpace(m[1]) == "" && !strings.Contains(m[0], "aria-label=") {
				t.Errorf("%s: button without a name: %s", path, m[0])
			}
		}
	}
}

// TestPageViewsAreRecorded: each page read from the core records the
// listing it shows, as the API records the same listing.
func TestPageViewsAreRecorded(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"tellers"}}, true)
	s.seen.take()
	tests := []struct {
		path string
		want decision.Question
	}{
		{"/console/roles", decision.Question{Action: audit.ListRoles, Resource: "all"}},
		{"/console/roles/tellers", decision.Question{Action: audit.ListRoles, Resource: "role:tellers"}},
		{"/console/matrix", decision.Question{Action: audit.ListPermissions, Resource: "matrix"}},
		{"/console/users?user=ann", decision.Question{Action: audit.UserPermissions, User: "ann", Resource: "user_permissions"}},
	}
	for _, tc := range tests {
		if p := b.get(tc.path); p.status != http.StatusOK {
			t.Fatalf("%s: %d", tc.path, p.status)
		}
		if got := s.seen.take(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s recorded %+v, want one %+v", tc.path, got, tc.want)
		}
	}
}

func TestUnknownPage(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	p := b.get("/console/no-such-page")
	if p.status != http.StatusNotFound || !strings.Contains(p.body, `id="error"`) || p.header.Get("Content-Security-Policy") == "" {
		t.Fatalf("unknown page: %d, CSP %q: %s", p.status, p.header.Get("Content-Security-Policy"), p.body)
	}
}

// TestRequestIDEchoed: a console page answers with the request's id, the
// caller's when well formed, as the API does.
func TestRequestIDEchoed(t *testing.T) {
	s := newStack(t)
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/console/signin", nil)
	req.Header.Set("X-Request-ID", "trace-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "trace-42" {
		t.Errorf("X-Request-ID %q, want trace-42", got)
	}
}

// TestBadInputsSayWhy: a change with a missing or invalid name changes
// nothing and the page shown next says why.
func TestBadInputsSayWhy(t *testing.T) {
	s := newStack(t)
	b := s.browser(t)
	b.signIn(s.key)
	b.post("/console/roles", url.Values{"role": {"tellers"}}, true)
	b.get("/console/roles/tellers") // takes the creation's notice
	tests := []struct {
		name, path string
		form       url.Values
		back, want string
	}{
		{"empty member", "/console/roles/tellers/members/add", url.Values{"user": {" "}}, "/console/roles/tellers", "Enter the user to add."},
		{"invalid role name", "/console/roles", url.Values{"role": {"bad name!"}}, "/console/roles", "Invalid role name"},
		{"grant to a missing role", "/console/roles/ghost/permissions/add", url.Values{"permission": {"read"}}, "/console/roles/ghost", "does not exist"},
		{"unknown list", "/console/roles/tellers/friends/add", url.Values{"friend": {"x"}}, "", "no such page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post(tc.path, tc.form, true)
			if tc.back == "" {
				if p.status != http.StatusNotFound || !strings.Contains(p.body, tc.want) {
					t.Fatalf("%s: %d %s", tc.path, p.status, p.body)
				}
				return
			}
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), tc.back) {
				t.Fatalf("%s: %d to %q, want 303 to %s", tc.path, p.status, p.header.Get("Location"), tc.back)
			}
			next := b.get(tc.back)
			if !regexp.MustCompile(`id="error"[^>]*>[^<]*` + regexp.QuoteMeta(tc.want)).MatchString(next.body) {
				t.Errorf("the page after %s does not say %q:\n%s", tc.path, tc.want, next.body)
			}
		})
	}
	if _, d := s.apiDo(t, http.MethodGet, "/api/v2/roles/tellers"); d["members"] != float64(0) || d["permissions"] != float64(0) {
		t.Errorf("a refused change was made: %v", d)
	}
}
