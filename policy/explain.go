package policy

import (
	"context"
	"fmt"
	"slices"
)

// Kinds of the steps of an explanation's path.
const (
	StepUser       = "user"
	StepRole       = "role"
	StepPermission = "permission"
)

// Step is one step of the path that grants a permission: the user, a role,
// or the permission as granted (a pattern, under a pattern model).
type Step struct {
	Type string
	Name string
}

// Explanation is a check's decision and, when allowed, why: the path from
// the user through their direct role and each inherited role to the grant,
// and the Casbin policy rule (p fields) that matched. Path and Rule are nil
// when the permission is denied.
type Explanation struct {
	Allowed bool
	Path    []Step
	Rule    []string
}

// Check is one question of a batch: does User hold Permission?
type Check struct {
	User       string
	Permission string
}

// CheckError is the error of a batch check whose pair at Index has an
// invalid name; it wraps the *NameError.
type CheckError struct {
	Index int
	Err   error
}

func (e *CheckError) Error() string { return fmt.Sprintf("check %d: %v", e.Index, e.Err) }

// Unwrap gives the name error.
func (e *CheckError) Unwrap() error { return e.Err }

// CheckBatch answers every check of the batch, in order, from one reading
// of the tenant: its state is looked up and locked once for the whole
// batch. Every name is validated first: an invalid one fails the whole
// batch with a *CheckError naming its index, and nothing is answered.
func (s *Service) CheckBatch(ctx context.Context, key KeyHash, checks []Check) ([]bool, error) {
	for i, c := range checks {
		if err := checkUser(c.User); err != nil {
			return nil, &CheckError{Index: i, Err: err}
		}
		if err := s.checkCheck(c.Permission); err != nil {
			return nil, &CheckError{Index: i, Err: err}
		}
	}
	out := make([]bool, len(checks))
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		for i, c := range checks {
			ok, err := s.has(t, c.User, c.Permission)
			if err != nil {
				return err
			}
			out[i] = ok
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Explain decides whether user holds perm, as HasPermission does, and says
// why. Under the default model the path is found on the index: the
// shortest chain of links from the user to a role that is granted perm
// (direct roles first, then each level of inherited roles, ties broken by
// name order). Under any other model Casbin's EnforceEx gives the matched
// rule, and the path to the rule's subject is rebuilt through the role
// manager, shortest first, in name order.
func (s *Service) Explain(ctx context.Context, key KeyHash, user, perm string) (Explanation, error) {
	if err := checkUser(user); err != nil {
		return Explanation{}, err
	}
	if err := s.checkCheck(perm); err != nil {
		return Explanation{}, err
	}
	var out Explanation
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		var err error
		if s.model.fast {
			out = t.explainIndexed(user, perm)
			return nil
		}
		out, err = t.explainEnforced(user, perm)
		return err
	})
	return out, err
}

// explainIndexed finds the shortest path from user to a holder of perm on
// the index, following links exactly as far as has does. The caller holds
// t.mu.
func (t *tenant) explainIndexed(user, perm string) Explanation {
	if t.idx.holds(user, perm) {
		return Explanation{Allowed: true,
			Path: []Step{{StepUser, user}, {StepPermission, perm}},
			Rule: []string{user, t.dom, perm}}
	}
	found, ok := shortestRolePath(sorted(t.idx.upOf(user)), func(r string) []string { return sorted(t.idx.upOf(roleSubject(r))) },
		func(r string) bool { return t.idx.holds(roleSubject(r), perm) })
	if !ok {
		return Explanation{}
	}
	return Explanation{Allowed: true, Path: rolePath(user, found, perm), Rule: []string{roleSubject(found[len(found)-1]), t.dom, perm}}
}

// explainEnforced asks Casbin for the decision and the matched rule, and
// rebuilds the path to the rule's subject through the role manager. The
// caller holds t.mu.
func (t *tenant) explainEnforced(user, perm string) (Explanation, error) {
	ok, rule, err := t.enf.EnforceEx(user, t.dom, perm)
	if err != nil || !ok {
		return Explanation{}, err
	}
	out := Explanation{Allowed: true, Rule: slices.Clone(rule)}
	granted := perm
	if len(rule) >= 3 {
		granted = rule[2]
	}
	if len(rule) == 0 {
		// Allowed without a matched rule (a clause that needs none): the
		// user holds the permission as asked, through no role.
		out.Rule = nil
		out.Path = []Step{{StepUser, user}, {StepPermission, perm}}
		return out, nil
	}
	sub := rule[0]
	if sub == user {
		out.Path = []Step{{StepUser, user}, {StepPermission, granted}}
		return out, nil
	}
	rm := t.enf.GetRoleManager()
	next := func(subject string) []string {
		roles, err := rm.GetRoles(subject, t.dom)
		if err != nil {
			return nil
		}
		roles = slices.Clone(roles)
		slices.Sort(roles)
		return roles
	}
	found, reached := shortestRolePath(next(user), next, func(r string) bool { return r == sub })
	if !reached {
		// The matcher allowed by a clause other than the role links (a
		// superuser clause, say): no chain of roles leads to the rule.
		out.Path = []Step{{StepUser, user}, {StepPermission, perm}}
		return out, nil
	}
	out.Path = []Step{{StepUser, user}}
	for _, r := range found {
		out.Path = append(out.Path, Step{StepRole, roleName(r)})
	}
	out.Path = append(out.Path, Step{StepPermission, granted})
	return out, nil
}

// shortestRolePath searches breadth first from the user's direct roles
// (first) along next, through at most casbinMaxLinks links as Casbin
// follows them, for a role that satisfies goal; it returns the chain of
// roles from the direct one to the goal. Levels are visited in the order
// given, so the choice among paths of the same length is deterministic.
func shortestRolePath(first []string, next func(string) []string, goal func(string) bool) ([]string, bool) {
	from := map[string]string{}
	seen := map[string]bool{}
	var level []string
	for _, r := range first {
		if !seen[r] {
			seen[r] = true
			level = append(level, r)
		}
	}
	for links := 1; len(level) > 0 && links <= casbinMaxLinks; links++ {
		var following []string
		for _, r := range level {
			if goal(r) {
				chain := []string{r}
				for p, ok := from[r]; ok; p, ok = from[p] {
					chain = append(chain, p)
				}
				slices.Reverse(chain)
				return chain, true
			}
		}
		if links == casbinMaxLinks {
			break
		}
		for _, r := range level {
			for _, p := range next(r) {
				if !seen[p] {
					seen[p] = true
					from[p] = r
					following = append(following, p)
				}
			}
		}
		level = following
	}
	return nil, false
}

// rolePath is the path user → roles → perm.
func rolePath(user string, roles []string, perm string) []Step {
	path := make([]Step, 0, len(roles)+2)
	path = append(path, Step{StepUser, user})
	for _, r := range roles {
		path = append(path, Step{StepRole, r})
	}
	return append(path, Step{StepPermission, perm})
}
