package policy

import (
	"cmp"
	"slices"
)

// oset is a set of strings that remembers insertion order.
type oset struct {
	seq  map[string]uint64
	next uint64
}

func newOset() *oset { return &oset{seq: map[string]uint64{}} }

func (o *oset) add(s string) bool {
	if _, ok := o.seq[s]; ok {
		return false
	}
	o.next++
	o.seq[s] = o.next
	return true
}

func (o *oset) remove(s string) bool {
	if _, ok := o.seq[s]; !ok {
		return false
	}
	delete(o.seq, s)
	return true
}

func (o *oset) has(s string) bool {
	if o == nil {
		return false
	}
	_, ok := o.seq[s]
	return ok
}

func (o *oset) len() int {
	if o == nil {
		return 0
	}
	return len(o.seq)
}

// list returns the members in insertion order.
func (o *oset) list() []string {
	if o == nil || len(o.seq) == 0 {
		return nil
	}
	// Sort (sequence, member) pairs: comparing the pairs themselves is
	// several times cheaper than looking each member up in the map.
	type entry struct {
		n uint64
		s string
	}
	es := make([]entry, 0, len(o.seq))
	for s, n := range o.seq {
		es = append(es, entry{n, s})
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.n, b.n) })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.s
	}
	return out
}
