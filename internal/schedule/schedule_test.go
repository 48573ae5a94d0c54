package schedule_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/ourway/auth/internal/schedule"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run runs s until the returned stop is called; stop returns Run's error.
func run(t *testing.T, s *schedule.Scheduler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// A job marked Immediately runs when the scheduler starts; the others run
// one interval later, and again every interval.
func TestJobsRunOnTheirSchedule(t *testing.T) {
	clock := clockwork.NewFakeClock()
	s := schedule.New(schedule.Options{Clock: clock})
	now, later := make(chan struct{}, 10), make(chan struct{}, 10)
	for _, j := range []schedule.Job{
		{Name: "now", Every: time.Hour, Immediately: true, Run: func(context.Context) { now <- struct{}{} }},
		{Name: "later", Every: time.Minute, Run: func(context.Context) { later <- struct{}{} }},
	} {
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	stop := run(t, s)
	<-now // without moving the clock
	select {
	case <-later:
		t.Fatal("a job not marked Immediately ran at start")
	default:
	}
	for i := range 2 {
		// Both jobs wait for their next run before the clock moves.
		if err := clock.BlockUntilContext(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		<-later
		if i == 0 {
			select {
			case <-now:
				t.Fatal("the hourly job ran again after a minute")
			default:
			}
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// When Run's ctx ends, the contexts of the runs under way end and Run
// returns only after they have returned.
func TestRunWaitsForRunningJobs(t *testing.T) {
	s := schedule.New(schedule.Options{Clock: clockwork.NewFakeClock()})
	entered := make(chan struct{})
	var returned atomic.Bool
	if err := s.Add(schedule.Job{Name: "purge", Every: time.Hour, Immediately: true, Run: func(ctx context.Context) {
		close(entered)
		<-ctx.Done()
		returned.Store(true)
	}}); err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if !returned.Load() {
		t.Error("Run returned before the job under way did")
	}
}

// Bad jobs are refused with a clear error, and so is a job added once the
// scheduler runs.
func TestAddRefuses(t *testing.T) {
	job := func(context.Context) {}
	cases := []struct {
		name string
		job  schedule.Job
		want string
	}{
		{"no name", schedule.Job{Every: time.Second, Run: job}, "schedule: a job needs a name"},
		{"zero interval", schedule.Job{Name: "j", Run: job}, `schedule: job "j": interval 0s is not positive`},
		{"negative interval", schedule.Job{Name: "j", Every: -time.Second, Run: job}, `schedule: job "j": interval -1s is not positive`},
		{"no function", schedule.Job{Name: "j", Every: time.Second}, `schedule: job "j" has no function`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := schedule.New(schedule.Options{}).Add(tc.job)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Add(%+v) = %v, want %q", tc.job, err, tc.want)
			}
		})
	}
	t.Run("after start", func(t *testing.T) {
		s := schedule.New(schedule.Options{Clock: clockwork.NewFakeClock()})
		ran := make(chan struct{}, 1)
		if err := s.Add(schedule.Job{Name: "first", Every: time.Hour, Immediately: true,
			Run: func(context.Context) { ran <- struct{}{} }}); err != nil {
			t.Fatal(err)
		}
		stop := run(t, s)
		<-ran // Run has started
		if err := s.Add(schedule.Job{Name: "late", Every: time.Second, Run: job}); !errors.Is(err, schedule.ErrStarted) {
			t.Errorf("Add after Run = %v, want ErrStarted", err)
		}
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
