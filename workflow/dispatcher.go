package workflow

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"

	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/webhook"
)

// sender delivers signed webhooks (webhook.Sender).
type sender interface {
	Send(ctx context.Context, url, id string, secrets []string, body []byte) webhook.Result
}

// DispatcherOptions tune a Dispatcher.
type DispatcherOptions struct {
	// Gocron is the process's shared gocron scheduler (nil: one of the
	// Dispatcher's own).
	Gocron gocron.Scheduler
	// SyncInterval is how often the registry is compared with the
	// scheduled jobs and abandoned runs are taken over (default 2s).
	SyncInterval time.Duration
	// Lease, StopTimeout and Owner are the Scheduler's (SchedulerOptions).
	Lease       time.Duration
	StopTimeout time.Duration
	Owner       string
	// Clock is the clock of the schedules; it must be Gocron's (nil: the
	// real one).
	Clock clockwork.Clock
	// Logger receives failures (nil: none).
	Logger *slog.Logger
}

// Dispatcher runs the registered workflows of every tenant on a
// Scheduler: it keeps the scheduled jobs in step with the registry (which
// any process may change), takes over the runs that another process left
// unfinished, and sends each run's signed webhook.
type Dispatcher struct {
	store Store
	sched *Scheduler
	send  sender
	opts  DispatcherOptions
	log   *slog.Logger
	poke  chan struct{}

	// Only Run's loop reads and writes these.
	version int64
	synced  bool
	known   map[int64]knownJob
}

// knownJob is a scheduled registered workflow.
type knownJob struct {
	tenant policy.KeyHash
	name   string
	rev    int64
}

// NewDispatcher returns a Dispatcher of the workflows in store, asking svc
// who may run them and delivering webhooks with send.
func NewDispatcher(store Store, svc *Service, send sender, opts DispatcherOptions) (*Dispatcher, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 2 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sched, err := newScheduler(serviceUsers{svc}, SchedulerOptions{Gocron: opts.Gocron, Clock: opts.Clock,
		Lease: opts.Lease, StopTimeout: opts.StopTimeout, Owner: opts.Owner, Logger: log, store: store})
	if err != nil {
		return nil, err
	}
	return &Dispatcher{store: store, sched: sched, send: send, opts: opts, log: log,
		poke: make(chan struct{}, 1), known: map[int64]knownJob{}}, nil
}

// Changed tells the Dispatcher that the registry changed in this process:
// it syncs now rather than at its next interval.
func (d *Dispatcher) Changed() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// Run schedules the registered workflows and keeps them in step until ctx
// ends; then it stops its Scheduler (runs under way finish or are
// interrupted, recorded as such, and run again later).
func (d *Dispatcher) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- d.sched.Run(ctx) }()
	t := d.opts.Clock.NewTicker(d.opts.SyncInterval)
	defer t.Stop()
	for {
		d.sync(ctx)
		d.recover(ctx)
		select {
		case <-ctx.Done():
			return <-done
		case <-t.Chan():
		case <-d.poke:
		}
	}
}

// sync schedules what the registry holds, if it changed.
func (d *Dispatcher) sync(ctx context.Context) {
	v, err := d.store.RegistryVersion(ctx)
	if err != nil {
		d.logErr(ctx, "workflow registry: read the version", "err", err)
		return
	}
	if d.synced && v == d.version {
		return
	}
	list, err := d.store.EnabledWorkflows(ctx)
	if err != nil {
		d.logErr(ctx, "workflow registry: read the workflows", "err", err)
		return
	}
	seen := make(map[int64]bool, len(list))
	failed := false
	for _, w := range list {
		seen[w.ID] = true
		if k, ok := d.known[w.ID]; ok && k.rev == w.Revision {
			continue
		}
		j, err := d.job(w)
		if err == nil {
			err = d.sched.Add(j)
		}
		if err != nil {
			failed = true
			d.log.Error("workflow registry: schedule", "workflow", w.Name, "err", err)
			continue
		}
		d.known[w.ID] = knownJob{tenant: w.Tenant, name: w.Name, rev: w.Revision}
	}
	for id, k := range d.known {
		if seen[id] {
			continue
		}
		if err := d.sched.Remove(k.tenant, k.name); err != nil {
			failed = true
			d.log.Error("workflow registry: unschedule", "workflow", k.name, "err", err)
			continue
		}
		delete(d.known, id)
	}
	if !failed {
		d.version, d.synced = v, true
	}
}

// maxResumes bounds the abandoned runs taken over in one pass.
const maxResumes = 16

// recover marks interrupted the runs whose owner stopped renewing them and
// runs them again.
func (d *Dispatcher) recover(ctx context.Context) {
	now := d.opts.Clock.Now().UTC()
	if _, err := d.store.ExpireRuns(ctx, now); err != nil {
		d.logErr(ctx, "workflow runs: expire abandoned runs", "err", err)
		return
	}
	for range maxResumes {
		rec, ok, err := d.store.ReclaimRun(ctx, d.sched.opts.Owner, now, now.Add(d.sched.opts.Lease))
		if err != nil {
			d.logErr(ctx, "workflow runs: take over an interrupted run", "err", err)
			return
		}
		if !ok {
			return
		}
		if !d.sched.resume(rec) {
			// Not scheduled here (yet): give it back.
			rec.Outcome, rec.Error = OutcomeInterrupted, "the service stopped before the run finished"
			if err := d.store.FinishRun(ctx, rec); err != nil {
				d.log.Error("workflow runs: give back an interrupted run", "run", rec.ID, "err", err)
			}
			return
		}
	}
}

// logErr logs a failure of a sync or recovery pass, unless it failed
// because ctx ended (the process stopping): that is no failure.
func (d *Dispatcher) logErr(ctx context.Context, msg string, args ...any) {
	if ctx.Err() != nil {
		return
	}
	d.log.Error(msg, args...)
}

// job is the scheduled job of a registered workflow.
func (d *Dispatcher) job(w Stored) (Job, error) {
	sch, err := ParseSchedule(w.Schedule)
	if err != nil {
		return Job{}, err
	}
	return Job{Tenant: w.Tenant, Workflow: w.Name, Permission: w.Permission, Schedule: sch, CatchUp: w.CatchUp,
		id: w.ID, rev: w.Revision, updated: w.UpdatedAt, deliver: d.deliverer(w)}, nil
}

// runNow runs a registered workflow now.
func (d *Dispatcher) runNow(ctx context.Context, w Stored) (RunRecord, error) {
	j, err := d.job(w)
	if err != nil {
		return RunRecord{}, err
	}
	// A manual run goes on if its caller goes away.
	return d.sched.runNow(context.WithoutCancel(ctx), j)
}

// deliverer sends the webhook of a run of w, as w says when.
func (d *Dispatcher) deliverer(w Stored) func(ctx context.Context, r Run) *WebhookResult {
	return func(ctx context.Context, r Run) *WebhookResult {
		if w.WebhookURL == "" {
			return nil
		}
		if w.Notify != NotifyAlways && !r.Changed() {
			return &WebhookResult{Outcome: WebhookSkipped}
		}
		secrets, err := d.store.Secrets(ctx, w.ID)
		if err != nil {
			return &WebhookResult{Outcome: WebhookFailed, Error: "read the signing secret: " + err.Error()}
		}
		keys := []string{secrets.Current}
		if secrets.Previous != "" && secrets.PreviousUntil.After(d.opts.Clock.Now()) {
			keys = append(keys, secrets.Previous)
		}
		body, err := json.Marshal(webhook.Payload{Workflow: r.Workflow, RunID: r.ID, Users: r.Users,
			Added: r.Added, Removed: r.Removed, At: d.opts.Clock.Now().UTC()})
		if err != nil {
			return &WebhookResult{Outcome: WebhookFailed, Error: err.Error()}
		}
		res := d.send.Send(ctx, w.WebhookURL, r.ID, keys, body)
		return &WebhookResult{Outcome: WebhookOutcome(res.Outcome), Attempts: res.Attempts, Status: res.Status,
			Error: res.Err}
	}
}
