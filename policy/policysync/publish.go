package policysync

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	rediswatcher "github.com/casbin/redis-watcher/v2"

	"github.com/ourway/auth/policy"
)

// Publish implements policy.Publisher: it sends the change's operations
// and its version marker (or a reload hint when the operations are not
// known). Failures are counted and logged; the change's tenant is hinted
// again once Redis answers, and Resync repairs in any case.
func (s *Sync) Publish(ctx context.Context, c policy.Change) error {
	if s.opts.RedisURL == "" {
		return nil
	}
	s.mu.Lock()
	w := s.watcher
	s.mu.Unlock()
	err := errors.New("not connected to Redis yet")
	if w != nil {
		// Sending does not depend on the change's request: publish even if
		// it has ended since the commit.
		err = s.brk.Run(context.WithoutCancel(ctx), func(context.Context) error { return send(w, c) })
	}
	if err != nil {
		s.publishFailures.Add(1)
		s.mu.Lock()
		s.dirty[c.TenantID] = max(s.dirty[c.TenantID], c.Version)
		s.mu.Unlock()
		if !s.failing.Swap(true) {
			s.log.Warn("publish policy change failed; other replicas catch up when Redis answers, or by anti-entropy",
				"tenant", c.TenantID, "err", err)
		}
		return err
	}
	s.published.Add(1)
	if s.failing.Swap(false) {
		s.log.Info("publishing policy changes again")
		s.triggerResync() // sends the hints
	}
	return nil
}

// send publishes one change.
func send(w *rediswatcher.Watcher, c policy.Change) error {
	dom, v := c.Domain(), strconv.FormatInt(c.Version, 10)
	if c.Reload || !sendable(c.Ops) {
		return w.UpdateForAddPolicy(secReload, secReload, dom, v)
	}
	for _, op := range c.Ops {
		var err error
		switch op.Kind {
		case policy.OpAddRules:
			err = w.UpdateForAddPolicies(op.Ptype[:1], op.Ptype, op.Rules...)
		case policy.OpRemoveRules, policy.OpExpire:
			// To memory an expiry is a removal.
			err = w.UpdateForRemovePolicies(op.Ptype[:1], op.Ptype, op.Rules...)
		case policy.OpRemoveFiltered:
			err = w.UpdateForRemoveFilteredPolicy(op.Ptype[:1], op.Ptype, op.FieldIndex, op.Values...)
		case policy.OpAddRole:
			err = w.UpdateForAddPolicy(secRole, secRole, dom, op.Role)
		case policy.OpRemoveRole:
			err = w.UpdateForRemovePolicy(secRole, secRole, dom, op.Role)
		default:
			err = fmt.Errorf("unknown operation %q", op.Kind)
		}
		if err != nil {
			return err
		}
	}
	return w.UpdateForAddPolicy(secVersion, secVersion, dom, v)
}

// sendable reports whether every operation has a message form. A role's
// description has none (it is never sent over Redis, where it would travel
// unencrypted), nor has the end of a time-bound rule (Casbin's message
// format carries no such field): a change of one is sent as a reload hint,
// and the replicas behind it read the tenant from the database. An
// addition without an end clears the end a rule had, on every replica.
func sendable(ops []policy.Op) bool {
	for _, op := range ops {
		if op.Kind == policy.OpSetDescription || op.ExpiresAt != 0 {
			return false
		}
	}
	return true
}

func (s *Sync) hasHints() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty) > 0
}

// flushHints tells the other replicas to reload the tenants whose changes
// could not be published.
func (s *Sync) flushHints() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	w := s.watcher
	hints := make(map[int64]int64, len(s.dirty))
	for id, v := range s.dirty {
		hints[id] = v
	}
	s.mu.Unlock()
	if w == nil || len(hints) == 0 {
		return
	}
	sent := 0
	for id, v := range hints {
		err := s.brk.Run(context.Background(), func(context.Context) error {
			return send(w, policy.Change{TenantID: id, Version: v, Reload: true})
		})
		if err != nil {
			return // the next pass tries again
		}
		s.mu.Lock()
		if s.dirty[id] == v {
			delete(s.dirty, id)
		}
		s.mu.Unlock()
		sent++
	}
	s.log.Info("replica sync: told the other replicas about changes published late", "tenants", sent)
}
