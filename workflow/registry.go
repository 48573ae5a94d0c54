package workflow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/webhook"
)

// Spec is what a tenant sends to register or replace a workflow; what it
// leaves out takes its default.
type Spec struct {
	Schedule    string  // required
	Permission  string  // "": the workflow's name
	WebhookURL  string  // "": none
	Description *string // nil: none
	Enabled     *bool   // nil: true
	Notify      string  // "": changes
	CatchUp     *bool   // nil: true
}

// Limits of a Spec.
const (
	maxDescription = 1024
	maxWebhookURL  = 2048
	// MaxSecretGrace bounds how long a rotated secret may keep signing.
	MaxSecretGrace = 7 * 24 * time.Hour
	// DefaultSecretGrace is how long it does when the rotation does not say.
	DefaultSecretGrace = 24 * time.Hour
)

// ruleWorkflow is the rule of registered workflow names: the role rule, so
// that the original can_run route, which checks a workflow name as a role
// name, reaches every registered workflow.
const ruleWorkflow = "Workflow names must be 1-64 characters long and contain only alphanumeric, underscore, and hyphen"

// FieldError is a value of a Spec that is not valid.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// urlChecker checks webhook targets (webhook.Guard).
type urlChecker interface {
	CheckURL(ctx context.Context, raw string) (*url.URL, error)
}

// tenantMaker creates a tenant that does not exist yet (the policy core).
type tenantMaker interface {
	EnsureTenant(ctx context.Context, key policy.KeyHash) error
}

// RegistryOptions tune a Registry.
type RegistryOptions struct {
	// MinInterval is the shortest time allowed between two runs of a
	// workflow (default 1s).
	MinInterval time.Duration
	// URLs checks webhook URLs (nil: only their form is checked).
	URLs urlChecker
	// ValidPermission validates a permission name (nil:
	// policy.ValidPermission); the server passes its model's rule.
	ValidPermission func(string) bool
	// Clock is the time (nil: the real one).
	Clock clockwork.Clock
}

// Registry keeps the tenants' workflows and runs them on demand.
type Registry struct {
	store   Store
	tenants tenantMaker
	disp    *Dispatcher
	opts    RegistryOptions
}

// NewRegistry returns the registry over store; tenants creates the tenant
// of a first registration, disp runs workflows on demand and hears of
// every change.
func NewRegistry(store Store, tenants tenantMaker, disp *Dispatcher, opts RegistryOptions) *Registry {
	if opts.MinInterval <= 0 {
		opts.MinInterval = time.Second
	}
	if opts.ValidPermission == nil {
		opts.ValidPermission = policy.ValidPermission
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	return &Registry{store: store, tenants: tenants, disp: disp, opts: opts}
}

// checkName validates a workflow name.
func checkName(name string) error {
	if !policy.ValidRole(name) {
		return &policy.NameError{Kind: "workflow", Value: name, Rule: ruleWorkflow}
	}
	return nil
}

// definition validates spec and returns the definition it registers.
func (r *Registry) definition(ctx context.Context, name string, spec Spec) (Definition, error) {
	if err := checkName(name); err != nil {
		return Definition{}, err
	}
	d := Definition{Name: name, Permission: spec.Permission, Schedule: spec.Schedule, WebhookURL: spec.WebhookURL,
		Description: spec.Description, Enabled: true, Notify: NotifyChanges, CatchUp: true}
	if d.Permission == "" {
		d.Permission = name
	}
	if !r.opts.ValidPermission(d.Permission) {
		return Definition{}, &policy.NameError{Kind: "permission", Value: d.Permission}
	}
	sch, err := ParseSchedule(spec.Schedule)
	if err != nil {
		return Definition{}, err
	}
	if gap := sch.MinGap(r.opts.Clock.Now()); gap < r.opts.MinInterval {
		return Definition{}, &ScheduleError{Schedule: spec.Schedule, Message: fmt.Sprintf(
			"Schedule '%s' runs every %s; the shortest interval allowed is %s (AUTH_WORKFLOW_MIN_INTERVAL).",
			spec.Schedule, gap, r.opts.MinInterval)}
	}
	d.Schedule = sch.String()
	if spec.Enabled != nil {
		d.Enabled = *spec.Enabled
	}
	if spec.CatchUp != nil {
		d.CatchUp = *spec.CatchUp
	}
	switch Notify(spec.Notify) {
	case "":
	case NotifyChanges, NotifyAlways:
		d.Notify = Notify(spec.Notify)
	default:
		return Definition{}, &FieldError{Field: "notify", Message: fmt.Sprintf(
			"Field 'notify' must be 'changes' or 'always', not '%s'.", spec.Notify)}
	}
	if d.Description != nil && len(*d.Description) > maxDescription {
		return Definition{}, &FieldError{Field: "description", Message: fmt.Sprintf(
			"Field 'description' must be at most %d bytes long.", maxDescription)}
	}
	if d.WebhookURL != "" {
		if len(d.WebhookURL) > maxWebhookURL {
			return Definition{}, &FieldError{Field: "webhook_url", Message: fmt.Sprintf(
				"Field 'webhook_url' must be at most %d bytes long.", maxWebhookURL)}
		}
		if err := r.checkURL(ctx, d.WebhookURL); err != nil {
			return Definition{}, err
		}
	}
	return d, nil
}

// checkURL checks a webhook URL's form and, with a checker, its target.
func (r *Registry) checkURL(ctx context.Context, raw string) error {
	if r.opts.URLs != nil {
		_, err := r.opts.URLs.CheckURL(ctx, raw)
		return err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &webhook.RefusedError{URL: raw, Reason: fmt.Sprintf(
			"Webhook URL '%s' is not an absolute http or https URL.", raw)}
	}
	return nil
}

// Put registers the tenant's workflow name or replaces its definition.
// A new workflow gets a webhook signing secret, returned here only.
func (r *Registry) Put(ctx context.Context, key policy.KeyHash, name string, spec Spec) (w Stored, created bool, secret string, err error) {
	d, err := r.definition(ctx, name, spec)
	if err != nil {
		return Stored{}, false, "", err
	}
	secret, err = webhook.NewSecret()
	if err != nil {
		return Stored{}, false, "", err
	}
	w, created, err = r.store.PutWorkflow(ctx, key, d, secret)
	if errors.Is(err, ErrNoTenant) {
		if err = r.tenants.EnsureTenant(ctx, key); err != nil {
			return Stored{}, false, "", err
		}
		w, created, err = r.store.PutWorkflow(ctx, key, d, secret)
	}
	if err != nil {
		return Stored{}, false, "", err
	}
	r.disp.Changed()
	if !created {
		secret = ""
	}
	return w, created, secret, nil
}

// Get returns the tenant's workflow name.
func (r *Registry) Get(ctx context.Context, key policy.KeyHash, name string) (Stored, error) {
	if err := checkName(name); err != nil {
		return Stored{}, err
	}
	w, found, err := r.store.GetWorkflow(ctx, key, name)
	if err != nil {
		return Stored{}, err
	}
	if !found {
		return Stored{}, &NotFoundError{Name: name}
	}
	return w, nil
}

// List returns up to limit of the tenant's workflows sorted by name, from
// the first whose name sorts after after.
func (r *Registry) List(ctx context.Context, key policy.KeyHash, after string, limit int) ([]Stored, error) {
	return r.store.ListWorkflows(ctx, key, after, limit)
}

// Delete removes the tenant's workflow name and its runs; it reports
// whether there was one.
func (r *Registry) Delete(ctx context.Context, key policy.KeyHash, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	deleted, err := r.store.DeleteWorkflow(ctx, key, name)
	if err != nil {
		return false, err
	}
	if deleted {
		r.disp.Changed()
	}
	return deleted, nil
}

// RotateSecret gives the workflow a new signing secret; the previous one
// keeps signing too for grace (0: it stops now).
func (r *Registry) RotateSecret(ctx context.Context, key policy.KeyHash, name string, grace time.Duration) (secret string, previousUntil time.Time, err error) {
	if err := checkName(name); err != nil {
		return "", time.Time{}, err
	}
	if grace < 0 || grace > MaxSecretGrace {
		return "", time.Time{}, &FieldError{Field: "grace", Message: fmt.Sprintf(
			"Field 'grace' must be between 0s and %s.", durationText(MaxSecretGrace))}
	}
	if secret, err = webhook.NewSecret(); err != nil {
		return "", time.Time{}, err
	}
	if grace > 0 {
		previousUntil = r.opts.Clock.Now().UTC().Add(grace).Truncate(time.Microsecond)
	}
	found, err := r.store.RotateSecret(ctx, key, name, secret, previousUntil)
	if err != nil {
		return "", time.Time{}, err
	}
	if !found {
		return "", time.Time{}, &NotFoundError{Name: name}
	}
	return secret, previousUntil, nil
}

// durationText writes d in hours when it is whole hours ("168h").
func durationText(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// RunNow runs the tenant's workflow now (enabled or not), webhook
// included, and returns the run.
func (r *Registry) RunNow(ctx context.Context, key policy.KeyHash, name string) (RunRecord, error) {
	w, err := r.Get(ctx, key, name)
	if err != nil {
		return RunRecord{}, err
	}
	return r.disp.runNow(ctx, w)
}

// Runs returns up to limit of the workflow's runs, newest first, from the
// first whose id is below beforeID (0: the newest).
func (r *Registry) Runs(ctx context.Context, key policy.KeyHash, name string, beforeID int64, limit int) ([]RunRecord, error) {
	if _, err := r.Get(ctx, key, name); err != nil {
		return nil, err
	}
	return r.store.ListRuns(ctx, key, name, beforeID, limit)
}

// NextRun is when the workflow runs next (zero when it is disabled).
func (r *Registry) NextRun(w Stored) time.Time {
	if !w.Enabled {
		return time.Time{}
	}
	sch, err := ParseSchedule(w.Schedule)
	if err != nil {
		return time.Time{}
	}
	return sch.Next(r.opts.Clock.Now())
}
