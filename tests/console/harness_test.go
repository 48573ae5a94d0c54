// Package console drives the admin console of auth-server in a real browser:
// it builds the binary, runs it on a random port against SQLite in
// development mode, and steers a headless Chromium through the console's
// pages with the Chrome DevTools Protocol. What the browser cannot show (the
// status of a refused POST, response headers) is asked over plain HTTP, and
// every change made in the console is confirmed through the API.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ourway/auth/internal/testenv"
	"github.com/ourway/auth/settings"
)

const (
	startTimeout  = 30 * time.Second
	stopTimeout   = 20 * time.Second
	actionTimeout = 15 * time.Second
	// cookieName is the console's session cookie.
	cookieName = "auth_console"
	// unlimited is a rate limit no test reaches.
	unlimited = "1000000 per second"
)

// browserCandidates are the browsers looked for, in order, when
// AUTH_TEST_CHROMIUM is not set: Debian's chromium first.
var browserCandidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}

// findBrowser returns the path of the browser to drive, or why there is none.
func findBrowser() (string, string) {
	if p := os.Getenv("AUTH_TEST_CHROMIUM"); p != "" {
		if abs, err := exec.LookPath(p); err == nil {
			return abs, ""
		}
		return "", fmt.Sprintf("AUTH_TEST_CHROMIUM=%s is not an executable", p)
	}
	for _, name := range browserCandidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no browser found (set AUTH_TEST_CHROMIUM, or install Debian's chromium: apt-get install chromium)"
}

// requireBrowser returns the browser's path; without one the test is
// skipped, or fails when services are required (CI must run these tests).
func requireBrowser(t *testing.T) string {
	t.Helper()
	p, reason := findBrowser()
	if p != "" {
		return p
	}
	if testenv.Required() {
		t.Fatalf("%s (AUTH_TEST_REQUIRE_SERVICES=1)", reason)
	}
	t.Skipf("browser tests of the console skipped: %s", reason)
	return ""
}

// server is one running auth-server process.
type server struct {
	base string // http://127.0.0.1:PORT
	proc *testenv.Process
	http *http.Client // follows no redirect: the tests look at them
}

// startServer builds auth-server and runs it in development mode on a
// random port with a SQLite database in a temporary directory. It is stopped
// when the test ends; its log is printed if the test failed.
func startServer(t *testing.T) *server {
	t.Helper()
	bin, err := testenv.BuildServer(t.TempDir())
	if err != nil {
		t.Fatalf("build auth-server: %v", err)
	}
	env := append(settings.Unconfigured(os.Environ()),
		"AUTH_ENV=development",
		"SERVER_HOST=127.0.0.1",
		"SERVER_PORT=0",
		"AUTH_DB_PATH="+filepath.Join(t.TempDir(), "auth.sqlite3"),
		"AUTH_LOG_FORMAT=json",
		"AUTH_RATE_LIMIT_UNAUTHENTICATED="+unlimited,
		"AUTH_TENANT_CREATION_LIMIT="+unlimited,
		"AUTH_TENANT_CREATION_LIMIT_GLOBAL="+unlimited,
	)
	s := &server{http: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if s.proc, err = testenv.Start(bin, env, s.http); err != nil {
		t.Fatalf("start auth-server: %v", err)
	}
	s.base = s.proc.Base
	t.Cleanup(func() {
		if err := s.proc.Stop(stopTimeout); err != nil {
			t.Errorf("auth-server %v", err)
		}
		if t.Failed() {
			t.Logf("auth-server log (%s):\n%s", s.base, s.proc.Log.String())
		}
	})
	return s
}

// response is a whole HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(string(r.body)))
}

// send makes one request; headers are "Key: value".
func (s *server) send(t *testing.T, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("bad test header %q", h)
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: got}
}

// api calls the HTTP API with a bearer credential and a JSON body (none
// when empty), and wants the status want.
func (s *server) api(t *testing.T, cred, method, path, body string, want int) response {
	t.Helper()
	var rd io.Reader
	headers := []string{"Authorization: Bearer " + cred}
	if body != "" {
		rd = strings.NewReader(body)
		headers = append(headers, "Content-Type: application/json")
	}
	r := s.send(t, method, path, rd, headers...)
	if r.status != want {
		t.Fatalf("%s %s: %v, want status %d", method, path, r, want)
	}
	return r
}

// apiData decodes the data of an API answer into v.
func apiData(t *testing.T, r response, v any) {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("decode the data of %s: %v", r, err)
	}
}

// names returns the names of a v2 list's items (field "name").
func (s *server) names(t *testing.T, cred, path string) []string {
	t.Helper()
	var page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	apiData(t, s.api(t, cred, "GET", path, "", http.StatusOK), &page)
	var out []string
	for _, it := range page.Items {
		out = append(out, it.Name)
	}
	return out
}

// form posts a form to a console path as a browser without script would,
// with the session cookie (empty: none) and extra headers.
func (s *server) form(t *testing.T, session, path string, values url.Values, headers ...string) response {
	t.Helper()
	headers = append(headers, "Content-Type: application/x-www-form-urlencoded")
	if session != "" {
		headers = append(headers, "Cookie: "+cookieName+"="+session)
	}
	return s.send(t, "POST", path, strings.NewReader(values.Encode()), headers...)
}

// page gets a console page with the session cookie (empty: none).
func (s *server) page(t *testing.T, session, path string, headers ...string) response {
	t.Helper()
	if session != "" {
		headers = append(headers, "Cookie: "+cookieName+"="+session)
	}
	return s.send(t, "GET", path, nil, headers...)
}

// newKey returns a fresh random UUID4, a client key in development mode.
func newKey(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// browser is one headless Chromium shared by the tests; each tab opens in
// a browser context of its own (its own cookies).
type browser struct {
	ctx    context.Context // the browser's chromedp context
	output *testenv.LogBuffer
}

// startBrowser starts Chromium at path headless with a fresh profile. It is
// closed when the test ends.
func startBrowser(t *testing.T, path string) *browser {
	t.Helper()
	b := &browser{output: &testenv.LogBuffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		// A closed network makes these slow or failing: off.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(b.output),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	start, cancelStart := context.WithTimeout(context.Background(), startTimeout)
	defer cancelStart()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("start the browser %s: %v\n%s", path, err, b.output.String())
		}
	case <-start.Done():
		t.Fatalf("the browser %s did not start within %v\n%s", path, startTimeout, b.output.String())
	}
	b.ctx = ctx
	return b
}

// tab is one browser tab in a browser context of its own.
type tab struct {
	t   *testing.T
	b   *browser
	s   *server
	ctx context.Context
	// problems are the messages of the tab's pages that show a defect:
	// script exceptions, console errors and Content-Security-Policy
	// violations.
	mu       sync.Mutex
	problems []string
}

// newTab opens a tab with a fresh cookie jar and a 1280×800 viewport; it is
// closed when the test ends, and a problem its pages showed fails the test.
func (b *browser) newTab(t *testing.T, s *server) *tab {
	t.Helper()
	tb := &tab{t: t, b: b, s: s}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("open a tab: %v\n%s", err, b.output.String())
	}
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("the page showed a problem: %s", p)
		}
	})
	return tb
}

// noteProblem records a page's exception or policy violation.
func (tb *tab) noteProblem(msg string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.problems = append(tb.problems, msg)
}

// listen notes script exceptions, console errors and
// Content-Security-Policy violations. It runs in the tab's event loop.
func (tb *tab) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		tb.noteProblem(fmt.Sprintf("exception at %s:%d: %s", ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber+1, msg))
	case *log.EventEntryAdded:
		if e := ev.Entry; strings.Contains(e.Text, "Content Security Policy") || strings.Contains(e.Text, "Content-Security-Policy") {
			tb.noteProblem(fmt.Sprintf("%s %s: %s (%s)", e.Level, e.Source, e.Text, e.URL))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.TrimSpace(string(a.Value)+" "+a.Description))
			}
			tb.noteProblem("console.error: " + strings.Join(parts, " "))
		}
	}
}

// do runs steps with the action timeout.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v (page %s)\n%s", what, err, tb.location(), tb.body())
	}
}

// run runs one action with the action timeout and returns its value.
func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v (page %s)", what, err, tb.location())
	}
	return v
}

// location is the tab's URL, for messages ("?" when unknown).
func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// body is the start of the tab's body, for messages.
func (tb *tab) body() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.outerHTML : ""`))
	if err != nil {
		return ""
	}
	if len(html) > 4000 {
		html = html[:4000] + "…"
	}
	return html
}

// path is the path (and query) of the tab's URL.
func (tb *tab) path() string {
	tb.t.Helper()
	loc := run(tb, "read the location", chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		tb.t.Fatalf("the location %q: %v", loc, err)
	}
	return u.RequestURI()
}

// open navigates to a console path and waits until sel is visible.
func (tb *tab) open(path, sel string) {
	tb.t.Helper()
	tb.do("open "+path+" and wait for "+sel,
		chromedp.Navigate(tb.s.base+path),
		chromedp.WaitVisible(chromedp.CSS(sel)))
}

// count is the number of elements that match sel now.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	return run(tb, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// text is the text of the first element that matches sel (waiting for it).
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(run(tb, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// attr is an attribute of the first element that matches sel.
func (tb *tab) attr(sel, name string) (string, bool) {
	tb.t.Helper()
	r := run(tb, "read "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name))
	return r.Value, r.Exists
}

// readOnlyMark is the page's data-readonly: on body, or on the element
// that wraps the page (#app).
func (tb *tab) readOnlyMark() string {
	tb.t.Helper()
	return run(tb, "read data-readonly", chromedp.Evaluate[string](
		`document.body.dataset.readonly ?? document.querySelector("#app[data-readonly]")?.dataset.readonly ?? ""`))
}

// signIn signs in with a client key or a token through the sign-in form and
// waits for the roles page.
func (tb *tab) signIn(credential string) {
	tb.t.Helper()
	tb.open("/console/signin", "form#signin")
	tb.do("sign in",
		chromedp.SendKeys(chromedp.CSS("#credential"), credential),
		chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("table#roles")))
	if got := tb.path(); got != "/console/roles" {
		tb.t.Fatalf("after signing in the page is %s, want /console/roles", got)
	}
}

// cookies returns the browser's cookies for the console.
func (tb *tab) cookies() []*network.Cookie {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.s.base + "/console/roles"}})
	if err != nil {
		tb.t.Fatalf("read the cookies: %v", err)
	}
	return res.Cookies
}

// sessionCookie returns the console's session cookie (nil when there is none).
func (tb *tab) sessionCookie() *network.Cookie {
	tb.t.Helper()
	for _, c := range tb.cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	return nil
}

// session returns the value of the session cookie, which must be set.
func (tb *tab) session() string {
	tb.t.Helper()
	c := tb.sessionCookie()
	if c == nil || c.Value == "" {
		tb.t.Fatalf("no %s cookie in the browser", cookieName)
	}
	return c.Value
}

// screenshot saves the viewport as docs/img/name under the module root
// (the images of the documentation), unless the file has those bytes already.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png := run(tb, "screenshot "+name, chromedp.CaptureScreenshot())
	root, err := testenv.ModuleRoot()
	if err != nil {
		tb.t.Fatal(err)
	}
	dir := filepath.Join(root, "docs", "img")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, png) {
		return
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the action timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, actionTimeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
