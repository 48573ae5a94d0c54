package policy

import (
	"slices"
	"strings"
)

// names interns the names of one tenant: each distinct name is stored once
// and known by a dense id. Names are never forgotten while the tenant is in
// memory (a reload starts afresh), so ids stay valid.
type names struct {
	ids  map[string]uint32
	strs []string
}

// id returns the id of s, if interned.
func (n *names) id(s string) (uint32, bool) {
	id, ok := n.ids[s]
	return id, ok
}

// intern returns the id of s, interning it if needed.
func (n *names) intern(s string) uint32 {
	if id, ok := n.ids[s]; ok {
		return id
	}
	if n.ids == nil {
		n.ids = map[string]uint32{}
	}
	id := uint32(len(n.strs))
	n.strs = append(n.strs, s)
	n.ids[s] = id
	return id
}

// ruleIndex holds a tenant's Casbin rules (of its own domain) as adjacency
// lists of interned ids: about a tenth of the memory of maps of sets of
// strings, and a check reads a few small slices rather than chasing
// pointers through nested maps.
//
// Subjects are Casbin subjects: user names as is, roles with rolePrefix.
// Objects are permission names. p rules are (subject, object) pairs; g rules
// whose parent is a role subject are (child, parent) links; any other g rule
// (which the service never writes but another program might) is kept
// verbatim in others, so that an export still lists it.
type ruleIndex struct {
	// A check reads exp.next (see due) and then objs, subs and holders:
	// they come first, to share the struct's first cache lines.
	exp  expiries // ends of time-bound rules
	objs names
	subs names

	grants   map[uint32][]uint32 // subject -> objects, in grant order
	holders  [][]uint32          // object -> subjects, sorted by id
	up       [][]uint32          // subject -> parent role subjects, in link order
	members  map[uint32][]uint32 // role subject -> user subjects, in join order
	children map[uint32][]uint32 // role subject -> child role subjects, in link order
	others   [][2]string         // g rules whose parent is not a role subject

	nP, nG int // p rules and role links held
}

func newRuleIndex() *ruleIndex {
	return &ruleIndex{
		grants:   map[uint32][]uint32{},
		members:  map[uint32][]uint32{},
		children: map[uint32][]uint32{},
	}
}

func (x *ruleIndex) subject(s string) uint32 {
	id := x.subs.intern(s)
	if int(id) == len(x.up) {
		x.up = append(x.up, nil)
	}
	return id
}

func (x *ruleIndex) object(s string) uint32 {
	id := x.objs.intern(s)
	if int(id) == len(x.holders) {
		x.holders = append(x.holders, nil)
	}
	return id
}

// insertSorted adds v to the sorted list a; ok is false if it was there.
func insertSorted(a []uint32, v uint32) ([]uint32, bool) {
	i, found := slices.BinarySearch(a, v)
	if found {
		return a, false
	}
	return slices.Insert(a, i, v), true
}

// containsSorted reports whether the sorted list a holds v.
func containsSorted(a []uint32, v uint32) bool {
	if len(a) <= 8 {
		for _, x := range a {
			if x == v {
				return true
			}
		}
		return false
	}
	_, found := slices.BinarySearch(a, v)
	return found
}

// without returns a without its element v (order kept); ok is false if v
// was not there.
func without(a []uint32, v uint32) ([]uint32, bool) {
	i := slices.Index(a, v)
	if i < 0 {
		return a, false
	}
	a = slices.Delete(a, i, i+1)
	if len(a) == 0 {
		return nil, true
	}
	return a, true
}

// addGrant adds the p rule (sub, obj); it reports whether it was new.
func (x *ruleIndex) addGrant(sub, obj string) bool {
	s, o := x.subject(sub), x.object(obj)
	hs, ok := insertSorted(x.holders[o], s)
	if !ok {
		return false
	}
	x.holders[o] = hs
	x.grants[s] = append(x.grants[s], o)
	x.nP++
	return true
}

// removeGrant removes the p rule (sub, obj); it reports whether it was there.
func (x *ruleIndex) removeGrant(sub, obj string) bool {
	s, ok1 := x.subs.id(sub)
	o, ok2 := x.objs.id(obj)
	if !ok1 || !ok2 {
		return false
	}
	i, found := slices.BinarySearch(x.holders[o], s)
	if !found {
		return false
	}
	x.holders[o] = slices.Delete(x.holders[o], i, i+1)
	if len(x.holders[o]) == 0 {
		x.holders[o] = nil
	}
	if gs, _ := without(x.grants[s], o); gs == nil {
		delete(x.grants, s)
	} else {
		x.grants[s] = gs
	}
	x.nP--
	x.forget(ruleRef{a: s, b: o})
	return true
}

// addLink adds the g rule (child, parent); it reports whether it was new.
func (x *ruleIndex) addLink(child, parent string) bool {
	if !isRoleSubject(parent) {
		for _, o := range x.others {
			if o == [2]string{child, parent} {
				return false
			}
		}
		x.others = append(x.others, [2]string{child, parent})
		return true
	}
	c, p := x.subject(child), x.subject(parent)
	if slices.Contains(x.up[c], p) {
		return false
	}
	x.up[c] = append(x.up[c], p)
	if isRoleSubject(child) {
		x.children[p] = append(x.children[p], c)
	} else {
		x.members[p] = append(x.members[p], c)
	}
	x.nG++
	return true
}

// removeLink removes the g rule (child, parent); it reports whether it was
// there.
func (x *ruleIndex) removeLink(child, parent string) bool {
	if !isRoleSubject(parent) {
		i := slices.Index(x.others, [2]string{child, parent})
		if i < 0 {
			return false
		}
		x.others = slices.Delete(x.others, i, i+1)
		return true
	}
	c, ok1 := x.subs.id(child)
	p, ok2 := x.subs.id(parent)
	if !ok1 || !ok2 {
		return false
	}
	up, ok := without(x.up[c], p)
	if !ok {
		return false
	}
	x.up[c] = up
	down := x.members
	if isRoleSubject(child) {
		down = x.children
	}
	if d, _ := without(down[p], c); d == nil {
		delete(down, p)
	} else {
		down[p] = d
	}
	x.nG--
	x.forget(ruleRef{link: true, a: c, b: p})
	return true
}

// rules is the number of rules held.
func (x *ruleIndex) rules() int { return x.nP + x.nG + len(x.others) }

// list returns the names of ids (of table n), without prefix.
func (n *names) list(ids []uint32, prefix string) []string {
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.TrimPrefix(n.strs[id], prefix)
	}
	return out
}

// grantsOf lists the objects granted to subject, in grant order.
func (x *ruleIndex) grantsOf(subject string) []string {
	s, ok := x.subs.id(subject)
	if !ok {
		return nil
	}
	return x.objs.list(x.grants[s], "")
}

// grantCount is the number of objects granted to subject.
func (x *ruleIndex) grantCount(subject string) int {
	s, ok := x.subs.id(subject)
	if !ok {
		return 0
	}
	return len(x.grants[s])
}

// holds reports whether the p rule (subject, obj) exists.
func (x *ruleIndex) holds(subject, obj string) bool {
	o, ok := x.objs.id(obj)
	if !ok {
		return false
	}
	s, ok := x.subs.id(subject)
	return ok && containsSorted(x.holders[o], s)
}

// holdersOf lists the subjects granted obj (in no particular order).
func (x *ruleIndex) holdersOf(obj string) []string {
	o, ok := x.objs.id(obj)
	if !ok {
		return nil
	}
	return x.subs.list(x.holders[o], "")
}

// upOf lists the roles (names, without rolePrefix) subject is linked to:
// a user's roles in the order the memberships were made, a role's parents
// in link order.
func (x *ruleIndex) upOf(subject string) []string {
	s, ok := x.subs.id(subject)
	if !ok {
		return nil
	}
	return x.subs.list(x.up[s], rolePrefix)
}

// upCount is the number of roles subject is linked to.
func (x *ruleIndex) upCount(subject string) int {
	s, ok := x.subs.id(subject)
	if !ok {
		return 0
	}
	return len(x.up[s])
}

// linked reports whether the g rule (subject, parent role subject) exists.
func (x *ruleIndex) linked(subject, parent string) bool {
	s, ok1 := x.subs.id(subject)
	p, ok2 := x.subs.id(parent)
	return ok1 && ok2 && slices.Contains(x.up[s], p)
}

// membersOf lists the users in the role subject, in join order.
func (x *ruleIndex) membersOf(role string) []string {
	r, ok := x.subs.id(role)
	if !ok {
		return nil
	}
	return x.subs.list(x.members[r], "")
}

// memberCount is the number of users in the role subject.
func (x *ruleIndex) memberCount(role string) int {
	r, ok := x.subs.id(role)
	if !ok {
		return 0
	}
	return len(x.members[r])
}

// childrenOf lists the roles (names) that inherit directly from the role
// subject, in link order.
func (x *ruleIndex) childrenOf(role string) []string {
	r, ok := x.subs.id(role)
	if !ok {
		return nil
	}
	return x.subs.list(x.children[r], rolePrefix)
}

// allows reports whether subject holds obj: it is granted obj, or reaches
// a role granted obj through at most casbinMaxLinks g links. It does not
// allocate unless the walk meets more roles than its buffers hold.
func (x *ruleIndex) allows(subject, obj string) bool {
	o, ok := x.objs.ids[obj]
	if !ok {
		return false
	}
	hs := x.holders[o]
	if len(hs) == 0 {
		return false
	}
	s, ok := x.subs.ids[subject]
	if !ok {
		return false
	}
	if containsSorted(hs, s) {
		return true
	}
	up := x.up[s]
	if len(up) == 0 {
		return false
	}
	// The common case: a user's direct roles, none of which has parents.
	deeper := false
	for _, r := range up {
		if containsSorted(hs, r) {
			return true
		}
		deeper = deeper || len(x.up[r]) > 0
	}
	if !deeper {
		return false
	}
	// Breadth first, level by level, each role visited once.
	var curBuf, nextBuf, seenBuf [32]uint32
	cur := append(curBuf[:0], up...)
	next := nextBuf[:0]
	seen := append(seenBuf[:0], up...)
	var seenSet map[uint32]struct{}
	visited := func(r uint32) bool {
		if seenSet != nil {
			if _, ok := seenSet[r]; ok {
				return true
			}
			seenSet[r] = struct{}{}
			return false
		}
		if slices.Contains(seen, r) {
			return true
		}
		seen = append(seen, r)
		if len(seen) > 64 {
			seenSet = make(map[uint32]struct{}, 2*len(seen))
			for _, v := range seen {
				seenSet[v] = struct{}{}
			}
		}
		return false
	}
	for links := 2; links <= casbinMaxLinks && len(cur) > 0; links++ {
		next = next[:0]
		for _, r := range cur {
			for _, p := range x.up[r] {
				if visited(p) {
					continue
				}
				if containsSorted(hs, p) {
					return true
				}
				next = append(next, p)
			}
		}
		cur, next = next, cur
	}
	return false
}

// forEachGrant calls fn with every p rule, subject by subject (in the order
// the subjects were first seen), each subject's in grant order.
func (x *ruleIndex) forEachGrant(fn func(sub, obj string)) {
	for s, name := range x.subs.strs {
		for _, o := range x.grants[uint32(s)] {
			fn(name, x.objs.strs[o])
		}
	}
}

// forEachLink calls fn with every g rule: by parent role (in the order the
// roles were first seen), its members in join order, then its child roles
// in link order; then the rules whose parent is not a role.
func (x *ruleIndex) forEachLink(fn func(child, parent string)) {
	for p, name := range x.subs.strs {
		for _, c := range x.members[uint32(p)] {
			fn(x.subs.strs[c], name)
		}
		for _, c := range x.children[uint32(p)] {
			fn(x.subs.strs[c], name)
		}
	}
	for _, o := range x.others {
		fn(o[0], o[1])
	}
}
