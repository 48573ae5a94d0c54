package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ourway/auth/audit"
)

// LoadedTenants is the number of tenants held in memory.
func (s *Service) LoadedTenants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tenants)
}

// tenant returns the loaded state of a tenant. For reads (create false) of a
// tenant that does not exist it returns nil: nothing is created.
func (s *Service) tenant(ctx context.Context, key KeyHash, create bool) (*tenant, error) {
	s.mu.RLock()
	t := s.tenants[key]
	s.mu.RUnlock()
	if t != nil {
		t.mu.RLock()
		loaded := t.loaded
		t.mu.RUnlock()
		if loaded {
			t.touch(s.now())
			return t, nil
		}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if !create {
		return s.coldRead(ctx, key)
	}
	s.mu.Lock()
	if t = s.tenants[key]; t == nil {
		t = &tenant{key: key}
		s.addLocked(t)
	}
	s.mu.Unlock()
	if err := lockTenant(ctx, t); err != nil {
		return nil, err
	}
	defer t.writeMu.unlock()
	t.mu.RLock()
	loaded := t.loaded
	t.mu.RUnlock()
	if !loaded {
		if err := s.loadTenant(ctx, t); err != nil {
			s.mu.Lock()
			if s.tenants[key] == t {
				s.dropLocked(key, t)
			}
			s.mu.Unlock()
			return nil, err
		}
	}
	t.touch(s.now())
	return t, nil
}

// read runs fn on a tenant's state under its read lock; fn gets nil for a
// tenant that does not exist. A request's receipt (WithReceipt) gets the
// revision fn read at, and its consistency demand is met first (settle).
func (s *Service) read(ctx context.Context, key KeyHash, fn func(t *tenant) error) error {
	rc := ReceiptFrom(ctx)
	now := s.now()
	// A loaded tenant is read under one shared lock, taken once, when it
	// already meets the read's demand (at_least a revision it holds).
	s.mu.RLock()
	t := s.tenants[key]
	s.mu.RUnlock()
	if t != nil {
		t.mu.RLock()
		if t.loaded && !t.idx.due(now.UnixNano()) && rc.metBy(t.version) {
			t.touch(now)
			defer t.mu.RUnlock()
			if rc != nil {
				rc.Revision = t.version
			}
			return fn(t)
		}
		t.mu.RUnlock()
	}
	if rc != nil && rc.Need.Mode != MinimizeLatency {
		if err := s.settle(ctx, key, rc.Need); err != nil {
			return err
		}
	}
	t, err := s.tenant(ctx, key, false)
	if err != nil {
		return err
	}
	if t == nil {
		if rc != nil {
			rc.Revision = 0
		}
		return fn(nil)
	}
	t.ensureCurrent(now)
	t.mu.RLock()
	defer t.mu.RUnlock()
	if rc != nil {
		rc.Revision = t.version
	}
	return fn(t)
}

// change is one write: op runs inside the transaction and returns the
// result and the memory update to apply after the commit.
type change struct {
	action   audit.Action
	resource string
	user     string
	// op returns the result and the memory operations of what it changed
	// (applied to memory after the commit, published to the other
	// replicas and, as the change's items, written to the change log). An
	// op that returns errNoChange has nothing to do: the transaction rolls
	// back and takes no revision.
	op func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, []Op, error)
	// fresh says that op decides on the tenant's memory (not only on the
	// database), which must then be as new as the database: if another
	// process changed the tenant since it was loaded, the tenant is
	// reloaded and the change tried again.
	fresh bool
	// details are recorded with the change's audit entry (besides its
	// result); op may fill them in.
	details map[string]any
	// version, when set, receives the tenant's policy version after the
	// change.
	version *int64
	// actionOf, when set, names the recorded action once op has run (a
	// change whose kind depends on the tenant's state).
	actionOf func() audit.Action
}

// errNoChange rolls back a change that has nothing to do (an expiry
// another replica has swept already).
var errNoChange = errors.New("policy: nothing to change")

// errStale aborts a change whose tenant memory is older than the database.
var errStale = errors.New("policy: tenant changed by another process")

// maxStaleRetries bounds how often a change is retried after a reload.
const maxStaleRetries = 5

func (s *Service) write(ctx context.Context, key KeyHash, c change) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.admit(ctx, key); err != nil {
		return false, err
	}
	t, err := s.lockCurrent(ctx, key)
	if err != nil {
		return false, err
	}
	defer t.writeMu.unlock()
	defer s.account(t)
	t.ensureCurrent(s.now())
	var (
		result  bool
		ops     []Op
		tid     int64
		version int64
	)
	for attempt := 1; ; attempt++ {
		err = s.store.Change(ctx, func(ctx context.Context, tx Tx) error {
			var err error
			if tid, err = tx.EnsureTenant(ctx, key); err != nil {
				return err
			}
			if version, err = tx.BumpVersion(ctx, tid); err != nil {
				return err
			}
			if c.fresh {
				t.mu.RLock()
				stale := t.version+1 != version || (t.id != 0 && t.id != tid)
				t.mu.RUnlock()
				if stale {
					return errStale
				}
			}
			dom := domainOf(tid)
			if result, ops, err = c.op(ctx, tx, t, dom); err != nil {
				return err
			}
			now := s.now().UTC()
			if items := changeItems(dom, ops); len(items) > 0 {
				if err := tx.AppendChanges(ctx, tid, version, now, items); err != nil {
					return err
				}
			}
			details := map[string]any{"result": result}
			for k, v := range c.details {
				details[k] = v
			}
			action := c.action
			if c.actionOf != nil {
				action = c.actionOf()
			}
			return s.opts.Recorder.RecordChange(ctx, audit.Entry{
				Time:     now,
				Tenant:   string(key),
				User:     c.user,
				Action:   action,
				Resource: c.resource,
				Success:  result,
				Details:  details,
				Version:  version,
			})
		})
		if !errors.Is(err, errStale) {
			break
		}
		if attempt == maxStaleRetries {
			return false, fmt.Errorf("%w: tenant changed concurrently, try again", ErrUnavailable)
		}
		if err := s.loadTenant(ctx, t); err != nil {
			return false, err
		}
		t.ensureCurrent(s.now())
	}
	if errors.Is(err, errNoChange) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c.version != nil {
		*c.version = version
	}
	noteWrite(ctx, version)
	t.mu.Lock()
	stale := t.version+1 != version || (t.id != 0 && t.id != tid)
	if t.id == 0 {
		t.id, t.dom = tid, domainOf(tid)
		s.indexID(t, tid)
	}
	if !stale {
		for _, op := range ops {
			if aerr := t.applyOp(op); aerr != nil {
				s.log.ErrorContext(ctx, "apply committed change to memory; reloading tenant", "tenant", tid, "err", aerr)
				stale = true
				break
			}
		}
	}
	t.version = version
	t.revised()
	t.mu.Unlock()
	if stale {
		// Another process changed this tenant in between: read it afresh.
		if err := s.loadTenant(ctx, t); err != nil {
			t.mu.Lock()
			t.loaded = false
			t.mu.Unlock()
			s.log.ErrorContext(ctx, "reload tenant after change", "tenant", tid, "err", err)
		}
	}
	s.feed.wake(tid)
	if s.opts.Publisher != nil {
		// Tell the other replicas, in order (the tenant is still locked),
		// outside the memory locks. Without the change's operations (memory
		// was behind), they reload the tenant if they are behind it. A lost
		// message is repaired by Resync.
		pub := ops
		if stale {
			pub = nil
		}
		_ = s.opts.Publisher.Publish(ctx, Change{TenantID: tid, Version: version, Ops: pub, Reload: stale})
	}
	return result, nil
}

// lockCurrent returns the tenant's state, loaded, with its write lock held.
// A tenant evicted while the lock was awaited is not written to: the write
// takes the state now in memory (loaded again), so that no change is ever
// applied to a copy nobody reads.
func (s *Service) lockCurrent(ctx context.Context, key KeyHash) (*tenant, error) {
	for {
		t, err := s.tenant(ctx, key, true)
		if err != nil {
			return nil, err
		}
		if err := lockTenant(ctx, t); err != nil {
			return nil, err
		}
		s.mu.RLock()
		current := s.tenants[key] == t
		s.mu.RUnlock()
		if current {
			return t, nil
		}
		t.writeMu.unlock()
	}
}

// Run evicts tenants that have been idle longer than the idle timeout until
// ctx ends.
func (s *Service) Run(ctx context.Context) error {
	every := s.opts.IdleTimeout / 2
	if every > time.Minute {
		every = time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !s.storeDown() { // an evicted tenant could not be loaded again
				s.EvictIdle()
			}
		}
	}
}

// EvictIdle drops from memory the tenants unused for longer than the idle
// timeout; they are loaded again on their next use. It walks the loaded
// tenants in batches (see sweep): checks never wait for more than one.
func (s *Service) EvictIdle() int {
	cutoff := s.now().Add(-s.opts.IdleTimeout).UnixNano()
	n := s.sweep(func(t *tenant) bool { return t.lastUsed.Load() < cutoff }, nil)
	s.idleEvictions.Add(uint64(n))
	return n
}
