package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"

	"github.com/labstack/echo/v4"

	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/policy"
)

// Wire shapes of the v2 resources; fields in sorted order, as everywhere.
type (
	v2Role struct {
		Description *string `json:"description"`
		Name        string  `json:"name"`
	}
	v2RolePut struct {
		Created     bool    `json:"created"`
		Description *string `json:"description"`
		Name        string  `json:"name"`
		Revision    int64   `json:"revision"`
	}
	v2RoleDeleted struct {
		Deleted  bool   `json:"deleted"`
		Revision int64  `json:"revision"`
		Role     string `json:"role"`
	}
	v2RoleCreated struct {
		Description *string `json:"description"`
		Name        string  `json:"name"`
		Revision    int64   `json:"revision"`
	}
	v2RoleDetail struct {
		Description *string  `json:"description"`
		Members     int      `json:"members"`
		Name        string   `json:"name"`
		Parents     []string `json:"parents"`
		Permissions int      `json:"permissions"`
		Revision    int64    `json:"revision"`
	}
	v2Grant struct {
		ExpiresAt *string `json:"expires_at"`
		Name      string  `json:"name"`
	}
	v2Member struct {
		ExpiresAt *string `json:"expires_at"`
		User      string  `json:"user"`
	}
	v2Name struct {
		Name string `json:"name"`
	}
	v2UserRole struct {
		Inherited bool   `json:"inherited"`
		Name      string `json:"name"`
		Via       string `json:"via,omitempty"`
	}
	v2NamedRoles struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	v2UserRoles struct {
		Roles []string `json:"roles"`
		User  string   `json:"user"`
	}
	v2Holding struct {
		Inherited bool   `json:"inherited"`
		Name      string `json:"name"`
	}
	v2UserDeleted struct {
		MembershipsRemoved int    `json:"memberships_removed"`
		Revision           int64  `json:"revision"`
		User               string `json:"user"`
	}
)

// v2Resources registers the v2 routes of roles, grants, members, parents,
// users and reverse lookups. A failed request is recorded like its v1 twin.
func (s *Server) v2Resources() {
	get := []string{http.MethodGet}
	post, put, del := []string{http.MethodPost}, []string{http.MethodPut}, []string{http.MethodDelete}
	r := func(m []string, path string, h echo.HandlerFunc, spec auditSpec) {
		s.v2Add(m, path, h, spec.write, s.audited(spec))
	}
	r(get, "/roles", s.v2ListRoles, read(audit.ListRoles, "").fixed("all"))
	r(post, "/roles", s.v2CreateRole, write(audit.CreateRole, "").fixed("roles"))
	r(get, "/roles/:role", s.v2GetRole, read(audit.ListRoles, "", "role").prefixed("role:"))
	r(put, "/roles/:role", s.v2PutRole, write(audit.CreateRole, "", "role"))
	r(del, "/roles/:role", s.v2DeleteRole, write(audit.DeleteRole, "", "role"))
	r(get, "/roles/:role/permissions", s.v2RoleGrants, read(audit.ListPermissions, "", "role"))
	r(put, "/roles/:role/permissions/:permission", s.v2PutGrant, write(audit.AddPermission, "", "role", "permission"))
	r(del, "/roles/:role/permissions/:permission", s.v2DeleteGrant, write(audit.RemovePermission, "", "role", "permission"))
	r(get, "/roles/:role/members", s.v2RoleMembers, read(audit.ListMemberships, "", "role"))
	r(put, "/roles/:role/members/:user", s.v2PutMember, write(audit.AddMembership, "user", "role"))
	r(del, "/roles/:role/members/:user", s.v2DeleteMember, write(audit.RemoveMembership, "user", "role"))
	r(get, "/roles/:role/parents", s.v2RoleParents, read(audit.ListRoles, "", "role").prefixed("parents:"))
	r(put, "/roles/:role/parents/:parent", s.v2PutParent, write(audit.AddRoleParent, "", "role", "parent"))
	r(del, "/roles/:role/parents/:parent", s.v2DeleteParent, write(audit.RemoveRoleParent, "", "role", "parent"))
	r(get, "/users/:user/roles", s.v2UserRoles, read(audit.ListMemberships, "user"))
	r(get, "/users/:user/permissions", s.v2UserPermissions, read(audit.UserPermissions, "user"))
	r(del, "/users/:user", s.v2DeleteUser, write(audit.DeleteUser, "user").fixed("memberships"))
	r(get, "/permissions/:permission/roles", s.v2PermissionRoles, read(audit.ListRoles, "", "permission"))
	r(get, "/permissions/:permission/users", s.v2PermissionUsers, read(audit.ListMemberships, "", "permission"))
}

// v2List answers one page of a list computed by list, at the consistency
// the request asks for; the page states the revision it was computed at.
func v2List[T any](c echo.Context, list func(ctx context.Context) ([]T, error), key func(T) string) error {
	p, err := parsePage(c)
	if err != nil {
		return err
	}
	ctx, rc, err := consistent(c)
	if err != nil {
		return err
	}
	items, err := list(ctx)
	if err != nil {
		return err
	}
	page := paginate(items, key, p)
	page.Revision = &rc.Revision
	answeredAt(c, rc)
	return v2JSON(c, http.StatusOK, "OK", page)
}

func mapped[A, B any](in []A, f func(A) B) []B {
	out := make([]B, 0, len(in))
	for _, a := range in {
		out = append(out, f(a))
	}
	return out
}

func v2NameOf(n string) v2Name { return v2Name{Name: n} }

func (s *Server) v2ListRoles(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2Role, error) {
		roles, err := s.deps.Policy.ListRoles(ctx, tenantOf(c))
		return mapped(roles, func(r policy.Role) v2Role { return v2Role{Name: r.Name, Description: r.Description} }), err
	}, func(r v2Role) string { return r.Name })
}

// roleBody is the body of POST /roles and PUT /roles/{role}: which fields
// were given, and the description (nil for null).
type roleBody struct {
	name, hasDesc bool
	Name          string
	Description   *string
}

// readRoleBody reads a role body: a JSON object with name (a string) and
// description (a string or null); anything else is invalid_body.
func readRoleBody(c echo.Context, allowName bool) (roleBody, error) {
	var b roleBody
	fields, names, err := readObject(c)
	if err != nil {
		return b, err
	}
	for _, k := range names {
		v := fields[k]
		switch {
		case k == "description":
			b.hasDesc = true
			if err := json.Unmarshal(v, &b.Description); err != nil {
				return b, badField(k, "description must be a string or null.")
			}
		case k == "name" && allowName:
			b.name = true
			if err := json.Unmarshal(v, &b.Name); err != nil || string(v) == "null" {
				return b, badField(k, "name must be a string.")
			}
		default:
			return b, badField(k, fmt.Sprintf("Unknown field %q.", k))
		}
	}
	return b, nil
}

// readObject reads a v2 request body that must be a JSON object: its
// fields, and their names sorted (so that of several bad fields the same
// one is always named). An empty body has no fields (nil, nil).
func readObject(c echo.Context) (map[string]json.RawMessage, []string, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, nil, v2Fail(http.StatusBadRequest, ReasonInvalidBody, "The body must be a JSON object.")
	}
	return fields, slices.Sorted(maps.Keys(fields)), nil
}

func badField(field, msg string) error {
	return v2Fail(http.StatusBadRequest, ReasonInvalidBody, msg, map[string]any{"field": field})
}

func (s *Server) v2CreateRole(c echo.Context) error {
	b, err := readRoleBody(c, true)
	if err != nil {
		return err
	}
	if !b.name {
		return badField("name", "The body must name the role: {\"name\": \"…\"}.")
	}
	created, err := s.deps.Policy.CreateRoleDescribed(c.Request().Context(), tenantOf(c), b.Name, b.Description)
	if err != nil {
		return err
	}
	if !created {
		return v2Fail(http.StatusConflict, ReasonRoleExists,
			fmt.Sprintf("Role '%s' already exists; PUT /roles/{role} creates or updates idempotently.", b.Name),
			map[string]any{"role": b.Name})
	}
	return v2JSON(c, http.StatusCreated, fmt.Sprintf("Role '%s' created.", b.Name),
		v2RoleCreated{Name: b.Name, Description: b.Description, Revision: committed(c)})
}

func (s *Server) v2GetRole(c echo.Context) error {
	ctx, rc, err := consistent(c)
	if err != nil {
		return err
	}
	info, err := s.deps.Policy.RoleInfo(ctx, tenantOf(c), param(c, "role"))
	if err != nil {
		return err
	}
	parents := info.Parents
	if parents == nil {
		parents = []string{}
	}
	answeredAt(c, rc)
	return v2JSON(c, http.StatusOK, "OK", v2RoleDetail{Name: info.Name, Description: info.Description,
		Permissions: info.Permissions, Members: info.Members, Parents: parents, Revision: rc.Revision})
}

func (s *Server) v2PutRole(c echo.Context) error {
	role := param(c, "role")
	b, err := readRoleBody(c, false)
	if err != nil {
		return err
	}
	created, desc, err := s.deps.Policy.PutRole(c.Request().Context(), tenantOf(c), role, b.hasDesc, b.Description)
	if err != nil {
		return err
	}
	return v2JSON(c, createdStatus(created), fmt.Sprintf("Role '%s' %s.", role, createdWord(created, "exists")),
		v2RolePut{Name: role, Description: desc, Created: created, Revision: committed(c)})
}

func (s *Server) v2DeleteRole(c echo.Context) error {
	role := param(c, "role")
	deleted, err := s.deps.Policy.DeleteRole(c.Request().Context(), tenantOf(c), role)
	if err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, fmt.Sprintf("Role '%s' %s.", role, deletedWord(deleted)), v2RoleDeleted{Role: role, Deleted: deleted, Revision: committed(c)})
}

func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func createdWord(created bool, otherwise string) string {
	if created {
		return "created"
	}
	return otherwise
}

func deletedWord(deleted bool) string {
	if deleted {
		return "deleted"
	}
	return "was already absent"
}

func (s *Server) v2RoleGrants(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2Grant, error) {
		l, err := s.deps.Policy.DirectGrants(ctx, tenantOf(c), param(c, "role"))
		return mapped(l, func(h policy.Held) v2Grant { return v2Grant{Name: h.Name, ExpiresAt: expiryWire(h.ExpiresAt)} }), err
	}, func(g v2Grant) string { return g.Name })
}

func (s *Server) v2RoleMembers(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2Member, error) {
		l, err := s.deps.Policy.DirectMembers(ctx, tenantOf(c), param(c, "role"))
		return mapped(l, func(h policy.Held) v2Member { return v2Member{User: h.Name, ExpiresAt: expiryWire(h.ExpiresAt)} }), err
	}, func(m v2Member) string { return m.User })
}

func (s *Server) v2RoleParents(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2Name, error) {
		l, err := s.deps.Policy.DirectParents(ctx, tenantOf(c), param(c, "role"))
		return mapped(l, v2NameOf), err
	}, func(n v2Name) string { return n.Name })
}

// v2Link answers a PUT or DELETE of a link between a role and another
// name (a permission, a member, a parent): data is {"role", <other>,
// "created"|"deleted"}.
// extra holds more fields of data (nil: none).
func v2Link(c echo.Context, other string, put bool, do func(role, name string) (bool, error), extra map[string]any) error {
	role, name := param(c, "role"), param(c, other)
	changed, err := do(role, name)
	if err != nil {
		return err
	}
	data := map[string]any{"role": role, other: name, "revision": committed(c)}
	maps.Copy(data, extra)
	label := map[string]string{"permission": "Permission", "user": "Member", "parent": "Parent"}[other]
	if put {
		data["created"] = changed
		return v2JSON(c, createdStatus(changed), fmt.Sprintf("%s '%s' of role '%s' %s.", label, name, role,
			createdWord(changed, "exists")), data)
	}
	data["deleted"] = changed
	return v2JSON(c, http.StatusOK, fmt.Sprintf("%s '%s' of role '%s' %s.", label, name, role, deletedWord(changed)), data)
}

func (s *Server) v2PutGrant(c echo.Context) error {
	until, err := readExpiry(c)
	if err != nil {
		return err
	}
	return v2Link(c, "permission", true, func(role, perm string) (bool, error) {
		return s.deps.Policy.PutGrantUntil(c.Request().Context(), tenantOf(c), role, perm, until)
	}, map[string]any{"expires_at": expiryWire(until)})
}

func (s *Server) v2DeleteGrant(c echo.Context) error {
	return v2Link(c, "permission", false, func(role, perm string) (bool, error) {
		return s.deps.Policy.DeleteGrant(c.Request().Context(), tenantOf(c), role, perm)
	}, nil)
}

func (s *Server) v2PutMember(c echo.Context) error {
	until, err := readExpiry(c)
	if err != nil {
		return err
	}
	return v2Link(c, "user", true, func(role, user string) (bool, error) {
		return s.deps.Policy.PutMemberUntil(c.Request().Context(), tenantOf(c), user, role, until)
	}, map[string]any{"expires_at": expiryWire(until)})
}

func (s *Server) v2DeleteMember(c echo.Context) error {
	return v2Link(c, "user", false, func(role, user string) (bool, error) {
		return s.deps.Policy.DeleteMember(c.Request().Context(), tenantOf(c), user, role)
	}, nil)
}

func (s *Server) v2PutParent(c echo.Context) error {
	return v2Link(c, "parent", true, func(role, parent string) (bool, error) {
		return s.deps.Policy.PutParent(c.Request().Context(), tenantOf(c), role, parent)
	}, nil)
}

func (s *Server) v2DeleteParent(c echo.Context) error {
	return v2Link(c, "parent", false, func(role, parent string) (bool, error) {
		return s.deps.Policy.DeleteParent(c.Request().Context(), tenantOf(c), role, parent)
	}, nil)
}

func (s *Server) v2UserRoles(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2UserRole, error) {
		l, err := s.deps.Policy.UserRoleTree(ctx, tenantOf(c), param(c, "user"))
		return mapped(l, func(r policy.UserRole) v2UserRole {
			return v2UserRole{Name: r.Name, Inherited: r.Inherited, Via: r.Via}
		}), err
	}, func(r v2UserRole) string { return r.Name })
}

func (s *Server) v2UserPermissions(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2NamedRoles, error) {
		l, err := s.deps.Policy.UserGrants(ctx, tenantOf(c), param(c, "user"))
		return mapped(l, func(p policy.HeldPermission) v2NamedRoles { return v2NamedRoles{Name: p.Name, Roles: p.Roles} }), err
	}, func(p v2NamedRoles) string { return p.Name })
}

func (s *Server) v2DeleteUser(c echo.Context) error {
	user := param(c, "user")
	n, err := s.deps.Policy.DeleteUser(c.Request().Context(), tenantOf(c), user)
	if err != nil {
		return err
	}
	return v2JSON(c, http.StatusOK, fmt.Sprintf("User '%s' removed from %d roles.", user, n),
		v2UserDeleted{User: user, MembershipsRemoved: n, Revision: committed(c)})
}

func (s *Server) v2PermissionRoles(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2Holding, error) {
		l, err := s.deps.Policy.PermissionRoles(ctx, tenantOf(c), param(c, "permission"))
		return mapped(l, func(r policy.RoleHolding) v2Holding { return v2Holding{Name: r.Name, Inherited: r.Inherited} }), err
	}, func(r v2Holding) string { return r.Name })
}

func (s *Server) v2PermissionUsers(c echo.Context) error {
	return v2List(c, func(ctx context.Context) ([]v2UserRoles, error) {
		l, err := s.deps.Policy.WhichUsersCan(ctx, tenantOf(c), param(c, "permission"))
		by := map[string][]string{}
		for _, m := range l {
			by[m.User] = append(by[m.User], m.Role)
		}
		out := make([]v2UserRoles, 0, len(by))
		for u, roles := range by {
			sort.Strings(roles)
			out = append(out, v2UserRoles{User: u, Roles: roles})
		}
		return out, err
	}, func(u v2UserRoles) string { return u.User })
}
