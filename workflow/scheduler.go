package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/ourway/auth/policy"
)

// Run is one run of a workflow: who may run it now, and what changed since
// its previous run.
type Run struct {
	// ID identifies the run ("" for runs of a scheduler without a store).
	ID         string
	Tenant     policy.KeyHash
	Workflow   string
	Permission string
	Trigger    Trigger
	// Scheduled is the time of the schedule this run is for (for a manual
	// run, when it was asked for).
	Scheduled time.Time
	Started   time.Time
	// Attempt counts the runs of this slot: more than 1 when an earlier
	// one was interrupted.
	Attempt int
	// Users may run the workflow (sorted): the holders of Permission,
	// through their roles and inherited roles.
	Users []string
	// Added and Removed are the changes since the previous finished run
	// (on the first run, Added is Users).
	Added   []string
	Removed []string
}

// Changed reports whether the run found users added or removed.
func (r Run) Changed() bool { return len(r.Added) > 0 || len(r.Removed) > 0 }

// Func is called with each run of a job. An error marks the run failed.
type Func func(ctx context.Context, r Run) error

// Job is a workflow run on a schedule.
type Job struct {
	Tenant     policy.KeyHash
	Workflow   string
	Permission string // "" means Workflow
	Schedule   Schedule
	// CatchUp runs, when the job is added, the latest slot missed since
	// the previous run (with a store that remembers runs).
	CatchUp bool
	Func    Func

	// id is the stored workflow's id; rev its revision; updated when it
	// was last changed. deliver, set for registered workflows, sends the
	// run's webhook and returns what became of it.
	id      int64
	rev     int64
	updated time.Time
	deliver func(ctx context.Context, r Run) *WebhookResult
}

// runs is what the scheduler needs from the run store.
type runs interface {
	ClaimRun(ctx context.Context, c Claim) (RunRecord, bool, error)
	RenewRun(ctx context.Context, runID int64, owner string, until time.Time) error
	FinishRun(ctx context.Context, r RunRecord) error
	PreviousUsers(ctx context.Context, workflowID int64, before time.Time) ([]string, bool, error)
	LastScheduled(ctx context.Context, workflowID int64) (time.Time, bool, error)
}

// users is what the scheduler needs to find who may run a workflow.
type users interface {
	UsersFor(ctx context.Context, key policy.KeyHash, workflow, permission string) ([]string, error)
}

// SchedulerOptions tune a Scheduler. The zero value is ready to use.
type SchedulerOptions struct {
	// Gocron is the gocron scheduler to run the jobs on, started and
	// stopped by its owner (the process's shared one). Nil: the Scheduler
	// makes its own, started and stopped by Run.
	Gocron gocron.Scheduler
	// Clock is the clock of the schedules; it must be Gocron's (nil: the
	// real one).
	Clock clockwork.Clock
	// Lease is how long a claimed run stays claimed without being renewed
	// (default 30s); a running run renews it every third of it.
	Lease time.Duration
	// StopTimeout is how long a run under way may go on once the
	// scheduler stops (default 10s); then it is interrupted, recorded as
	// such, and runs again later.
	StopTimeout time.Duration
	// Owner names this process in run claims (default: host, pid and a
	// random suffix).
	Owner string
	// Logger receives run failures (nil: none).
	Logger *slog.Logger

	// store keeps runs (nil: in memory, for this process alone).
	store runs
}

// Scheduler runs jobs on their schedules: on each one it computes who may
// run the workflow, compares with the previous run and calls the job's
// Func. With a store shared by several processes (the server's database),
// each slot of a job is claimed by one process only: every scheduled run
// happens once, whichever process runs it.
type Scheduler struct {
	who   users
	opts  SchedulerOptions
	log   *slog.Logger
	store runs
	own   bool // the gocron scheduler is ours

	mu      sync.Mutex
	g       gocron.Scheduler
	jobs    map[string]*scheduled
	nextID  int64
	stopped chan struct{} // closed when Run's ctx ends
	wg      sync.WaitGroup
}

// scheduled is a job added to the gocron scheduler.
type scheduled struct {
	job Job
	gid uuid.UUID
}

// NewScheduler returns a Scheduler asking s who may run workflows; its
// answers are recorded in the audit trail as s records them.
func NewScheduler(s *Service, opts SchedulerOptions) (*Scheduler, error) {
	return newScheduler(serviceUsers{s}, opts)
}

func newScheduler(who users, opts SchedulerOptions) (*Scheduler, error) {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.Owner == "" {
		opts.Owner = defaultOwner()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Scheduler{who: who, opts: opts, log: log, store: opts.store, jobs: map[string]*scheduled{},
		stopped: make(chan struct{})}
	if s.store == nil {
		s.store = newMemRuns()
	}
	s.g = opts.Gocron
	if s.g == nil {
		g, err := gocron.NewScheduler(gocron.WithLocation(time.UTC), gocron.WithClock(opts.Clock),
			gocron.WithStopTimeout(opts.StopTimeout+5*time.Second))
		if err != nil {
			return nil, err
		}
		s.g, s.own = g, true
	}
	return s, nil
}

// defaultOwner names this process: host, pid and a random suffix.
func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// serviceUsers lists users through a Service (which records the question).
type serviceUsers struct{ s *Service }

func (u serviceUsers) UsersFor(ctx context.Context, key policy.KeyHash, workflow, perm string) ([]string, error) {
	list, err := u.s.usersHolding(ctx, key, workflow, perm)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		out = append(out, m.User)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func jobKey(tenant policy.KeyHash, workflow string) string { return string(tenant) + "\x00" + workflow }

// Every runs fn every d (anchored at the Unix epoch: every 5m runs at
// :00, :05, …) with the users who hold the permission named workflow.
func (s *Scheduler) Every(tenant policy.KeyHash, workflow string, d time.Duration, fn Func) error {
	sch, err := Every(d)
	if err != nil {
		return err
	}
	return s.Add(Job{Tenant: tenant, Workflow: workflow, Schedule: sch, Func: fn})
}

// Cron runs fn on the cron expression expr (five fields, or six with
// seconds first) with the users who hold the permission named workflow.
func (s *Scheduler) Cron(tenant policy.KeyHash, workflow, expr string, fn Func) error {
	sch, err := ParseSchedule(expr)
	if err != nil {
		return err
	}
	if sch.Interval() > 0 {
		return scheduleErr(expr, "'%s' is an interval, not a cron expression", expr)
	}
	return s.Add(Job{Tenant: tenant, Workflow: workflow, Schedule: sch, Func: fn})
}

// Add schedules j, replacing the tenant's job of the same workflow.
func (s *Scheduler) Add(j Job) error {
	switch {
	case j.Workflow == "":
		return errors.New("workflow: a job needs a workflow name")
	case j.Schedule.IsZero():
		return fmt.Errorf("workflow: job %q has no schedule", j.Workflow)
	case j.Func == nil && j.deliver == nil:
		return fmt.Errorf("workflow: job %q has no function", j.Workflow)
	}
	if j.Permission == "" {
		j.Permission = j.Workflow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.id == 0 {
		s.nextID--
		j.id = s.nextID // in-memory jobs: ids of their own
	}
	key := jobKey(j.Tenant, j.Workflow)
	_, replaced := s.jobs[key]
	if err := s.removeLocked(key); err != nil {
		return err
	}
	def, opts := j.Schedule.job(s.opts.Clock.Now())
	sj := &scheduled{job: j}
	opts = append(opts, gocron.WithName("workflow "+j.Workflow),
		gocron.WithSingletonMode(gocron.LimitModeReschedule))
	g, err := s.g.NewJob(def, gocron.NewTask(func(ctx context.Context) { s.tick(ctx, sj) }), opts...)
	if err != nil {
		return fmt.Errorf("workflow: schedule %q: %w", j.Workflow, err)
	}
	sj.gid = g.ID()
	s.jobs[key] = sj
	if j.CatchUp && !replaced {
		s.catchUpLocked(sj)
	}
	return nil
}

// Remove stops scheduling the tenant's workflow; a run under way goes on.
func (s *Scheduler) Remove(tenant policy.KeyHash, workflow string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(jobKey(tenant, workflow))
}

func (s *Scheduler) removeLocked(key string) error {
	old, ok := s.jobs[key]
	if !ok {
		return nil
	}
	delete(s.jobs, key)
	if err := s.g.RemoveJob(old.gid); err != nil && !errors.Is(err, gocron.ErrJobNotFound) {
		return fmt.Errorf("workflow: unschedule %q: %w", old.job.Workflow, err)
	}
	return nil
}

// catchUpLocked runs, in the background, the latest slot of sj missed
// since its previous run, if it is later than the job's last change.
func (s *Scheduler) catchUpLocked(sj *scheduled) {
	now := s.opts.Clock.Now()
	due := sj.job.Schedule.Prev(now)
	if due.IsZero() || !due.After(sj.job.updated) {
		return
	}
	s.background(func(ctx context.Context) {
		last, found, err := s.store.LastScheduled(ctx, sj.job.id)
		if err != nil {
			s.log.Error("workflow catch-up: read the last run", "workflow", sj.job.Workflow, "err", err)
			return
		}
		if !found || !due.After(last) {
			return // never run yet, or nothing missed
		}
		s.fire(ctx, sj.job, due, TriggerCatchUp)
	})
}

// background runs fn in a goroutine Run waits for; its ctx ends when the
// scheduler stops.
func (s *Scheduler) background(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stopped:
				cancel()
			case <-ctx.Done():
			}
		}()
		fn(ctx)
	}()
}

// tick is a scheduled run of sj: the slot is the schedule's latest time.
func (s *Scheduler) tick(ctx context.Context, sj *scheduled) {
	s.fire(ctx, sj.job, sj.job.Schedule.Prev(s.opts.Clock.Now()), TriggerSchedule)
}

// fire claims the slot of j and, if this process got it, runs it.
func (s *Scheduler) fire(ctx context.Context, j Job, slot time.Time, trig Trigger) {
	now := s.opts.Clock.Now().UTC()
	rec, ok, err := s.store.ClaimRun(ctx, Claim{WorkflowID: j.id, Scheduled: slot, Trigger: trig,
		Owner: s.opts.Owner, LeaseUntil: now.Add(s.opts.Lease), Started: now})
	if err != nil {
		s.log.Error("workflow run: claim", "workflow", j.Workflow, "scheduled", slot, "err", err)
		return
	}
	if !ok {
		return // another process runs it
	}
	s.execute(ctx, j, rec)
}

// resume runs again, in the background, a run of a scheduled job that
// was interrupted and that this process has reclaimed; it reports false
// when no job of this process has the run's workflow.
func (s *Scheduler) resume(rec RunRecord) bool {
	s.mu.Lock()
	var j *scheduled
	for _, sj := range s.jobs {
		if sj.job.id == rec.WorkflowID {
			j = sj
		}
	}
	s.mu.Unlock()
	if j == nil {
		return false
	}
	s.background(func(ctx context.Context) { s.execute(ctx, j.job, rec) })
	return true
}

// RunNow runs the tenant's scheduled workflow now and returns the run.
func (s *Scheduler) RunNow(ctx context.Context, tenant policy.KeyHash, workflow string) (RunRecord, error) {
	s.mu.Lock()
	sj, ok := s.jobs[jobKey(tenant, workflow)]
	s.mu.Unlock()
	if !ok {
		return RunRecord{}, &NotFoundError{Name: workflow}
	}
	return s.runNow(ctx, sj.job)
}

// runNow claims a manual slot of j (now, to the microsecond) and runs it.
func (s *Scheduler) runNow(ctx context.Context, j Job) (RunRecord, error) {
	now := s.opts.Clock.Now().UTC().Truncate(time.Microsecond)
	for range 5 {
		rec, ok, err := s.store.ClaimRun(ctx, Claim{WorkflowID: j.id, Scheduled: now, Trigger: TriggerManual,
			Owner: s.opts.Owner, LeaseUntil: now.Add(s.opts.Lease), Started: now})
		if err != nil {
			return RunRecord{}, err
		}
		if ok {
			return s.execute(ctx, j, rec), nil
		}
		now = now.Add(time.Microsecond) // that instant was taken
	}
	return RunRecord{}, errors.New("workflow: could not claim a manual run")
}

// execute runs a claimed run to its end and records it. The work goes on
// after ctx ends (the scheduler stopping) for at most StopTimeout; then it
// is interrupted and recorded as such.
func (s *Scheduler) execute(ctx context.Context, j Job, rec RunRecord) RunRecord {
	work, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go s.watch(ctx, done, cancel)
	go s.renew(work, done, rec.ID)

	start := s.opts.Clock.Now()
	run := Run{ID: strconv.FormatInt(rec.ID, 10), Tenant: j.Tenant, Workflow: j.Workflow,
		Permission: j.Permission, Trigger: rec.Trigger, Scheduled: rec.Scheduled, Started: rec.Started,
		Attempt: rec.Attempt}
	rec.WorkflowRev = j.rev
	err := s.compute(work, j, &run)
	if err == nil {
		rec.Users, rec.Added, rec.Removed = run.Users, run.Added, run.Removed
		switch {
		case j.deliver != nil:
			rec.Webhook = j.deliver(work, run)
		case j.Func != nil:
			err = j.Func(work, run)
		}
	}
	rec.Finished = s.opts.Clock.Now().UTC()
	rec.DurationMS = rec.Finished.Sub(start).Milliseconds()
	switch {
	case context.Cause(work) == errInterrupted:
		rec.Outcome, rec.Error = OutcomeInterrupted, "the service stopped before the run finished"
		rec.Finished = time.Time{}
	case err != nil:
		rec.Outcome, rec.Error = OutcomeFailed, err.Error()
		s.log.Error("workflow run failed", "workflow", j.Workflow, "run", rec.ID, "err", err)
	default:
		rec.Outcome = OutcomeOK
	}
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer fcancel()
	if err := s.store.FinishRun(fctx, rec); err != nil {
		s.log.Error("workflow run: record", "workflow", j.Workflow, "run", rec.ID, "err", err)
	}
	return rec
}

// errInterrupted is the cause of a run's end when the scheduler stopped.
var errInterrupted = errors.New("workflow: interrupted by shutdown")

// watch interrupts a run StopTimeout after ctx (the scheduler's) ends.
func (s *Scheduler) watch(ctx context.Context, done <-chan struct{}, cancel context.CancelCauseFunc) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	case <-s.stopped:
	}
	t := s.opts.Clock.NewTimer(s.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.Chan():
		cancel(errInterrupted)
	}
}

// renew extends the run's lease every third of it until done.
func (s *Scheduler) renew(ctx context.Context, done <-chan struct{}, id int64) {
	t := s.opts.Clock.NewTicker(s.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.Chan():
			until := s.opts.Clock.Now().Add(s.opts.Lease)
			if err := s.store.RenewRun(ctx, id, s.opts.Owner, until); err != nil {
				s.log.Error("workflow run: renew the lease", "run", id, "err", err)
			}
		}
	}
}

// compute fills the users of run and what changed since the previous one.
func (s *Scheduler) compute(ctx context.Context, j Job, run *Run) error {
	list, err := s.who.UsersFor(ctx, j.Tenant, j.Workflow, j.Permission)
	if err != nil {
		return err
	}
	prev, found, err := s.store.PreviousUsers(ctx, j.id, run.Scheduled)
	if err != nil {
		return fmt.Errorf("read the previous run: %w", err)
	}
	run.Users = list
	if !found {
		prev = nil
	}
	run.Added, run.Removed = diff(prev, list)
	return nil
}

// diff returns what is in b and not in a, and what is in a and not in b
// (both sorted).
func diff(a, b []string) (added, removed []string) {
	in := func(s []string, v string) bool { _, ok := slices.BinarySearch(s, v); return ok }
	added, removed = []string{}, []string{}
	for _, v := range b {
		if !in(a, v) {
			added = append(added, v)
		}
	}
	for _, v := range a {
		if !in(b, v) {
			removed = append(removed, v)
		}
	}
	return added, removed
}

// Run starts the jobs (the gocron scheduler too, when it is the
// Scheduler's own) and runs them until ctx ends; then it stops, letting
// runs under way finish for at most StopTimeout.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.own {
		s.g.Start()
	}
	<-ctx.Done()
	close(s.stopped)
	var err error
	if s.own {
		err = s.g.Shutdown()
	}
	s.wg.Wait()
	return err
}

// NotFoundError is the error of a workflow that is not registered.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("Workflow '%s' does not exist.", e.Name) }
