package audit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ourway/auth/audit"
)

// outageWriter is a queue writer that fails while down is set and blocks
// until hold is closed.
type outageWriter struct {
	down    atomic.Bool
	hold    chan struct{} // closed: writes go through
	mu      sync.Mutex
	written int
}

func (w *outageWriter) write(ctx context.Context, recs []audit.Record) error {
	select {
	case <-w.hold:
	case <-ctx.Done():
		return ctx.Err()
	}
	if w.down.Load() {
		return errors.New("dial tcp: connection refused")
	}
	w.mu.Lock()
	w.written += len(recs)
	w.mu.Unlock()
	return nil
}

func (w *outageWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

func outageRecord(id string) audit.Record {
	return audit.Record{Tenant: "t_x", Action: audit.CheckPermission, RequestID: id}
}

func startOutageQueue(t *testing.T, w *outageWriter, opts audit.QueueOptions) *audit.Queue {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	q := audit.NewQueue(w.write, opts)
	go q.Run(context.Background())
	t.Cleanup(func() {
		w.down.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

// With Block, a full queue whose writer is failing (the database is down)
// drops at once instead of holding up the callers (checks answered from
// memory); the records already queued are written once the writer
// recovers, and Block waits for room again.
func TestQueueBlockDoesNotStallWhileWriterFails(t *testing.T) {
	w := &outageWriter{hold: make(chan struct{})}
	close(w.hold)
	w.down.Store(true)
	q := startOutageQueue(t, w, audit.QueueOptions{Size: 4, Batch: 1, FlushInterval: time.Millisecond,
		Overflow: audit.Block, BlockTimeout: time.Hour})
	ctx := context.Background()
	q.Enqueue(ctx, outageRecord("first")) // taken by the writer, which fails
	deadline := time.Now().Add(10 * time.Second)
	for q.WriteFailures() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failed write within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if !q.Enqueue(ctx, outageRecord(id)) {
			t.Fatalf("Enqueue(%s) refused with room in the queue", id)
		}
	}
	for i := 0; i < 100; i++ {
		start := time.Now()
		if q.Enqueue(ctx, outageRecord("over")) {
			t.Fatal("Enqueue accepted a record into a full queue")
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Fatalf("Enqueue on a full queue with a failing writer took %v, want an immediate drop", d)
		}
	}
	if got := q.Dropped(); got != 100 {
		t.Errorf("Dropped = %d, want 100", got)
	}
	w.down.Store(false)
	deadline = time.Now().Add(20 * time.Second)
	for w.count() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records written within 20s of the recovery, want 5", w.count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !q.Enqueue(ctx, outageRecord("after")) {
		t.Error("Enqueue refused after the writer recovered")
	}
}

// With Block, a writer that is slow but not failing makes callers wait for
// room, for at most BlockTimeout.
func TestQueueBlockTimeout(t *testing.T) {
	w := &outageWriter{hold: make(chan struct{})}
	q := startOutageQueue(t, w, audit.QueueOptions{Size: 1, Batch: 1, FlushInterval: time.Millisecond,
		Overflow: audit.Block, BlockTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { close(w.hold) })
	ctx := context.Background()
	q.Enqueue(ctx, outageRecord("first")) // the writer holds it
	deadline := time.Now().Add(10 * time.Second)
	for q.Depth() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the first record")
		}
		time.Sleep(time.Millisecond)
	}
	q.Enqueue(ctx, outageRecord("a")) // fills the queue
	start := time.Now()
	if q.Enqueue(ctx, outageRecord("b")) {
		t.Fatal("Enqueue accepted a record into a full queue")
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 5*time.Second {
		t.Errorf("Enqueue gave up after %v, want about the 50ms block timeout", d)
	}
	if got := q.Dropped(); got != 1 {
		t.Errorf("Dropped = %d, want 1", got)
	}
}
