package policy

import (
	"fmt"
	"strings"

	"github.com/casbin/casbin/v3"
	"github.com/casbin/casbin/v3/model"
)

// rolePrefix marks role subjects in Casbin rules, so that no user (whose
// name cannot contain ':') is ever taken for a role.
const rolePrefix = "role:"

func roleSubject(role string) string { return rolePrefix + role }

func isRoleSubject(s string) bool { return strings.HasPrefix(s, rolePrefix) }

func roleName(subject string) string { return strings.TrimPrefix(subject, rolePrefix) }

// modelInfo is what the service knows about the configured model.
type modelInfo struct {
	text string
	// fast is true when the model is the plain RBAC-with-domains shape whose
	// decisions the index reproduces exactly (proved by the differential
	// test); otherwise every decision goes through Casbin's Enforce.
	fast bool
	// wildcards is true when the matcher compares permissions by pattern
	// (keyMatch, keyMatch2..5, globMatch, regexMatch), so grants are
	// patterns.
	wildcards bool
	// perm is the rule for permission names under this model.
	perm permissionRule
}

// ParseModel checks that text is a Casbin model this service can serve: a
// request "sub, dom, obj", a policy "sub, dom, obj" and a role definition g
// with a domain ("_, _, _"). The error carries Casbin's own message.
func ParseModel(text string) (modelInfo, error) {
	m, err := model.NewModelFromString(text)
	if err != nil {
		return modelInfo{}, fmt.Errorf("model.conf: %w", err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return modelInfo{}, fmt.Errorf("model.conf: %w", err)
	}
	tokens := func(sec, key string) string {
		a, ok := m[sec][key]
		if !ok {
			return ""
		}
		return strings.Join(a.Tokens, ",")
	}
	if got := tokens("r", "r"); got != "r_sub,r_dom,r_obj" {
		return modelInfo{}, fmt.Errorf("model.conf: request_definition must be \"r = sub, dom, obj\" (got %q)", strings.ReplaceAll(got, "r_", ""))
	}
	if got := tokens("p", "p"); got != "p_sub,p_dom,p_obj" {
		return modelInfo{}, fmt.Errorf("model.conf: policy_definition must be \"p = sub, dom, obj\" (got %q)", strings.ReplaceAll(got, "p_", ""))
	}
	g, ok := m["g"]["g"]
	if !ok || strings.Count(g.Value, "_") != 3 {
		return modelInfo{}, fmt.Errorf("model.conf: role_definition must define \"g = _, _, _\" (user, role, domain)")
	}
	// Casbin compiles the matcher and the effect only on the first Enforce:
	// run one on a probe rule that every term of the plain matcher accepts,
	// so that a model Casbin cannot evaluate (a syntax error, an unknown
	// function or field, an unsupported effect) is refused here, at start,
	// rather than failing every check.
	if _, err := e.AddGroupingPolicy("probe-user", "probe-role", "probe-dom"); err != nil {
		return modelInfo{}, fmt.Errorf("model.conf: %w", err)
	}
	if _, err := e.AddPolicy("probe-role", "probe-dom", "probe-obj"); err != nil {
		return modelInfo{}, fmt.Errorf("model.conf: %w", err)
	}
	if _, err := e.Enforce("probe-user", "probe-dom", "probe-obj"); err != nil {
		return modelInfo{}, fmt.Errorf("model.conf: %w", err)
	}
	info := modelInfo{text: text}
	matcher := strings.Join(strings.Fields(m["m"]["m"].Value), "")
	funcs := patternFunctions(matcher)
	info.wildcards = len(funcs) > 0
	info.perm = newPermissionRule(funcs)
	info.fast = isPlainRBAC(m, matcher)
	return info, nil
}

// isPlainRBAC reports whether the model is exactly allow-override RBAC with
// domains: a conjunction, in any order, of r.dom==p.dom, r.obj==p.obj and
// g(r.sub,p.sub,r.dom), with no other role definitions.
func isPlainRBAC(m model.Model, matcher string) bool {
	if len(m["g"]) != 1 || len(m["p"]) != 1 || len(m["r"]) != 1 {
		return false
	}
	eff := strings.Join(strings.Fields(m["e"]["e"].Value), "")
	if eff != "some(where(p_eft==allow))" {
		return false
	}
	want := map[string]bool{"r_dom==p_dom": false, "r_obj==p_obj": false, "g(r_sub,p_sub,r_dom)": false}
	for _, term := range strings.Split(matcher, "&&") {
		seen, known := want[term]
		if !known || seen {
			return false
		}
		want[term] = true
	}
	for _, seen := range want {
		if !seen {
			return false
		}
	}
	return true
}
