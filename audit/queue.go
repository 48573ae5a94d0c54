package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Overflow says what the queue does when it is full.
type Overflow string

// The overflow policies.
const (
	// Block makes the caller wait for room (back-pressure) while the writer
	// is making progress, for at most QueueOptions.BlockTimeout. While the
	// writer cannot write (its last attempt failed: the database is down)
	// a full queue drops at once instead, so that checks answered from
	// memory are not held up by an outage they do not depend on. Drops are
	// counted (Dropped) and logged.
	Block Overflow = "block"
	// Drop discards the record, counts it and logs it.
	Drop Overflow = "drop"
)

// QueueOptions tune a Queue.
type QueueOptions struct {
	Size          int           // capacity (default 10 000)
	Batch         int           // records per write (default 500)
	FlushInterval time.Duration // longest wait before a partial batch is written (default 50ms)
	Overflow      Overflow      // default Block
	// BlockTimeout bounds how long Enqueue waits for room with Block before
	// it drops the record (default 1s; negative: wait as long as the
	// caller's context allows).
	BlockTimeout time.Duration
	// FlushTimeout bounds how long Run still writes, once its context has
	// ended, what is queued then (default 5s).
	FlushTimeout time.Duration
	Logger       *slog.Logger
}

// Queue writes records asynchronously, in batches, through a bounded
// buffer. A failed write is retried until it succeeds; when Run's context
// ends (or Close is called) the queue stops accepting records and writes
// what it holds.
type Queue struct {
	ch      chan Record
	write   func(ctx context.Context, recs []Record) error
	opts    QueueOptions
	log     *slog.Logger
	dropped atomic.Int64
	failed  atomic.Int64
	written atomic.Int64
	// stalled is set while the last write attempt failed.
	stalled atomic.Bool
	// lastDropLog (UnixNano) rate-limits the drop warnings; loggedDrops
	// is how many drops the warnings have reported so far.
	lastDropLog atomic.Int64
	loggedDrops atomic.Int64

	// wake (one slot) wakes Run: a sender leaves a token when a full
	// batch is waiting (queued plus held by Run) or the queue is full, and
	// closing leaves one.
	wake chan struct{}
	// held is how many records Run holds in a partial batch.
	held atomic.Int64

	closeOnce sync.Once
	done      chan struct{}
	mu        sync.RWMutex // held shared by senders, exclusively by Close
	closed    bool
}

// NewQueue returns a queue that hands batches to write. Run writes them.
func NewQueue(write func(ctx context.Context, recs []Record) error, opts QueueOptions) *Queue {
	if opts.Size <= 0 {
		opts.Size = 10000
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 50 * time.Millisecond
	}
	if opts.Overflow == "" {
		opts.Overflow = Block
	}
	if opts.BlockTimeout == 0 {
		opts.BlockTimeout = time.Second
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Queue{
		ch: make(chan Record, opts.Size), write: write, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Enqueue adds a record. With Block it waits for room, for at most
// BlockTimeout or until ctx ends, and not at all while the writer is failing;
// with Drop a full queue discards the record and counts it. It reports
// whether the record was queued.
func (q *Queue) Enqueue(ctx context.Context, r Record) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.drop(r, "queue closed")
		return false
	}
	select {
	case q.ch <- r:
		if n := len(q.ch); n+int(q.held.Load()) >= q.opts.Batch || n == cap(q.ch) {
			q.signal()
		}
		return true
	default:
	}
	// Full: Run must be awake to make room (the sender that filled the
	// queue woke it, but a wake-up costs nothing when one is pending).
	q.signal()
	if q.opts.Overflow == Drop {
		q.drop(r, "queue full")
		return false
	}
	if q.stalled.Load() {
		q.drop(r, "queue full and the audit store is failing")
		return false
	}
	var timeout <-chan time.Time
	if q.opts.BlockTimeout > 0 {
		t := time.NewTimer(q.opts.BlockTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case q.ch <- r:
		return true
	case <-timeout:
		q.drop(r, "queue full for longer than the block timeout")
		return false
	case <-ctx.Done():
		q.drop(r, "request ended while the audit queue was full")
		return false
	}
}

// dropLogEvery rate-limits the drop warnings: an outage can drop thousands
// of records a second, and the counter has them all.
const dropLogEvery = time.Second

func (q *Queue) drop(r Record, why string) {
	n := q.dropped.Add(1)
	now := time.Now().UnixNano()
	last := q.lastDropLog.Load()
	if now-last < int64(dropLogEvery) || !q.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	q.logDrops(why, n)
}

// logDrops writes one warning for the drops not reported yet: every drop is
// in exactly one warning (the last one is written when the queue closes).
func (q *Queue) logDrops(why string, total int64) {
	if since := total - q.loggedDrops.Swap(total); since > 0 {
		q.log.Warn("audit records dropped", "reason", why, "dropped", since, "dropped_total", total)
	}
}

// Depth is the number of records waiting.
func (q *Queue) Depth() int { return len(q.ch) }

// Dropped is the number of records dropped since start.
func (q *Queue) Dropped() int64 { return q.dropped.Load() }

// WriteFailures is the number of failed batch writes (each was retried).
func (q *Queue) WriteFailures() int64 { return q.failed.Load() }

// Written is the number of records written.
func (q *Queue) Written() int64 { return q.written.Load() }

// Run writes batches until ctx ends or Close is called. Then it stops
// accepting records and writes what is queued: when ctx has ended, for at
// most FlushTimeout (a write under way is given up then), and it returns an
// error counting the records it could not write; after Close, for as long
// as it takes.
//
// Run does not wait on every record: it sleeps until a batch is full (the
// sender that fills one wakes it), the flush interval passes or the queue
// closes, then takes what is queued in one go, so that a check's Enqueue
// is a channel send that seldom has a goroutine to wake.
func (q *Queue) Run(ctx context.Context) error {
	defer close(q.done)
	defer func() { q.logDrops("queue full", q.dropped.Load()) }()
	// Writes outlive ctx by the flush timeout: a batch being written when
	// ctx ends is finished, and so is what is queued then.
	wctx, cancel := afterGrace(ctx, q.opts.FlushTimeout)
	defer cancel()
	batch := make([]Record, 0, q.opts.Batch)
	timer := time.NewTimer(q.opts.FlushInterval)
	defer timer.Stop()
	stop := ctx.Done()
	for {
		timeUp := false
		select {
		case <-stop:
			stop = nil
			q.closeInput() // the records queued so far are still taken below
		case <-q.wake:
		case <-timer.C:
			timeUp = true
			timer.Reset(q.opts.FlushInterval)
		}
		for {
			var closed bool
			batch, closed = q.take(batch)
			if closed {
				if !q.flush(wctx, batch) {
					return q.unwritten(wctx, len(batch))
				}
				return nil
			}
			if len(batch) < q.opts.Batch && !(timeUp && len(batch) > 0) {
				// A partial batch waits for the interval, or for the
				// senders to complete it.
				q.held.Store(int64(len(batch)))
				if len(q.ch)+len(batch) < q.opts.Batch {
					break
				}
				continue // completed meanwhile
			}
			q.held.Store(0)
			if !q.flush(wctx, batch) {
				return q.unwritten(wctx, len(batch))
			}
			batch = batch[:0]
			timeUp = false // one partial batch per interval; full ones at once
		}
	}
}

// take adds queued records to batch, without waiting, until it is full or
// the queue is empty; closed is true when the queue is closed and every
// record has been taken.
func (q *Queue) take(batch []Record) (_ []Record, closed bool) {
	for len(batch) < q.opts.Batch {
		select {
		case r, ok := <-q.ch:
			if !ok {
				return batch, true
			}
			batch = append(batch, r)
		default:
			return batch, false
		}
	}
	return batch, false
}

// signal wakes Run if it sleeps.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// unwritten is Run's error when the flush timeout ran out with records
// still to write: pending in hand, and whatever the channel still holds.
func (q *Queue) unwritten(wctx context.Context, pending int) error {
	q.closeInput()
	n := pending
	for range q.ch {
		n++
	}
	q.log.Error("audit queue not flushed before the flush timeout", "unwritten", n, "timeout", q.opts.FlushTimeout.String())
	return fmt.Errorf("audit queue: %d records not written within the flush timeout (%s): %w", n, q.opts.FlushTimeout, context.Cause(wctx))
}

// afterGrace returns a context that ends grace after ctx does (and not
// before cancel is called otherwise).
func afterGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(context.DeadlineExceeded)
		case <-gctx.Done():
		}
	})
	return gctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// flush writes one batch, retrying with backoff until it is written or
// ctx ends; it reports whether the batch was written. A record is never
// given up while the process runs.
func (q *Queue) flush(ctx context.Context, batch []Record) bool {
	if len(batch) == 0 {
		return true
	}
	backoff := 50 * time.Millisecond
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := q.write(wctx, append([]Record(nil), batch...))
		cancel()
		if err == nil {
			q.stalled.Store(false)
			q.written.Add(int64(len(batch)))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		q.stalled.Store(true)
		q.failed.Add(1)
		q.log.Error("audit batch write failed; retrying", "records", len(batch), "err", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// closeInput stops accepting records; Run writes those already queued.
func (q *Queue) closeInput() {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		close(q.ch)
		q.mu.Unlock()
		q.signal()
	})
}

// Close stops accepting records and waits until Run has written
// everything queued, or until ctx ends. Run returns then. (A server stops
// the queue by ending Run's context instead.)
func (q *Queue) Close(ctx context.Context) error {
	q.closeInput()
	defer func() { q.logDrops("queue full", q.dropped.Load()) }()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
