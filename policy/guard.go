package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/casbin/casbin/v3/model"

	"github.com/ourway/auth/internal/breaker"
)

// guardedStore runs a Store's calls through circuit breakers: lookups and
// loads through reads, transactions through writes. A call the breaker
// rejects, or an infrastructure failure it counts, comes back as
// ErrUnavailable (which the HTTP layer answers with 503 and Retry-After).
// Domain outcomes of a transaction (a cycle, a stale tenant, a bad name)
// never count against the database, whatever the breaker's classifier says.
type guardedStore struct {
	Store
	reads, writes *breaker.Breaker
}

func (g guardedStore) FindTenant(ctx context.Context, key KeyHash) (id int64, found bool, err error) {
	err = guard(ctx, g.reads, func(ctx context.Context) error {
		var err error
		id, found, err = g.Store.FindTenant(ctx, key)
		return err
	})
	return id, found, err
}

func (g guardedStore) LoadTenant(ctx context.Context, id int64, m model.Model) (snap Snapshot, err error) {
	err = guard(ctx, g.reads, func(ctx context.Context) error {
		var err error
		snap, err = g.Store.LoadTenant(ctx, id, m)
		return err
	})
	return snap, err
}

func (g guardedStore) Change(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	var domain error
	err := guard(ctx, g.writes, func(ctx context.Context) error {
		err := g.Store.Change(ctx, fn)
		if domainError(err) {
			domain = err
			return nil // the database did its job
		}
		return err
	})
	if domain != nil {
		return domain
	}
	return err
}

// domainError reports whether err is an answer of the policy core rather
// than a failure of the store.
func domainError(err error) bool {
	return errors.Is(err, errStale) || errors.Is(err, ErrRoleCycle) || errors.Is(err, ErrRoleDepth) ||
		errors.Is(err, ErrInvalidName) || errors.Is(err, ErrInvalidClientKey)
}

// guard runs fn through b (directly when b is nil) and turns the breaker's
// errors, and a deadline that ran out, into ErrUnavailable, keeping the
// breaker's retry hint.
func guard(ctx context.Context, b *breaker.Breaker, fn func(ctx context.Context) error) error {
	if b == nil {
		return fn(ctx)
	}
	err := b.Run(ctx, fn)
	if errors.Is(err, breaker.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

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

// storeDown reports whether a breaker says the database is unavailable.
func (s *Service) storeDown() bool {
	return (s.opts.Reads != nil && !s.opts.Reads.Available()) ||
		(s.opts.Writes != nil && !s.opts.Writes.Available())
}

// readinessKey is a key hash no tenant has (real ones are 64 hex digits).
const readinessKey KeyHash = "readiness-probe"

// Ready checks, past the circuit breakers, that policies can be loaded: the
// model builds an enforcer and a tenant lookup answers.
func (s *Service) Ready(ctx context.Context) error {
	if err := (&tenant{}).empty(s.model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if _, _, err := s.base.FindTenant(ctx, readinessKey); err != nil {
		return fmt.Errorf("tenant lookup: %w", err)
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
