package audit

import (
	"context"
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
	Logger       *slog.Logger
}

// Queue writes records asynchronously, in batches, through a bounded
// buffer. A failed write is retried until it succeeds or the queue is
// closed; closing flushes what is queued.
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

	closeOnce sync.Once
	done      chan struct{}
	mu        sync.RWMutex // held shared by senders, exclusively by Close
	closed    bool
}

// NewQueue returns a queue that hands batches to write. Call Run to start it.
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
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Queue{
		ch: make(chan Record, opts.Size), write: write, opts: opts, log: opts.Logger,
		done: make(chan struct{}),
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
		return true
	default:
	}
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

// Run writes batches until Close is called and the queue is empty.
func (q *Queue) Run(ctx context.Context) {
	defer close(q.done)
	batch := make([]Record, 0, q.opts.Batch)
	timer := time.NewTimer(q.opts.FlushInterval)
	defer timer.Stop()
	for {
		select {
		case r, ok := <-q.ch:
			if !ok {
				q.flush(ctx, batch)
				return
			}
			batch = append(batch, r)
			if len(batch) >= q.opts.Batch {
				q.flush(ctx, batch)
				batch = batch[:0]
			}
		case <-timer.C:
			if len(batch) > 0 {
				q.flush(ctx, batch)
				batch = batch[:0]
			}
			timer.Reset(q.opts.FlushInterval)
		}
	}
}

// flush writes one batch, retrying with backoff: a record is never given up
// while the process lives.
func (q *Queue) flush(ctx context.Context, batch []Record) {
	if len(batch) == 0 {
		return
	}
	backoff := 50 * time.Millisecond
	for {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := q.write(wctx, append([]Record(nil), batch...))
		cancel()
		if err == nil {
			q.stalled.Store(false)
			q.written.Add(int64(len(batch)))
			return
		}
		q.stalled.Store(true)
		q.failed.Add(1)
		q.log.Error("audit batch write failed; retrying", "records", len(batch), "err", err, "retry_in", backoff.String())
		time.Sleep(backoff)
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// Close stops accepting records and waits until everything queued is
// written or ctx ends.
func (q *Queue) Close(ctx context.Context) error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		close(q.ch)
		q.mu.Unlock()
	})
	defer func() { q.logDrops("queue full", q.dropped.Load()) }()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
