package benchsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ourway/auth/cmd/internal/dataset"
	"github.com/ourway/auth/internal/benchreport"
	"github.com/ourway/auth/internal/loadtest"
)

// consoleShape is the bulk of the console's tenant, written straight into
// the database: 10 000 roles of 5 grants each, and about 3 memberships per
// user. The big roles, the role parents and user-0's roles are added on
// top of it (consoleExtras), to 100 000 memberships in all.
var consoleShape = dataset.Shape{Users: 30_000, Roles: 10_000, Permissions: 5_000, Grants: 50_000, Memberships: 89_998}

// consoleBigRoles are the members given to role-0, role-1, … on top of the
// bulk: the roles of thousands of members.
var consoleBigRoles = []int{5000, 3000, 1500, 500}

// consoleAudit is the decision audit setting of the console's server: the
// default, as a deployment runs it.
const consoleAudit = "all"

// consoleWorkflows are the workflows registered on the console's tenant,
// with the role whose first permission each one needs.
var consoleWorkflows = []struct {
	name string
	role int
}{{"payroll", 0}, {"deploy", 1200}, {"reports", 1}}

// consoleWorkflowRuns is how many times each workflow is run: as many as
// the workflows page shows of each.
const consoleWorkflowRuns = 3

// The console's time budget: at most consoleRounds rounds of every page,
// fewer when consoleBudget is spent (but never under consoleMinRounds).
const (
	consoleRounds    = 100
	consoleMinRounds = 20
	consoleBudget    = 90 * time.Second
)

// consoleToggleRole is the role of the matrix cell the benchmark toggles.
const consoleToggleRole = 2

// consoleImportRules is the most rules one import of the extras carries:
// on SQLite an import of more new rules than about 4 600 (7 columns each,
// one INSERT of at most 32 766 parameters) fails.
const consoleImportRules = 4000

// consoleExtras are the rules added through the API on top of the bulk.
type consoleExtras struct {
	// files are the policy files (CSV) of the rules, consoleImportRules at
	// most each, for merge imports.
	files []string
	// members is the number of memberships it adds (user in role), parents
	// the number of role parents (role in role).
	members, parents int
	// biggest is the member count of the largest role once it is added.
	biggest int
}

// newConsoleExtras builds the rules added to the bulk of t: consoleBigRoles
// members for role-0, role-1, … (users not yet in the role, from user-0
// up); user-0 in role-100 and role-101; and a hierarchy: role-100 …
// role-1099 each the child of one of role-1100 … role-1199 (ten each),
// those the children of role-1200 … role-1209, role-0 a child of
// role-1100 and role-10 … role-19 children of role-0. So user-0 holds
// role-1200's permissions through role-100 and role-1100.
func newConsoleExtras(t *dataset.Tenant) consoleExtras {
	var x consoleExtras
	var b strings.Builder
	lines := 0
	rule := func(format string, args ...any) {
		if lines == consoleImportRules {
			x.files = append(x.files, b.String())
			b.Reset()
			lines = 0
		}
		fmt.Fprintf(&b, format, args...)
		lines++
	}
	has := func(u, r int) bool {
		_, ok := slices.BinarySearch(t.UserRoles[u], int32(r))
		return ok
	}
	members := make([]int, t.Shape.Roles)
	for _, rs := range t.UserRoles {
		for _, r := range rs {
			members[r]++
		}
	}
	member := func(u, r int) {
		if has(u, r) {
			return
		}
		rule("g, %s, role:%s, 0\n", dataset.User(u), dataset.Role(r))
		members[r]++
		x.members++
	}
	for r, n := range consoleBigRoles {
		for u, added := 0, 0; added < n && u < t.Shape.Users; u++ {
			if !has(u, r) {
				member(u, r)
				added++
			}
		}
	}
	member(0, 100)
	member(0, 101)
	parent := func(child, par int) {
		rule("g, role:%s, role:%s, 0\n", dataset.Role(child), dataset.Role(par))
		x.parents++
	}
	for i := 100; i < 1100; i++ {
		parent(i, 1100+(i-100)/10)
	}
	for i := 1100; i < 1200; i++ {
		parent(i, 1200+(i-1100)/10)
	}
	parent(0, 1100)
	for i := 10; i < 20; i++ {
		parent(i, 0)
	}
	x.files = append(x.files, b.String())
	x.biggest = slices.Max(members)
	return x
}

// runConsole times the admin console's pages on a tenant of 10 000 roles
// and 100 000 memberships (SQLite): the bulk written straight into the
// database, the rest imported through the API, workflows registered and
// run; then a client signed in as a browser requests every page once per
// round.
func (s *suite) runConsole(ctx context.Context) (err error) {
	tenant, err := dataset.Generate(consoleShape, 17)
	if err != nil {
		return err
	}
	extras := newConsoleExtras(tenant)
	grants, members := tenant.Rules()
	c := &benchreport.ConsoleProbe{Database: benchreport.SQLite, Audit: consoleAudit,
		Roles: tenant.Shape.Roles, Users: tenant.Shape.Users, Permissions: tenant.Shape.Permissions,
		Grants: grants, Memberships: members + extras.members, Parents: extras.parents,
		BiggestRole: extras.biggest, Workflows: len(consoleWorkflows), WorkflowRuns: consoleWorkflowRuns,
		Command: s.command(SectionConsole)}
	s.log.Info("writing the console tenant", "roles", c.Roles, "memberships", members)
	d, err := s.newDatabase(ctx, benchreport.SQLite, "console", tenant)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.cleanup(); err == nil {
			err = cerr
		}
	}()
	c.Seed = d.seed
	srv, err := s.startServer(ctx, "console", d, consoleAudit)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); err == nil {
			err = serr
		}
	}()
	api := &apiClient{base: srv.base + "/api/v2", key: tenant.Key, client: &http.Client{Timeout: 5 * time.Minute}}
	started := time.Now()
	if err := api.importMerge(ctx, extras); err != nil {
		return err
	}
	c.Import = time.Since(started)
	s.log.Info("console tenant complete", "written", c.Seed, "imported", c.Import,
		"memberships", c.Memberships, "parents", c.Parents, "biggest role", c.BiggestRole)
	for _, w := range consoleWorkflows {
		perm := dataset.Permission(int(tenant.RolePerms[w.role][0]))
		if err := api.workflow(ctx, w.name, perm, consoleWorkflowRuns); err != nil {
			return err
		}
	}

	b := newBrowser(srv.base)
	if err := b.signIn(ctx, tenant.Key); err != nil {
		return err
	}
	pages := consolePages(tenant)
	rounds := consoleRounds
	if s.cfg.Quick {
		rounds = 5
	}
	samples := make([][]time.Duration, len(pages))
	c.Pages = make([]benchreport.ConsolePage, len(pages))
	begin := time.Now()
	for round := 0; round <= rounds; round++ {
		if round > consoleMinRounds && time.Since(begin) > consoleBudget {
			s.log.Info("console time budget spent", "rounds", round-1)
			break
		}
		for i := range pages {
			pg := &pages[i]
			if pg.path == "" {
				if pg.path, err = pg.locate(ctx, b); err != nil {
					return fmt.Errorf("%s: %w", pg.name, err)
				}
			}
			elapsed, size, err := b.fetch(ctx, pg, round)
			if err != nil {
				return fmt.Errorf("%s (%s %s), round %d: %w", pg.name, pg.method, pg.path, round, err)
			}
			c.Pages[i].Bytes = size
			if round == 0 {
				c.Pages[i].First = elapsed
				s.log.Info("console first request", "page", pg.name, "path", pg.path, "took", elapsed, "bytes", size)
				continue
			}
			samples[i] = append(samples[i], elapsed)
		}
		c.Rounds = round
	}
	for i, pg := range pages {
		c.Pages[i].Name, c.Pages[i].Method, c.Pages[i].Path = pg.name, pg.method, pg.path
		c.Pages[i].Samples = len(samples[i])
		c.Pages[i].Latency = loadtest.Summarize(samples[i])
		l := c.Pages[i].Latency
		s.log.Info("console page", "page", pg.name, "first", c.Pages[i].First, "p50", l.P50, "p99", l.P99, "max", l.Max)
	}
	s.rep.Console = c
	return nil
}

// consolePage is one request of the console benchmark.
type consolePage struct {
	name   string
	method string
	// path is the request's path and query; empty until locate finds it.
	path string
	// locate finds the path of a page reached by following links.
	locate func(ctx context.Context, b *browser) (string, error)
	// form is the body of the round's POST.
	form func(round int) url.Values
	// check judges the answer's status and body.
	check func(round, status int, body []byte) error
}

// consolePages are the pages timed, in the order of each round: the
// matrix toggle, a POST, last (it needs the CSRF token of a page).
func consolePages(t *dataset.Tenant) []consolePage {
	bigRole := dataset.Role(0)
	// user-0 holds role-1200's first permission through role-100 and
	// role-1100 (newConsoleExtras).
	perm := dataset.Permission(int(t.RolePerms[1200][0]))
	// The toggled cell: a permission of the first matrix pages that the
	// role does not hold; the first toggle grants it, the next revokes it.
	togglePerm := 0
	for {
		if _, held := slices.BinarySearch(t.RolePerms[consoleToggleRole], int32(togglePerm)); !held {
			break
		}
		togglePerm++
	}
	toggleRole, togglePermName := dataset.Role(consoleToggleRole), dataset.Permission(togglePerm)
	page := func(name, path string, marks ...string) consolePage {
		return consolePage{name: name, method: http.MethodGet, path: path, check: wantPage(marks...)}
	}
	matrixNext := page("matrix, a later page", "", `id="matrix"`)
	matrixNext.locate = func(ctx context.Context, b *browser) (string, error) {
		// The first page's next roles, then their next permissions.
		path := "/console/matrix"
		for _, link := range []string{"roles-next", "perms-next"} {
			_, body, err := b.get(ctx, path)
			if err != nil {
				return "", err
			}
			next, ok := linkByID(body, link)
			if !ok {
				return "", fmt.Errorf("no a#%s on %s", link, path)
			}
			path = next
		}
		return path, nil
	}
	toggle := consolePage{name: "matrix toggle (htmx)", method: http.MethodPost, path: "/console/matrix",
		form: func(round int) url.Values {
			return url.Values{"role": {toggleRole}, "permission": {togglePermName}, "grant": {fmt.Sprint(round%2 == 0)}}
		},
		check: func(round, status int, body []byte) error {
			switch {
			case status == http.StatusSeeOther:
				return nil
			case status != http.StatusOK:
				return fmt.Errorf("status %d, want 200 or 303: %.300s", status, body)
			}
			want := fmt.Sprintf(`aria-pressed="%v"`, round%2 == 0)
			if !bytes.Contains(body, []byte(want)) {
				return fmt.Errorf("the cell answered has no %s: %.300s", want, body)
			}
			return nil
		}}
	return []consolePage{
		page("roles", "/console/roles", `id="roles"`),
		page("roles, search", "/console/roles?q=role-99", `data-role="role-99"`),
		page("role of "+benchreport.Count(consoleBigRoles[0])+"+ members", "/console/roles/"+bigRole, `id="members"`, `id="permissions"`),
		page("its delete confirmation", "/console/roles/"+bigRole+"/delete", `id="confirm-delete"`),
		page("matrix", "/console/matrix", `id="matrix"`),
		matrixNext,
		page("user in several roles", "/console/users?"+url.Values{"user": {dataset.User(0)}}.Encode(), `id="user-roles"`, `id="user-permissions"`),
		page("check, inherited", "/console/check?"+url.Values{"user": {dataset.User(0)}, "permission": {perm}}.Encode(), `data-allowed="true"`),
		page("audit", "/console/audit", `id="audit"`),
		page("workflows", "/console/workflows", `data-workflow="`+consoleWorkflows[0].name+`"`),
		toggle,
	}
}

// wantPage judges a page's answer: 200, holding every mark.
func wantPage(marks ...string) func(int, int, []byte) error {
	return func(_, status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("status %d, want 200: %.300s", status, body)
		}
		for _, m := range marks {
			if !bytes.Contains(body, []byte(m)) {
				return fmt.Errorf("the page has no %s", m)
			}
		}
		return nil
	}
}

// browser is a console client: one keep-alive connection, the session
// cookie and CSRF token of its sign-in, no redirect followed.
type browser struct {
	base   string
	client *http.Client
	cookie *http.Cookie
	csrf   string
}

func newBrowser(base string) *browser {
	return &browser{base: base, client: &http.Client{
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// consoleCookie is the console's session cookie.
const consoleCookie = "auth_console"

// signIn posts the sign-in form with the credential and keeps the session
// cookie.
func (b *browser) signIn(ctx context.Context, credential string) error {
	status, header, body, err := b.send(ctx, http.MethodPost, "/console/signin", url.Values{"credential": {credential}}, false)
	if err != nil {
		return err
	}
	if status != http.StatusSeeOther || header.Get("Location") != "/console/roles" {
		return fmt.Errorf("sign-in: status %d, Location %q; want 303 to /console/roles: %.300s", status, header.Get("Location"), body)
	}
	for _, ck := range (&http.Response{Header: header}).Cookies() {
		if ck.Name == consoleCookie && ck.Value != "" {
			b.cookie = &http.Cookie{Name: ck.Name, Value: ck.Value}
			return nil
		}
	}
	return fmt.Errorf("sign-in: no %s cookie in %q", consoleCookie, header.Values("Set-Cookie"))
}

// get fetches a page (untimed) and returns its status and body.
func (b *browser) get(ctx context.Context, path string) (int, []byte, error) {
	status, _, body, err := b.send(ctx, http.MethodGet, path, nil, false)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d: %.300s", path, status, body)
	}
	return status, body, err
}

// fetch sends the round's request of pg and times it, from the send to the
// end of the answer, which pg.check must accept.
func (b *browser) fetch(ctx context.Context, pg *consolePage, round int) (time.Duration, int, error) {
	var form url.Values
	if pg.form != nil {
		form = pg.form(round)
	}
	if pg.method != http.MethodGet && b.csrf == "" {
		return 0, 0, errors.New("no CSRF token: no page read before the POST")
	}
	started := time.Now()
	status, header, body, err := b.send(ctx, pg.method, pg.path, form, pg.method != http.MethodGet)
	elapsed := time.Since(started)
	if err != nil {
		return 0, 0, err
	}
	if status == http.StatusSeeOther && strings.HasPrefix(header.Get("Location"), "/console/signin") {
		return 0, 0, errors.New("the session was lost: redirected to the sign-in page")
	}
	if err := pg.check(round, status, body); err != nil {
		return 0, 0, err
	}
	return elapsed, len(body), nil
}

// send sends one request with the session cookie (a form as the body, if
// any; htmx: as htmx sends it, with the CSRF header) and reads the whole
// answer. A page's CSRF token is kept the first time one is seen.
func (b *browser) send(ctx context.Context, method, path string, form url.Values, htmx bool) (int, http.Header, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != http.MethodGet {
		req.Header.Set("Origin", b.base)
	}
	if htmx {
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	if b.csrf == "" && resp.StatusCode == http.StatusOK {
		b.csrf, _ = csrfToken(data)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// csrfMeta finds the CSRF token of a console page.
var csrfMeta = regexp.MustCompile(`<meta\s+name="csrf-token"\s+content="([^"]*)"`)

// csrfToken returns the CSRF token of a console page.
func csrfToken(page []byte) (string, bool) {
	m := csrfMeta.FindSubmatch(page)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(string(m[1])), true
}

// anchor and href find links and their targets.
var (
	anchor = regexp.MustCompile(`<a\b[^>]*>`)
	href   = regexp.MustCompile(`\bhref="([^"]*)"`)
)

// linkByID returns the target of the page's link a#id.
func linkByID(page []byte, id string) (string, bool) {
	for _, tag := range anchor.FindAll(page, -1) {
		if !bytes.Contains(tag, []byte(`id="`+id+`"`)) {
			continue
		}
		if m := href.FindSubmatch(tag); m != nil {
			return html.UnescapeString(string(m[1])), true
		}
	}
	return "", false
}

// apiClient sends v2 API requests with the tenant's client key.
type apiClient struct {
	base   string // …/api/v2
	key    string
	client *http.Client
}

// do sends a JSON request and returns the body of a 2xx answer.
func (a *apiClient) do(ctx context.Context, method, path string, payload any) ([]byte, error) {
	var body io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return data, fmt.Errorf("%s %s: status %d: %.500s", method, path, resp.StatusCode, data)
	}
	return data, nil
}

// importMerge adds the extras with merge imports and checks that every
// rule was added.
func (a *apiClient) importMerge(ctx context.Context, x consoleExtras) error {
	added := 0
	for _, f := range x.files {
		data, err := a.do(ctx, http.MethodPost, "/policy/import?mode=merge", map[string]string{"policy": f})
		if err != nil {
			return err
		}
		var v struct {
			Data struct {
				RulesAdded *int `json:"rules_added"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.Data.RulesAdded == nil {
			return fmt.Errorf("import: answer %.300q has no data.rules_added", data)
		}
		added += *v.Data.RulesAdded
	}
	if want := x.members + x.parents; added != want {
		return fmt.Errorf("import: %d rules added, want %d", added, want)
	}
	return nil
}

// workflow registers a daily workflow of the permission and runs it now,
// runs times.
func (a *apiClient) workflow(ctx context.Context, name, perm string, runs int) error {
	def := map[string]any{"schedule": "@daily", "permission": perm, "description": "Console benchmark: the holders of " + perm}
	if _, err := a.do(ctx, http.MethodPut, "/workflows/"+name, def); err != nil {
		return err
	}
	for range runs {
		data, err := a.do(ctx, http.MethodPost, "/workflows/"+name+"/run", nil)
		if err != nil {
			return err
		}
		var v struct {
			Data struct {
				Outcome string `json:"outcome"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.Data.Outcome != "ok" {
			return fmt.Errorf("run of workflow %s: answer %.300q, want outcome ok", name, data)
		}
	}
	return nil
}
