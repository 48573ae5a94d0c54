package policysync

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	rediswatcher "github.com/casbin/redis-watcher/v2"

	"github.com/ourway/auth/policy"
)

// receive is the watcher callback: it collects a sender's operations for a
// tenant until the version marker, then applies them to memory.
func (s *Sync) receive(data string) {
	var m rediswatcher.MSG
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		s.log.Warn("replica sync: unreadable message", "err", err)
		return
	}
	s.mu.Lock()
	scope, self := s.scope, s.localID
	s.mu.Unlock()
	if !strings.HasPrefix(m.ID, scope+"/") {
		if !s.foreign.Swap(true) {
			s.log.Info("replica sync: ignoring messages of another database on the channel", "channel", s.opts.Channel)
		}
		return
	}
	if m.Sec == secProbe {
		if m.ID == self+probeSuffix && len(m.NewRule) == 1 {
			if n, err := strconv.ParseInt(m.NewRule[0], 10, 64); err == nil && n >= s.minProbe.Load() {
				s.sawProbe(n)
				select {
				case s.echo <- struct{}{}:
				default:
				}
			}
		}
		return
	}
	dom, op, ok := decode(m)
	if !ok {
		s.log.Warn("replica sync: unexpected message; resyncing", "method", m.Method, "sec", m.Sec)
		s.triggerResync()
		return
	}
	id, err := policy.ParseDomain(dom)
	if err != nil {
		s.triggerResync()
		return
	}
	key := m.ID + "|" + dom
	s.mu.Lock()
	c := s.pending[key]
	if c == nil {
		c = &policy.Change{TenantID: id}
		s.pending[key] = c
	}
	if m.Sec != secVersion && m.Sec != secReload {
		c.Ops = append(c.Ops, op)
		s.mu.Unlock()
		return
	}
	delete(s.pending, key)
	s.mu.Unlock()
	v, err := strconv.ParseInt(m.NewRule[1], 10, 64)
	if err != nil {
		s.triggerResync()
		return
	}
	c.Version = v
	if m.Sec == secReload {
		// Operations collected before a reload hint belong to a change
		// whose marker was lost: the reload covers them.
		c.Ops, c.Reload = nil, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	what, err := s.apply.ApplyRemote(ctx, *c)
	if err != nil {
		s.log.Warn("apply remote change failed", "tenant", id, "err", err)
		return
	}
	switch what {
	case policy.Applied:
		s.applied.Add(1)
	case policy.Reloaded:
		s.applied.Add(1)
		s.reloads.Add(1)
	}
}

// decode reads the tenant and operation of one watcher message.
func decode(m rediswatcher.MSG) (string, policy.Op, bool) {
	dom := func(sec string, rule []string) (string, bool) {
		i := 1
		if sec == "g" {
			i = 2
		}
		if len(rule) <= i {
			return "", false
		}
		return rule[i], true
	}
	switch {
	case m.Sec == secVersion || m.Sec == secReload || m.Sec == secRole:
		if len(m.NewRule) != 2 {
			return "", policy.Op{}, false
		}
		kind := policy.OpAddRole
		if m.Method == rediswatcher.UpdateForRemovePolicy {
			kind = policy.OpRemoveRole
		}
		return m.NewRule[0], policy.Op{Kind: kind, Role: m.NewRule[1]}, true
	case m.Sec != "p" && m.Sec != "g":
		return "", policy.Op{}, false
	case m.Method == rediswatcher.UpdateForAddPolicies || m.Method == rediswatcher.UpdateForRemovePolicies:
		if len(m.NewRules) == 0 {
			return "", policy.Op{}, false
		}
		d, ok := dom(m.Sec, m.NewRules[0])
		kind := policy.OpAddRules
		if m.Method == rediswatcher.UpdateForRemovePolicies {
			kind = policy.OpRemoveRules
		}
		return d, policy.Op{Kind: kind, Ptype: m.Ptype, Rules: m.NewRules}, ok
	case m.Method == rediswatcher.UpdateForRemoveFilteredPolicy:
		rule := make([]string, m.FieldIndex+len(m.FieldValues))
		copy(rule[m.FieldIndex:], m.FieldValues)
		d, ok := dom(m.Sec, rule)
		return d, policy.Op{Kind: policy.OpRemoveFiltered, Ptype: m.Ptype, FieldIndex: m.FieldIndex, Values: m.FieldValues}, ok && d != ""
	}
	return "", policy.Op{}, false
}
