package audit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sink collects what a queue writes. A write blocks while gate is set and
// fails while fail > 0.
type sink struct {
	mu      sync.Mutex
	batches [][]audit.Record
	gate    chan struct{} // nil: open
	fail    atomic.Int64
	calls   atomic.Int64
	entered chan struct{} // receives one value per write call, if set
}

func (s *sink) write(ctx context.Context, recs []audit.Record) error {
	s.calls.Add(1)
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail.Add(-1) >= 0 {
		return errors.New("injected write failure")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, recs)
	return nil
}

// written returns the request ids written, in order.
func (s *sink) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, r := range b {
			out = append(out, r.RequestID)
		}
	}
	return out
}

func rec(id string) audit.Record {
	return audit.Record{Tenant: "t_x", Action: audit.CheckPermission, RequestID: id}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "r" + strconv.Itoa(i)
	}
	return out
}

// startQueue runs a queue and closes it when the test ends.
func startQueue(t *testing.T, s *sink, opts audit.QueueOptions) *audit.Queue {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	q := audit.NewQueue(s.write, opts)
	go q.Run(context.Background())
	t.Cleanup(func() {
		if s.gate != nil {
			select {
			case <-s.gate:
			default:
				close(s.gate)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d = %s, want %s (got %v)", what, i, got[i], want[i], got)
		}
	}
}

// Close writes everything still queued, in order, in batches of at most
// Batch records, even when the flush interval has not come.
func TestQueueCloseFlushes(t *testing.T) {
	cases := []struct{ n, batch int }{{0, 10}, {1, 10}, {10, 10}, {25, 10}, {1000, 64}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d in batches of %d", tc.n, tc.batch), func(t *testing.T) {
			s := &sink{}
			q := audit.NewQueue(s.write, audit.QueueOptions{Size: 2000, Batch: tc.batch, FlushInterval: time.Hour, Logger: quietLogger()})
			go q.Run(context.Background())
			want := ids(tc.n)
			for _, id := range want {
				if !q.Enqueue(context.Background(), rec(id)) {
					t.Fatalf("Enqueue(%s) refused", id)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := q.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			sameIDs(t, "written", s.written(), want)
			for _, b := range s.batches {
				if len(b) > tc.batch || len(b) == 0 {
					t.Errorf("batch of %d records, want 1..%d", len(b), tc.batch)
				}
			}
			if got := q.Written(); got != int64(tc.n) {
				t.Errorf("Written() = %d, want %d", got, tc.n)
			}
			if q.Dropped() != 0 || q.Depth() != 0 {
				t.Errorf("Dropped() = %d, Depth() = %d, want 0 and 0", q.Dropped(), q.Depth())
			}
			// A closed queue takes nothing more, and says so.
			if q.Enqueue(context.Background(), rec("late")) {
				t.Errorf("Enqueue after Close accepted a record")
			}
			if q.Dropped() != 1 {
				t.Errorf("Dropped() after a refused Enqueue = %d, want 1", q.Dropped())
			}
			if err := q.Close(ctx); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// A partial batch is written once the flush interval passes, without Close.
func TestQueueFlushInterval(t *testing.T) {
	s := &sink{}
	q := startQueue(t, s, audit.QueueOptions{Batch: 100, FlushInterval: 10 * time.Millisecond})
	q.Enqueue(context.Background(), rec("a"))
	q.Enqueue(context.Background(), rec("b"))
	deadline := time.Now().Add(5 * time.Second)
	for len(s.written()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("partial batch not written within 5s; written %v", s.written())
		}
		time.Sleep(time.Millisecond)
	}
	sameIDs(t, "written", s.written(), []string{"a", "b"})
}

// With Drop, a full queue refuses records at once and counts them; what
// it accepted is written.
func TestQueueDropWhenFull(t *testing.T) {
	s := &sink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	q := startQueue(t, s, audit.QueueOptions{Size: 3, Batch: 1, FlushInterval: time.Millisecond, Overflow: audit.Drop})
	ctx := context.Background()
	// The first record is taken by the writer, which then blocks.
	if !q.Enqueue(ctx, rec("first")) {
		t.Fatal("first record refused")
	}
	<-s.entered
	var accepted, refused []string
	for _, id := range ids(10) {
		if q.Enqueue(ctx, rec(id)) {
			accepted = append(accepted, id)
		} else {
			refused = append(refused, id)
		}
	}
	if len(accepted) != 3 || len(refused) != 7 {
		t.Fatalf("accepted %v, refused %v; want 3 (the queue size) and 7", accepted, refused)
	}
	if got := q.Dropped(); got != 7 {
		t.Errorf("Dropped() = %d, want 7", got)
	}
	close(s.gate)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := q.Close(cctx); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "written", s.written(), append([]string{"first"}, accepted...))
}

// With Block, a full queue makes the caller wait until there is room:
// nothing is dropped.
func TestQueueBlockWhenFull(t *testing.T) {
	s := &sink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	q := startQueue(t, s, audit.QueueOptions{Size: 2, Batch: 1, FlushInterval: time.Millisecond, Overflow: audit.Block})
	ctx := context.Background()
	q.Enqueue(ctx, rec("first"))
	<-s.entered
	q.Enqueue(ctx, rec("a"))
	q.Enqueue(ctx, rec("b"))
	returned := make(chan bool, 1)
	go func() { returned <- q.Enqueue(ctx, rec("c")) }()
	select {
	case <-returned:
		t.Fatal("Enqueue on a full queue returned while the writer was blocked")
	case <-time.After(50 * time.Millisecond):
		// Still waiting, as it should; this only bounds how long we look.
	}
	close(s.gate)
	select {
	case ok := <-returned:
		if !ok {
			t.Fatal("blocked Enqueue gave up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Enqueue did not return after the writer resumed")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := q.Close(cctx); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "written", s.written(), []string{"first", "a", "b", "c"})
	if q.Dropped() != 0 {
		t.Errorf("Dropped() = %d, want 0", q.Dropped())
	}
}

// With Block, a caller whose context ends while the queue is full gets its
// record counted as dropped instead of waiting forever.
func TestQueueBlockGivesUpWithContext(t *testing.T) {
	s := &sink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	q := startQueue(t, s, audit.QueueOptions{Size: 1, Batch: 1, FlushInterval: time.Millisecond})
	q.Enqueue(context.Background(), rec("first"))
	<-s.entered
	q.Enqueue(context.Background(), rec("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if q.Enqueue(ctx, rec("b")) {
		t.Fatal("Enqueue on a full queue accepted a record")
	}
	if q.Dropped() != 1 {
		t.Errorf("Dropped() = %d, want 1", q.Dropped())
	}
}

// A failed write is retried with the same records until it succeeds:
// nothing is lost or written twice, and each failure is counted.
func TestQueueRetriesFailedWrites(t *testing.T) {
	s := &sink{}
	s.fail.Store(3)
	q := audit.NewQueue(s.write, audit.QueueOptions{Batch: 4, FlushInterval: time.Hour, Logger: quietLogger()})
	go q.Run(context.Background())
	want := ids(10)
	for _, id := range want {
		q.Enqueue(context.Background(), rec(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sameIDs(t, "written", s.written(), want)
	if got := q.WriteFailures(); got != 3 {
		t.Errorf("WriteFailures() = %d, want 3", got)
	}
	if got, want := s.calls.Load(), int64(3+3); got != want { // 3 batches (4+4+2), 3 failures
		t.Errorf("write called %d times, want %d", got, want)
	}
	if q.Written() != 10 {
		t.Errorf("Written() = %d, want 10", q.Written())
	}
}

// The writer may keep the slice it is given (a store seals records in
// place): each attempt gets a fresh copy, so a failed attempt leaves no
// trace in the next one.
func TestQueueRetryGetsFreshRecords(t *testing.T) {
	var mu sync.Mutex
	var seen []int64
	attempt := 0
	write := func(_ context.Context, recs []audit.Record) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, recs[0].Seq)
		recs[0].Seq = 42 // what a failed store attempt might leave behind
		attempt++
		if attempt == 1 {
			return errors.New("injected")
		}
		return nil
	}
	q := audit.NewQueue(write, audit.QueueOptions{Batch: 1, FlushInterval: time.Hour, Logger: quietLogger()})
	go q.Run(context.Background())
	q.Enqueue(context.Background(), rec("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != 0 || seen[1] != 0 {
		t.Errorf("seq seen by the attempts = %v, want [0 0]", seen)
	}
}

// Close gives up when its context ends while a write hangs, and reports it.
func TestQueueCloseTimeout(t *testing.T) {
	s := &sink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	q := audit.NewQueue(s.write, audit.QueueOptions{Batch: 1, FlushInterval: time.Millisecond, Logger: quietLogger()})
	go q.Run(context.Background())
	q.Enqueue(context.Background(), rec("a"))
	<-s.entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a hung writer = %v, want DeadlineExceeded", err)
	}
	close(s.gate)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := q.Close(ctx2); err != nil {
		t.Errorf("Close after the writer resumed: %v", err)
	}
	sameIDs(t, "written", s.written(), []string{"a"})
}

// Many goroutines enqueue while the queue is closed: every record is
// either written or counted as dropped, never both, never lost.
func TestQueueConcurrentEnqueueAndClose(t *testing.T) {
	for _, overflow := range []audit.Overflow{audit.Block, audit.Drop} {
		t.Run(string(overflow), func(t *testing.T) {
			s := &sink{}
			q := audit.NewQueue(s.write, audit.QueueOptions{Size: 16, Batch: 8, FlushInterval: time.Millisecond,
				Overflow: overflow, Logger: quietLogger()})
			go q.Run(context.Background())
			var accepted atomic.Int64
			var wg, started sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				started.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 200; i++ {
						if q.Enqueue(context.Background(), rec("x")) {
							accepted.Add(1)
						}
						if i == 0 {
							started.Done()
						}
					}
				}()
			}
			started.Wait() // Close while every goroutine is enqueueing
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := q.Close(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			written := int64(len(s.written()))
			if written != accepted.Load() {
				t.Errorf("written %d, accepted %d", written, accepted.Load())
			}
			if written+q.Dropped() != 8*200 {
				t.Errorf("written %d + dropped %d = %d, want %d", written, q.Dropped(), written+q.Dropped(), 8*200)
			}
		})
	}
}

// When Run's context ends, the queue stops accepting records, writes
// everything queued (in order) and Run returns nil.
func TestQueueRunFlushesWhenContextEnds(t *testing.T) {
	s := &sink{}
	q := audit.NewQueue(s.write, audit.QueueOptions{Size: 100, Batch: 4, FlushInterval: time.Hour, Logger: quietLogger()})
	want := ids(10)
	for _, id := range want {
		if !q.Enqueue(context.Background(), rec(id)) {
			t.Fatalf("Enqueue(%s) refused", id)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	sameIDs(t, "written", s.written(), want)
	if q.Enqueue(context.Background(), rec("late")) {
		t.Error("Enqueue after Run returned accepted a record")
	}
}

// A writer that does not finish within the flush timeout once Run's
// context has ended makes Run give up and say how many records it lost.
func TestQueueRunFlushTimeout(t *testing.T) {
	s := &sink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	defer close(s.gate)
	q := audit.NewQueue(s.write, audit.QueueOptions{Batch: 1, FlushInterval: time.Millisecond,
		FlushTimeout: 20 * time.Millisecond, Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	for _, id := range []string{"a", "b", "c"} {
		q.Enqueue(context.Background(), rec(id))
	}
	<-s.entered // the writer holds "a"
	cancel()
	err := <-done
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with a hung writer = %v, want a DeadlineExceeded error", err)
	}
	if want := "audit queue: 3 records not written within the flush timeout (20ms): context deadline exceeded"; err.Error() != want {
		t.Errorf("Run = %q, want %q", err, want)
	}
	if len(s.written()) != 0 {
		t.Errorf("written %v, want nothing", s.written())
	}
}

// The writer sleeps until a batch is full, the interval passes or the queue
// closes: a full batch is written at once, without waiting for the
// interval, and so is every following full batch; a queue smaller than a
// batch wakes the writer when it fills, so that blocked senders get room
// long before the interval.
func TestQueueWakesWriterForFullBatches(t *testing.T) {
	cases := []struct {
		name        string
		size, batch int
		n           int
	}{
		{"one full batch", 100, 10, 10},
		{"several full batches", 100, 10, 60},
		{"queue smaller than a batch", 4, 8, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{}
			q := startQueue(t, s, audit.QueueOptions{Size: tc.size, Batch: tc.batch, FlushInterval: time.Hour,
				Overflow: audit.Block, BlockTimeout: -1})
			want := ids(tc.n)
			for _, id := range want {
				if !q.Enqueue(context.Background(), rec(id)) {
					t.Fatalf("Enqueue(%s) refused", id)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(s.written()) < tc.n {
				if time.Now().After(deadline) {
					t.Fatalf("full batches not written within 10s (interval 1h): written %d of %d", len(s.written()), tc.n)
				}
				time.Sleep(time.Millisecond)
			}
			sameIDs(t, "written", s.written(), want)
		})
	}
}
