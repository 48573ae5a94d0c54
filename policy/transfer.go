package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ourway/auth/audit"
)

// The domain column of exported and imported files.
//
// A policy file carries the domain of every rule as Casbin does: export
// writes the tenant's own domain (its id). Import requires every rule of a
// file to carry one and the same domain, whichever it is, and rewrites it
// to the domain of the tenant it imports into, so that the export of one
// tenant imports as is into another.

// ExportPolicy returns the tenant's policy as a policy file: its roles in
// creation order, then its p rules (by role, in grant order) and its g
// rules (memberships, then role links, by role), names in clear. A tenant
// that does not exist exports as an empty file.
func (s *Service) ExportPolicy(ctx context.Context, key KeyHash) (PolicyFile, error) {
	var f PolicyFile
	err := s.read(ctx, key, func(t *tenant) error {
		if t == nil {
			return nil
		}
		f.Header = []string{fmt.Sprintf("auth-server policy export: tenant %s, policy version %d", t.dom, t.version),
			"format: p, role:ROLE, TENANT, PERMISSION | g, USER or role:ROLE, role:PARENT, TENANT (import rewrites TENANT)"}
		f.Roles = t.roles.list()
		f.Version = t.version
		rank := func(sub string) int {
			if n, ok := t.roles.seq[roleName(sub)]; ok && isRoleSubject(sub) {
				return int(n)
			}
			return int(^uint(0) >> 1)
		}
		p, g := t.rules("p"), t.rules("g")
		// p rules by role, each role's in grant order (the order of the
		// rules within a subject: the sort is stable).
		slices.SortStableFunc(p, func(a, b []string) int {
			if ra, rb := rank(a[0]), rank(b[0]); ra != rb {
				return ra - rb
			}
			return strings.Compare(a[0], b[0])
		})
		// g rules: memberships before role links, by role, in link order.
		link := func(r []string) bool { return isRoleSubject(r[0]) }
		slices.SortStableFunc(g, func(a, b []string) int {
			if la, lb := link(a), link(b); la != lb {
				if la {
					return 1
				}
				return -1
			}
			if ra, rb := rank(a[1]), rank(b[1]); ra != rb {
				return ra - rb
			}
			return 0
		})
		for _, r := range p {
			f.Rules = append(f.Rules, FileRule{Ptype: "p", Fields: slices.Clone(r)})
		}
		for _, r := range g {
			f.Rules = append(f.Rules, FileRule{Ptype: "g", Fields: slices.Clone(r)})
		}
		return nil
	})
	return f, err
}

// ImportOptions choose how ImportPolicy applies a file.
type ImportOptions struct {
	// Merge adds the file's roles and rules to the tenant's; without it the
	// file replaces them: roles and rules not in the file are removed.
	Merge bool
	// DryRun validates the file and reports what the import would change,
	// changing nothing.
	DryRun bool
}

// ImportResult is what an import changed (or, on a dry run, would change).
type ImportResult struct {
	Roles, Rules               int // in the file (rules without duplicates)
	RolesCreated, RolesDeleted int
	RulesAdded, RulesRemoved   int
	// Version is the tenant's policy version after the import (0 on a dry
	// run).
	Version int64
}

// importPlan is a validated file: what the tenant is to hold, domain-free.
type importPlan struct {
	roles  []string   // declared, then referenced, in order
	p, g   [][]string // rules without their domain: p (sub, perm), g (child, parent)
	pLine  map[string]int
	gLine  map[string]int
	merge  bool
	maxLen int
}

func ruleKey(r ...string) string { return strings.Join(r, "\x00") }

// planImport validates every line of f against the served model and the
// name rules; its error is an *ImportError listing the bad lines.
func (s *Service) planImport(f PolicyFile, merge bool) (*importPlan, error) {
	plan := &importPlan{pLine: map[string]int{}, gLine: map[string]int{}, merge: merge, maxLen: s.opts.MaxRoleDepth}
	var errs problems
	seenRole := map[string]bool{}
	addRole := func(r string) {
		if !seenRole[r] {
			seenRole[r] = true
			plan.roles = append(plan.roles, r)
		}
	}
	for _, r := range f.Roles {
		if !ValidRole(r) {
			errs.add(0, "role declaration %q: %s", r, roleRule)
			continue
		}
		addRole(r)
	}
	// role reads a "role:NAME" subject.
	role := func(line int, what, v string) (string, bool) {
		if !isRoleSubject(v) {
			errs.add(line, "%s %q must be a role, written role:NAME", what, v)
			return "", false
		}
		if r := roleName(v); ValidRole(r) {
			return r, true
		}
		errs.add(line, "%s %q: %s", what, v, roleRule)
		return "", false
	}
	domain, domainLine := "", 0
	for _, r := range f.Rules {
		n := r.Line
		if r.Ptype != "p" && r.Ptype != "g" {
			errs.add(n, "rule type %q: only p (grants) and g (memberships and role links) rules can be imported", r.Ptype)
			continue
		}
		if len(r.Fields) != 3 {
			want := "p, role:ROLE, DOMAIN, PERMISSION"
			if r.Ptype == "g" {
				want = "g, USER or role:ROLE, role:ROLE, DOMAIN"
			}
			errs.add(n, "a %s rule has 3 fields (%s), not %d", r.Ptype, want, len(r.Fields))
			continue
		}
		dom := r.Fields[1]
		if r.Ptype == "g" {
			dom = r.Fields[2]
		}
		switch {
		case dom == "":
			errs.add(n, "empty domain")
			continue
		case domain == "":
			domain, domainLine = dom, n
		case dom != domain:
			errs.add(n, "domain %q differs from domain %q of line %d: a file holds the rules of one tenant", dom, domain, domainLine)
			continue
		}
		if r.Ptype == "p" {
			sub, ok := role(n, "subject", r.Fields[0])
			perm := r.Fields[2]
			if err := s.checkGrant(perm); err != nil {
				errs.add(n, "%s", nameProblem(err))
				ok = false
			}
			if !ok {
				continue
			}
			addRole(sub)
			k := ruleKey(roleSubject(sub), perm)
			if _, dup := plan.pLine[k]; !dup {
				plan.pLine[k] = n
				plan.p = append(plan.p, []string{roleSubject(sub), perm})
			}
			continue
		}
		child, parent := r.Fields[0], r.Fields[1]
		ok := true
		if isRoleSubject(child) {
			c, cok := role(n, "member", child)
			ok = cok
			if cok {
				addRole(c)
			}
		} else if !ValidUser(child) {
			errs.add(n, "user %q: %s", child, userRule)
			ok = false
		}
		p, pok := role(n, "role", parent)
		if !ok || !pok {
			continue
		}
		addRole(p)
		if child == parent {
			errs.add(n, "role %s cannot inherit from itself", p)
			continue
		}
		k := ruleKey(child, parent)
		if _, dup := plan.gLine[k]; !dup {
			plan.gLine[k] = n
			plan.g = append(plan.g, []string{child, parent})
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return plan, nil
}

// Name rules in the words of an import error.
const (
	roleRule = "role names are 1-64 letters, digits, _ and -"
	userRule = "user names are 1-64 letters, digits and _ . @ + -"
)

// nameProblem words a name error of a file's line.
func nameProblem(err error) string {
	ne, ok := err.(*NameError)
	if !ok {
		return err.Error()
	}
	msg := fmt.Sprintf("invalid %s name %q", ne.Kind, ne.Value)
	if ne.Rule != "" {
		return msg + ": " + ne.Rule
	}
	return msg + ": permission names are 1-128 letters, digits, _ and -"
}

// importDiff is what an import changes in one tenant.
type importDiff struct {
	createRoles, deleteRoles []string
	addP, removeP            [][]string // with the domain
	addG, removeG            [][]string
}

// diff compares the plan with t (nil: a tenant that does not exist) in
// domain dom, and checks the role links the tenant would hold. The caller
// holds t.mu.
func (plan *importPlan) diff(t *tenant, dom string) (importDiff, error) {
	var d importDiff
	have := map[string]bool{}
	var curP, curG [][]string
	if t != nil && t.idx != nil {
		for _, r := range t.roles.list() {
			have[r] = true
		}
		curP, curG = t.rules("p"), t.rules("g")
	}
	want := map[string]bool{}
	for _, r := range plan.roles {
		want[r] = true
		if !have[r] {
			d.createRoles = append(d.createRoles, r)
		}
	}
	if !plan.merge && t != nil && t.roles != nil {
		for _, r := range t.roles.list() {
			if !want[r] {
				d.deleteRoles = append(d.deleteRoles, r)
			}
		}
	}
	curPSet, curGSet := map[string]bool{}, map[string]bool{}
	for _, r := range curP {
		k := ruleKey(r[0], r[2])
		curPSet[k] = true
		if _, keep := plan.pLine[k]; !keep && !plan.merge {
			d.removeP = append(d.removeP, slices.Clone(r))
		}
	}
	for _, r := range curG {
		k := ruleKey(r[0], r[1])
		curGSet[k] = true
		if _, keep := plan.gLine[k]; !keep && !plan.merge {
			d.removeG = append(d.removeG, slices.Clone(r))
		}
	}
	for _, r := range plan.p {
		if !curPSet[ruleKey(r...)] {
			d.addP = append(d.addP, []string{r[0], dom, r[1]})
		}
	}
	// The role links the tenant will hold: the file's, and in a merge the
	// tenant's own too.
	links := map[string][]string{}
	lineOf := map[string]int{}
	addLink := func(child, parent string, line int) {
		if isRoleSubject(child) && isRoleSubject(parent) {
			c, p := roleName(child), roleName(parent)
			links[c] = append(links[c], p)
			lineOf[c+"\x00"+p] = line
		}
	}
	if plan.merge {
		for _, r := range curG {
			addLink(r[0], r[1], 0)
		}
	}
	for _, r := range plan.g {
		if !curGSet[ruleKey(r...)] {
			d.addG = append(d.addG, []string{r[0], r[1], dom})
		}
		if !plan.merge || !curGSet[ruleKey(r...)] {
			addLink(r[0], r[1], plan.gLine[ruleKey(r...)])
		}
	}
	return d, checkLinks(links, lineOf, plan.maxLen)
}

// checkLinks refuses role links that form a cycle or a chain of more than
// maxLen links, as AddRoleParent does one link at a time.
func checkLinks(links map[string][]string, lineOf map[string]int, maxLen int) error {
	var errs problems
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	height := map[string]int{} // links above a role
	var visit func(r string) bool
	visit = func(r string) bool {
		switch state[r] {
		case onPath:
			return false
		case done:
			return true
		}
		state[r] = onPath
		best := 0
		for _, p := range links[r] {
			if state[p] == onPath {
				errs.add(lineOf[r+"\x00"+p], "the link from role %s to role %s closes a cycle of role inheritance", r, p)
				continue
			}
			if !visit(p) {
				continue
			}
			best = max(best, 1+height[p])
		}
		state[r] = done
		height[r] = best
		return true
	}
	roles := make([]string, 0, len(links))
	for r := range links {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	for _, r := range roles {
		visit(r)
	}
	if err := errs.err(); err != nil {
		return err
	}
	for _, r := range roles {
		if height[r] > maxLen {
			// Name the first link of the chain that is too long.
			line := 0
			for _, p := range links[r] {
				if 1+height[p] == height[r] {
					line = lineOf[r+"\x00"+p]
					break
				}
			}
			errs.add(line, "role %s would inherit through a chain of %d links, more than the maximum of %d (AUTH_MAX_ROLE_DEPTH)", r, height[r], maxLen)
		}
	}
	return errs.err()
}

// ImportPolicy applies a policy file to the tenant: it validates every line
// first (the error is an *ImportError naming each bad line, and nothing is
// changed), then, in one transaction, creates and (unless opts.Merge)
// deletes roles, adds and removes rules, bumps the tenant's policy version
// (other replicas reload) and records one IMPORT_POLICY audit entry. The
// domain of the file's rules is rewritten to the tenant's. With
// opts.DryRun it only reports what it would change.
func (s *Service) ImportPolicy(ctx context.Context, key KeyHash, f PolicyFile, opts ImportOptions) (ImportResult, error) {
	plan, err := s.planImport(f, opts.Merge)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Roles: len(plan.roles), Rules: len(plan.p) + len(plan.g)}
	count := func(d importDiff) {
		res.RolesCreated, res.RolesDeleted = len(d.createRoles), len(d.deleteRoles)
		res.RulesAdded, res.RulesRemoved = len(d.addP)+len(d.addG), len(d.removeP)+len(d.removeG)
	}
	if opts.DryRun {
		err := s.read(ctx, key, func(t *tenant) error {
			dom := "0"
			if t != nil {
				dom = t.dom
			}
			d, err := plan.diff(t, dom)
			count(d)
			return err
		})
		return res, err
	}
	mode := "replace"
	if opts.Merge {
		mode = "merge"
	}
	details := map[string]any{"mode": mode}
	_, err = s.write(ctx, key, change{action: audit.ImportPolicy, resource: "policy", fresh: true,
		details: details, version: &res.Version,
		op: func(ctx context.Context, tx Tx, t *tenant, dom string) (bool, []Op, error) {
			tid, err := tx.EnsureTenant(ctx, key)
			if err != nil {
				return false, nil, err
			}
			t.mu.RLock()
			d, err := plan.diff(t, dom)
			t.mu.RUnlock()
			if err != nil {
				return false, nil, err
			}
			count(d)
			details["roles_created"], details["roles_deleted"] = res.RolesCreated, res.RolesDeleted
			details["rules_added"], details["rules_removed"] = res.RulesAdded, res.RulesRemoved
			var ops []Op
			for _, r := range []struct {
				ptype string
				rules [][]string
			}{{"p", d.removeP}, {"g", d.removeG}} {
				if len(r.rules) == 0 {
					continue
				}
				if err := tx.RemoveRules(ctx, r.ptype, r.rules); err != nil {
					return false, nil, err
				}
				ops = append(ops, Op{Kind: OpRemoveRules, Ptype: r.ptype, Rules: r.rules})
			}
			for _, r := range d.deleteRoles {
				if _, err := tx.DeleteRole(ctx, tid, r); err != nil {
					return false, nil, err
				}
				ops = append(ops, Op{Kind: OpRemoveRole, Role: r})
			}
			for _, r := range d.createRoles {
				if _, err := tx.CreateRole(ctx, tid, r); err != nil {
					return false, nil, err
				}
				ops = append(ops, Op{Kind: OpAddRole, Role: r})
			}
			for _, r := range []struct {
				ptype string
				rules [][]string
			}{{"p", d.addP}, {"g", d.addG}} {
				if len(r.rules) == 0 {
					continue
				}
				op, err := addRules(ctx, tx, tid, r.ptype, r.rules, 0)
				if err != nil {
					return false, nil, err
				}
				ops = append(ops, op)
			}
			return true, ops, nil
		}})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}
