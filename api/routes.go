package api

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// opsRoutes registers the operational endpoints on e: /health, /ready and,
// with withMetrics, /metrics.
func (s *Server) opsRoutes(e *echo.Echo, withMetrics bool) {
	get := []string{http.MethodGet, http.MethodHead}
	e.Match(get, "/health", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "healthy"})
	})
	e.Match(get, "/ready", s.ready)
	if withMetrics && s.deps.Metrics != nil {
		e.Match(get, "/metrics", s.metricsHandler())
	}
}

// routes registers /ping, the operational endpoints and the compatible
// routes under both /api and /api/v1.
func (s *Server) routes() {
	e := s.echo
	get := []string{http.MethodGet, http.MethodHead}
	e.Match(get, "/ping", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"message": "PONG"})
	})
	s.opsRoutes(e, !s.separateOps)
	s.docsRoutes()
	s.v2Routes()
	for _, prefix := range []string{"/api", "/api/v1"} {
		add := func(methods []string, path string, h echo.HandlerFunc, spec auditSpec, extra ...echo.MiddlewareFunc) {
			// Rate limits: per client IP around the gate (for the requests it
			// refuses), per tenant after it; a 429 is not audited.
			mw := []echo.MiddlewareFunc{s.limitUnauthenticated, s.jwtMiddleware(), s.authenticate, s.limitTenant, s.audited(spec)}
			if spec.write {
				mw = append(mw, requireWrite)
			}
			e.Match(methods, prefix+path, h, append(mw, extra...)...)
		}
		post, del := []string{http.MethodPost}, []string{http.MethodDelete}
		add(get, "/membership/:user/:group", s.checkMembership, read(audit.CheckMembership, "user", "group"))
		add(post, "/membership/:user/:group", s.addMembership, write(audit.AddMembership, "user", "group"))
		add(del, "/membership/:user/:group", s.removeMembership, write(audit.RemoveMembership, "user", "group"))
		add(get, "/permission/:group/:name", s.checkRolePermission, read(audit.CheckPermission, "", "group", "name"), roleAsGroup)
		add(post, "/permission/:group/:name", s.addPermission, write(audit.AddPermission, "", "group", "name"), roleAsGroup)
		add(del, "/permission/:group/:name", s.removePermission, write(audit.RemovePermission, "", "group", "name"), roleAsGroup)
		add(get, "/has_permission/:user/:name", s.hasPermission, read(audit.CheckPermission, "user", "name"))
		add(get, "/user_permissions/:user", s.userPermissions, read(audit.UserPermissions, "user"))
		add(get, "/role_permissions/:role", s.rolePermissions, read(audit.ListPermissions, "", "role"))
		add(get, "/user_roles/:user", s.userRoles, read(audit.ListMemberships, "user"))
		add(get, "/members/:role", s.members, read(audit.ListMemberships, "", "role"))
		add(get, "/roles", s.listRoles, read(audit.ListRoles, "").fixed("all"))
		add(get, "/which_roles_can/:name", s.whichRolesCan, read(audit.ListRoles, "", "name"))
		add(get, "/which_users_can/:name", s.whichUsersCan, read(audit.ListMemberships, "", "name"))
		add(post, "/role/:role", s.createRole, write(audit.CreateRole, "", "role"))
		add(del, "/role/:role", s.deleteRole, write(audit.DeleteRole, "", "role"))
		add(get, "/role/:role/parents", s.roleParents, read(audit.ListRoles, "", "role").prefixed("parents:"))
		add(post, "/role/:role/parents/:parent", s.addRoleParent, write(audit.AddRoleParent, "", "role", "parent"))
		add(del, "/role/:role/parents/:parent", s.removeRoleParent, write(audit.RemoveRoleParent, "", "role", "parent"))
		add(get, "/workflow/users/:workflow_name", s.workflowUsers, read(audit.ListMemberships, "", "workflow_name").prefixed("workflow:"))
		add(get, "/workflow/user/:user/can_run/:workflow_name", s.workflowCanRun, read(audit.CheckPermission, "user", "workflow_name").prefixed("workflow:"))
		add(get, "/audit", s.auditTrail, auditSpec{action: audit.GetAudit, always: true, fixedResource: "audit"})
		add(post, "/token", s.issueToken, auditSpec{action: audit.IssueToken, always: true, fixedResource: "token"}, requireClientKey)
		add(post, "/keys/rotate", s.rotateKey, write(audit.RotateKey, "").fixed("client_key"), requireClientKey)
		add(post, "/keys/revoke_others", s.revokeOtherKeys, write(audit.RevokeKey, "").fixed("client_key"), requireClientKey)
	}
}

// Wire shapes. Fields are declared in sorted order so that the JSON matches
// the original service byte for byte (it sorted keys).
type (
	result struct {
		Result any `json:"result"`
	}
	envelope struct {
		Code      int    `json:"code"`
		Data      any    `json:"data"`
		Message   string `json:"message"`
		Success   bool   `json:"success"`
		Timestamp string `json:"timestamp"`
	}
	checkData struct {
		HasPermission bool `json:"has_permission"`
	}
	nameItem struct {
		Name string `json:"name"`
	}
	permissionsData struct {
		Count       int        `json:"count"`
		Permissions []nameItem `json:"permissions"`
	}
	membersData struct {
		Count   int              `json:"count"`
		Members []membershipItem `json:"members"`
	}
	membershipItem struct {
		Role string `json:"role"`
		User string `json:"user"`
	}
	roleItem struct {
		Description *string `json:"description"`
		Role        string  `json:"role"`
	}
	roleOnlyItem struct {
		Role string `json:"role"`
	}
	parentItem struct {
		Parent string `json:"parent"`
		Role   string `json:"role"`
	}
)

func ok(c echo.Context, data any, format string, args ...any) error {
	return c.JSON(http.StatusOK, envelope{
		Code: http.StatusOK, Data: data, Message: fmt.Sprintf(format, args...),
		Success: true, Timestamp: timestamp(time.Now()),
	})
}

func bare(c echo.Context, v any) error { return c.JSON(http.StatusOK, result{Result: v}) }

// param returns a path parameter, percent-decoded. Echo routes on the raw
// path when the request used a non-canonical encoding (such as %40), and
// then leaves the parameters encoded.
func param(c echo.Context, name string) string {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		if d, err := url.PathUnescape(v); err == nil {
			return d
		}
	}
	return v
}

func (s *Server) checkMembership(c echo.Context) error {
	u, g := param(c, "user"), param(c, "group")
	has, err := s.deps.Policy.IsMember(c.Request().Context(), tenantOf(c), u, g)
	if err != nil {
		return err
	}
	decided(c, has)
	return okEncoded(c, checkJSON(has), "Membership check for user '"+u+"' and group '"+g+"' completed")
}

func (s *Server) addMembership(c echo.Context) error {
	u, g := param(c, "user"), param(c, "group")
	r, err := s.deps.Policy.AddMember(c.Request().Context(), tenantOf(c), u, g)
	if err != nil {
		return err
	}
	return bare(c, r)
}

func (s *Server) removeMembership(c echo.Context) error {
	u, g := param(c, "user"), param(c, "group")
	r, err := s.deps.Policy.RemoveMember(c.Request().Context(), tenantOf(c), u, g)
	if err != nil {
		return err
	}
	return bare(c, r)
}

func (s *Server) checkRolePermission(c echo.Context) error {
	g, n := param(c, "group"), param(c, "name")
	r, err := s.deps.Policy.RoleHasPermission(c.Request().Context(), tenantOf(c), g, n)
	if err != nil {
		return err
	}
	decided(c, r)
	return bare(c, r)
}

func (s *Server) addPermission(c echo.Context) error {
	g, n := param(c, "group"), param(c, "name")
	r, err := s.deps.Policy.Grant(c.Request().Context(), tenantOf(c), g, n)
	if err != nil {
		return err
	}
	return bare(c, r)
}

func (s *Server) removePermission(c echo.Context) error {
	g, n := param(c, "group"), param(c, "name")
	r, err := s.deps.Policy.Revoke(c.Request().Context(), tenantOf(c), g, n)
	if err != nil {
		return err
	}
	return bare(c, r)
}

func (s *Server) hasPermission(c echo.Context) error {
	u, n := param(c, "user"), param(c, "name")
	has, err := s.deps.Policy.HasPermission(c.Request().Context(), tenantOf(c), u, n)
	if err != nil {
		return err
	}
	decided(c, has)
	return okEncoded(c, checkJSON(has), "Permission check for user '"+u+"' and permission '"+n+"' completed")
}

// checkJSON is the JSON of checkData{has}.
func checkJSON(has bool) []byte {
	if has {
		return checkTrue
	}
	return checkFalse
}

var (
	checkTrue  = []byte(`{"has_permission":true}`)
	checkFalse = []byte(`{"has_permission":false}`)
)

func names(list []string) []nameItem {
	out := make([]nameItem, 0, len(list))
	for _, n := range list {
		out = append(out, nameItem{n})
	}
	return out
}

func (s *Server) userPermissions(c echo.Context) error {
	u := param(c, "user")
	list, err := s.deps.Policy.UserPermissions(c.Request().Context(), tenantOf(c), u)
	if err != nil {
		return err
	}
	return ok(c, permissionsData{Count: len(list), Permissions: names(list)}, "Retrieved permissions for user '%s'", u)
}

func (s *Server) rolePermissions(c echo.Context) error {
	r := param(c, "role")
	list, err := s.deps.Policy.RolePermissions(c.Request().Context(), tenantOf(c), r)
	if err != nil {
		return err
	}
	return ok(c, names(list), "Retrieved permissions for role '%s'", r)
}

func (s *Server) userRoles(c echo.Context) error {
	u := param(c, "user")
	roles, err := s.deps.Policy.UserRoles(c.Request().Context(), tenantOf(c), u)
	if err != nil {
		return err
	}
	out := make([]membershipItem, 0, len(roles))
	for _, r := range roles {
		out = append(out, membershipItem{Role: r, User: u})
	}
	return bare(c, out)
}

func (s *Server) members(c echo.Context) error {
	r := param(c, "role")
	users, err := s.deps.Policy.Members(c.Request().Context(), tenantOf(c), r)
	if err != nil {
		return err
	}
	out := make([]membershipItem, 0, len(users))
	for _, u := range users {
		out = append(out, membershipItem{Role: r, User: u})
	}
	return bare(c, out)
}

func (s *Server) listRoles(c echo.Context) error {
	roles, err := s.deps.Policy.ListRoles(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	out := make([]roleItem, 0, len(roles))
	for _, r := range roles {
		out = append(out, roleItem{Description: r.Description, Role: r.Name})
	}
	return bare(c, out)
}

func (s *Server) whichRolesCan(c echo.Context) error {
	n := param(c, "name")
	roles, err := s.deps.Policy.WhichRolesCan(c.Request().Context(), tenantOf(c), n)
	if err != nil {
		return err
	}
	out := make([]roleOnlyItem, 0, len(roles))
	for _, r := range roles {
		out = append(out, roleOnlyItem{Role: r})
	}
	return bare(c, out)
}

func memberships(list []policy.Membership) []membershipItem {
	out := make([]membershipItem, 0, len(list))
	for _, m := range list {
		out = append(out, membershipItem{Role: m.Role, User: m.User})
	}
	return out
}

func (s *Server) whichUsersCan(c echo.Context) error {
	n := param(c, "name")
	list, err := s.deps.Policy.WhichUsersCan(c.Request().Context(), tenantOf(c), n)
	if err != nil {
		return err
	}
	return bare(c, memberships(list))
}

func (s *Server) createRole(c echo.Context) error {
	r := param(c, "role")
	res, err := s.deps.Policy.CreateRole(c.Request().Context(), tenantOf(c), r)
	if err != nil {
		return err
	}
	return bare(c, res)
}

func (s *Server) deleteRole(c echo.Context) error {
	r := param(c, "role")
	res, err := s.deps.Policy.DeleteRole(c.Request().Context(), tenantOf(c), r)
	if err != nil {
		return err
	}
	return ok(c, result{res}, "Role '%s' deletion completed", r)
}

func (s *Server) roleParents(c echo.Context) error {
	r := param(c, "role")
	parents, err := s.deps.Policy.RoleParents(c.Request().Context(), tenantOf(c), r)
	if err != nil {
		return err
	}
	out := make([]parentItem, 0, len(parents))
	for _, p := range parents {
		out = append(out, parentItem{Parent: p, Role: r})
	}
	return bare(c, out)
}

func (s *Server) addRoleParent(c echo.Context) error {
	r, p := param(c, "role"), param(c, "parent")
	res, err := s.deps.Policy.AddRoleParent(c.Request().Context(), tenantOf(c), r, p)
	if err != nil {
		return err
	}
	return bare(c, res)
}

func (s *Server) removeRoleParent(c echo.Context) error {
	r, p := param(c, "role"), param(c, "parent")
	res, err := s.deps.Policy.RemoveRoleParent(c.Request().Context(), tenantOf(c), r, p)
	if err != nil {
		return err
	}
	return bare(c, res)
}

func (s *Server) workflowUsers(c echo.Context) error {
	w := param(c, "workflow_name")
	list, err := s.deps.Workflows.UsersFor(c.Request().Context(), tenantOf(c), w)
	if err != nil {
		return err
	}
	items := memberships(list)
	return ok(c, membersData{Count: len(items), Members: items}, "Retrieved users who can run workflow '%s'", w)
}

func (s *Server) workflowCanRun(c echo.Context) error {
	u, w := param(c, "user"), param(c, "workflow_name")
	has, err := s.deps.Workflows.CanRun(c.Request().Context(), tenantOf(c), u, w)
	if err != nil {
		return err
	}
	decided(c, has)
	return ok(c, checkData{has}, "Workflow permission check for user '%s' and workflow '%s' completed", u, w)
}
