package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// userPerms is how many of a user's permissions one page explains.
const userPerms = 100

// step is a step of a path that grants a permission.
type step struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// heldPerm is a permission a user holds, with the path that grants it.
type heldPerm struct {
	Name string
	Path []step
}

func (c *Console) userPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	user := strings.TrimSpace(q.Get("user"))
	data := map[string]any{"User": user}
	if user == "" {
		c.renderView(w, r, http.StatusOK, "user", view{Title: "User", Session: s, Data: data}, "")
		return
	}
	ctx := consistent(r.Context(), s)
	dir := c.deps.Directory
	roles, err := dir.UserRoleTree(ctx, s.Tenant, user)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	grants, err := dir.UserGrants(ctx, s.Tenant, user)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	pageGrants, next := after(grants, func(h policy.HeldPermission) string { return h.Name }, q.Get("after"), pageLimit(q, "limit", userPerms))
	perms := make([]heldPerm, 0, len(pageGrants))
	for _, g := range pageGrants {
		hp := heldPerm{Name: g.Name}
		if e, err := dir.Explain(ctx, s.Tenant, user, g.Name); err == nil && e.Allowed {
			for _, st := range e.Path {
				hp.Path = append(hp.Path, step{Type: st.Type, Name: st.Name})
			}
		} else {
			// Granted as a pattern (or not matched as a name): the roles
			// that grant it say where it comes from.
			hp.Path = []step{{Type: policy.StepUser, Name: user}}
			for _, ro := range g.Roles {
				hp.Path = append(hp.Path, step{Type: policy.StepRole, Name: ro})
			}
			hp.Path = append(hp.Path, step{Type: policy.StepPermission, Name: g.Name})
		}
		perms = append(perms, hp)
	}
	c.record(r, s, audit.UserPermissions, user, "user_permissions")
	data["Roles"], data["Perms"], data["PermCount"], data["Next"], data["After"] = roles, perms, len(grants), next, q.Get("after")
	c.renderView(w, r, http.StatusOK, "user", view{Title: "User " + user, Page: "user", Session: s, Data: data}, "")
}

// checkAnswer is the API's answer to a check with its explanation.
type checkAnswer struct {
	Allowed     bool `json:"allowed"`
	Explanation *struct {
		Path []step   `json:"path"`
		Rule []string `json:"rule"`
	} `json:"explanation"`
	Revision int64 `json:"revision"`
}

// checkPage answers a check through the API (GET /api/v2/check with
// explain=true), so that it is recorded as any check is.
func (c *Console) checkPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	user, perm := strings.TrimSpace(q.Get("user")), strings.TrimSpace(q.Get("permission"))
	data := map[string]any{"User": user, "Permission": perm}
	if user != "" && perm != "" {
		params := url.Values{"user": {user}, "permission": {perm}, "explain": {"true"}}
		if s.need > 0 {
			params.Set("consistency", policy.Consistency{Mode: policy.AtLeast, Revision: s.need}.String())
		}
		a, err := c.call(r, s, http.MethodGet, "/api/v2/check", params, nil)
		if err != nil {
			_, data["Error"] = errorStatus(err)
		} else {
			var ans checkAnswer
			if err := json.Unmarshal(a.Data, &ans); err != nil {
				c.failErr(w, r, s, err)
				return
			}
			data["Answer"] = ans
		}
	}
	c.renderView(w, r, http.StatusOK, "check", view{Title: "Check", Session: s, Data: data}, "")
}
