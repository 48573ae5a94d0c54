package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/policy"
)

// Helpers of the revision, consistency, change feed and expiry tests: v2
// calls safe in any goroutine, the revision of an answer, the change feed,
// a policy rebuilt from the feed and one read from the export.

// v2Call sends a v2 request (path relative to /api/v2, query included)
// with an optional JSON body. It is safe in any goroutine: an answer that
// does not match the OpenAPI document fails the test when it ends.
func (s *server) v2Call(key, method, path, body string) (response, v2Answer, error) {
	headers := []string{"Authorization: Bearer " + key}
	var b []byte
	if body != "" {
		b = []byte(body)
		headers = append(headers, "Content-Type: application/json")
	}
	r, err := s.sendBody(method, "/api/v2"+path, b, headers...)
	if err != nil {
		return r, v2Answer{}, err
	}
	if serr := s.checkSchema(r); serr != nil {
		s.mismatches.add(serr)
	}
	var a v2Answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		return r, a, fmt.Errorf("%s: not JSON: %v", r, err)
	}
	if a.Code != r.status || a.Success != (r.status < 400) {
		return r, a, fmt.Errorf("%s: envelope code %d success %v", r, a.Code, a.Success)
	}
	return r, a, nil
}

// v2Must is v2Call that fails the test unless the answer has the status.
func (s *server) v2Must(t testing.TB, key, method, path, body string, status int) (response, v2Answer) {
	t.Helper()
	r, a, err := s.v2Call(key, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	return r, a
}

// revisionOf reads data.revision of a successful answer and checks that the
// X-Auth-Revision header says the same.
func revisionOf(r response, a v2Answer) (int64, error) {
	var d struct {
		Revision *int64 `json:"revision"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil || d.Revision == nil {
		return 0, fmt.Errorf("%s: no data.revision (%v)", r, err)
	}
	h := r.header.Get("X-Auth-Revision")
	if h != strconv.FormatInt(*d.Revision, 10) {
		return 0, fmt.Errorf("%s: header X-Auth-Revision %q, data.revision %d", r, h, *d.Revision)
	}
	return *d.Revision, nil
}

// mustRevision is revisionOf that fails the test.
func mustRevision(t testing.TB, r response, a v2Answer) int64 {
	t.Helper()
	n, err := revisionOf(r, a)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// atLeast is the consistency parameter value asking for revision n.
func atLeast(n int64) string { return "at_least:" + strconv.FormatInt(n, 10) }

// checkPath is the path of GET /api/v2/check (relative to /api/v2) for
// user and perm, with consistency when it is not empty.
func checkPath(user, perm, consistency string) string {
	q := url.Values{"user": {user}, "permission": {perm}}
	if consistency != "" {
		q.Set("consistency", consistency)
	}
	return "/check?" + q.Encode()
}

// checked is a check's answer: allowed, and the revision it was computed
// at.
type checked struct {
	allowed  bool
	revision int64
}

// check asks GET /api/v2/check on s; any answer but 200 is an error.
func (s *server) check(key, user, perm, consistency string) (checked, error) {
	r, a, err := s.v2Call(key, "GET", checkPath(user, perm, consistency), "")
	if err != nil {
		return checked{}, err
	}
	if r.status != 200 {
		return checked{}, fmt.Errorf("%s: want status 200", r)
	}
	var d struct {
		Allowed *bool `json:"allowed"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil || d.Allowed == nil {
		return checked{}, fmt.Errorf("%s: no data.allowed (%v)", r, err)
	}
	rev, err := revisionOf(r, a)
	return checked{allowed: *d.Allowed, revision: rev}, err
}

// mustCheck is check that fails the test on an error.
func (s *server) mustCheck(t testing.TB, key, user, perm, consistency string) checked {
	t.Helper()
	d, err := s.check(key, user, perm, consistency)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// listed is one item of a list of roles, members or grants.
type listed struct {
	Description *string `json:"description"` // roles
	Name        string  `json:"name"`
	User        string  `json:"user"`
	ExpiresAt   *string `json:"expires_at"`
}

// listAll reads every page of a v2 list (path relative to /api/v2, query
// allowed) and returns its items and the revision of its last page.
func (s *server) listAll(key, path string) ([]listed, int64, error) {
	var out []listed
	cursor := ""
	var rev int64
	for pages := 0; ; pages++ {
		if pages > 100 {
			return nil, 0, fmt.Errorf("GET %s: the cursor does not end", path)
		}
		p := path
		if cursor != "" {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + "cursor=" + url.QueryEscape(cursor)
		}
		r, a, err := s.v2Call(key, "GET", p, "")
		if err != nil {
			return nil, 0, err
		}
		if r.status != 200 {
			return nil, 0, fmt.Errorf("%s: want status 200", r)
		}
		var pg struct {
			Items      []listed `json:"items"`
			NextCursor *string  `json:"next_cursor"`
		}
		if err := json.Unmarshal(a.Data, &pg); err != nil {
			return nil, 0, fmt.Errorf("%s: %v", r, err)
		}
		if rev, err = revisionOf(r, a); err != nil {
			return nil, 0, err
		}
		out = append(out, pg.Items...)
		if pg.NextCursor == nil {
			return out, rev, nil
		}
		cursor = *pg.NextCursor
	}
}

// feedItem is one change of GET /api/v2/changes.
type feedItem struct {
	At          string          `json:"at"`
	Description json.RawMessage `json:"description,omitempty"`
	ExpiresAt   *string         `json:"expires_at,omitempty"`
	Op          string          `json:"op"`
	Parent      string          `json:"parent,omitempty"`
	Permission  string          `json:"permission,omitempty"`
	Revision    int64           `json:"revision"`
	Role        string          `json:"role,omitempty"`
	User        string          `json:"user,omitempty"`
}

func (it feedItem) String() string {
	b, _ := json.Marshal(it)
	return string(b)
}

// feedPage is data of GET /api/v2/changes.
type feedPage struct {
	Items      []feedItem `json:"items"`
	NextCursor *string    `json:"next_cursor"`
	Revision   int64      `json:"revision"`
}

// changes reads one page of the change feed on s (query without "?").
// Any answer but 200 is returned as an error with the response.
func (s *server) changes(key, query string) (feedPage, response, error) {
	return s.changesVia(s.http, key, query)
}

// changesVia is changes through the given HTTP client (a long poll needs a
// longer timeout than the servers' client has).
func (s *server) changesVia(hc *http.Client, key, query string) (feedPage, response, error) {
	req, err := http.NewRequest("GET", s.base+"/api/v2/changes?"+query, nil)
	if err != nil {
		return feedPage{}, response{}, err
	}
	return s.changesDo(hc, req, key)
}

// changesDo sends a request of the change feed with the key and reads its
// answer as changes does.
func (s *server) changesDo(hc *http.Client, req *http.Request, key string) (feedPage, response, error) {
	var pg feedPage
	query := req.URL.RawQuery
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return pg, response{}, fmt.Errorf("GET /api/v2/changes?%s: %v", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return pg, response{}, fmt.Errorf("GET /api/v2/changes?%s: read body: %v", query, err)
	}
	r := response{method: "GET", path: "/api/v2/changes", status: resp.StatusCode, header: resp.Header, body: body}
	if serr := s.checkSchema(r); serr != nil {
		s.mismatches.add(serr)
	}
	var a v2Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return pg, r, fmt.Errorf("%s: not JSON: %v", r, err)
	}
	if r.status != 200 {
		return pg, r, fmt.Errorf("GET /api/v2/changes?%s: %d %s", query, r.status, r.body)
	}
	if err := json.Unmarshal(a.Data, &pg); err != nil || pg.Items == nil {
		return pg, r, fmt.Errorf("GET /api/v2/changes?%s: not a page (%v): %s", query, err, a.Data)
	}
	if h := resp.Header.Get("X-Auth-Revision"); h != "" && h != strconv.FormatInt(pg.Revision, 10) {
		return pg, r, fmt.Errorf("GET /api/v2/changes?%s: header X-Auth-Revision %q, data.revision %d", query, h, pg.Revision)
	}
	for _, it := range pg.Items {
		at, err := time.Parse(time.RFC3339Nano, it.At)
		if err != nil || at.Location() != time.UTC || !strings.HasSuffix(it.At, "Z") {
			return pg, r, fmt.Errorf("GET /api/v2/changes?%s: item %s: at is not an RFC 3339 UTC time", query, it)
		}
	}
	if pg.NextCursor != nil && (len(pg.Items) == 0 || pg.Revision != pg.Items[len(pg.Items)-1].Revision) {
		return pg, r, fmt.Errorf("GET /api/v2/changes?%s: a page with a next_cursor must end at data.revision: %s", query, a.Data)
	}
	if pg.NextCursor == nil && len(pg.Items) > 0 && pg.Revision < pg.Items[len(pg.Items)-1].Revision {
		return pg, r, fmt.Errorf("GET /api/v2/changes?%s: data.revision %d is before its last item's", query, pg.Revision)
	}
	return pg, r, nil
}

// feedAll reads the whole feed after since on s, following next_cursor,
// with pages of limit items; it returns the items and the latest revision.
func (s *server) feedAll(key string, since int64, limit int) ([]feedItem, int64, error) {
	var out []feedItem
	q := fmt.Sprintf("since=%d&limit=%d", since, limit)
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return nil, 0, fmt.Errorf("GET /api/v2/changes: the cursor does not end")
		}
		pg, _, err := s.changes(key, q)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, pg.Items...)
		if pg.NextCursor == nil {
			return out, pg.Revision, nil
		}
		q = fmt.Sprintf("cursor=%s&limit=%d", url.QueryEscape(*pg.NextCursor), limit)
	}
}

// pair is a role and the other name of a link (a permission, a user, a
// parent).
type pair struct{ role, name string }

// policyState is a tenant's policy: its roles with their descriptions,
// grants and memberships with their expiry ("" when permanent), parent
// links.
type policyState struct {
	roles   map[string]*string
	grants  map[pair]string
	members map[pair]string
	parents map[pair]bool
}

func newPolicyState() *policyState {
	return &policyState{roles: map[string]*string{}, grants: map[pair]string{}, members: map[pair]string{}, parents: map[pair]bool{}}
}

// expiryKey is an expires_at as a comparable text ("" when absent), so
// that two spellings of one instant compare equal.
func expiryKey(s *string) (string, error) {
	if s == nil {
		return "", nil
	}
	at, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return "", fmt.Errorf("expires_at %q: %v", *s, err)
	}
	return at.UTC().Format(time.RFC3339Nano), nil
}

// apply applies one change of the feed, as the contract states its
// meaning. A change that does not fit the state (a link to a missing role,
// a removal of what is not there, a role created twice) is an error: the
// feed left something out or said something twice.
func (p *policyState) apply(it feedItem) error {
	needRole := func(r string) error {
		if _, ok := p.roles[r]; !ok {
			return fmt.Errorf("change %s: role %q does not exist", it, r)
		}
		return nil
	}
	switch it.Op {
	case "create_role":
		if _, ok := p.roles[it.Role]; ok {
			return fmt.Errorf("change %s: role %q exists already", it, it.Role)
		}
		p.roles[it.Role] = nil
	case "delete_role":
		if err := needRole(it.Role); err != nil {
			return err
		}
		delete(p.roles, it.Role)
		for k := range p.grants {
			if k.role == it.Role {
				delete(p.grants, k)
			}
		}
		for k := range p.members {
			if k.role == it.Role {
				delete(p.members, k)
			}
		}
		for k := range p.parents {
			if k.role == it.Role || k.name == it.Role {
				delete(p.parents, k)
			}
		}
	case "set_description":
		if err := needRole(it.Role); err != nil {
			return err
		}
		if it.Description == nil {
			return fmt.Errorf("change %s: no description", it)
		}
		var d *string
		if err := json.Unmarshal(it.Description, &d); err != nil {
			return fmt.Errorf("change %s: description: %v", it, err)
		}
		p.roles[it.Role] = d
	case "grant", "add_member":
		if err := needRole(it.Role); err != nil {
			return err
		}
		exp, err := expiryKey(it.ExpiresAt)
		if err != nil {
			return fmt.Errorf("change %s: %v", it, err)
		}
		if it.Op == "grant" {
			p.grants[pair{it.Role, it.Permission}] = exp
		} else {
			p.members[pair{it.Role, it.User}] = exp
		}
	case "revoke", "remove_member", "expire":
		m, k := p.grants, pair{it.Role, it.Permission}
		if it.Op == "remove_member" || (it.Op == "expire" && it.User != "") {
			m, k = p.members, pair{it.Role, it.User}
		}
		if _, ok := m[k]; !ok {
			return fmt.Errorf("change %s: nothing to remove", it)
		}
		delete(m, k)
	case "add_parent":
		if err := needRole(it.Role); err != nil {
			return err
		}
		if err := needRole(it.Parent); err != nil {
			return err
		}
		p.parents[pair{it.Role, it.Parent}] = true
	case "remove_parent":
		if !p.parents[pair{it.Role, it.Parent}] {
			return fmt.Errorf("change %s: nothing to remove", it)
		}
		delete(p.parents, pair{it.Role, it.Parent})
	case "delete_user":
		if it.User == "" {
			return fmt.Errorf("change %s: no user", it)
		}
		for k := range p.members {
			if k.name == it.User {
				delete(p.members, k)
			}
		}
	default:
		return fmt.Errorf("change %s: unknown op", it)
	}
	return nil
}

// links writes a set of links as sorted "role name" lines, with their
// expiry when withExpiry.
func links[V any](m map[pair]V, withExpiry bool) string {
	var out []string
	for k, v := range m {
		line := k.role + " " + k.name
		if e, ok := any(v).(string); ok && withExpiry && e != "" {
			line += " until " + e
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// text writes the state as comparable text (expiry of the links when
// withExpiry, descriptions when withDescriptions).
func (p *policyState) text(withExpiry, withDescriptions bool) string {
	var roles []string
	for r, d := range p.roles {
		if withDescriptions && d != nil {
			r += fmt.Sprintf(" (%q)", *d)
		}
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return fmt.Sprintf("roles:\n%s\ngrants:\n%s\nmembers:\n%s\nparents:\n%s\n",
		strings.Join(roles, "\n"), links(p.grants, withExpiry), links(p.members, withExpiry), links(p.parents, false))
}

// exported reads GET /api/v2/policy/export (with consistency when given)
// into a policy state without expiry or descriptions, and returns its
// revision too.
func (s *server) exported(key, consistency string) (*policyState, int64, error) {
	path := "/policy/export"
	if consistency != "" {
		path += "?consistency=" + url.QueryEscape(consistency)
	}
	r, a, err := s.v2Call(key, "GET", path, "")
	if err != nil {
		return nil, 0, err
	}
	if r.status != 200 {
		return nil, 0, fmt.Errorf("%s: want status 200", r)
	}
	var d struct {
		Policy   string `json:"policy"`
		Revision int64  `json:"revision"`
		Version  int64  `json:"version"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil {
		return nil, 0, fmt.Errorf("%s: %v", r, err)
	}
	rev, err := revisionOf(r, a)
	if err != nil {
		return nil, 0, err
	}
	if d.Version != rev {
		return nil, 0, fmt.Errorf("%s: data.version %d, data.revision %d: want the same", r, d.Version, rev)
	}
	f, err := policy.ParsePolicyCSV(strings.NewReader(d.Policy))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: the policy does not parse: %v", r, err)
	}
	p := newPolicyState()
	for _, role := range f.Roles {
		p.roles[role] = nil
	}
	role := func(sub string) (string, bool) { return strings.CutPrefix(sub, "role:") }
	for _, rule := range f.Rules {
		if len(rule.Fields) < 3 {
			return nil, 0, fmt.Errorf("export: rule %s %v: fewer than 3 fields", rule.Ptype, rule.Fields)
		}
		f0, f1, f2 := rule.Fields[0], rule.Fields[1], rule.Fields[2]
		switch rule.Ptype {
		case "p":
			r, ok := role(f0)
			if !ok {
				return nil, 0, fmt.Errorf("export: p rule %v: the subject is not a role", rule.Fields)
			}
			p.grants[pair{r, f2}] = ""
		case "g":
			target, ok := role(f1)
			if !ok {
				return nil, 0, fmt.Errorf("export: g rule %v: the target is not a role", rule.Fields)
			}
			if child, ok := role(f0); ok {
				p.parents[pair{child, target}] = true
			} else {
				p.members[pair{target, f0}] = ""
			}
		default:
			return nil, 0, fmt.Errorf("export: rule type %q", rule.Ptype)
		}
	}
	return p, rev, nil
}

// withoutExpiry is the state with every expiry dropped (for comparing with
// an export).
func (p *policyState) withoutExpiry() *policyState {
	q := newPolicyState()
	for r := range p.roles {
		q.roles[r] = nil
	}
	for k := range p.grants {
		q.grants[k] = ""
	}
	for k := range p.members {
		q.members[k] = ""
	}
	for k := range p.parents {
		q.parents[k] = true
	}
	return q
}

// reportLine logs a measurement and, when AUTH_E2E_REPORT_DIR is set,
// appends it as one line to e2e-report.txt there.
func reportLine(t testing.TB, line string) {
	t.Helper()
	t.Log(line)
	dir := os.Getenv("AUTH_E2E_REPORT_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("report: %v", err)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "e2e-report.txt"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Errorf("report: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("report: %v", err)
	}
}
