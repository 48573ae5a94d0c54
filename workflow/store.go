package workflow

import (
	"context"
	"errors"
	"time"

	"github.com/ourway/auth/policy"
)

// Notify says when a run's webhook is sent.
type Notify string

// Notify values.
const (
	// NotifyChanges sends the webhook only when the run found users added
	// or removed (the default).
	NotifyChanges Notify = "changes"
	// NotifyAlways sends the webhook after every run.
	NotifyAlways Notify = "always"
)

// Trigger says what started a run.
type Trigger string

// Trigger values.
const (
	TriggerSchedule Trigger = "schedule" // its schedule
	TriggerManual   Trigger = "manual"   // POST /api/v2/workflows/{name}/run
	TriggerCatchUp  Trigger = "catch_up" // a slot missed while no process ran it
)

// Outcome is the state of a run.
type Outcome string

// Outcome values.
const (
	OutcomeRunning     Outcome = "running"     // claimed, not finished
	OutcomeOK          Outcome = "ok"          // users computed and recorded
	OutcomeFailed      Outcome = "failed"      // users could not be computed
	OutcomeInterrupted Outcome = "interrupted" // stopped before finishing; it runs again
)

// WebhookOutcome is the result of a run's webhook delivery.
type WebhookOutcome string

// WebhookOutcome values.
const (
	WebhookPending   WebhookOutcome = "pending"   // not sent yet
	WebhookDelivered WebhookOutcome = "delivered" // a 2xx answer
	WebhookFailed    WebhookOutcome = "failed"    // attempts exhausted or a final refusal
	WebhookSkipped   WebhookOutcome = "skipped"   // notify=changes and nothing changed
	WebhookRefused   WebhookOutcome = "refused"   // the target resolved to a refused address
)

// Definition is what a tenant registers: a workflow, who may run it (the
// holders of Permission) and when that is re-evaluated.
type Definition struct {
	Name        string
	Permission  string // never empty once registered (defaults to Name)
	Schedule    string // as registered: a cron expression or an interval
	WebhookURL  string // "" for none
	Description *string
	Enabled     bool
	Notify      Notify
	CatchUp     bool
}

// Stored is a registered workflow.
type Stored struct {
	Definition
	ID        int64
	TenantID  int64
	Tenant    policy.KeyHash // the tenant's handle
	Revision  int64          // changes with every replace
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Secrets are a workflow's webhook signing secrets: the current one and,
// during a rotation's grace period, the previous one.
type Secrets struct {
	Current       string
	Previous      string    // "" when none
	PreviousUntil time.Time // when Previous stops signing (zero when none)
}

// WebhookResult is what became of a run's webhook.
type WebhookResult struct {
	Outcome  WebhookOutcome
	Attempts int
	Status   int    // the last HTTP status (0 when none)
	Error    string // the last failure ("" when none)
}

// RunRecord is a run as stored.
type RunRecord struct {
	ID          int64
	WorkflowID  int64
	TenantID    int64
	Scheduled   time.Time
	Trigger     Trigger
	Attempt     int
	Outcome     Outcome
	Owner       string // the process running it (while running)
	LeaseUntil  time.Time
	Started     time.Time
	Finished    time.Time // zero while running
	Users       []string  // sorted
	Added       []string
	Removed     []string
	Error       string
	Webhook     *WebhookResult // nil when the workflow had no webhook
	DurationMS  int64
	WorkflowRev int64 // the workflow revision it ran
}

// Claim asks for one slot of a workflow.
type Claim struct {
	WorkflowID int64
	Scheduled  time.Time
	Trigger    Trigger
	Owner      string
	LeaseUntil time.Time
	Started    time.Time
}

// ErrNoTenant is returned by Store.PutWorkflow for a tenant that does not
// exist yet.
var ErrNoTenant = errors.New("workflow: no such tenant")

// Store keeps the registry and the runs. Names, users and secrets are
// stored encrypted when field encryption is on.
type Store interface {
	// PutWorkflow creates the tenant's workflow d.Name (storing secret) or
	// replaces its definition (keeping its secret); created says which.
	// It bumps the registry version in the same transaction.
	PutWorkflow(ctx context.Context, tenant policy.KeyHash, d Definition, secret string) (w Stored, created bool, err error)
	// GetWorkflow returns the tenant's workflow name.
	GetWorkflow(ctx context.Context, tenant policy.KeyHash, name string) (Stored, bool, error)
	// ListWorkflows returns up to limit of the tenant's workflows whose
	// names sort after after (all when after is ""), sorted by name.
	ListWorkflows(ctx context.Context, tenant policy.KeyHash, after string, limit int) ([]Stored, error)
	// DeleteWorkflow deletes the tenant's workflow name and its runs, and
	// bumps the registry version; it reports whether there was one.
	DeleteWorkflow(ctx context.Context, tenant policy.KeyHash, name string) (bool, error)
	// RotateSecret replaces the workflow's secret with secret; the old one
	// stays as Previous until previousUntil (when previousUntil is after
	// now; otherwise Previous is cleared). It reports whether the workflow
	// exists.
	RotateSecret(ctx context.Context, tenant policy.KeyHash, name, secret string, previousUntil time.Time) (bool, error)
	// Secrets returns the signing secrets of workflow id.
	Secrets(ctx context.Context, workflowID int64) (Secrets, error)

	// RegistryVersion changes whenever any workflow is put or deleted.
	RegistryVersion(ctx context.Context) (int64, error)
	// EnabledWorkflows returns every enabled workflow of every tenant.
	EnabledWorkflows(ctx context.Context) ([]Stored, error)

	// ClaimRun inserts a running run for (c.WorkflowID, c.Scheduled); ok
	// is false, with no error, when that slot already has a run (another
	// process claimed it).
	ClaimRun(ctx context.Context, c Claim) (r RunRecord, ok bool, err error)
	// RenewRun extends the lease of a run its owner is still running.
	RenewRun(ctx context.Context, runID int64, owner string, until time.Time) error
	// FinishRun stores the result of a run (outcome, users, added, removed,
	// error, webhook, finished, duration) if owner still owns it.
	FinishRun(ctx context.Context, r RunRecord) error
	// ExpireRuns marks interrupted every running run whose lease ended
	// before now and returns how many.
	ExpireRuns(ctx context.Context, now time.Time) (int, error)
	// ReclaimRun takes one interrupted run of an enabled workflow for
	// owner (attempt+1, running, leased until until, started at now).
	ReclaimRun(ctx context.Context, owner string, now, until time.Time) (RunRecord, bool, error)
	// PreviousUsers returns the users of the workflow's latest finished
	// run (outcome ok) scheduled before before; found is false when none.
	PreviousUsers(ctx context.Context, workflowID int64, before time.Time) (users []string, found bool, err error)
	// LastScheduled returns the latest scheduled time of the workflow's
	// runs of trigger schedule or catch_up.
	LastScheduled(ctx context.Context, workflowID int64) (time.Time, bool, error)
	// ListRuns returns up to limit of the tenant's runs of workflow name
	// whose id is below beforeID (all when beforeID is 0), newest first.
	ListRuns(ctx context.Context, tenant policy.KeyHash, name string, beforeID int64, limit int) ([]RunRecord, error)
	// GetRun returns run id.
	GetRun(ctx context.Context, runID int64) (RunRecord, bool, error)
}
