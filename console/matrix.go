package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Matrix page sizes: roles (rows) and permissions (columns) per page.
const (
	matrixRoles = 25
	matrixPerms = 12
)

// cell is a cell of the matrix: whether the role is granted the
// permission itself, and where to come back to after toggling it.
type cell struct {
	Role, Permission string
	Granted          bool
	Back             string
	CSRF             string
	ReadOnly         bool
	Error            string
}

// matrixRow is a role's row of the matrix.
type matrixRow struct {
	Role  string
	Cells []cell
}

func (c *Console) matrixPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := consistent(r.Context(), s)
	q := r.URL.Query()
	roles, err := c.sortedRoles(ctx, s)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	perms, err := c.deps.Directory.GrantedPermissions(ctx, s.Tenant)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	// A permission asked for by name gets a column even before any grant.
	if extra := strings.TrimSpace(q.Get("permission")); extra != "" {
		if i, found := slices.BinarySearch(perms, extra); !found {
			perms = slices.Insert(perms, i, extra)
		}
	}
	pageRoles, rolesNext := after(roles, func(r policy.Role) string { return r.Name }, q.Get("roles_after"), pageLimit(q, "roles_limit", matrixRoles))
	pagePerms, permsNext := after(perms, func(p string) string { return p }, q.Get("perms_after"), pageLimit(q, "perms_limit", matrixPerms))
	back := Prefix + "/matrix"
	if len(q) > 0 {
		back += "?" + q.Encode()
	}
	rows := make([]matrixRow, 0, len(pageRoles))
	for _, ro := range pageRoles {
		grants, err := c.deps.Directory.DirectGrants(ctx, s.Tenant, ro.Name)
		if err != nil {
			continue // deleted since it was listed
		}
		has := make(map[string]bool, len(grants))
		for _, g := range grants {
			has[g.Name] = true
		}
		row := matrixRow{Role: ro.Name, Cells: make([]cell, 0, len(pagePerms))}
		for _, p := range pagePerms {
			row.Cells = append(row.Cells, cell{Role: ro.Name, Permission: p, Granted: has[p], Back: back, CSRF: s.csrf, ReadOnly: s.ReadOnly})
		}
		rows = append(rows, row)
	}
	c.record(r, s, audit.ListPermissions, "", "matrix")
	c.renderView(w, r, http.StatusOK, "matrix", view{Title: "Matrix", Session: s, Data: map[string]any{
		"Perms": pagePerms, "Rows": rows, "RolesNext": rolesNext, "PermsNext": permsNext,
		"RolesAfter": q.Get("roles_after"), "PermsAfter": q.Get("perms_after"),
		"RoleCount": len(roles), "PermCount": len(perms), "Permission": q.Get("permission"),
	}}, "")
}

// toggleCell grants or revokes a permission of a role through the API (PUT
// or DELETE /api/v2/roles/{role}/permissions/{permission}). An htmx request
// gets the new cell; a plain form goes back to the matrix.
func (c *Console) toggleCell(w http.ResponseWriter, r *http.Request, s *session) {
	role := strings.TrimSpace(r.PostFormValue("role"))
	perm := strings.TrimSpace(r.PostFormValue("permission"))
	grant := r.PostFormValue("grant") == "true"
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, Prefix+"/matrix") {
		back = Prefix + "/matrix"
	}
	method := http.MethodDelete
	if grant {
		method = http.MethodPut
	}
	a, err := c.call(r, s, method, "/api/v2/roles/"+url.PathEscape(role)+"/permissions/"+url.PathEscape(perm), nil, nil)
	if r.Header.Get("HX-Request") != "true" || r.Header.Get("HX-Boosted") == "true" {
		c.done(w, r, s, a, err, back)
		return
	}
	cl := cell{Role: role, Permission: perm, Granted: grant, Back: back, CSRF: s.csrf}
	if err != nil {
		_, cl.Error = errorStatus(err)
		cl.Granted = !grant
	} else {
		noteRevision(w, r, s, a.Revision)
	}
	c.renderView(w, r, http.StatusOK, "matrix", view{Session: s, Data: cl}, "cell")
}
