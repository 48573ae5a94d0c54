package client_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/client"
)

// The workflow reasons are the documented strings.
func TestV2WorkflowReasons(t *testing.T) {
	got := []string{client.ReasonWorkflowNotFound, client.ReasonInvalidSchedule, client.ReasonWebhookRefused}
	if want := []string{"workflow_not_found", "invalid_schedule", "webhook_refused"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons %q, want %q", got, want)
	}
}

const (
	// wfPayroll is a workflow resource as the service sends it, keys sorted.
	wfPayroll = `{"catch_up":true,"created_at":"2026-12-06T02:00:00.000000Z","description":"Pay day",` +
		`"enabled":true,"name":"payroll","next_run_at":"2026-12-06T02:05:00Z","notify":"changes",` +
		`"permission":"run_payroll","schedule":"5m","updated_at":"2026-12-06T02:01:00.5Z",` +
		`"webhook_url":"https://hooks.example.com/auth"`
	// wfBare is a disabled workflow with every nullable field null.
	wfBare = `{"catch_up":false,"created_at":"2026-12-06T02:00:00Z","description":null,"enabled":false,` +
		`"name":"nightly","next_run_at":null,"notify":"always","permission":"nightly","schedule":"@daily",` +
		`"updated_at":"2026-12-06T02:00:00Z","webhook_url":null`
	// runDone is a finished run with a delivered webhook.
	runDone = `{"added":["carol"],"attempt":1,"count":3,"duration_ms":4,"error":null,` +
		`"finished_at":"2026-12-06T02:05:00.004Z","id":"42","outcome":"ok","removed":[],` +
		`"scheduled_at":"2026-12-06T02:05:00Z","started_at":"2026-12-06T02:05:00Z","trigger":"manual",` +
		`"users":["alice","bob","carol"],"webhook":{"attempts":1,"error":null,"outcome":"delivered","status":200}}`
	// runRunning is a run still going, without a webhook.
	runRunning = `{"added":[],"attempt":2,"count":0,"duration_ms":0,"error":null,"finished_at":null,"id":"43",` +
		`"outcome":"running","removed":[],"scheduled_at":"2026-12-06T02:10:00Z","started_at":"2026-12-06T02:10:01Z",` +
		`"trigger":"schedule","users":[],"webhook":null}`
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ptr[T any](v T) *T { return &v }

var (
	payroll = client.Workflow{
		Name: "payroll", Permission: "run_payroll", Schedule: "5m", WebhookURL: "https://hooks.example.com/auth",
		Description: ptr("Pay day"), Enabled: true, Notify: "changes", CatchUp: true,
		CreatedAt: at("2026-12-06T02:00:00Z"), UpdatedAt: at("2026-12-06T02:01:00.5Z"),
		NextRunAt: ptr(at("2026-12-06T02:05:00Z")),
	}
	nightly = client.Workflow{
		Name: "nightly", Permission: "nightly", Schedule: "@daily", Notify: "always",
		CreatedAt: at("2026-12-06T02:00:00Z"), UpdatedAt: at("2026-12-06T02:00:00Z"),
	}
	run42 = client.WorkflowRun{
		ID: "42", Trigger: "manual", Outcome: "ok", Attempt: 1, Count: 3,
		ScheduledAt: at("2026-12-06T02:05:00Z"), StartedAt: at("2026-12-06T02:05:00Z"),
		FinishedAt: ptr(at("2026-12-06T02:05:00.004Z")), DurationMS: 4,
		Users: []string{"alice", "bob", "carol"}, Added: []string{"carol"}, Removed: []string{},
		Webhook: &client.WebhookDelivery{Outcome: "delivered", Attempts: 1, Status: 200},
	}
	run43 = client.WorkflowRun{
		ID: "43", Trigger: "schedule", Outcome: "running", Attempt: 2,
		ScheduledAt: at("2026-12-06T02:10:00Z"), StartedAt: at("2026-12-06T02:10:01Z"),
		Users: []string{}, Added: []string{}, Removed: []string{},
	}
)

// Every workflow method sends its method, path and body, and reads its
// answer, nulls included.
func TestV2WorkflowRoutes(t *testing.T) {
	tests := []struct {
		name     string
		answer   string // data
		wantReq  string // "METHOD RequestURI"
		wantBody string // "Content-Type body", or "" for none
		fn       func(context.Context, *client.V2) (any, error)
		want     any
	}{
		{"PutWorkflow created", wfPayroll + `,"created":true,"secret":"whsec_abc"}`,
			"PUT /api/v2/workflows/payroll",
			`application/json {"schedule":"5m","permission":"run_payroll","webhook_url":"https://hooks.example.com/auth",` +
				`"description":"Pay day","enabled":true,"notify":"changes","catch_up":false}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutWorkflow(ctx, "payroll", client.WorkflowSpec{
					Schedule: "5m", Permission: "run_payroll", WebhookURL: "https://hooks.example.com/auth",
					Description: ptr("Pay day"), Enabled: ptr(true), Notify: "changes", CatchUp: ptr(false),
				}))
			},
			client.WorkflowPut{Workflow: payroll, Created: true, Secret: "whsec_abc"}},
		{"PutWorkflow replaced, defaults", wfBare + `,"created":false}`,
			"PUT /api/v2/workflows/nightly", `application/json {"schedule":"@daily"}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutWorkflow(ctx, "nightly", client.WorkflowSpec{Schedule: "@daily", Description: ptr("")}))
			},
			client.WorkflowPut{Workflow: nightly}},
		{"PutWorkflow escapes", wfBare + `,"created":false}`, "PUT /api/v2/workflows/a%2Fb", `application/json {"schedule":"1h"}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.PutWorkflow(ctx, "a/b", client.WorkflowSpec{Schedule: "1h"}))
			},
			client.WorkflowPut{Workflow: nightly}},
		{"GetWorkflow", wfPayroll + "}", "GET /api/v2/workflows/payroll", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.GetWorkflow(ctx, "payroll")) }, payroll},
		{"GetWorkflow nulls", wfBare + "}", "GET /api/v2/workflows/nightly", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.GetWorkflow(ctx, "nightly")) }, nightly},
		{"DeleteWorkflow", `{"deleted":true,"name":"payroll"}`, "DELETE /api/v2/workflows/payroll", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.DeleteWorkflow(ctx, "payroll")) }, true},
		{"DeleteWorkflow missing", `{"deleted":false,"name":"payroll"}`, "DELETE /api/v2/workflows/payroll", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.DeleteWorkflow(ctx, "payroll")) }, false},
		{"RotateWorkflowSecret default grace",
			`{"name":"payroll","previous_valid_until":"2026-12-07T02:00:00Z","secret":"whsec_new"}`,
			"POST /api/v2/workflows/payroll/secret", "",
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.RotateWorkflowSecret(ctx, "payroll", -1))
			},
			client.SecretRotation{Name: "payroll", Secret: "whsec_new", PreviousValidUntil: ptr(at("2026-12-07T02:00:00Z"))}},
		{"RotateWorkflowSecret grace", `{"name":"payroll","previous_valid_until":"2026-12-07T14:00:00Z","secret":"whsec_new"}`,
			"POST /api/v2/workflows/payroll/secret", `application/json {"grace":"36h0m0s"}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.RotateWorkflowSecret(ctx, "payroll", 36*time.Hour))
			},
			client.SecretRotation{Name: "payroll", Secret: "whsec_new", PreviousValidUntil: ptr(at("2026-12-07T14:00:00Z"))}},
		{"RotateWorkflowSecret no grace", `{"name":"payroll","previous_valid_until":null,"secret":"whsec_new"}`,
			"POST /api/v2/workflows/payroll/secret", `application/json {"grace":"0s"}`,
			func(ctx context.Context, v *client.V2) (any, error) {
				return value(v.RotateWorkflowSecret(ctx, "payroll", 0))
			},
			client.SecretRotation{Name: "payroll", Secret: "whsec_new"}},
		{"RunWorkflow", runDone, "POST /api/v2/workflows/payroll/run", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.RunWorkflow(ctx, "payroll")) }, run42},
		{"RunWorkflow failed", `{"added":null,"attempt":1,"count":0,"duration_ms":1,"error":"role graph unavailable",` +
			`"finished_at":"2026-12-06T02:05:00Z","id":"7","outcome":"failed","removed":null,"scheduled_at":"2026-12-06T02:05:00Z",` +
			`"started_at":"2026-12-06T02:05:00Z","trigger":"manual","users":null,"webhook":{"attempts":0,"error":null,"outcome":"skipped","status":0}}`,
			"POST /api/v2/workflows/payroll/run", "",
			func(ctx context.Context, v *client.V2) (any, error) { return value(v.RunWorkflow(ctx, "payroll")) },
			client.WorkflowRun{
				ID: "7", Trigger: "manual", Outcome: "failed", Attempt: 1, DurationMS: 1,
				ScheduledAt: at("2026-12-06T02:05:00Z"), StartedAt: at("2026-12-06T02:05:00Z"),
				FinishedAt: ptr(at("2026-12-06T02:05:00Z")), Users: []string{}, Added: []string{}, Removed: []string{},
				Error: "role graph unavailable", Webhook: &client.WebhookDelivery{Outcome: "skipped"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bodies
			f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				b.record(r)
				reply(200, v2OK(tc.answer))(n, w, r)
			})
			v := newClient(t, client.Options{BaseURL: f.URL}).V2()
			got, err := tc.fn(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if reqs := f.requests(); !reflect.DeepEqual(reqs, []string{tc.wantReq}) {
				t.Errorf("requests %q, want %q", reqs, tc.wantReq)
			}
			wantBody := " "
			if tc.wantBody != "" {
				wantBody = tc.wantBody
			}
			if got := b.get(); len(got) != 1 || got[0] != wantBody {
				t.Errorf("body %q, want %q", got, wantBody)
			}
		})
	}
}

// The list of workflows decodes its items, nulls included.
func TestV2Workflows(t *testing.T) {
	f := newFake(t, reply(200, v2OK(`{"items":[`+wfBare+`},`+wfPayroll+`}],"next_cursor":null}`)))
	got, err := collect(newClient(t, client.Options{BaseURL: f.URL}).V2().Workflows(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if want := []client.Workflow{nightly, payroll}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if want := []string{"GET /api/v2/workflows"}; !reflect.DeepEqual(f.requests(), want) {
		t.Errorf("requests %q, want %q", f.requests(), want)
	}
}

// The runs are read page by page, in the service's order (newest first),
// each page only when the iteration reaches it.
func TestV2WorkflowRunsPages(t *testing.T) {
	runN := func(id string) string { return strings.Replace(runRunning, `"id":"43"`, `"id":"`+id+`"`, 1) }
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		var data string
		switch r.URL.Query().Get("cursor") {
		case "":
			data = `{"items":[` + runN("45") + `,` + runN("44") + `],"next_cursor":"c1"}`
		case "c1":
			data = `{"items":[` + runRunning + `,` + runDone + `],"next_cursor":"c2"}`
		case "c2":
			data = `{"items":[` + runN("41") + `],"next_cursor":null}`
		default:
			reply(400, v2Err(400, "invalid_cursor", `"parameter":"cursor"`))(n, w, r)
			return
		}
		reply(200, v2OK(data))(n, w, r)
	})
	v := newClient(t, client.Options{BaseURL: f.URL}).V2().WithPageSize(2)
	var ids []string
	var runs []client.WorkflowRun
	for r, err := range v.WorkflowRuns(context.Background(), "pay-roll") {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		runs = append(runs, r)
		if want := (len(ids) + 1) / 2; len(f.requests()) != want {
			t.Fatalf("at run %s: %d requests, want %d", r.ID, len(f.requests()), want)
		}
	}
	if want := []string{"45", "44", "43", "42", "41"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %q, want %q", ids, want)
	}
	if !reflect.DeepEqual(runs[2], run43) || !reflect.DeepEqual(runs[3], run42) {
		t.Errorf("runs 43, 42 = %+v, %+v; want %+v, %+v", runs[2], runs[3], run43, run42)
	}
	want := []string{
		"GET /api/v2/workflows/pay-roll/runs?limit=2",
		"GET /api/v2/workflows/pay-roll/runs?cursor=c1&limit=2",
		"GET /api/v2/workflows/pay-roll/runs?cursor=c2&limit=2",
	}
	if !reflect.DeepEqual(f.requests(), want) {
		t.Errorf("requests %q, want %q", f.requests(), want)
	}
}

// Workflow errors carry their reason and details.
func TestV2WorkflowErrors(t *testing.T) {
	ctx := context.Background()
	spec := client.WorkflowSpec{Schedule: "1s"}
	tests := []struct {
		name   string
		status int
		body   string
		reason string
		detail string
		fn     func(*client.V2) error
	}{
		{"GetWorkflow missing", 404, v2Err(404, "workflow_not_found", `"workflow":"payroll"`), client.ReasonWorkflowNotFound, "workflow",
			func(v *client.V2) error { return second(v.GetWorkflow(ctx, "payroll")) }},
		{"RunWorkflow missing", 404, v2Err(404, "workflow_not_found", `"workflow":"payroll"`), client.ReasonWorkflowNotFound, "workflow",
			func(v *client.V2) error { return second(v.RunWorkflow(ctx, "payroll")) }},
		{"WorkflowRuns missing", 404, v2Err(404, "workflow_not_found", `"workflow":"payroll"`), client.ReasonWorkflowNotFound, "workflow",
			func(v *client.V2) error { return second(collect(v.WorkflowRuns(ctx, "payroll"))) }},
		{"PutWorkflow schedule", 400, v2Err(400, "invalid_schedule", `"schedule":"1s"`), client.ReasonInvalidSchedule, "schedule",
			func(v *client.V2) error { return second(v.PutWorkflow(ctx, "payroll", spec)) }},
		{"PutWorkflow webhook", 400, v2Err(400, "webhook_refused", `"webhook_url":"http://10.0.0.1/"`), client.ReasonWebhookRefused, "webhook_url",
			func(v *client.V2) error { return second(v.PutWorkflow(ctx, "payroll", spec)) }},
		{"PutWorkflow name", 400, v2Err(400, "invalid_name", `"kind":"workflow"`), client.ReasonInvalidName, "kind",
			func(v *client.V2) error { return second(v.PutWorkflow(ctx, "pay.roll", spec)) }},
		{"RotateWorkflowSecret grace", 400, v2Err(400, "invalid_body", `"field":"grace"`), client.ReasonInvalidBody, "field",
			func(v *client.V2) error { return second(v.RotateWorkflowSecret(ctx, "payroll", 200*time.Hour)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, reply(tc.status, tc.body))
			err := tc.fn(newClient(t, client.Options{BaseURL: f.URL, MaxRetries: -1, DisableBreaker: true}).V2())
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *APIError", err)
			}
			if ae.StatusCode != tc.status || ae.Reason != tc.reason || ae.Details[tc.detail] == nil {
				t.Errorf("got %d %q %v, want %d %q with details.%s", ae.StatusCode, ae.Reason, ae.Details, tc.status, tc.reason, tc.detail)
			}
		})
	}
}

// PUT, GET and DELETE of workflows are retried; running a workflow and
// rotating its secret never are, neither after a 503 nor after a dropped
// connection.
func TestV2WorkflowRetryPolicy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		retried bool
		ok      string
		fn      func(*client.V2) error
	}{
		{"PutWorkflow", true, wfBare + `,"created":false}`,
			func(v *client.V2) error {
				return second(v.PutWorkflow(ctx, "nightly", client.WorkflowSpec{Schedule: "@daily"}))
			}},
		{"GetWorkflow", true, wfBare + `}`, func(v *client.V2) error { return second(v.GetWorkflow(ctx, "nightly")) }},
		{"Workflows", true, `{"items":[],"next_cursor":null}`, func(v *client.V2) error { return second(collect(v.Workflows(ctx))) }},
		{"DeleteWorkflow", true, `{"deleted":true,"name":"nightly"}`, func(v *client.V2) error { return second(v.DeleteWorkflow(ctx, "nightly")) }},
		{"WorkflowRuns", true, `{"items":[],"next_cursor":null}`,
			func(v *client.V2) error { return second(collect(v.WorkflowRuns(ctx, "nightly"))) }},
		{"RunWorkflow", false, runDone, func(v *client.V2) error { return second(v.RunWorkflow(ctx, "payroll")) }},
		{"RotateWorkflowSecret", false, `{"name":"payroll","previous_valid_until":null,"secret":"whsec_x"}`,
			func(v *client.V2) error { return second(v.RotateWorkflowSecret(ctx, "payroll", time.Hour)) }},
	}
	for _, tc := range tests {
		for _, failure := range []string{"503", "drop"} {
			t.Run(tc.name+" "+failure, func(t *testing.T) {
				fail := reply(503, v2Err(503, "unavailable", ""))
				if failure == "drop" {
					fail = drop
				}
				f := newFake(t, failFirst(2, fail, reply(200, v2OK(tc.ok))))
				v := newClient(t, client.Options{BaseURL: f.URL, MaxRetries: 2}).V2()
				err := tc.fn(v)
				if tc.retried {
					if err != nil || f.hits.Load() != 3 {
						t.Fatalf("got %v after %d requests, want success after 3", err, f.hits.Load())
					}
					return
				}
				if err == nil || !errors.Is(err, client.ErrUnavailable) || f.hits.Load() != 1 {
					t.Fatalf("got %v after %d requests, want the failure after 1", err, f.hits.Load())
				}
			})
		}
	}
}

// An empty name is refused before any request; a 2xx answer without the
// expected fields is an error, never a zero value.
func TestV2WorkflowRefusesEmptyNamesAndBadAnswers(t *testing.T) {
	f := newFake(t, reply(200, v2OK(`{}`)))
	v := newClient(t, client.Options{BaseURL: f.URL}).V2()
	ctx := context.Background()
	spec := client.WorkflowSpec{Schedule: "5m"}
	calls := func() []error {
		return []error{
			second(v.PutWorkflow(ctx, "", spec)), second(v.GetWorkflow(ctx, "")), second(v.DeleteWorkflow(ctx, "")),
			second(v.RotateWorkflowSecret(ctx, "", -1)), second(v.RunWorkflow(ctx, "")), second(collect(v.WorkflowRuns(ctx, ""))),
		}
	}
	for i, err := range calls() {
		if err == nil || err.Error() != "auth: empty name" {
			t.Errorf("call %d with an empty name: %v, want auth: empty name", i, err)
		}
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d requests for empty names, want 0", n)
	}
	bad := []error{
		second(v.PutWorkflow(ctx, "w", spec)), second(v.GetWorkflow(ctx, "w")), second(v.DeleteWorkflow(ctx, "w")),
		second(v.RotateWorkflowSecret(ctx, "w", -1)), second(v.RunWorkflow(ctx, "w")), second(collect(v.WorkflowRuns(ctx, "w"))),
	}
	for i, err := range bad {
		if err == nil {
			t.Errorf("call %d with answer data {}: nil error", i)
		}
	}
	// created without the workflow is malformed too.
	f.set(reply(200, v2OK(`{"created":true}`)))
	if _, err := v.PutWorkflow(ctx, "w", spec); err == nil {
		t.Error("PutWorkflow answer without name: nil error")
	}
}
