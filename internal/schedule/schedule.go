// Package schedule runs the service's periodic jobs (audit retention, audit
// checkpoints, the replica anti-entropy pass, the tenants' workflows) on
// one gocron scheduler, as a long-running part: jobs are added first, then
// Run starts them all and, when its context ends, stops them and waits for
// the runs under way. Jobs that come and go while it runs (workflows) are
// added to its gocron scheduler directly (Gocron).
package schedule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
)

// Job is a job run every interval.
type Job struct {
	// Name names the job in logs and errors.
	Name string
	// Every is the time between two runs; it must be positive.
	Every time.Duration
	// Immediately runs the job as soon as the scheduler starts (otherwise
	// the first run comes one interval later).
	Immediately bool
	// Run does the work. Its ctx ends when the scheduler stops. One run at
	// a time: a run still going when the next is due delays that one.
	Run func(ctx context.Context)
}

// Options tune a Scheduler. The zero value is ready to use.
type Options struct {
	// Clock is the scheduler's clock (nil: the real one); tests pass a fake
	// one and move it.
	Clock clockwork.Clock
	// StopTimeout bounds how long Run waits, once its ctx has ended, for
	// the runs under way (whose contexts have ended) to return (default 10s).
	StopTimeout time.Duration
	// Logger receives the scheduler's start and stop (nil: none).
	Logger *slog.Logger
}

// Scheduler is the one scheduler of the process's periodic jobs.
type Scheduler struct {
	opts Options
	log  *slog.Logger

	g    gocron.Scheduler
	gErr error // why g could not be made

	mu      sync.Mutex
	jobs    []Job
	started bool
}

// ErrStarted is returned by Add once Run has started.
var ErrStarted = errors.New("schedule: the scheduler has started")

// New returns a Scheduler without jobs.
func New(opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Scheduler{opts: opts, log: log}
}

// Gocron is the gocron scheduler the jobs run on, for jobs added and
// removed while it runs; it starts and stops with Run, which must then be
// called. Its clock is Options.Clock.
func (s *Scheduler) Gocron() (gocron.Scheduler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gocronLocked()
}

func (s *Scheduler) gocronLocked() (gocron.Scheduler, error) {
	if s.g == nil && s.gErr == nil {
		s.g, s.gErr = gocron.NewScheduler(gocron.WithLocation(time.UTC), gocron.WithClock(s.opts.Clock),
			gocron.WithStopTimeout(s.opts.StopTimeout))
	}
	return s.g, s.gErr
}

// Add adds a job; it runs once Run starts. It fails on a job without a
// name, a positive interval or a function, and after Run has started.
func (s *Scheduler) Add(j Job) error {
	switch {
	case j.Name == "":
		return errors.New("schedule: a job needs a name")
	case j.Every <= 0:
		return fmt.Errorf("schedule: job %q: interval %v is not positive", j.Name, j.Every)
	case j.Run == nil:
		return fmt.Errorf("schedule: job %q has no function", j.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("add job %q: %w", j.Name, ErrStarted)
	}
	s.jobs = append(s.jobs, j)
	return nil
}

// Run starts the jobs and runs them until ctx ends; then it stops
// scheduling, ends the contexts of the runs under way and waits for them
// (for at most Options.StopTimeout). Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("schedule: Run called twice")
	}
	s.started = true
	jobs := s.jobs
	g, err := s.gocronLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		opts := []gocron.JobOption{gocron.WithName(j.Name), gocron.WithSingletonMode(gocron.LimitModeReschedule)}
		if j.Immediately {
			opts = append(opts, gocron.WithStartAt(gocron.WithStartImmediately()))
		}
		// gocron hands a task whose first parameter is a context.Context
		// the job's context, which ends when the scheduler shuts down.
		if _, err := g.NewJob(gocron.DurationJob(j.Every), gocron.NewTask(j.Run), opts...); err != nil {
			_ = g.Shutdown()
			return fmt.Errorf("schedule job %q: %w", j.Name, err)
		}
	}
	g.Start()
	s.log.Debug("scheduler started", "jobs", len(jobs))
	<-ctx.Done()
	if err := g.Shutdown(); err != nil {
		return fmt.Errorf("stop the scheduler: %w", err)
	}
	return nil
}
