package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/decision"
	"github.com/ourway/auth/policy"
)

// Page sizes.
const (
	defaultPage = 50
	maxPage     = 500
	memberPage  = 100
)

// pageLimit reads a limit parameter (1..maxPage, default def).
func pageLimit(q url.Values, name string, def int) int {
	n, err := strconv.Atoi(q.Get(name))
	if err != nil || n < 1 {
		return def
	}
	return min(n, maxPage)
}

// after returns the items of sorted (by key) that come after the key
// after, at most limit of them, and the key to continue after ("" at the
// end).
func after[T any](sorted []T, key func(T) string, from string, limit int) ([]T, string) {
	i := 0
	if from != "" {
		i = sort.Search(len(sorted), func(i int) bool { return key(sorted[i]) > from })
	}
	end := min(len(sorted), i+limit)
	next := ""
	if end < len(sorted) && end > i {
		next = key(sorted[end-1])
	}
	return sorted[i:end], next
}

// record records a page view as the listing it shows.
func (c *Console) record(r *http.Request, s *session, action audit.Action, user, resource string) {
	if c.deps.Recorder != nil {
		c.deps.Recorder.Listed(r.Context(), s.Tenant, decision.Question{Action: action, User: user, Resource: resource})
	}
}

// sortedRoles lists the tenant's roles sorted by name (the order pages
// and their cursors follow).
func (c *Console) sortedRoles(ctx context.Context, s *session) ([]policy.Role, error) {
	roles, err := c.deps.Directory.ListRoles(ctx, s.Tenant)
	slices.SortFunc(roles, func(a, b policy.Role) int { return strings.Compare(a.Name, b.Name) })
	return roles, err
}

// roleRow is a row of the roles page.
type roleRow struct {
	Name        string
	Description string
	Members     int
	Permissions int
	Parents     int
}

func (c *Console) rolesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := consistent(r.Context(), s)
	q := r.URL.Query()
	search := strings.TrimSpace(q.Get("q"))
	roles, err := c.sortedRoles(ctx, s)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	total := len(roles)
	if search != "" {
		needle := strings.ToLower(search)
		kept := roles[:0]
		for _, ro := range roles {
			if strings.Contains(strings.ToLower(ro.Name), needle) ||
				(ro.Description != nil && strings.Contains(strings.ToLower(*ro.Description), needle)) {
				kept = append(kept, ro)
			}
		}
		roles = kept
	}
	matched := len(roles)
	pageRoles, next := after(roles, func(r policy.Role) string { return r.Name }, q.Get("after"), pageLimit(q, "limit", defaultPage))
	rows := make([]roleRow, 0, len(pageRoles))
	for _, ro := range pageRoles {
		info, err := c.deps.Directory.RoleInfo(ctx, s.Tenant, ro.Name)
		if err != nil {
			continue // deleted since it was listed
		}
		row := roleRow{Name: ro.Name, Members: info.Members, Permissions: info.Permissions, Parents: len(info.Parents)}
		if ro.Description != nil {
			row.Description = *ro.Description
		}
		rows = append(rows, row)
	}
	c.record(r, s, audit.ListRoles, "", "all")
	c.renderView(w, r, http.StatusOK, "roles", view{Title: "Roles", Session: s, Data: map[string]any{
		"Rows": rows, "Total": total, "Matched": matched, "Search": search, "Next": next,
		"Limit": q.Get("limit"), "After": q.Get("after"),
	}}, "")
}

// createRole creates a role through the API (POST /api/v2/roles).
func (c *Console) createRole(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("role"))
	body := map[string]any{"name": name}
	if d := strings.TrimSpace(r.PostFormValue("description")); d != "" {
		body["description"] = d
	}
	a, err := c.call(r, s, http.MethodPost, "/api/v2/roles", nil, body)
	back := Prefix + "/roles"
	if err == nil {
		back += "/" + url.PathEscape(name)
	}
	c.done(w, r, s, a, err, back)
}

// link is an entry of a role's permissions, members, parents or children.
type link struct {
	Name    string
	Expires string
	Via     string
}

// linkKinds are the lists of a role page: the path segment, the form field
// naming the other end, and the API path under /api/v2/roles/{role}.
var linkKinds = map[string]struct{ field, api string }{
	"permissions": {"permission", "permissions"},
	"members":     {"user", "members"},
	"parents":     {"parent", "parents"},
	"children":    {"child", ""},
}

func (c *Console) rolePage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := consistent(r.Context(), s)
	role := r.PathValue("role")
	q := r.URL.Query()
	dir := c.deps.Directory
	info, err := dir.RoleInfo(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	grants, err := dir.DirectGrants(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	members, err := dir.DirectMembers(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	children, err := dir.ChildRoles(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	memberPageItems, membersNext := after(members, func(h policy.Held) string { return h.Name }, q.Get("members_after"), pageLimit(q, "members_limit", memberPage))
	desc := ""
	if info.Description != nil {
		desc = *info.Description
	}
	c.record(r, s, audit.ListRoles, "", "role:"+role)
	c.renderView(w, r, http.StatusOK, "role", view{Title: "Role " + role, Page: "roles", Session: s, Data: map[string]any{
		"Role": role, "Description": desc, "Info": info,
		"Permissions": held(grants), "Members": held(memberPageItems), "MembersNext": membersNext,
		"MembersAfter": q.Get("members_after"),
		"Parents":      names(info.Parents), "Children": names(children),
	}}, "")
}

func held(list []policy.Held) []link {
	out := make([]link, 0, len(list))
	for _, h := range list {
		l := link{Name: h.Name}
		if h.ExpiresAt != nil {
			l.Expires = h.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		out = append(out, l)
	}
	return out
}

func names(list []string) []link {
	out := make([]link, 0, len(list))
	for _, n := range list {
		out = append(out, link{Name: n})
	}
	return out
}

// roleLink adds or removes one of a role's permissions, members, parents
// or children through the API (PUT or DELETE
// /api/v2/roles/{role}/{kind}/{name}; a child is the child role's parent).
func (c *Console) roleLink(w http.ResponseWriter, r *http.Request, s *session) {
	role, kind, op := r.PathValue("role"), r.PathValue("kind"), r.PathValue("op")
	k, ok := linkKinds[kind]
	if !ok || (op != "add" && op != "remove") {
		c.fail(w, r, s, http.StatusNotFound, msgNoPage)
		return
	}
	back := Prefix + "/roles/" + url.PathEscape(role) + "#" + kind
	name := strings.TrimSpace(r.PostFormValue(k.field))
	if name == "" {
		setFlash(w, r, flash{Error: true, Detail: fmt.Sprintf("Enter the %s to %s.", k.field, op)})
		redirect(w, r, back)
		return
	}
	method := http.MethodPut
	if op == "remove" {
		method = http.MethodDelete
	}
	p := "/api/v2/roles/" + url.PathEscape(role) + "/" + k.api + "/" + url.PathEscape(name)
	if kind == "children" {
		p = "/api/v2/roles/" + url.PathEscape(name) + "/parents/" + url.PathEscape(role)
	}
	a, err := c.call(r, s, method, p, nil, nil)
	c.done(w, r, s, a, err, back)
}

func (c *Console) deletePage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := consistent(r.Context(), s)
	role := r.PathValue("role")
	info, err := c.deps.Directory.RoleInfo(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	children, err := c.deps.Directory.ChildRoles(ctx, s.Tenant, role)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.record(r, s, audit.ListRoles, "", "role:"+role)
	c.renderView(w, r, http.StatusOK, "delete", view{Title: "Delete role " + role, Page: "roles", Session: s, Data: map[string]any{
		"Role": role, "Info": info, "Children": children,
	}}, "")
}

// deleteRole deletes a role through the API (DELETE /api/v2/roles/{role}).
func (c *Console) deleteRole(w http.ResponseWriter, r *http.Request, s *session) {
	role := r.PathValue("role")
	a, err := c.call(r, s, http.MethodDelete, "/api/v2/roles/"+url.PathEscape(role), nil, nil)
	back := Prefix + "/roles"
	if err != nil {
		back += "/" + url.PathEscape(role)
	}
	c.done(w, r, s, a, err, back)
}
