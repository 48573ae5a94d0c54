package policy

import (
	"fmt"
	"testing"
)

// lattice returns a tenant whose roles form layers of the given width, every
// role linked to every role of the layer above: width^(layers-1) paths from
// the bottom to the top.
func lattice(width, layers int) *tenant {
	t := &tenant{idx: newRuleIndex()}
	for l := 0; l+1 < layers; l++ {
		for i := 0; i < width; i++ {
			for j := 0; j < width; j++ {
				c, p := fmt.Sprintf("l%d_%d", l, i), fmt.Sprintf("l%d_%d", l+1, j)
				t.idx.addLink(roleSubject(c), roleSubject(p))
			}
		}
	}
	return t
}

// The depth rule of AddRoleParent measures chains in a wide lattice of
// roles. Counting every path (12^8, about 4e8, here) would hold the tenant's
// write lock, and on SQLite the database's, for minutes: each role must be
// measured once.
func TestChainLengthWideLattice(t *testing.T) {
	const width, layers = 12, 9
	tn := lattice(width, layers)
	for _, tc := range []struct {
		role          string
		height, depth int
	}{
		{"l0_0", layers - 1, 0},
		{"l4_3", layers - 5, 4},
		{fmt.Sprintf("l%d_%d", layers-1, width-1), 0, layers - 1},
		{"unknown", 0, 0},
	} {
		if got := tn.height(tc.role); got != tc.height {
			t.Errorf("height(%s) = %d, want %d", tc.role, got, tc.height)
		}
		if got := tn.depth(tc.role); got != tc.depth {
			t.Errorf("depth(%s) = %d, want %d", tc.role, got, tc.depth)
		}
	}
}

// A cycle (which the service never creates, but another writer of the
// database might) must not make the measure recurse forever.
func TestChainLengthCycle(t *testing.T) {
	tn := &tenant{idx: newRuleIndex()}
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"c", "d"}} {
		tn.idx.addLink(roleSubject(l[0]), roleSubject(l[1]))
	}
	for _, tc := range []struct {
		role          string
		height, depth int
	}{
		{"a", 3, 3}, // up a-b-c-d; down a-c-b(-a)
		{"d", 0, 4}, // down d-c-b-a(-c)
	} {
		if got := tn.height(tc.role); got != tc.height {
			t.Errorf("height(%s) = %d, want %d", tc.role, got, tc.height)
		}
		if got := tn.depth(tc.role); got != tc.depth {
			t.Errorf("depth(%s) = %d, want %d", tc.role, got, tc.depth)
		}
	}
}

func TestOset(t *testing.T) {
	o := newOset()
	for _, s := range []string{"b", "a", "c", "a"} {
		o.add(s)
	}
	o.remove("b")
	o.add("b")
	if got, want := fmt.Sprint(o.list()), "[a c b]"; got != want {
		t.Errorf("list() = %s, want %s (insertion order, re-added last)", got, want)
	}
	if !o.has("a") || o.has("z") || o.len() != 3 {
		t.Errorf("has/len wrong: has(a)=%v has(z)=%v len=%d", o.has("a"), o.has("z"), o.len())
	}
	var nilSet *oset
	if nilSet.has("a") || nilSet.len() != 0 || nilSet.list() != nil {
		t.Errorf("a nil oset must be empty")
	}
}
