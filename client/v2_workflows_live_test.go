package client_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ourway/auth/client"
	"github.com/ourway/auth/webhook"
)

// Every workflow method against the real server: register, read, list, run
// with a signed delivery to a receiver in the test, rotate, delete.
func TestLiveV2Workflows(t *testing.T) {
	got := make(chan *http.Request, 4)
	bodies := make(chan []byte, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	s := startServer(t, "AUTH_WEBHOOK_ALLOWED_HOSTS=127.0.0.1")
	c := liveClient(t, s.base)
	v := c.V2()
	ctx := deadlineCtx(t, 60*time.Second)

	for _, step := range []func() error{
		func() error { _, err := v.PutRole(ctx, "clerks", nil); return err },
		func() error { _, err := v.PutPermission(ctx, "clerks", "run_payroll"); return err },
		func() error { _, err := v.PutMember(ctx, "clerks", "ana"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	put, err := v.PutWorkflow(ctx, "payroll", client.WorkflowSpec{Schedule: "0 2 * * *", Permission: "run_payroll",
		WebhookURL: recv.URL + "/hook"})
	if err != nil || !put.Created || put.Secret == "" || put.Permission != "run_payroll" || put.NextRunAt == nil {
		t.Fatalf("PutWorkflow: %+v, %v", put, err)
	}
	again, err := v.PutWorkflow(ctx, "payroll", client.WorkflowSpec{Schedule: "0 3 * * *", Permission: "run_payroll",
		WebhookURL: recv.URL + "/hook"})
	if err != nil || again.Created || again.Secret != "" || !again.CreatedAt.Equal(put.CreatedAt) {
		t.Fatalf("PutWorkflow again: %+v, %v", again, err)
	}
	w, err := v.GetWorkflow(ctx, "payroll")
	step(t, "GetWorkflow schedule", w.Schedule, err, "0 3 * * *")
	list, err := collect(v.Workflows(ctx))
	step(t, "Workflows", len(list), err, 1)

	run, err := v.RunWorkflow(ctx, "payroll")
	if err != nil || run.Trigger != "manual" || run.Outcome != "ok" || run.Webhook == nil || run.Webhook.Outcome != "delivered" {
		t.Fatalf("RunWorkflow: %+v, %v", run, err)
	}
	step(t, "RunWorkflow users", run.Users, nil, []string{"ana"})
	r, body := <-got, <-bodies
	if err := webhook.Verify(put.Secret, r.Header, body, time.Now(), 0); err != nil {
		t.Errorf("the delivery does not verify with the secret PutWorkflow returned: %v", err)
	}
	runs, err := collect(v.WorkflowRuns(ctx, "payroll"))
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("WorkflowRuns: %+v, %v", runs, err)
	}

	rot, err := v.RotateWorkflowSecret(ctx, "payroll", 0)
	if err != nil || rot.Secret == "" || rot.Secret == put.Secret || rot.PreviousValidUntil != nil {
		t.Fatalf("RotateWorkflowSecret: %+v, %v", rot, err)
	}
	if _, err := v.RunWorkflow(ctx, "payroll"); err != nil {
		t.Fatal(err)
	}
	// Nothing changed: notify=changes sends nothing; run it with a change.
	if _, err := v.PutMember(ctx, "clerks", "ben"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RunWorkflow(ctx, "payroll"); err != nil {
		t.Fatal(err)
	}
	r, body = <-got, <-bodies
	if err := webhook.Verify(rot.Secret, r.Header, body, time.Now(), 0); err != nil {
		t.Errorf("the delivery after rotation does not verify with the new secret: %v", err)
	}
	if err := webhook.Verify(put.Secret, r.Header, body, time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("the old secret, rotated without grace: %v, want ErrBadSignature", err)
	}

	deleted, err := v.DeleteWorkflow(ctx, "payroll")
	step(t, "DeleteWorkflow", deleted, err, true)
	_, err = v.GetWorkflow(ctx, "payroll")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Reason != client.ReasonWorkflowNotFound {
		t.Errorf("GetWorkflow after delete: %v, want %s", err, client.ReasonWorkflowNotFound)
	}
	_, err = v.PutWorkflow(ctx, "nightly", client.WorkflowSpec{Schedule: "sometimes"})
	if !errors.As(err, &ae) || ae.Reason != client.ReasonInvalidSchedule {
		t.Errorf("PutWorkflow with a bad schedule: %v, want %s", err, client.ReasonInvalidSchedule)
	}
}
