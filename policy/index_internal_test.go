package policy

import (
	"fmt"
	"slices"
	"testing"
)

// The index keeps each rule once, lists in the order the rules were made
// (a rule removed and added again goes last), and keeps g rules whose
// parent is not a role for export.
func TestRuleIndexOrderAndDedup(t *testing.T) {
	x := newRuleIndex()
	for _, r := range [][2]string{{"role:a", "p1"}, {"role:a", "p2"}, {"role:a", "p1"}, {"role:b", "p1"}} {
		x.addGrant(r[0], r[1])
	}
	for _, l := range [][2]string{{"u1", "role:b"}, {"u1", "role:a"}, {"u2", "role:a"}, {"role:a", "role:b"}, {"u1", "bob"}, {"u1", "bob"}} {
		x.addLink(l[0], l[1])
	}
	if !x.removeLink("u1", "role:b") || x.removeLink("u1", "role:b") || !x.addLink("u1", "role:b") {
		t.Fatal("removeLink/addLink must report whether they changed the index")
	}
	if x.removeGrant("role:a", "nope") || !x.removeGrant("role:a", "p1") || !x.addGrant("role:a", "p1") {
		t.Fatal("removeGrant/addGrant must report whether they changed the index")
	}
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"grants of a", x.grantsOf("role:a"), []string{"p2", "p1"}},
		{"roles of u1", x.upOf("u1"), []string{"a", "b"}},
		{"members of a", x.membersOf("role:a"), []string{"u1", "u2"}},
		{"children of b", x.childrenOf("role:b"), []string{"a"}},
		{"parents of a", x.upOf("role:a"), []string{"b"}},
		{"holders of p1", slices.Sorted(slices.Values(x.holdersOf("p1"))), []string{"role:a", "role:b"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if got, want := x.rules(), 3+4+1; got != want { // p rules, role links, u1→bob
		t.Errorf("rules() = %d, want %d", got, want)
	}
	var others []string
	x.forEachLink(func(c, p string) {
		if !isRoleSubject(p) {
			others = append(others, c+">"+p)
		}
	})
	if !slices.Equal(others, []string{"u1>bob"}) {
		t.Errorf("g rules to a non-role = %q, want [u1>bob] once", others)
	}
}

// allows follows at most casbinMaxLinks links from the subject, as Casbin's
// role manager does, through cycles and shared ancestors.
func TestRuleIndexAllowsDepth(t *testing.T) {
	x := newRuleIndex()
	// u -> r1 -> r2 -> ... -> r12, with a cycle r3 -> r1 and a second path
	// r1 -> r2b -> r3; role rK holds pK.
	x.addLink("u", "role:r1")
	for i := 1; i < 12; i++ {
		x.addLink(fmt.Sprintf("role:r%d", i), fmt.Sprintf("role:r%d", i+1))
	}
	x.addLink("role:r3", "role:r1")
	x.addLink("role:r1", "role:r2b")
	x.addLink("role:r2b", "role:r3")
	for i := 1; i <= 12; i++ {
		x.addGrant(fmt.Sprintf("role:r%d", i), fmt.Sprintf("p%d", i))
	}
	x.addGrant("u", "own")
	for _, tc := range []struct {
		sub, obj string
		want     bool
	}{
		{"u", "own", true},
		{"u", "p1", true},
		{"u", "p10", true},  // 10 links
		{"u", "p11", false}, // 11 links: beyond Casbin's depth
		{"role:r2", "p12", true},
		{"role:r1", "p1", true}, // a role holds its own grants
		{"u", "missing", false},
		{"nobody", "p1", false},
	} {
		if got := x.allows(tc.sub, tc.obj); got != tc.want {
			t.Errorf("allows(%s, %s) = %v, want %v", tc.sub, tc.obj, got, tc.want)
		}
	}
}

// A check of a loaded tenant allocates nothing, also through a hierarchy.
func TestRuleIndexAllowsAllocs(t *testing.T) {
	x := newRuleIndex()
	for i := range 20 {
		x.addLink(fmt.Sprintf("role:r%d", i), fmt.Sprintf("role:r%d", i+1))
		x.addLink("u", fmt.Sprintf("role:r%d", i))
	}
	x.addGrant("role:r7", "p")
	x.addGrant("role:r30", "q")
	for _, obj := range []string{"p", "q"} {
		if n := testing.AllocsPerRun(100, func() { x.allows("u", obj) }); n != 0 {
			t.Errorf("allows(u, %s) allocates %.0f times per call, want 0", obj, n)
		}
	}
}
