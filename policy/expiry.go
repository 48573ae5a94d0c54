package policy

import (
	"context"
	"fmt"
	"time"
)

// Time-bound rules. A membership or grant may end at an instant: a check
// at or after that instant does not see it, on every replica, whether or
// not the sweep (Service.SweepExpired) has removed it from the database
// yet. In memory an ended rule is dropped from the tenant's index the first
// time the tenant is used at or after its end (purgeExpired); the sweep then
// removes it from the database as a change of its own (op "expire").

// ruleRef names a rule of the index: a grant (subject, object) or a link
// (child, parent role), by interned ids.
type ruleRef struct {
	link bool
	a, b uint32
}

// expiries are the ends of a tenant's time-bound rules, in Unix
// nanoseconds; next is the earliest (0: none).
type expiries struct {
	next int64
	at   map[ruleRef]int64
}

// ref returns the reference of rule r of section sec if the index holds
// the rule.
func (x *ruleIndex) ref(sec string, r []string) (ruleRef, bool) {
	switch {
	case sec == "p" && len(r) >= 3:
		if x.holds(r[0], r[2]) {
			s, _ := x.subs.id(r[0])
			o, _ := x.objs.id(r[2])
			return ruleRef{a: s, b: o}, true
		}
	case sec == "g" && len(r) >= 2 && isRoleSubject(r[1]):
		if x.linked(r[0], r[1]) {
			c, _ := x.subs.id(r[0])
			p, _ := x.subs.id(r[1])
			return ruleRef{link: true, a: c, b: p}, true
		}
	}
	return ruleRef{}, false
}

// setExpiry makes rule r of section sec end at at (Unix nanoseconds), or
// permanent (at 0). A rule the index does not hold is left alone.
func (x *ruleIndex) setExpiry(sec string, r []string, at int64) {
	ref, ok := x.ref(sec, r)
	if !ok {
		return
	}
	if at == 0 {
		if x.exp.at != nil {
			delete(x.exp.at, ref)
			x.exp.recompute()
		}
		return
	}
	if x.exp.at == nil {
		x.exp.at = map[ruleRef]int64{}
	}
	x.exp.at[ref] = at
	if x.exp.next == 0 || at < x.exp.next {
		x.exp.next = at
	}
}

// forget drops the expiry of a rule the index no longer holds.
func (x *ruleIndex) forget(ref ruleRef) {
	if x.exp.at == nil {
		return
	}
	if _, ok := x.exp.at[ref]; ok {
		delete(x.exp.at, ref)
		x.exp.recompute()
	}
}

func (e *expiries) recompute() {
	e.next = 0
	for _, at := range e.at {
		if e.next == 0 || at < e.next {
			e.next = at
		}
	}
	if len(e.at) == 0 {
		e.at = nil
	}
}

// expiryOf returns the end of rule r of section sec (0: permanent or not
// held).
func (x *ruleIndex) expiryOf(sec string, r []string) int64 {
	if x.exp.at == nil {
		return 0
	}
	ref, ok := x.ref(sec, r)
	if !ok {
		return 0
	}
	return x.exp.at[ref]
}

// due reports whether a rule of the index has ended at now (Unix
// nanoseconds).
func (x *ruleIndex) due(now int64) bool {
	return x.exp.next != 0 && now >= x.exp.next
}

// purgeExpired drops from the index every rule that has ended at now and
// returns them as (section, rule) pairs, rules in the domain dom.
func (x *ruleIndex) purgeExpired(now int64, dom string) []Expiry {
	var gone []Expiry
	for ref, at := range x.exp.at {
		if at > now {
			continue
		}
		if ref.link {
			c, p := x.subs.strs[ref.a], x.subs.strs[ref.b]
			gone = append(gone, Expiry{Ptype: "g", Rule: []string{c, p, dom}, At: time.Unix(0, at)})
		} else {
			s, o := x.subs.strs[ref.a], x.objs.strs[ref.b]
			gone = append(gone, Expiry{Ptype: "p", Rule: []string{s, dom, o}, At: time.Unix(0, at)})
		}
	}
	for _, g := range gone {
		x.indexRule(g.Ptype, g.Rule, false)
	}
	return gone
}

// purgeExpired drops from memory the tenant's rules that have ended at now.
// The caller holds t.mu for writing. An enforcer (a model the index does
// not decide) forgets them too.
func (t *tenant) purgeExpired(now time.Time) {
	gone := t.idx.purgeExpired(now.UnixNano(), t.dom)
	if t.enf == nil {
		return
	}
	for _, g := range gone {
		_, _ = t.enf.RemovePoliciesSelf(nil, g.Ptype, g.Ptype, [][]string{g.Rule})
	}
}

// ensureCurrent drops the rules of a loaded tenant that have ended, if
// any: the state every read and every change starts from.
func (t *tenant) ensureCurrent(now time.Time) {
	t.mu.RLock()
	due := t.loaded && t.idx.due(now.UnixNano())
	t.mu.RUnlock()
	if !due {
		return
	}
	t.mu.Lock()
	if t.loaded {
		t.purgeExpired(now)
	}
	t.mu.Unlock()
}

// ErrExpiryUnsupported refuses a time-bound rule under a model whose
// decisions the index does not make (a model other than the default).
var ErrExpiryUnsupported = fmt.Errorf("policy: time-bound rules need the default model")

// MaxRuleLifetime bounds how far ahead a time-bound rule may end.
const MaxRuleLifetime = 100 * 365 * 24 * time.Hour

// expiryNanos checks a requested end and returns it in Unix nanoseconds,
// truncated to the microsecond the database keeps (0 for nil).
func (s *Service) expiryNanos(at *time.Time) (int64, error) {
	if at == nil {
		return 0, nil
	}
	if !s.model.fast {
		return 0, ErrExpiryUnsupported
	}
	end := at.UTC().Truncate(time.Microsecond)
	now := s.now()
	if !end.After(now) {
		return 0, &ExpiryError{Reason: "is not in the future"}
	}
	if end.Sub(now) > MaxRuleLifetime {
		return 0, &ExpiryError{Reason: "is more than 100 years ahead"}
	}
	return end.UnixNano(), nil
}

// ExpiryError refuses the end asked for a time-bound rule.
type ExpiryError struct{ Reason string }

func (e *ExpiryError) Error() string { return "policy: the expiry " + e.Reason }

// addRules adds rules in tx, ending at at (Unix nanoseconds; 0: permanent,
// which also ends an expiry a rule had), and returns the memory operation.
func addRules(ctx context.Context, tx Tx, tid int64, ptype string, rules [][]string, at int64) (Op, error) {
	if err := tx.AddRules(ctx, ptype, rules); err != nil {
		return Op{}, err
	}
	var end *time.Time
	if at != 0 {
		e := time.Unix(0, at).UTC()
		end = &e
	}
	if err := tx.SetExpiry(ctx, tid, ptype, rules, end); err != nil {
		return Op{}, err
	}
	return Op{Kind: OpAddRules, Ptype: ptype, Rules: rules, ExpiresAt: at}, nil
}
