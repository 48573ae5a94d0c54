package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// bound gives ctx the service's operation deadline, if one is configured.
func (s *Service) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opts.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// lockTenant takes t's write lock, giving up when ctx ends: a change stuck
// on an unresponsive database must not queue every later request of the
// tenant behind it for longer than their own deadline.
func lockTenant(ctx context.Context, t *tenant) error {
	if err := t.writeMu.lock(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: timed out waiting for the tenant's earlier change: %w", ErrUnavailable, err)
		}
		return err
	}
	return nil
}

// writeLock is a mutex whose Lock gives up when a context ends. Its zero
// value is unlocked.
type writeLock struct {
	once sync.Once
	ch   chan struct{} // one token
}

func (l *writeLock) tokens() chan struct{} {
	l.once.Do(func() { l.ch = make(chan struct{}, 1) })
	return l.ch
}

// lock takes the lock or returns ctx's error.
func (l *writeLock) lock(ctx context.Context) error {
	select {
	case l.tokens() <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.tokens() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryLock takes the lock if it is free.
func (l *writeLock) tryLock() bool {
	select {
	case l.tokens() <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *writeLock) unlock() { <-l.tokens() }
