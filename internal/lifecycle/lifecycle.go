// Package lifecycle runs the long-running parts of the service (listeners,
// queues, schedulers, background loops) as one group: started in order,
// stopped in reverse order, and stopped all together when one of them fails.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/sync/errgroup"
)

// Part is one long-running part of the service.
type Part struct {
	// Name names the part in logs and in its error.
	Name string
	// Run does the part's work until ctx ends, then cleans up and returns.
	// A part that returns before its ctx ends, with or without an error,
	// has failed: the group stops.
	Run func(ctx context.Context) error
}

// ErrStopped is wrapped by the error of a part that returned nil before it
// was asked to stop.
var ErrStopped = errors.New("stopped before shutdown")

// Run starts parts in order, each under a context of its own, and waits.
// When ctx ends, or when a part fails, it stops the parts in reverse order:
// a part's context is cancelled only after every part started after it has
// returned (so the HTTP listener, started last, drains first, and the
// queues it feeds, started first, flush last). It returns the first part's
// error (nil when every part stopped cleanly after ctx ended).
//
// The parts' contexts do not inherit ctx's cancellation (they keep its
// values): stopping is Run's job, in order.
func Run(ctx context.Context, log *slog.Logger, parts ...Part) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, failed := errgroup.WithContext(ctx)
	type running struct {
		name   string
		cancel context.CancelFunc
		done   chan struct{}
	}
	started := make([]running, 0, len(parts))
	for _, p := range parts {
		if failed.Err() != nil {
			break // a part already failed, or ctx ended: start no more
		}
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := running{name: p.Name, cancel: cancel, done: make(chan struct{})}
		entered := make(chan struct{})
		g.Go(func() error {
			defer close(r.done)
			close(entered)
			err := p.Run(pctx)
			if err == nil && pctx.Err() == nil {
				err = ErrStopped
			}
			if err != nil {
				log.Error("part failed", "part", p.Name, "err", err)
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			return nil
		})
		<-entered // the next part starts after this one has
		started = append(started, r)
		log.Debug("part started", "part", p.Name)
	}
	<-failed.Done()
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.cancel()
		<-r.done
		log.Debug("part stopped", "part", r.name)
	}
	return g.Wait()
}
