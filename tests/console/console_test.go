package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// fixture is what the subtests share: one server, one browser, one tenant
// seeded through the API.
type fixture struct {
	s   *server
	b   *browser
	key string // the tenant's client key
}

// TestConsole runs the console's browser tests against one server and one
// browser. The subtests run in order: some see the changes of the ones
// before.
func TestConsole(t *testing.T) {
	path := requireBrowser(t)
	s := startServer(t)
	if r := s.page(t, "", "/console/signin"); r.status != http.StatusOK {
		t.Fatalf("GET /console/signin: %v, want the sign-in page", r)
	}
	f := &fixture{s: s, b: startBrowser(t, path), key: newKey(t)}
	f.seed(t)
	for _, st := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"SignInShowsRoles", f.testSignIn},
		{"Pages", f.testPages},
		{"CheckForm", f.testCheckForm},
		{"CreateRole", f.testCreateRole},
		{"MatrixGrantAndRevoke", f.testMatrix},
		{"CSRF", f.testCSRF},
		{"SecurityHeadersAndNoInlineCode", f.testCSP},
		{"SessionCookie", f.testCookie},
		{"ReadOnly", f.testReadOnly},
		{"SignOut", f.testSignOut},
		{"BadKey", f.testBadKey},
	} {
		t.Run(st.name, st.run)
	}
}

// The seeded tenant: editor inherits viewer; alice is an editor, bob a
// viewer, carol an admin; the workflow nightly-review reports who may write.
var (
	seedRoles = []struct{ name, description string }{
		{"admin", "Full access"},
		{"editor", "Writes content"},
		{"viewer", "Reads content"},
	}
	seedGrants  = [][2]string{{"admin", "manage"}, {"editor", "read"}, {"editor", "write"}, {"viewer", "read"}}
	seedMembers = [][2]string{{"admin", "carol"}, {"editor", "alice"}, {"viewer", "bob"}}
)

const seedWorkflow = "nightly-review"

// seed makes the tenant's roles, grants, members, inheritance and one
// workflow (run once) through the HTTP API v2.
func (f *fixture) seed(t *testing.T) {
	t.Helper()
	s, k := f.s, f.key
	for _, r := range seedRoles {
		s.api(t, k, "PUT", "/api/v2/roles/"+r.name, fmt.Sprintf(`{"description":%q}`, r.description), http.StatusCreated)
	}
	for _, g := range seedGrants {
		s.api(t, k, "PUT", "/api/v2/roles/"+g[0]+"/permissions/"+g[1], "", http.StatusCreated)
	}
	for _, m := range seedMembers {
		s.api(t, k, "PUT", "/api/v2/roles/"+m[0]+"/members/"+m[1], "", http.StatusCreated)
	}
	s.api(t, k, "PUT", "/api/v2/roles/editor/parents/viewer", "", http.StatusCreated)
	s.api(t, k, "PUT", "/api/v2/workflows/"+seedWorkflow,
		`{"schedule":"1h","permission":"write","description":"Who may write"}`, http.StatusCreated)
	if r := s.send(t, "POST", "/api/v2/workflows/"+seedWorkflow+"/run", nil, "Authorization: Bearer "+k); r.status/100 != 2 {
		t.Fatalf("run the workflow: %v", r)
	}
}

// signedIn opens a tab signed in with the tenant's client key.
func (f *fixture) signedIn(t *testing.T) *tab {
	t.Helper()
	tb := f.b.newTab(t, f.s)
	tb.signIn(f.key)
	return tb
}

// navLinks are the links of the header's navigation.
var navLinks = []string{"/console/roles", "/console/matrix", "/console/users", "/console/check", "/console/audit", "/console/workflows"}

// Signing in with a client key lands on the roles page, which lists the
// tenant's roles with their counts.
func (f *fixture) testSignIn(t *testing.T) {
	tb := f.signedIn(t)
	for _, r := range seedRoles {
		sel := fmt.Sprintf(`table#roles tr[data-role=%q]`, r.name)
		if n := tb.count(sel); n != 1 {
			t.Errorf("%s: %d rows, want 1", sel, n)
		}
		if n := tb.count(sel + fmt.Sprintf(` a[href="/console/roles/%s"]`, r.name)); n != 1 {
			t.Errorf("%s: %d links to the role's page, want 1", sel, n)
		}
	}
	if got := tb.text(`tr[data-role="editor"] td.members`); got != "1" {
		t.Errorf("editor's members = %q, want 1", got)
	}
	if got := tb.text(`tr[data-role="editor"] td.permissions`); got != "2" {
		t.Errorf("editor's permissions = %q, want 2", got)
	}
	if n := tb.count(`tr[data-role="ghost"]`); n != 0 {
		t.Errorf("a row for a role that does not exist")
	}
	// The page on a phone.
	tb.do("emulate a phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("table#roles")))
	tb.screenshot("console-phone.png")
}

// pageCase is one console page and what it must show.
type pageCase struct {
	name, path string
	main       string   // its main element, waited for
	shows      []string // selectors that must match at least one element
	screenshot string   // docs/img file name, or ""
	check      func(t *testing.T, tb *tab)
}

var pageCases = []pageCase{
	{
		name: "roles", path: "/console/roles", main: "table#roles",
		shows:      []string{`tr[data-role="admin"]`, `form#search input[name="q"]`, `form#create-role input[name="role"]`, `form#create-role input[name="description"]`},
		screenshot: "console-roles.png",
	},
	{
		name: "role", path: "/console/roles/editor", main: "#permissions",
		shows: []string{
			`#permissions [data-name="read"]`, `#permissions [data-name="write"]`,
			`#members [data-name="alice"]`, `#parents [data-name="viewer"]`, `#children`,
			`form#add-permission input[name="permission"]`, `form#add-member input[name="user"]`,
			`form#add-parent input[name="parent"]`, `form#add-child input[name="child"]`,
			`a#delete-role[href="/console/roles/editor/delete"]`,
		},
		screenshot: "console-role.png",
		check: func(t *testing.T, tb *tab) {
			if got := tb.text(`#permissions [data-name="write"]`); !strings.Contains(got, "Remove") {
				t.Errorf("the grant write has no Remove button: %q", got)
			}
		},
	},
	{
		name: "role children", path: "/console/roles/viewer", main: "#children",
		shows: []string{`#children [data-name="editor"]`, `#members [data-name="bob"]`},
	},
	{
		name: "role delete", path: "/console/roles/admin/delete", main: "form#confirm-delete",
	},
	{
		name: "matrix", path: "/console/matrix", main: "table#matrix",
		shows: []string{
			`button.cell[data-role="editor"][data-permission="write"][aria-pressed="true"]`,
			`button.cell[data-role="viewer"][data-permission="write"][aria-pressed="false"]`,
			`button.cell[data-role="admin"][data-permission="manage"][aria-pressed="true"]`,
		},
		screenshot: "console-matrix.png",
	},
	{
		name: "user", path: "/console/users?user=alice", main: "#user-roles",
		shows: []string{
			`form#user-search input[name="user"]`,
			`#user-roles [data-name="editor"]`, `#user-roles [data-name="viewer"]`,
			`#user-permissions [data-name="read"]`, `#user-permissions [data-name="write"]`,
		},
		screenshot: "console-user.png",
		check: func(t *testing.T, tb *tab) {
			if got := tb.text(`#user-roles [data-name="viewer"]`); !strings.Contains(got, "editor") {
				t.Errorf("the inherited role viewer does not say it comes through editor: %q", got)
			}
			if n := tb.count(`#user-roles [data-name="admin"]`); n != 0 {
				t.Errorf("alice is shown in admin")
			}
			if got := tb.text(`#user-permissions [data-name="write"]`); !strings.Contains(got, "alice") || !strings.Contains(got, "editor") {
				t.Errorf("the permission write does not show its path alice → editor → write: %q", got)
			}
		},
	},
	{
		name: "check allowed", path: "/console/check?user=alice&permission=read", main: "#result",
		shows:      []string{`form#check input[name="user"]`, `form#check input[name="permission"]`, `#result[data-allowed="true"]`, `#explanation`},
		screenshot: "console-check.png",
		check: func(t *testing.T, tb *tab) {
			if got := tb.text("#result"); !strings.Contains(got, "Allowed") {
				t.Errorf("#result = %q, want Allowed", got)
			}
			// alice holds read through editor (direct) and through viewer.
			if got := tb.text("#explanation"); !strings.Contains(got, "alice") || !strings.Contains(got, "read") {
				t.Errorf("#explanation = %q, want the path from alice to read", got)
			}
		},
	},
	{
		name: "check denied", path: "/console/check?user=bob&permission=write", main: "#result",
		shows: []string{`#result[data-allowed="false"]`},
		check: func(t *testing.T, tb *tab) {
			if got := tb.text("#result"); !strings.Contains(got, "Denied") {
				t.Errorf("#result = %q, want Denied", got)
			}
		},
	},
	{
		name: "audit", path: "/console/audit", main: "table#audit",
		shows:      []string{"form#audit-filter", "table#audit tr.entry", "#chain", "form#verify-chain"},
		screenshot: "console-audit.png",
		check: func(t *testing.T, tb *tab) {
			if got := tb.text("table#audit"); !strings.Contains(got, "ADD_MEMBERSHIP") {
				t.Errorf("the audit page does not show the seeded memberships:\n%s", got)
			}
		},
	},
	{
		name: "workflows", path: "/console/workflows", main: "table#workflows",
		shows: []string{fmt.Sprintf(`tr[data-workflow=%q]`, seedWorkflow), fmt.Sprintf(`tr[data-workflow=%q] form.run-now`, seedWorkflow)},
	},
}

// Every page renders its main element, the navigation, a heading and what
// the seeded tenant puts there; the vendored htmx runs under the CSP.
func (f *fixture) testPages(t *testing.T) {
	tb := f.signedIn(t)
	for _, pc := range pageCases {
		t.Run(pc.name, func(t *testing.T) {
			tb.t = t
			tb.open(pc.path, pc.main)
			for _, sel := range pc.shows {
				if tb.count(sel) == 0 {
					t.Errorf("%s: nothing matches %s", pc.path, sel)
				}
			}
			for _, href := range navLinks {
				if n := tb.count(fmt.Sprintf(`nav#nav a[href=%q]`, href)); n != 1 {
					t.Errorf("%s: %d links to %s in nav#nav, want 1", pc.path, n, href)
				}
			}
			if v := tb.readOnlyMark(); v != "false" {
				t.Errorf("%s: data-readonly = %q in a session of the client key, want false", pc.path, v)
			}
			if n := tb.count("form#signout"); n != 1 {
				t.Errorf("%s: %d form#signout, want 1", pc.path, n)
			}
			if h := tb.text("h1"); h == "" {
				t.Errorf("%s: empty h1", pc.path)
			}
			if ok := run(tb, "look for htmx", chromedp.Evaluate[bool](`typeof htmx === "object" && typeof htmx.ajax === "function"`)); !ok {
				t.Errorf("%s: htmx is not loaded", pc.path)
			}
			if pc.check != nil {
				pc.check(t, tb)
			}
			if pc.screenshot != "" {
				tb.screenshot(pc.screenshot)
			}
		})
	}
	tb.t = t
}

// The check form answers for what is typed in it.
func (f *fixture) testCheckForm(t *testing.T) {
	tb := f.signedIn(t)
	tb.open("/console/check", "form#check")
	tb.do("check bob's write",
		chromedp.SetValue(chromedp.CSS(`form#check input[name="user"]`), "bob"),
		chromedp.SetValue(chromedp.CSS(`form#check input[name="permission"]`), "write"),
		chromedp.Click(chromedp.CSS(`form#check button`)),
		chromedp.WaitVisible(chromedp.CSS(`#result[data-allowed="false"]`)))
	tb.do("check bob's read",
		chromedp.SetValue(chromedp.CSS(`form#check input[name="user"]`), "bob"),
		chromedp.SetValue(chromedp.CSS(`form#check input[name="permission"]`), "read"),
		chromedp.Click(chromedp.CSS(`form#check button`)),
		chromedp.WaitVisible(chromedp.CSS(`#result[data-allowed="true"]`)))
}

// A role created with the form exists in the API, with its description, and
// is listed.
func (f *fixture) testCreateRole(t *testing.T) {
	tb := f.signedIn(t)
	tb.do("fill and submit form#create-role",
		chromedp.SendKeys(chromedp.CSS(`form#create-role input[name="role"]`), "auditor"),
		chromedp.SendKeys(chromedp.CSS(`form#create-role input[name="description"]`), "Reads the audit trail"),
		chromedp.Click(chromedp.CSS(`form#create-role button`)))
	waitFor(t, "the role auditor in the API", func() bool {
		return f.s.send(t, "GET", "/api/v2/roles/auditor", nil, "Authorization: Bearer "+f.key).status == http.StatusOK
	})
	var role struct {
		Description string `json:"description"`
	}
	apiData(t, f.s.api(t, f.key, "GET", "/api/v2/roles/auditor", "", http.StatusOK), &role)
	if role.Description != "Reads the audit trail" {
		t.Errorf("auditor's description = %q, want %q", role.Description, "Reads the audit trail")
	}
	tb.open("/console/roles", `tr[data-role="auditor"]`)
}

// auditEntry is one record of GET /api/audit.
type auditEntry struct {
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Success  bool   `json:"success"`
}

// audited reports whether the tenant's trail has a successful record of
// action on resource.
func (f *fixture) audited(t *testing.T, action, resource string) bool {
	t.Helper()
	var page struct {
		Entries []auditEntry `json:"entries"`
	}
	apiData(t, f.s.api(t, f.key, "GET", "/api/audit?limit=100&action="+action, "", http.StatusOK), &page)
	return slices.Contains(page.Entries, auditEntry{Action: action, Resource: resource, Success: true})
}

// A click on a cell of the matrix grants; the grant is in the API and in the
// audit trail. A second click revokes it.
func (f *fixture) testMatrix(t *testing.T) {
	tb := f.signedIn(t)
	cell := func(pressed bool) string {
		return fmt.Sprintf(`table#matrix button.cell[data-role="viewer"][data-permission="write"][aria-pressed="%t"]`, pressed)
	}
	perms := func() []string { return f.s.names(t, f.key, "/api/v2/roles/viewer/permissions") }
	if slices.Contains(perms(), "write") {
		t.Fatal("viewer holds write before the click")
	}
	tb.open("/console/matrix", cell(false))
	tb.do("grant with a click", chromedp.Click(chromedp.CSS(cell(false))), chromedp.WaitVisible(chromedp.CSS(cell(true))))
	if got := perms(); !slices.Contains(got, "write") {
		t.Errorf("after the grant viewer's permissions are %v, want write among them", got)
	}
	if !f.audited(t, "ADD_PERMISSION", "viewer:write") {
		t.Errorf("no ADD_PERMISSION viewer:write in the audit trail")
	}
	tb.open("/console/audit?action=ADD_PERMISSION", "table#audit tr.entry")
	if got := tb.text("table#audit"); !strings.Contains(got, "viewer") {
		t.Errorf("the audit page filtered on ADD_PERMISSION does not show the grant to viewer:\n%s", got)
	}

	tb.open("/console/matrix", cell(true))
	tb.do("revoke with a click", chromedp.Click(chromedp.CSS(cell(true))), chromedp.WaitVisible(chromedp.CSS(cell(false))))
	if got := perms(); slices.Contains(got, "write") {
		t.Errorf("after the revoke viewer's permissions are %v, want no write", got)
	}
	if !f.audited(t, "REMOVE_PERMISSION", "viewer:write") {
		t.Errorf("no REMOVE_PERMISSION viewer:write in the audit trail")
	}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)

// csrfToken reads the CSRF token of a session from a page.
func (f *fixture) csrfToken(t *testing.T, session string) string {
	t.Helper()
	r := f.s.page(t, session, "/console/roles")
	if r.status != http.StatusOK {
		t.Fatalf("GET /console/roles with the session: %v", r)
	}
	m := csrfMeta.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no <meta name=\"csrf-token\"> on /console/roles:\n%s", r.body)
	}
	return string(m[1])
}

// roleExists asks the API whether the tenant has role.
func (f *fixture) roleExists(t *testing.T, role string) bool {
	t.Helper()
	switch r := f.s.send(t, "GET", "/api/v2/roles/"+role, nil, "Authorization: Bearer "+f.key); r.status {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	default:
		t.Fatalf("GET /api/v2/roles/%s: %v", role, r)
		return false
	}
}

// A POST without the session's CSRF token, with a wrong one, or from
// another origin is refused 403 and changes nothing; with the token (as a
// field or as the header) the same POST works.
func (f *fixture) testCSRF(t *testing.T) {
	tb := f.signedIn(t)
	session := tb.session()
	token := f.csrfToken(t, session)
	cases := []struct {
		role    string
		csrf    string   // the form field, none when empty
		headers []string // extra headers
		want    int
	}{
		{role: "csrf-none", want: http.StatusForbidden},
		{role: "csrf-wrong-field", csrf: "wrong" + token, want: http.StatusForbidden},
		{role: "csrf-wrong-header", headers: []string{"X-CSRF-Token: wrong" + token}, want: http.StatusForbidden},
		{role: "csrf-other-origin", csrf: token, headers: []string{"Origin: http://attacker.example"}, want: http.StatusForbidden},
		{role: "csrf-cross-site", csrf: token, headers: []string{"Sec-Fetch-Site: cross-site"}, want: http.StatusForbidden},
		{role: "csrf-null-origin", csrf: token, headers: []string{"Origin: null"}, want: http.StatusForbidden},
		// What a browser sends under Referrer-Policy no-referrer.
		{role: "csrf-browser", csrf: token, headers: []string{"Origin: null", "Sec-Fetch-Site: same-origin"}, want: http.StatusSeeOther},
		{role: "csrf-field", csrf: token, want: http.StatusSeeOther},
		{role: "csrf-header", headers: []string{"X-CSRF-Token: " + token}, want: http.StatusSeeOther},
		{role: "csrf-same-origin", csrf: token, headers: []string{"Origin: " + f.s.base}, want: http.StatusSeeOther},
	}
	for _, tc := range cases {
		t.Run(tc.role, func(t *testing.T) {
			v := url.Values{"role": {tc.role}, "description": {"made by a CSRF test"}}
			if tc.csrf != "" {
				v.Set("csrf", tc.csrf)
			}
			r := f.s.form(t, session, "/console/roles", v, tc.headers...)
			if r.status != tc.want {
				t.Errorf("POST /console/roles: %v, want status %d", r, tc.want)
			}
			if got, want := f.roleExists(t, tc.role), tc.want == http.StatusSeeOther; got != want {
				t.Errorf("role %s exists = %t, want %t", tc.role, got, want)
			}
		})
	}
	t.Run("matrix", func(t *testing.T) {
		v := url.Values{"role": {"viewer"}, "permission": {"manage"}, "grant": {"true"}}
		if r := f.s.form(t, session, "/console/matrix", v); r.status != http.StatusForbidden {
			t.Errorf("POST /console/matrix without the token: %v, want 403", r)
		}
		if got := f.s.names(t, f.key, "/api/v2/roles/viewer/permissions"); slices.Contains(got, "manage") {
			t.Errorf("viewer's permissions are %v after a refused grant of manage", got)
		}
	})
	t.Run("signout", func(t *testing.T) {
		if r := f.s.form(t, session, "/console/signout", url.Values{}); r.status != http.StatusForbidden {
			t.Errorf("POST /console/signout without the token: %v, want 403", r)
		}
		if r := f.s.page(t, session, "/console/roles"); r.status != http.StatusOK {
			t.Errorf("the session after a refused sign-out: GET /console/roles %v, want 200", r)
		}
	})
}

// csp parses a Content-Security-Policy header into its directives.
func csp(h string) map[string][]string {
	out := map[string][]string{}
	for d := range strings.SplitSeq(h, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[strings.ToLower(f[0])] = f[1:]
		}
	}
	return out
}

var (
	scriptElement = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	postForm      = regexp.MustCompile(`(?is)<form\b[^>]*\bmethod="post"[^>]*>.*?</form\s*>`)
	// inlineCode matches what runs or styles inline: style elements and
	// attributes, event handler attributes, javascript: URLs and htmx's
	// hx-on (code evaluated from an attribute).
	inlineCode = regexp.MustCompile(`(?i)<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:|\shx-on`)
)

// The CSP forbids inline script and style, and no page has any; every
// console answer has the security headers.
func (f *fixture) testCSP(t *testing.T) {
	tb := f.signedIn(t)
	session := tb.session()
	paths := []struct{ path, session string }{{"/console/signin", ""}}
	for _, pc := range pageCases {
		paths = append(paths, struct{ path, session string }{pc.path, session})
	}
	for _, p := range paths {
		t.Run(p.path, func(t *testing.T) {
			r := f.s.page(t, p.session, p.path)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %v", p.path, r)
			}
			policy := csp(r.header.Get("Content-Security-Policy"))
			for _, d := range []string{"script-src", "style-src"} {
				src, ok := policy[d]
				if !ok {
					t.Errorf("CSP %q has no %s", r.header.Get("Content-Security-Policy"), d)
				}
				if !slices.Equal(src, []string{"'self'"}) {
					t.Errorf("CSP %s = %v, want only 'self' (no 'unsafe-inline', nonce or hash)", d, src)
				}
			}
			for d, want := range map[string]string{"default-src": "'none'", "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'self'"} {
				if got := policy[d]; !slices.Equal(got, []string{want}) {
					t.Errorf("CSP %s = %v, want %s", d, got, want)
				}
			}
			for h, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
				"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			for _, m := range scriptElement.FindAllSubmatch(r.body, -1) {
				if strings.TrimSpace(string(m[2])) != "" || !strings.Contains(string(m[1]), "src=") {
					t.Errorf("an inline script: %s", m[0])
				}
			}
			if m := inlineCode.Find(r.body); m != nil {
				t.Errorf("inline code or style %q in:\n%s", m, r.body)
			}
			for _, form := range postForm.FindAll(r.body, -1) {
				// The sign-in form is the one POST without a session.
				if !strings.Contains(string(form), `id="signin"`) && !strings.Contains(string(form), `name="csrf"`) {
					t.Errorf("a POST form without the csrf field: %s", form)
				}
			}
			if p.session != "" && !strings.Contains(string(r.body), "hx-headers=") {
				t.Errorf("the page has no hx-headers (the CSRF header of htmx requests)")
			}
		})
	}
	for _, asset := range []struct{ path, ctype string }{
		{"/console/static/htmx.min.js", "javascript"},
		{"/console/static/console.css", "text/css"},
	} {
		r := f.s.page(t, "", asset.path)
		if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), asset.ctype) || len(r.body) == 0 {
			t.Errorf("GET %s: %d %s (%d bytes), want 200 %s", asset.path, r.status, r.header.Get("Content-Type"), len(r.body), asset.ctype)
		}
	}
}

// The session cookie is HttpOnly (the page's script cannot read it),
// SameSite=Strict, scoped to /console and lives as long as the session.
func (f *fixture) testCookie(t *testing.T) {
	tb := f.signedIn(t)
	c := tb.sessionCookie()
	if c == nil {
		t.Fatalf("no %s cookie after signing in", cookieName)
	}
	if !c.HTTPOnly {
		t.Errorf("the session cookie is not HttpOnly")
	}
	if c.SameSite != network.CookieSameSiteStrict {
		t.Errorf("the session cookie's SameSite = %q, want Strict", c.SameSite)
	}
	if c.Path != "/console" {
		t.Errorf("the session cookie's Path = %q, want /console", c.Path)
	}
	if c.Secure {
		t.Errorf("the session cookie is Secure over plain HTTP (the browser would not send it back)")
	}
	if c.Session {
		t.Errorf("the session cookie has no Max-Age")
	} else if left := time.Until(time.Unix(int64(c.Expires), 0)); left < 25*time.Minute || left > 31*time.Minute {
		t.Errorf("the session cookie expires in %v, want the session lifetime (30m by default)", left)
	}
	if got := run(tb, "read document.cookie", chromedp.Evaluate[string](`document.cookie`)); strings.Contains(got, cookieName) {
		t.Errorf("the page's script reads the session cookie: %q", got)
	}
	// The answer to the sign-in itself.
	r := f.s.form(t, "", "/console/signin", url.Values{"credential": {f.key}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/roles" {
		t.Errorf("POST /console/signin: %d Location %q, want 303 /console/roles", r.status, r.header.Get("Location"))
	}
	set := r.header.Get("Set-Cookie")
	for _, want := range []string{cookieName + "=", "Path=/console", "HttpOnly", "SameSite=Strict", "Max-Age="} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
}

// A session from a check-scope token sees the pages without any change
// form, and its change POSTs are refused 403.
func (f *fixture) testReadOnly(t *testing.T) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r := f.s.api(t, f.key, "POST", "/api/token", `{"scope":"check"}`, http.StatusOK)
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("POST /api/token: %v (%v)", r, err)
	}
	tb := f.b.newTab(t, f.s)
	tb.signIn(tok.AccessToken)
	if v := tb.readOnlyMark(); v != "true" {
		t.Errorf("data-readonly = %q, want true", v)
	}
	for _, p := range []struct {
		path, main string
		absent     []string
	}{
		{"/console/roles", `tr[data-role="editor"]`, []string{"form#create-role"}},
		{"/console/roles/editor", `#permissions [data-name="write"]`, []string{
			"form#add-permission", "form#add-member", "form#add-parent", "form#add-child", "a#delete-role",
			"#permissions form", "#members form", "#parents form", "#children form",
		}},
		// The matrix shows its cells, as marks without a form.
		{"/console/matrix", `table#matrix span.cell[data-role="viewer"]`, []string{"table#matrix form", "table#matrix button"}},
		{"/console/workflows", fmt.Sprintf(`tr[data-workflow=%q]`, seedWorkflow), []string{"form.run-now"}},
	} {
		tb.open(p.path, p.main)
		for _, sel := range p.absent {
			if n := tb.count(sel); n != 0 {
				t.Errorf("%s in a read-only session: %d %s, want none", p.path, n, sel)
			}
		}
	}
	session := tb.session()
	token := f.csrfToken(t, session)
	for _, post := range []struct {
		path string
		form url.Values
	}{
		{"/console/roles", url.Values{"role": {"readonly-made"}}},
		{"/console/matrix", url.Values{"role": {"viewer"}, "permission": {"manage"}, "grant": {"true"}}},
		{"/console/roles/admin/delete", url.Values{}},
	} {
		post.form.Set("csrf", token)
		if r := f.s.form(t, session, post.path, post.form); r.status != http.StatusForbidden {
			t.Errorf("POST %s in a read-only session: %v, want 403", post.path, r)
		}
	}
	if f.roleExists(t, "readonly-made") {
		t.Errorf("a read-only session created a role")
	}
	if !f.roleExists(t, "admin") {
		t.Errorf("a read-only session deleted a role")
	}
	if got := f.s.names(t, f.key, "/api/v2/roles/viewer/permissions"); slices.Contains(got, "manage") {
		t.Errorf("a read-only session granted manage to viewer: %v", got)
	}
}

// Signing out clears the session: the pages send back to the sign-in page.
func (f *fixture) testSignOut(t *testing.T) {
	tb := f.signedIn(t)
	old := tb.session()
	tb.do("sign out",
		chromedp.Click(chromedp.CSS("form#signout button")),
		chromedp.WaitVisible(chromedp.CSS("form#signin")))
	if got := tb.path(); got != "/console/signin" {
		t.Errorf("after signing out the page is %s, want /console/signin", got)
	}
	if c := tb.sessionCookie(); c != nil && c.Value != "" {
		t.Errorf("the session cookie is still set after signing out")
	}
	tb.open("/console/roles", "form#signin")
	if got := tb.path(); got != "/console/signin" {
		t.Errorf("/console/roles after signing out shows %s, want /console/signin", got)
	}
	// Without a session: a redirect, for htmx in its header.
	r := f.s.page(t, "", "/console/roles")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/signin" {
		t.Errorf("GET /console/roles without a session: %d Location %q, want 303 /console/signin", r.status, r.header.Get("Location"))
	}
	r = f.s.page(t, "", "/console/matrix", "HX-Request: true")
	if got := r.header.Get("HX-Redirect"); got != "/console/signin" {
		t.Errorf("an htmx request without a session: %d HX-Redirect %q, want /console/signin", r.status, got)
	}
	// The cookie is gone; its token stays valid until it expires.
	if r := f.s.page(t, old, "/console/roles"); r.status == http.StatusOK {
		t.Logf("the signed-out session's token still opens the console until it expires")
	}
}

// A bad key shows the error on the sign-in page, with no session.
func (f *fixture) testBadKey(t *testing.T) {
	tb := f.b.newTab(t, f.s)
	tb.open("/console/signin", "form#signin")
	tb.do("sign in with a bad key",
		chromedp.SendKeys(chromedp.CSS("#credential"), "not-a-client-key"),
		chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("#error")))
	if got := tb.text("#error"); got == "" {
		t.Errorf("#error is empty")
	}
	if v, _ := tb.attr("#error", "role"); v != "alert" {
		t.Errorf("#error role = %q, want alert", v)
	}
	if n := tb.count("form#signin #credential"); n != 1 {
		t.Errorf("the form is not shown again with the error")
	}
	if c := tb.sessionCookie(); c != nil {
		t.Errorf("a bad key got a session cookie")
	}
	// Over HTTP: a malformed key is refused as the API refuses it (400), a
	// token with a wrong signature as unauthenticated (401).
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(f.s.api(t, f.key, "POST", "/api/token", "", http.StatusOK).body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("POST /api/token: %v", err)
	}
	forged := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
	if forged == tok.AccessToken {
		forged = tok.AccessToken[:len(tok.AccessToken)-4] + "BBBB"
	}
	for _, tc := range []struct {
		name, credential string
		want             []int
	}{
		{"malformed key", "not-a-client-key", []int{http.StatusBadRequest, http.StatusUnauthorized}},
		{"forged token", forged, []int{http.StatusUnauthorized}},
	} {
		r := f.s.form(t, "", "/console/signin", url.Values{"credential": {tc.credential}})
		if !slices.Contains(tc.want, r.status) || !strings.Contains(string(r.body), `id="error"`) {
			t.Errorf("POST /console/signin with a %s: %v, want %v with #error", tc.name, r, tc.want)
		}
		for _, c := range r.header.Values("Set-Cookie") {
			if strings.HasPrefix(c, cookieName+"=") && !strings.HasPrefix(c, cookieName+"=;") {
				t.Errorf("a %s got a session cookie: %s", tc.name, c)
			}
		}
	}
}
