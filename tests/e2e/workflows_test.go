package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ourway/auth/webhook"
)

// Workflows: registered workflows run on their schedules and send signed
// webhooks to receivers, which are real HTTP servers of the test process
// on 127.0.0.1 (allow-listed with AUTH_WEBHOOK_ALLOWED_HOSTS).

// deliverWithin bounds how soon a "1s" workflow's run reaches its receiver.
const deliverWithin = 10 * time.Second

// wfEnv is the settings of a server whose workflows may call receivers of
// the test process.
var wfEnv = []string{"AUTH_WEBHOOK_ALLOWED_HOSTS=127.0.0.1", "AUTH_WEBHOOK_ATTEMPTS=3"}

func TestWorkflowsSQLite(t *testing.T) {
	t.Parallel()
	runWorkflowSuite(t, sqliteServer)
}

func TestWorkflowsPostgres(t *testing.T) {
	skipHeavyInShort(t)
	t.Parallel()
	runWorkflowSuite(t, postgresServer)
}

// runWorkflowSuite runs the workflow tests on one server per backend; each
// subtest is a tenant of its own.
func runWorkflowSuite(t *testing.T, newServer factory) {
	s := newServer(t, wfEnv...)
	for name, fn := range map[string]func(t *testing.T, c v2Client){
		"ScheduledDelivery": testWorkflowScheduledDelivery,
		"Retries":           testWorkflowRetries,
		"Registry":          testWorkflowRegistry,
		"SecretRotation":    testWorkflowSecretRotation,
		"V1Routes":          testWorkflowV1Routes,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, v2Client{s.client(newKey(t))})
		})
	}
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// id is the delivery's Auth-Webhook-Id.
func (d delivery) id() string { return d.header.Get(webhook.HeaderID) }

// payload decodes the delivery's body.
func (d delivery) payload(t testing.TB) wfPayload {
	t.Helper()
	var p wfPayload
	if err := json.Unmarshal(d.body, &p); err != nil {
		t.Fatalf("webhook body %s: %v", d.body, err)
	}
	return p
}

// wfPayload is the body of a delivery.
type wfPayload struct {
	Added    []string `json:"added"`
	At       string   `json:"at"`
	Removed  []string `json:"removed"`
	RunID    string   `json:"run_id"`
	Users    []string `json:"users"`
	Workflow string   `json:"workflow"`
}

// receiver is a webhook receiver: it records every request and answers
// what answer says (200 when answer is nil).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(n int, r *http.Request) int // n counts the requests from 0
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readAll(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, r)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

// url is where the receiver listens.
func (rc *receiver) url() string { return rc.srv.URL + "/hook" }

// deliveries returns what the receiver got so far.
func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// await polls until found returns a delivery index (>= 0) and returns that
// delivery.
func (rc *receiver) await(t testing.TB, within time.Duration, what string, found func(ds []delivery) int) delivery {
	t.Helper()
	var d delivery
	eventually(t, within, what, func() (string, error) {
		ds := rc.deliveries()
		if i := found(ds); i >= 0 {
			d = ds[i]
			return "", nil
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d deliveries", len(ds))
		for _, d := range ds[max(0, len(ds)-3):] {
			fmt.Fprintf(&b, "\n  %s %s", d.id(), d.body)
		}
		return b.String(), nil
	})
	return d
}

// wfResource is a workflow as the v2 routes answer it (created and
// secret only in PUT's answer).
type wfResource struct {
	CatchUp     bool    `json:"catch_up"`
	Created     *bool   `json:"created"`
	CreatedAt   string  `json:"created_at"`
	Description *string `json:"description"`
	Enabled     bool    `json:"enabled"`
	Name        string  `json:"name"`
	NextRunAt   *string `json:"next_run_at"`
	Notify      string  `json:"notify"`
	Permission  string  `json:"permission"`
	Schedule    string  `json:"schedule"`
	Secret      *string `json:"secret"`
	UpdatedAt   string  `json:"updated_at"`
	WebhookURL  *string `json:"webhook_url"`
}

// wfRun is a run as the v2 routes answer it.
type wfRun struct {
	Added       []string   `json:"added"`
	Attempt     int        `json:"attempt"`
	Count       int        `json:"count"`
	DurationMS  int64      `json:"duration_ms"`
	Error       *string    `json:"error"`
	FinishedAt  *string    `json:"finished_at"`
	ID          string     `json:"id"`
	Outcome     string     `json:"outcome"`
	Removed     []string   `json:"removed"`
	ScheduledAt string     `json:"scheduled_at"`
	StartedAt   string     `json:"started_at"`
	Trigger     string     `json:"trigger"`
	Users       []string   `json:"users"`
	Webhook     *wfWebhook `json:"webhook"`
}

type wfWebhook struct {
	Attempts int     `json:"attempts"`
	Error    *string `json:"error"`
	Outcome  string  `json:"outcome"`
	Status   *int    `json:"status"`
}

func (w *wfWebhook) String() string {
	if w == nil {
		return "null"
	}
	st, e := "null", "null"
	if w.Status != nil {
		st = strconv.Itoa(*w.Status)
	}
	if w.Error != nil {
		e = strconv.Quote(*w.Error)
	}
	return fmt.Sprintf("{outcome %s attempts %d status %s error %s}", w.Outcome, w.Attempts, st, e)
}

// putWorkflow registers or replaces a workflow and checks the status.
func (c v2Client) putWorkflow(t testing.TB, name, body string, status int) wfResource {
	t.Helper()
	r, a := c.send(t, "PUT", "/workflows/"+name, body)
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	var w wfResource
	if err := json.Unmarshal(a.Data, &w); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	return w
}

// runWorkflow runs a workflow now (POST /run) and returns the run.
func (c v2Client) runWorkflow(t testing.TB, name string) wfRun {
	t.Helper()
	r, a := c.send(t, "POST", "/workflows/"+name+"/run", "")
	if r.status != 200 {
		t.Fatalf("%s: want 200", r)
	}
	var run wfRun
	if err := json.Unmarshal(a.Data, &run); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	return run
}

// workflowRuns reads every page of a workflow's runs (newest first).
func (c v2Client) workflowRuns(t testing.TB, name string, limit int) []wfRun {
	t.Helper()
	var out []wfRun
	path := fmt.Sprintf("/workflows/%s/runs?limit=%d", name, limit)
	for next := path; ; {
		items, cursor := c.page(t, next)
		for _, raw := range items {
			var run wfRun
			if err := json.Unmarshal(raw, &run); err != nil {
				t.Fatalf("run %s: %v", raw, err)
			}
			out = append(out, run)
		}
		if cursor == nil {
			return out
		}
		next = path + "&cursor=" + url.QueryEscape(*cursor)
	}
}

// findRun returns the run of id in runs.
func findRun(t testing.TB, runs []wfRun, id string) wfRun {
	t.Helper()
	for _, r := range runs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("run %s not in the runs list (%d runs)", id, len(runs))
	return wfRun{}
}

// checkDelivery checks a delivery's headers, its body's form and its
// signature with secret, and returns its payload.
func checkDelivery(t testing.TB, d delivery, secret, workflow string) wfPayload {
	t.Helper()
	if err := webhook.Verify(secret, d.header, d.body, time.Now(), 0); err != nil {
		t.Errorf("delivery %s does not verify with the workflow's secret: %v", d.body, err)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "auth-webhook/1"} {
		if got := d.header.Get(k); got != want {
			t.Errorf("delivery header %s = %q, want %q", k, got, want)
		}
	}
	// The body is compact JSON with exactly these keys, sorted.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(d.body, &fields); err != nil {
		t.Fatalf("delivery body %s: %v", d.body, err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, ","); got != "added,at,removed,run_id,users,workflow" {
		t.Errorf("delivery body keys %s, want added,at,removed,run_id,users,workflow", got)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, d.body)
	canonical, _ := json.Marshal(fields) // a map marshals with its keys sorted
	if !bytes.Equal(d.body, compact.Bytes()) || !bytes.Equal(d.body, canonical) {
		t.Errorf("delivery body is not compact JSON with sorted keys: %s", d.body)
	}
	p := d.payload(t)
	if p.Workflow != workflow {
		t.Errorf("delivery workflow %q, want %q", p.Workflow, workflow)
	}
	if p.RunID == "" || d.id() != p.RunID {
		t.Errorf("header %s = %q, body run_id = %q: want equal and not empty", webhook.HeaderID, d.id(), p.RunID)
	}
	if at, err := time.Parse(time.RFC3339Nano, p.At); err != nil || at.Location() != time.UTC {
		t.Errorf("delivery at = %q: want an RFC 3339 UTC time (%v)", p.At, err)
	}
	return p
}

// list writes names as the test compares them.
func list(names []string) string { return "[" + strings.Join(names, " ") + "]" }

// testWorkflowScheduledDelivery: a "1s" workflow delivers a signed payload
// of who holds its permission; a change of membership (through an
// inherited role too) appears as added or removed in the next delivery
// and in the runs list; a tampered or replayed delivery fails Verify.
func testWorkflowScheduledDelivery(t *testing.T, c v2Client) {
	rc := newReceiver(t, nil)
	for _, r := range []string{"clerks", "juniors"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	c.expect(t, "PUT", "/roles/clerks/permissions/run_payroll", "", 201, `{"created":true,"expires_at":null,"permission":"run_payroll","role":"clerks"}`)
	c.expect(t, "PUT", "/roles/clerks/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"clerks","user":"alice"}`)
	c.expect(t, "PUT", "/roles/clerks/members/bob", "", 201, `{"created":true,"expires_at":null,"role":"clerks","user":"bob"}`)
	// carol is in juniors, which holds nothing yet.
	c.expect(t, "PUT", "/roles/juniors/members/carol", "", 201, `{"created":true,"expires_at":null,"role":"juniors","user":"carol"}`)

	w := c.putWorkflow(t, "payroll", `{"schedule":"1s","permission":"run_payroll","webhook_url":"`+rc.url()+`"}`, 201)
	if w.Secret == nil || !strings.HasPrefix(*w.Secret, "whsec_") {
		t.Fatalf("PUT answered secret %v, want whsec_…", w.Secret)
	}
	secret := *w.Secret

	first := rc.await(t, deliverWithin, "first delivery", func(ds []delivery) int {
		if len(ds) > 0 {
			return 0
		}
		return -1
	})
	p := checkDelivery(t, first, secret, "payroll")
	if list(p.Users) != "[alice bob]" || list(p.Added) != "[alice bob]" || list(p.Removed) != "[]" {
		t.Errorf("first delivery users %v added %v removed %v, want [alice bob] [alice bob] []", p.Users, p.Added, p.Removed)
	}

	// A tampered body, or the same delivery verified long after it was
	// sent (a replay), does not verify.
	tampered := bytes.Replace(first.body, []byte(`"alice"`), []byte(`"mallory"`), 1)
	if err := webhook.Verify(secret, first.header, tampered, time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("tampered body: Verify = %v, want ErrBadSignature", err)
	}
	ts, err := strconv.ParseInt(first.header.Get(webhook.HeaderTimestamp), 10, 64)
	if err != nil {
		t.Fatalf("timestamp header: %v", err)
	}
	later := time.Unix(ts, 0).Add(webhook.DefaultTolerance + time.Minute)
	if err := webhook.Verify(secret, first.header, first.body, later, 0); !errors.Is(err, webhook.ErrTooOld) {
		t.Errorf("replayed delivery: Verify = %v, want ErrTooOld", err)
	}
	if err := webhook.Verify("whsec_other", first.header, first.body, time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("another secret: Verify = %v, want ErrBadSignature", err)
	}

	// juniors inherits clerks' permission: carol may now run payroll.
	c.expect(t, "PUT", "/roles/juniors/parents/clerks", "", 201, `{"created":true,"parent":"clerks","role":"juniors"}`)
	added := rc.await(t, deliverWithin, "a delivery adding carol", func(ds []delivery) int {
		for i, d := range ds {
			if p := d.payload(t); list(p.Added) == "[carol]" {
				return i
			}
		}
		return -1
	})
	p = checkDelivery(t, added, secret, "payroll")
	if list(p.Users) != "[alice bob carol]" || list(p.Removed) != "[]" {
		t.Errorf("delivery after the parent link: users %v removed %v, want [alice bob carol] []", p.Users, p.Removed)
	}

	// bob leaves clerks through the v1 route.
	c.s.write(t, c.key, "DELETE", "/api/membership/bob/clerks", true)
	removed := rc.await(t, deliverWithin, "a delivery removing bob", func(ds []delivery) int {
		for i, d := range ds {
			if p := d.payload(t); list(p.Removed) == "[bob]" {
				return i
			}
		}
		return -1
	})
	p = checkDelivery(t, removed, secret, "payroll")
	if list(p.Users) != "[alice carol]" || list(p.Added) != "[]" {
		t.Errorf("delivery after bob left: users %v added %v, want [alice carol] []", p.Users, p.Added)
	}
	// Notify "changes": exactly three deliveries, one per change.
	if n := len(rc.deliveries()); n != 3 {
		t.Errorf("%d deliveries, want 3 (one per change)", n)
	}

	// The runs list, newest first, holds the same runs; runs that found
	// no change sent nothing. A run records its end once its delivery was
	// answered, which the receiver may see first: wait for the three.
	var runs []wfRun
	eventually(t, 10*time.Second, "the delivered runs have finished", func() (string, error) {
		runs = c.workflowRuns(t, "payroll", 2)
		for _, d := range []delivery{first, added, removed} {
			id := d.payload(t).RunID
			for _, r := range runs {
				if r.ID == id && r.Outcome == "running" {
					return "run " + id + " is still running", nil
				}
			}
		}
		return "", nil
	})
	if len(runs) < 3 {
		t.Fatalf("%d runs, want at least 3", len(runs))
	}
	for i := 1; i < len(runs); i++ {
		a, _ := strconv.ParseInt(runs[i-1].ID, 10, 64)
		b, _ := strconv.ParseInt(runs[i].ID, 10, 64)
		if a <= b || runs[i-1].ScheduledAt <= runs[i].ScheduledAt {
			t.Errorf("runs not newest first: %s (%s) before %s (%s)", runs[i-1].ID, runs[i-1].ScheduledAt, runs[i].ID, runs[i].ScheduledAt)
		}
	}
	for _, d := range []delivery{first, added, removed} {
		p := d.payload(t)
		r := findRun(t, runs, p.RunID)
		if r.Outcome != "ok" || r.Trigger != "schedule" || r.Attempt != 1 || list(r.Users) != list(p.Users) ||
			list(r.Added) != list(p.Added) || list(r.Removed) != list(p.Removed) || r.Count != len(p.Users) {
			t.Errorf("run %s = %+v, want ok, schedule, attempt 1 and the delivery's lists %+v", r.ID, r, p)
		}
		if r.Webhook == nil || r.Webhook.Outcome != "delivered" || r.Webhook.Attempts != 1 || r.Webhook.Status == nil || *r.Webhook.Status != 200 {
			t.Errorf("run %s webhook %s, want delivered in 1 attempt, status 200", r.ID, r.Webhook)
		}
	}
	for _, r := range runs {
		if r.Outcome == "ok" && len(r.Added)+len(r.Removed) == 0 && (r.Webhook == nil || r.Webhook.Outcome != "skipped") {
			t.Errorf("run %s found no change, webhook %s, want skipped", r.ID, r.Webhook)
		}
	}
	if last := findRun(t, runs, removed.id()); runs[0].ScheduledAt < last.ScheduledAt {
		t.Errorf("the first listed run %s is older than the last delivered one %s", runs[0].ID, last.ID)
	}
}

// testWorkflowRetries: a receiver answering 500 is tried
// AUTH_WEBHOOK_ATTEMPTS times and the run records the failure; one that
// fails once then succeeds is delivered in two attempts.
func testWorkflowRetries(t *testing.T, c v2Client) {
	c.expect(t, "PUT", "/roles/ops", "", 201, `{"created":true,"description":null,"name":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/permissions/deploy", "", 201, `{"created":true,"expires_at":null,"permission":"deploy","role":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/members/dave", "", 201, `{"created":true,"expires_at":null,"role":"ops","user":"dave"}`)

	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	w := c.putWorkflow(t, "deploy", `{"schedule":"1h","notify":"always","webhook_url":"`+failing.url()+`"}`, 201)
	run := c.runWorkflow(t, "deploy")
	if run.Trigger != "manual" || run.Outcome != "ok" || list(run.Users) != "[dave]" {
		t.Errorf("manual run %+v, want trigger manual, outcome ok, users [dave]", run)
	}
	if run.Webhook == nil || run.Webhook.Outcome != "failed" || run.Webhook.Attempts != 3 ||
		run.Webhook.Status == nil || *run.Webhook.Status != 500 || run.Webhook.Error == nil {
		t.Errorf("run webhook %s, want failed after 3 attempts with status 500 and an error", run.Webhook)
	}
	ds := failing.deliveries()
	if len(ds) != 3 {
		t.Fatalf("the failing receiver got %d requests, want 3", len(ds))
	}
	for _, d := range ds {
		checkDelivery(t, d, *w.Secret, "deploy")
		if d.id() != run.ID {
			t.Errorf("retry with %s %q, want the run id %s", webhook.HeaderID, d.id(), run.ID)
		}
	}
	if got := findRun(t, c.workflowRuns(t, "deploy", 10), run.ID); got.Webhook.String() != run.Webhook.String() {
		t.Errorf("listed run webhook %s, want %s as answered", got.Webhook, run.Webhook)
	}

	flaky := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	c.putWorkflow(t, "deploy", `{"schedule":"1h","notify":"always","webhook_url":"`+flaky.url()+`"}`, 200)
	run = c.runWorkflow(t, "deploy")
	if run.Webhook == nil || run.Webhook.Outcome != "delivered" || run.Webhook.Attempts != 2 ||
		run.Webhook.Status == nil || *run.Webhook.Status != 200 || run.Webhook.Error != nil {
		t.Errorf("run webhook %s, want delivered in 2 attempts, status 200", run.Webhook)
	}
	if ds := flaky.deliveries(); len(ds) != 2 || ds[0].id() != run.ID || ds[1].id() != run.ID {
		t.Errorf("the flaky receiver got %d requests, want 2 with id %s", len(ds), run.ID)
	}
}

// testWorkflowRegistry: the registry routes.
func testWorkflowRegistry(t *testing.T, c v2Client) {
	c.expect(t, "GET", "/workflows", "", 200, `{"items":[],"next_cursor":null}`)
	c.expectErr(t, "GET", "/workflows/ghost", "", 404, "workflow_not_found", "workflow", "ghost")
	c.expectErr(t, "POST", "/workflows/ghost/run", "", 404, "workflow_not_found", "workflow", "ghost")
	c.expectErr(t, "GET", "/workflows/ghost/runs", "", 404, "workflow_not_found", "workflow", "ghost")
	c.expectErr(t, "POST", "/workflows/ghost/secret", "", 404, "workflow_not_found", "workflow", "ghost")
	c.expect(t, "DELETE", "/workflows/ghost", "", 200, `{"deleted":false,"name":"ghost"}`)

	// PUT creates: 201, defaults, the secret once.
	w := c.putWorkflow(t, "billing", `{"schedule":"1h","description":"Monthly billing"}`, 201)
	if w.Created == nil || !*w.Created || w.Secret == nil || !strings.HasPrefix(*w.Secret, "whsec_") {
		t.Errorf("created workflow %+v: want created true and a whsec_ secret", w)
	}
	if w.Permission != "billing" || !w.Enabled || w.Notify != "changes" || !w.CatchUp || w.WebhookURL != nil ||
		w.Schedule != "1h0m0s" && w.Schedule != "1h" || w.NextRunAt == nil || w.Description == nil || *w.Description != "Monthly billing" {
		t.Errorf("created workflow %+v: want the defaults", w)
	}
	// PUT again replaces: 200, no secret, created_at kept, omitted
	// fields back to their defaults.
	r, a := c.send(t, "PUT", "/workflows/billing", `{"schedule":"*/5 * * * *","enabled":false,"notify":"always","catch_up":false,"permission":"bill"}`)
	if r.status != 200 || bytes.Contains(a.Data, []byte(`"secret"`)) {
		t.Fatalf("%s: want 200 without a secret", r)
	}
	var replaced wfResource
	if err := json.Unmarshal(a.Data, &replaced); err != nil {
		t.Fatal(err)
	}
	if replaced.Created == nil || *replaced.Created || replaced.CreatedAt != w.CreatedAt || replaced.Enabled ||
		replaced.NextRunAt != nil || replaced.Description != nil || replaced.Permission != "bill" ||
		replaced.Schedule != "*/5 * * * *" || replaced.Notify != "always" || replaced.CatchUp {
		t.Errorf("replaced workflow %+v (created %+v): want created false, created_at kept, the new definition", replaced, w)
	}
	r, a = c.send(t, "GET", "/workflows/billing", "")
	var got wfResource
	if err := json.Unmarshal(a.Data, &got); r.status != 200 || err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if got.Created != nil || got.Secret != nil || got.CreatedAt != w.CreatedAt || got.UpdatedAt != replaced.UpdatedAt || got.Permission != "bill" {
		t.Errorf("GET answered %+v, want the replaced workflow without created or secret", got)
	}

	// List pagination, sorted by name.
	c.putWorkflow(t, "audit", `{"schedule":"1h"}`, 201)
	c.putWorkflow(t, "cleanup", `{"schedule":"0 3 * * *"}`, 201)
	var names []string
	path := "/workflows?limit=1"
	for pages := 0; ; pages++ {
		items, next := c.page(t, path)
		if len(items) != 1 {
			t.Fatalf("GET %s: %d items, want 1", path, len(items))
		}
		var w wfResource
		_ = json.Unmarshal(items[0], &w)
		names = append(names, w.Name)
		if next == nil {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		path = "/workflows?limit=1&cursor=" + url.QueryEscape(*next)
	}
	if list(names) != "[audit billing cleanup]" {
		t.Errorf("listed %v, want [audit billing cleanup]", names)
	}

	// Invalid definitions.
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"every tuesday"}`, 400, "invalid_schedule", "schedule", "every tuesday")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"* * *"}`, 400, "invalid_schedule")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"500ms"}`, 400, "invalid_schedule")
	c.expectErr(t, "PUT", "/workflows/bad", `{}`, 400, "invalid_body", "field", "schedule")
	c.expectErr(t, "PUT", "/workflows/bad", ``, 400, "invalid_body", "field", "schedule")
	c.expectErr(t, "PUT", "/workflows/bad", `["1h"]`, 400, "invalid_body")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","zone":"UTC","extra":1}`, 400, "invalid_body", "field", "extra")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","enabled":"yes"}`, 400, "invalid_body", "field", "enabled")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":null}`, 400, "invalid_body", "field", "schedule")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","description":"`+strings.Repeat("d", 1025)+`"}`, 400, "invalid_body", "field", "description")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","permission":"run payroll"}`, 400, "invalid_name", "kind", "permission")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","notify":"sometimes"}`, 400, "invalid_body", "field", "notify")
	c.expectErr(t, "PUT", "/workflows/bad", `{"schedule":"1h","webhook_url":"ftp://example.com/"}`, 400, "webhook_refused", "webhook_url", "ftp://example.com/")
	c.expectErr(t, "PUT", "/workflows/bad.name", `{"schedule":"1h"}`, 400, "invalid_name", "kind", "workflow")
	c.expectErr(t, "PUT", "/workflows/"+strings.Repeat("w", 65), `{"schedule":"1h"}`, 400, "invalid_name", "kind", "workflow")
	c.expectErr(t, "GET", "/workflows/bad", "", 404, "workflow_not_found")

	// A manual run of a disabled workflow runs it all the same.
	run := c.runWorkflow(t, "billing")
	if run.Trigger != "manual" || run.Outcome != "ok" || run.Attempt != 1 || run.Webhook != nil || run.FinishedAt == nil {
		t.Errorf("manual run %+v, want trigger manual, ok, attempt 1, no webhook, finished", run)
	}
	if runs := c.workflowRuns(t, "billing", 10); len(runs) != 1 || runs[0].ID != run.ID {
		t.Errorf("runs %+v, want the manual run alone", runs)
	}

	// DELETE: true, then false; the workflow and its runs are gone.
	c.expect(t, "DELETE", "/workflows/billing", "", 200, `{"deleted":true,"name":"billing"}`)
	c.expect(t, "DELETE", "/workflows/billing", "", 200, `{"deleted":false,"name":"billing"}`)
	c.expectErr(t, "GET", "/workflows/billing", "", 404, "workflow_not_found", "workflow", "billing")
	c.expectErr(t, "GET", "/workflows/billing/runs", "", 404, "workflow_not_found", "workflow", "billing")
	// Made again, it starts afresh with a new secret.
	again := c.putWorkflow(t, "billing", `{"schedule":"1h"}`, 201)
	if again.Secret == nil || *again.Secret == *w.Secret {
		t.Errorf("re-created workflow's secret %v, want a new one", again.Secret)
	}
}

// testWorkflowSecretRotation: a rotated secret signs the next delivery;
// during the grace the previous one signs too (two v1 entries).
func testWorkflowSecretRotation(t *testing.T, c v2Client) {
	rc := newReceiver(t, nil)
	w := c.putWorkflow(t, "sync", `{"schedule":"1h","notify":"always","webhook_url":"`+rc.url()+`"}`, 201)
	old := *w.Secret
	entries := func(d delivery) int { return strings.Count(d.header.Get(webhook.HeaderSignature), "v1=") }

	run := c.runWorkflow(t, "sync")
	d := rc.deliveries()[0]
	checkDelivery(t, d, old, "sync")
	if d.id() != run.ID || entries(d) != 1 {
		t.Errorf("delivery id %s with %d signatures, want %s with 1", d.id(), entries(d), run.ID)
	}

	// No grace: only the new secret signs.
	r, a := c.send(t, "POST", "/workflows/sync/secret", `{"grace":"0s"}`)
	var rot struct {
		Name               string  `json:"name"`
		PreviousValidUntil *string `json:"previous_valid_until"`
		Secret             string  `json:"secret"`
	}
	if err := json.Unmarshal(a.Data, &rot); r.status != 200 || err != nil || rot.Name != "sync" ||
		rot.PreviousValidUntil != nil || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == old {
		t.Fatalf("%s: want 200, a new secret, previous_valid_until null (%v)", r, err)
	}
	second := rot.Secret
	c.runWorkflow(t, "sync")
	d = rc.deliveries()[1]
	checkDelivery(t, d, second, "sync")
	if err := webhook.Verify(old, d.header, d.body, time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) || entries(d) != 1 {
		t.Errorf("after a rotation without grace: %d signatures, the old secret verifies: %v; want 1, ErrBadSignature", entries(d), err)
	}

	// Default grace (24h): both sign.
	r, a = c.send(t, "POST", "/workflows/sync/secret", "")
	if err := json.Unmarshal(a.Data, &rot); r.status != 200 || err != nil || rot.PreviousValidUntil == nil || rot.Secret == second {
		t.Fatalf("%s: want 200, a new secret, previous_valid_until set (%v)", r, err)
	}
	until, err := time.Parse(time.RFC3339Nano, *rot.PreviousValidUntil)
	if err != nil || until.Before(time.Now().Add(23*time.Hour)) || until.After(time.Now().Add(25*time.Hour)) {
		t.Errorf("previous_valid_until %s, want about 24h from now (%v)", *rot.PreviousValidUntil, err)
	}
	third := rot.Secret
	c.runWorkflow(t, "sync")
	d = rc.deliveries()[2]
	checkDelivery(t, d, third, "sync")
	if err := webhook.Verify(second, d.header, d.body, time.Now(), 0); err != nil || entries(d) != 2 {
		t.Errorf("during the grace: %d signatures, the previous secret: %v; want 2, verified", entries(d), err)
	}
	if err := webhook.Verify(old, d.header, d.body, time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("a secret two rotations old: Verify = %v, want ErrBadSignature", err)
	}
	c.expectErr(t, "POST", "/workflows/sync/secret", `{"grace":"169h"}`, 400, "invalid_body", "field", "grace")
	c.expectErr(t, "POST", "/workflows/sync/secret", `{"grace":"soon"}`, 400, "invalid_body", "field", "grace")
	c.expectErr(t, "POST", "/workflows/sync/secret", `{"grace":"1h","after":true}`, 400, "invalid_body", "field", "after")
}

// testWorkflowV1Routes: the v1 workflow routes answer through the
// registered permission of a workflow, through the name itself otherwise,
// with their original shapes and validation.
func testWorkflowV1Routes(t *testing.T, c v2Client) {
	for _, r := range []string{"clerks", "named"} {
		c.expect(t, "PUT", "/roles/"+r, "", 201, `{"created":true,"description":null,"name":"`+r+`"}`)
	}
	c.expect(t, "PUT", "/roles/clerks/permissions/run_payroll", "", 201, `{"created":true,"expires_at":null,"permission":"run_payroll","role":"clerks"}`)
	c.expect(t, "PUT", "/roles/clerks/members/alice", "", 201, `{"created":true,"expires_at":null,"role":"clerks","user":"alice"}`)
	c.expect(t, "PUT", "/roles/clerks/members/bob", "", 201, `{"created":true,"expires_at":null,"role":"clerks","user":"bob"}`)
	// mallory holds the permission named like the workflow.
	c.expect(t, "PUT", "/roles/named/permissions/payroll", "", 201, `{"created":true,"expires_at":null,"permission":"payroll","role":"named"}`)
	c.expect(t, "PUT", "/roles/named/members/mallory", "", 201, `{"created":true,"expires_at":null,"role":"named","user":"mallory"}`)

	byName := func() {
		t.Helper()
		expect(t, c.get(t, "/api/workflow/users/payroll"), 200,
			env(`{"count":1,"members":[{"role":"named","user":"mallory"}]}`, "Retrieved users who can run workflow 'payroll'"))
		expect(t, c.get(t, "/api/workflow/user/mallory/can_run/payroll"), 200,
			env(`{"has_permission":true}`, "Workflow permission check for user 'mallory' and workflow 'payroll' completed"))
	}
	byName()

	c.putWorkflow(t, "payroll", `{"schedule":"1h","permission":"run_payroll"}`, 201)
	for _, prefix := range prefixes {
		expect(t, c.get(t, prefix+"/workflow/users/payroll"), 200,
			env(`{"count":2,"members":[{"role":"clerks","user":"alice"},{"role":"clerks","user":"bob"}]}`, "Retrieved users who can run workflow 'payroll'"))
		expect(t, c.get(t, prefix+"/workflow/user/alice/can_run/payroll"), 200,
			env(`{"has_permission":true}`, "Workflow permission check for user 'alice' and workflow 'payroll' completed"))
		expect(t, c.get(t, prefix+"/workflow/user/mallory/can_run/payroll"), 200,
			env(`{"has_permission":false}`, "Workflow permission check for user 'mallory' and workflow 'payroll' completed"))
	}
	// Unregistered names answer through the permission of the name.
	expect(t, c.get(t, "/api/workflow/user/alice/can_run/run_payroll"), 200,
		env(`{"has_permission":true}`, "Workflow permission check for user 'alice' and workflow 'run_payroll' completed"))
	// A name longer than a registered one may be (65 characters) is no
	// registered workflow: the users route answers through the permission
	// of that name; can_run checks the workflow as a role name, as the
	// original did, and refuses it with the role message.
	w65 := strings.Repeat("w", 65)
	expectError(t, c.get(t, "/api/workflow/user/alice/can_run/"+w65), 400, longRole(w65))
	expect(t, c.get(t, "/api/workflow/users/"+w65), 200,
		env(`{"count":0,"members":[]}`, "Retrieved users who can run workflow '"+w65+"'"))
	// The original validation and messages.
	expectError(t, c.get(t, "/api/workflow/user/alice/can_run/pay.roll"), 400, longRole("pay.roll"))
	expectError(t, c.get(t, "/api/workflow/users/pay.roll"), 400, longWorkflow("pay.roll"))
	p129 := strings.Repeat("p", 129)
	expectError(t, c.get(t, "/api/workflow/users/"+p129), 400, longWorkflow(p129))

	// Deleted, the workflow is its own permission again.
	c.expect(t, "DELETE", "/workflows/payroll", "", 200, `{"deleted":true,"name":"payroll"}`)
	byName()
}

// TestWorkflowWebhookRefused: without AUTH_WEBHOOK_ALLOWED_HOSTS a private
// or loopback target is refused at registration; a host allow-listed when
// registered but not any more is refused at send time, and the run says
// so. A schedule more frequent than AUTH_WORKFLOW_MIN_INTERVAL is refused.
func TestWorkflowWebhookRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	port := rc.srv.Listener.Addr().(*net.TCPAddr).Port
	dbPath := filepath.Join(t.TempDir(), "auth.sqlite3")
	key := newKey(t)

	// Registered while localhost is allow-listed.
	allowed := startServer(t, serverEnv(dbPath, "AUTH_WEBHOOK_ALLOWED_HOSTS=localhost"))
	c := v2Client{allowed.client(key)}
	local := fmt.Sprintf("http://localhost:%d/hook", port)
	c.putWorkflow(t, "notify", `{"schedule":"1h","notify":"always","webhook_url":"`+local+`"}`, 201)
	allowed.stop(t)

	s := startServer(t, serverEnv(dbPath, "AUTH_WORKFLOW_MIN_INTERVAL=1m"))
	c = v2Client{s.client(key)}
	run := c.runWorkflow(t, "notify")
	// The refusal comes when the attempt dials: one attempt, no status,
	// nothing reached the receiver.
	if run.Outcome != "ok" || run.Webhook == nil || run.Webhook.Outcome != "refused" || run.Webhook.Attempts != 1 ||
		run.Webhook.Status != nil || run.Webhook.Error == nil || !strings.Contains(*run.Webhook.Error, "'localhost' resolves to") {
		t.Errorf("run %+v webhook %s: want ok with the webhook refused (an error naming the host)", run, run.Webhook)
	}
	if got := findRun(t, c.workflowRuns(t, "notify", 10), run.ID); got.Webhook.String() != run.Webhook.String() {
		t.Errorf("listed run webhook %s, want %s", got.Webhook, run.Webhook)
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Errorf("the receiver got %d requests, want none", n)
	}
	if v, err := s.metric(`auth_webhook_deliveries_total{outcome="refused"}`); err != nil || v != 1 {
		t.Errorf(`auth_webhook_deliveries_total{outcome="refused"} = %v (%v), want 1`, v, err)
	}

	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/hook", port),
		"http://10.0.0.1/",
		"http://localhost/",
		"http://169.254.169.254/latest/meta-data",
		"http://[::1]:8080/",
	} {
		c.expectErr(t, "PUT", "/workflows/target", `{"schedule":"1h","webhook_url":"`+u+`"}`, 400, "webhook_refused", "webhook_url", u)
	}
	c.expectErr(t, "PUT", "/workflows/often", `{"schedule":"30s"}`, 400, "invalid_schedule", "schedule", "30s")
	c.expectErr(t, "PUT", "/workflows/often", `{"schedule":"* * * * * *"}`, 400, "invalid_schedule")
	c.putWorkflow(t, "often", `{"schedule":"1m"}`, 201)
	c.expectErr(t, "GET", "/workflows/target", "", 404, "workflow_not_found")
}

// TestWorkflowShutdownFinishesRun: SIGTERM while a run waits for a slow
// receiver: the run finishes within the shutdown timeout and is recorded
// delivered.
func TestWorkflowShutdownFinishesRun(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 1)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			arrived <- r.Header.Get(webhook.HeaderID)
			select {
			case <-time.After(2 * time.Second): // slow, but within the shutdown timeout
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	s := sqliteServer(t, append(slices.Clone(wfEnv), "AUTH_SHUTDOWN_TIMEOUT=10s")...)
	c := v2Client{s.client(newKey(t))}
	c.expect(t, "PUT", "/roles/ops", "", 201, `{"created":true,"description":null,"name":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/permissions/slow", "", 201, `{"created":true,"expires_at":null,"permission":"slow","role":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/members/erin", "", 201, `{"created":true,"expires_at":null,"role":"ops","user":"erin"}`)
	c.putWorkflow(t, "slow", `{"schedule":"1s","notify":"always","webhook_url":"`+rc.url()+`"}`, 201)
	var id string
	select {
	case id = <-arrived:
	case <-time.After(deliverWithin):
		t.Fatalf("no delivery within %v", deliverWithin)
	}
	s.stop(t) // SIGTERM while the receiver holds the delivery

	db := s.openDB(t)
	var outcome, webhookOutcome string
	var attempt int
	if err := db.QueryRow(`SELECT outcome, attempt, COALESCE(webhook_outcome, '') FROM workflow_runs WHERE id = ?`, id).
		Scan(&outcome, &attempt, &webhookOutcome); err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	if outcome != "ok" || attempt != 1 || webhookOutcome != "delivered" {
		t.Errorf("run %s stored outcome %s attempt %d webhook %s, want ok, 1, delivered", id, outcome, attempt, webhookOutcome)
	}
	db.Close()

	s = s.restart(t)
	c = v2Client{s.client(c.key)}
	r := findRun(t, c.workflowRuns(t, "slow", 100), id)
	if r.Outcome != "ok" || r.Attempt != 1 || r.Webhook == nil || r.Webhook.Outcome != "delivered" || r.FinishedAt == nil || r.DurationMS < 1000 {
		t.Errorf("run %s after the restart: %+v webhook %s, want ok, attempt 1, delivered after the receiver's wait", id, r, r.Webhook)
	}
}

// TestWorkflowShutdownInterruptsRun: SIGTERM while a receiver holds a
// delivery longer than the shutdown timeout: the run is recorded
// interrupted and, after a restart on the same database, runs again
// (attempt 2, the same id, delivered again).
func TestWorkflowShutdownInterruptsRun(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 1)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			arrived <- r.Header.Get(webhook.HeaderID)
			select {
			case <-time.After(10 * time.Second): // longer than the shutdown timeout
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	s := sqliteServer(t, append(slices.Clone(wfEnv), "AUTH_SHUTDOWN_TIMEOUT=2s", "AUTH_WEBHOOK_TIMEOUT=30s")...)
	c := v2Client{s.client(newKey(t))}
	c.expect(t, "PUT", "/roles/ops", "", 201, `{"created":true,"description":null,"name":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/permissions/hold", "", 201, `{"created":true,"expires_at":null,"permission":"hold","role":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/members/erin", "", 201, `{"created":true,"expires_at":null,"role":"ops","user":"erin"}`)
	w := c.putWorkflow(t, "hold", `{"schedule":"1s","webhook_url":"`+rc.url()+`"}`, 201)
	var id string
	select {
	case id = <-arrived:
	case <-time.After(deliverWithin):
		t.Fatalf("no delivery within %v", deliverWithin)
	}
	s.stop(t)

	db := s.openDB(t)
	var outcome string
	var attempt int
	if err := db.QueryRow(`SELECT outcome, attempt FROM workflow_runs WHERE id = ?`, id).Scan(&outcome, &attempt); err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	if outcome != "interrupted" || attempt != 1 {
		t.Errorf("run %s stored outcome %s attempt %d, want interrupted, 1", id, outcome, attempt)
	}
	db.Close()

	s = s.restart(t)
	c = v2Client{s.client(c.key)}
	again := rc.await(t, deliverWithin, "the interrupted run delivered again", func(ds []delivery) int {
		for i, d := range ds[1:] {
			if d.id() == id {
				return i + 1
			}
		}
		return -1
	})
	p := checkDelivery(t, again, *w.Secret, "hold")
	if list(p.Users) != "[erin]" || list(p.Added) != "[erin]" {
		t.Errorf("re-run payload %+v, want users [erin] added [erin] (the first finished run)", p)
	}
	eventually(t, deliverWithin, "the re-run recorded", func() (string, error) {
		r := findRun(t, c.workflowRuns(t, "hold", 100), id)
		if r.Outcome == "ok" && r.Attempt == 2 && r.Webhook != nil && r.Webhook.Outcome == "delivered" {
			return "", nil
		}
		return fmt.Sprintf("run %s: %+v webhook %s", id, r, r.Webhook), nil
	})
}

// TestWorkflowReplicasExactlyOnce: three replicas on PostgreSQL share a
// "1s" workflow: every slot runs once, with no gap, and is delivered once,
// also when a replica is killed in the middle of a delivery (that slot is
// run again by another replica with the same id: delivered twice with the
// same Auth-Webhook-Id, attempt 2).
func TestWorkflowReplicasExactlyOnce(t *testing.T) {
	t.Parallel()
	const slotsWanted = 30
	var (
		mu      sync.Mutex
		armed   bool
		held    = make(chan string, 1)
		release = make(chan struct{})
	)
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		mu.Lock()
		hold := armed
		armed = false
		mu.Unlock()
		if hold {
			held <- r.Header.Get(webhook.HeaderID)
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
		return http.StatusOK
	})
	rs := newReplicaSet(t, 3, "AUTH_WORKFLOW_LEASE=3s", "AUTH_WORKFLOW_SYNC_INTERVAL=500ms",
		"AUTH_WEBHOOK_ALLOWED_HOSTS=127.0.0.1")
	db := rs.openDB(t)
	c := v2Client{rs.nodes[0].s.client(newKey(t))}
	c.expect(t, "PUT", "/roles/ops", "", 201, `{"created":true,"description":null,"name":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/permissions/tick", "", 201, `{"created":true,"expires_at":null,"permission":"tick","role":"ops"}`)
	c.expect(t, "PUT", "/roles/ops/members/erin", "", 201, `{"created":true,"expires_at":null,"role":"ops","user":"erin"}`)
	w := c.putWorkflow(t, "tick", `{"schedule":"1s","notify":"always","webhook_url":"`+rc.url()+`"}`, 201)
	var wfID int64
	if err := db.QueryRow(`SELECT id FROM workflows WHERE schedule = '1s' ORDER BY id DESC LIMIT 1`).Scan(&wfID); err != nil {
		t.Fatal(err)
	}

	rc.await(t, 3*deliverWithin, "10 deliveries", func(ds []delivery) int {
		if len(ds) >= 10 {
			return 0
		}
		return -1
	})

	// Hold the next delivery, kill the replica that sends it, then let the
	// receiver go: that run is interrupted in the middle of its delivery.
	mu.Lock()
	armed = true
	mu.Unlock()
	var heldID string
	select {
	case heldID = <-held:
	case <-time.After(deliverWithin):
		t.Fatalf("no delivery to hold within %v", deliverWithin)
	}
	var owner string
	if err := db.QueryRow(`SELECT owner FROM workflow_runs WHERE id = $1 AND outcome = 'running'`, heldID).Scan(&owner); err != nil {
		t.Fatalf("the held run %s: %v", heldID, err)
	}
	var killed *replica
	for _, r := range rs.nodes {
		if strings.Contains(owner, "-"+strconv.Itoa(r.s.proc.Pid())+"-") {
			killed = r
		}
	}
	if killed == nil {
		t.Fatalf("no replica owns run %s (owner %q)", heldID, owner)
	}
	killed.kill()
	close(release)
	t.Logf("killed %s while it delivered run %s", killed.name, heldID)

	// The others go on: wait until the slots span slotsWanted and the
	// killed run was taken over.
	type row struct {
		id              int64
		scheduled       time.Time
		trigger         string
		attempt         int
		outcome, hook   string
		owner           string
		webhookAttempts int
	}
	read := func() ([]row, error) {
		rows, err := db.Query(`SELECT id, scheduled_at, "trigger", attempt, outcome, COALESCE(webhook_outcome, ''), owner,
			webhook_attempts FROM workflow_runs WHERE workflow_id = $1 ORDER BY scheduled_at`, wfID)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.scheduled, &r.trigger, &r.attempt, &r.outcome, &r.hook, &r.owner, &r.webhookAttempts); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	var cutoff time.Time
	eventually(t, 60*time.Second, fmt.Sprintf("%d slots run, the held run taken over", slotsWanted), func() (string, error) {
		rows, err := read()
		if err != nil || len(rows) == 0 {
			return "no runs", err
		}
		span := int(rows[len(rows)-1].scheduled.Sub(rows[0].scheduled) / time.Second)
		var heldRow *row
		for i := range rows {
			if strconv.FormatInt(rows[i].id, 10) == heldID {
				heldRow = &rows[i]
			}
		}
		if span < slotsWanted || heldRow == nil || heldRow.outcome != "ok" {
			return fmt.Sprintf("%d runs over %d slots; held run %+v", len(rows), span, heldRow), nil
		}
		cutoff = rows[len(rows)-1].scheduled
		return "", nil
	})
	// Every run up to the cutoff finishes (the ones under way then too).
	var rows []row
	eventually(t, deliverWithin, "the runs up to the cutoff finished", func() (string, error) {
		all, err := read()
		if err != nil {
			return "", err
		}
		rows = rows[:0]
		for _, r := range all {
			if !r.scheduled.After(cutoff) {
				rows = append(rows, r)
			}
		}
		for _, r := range rows {
			if r.outcome == "running" || r.outcome == "interrupted" {
				return fmt.Sprintf("run %d: %s", r.id, r.outcome), nil
			}
		}
		return "", nil
	})

	// Slots: consecutive seconds, each once (the unique key), no gap.
	deliveries := map[string][]delivery{}
	for _, d := range rc.deliveries() {
		deliveries[d.id()] = append(deliveries[d.id()], d)
	}
	stored := map[string]bool{}
	for i, r := range rows {
		id := strconv.FormatInt(r.id, 10)
		stored[id] = true
		if i > 0 {
			if gap := r.scheduled.Sub(rows[i-1].scheduled); gap != time.Second {
				t.Errorf("slot %s follows %s (%v later): want consecutive seconds", r.scheduled.Format(time.RFC3339Nano),
					rows[i-1].scheduled.Format(time.RFC3339Nano), gap)
			}
		}
		if r.scheduled.Nanosecond() != 0 {
			t.Errorf("run %d scheduled at %s, not on a whole second", r.id, r.scheduled.Format(time.RFC3339Nano))
		}
		if r.trigger != "schedule" && r.trigger != "catch_up" {
			t.Errorf("run %d trigger %s, want schedule or catch_up", r.id, r.trigger)
		}
		if r.outcome != "ok" || r.hook != "delivered" || r.webhookAttempts != 1 {
			t.Errorf("run %d: outcome %s webhook %s in %d attempts, want ok, delivered in 1", r.id, r.outcome, r.hook, r.webhookAttempts)
		}
		// Each run is delivered once; the killed run twice (its first
		// delivery reached the receiver before the replica died), with the
		// same id.
		want := 1
		if id == heldID {
			want = 2
			if r.attempt != 2 {
				t.Errorf("the killed run %d: attempt %d, want 2", r.id, r.attempt)
			}
		} else if r.attempt != 1 {
			t.Errorf("run %d: attempt %d, want 1 (only the killed run runs again)", r.id, r.attempt)
		}
		if got := len(deliveries[id]); got != want {
			t.Errorf("run %d (slot %s, attempt %d) delivered %d times, want %d", r.id, r.scheduled.Format(time.RFC3339), r.attempt, got, want)
		}
		for _, d := range deliveries[id] {
			checkDelivery(t, d, *w.Secret, "tick")
		}
	}
	if len(rows) < slotsWanted {
		t.Errorf("%d runs, want at least %d", len(rows), slotsWanted)
	}
	// Every delivery belongs to a stored run.
	all, err := read()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		stored[strconv.FormatInt(r.id, 10)] = true
	}
	for id := range deliveries {
		if !stored[id] {
			t.Errorf("delivery with id %s: no such run", id)
		}
	}
	// The API lists the same runs.
	listed := map[string]bool{}
	live := v2Client{rs.others(killed.s)[0].client(c.key)}
	for _, r := range live.workflowRuns(t, "tick", 100) {
		listed[r.ID] = true
	}
	for _, r := range all {
		if id := strconv.FormatInt(r.id, 10); !listed[id] {
			t.Errorf("run %s is not listed by the API", id)
		}
	}
}
