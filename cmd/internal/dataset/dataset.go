// Package dataset generates benchmark tenants (users, roles, permissions,
// grants and memberships, drawn from a seeded random source) and writes
// them straight into the service's database in the layout of casbin_rule,
// as the service's own writes, fast enough for a million memberships.
package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Shape is the size of a tenant.
type Shape struct {
	Users       int
	Roles       int
	Permissions int
	// Grants are spread evenly over the roles (at most Permissions each).
	Grants int
	// Memberships are spread evenly over the users (at most Roles each).
	Memberships int
}

// Tenant is a generated tenant. Names are derived from indexes: user i is
// User(i), role i Role(i), permission i Permission(i).
type Tenant struct {
	// Key is the tenant's client key (a UUID4).
	Key   string
	Shape Shape
	// RolePerms[r] are the permissions granted to role r.
	RolePerms [][]int32
	// UserRoles[u] are the roles user u is a member of.
	UserRoles [][]int32
}

// Pair is one check: may User do Permission?
type Pair struct {
	User       string `json:"user"`
	Permission string `json:"permission"`
}

// User is the name of user i.
func User(i int) string { return fmt.Sprintf("user-%d", i) }

// Role is the name of role i.
func Role(i int) string { return fmt.Sprintf("role-%d", i) }

// Permission is the name of permission i.
func Permission(i int) string { return fmt.Sprintf("perm-%d", i) }

// Generate builds a tenant of the given shape from seed; the same seed
// gives the same tenant, key included.
func Generate(s Shape, seed uint64) (*Tenant, error) {
	if s.Users <= 0 || s.Roles <= 0 || s.Permissions <= 0 {
		return nil, fmt.Errorf("dataset: shape %+v needs users, roles and permissions", s)
	}
	if s.Grants > s.Roles*s.Permissions || s.Memberships > s.Users*s.Roles {
		return nil, fmt.Errorf("dataset: shape %+v has more grants or memberships than pairs", s)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	t := &Tenant{Key: uuid4(rng), Shape: s, RolePerms: make([][]int32, s.Roles), UserRoles: make([][]int32, s.Users)}
	spread(rng, t.RolePerms, s.Grants, s.Permissions)
	spread(rng, t.UserRoles, s.Memberships, s.Roles)
	return t, nil
}

// spread gives the n owners of sets total members in all, as evenly as can
// be, each member drawn without repetition from [0, pool).
func spread(rng *rand.Rand, sets [][]int32, total, pool int) {
	n := len(sets)
	for i := range sets {
		k := total / n
		if i < total%n {
			k++
		}
		sets[i] = pick(rng, k, pool)
	}
}

// pick draws k distinct numbers of [0, pool), sorted.
func pick(rng *rand.Rand, k, pool int) []int32 {
	out := make([]int32, 0, k)
	if k*4 > pool {
		for _, v := range rng.Perm(pool)[:k] {
			out = append(out, int32(v))
		}
	} else {
		seen := make(map[int32]bool, k)
		for len(out) < k {
			v := int32(rng.IntN(pool))
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// uuid4 is a random version-4 UUID from rng.
func uuid4(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// KeyHash is the hash under which the service stores the tenant's key: the
// SHA-256 of the key in lower case, in hex (policy.ParseClientKey).
func (t *Tenant) KeyHash() string {
	sum := sha256.Sum256([]byte(t.Key))
	return hex.EncodeToString(sum[:])
}

// Allowed reports whether user u holds permission p.
func (t *Tenant) Allowed(u, p int) bool {
	for _, r := range t.UserRoles[u] {
		if _, ok := slices.BinarySearch(t.RolePerms[r], int32(p)); ok {
			return true
		}
	}
	return false
}

// UserPermissions are the names of the permissions user u holds, one
// entry per granting role (as GET /api/user_permissions lists them: a
// permission granted by two of the user's roles appears twice), sorted.
func (t *Tenant) UserPermissions(u int) []string {
	var out []string
	for _, r := range t.UserRoles[u] {
		for _, p := range t.RolePerms[r] {
			out = append(out, Permission(int(p)))
		}
	}
	slices.Sort(out)
	return out
}

// Pairs draws n checks from rng: every other one asks for a permission the
// user holds (when the user holds any), the rest for a random permission
// (almost always denied). It returns the pairs and the right answers.
func (t *Tenant) Pairs(rng *rand.Rand, n int) ([]Pair, []bool) {
	pairs := make([]Pair, n)
	want := make([]bool, n)
	for i := range pairs {
		u := rng.IntN(t.Shape.Users)
		p := rng.IntN(t.Shape.Permissions)
		if rs := t.UserRoles[u]; i%2 == 0 && len(rs) > 0 {
			if ps := t.RolePerms[rs[rng.IntN(len(rs))]]; len(ps) > 0 {
				p = int(ps[rng.IntN(len(ps))])
			}
		}
		pairs[i] = Pair{User: User(u), Permission: Permission(p)}
		want[i] = t.Allowed(u, p)
	}
	return pairs, want
}

// Truth answers checks by name, for judging answers.
type Truth struct {
	t     *Tenant
	users map[string]int
	perms map[string]int
}

// Truth indexes the tenant's names.
func (t *Tenant) Truth() *Truth {
	tr := &Truth{t: t, users: make(map[string]int, t.Shape.Users), perms: make(map[string]int, t.Shape.Permissions)}
	for i := range t.Shape.Users {
		tr.users[User(i)] = i
	}
	for i := range t.Shape.Permissions {
		tr.perms[Permission(i)] = i
	}
	return tr
}

// Allowed reports whether the named user holds the named permission; ok is
// false for a name the tenant does not have.
func (tr *Truth) Allowed(user, perm string) (allowed, ok bool) {
	u, ok1 := tr.users[user]
	p, ok2 := tr.perms[perm]
	if !ok1 || !ok2 {
		return false, false
	}
	return tr.t.Allowed(u, p), true
}

// UserPermissions are the permissions of the named user, one entry per
// granting role, sorted (Tenant.UserPermissions); ok is false for a user
// the tenant does not have.
func (tr *Truth) UserPermissions(user string) ([]string, bool) {
	u, ok := tr.users[user]
	if !ok {
		return nil, false
	}
	return tr.t.UserPermissions(u), true
}

// Rules counts the tenant's Casbin rules: its grants and memberships.
func (t *Tenant) Rules() (grants, memberships int) {
	for _, ps := range t.RolePerms {
		grants += len(ps)
	}
	for _, rs := range t.UserRoles {
		memberships += len(rs)
	}
	return grants, memberships
}
