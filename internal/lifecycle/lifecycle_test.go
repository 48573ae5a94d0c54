package lifecycle_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/ourway/auth/internal/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what the parts and the group did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// Handle makes the journal a slog handler that keeps the group's own
// "part started" and "part stopped" records.
func (j *journal) Enabled(context.Context, slog.Level) bool { return true }
func (j *journal) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "part" {
			j.add(r.Message + " " + a.Value.String())
		}
		return true
	})
	return nil
}
func (j *journal) WithAttrs([]slog.Attr) slog.Handler { return j }
func (j *journal) WithGroup(string) slog.Handler      { return j }

// waiter is a part that says when it runs and, when its ctx ends, records
// that it stops and returns err.
func waiter(j *journal, name string, running *sync.WaitGroup, err error) lifecycle.Part {
	running.Add(1)
	return lifecycle.Part{Name: name, Run: func(ctx context.Context) error {
		running.Done()
		<-ctx.Done()
		j.add("stop " + name)
		return err
	}}
}

// The parts start in order and, once ctx ends, stop in reverse order, each
// only after the ones started after it have returned.
func TestRunStartsInOrderAndStopsInReverse(t *testing.T) {
	j := &journal{}
	var running sync.WaitGroup
	parts := []lifecycle.Part{
		waiter(j, "queue", &running, nil),
		waiter(j, "scheduler", &running, nil),
		waiter(j, "http", &running, nil),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lifecycle.Run(ctx, slog.New(j), parts...) }()
	running.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after a clean stop", err)
	}
	want := []string{
		"part started queue", "part started scheduler", "part started http",
		"stop http", "part stopped http",
		"stop scheduler", "part stopped scheduler",
		"stop queue", "part stopped queue",
	}
	if got := j.all(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

// A part that fails stops the others (in reverse order) and its error is
// the group's; a part that returns nil before it is asked to stop has
// failed too.
func TestRunPartFailureStopsTheOthers(t *testing.T) {
	boom := errors.New("listener closed")
	cases := []struct {
		name    string
		err     error // what the middle part returns, at once
		wantErr error
	}{
		{"error", boom, boom},
		{"early nil", nil, lifecycle.ErrStopped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			var running sync.WaitGroup
			first := waiter(j, "first", &running, nil)
			last := waiter(j, "last", &running, nil)
			release := make(chan struct{})
			failing := lifecycle.Part{Name: "failing", Run: func(ctx context.Context) error {
				<-release // fail once the others run, so that all three started
				j.add("fail")
				return tc.err
			}}
			done := make(chan error, 1)
			go func() { done <- lifecycle.Run(context.Background(), slog.New(j), first, failing, last) }()
			running.Wait()
			close(release)
			err := <-done
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if want := "failing: "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Run = %q, want it to name the part (%q…)", err, want)
			}
			// The failing part may fail before the group logs that the
			// last part started: compare the starts and the rest apart.
			var starts, rest []string
			for _, e := range j.all() {
				if strings.HasPrefix(e, "part started ") {
					starts = append(starts, e)
				} else {
					rest = append(rest, e)
				}
			}
			if want := []string{"part started first", "part started failing", "part started last"}; !slices.Equal(starts, want) {
				t.Errorf("starts %q, want %q", starts, want)
			}
			want := []string{
				"fail", "part failed failing", "stop last", "part stopped last", "part stopped failing",
				"stop first", "part stopped first",
			}
			if !slices.Equal(rest, want) {
				t.Errorf("events:\n got %q\nwant %q", rest, want)
			}
		})
	}
}

// The first error wins: errors of parts while they stop do not replace it,
// and a part's error while stopping is returned when nothing failed before.
func TestRunErrorWhileStopping(t *testing.T) {
	j := &journal{}
	var running sync.WaitGroup
	flushErr := errors.New("queue not flushed")
	ctx, cancel := context.WithCancel(context.Background())
	parts := []lifecycle.Part{waiter(j, "queue", &running, flushErr), waiter(j, "http", &running, nil)}
	done := make(chan error, 1)
	go func() { done <- lifecycle.Run(ctx, nil, parts...) }()
	running.Wait()
	cancel()
	if err := <-done; !errors.Is(err, flushErr) {
		t.Fatalf("Run = %v, want the stopping part's error %v", err, flushErr)
	}
	if got, want := j.all(), []string{"stop http", "stop queue"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// A ctx that has ended before Run starts nothing, and a part's context
// keeps ctx's values but not its cancellation.
func TestRunContext(t *testing.T) {
	t.Run("ended before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		err := lifecycle.Run(ctx, nil, lifecycle.Part{Name: "p", Run: func(context.Context) error { called = true; return nil }})
		if err != nil || called {
			t.Errorf("Run on an ended ctx = %v, part called %v; want nil and false", err, called)
		}
	})
	t.Run("values kept", func(t *testing.T) {
		type key struct{}
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
		got := make(chan any, 1)
		done := make(chan error, 1)
		go func() {
			done <- lifecycle.Run(ctx, nil, lifecycle.Part{Name: "p", Run: func(pctx context.Context) error {
				got <- pctx.Value(key{})
				<-pctx.Done()
				return nil
			}})
		}()
		if v := <-got; v != "v" {
			t.Errorf("part ctx value = %v, want v", v)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}
