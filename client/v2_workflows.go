package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"time"
)

// Reasons of API v2 errors special to workflows (APIError.Reason).
const (
	// ReasonWorkflowNotFound: the workflow does not exist (404,
	// Details["workflow"]).
	ReasonWorkflowNotFound = "workflow_not_found"
	// ReasonInvalidSchedule: the schedule is neither a cron expression nor
	// an interval, or runs more often than the service allows (400,
	// Details["schedule"]; the message says which).
	ReasonInvalidSchedule = "invalid_schedule"
	// ReasonWebhookRefused: the webhook URL is not http/https, malformed,
	// does not resolve, or resolves to an address the service refuses
	// (400, Details["webhook_url"]; the message says which).
	ReasonWebhookRefused = "webhook_refused"
)

// Workflow is a scheduled workflow of the tenant (GET
// /api/v2/workflows/{name}): on each run the service computes the users who
// may run it and, when it has a webhook URL, posts them there.
type Workflow struct {
	// Name is the workflow's name.
	Name string `json:"name"`
	// Permission is the permission whose holders may run the workflow.
	Permission string `json:"permission"`
	// Schedule is a cron expression or an interval such as "5m".
	Schedule string `json:"schedule"`
	// WebhookURL is where each run's result is posted ("" for none).
	WebhookURL string `json:"webhook_url"`
	// Description is the workflow's description; nil when it has none.
	Description *string `json:"description"`
	// Enabled is false for a workflow that is not scheduled.
	Enabled bool `json:"enabled"`
	// Notify is "changes" (a run that finds no change sends no webhook) or
	// "always".
	Notify string `json:"notify"`
	// CatchUp is true when a run missed while the service was down runs
	// once when it starts again.
	CatchUp bool `json:"catch_up"`
	// CreatedAt and UpdatedAt are when the workflow was created and last
	// replaced.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// NextRunAt is when the next scheduled run is due; nil when the
	// workflow is disabled.
	NextRunAt *time.Time `json:"next_run_at"`
}

// WorkflowSpec is what PutWorkflow sends: a full replace, in which every
// field left at its zero value takes the service's default.
type WorkflowSpec struct {
	// Schedule is a cron expression (5 fields, or 6 with seconds first; a
	// descriptor such as "@hourly"; an optional CRON_TZ= prefix, UTC
	// otherwise) or a Go duration such as "5m" (required).
	Schedule string `json:"schedule"`
	// Permission is the permission whose holders may run the workflow
	// ("": the workflow's name).
	Permission string `json:"permission,omitempty"`
	// WebhookURL is where each run's result is posted ("": none).
	WebhookURL string `json:"webhook_url,omitempty"`
	// Description is the workflow's description (nil or "": none).
	Description *string `json:"description,omitempty"`
	// Enabled says whether the workflow is scheduled (nil: true).
	Enabled *bool `json:"enabled,omitempty"`
	// Notify is "changes" or "always" ("": "changes").
	Notify string `json:"notify,omitempty"`
	// CatchUp says whether a run missed while the service was down runs
	// once when it starts again (nil: true).
	CatchUp *bool `json:"catch_up,omitempty"`
}

// WorkflowPut is the answer to PutWorkflow.
type WorkflowPut struct {
	// Workflow is the workflow as stored.
	Workflow
	// Created is true when the workflow was created, false when an
	// existing one was replaced.
	Created bool `json:"created"`
	// Secret is the webhook signing secret ("whsec_…"), shown once: when
	// the workflow is created. A replace keeps the secret and leaves this
	// "".
	Secret string `json:"secret"`
}

// WebhookDelivery is how a run's webhook was delivered.
type WebhookDelivery struct {
	// Outcome is "delivered", "failed", "skipped" (nothing changed and
	// the workflow notifies on changes only), "refused" (the target
	// resolved to a refused address) or "pending".
	Outcome string `json:"outcome"`
	// Attempts is how many times it was sent.
	Attempts int `json:"attempts"`
	// Status is the HTTP status of the last answer (0 for none).
	Status int `json:"status"`
	// Error says why it failed ("" for none).
	Error string `json:"error"`
}

// WorkflowRun is one run of a workflow.
type WorkflowRun struct {
	// ID identifies the run; a re-run of an interrupted run keeps it, and
	// webhook receivers deduplicate on it (Auth-Webhook-Id).
	ID string `json:"id"`
	// Trigger is "schedule", "manual" or "catch_up".
	Trigger string `json:"trigger"`
	// Outcome is "running", "ok", "failed" (the users could not be
	// computed) or "interrupted" (stopped before finishing; it runs again
	// with Attempt+1).
	Outcome string `json:"outcome"`
	// Attempt counts the times the run was started.
	Attempt int `json:"attempt"`
	// Count is the number of Users.
	Count int `json:"count"`
	// ScheduledAt is the slot the run is for; StartedAt when it started.
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	// FinishedAt is when it finished; nil while it runs.
	FinishedAt *time.Time `json:"finished_at"`
	// DurationMS is how long it took, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Users are the users who may run the workflow, sorted; Added and
	// Removed are the changes since the previous completed run (on the
	// first run, Added is Users).
	Users   []string `json:"users"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Error says why the run failed ("" for none).
	Error string `json:"error"`
	// Webhook is the webhook's delivery; nil when the workflow has no
	// webhook URL.
	Webhook *WebhookDelivery `json:"webhook"`
}

// SecretRotation is the answer to RotateWorkflowSecret.
type SecretRotation struct {
	// Name is the workflow's name.
	Name string `json:"name"`
	// Secret is the new signing secret ("whsec_…").
	Secret string `json:"secret"`
	// PreviousValidUntil is until when deliveries are signed with the
	// previous secret too; nil when it stopped at once.
	PreviousValidUntil *time.Time `json:"previous_valid_until"`
}

// normalize makes the run's lists non-nil.
func (r *WorkflowRun) normalize() {
	for _, l := range []*[]string{&r.Users, &r.Added, &r.Removed} {
		if *l == nil {
			*l = []string{}
		}
	}
}

// PutWorkflow creates the workflow name, or replaces it as a whole (PUT
// /api/v2/workflows/{name}). When it is created the answer carries the
// webhook signing secret, once; a replace keeps the secret. A bad schedule
// is an *APIError of 400 with Reason ReasonInvalidSchedule, a refused
// webhook URL one with ReasonWebhookRefused, a bad name one with
// ReasonInvalidName.
func (v *V2) PutWorkflow(ctx context.Context, name string, spec WorkflowSpec) (WorkflowPut, error) {
	path, err := v2Path("workflows/{}", name)
	if err != nil {
		return WorkflowPut{}, err
	}
	if spec.Description != nil && *spec.Description == "" {
		spec.Description = nil
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return WorkflowPut{}, err
	}
	d, err := v2Call[struct {
		WorkflowPut
		Created *bool `json:"created"`
	}](ctx, v, v.req(http.MethodPut, path, body))
	if err != nil {
		return WorkflowPut{}, err
	}
	if d.Created == nil {
		return WorkflowPut{}, shapeError(http.MethodPut, path, "created")
	}
	if d.Name == "" {
		return WorkflowPut{}, shapeError(http.MethodPut, path, "name")
	}
	d.WorkflowPut.Created = *d.Created
	return d.WorkflowPut, nil
}

// GetWorkflow returns the workflow name (GET /api/v2/workflows/{name}). A
// missing workflow is an *APIError of 404 with Reason
// ReasonWorkflowNotFound.
func (v *V2) GetWorkflow(ctx context.Context, name string) (Workflow, error) {
	path, err := v2Path("workflows/{}", name)
	if err != nil {
		return Workflow{}, err
	}
	w, err := v2Call[Workflow](ctx, v, v.req(http.MethodGet, path, nil))
	if err == nil && w.Name == "" {
		err = shapeError(http.MethodGet, path, "name")
	}
	if err != nil {
		return Workflow{}, err
	}
	return w, nil
}

// Workflows iterates over the tenant's workflows, sorted by name (GET
// /api/v2/workflows).
func (v *V2) Workflows(ctx context.Context) iter.Seq2[Workflow, error] {
	return list[Workflow](ctx, v, "workflows")
}

// DeleteWorkflow deletes the workflow name with its runs (DELETE
// /api/v2/workflows/{name}) and reports whether it existed.
func (v *V2) DeleteWorkflow(ctx context.Context, name string) (bool, error) {
	return v.flag(ctx, http.MethodDelete, "deleted", "workflows/{}", name)
}

// RotateWorkflowSecret gives the workflow name a new webhook signing
// secret (POST /api/v2/workflows/{name}/secret). For grace after the call
// deliveries are signed with the previous secret too, so that receivers
// can switch over (0: the previous secret stops at once; at most 168h); a
// negative grace lets the service choose (24h). It is never retried: a
// repeat would rotate again.
func (v *V2) RotateWorkflowSecret(ctx context.Context, name string, grace time.Duration) (SecretRotation, error) {
	path, err := v2Path("workflows/{}/secret", name)
	if err != nil {
		return SecretRotation{}, err
	}
	var body []byte
	if grace >= 0 {
		if body, err = json.Marshal(struct {
			Grace string `json:"grace"`
		}{grace.String()}); err != nil {
			return SecretRotation{}, err
		}
	}
	d, err := v2Call[SecretRotation](ctx, v, v.req(http.MethodPost, path, body))
	if err == nil && d.Secret == "" {
		err = shapeError(http.MethodPost, path, "secret")
	}
	if err != nil {
		return SecretRotation{}, err
	}
	return d, nil
}

// RunWorkflow runs the workflow name now (POST
// /api/v2/workflows/{name}/run) and returns the run (trigger "manual")
// once it finished, its webhook attempts included: give the client an
// Options.Timeout long enough for them. It is never retried: after an
// error the run may still have happened (see WorkflowRuns).
func (v *V2) RunWorkflow(ctx context.Context, name string) (WorkflowRun, error) {
	path, err := v2Path("workflows/{}/run", name)
	if err != nil {
		return WorkflowRun{}, err
	}
	r, err := v2Call[WorkflowRun](ctx, v, v.req(http.MethodPost, path, nil))
	if err == nil && r.ID == "" {
		err = shapeError(http.MethodPost, path, "id")
	}
	if err != nil {
		return WorkflowRun{}, err
	}
	r.normalize()
	return r, nil
}

// WorkflowRuns iterates over the runs of the workflow name, newest first
// (GET /api/v2/workflows/{name}/runs).
func (v *V2) WorkflowRuns(ctx context.Context, name string) iter.Seq2[WorkflowRun, error] {
	return func(yield func(WorkflowRun, error) bool) {
		for r, err := range list[WorkflowRun](ctx, v, "workflows/{}/runs", name) {
			if err == nil {
				r.normalize()
			}
			if !yield(r, err) {
				return
			}
		}
	}
}
