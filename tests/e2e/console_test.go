package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// consoleClient is a browser-like client of one server's console: a cookie
// jar, no redirects followed, and the CSRF token of the last page read.
type consoleClient struct {
	base string
	http *http.Client
	csrf string
}

func newConsoleClient(t testing.TB, base string) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &consoleClient{base: base, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var consoleCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// on returns a client of another server with this one's cookies (the same
// browser behind a load balancer).
func (c *consoleClient) on(t testing.TB, base string) *consoleClient {
	t.Helper()
	from, _ := url.Parse(c.base)
	to, _ := url.Parse(base)
	o := newConsoleClient(t, base)
	o.http.Jar.SetCookies(&url.URL{Scheme: "http", Host: to.Host, Path: "/console/"}, c.http.Jar.Cookies(&url.URL{Scheme: "http", Host: from.Host, Path: "/console/"}))
	o.csrf = c.csrf
	return o
}

func (c *consoleClient) send(t testing.TB, method, path string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := consoleCSRF.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

func (c *consoleClient) signIn(t testing.TB, key string) {
	t.Helper()
	if code, body := c.send(t, "POST", "/console/signin", url.Values{"credential": {key}}); code != http.StatusSeeOther {
		t.Fatalf("console sign-in: %d %s", code, body)
	}
	if code, body := c.send(t, "GET", "/console/roles", nil); code != 200 || c.csrf == "" {
		t.Fatalf("console roles page: %d %s", code, body)
	}
}

func (c *consoleClient) change(t testing.TB, path string, form url.Values) {
	t.Helper()
	form.Set("csrf", c.csrf)
	if code, body := c.send(t, "POST", path, form); code != http.StatusSeeOther {
		t.Fatalf("POST %s: %d %s", path, code, body)
	}
}

// TestConsoleChangeEverywhere: a change made in one replica's console is in
// the API of every replica and in the audit trail as the API's own call
// records it, and the same browser sees it on another replica's console at
// once (its pages read at least at the revision its changes reached).
func TestConsoleChangeEverywhere(t *testing.T) {
	rs := newReplicaSet(t, 2)
	a, b := rs.nodes[0].s, rs.nodes[1].s
	key := newKey(t)
	ca := newConsoleClient(t, a.base)
	ca.signIn(t, key)
	ca.change(t, "/console/roles", url.Values{"role": {"tellers"}})
	ca.change(t, "/console/roles/tellers/members/add", url.Values{"user": {"carol"}})
	ca.change(t, "/console/matrix", url.Values{"role": {"tellers"}, "permission": {"open_till"}, "grant": {"true"}})

	// The console of the other replica, with the same cookies, shows the
	// grant without waiting.
	cb := ca.on(t, b.base)
	if code, body := cb.send(t, "GET", "/console/roles/tellers", nil); code != 200 || !strings.Contains(body, `data-name="open_till"`) {
		t.Fatalf("replica b's console: %d, grant missing:\n%s", code, body)
	}
	// Every replica's API answers with it.
	everywhere(t, visibleWithin, "carol may open the till", rs.servers(), func(s *server) (string, error) {
		return s.hasText(key, "carol", "open_till")
	}, "true")
	// The audit trail holds the change as the API's PUT records it.
	var trail struct {
		Data struct {
			Entries []struct {
				Action   string `json:"action"`
				Resource string `json:"resource"`
				Success  bool   `json:"success"`
			} `json:"entries"`
		} `json:"data"`
	}
	if err := b.getJSON(key, "/api/audit?action=ADD_PERMISSION", &trail); err != nil {
		t.Fatal(err)
	}
	if len(trail.Data.Entries) != 1 || trail.Data.Entries[0].Resource != "tellers:open_till" || !trail.Data.Entries[0].Success {
		t.Errorf("ADD_PERMISSION records: %+v, want one for tellers:open_till", trail.Data.Entries)
	}
}

// TestConsoleOff: AUTH_CONSOLE=false serves no console, and the API is
// unchanged.
func TestConsoleOff(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{{"AUTH_CONSOLE=true", http.StatusOK}, {"AUTH_CONSOLE=false", http.StatusNotFound}} {
		t.Run(tc.env, func(t *testing.T) {
			s := startServer(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3"), tc.env))
			for _, p := range []string{"/console/signin", "/console/static/htmx.min.js"} {
				if r := s.do(t, "GET", p); r.status != tc.want {
					t.Errorf("%s with %s: %d, want %d", p, tc.env, r.status, tc.want)
				}
			}
			if r := s.do(t, "GET", "/ping"); r.status != http.StatusOK {
				t.Errorf("/ping: %d", r.status)
			}
		})
	}
}

// TestConsoleAuditPage: the audit page lists the tenant's records with its
// filters, and verifies the chain on demand.
func TestConsoleAuditPage(t *testing.T) {
	s := startServer(t, serverEnv(filepath.Join(t.TempDir(), "auth.sqlite3")))
	key := newKey(t)
	c := newConsoleClient(t, s.base)
	c.signIn(t, key)
	c.change(t, "/console/roles", url.Values{"role": {"clerks"}})
	c.change(t, "/console/roles/clerks/members/add", url.Values{"user": {"dan"}})
	row := regexp.MustCompile(`<tr class="entry">\s*<td class="time">[^<]*</td><td>([A-Z_]+)</td>`)
	actions := func(body string) []string {
		var out []string
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	code, body := c.send(t, "GET", "/console/audit?verify=1", nil)
	if code != 200 || !strings.Contains(body, `data-status="intact"`) {
		t.Fatalf("audit page after verify: %d, chain not intact:\n%s", code, body)
	}
	got := actions(body)
	if !slices.Contains(got, "CREATE_ROLE") || !slices.Contains(got, "ADD_MEMBERSHIP") {
		t.Errorf("audit page actions %v, want CREATE_ROLE and ADD_MEMBERSHIP among them", got)
	}
	_, body = c.send(t, "GET", "/console/audit?action=ADD_MEMBERSHIP", nil)
	if got := actions(body); len(got) != 1 || got[0] != "ADD_MEMBERSHIP" {
		t.Errorf("filtered by ADD_MEMBERSHIP: %v", got)
	}
	_, body = c.send(t, "GET", "/console/audit?user=dan", nil)
	if got := actions(body); !slices.Contains(got, "ADD_MEMBERSHIP") || slices.Contains(got, "CREATE_ROLE") {
		t.Errorf("filtered by user dan: %v", got)
	}
	if _, body = c.send(t, "GET", "/console/audit?since=garbage", nil); !strings.Contains(body, `id="error"`) {
		t.Errorf("a bad since shows no error")
	}
}
