package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Role is a role of the tenant.
type Role struct {
	// Name is the role's name.
	Name string
	// Description is the role's description ("" when it has none).
	Description string
}

// Membership says that User is a member of Role.
type Membership struct {
	// User is the member's name.
	User string `json:"user"`
	// Role is the role's name.
	Role string `json:"role"`
}

// AuditQuery selects records of the tenant's audit trail. Zero fields do
// not filter.
type AuditQuery struct {
	// Limit is the page size, 1–500 (the service's default is 50).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
	// Action keeps records of one action, such as "CHECK_PERMISSION".
	Action string
	// Since and Until bound the records' times.
	Since, Until time.Time
	// User keeps records about one user (given by name).
	User string
}

// AuditPage is one page of the tenant's audit trail, newest record first.
type AuditPage struct {
	// Entries are the records, newest first.
	Entries []AuditEntry
	// Limit is the page size that was applied.
	Limit int
	// NextCursor fetches the next (older) page; "" on the last page.
	NextCursor string
}

// AuditEntry is one record of the audit trail. The service shows users
// only as keyed fingerprints ("u_…").
type AuditEntry struct {
	// Seq is the record's number in the tenant's chain.
	Seq int64 `json:"seq"`
	// Action is what was done, such as "CREATE_ROLE" or "CHECK_PERMISSION".
	Action string `json:"action"`
	// Resource is what it was done to, such as "admin" or "u_…:read".
	Resource string `json:"resource"`
	// Success is false for refused or failed requests.
	Success bool `json:"success"`
	// Timestamp is when it was done.
	Timestamp time.Time `json:"-"`
	// User is the fingerprint of the user concerned ("" when none).
	User string `json:"-"`
	// Details holds the result or the status code and reason.
	Details map[string]any `json:"details"`
	// IPAddress, RequestID and UserAgent describe the request.
	IPAddress string `json:"ip_address"`
	RequestID string `json:"request_id"`
	UserAgent string `json:"user_agent"`
}

// Wire shapes of the answers.
type (
	bare[T any] struct {
		Result *T `json:"result"`
	}
	envelope[T any] struct {
		Data *T `json:"data"`
	}
	checkData struct {
		HasPermission *bool `json:"has_permission"`
	}
	nameItem struct {
		Name string `json:"name"`
	}
	roleItem struct {
		Description *string `json:"description"`
		Role        string  `json:"role"`
	}
	parentItem struct {
		Parent string `json:"parent"`
	}
	permissionsData struct {
		Permissions *[]nameItem `json:"permissions"`
	}
	membersData struct {
		Members *[]Membership `json:"members"`
	}
	auditData struct {
		Entries *[]struct {
			AuditEntry
			Timestamp string  `json:"timestamp"`
			User      *string `json:"user"`
		} `json:"entries"`
		Limit      int     `json:"limit"`
		NextCursor *string `json:"next_cursor"`
	}
)

// errEmptyName is returned, without any request, for an empty path value.
var errEmptyName = errors.New("auth: empty name")

// apiPath fills the {} of route (a path under /api) with the path-escaped
// values. Empty values are refused: they would address another route.
func apiPath(route string, values ...string) (string, error) {
	var b strings.Builder
	b.WriteString("/api/")
	for _, v := range values {
		before, after, ok := strings.Cut(route, "{}")
		if !ok {
			panic("auth: apiPath: more values than placeholders in " + route)
		}
		if v == "" {
			return "", errEmptyName
		}
		b.WriteString(before)
		b.WriteString(escape(v))
		route = after
	}
	b.WriteString(route)
	return b.String(), nil
}

// escape escapes a path value so that it stays one segment: "/" and "%"
// are escaped, and so are the dots of "." and "..", which proxies and
// routers would otherwise resolve.
func escape(v string) string {
	if v == "." || v == ".." {
		return strings.ReplaceAll(v, ".", "%2E")
	}
	return url.PathEscape(v)
}

func shapeError(method, path, field string) error {
	return fmt.Errorf("auth: %s %s: unexpected answer: no %q field", method, path, field)
}

// result calls a route that answers {"result": T}.
func result[T any](ctx context.Context, c *Client, method, route string, values ...string) (T, error) {
	var zero T
	path, err := apiPath(route, values...)
	if err != nil {
		return zero, err
	}
	var b bare[T]
	if err := c.do(ctx, method, path, &b); err != nil {
		return zero, err
	}
	if b.Result == nil {
		return zero, shapeError(method, path, "result")
	}
	return *b.Result, nil
}

// data calls a route that answers with the envelope {"data": T, …}.
func data[T any](ctx context.Context, c *Client, method, path string) (T, error) {
	var zero T
	var e envelope[T]
	if err := c.do(ctx, method, path, &e); err != nil {
		return zero, err
	}
	if e.Data == nil {
		return zero, shapeError(method, path, "data")
	}
	return *e.Data, nil
}

// check calls a route that answers {"data": {"has_permission": bool}}.
func (c *Client) check(ctx context.Context, route string, values ...string) (bool, error) {
	path, err := apiPath(route, values...)
	if err != nil {
		return false, err
	}
	d, err := data[checkData](ctx, c, http.MethodGet, path)
	if err != nil {
		return false, err
	}
	if d.HasPermission == nil {
		return false, shapeError(http.MethodGet, path, "has_permission")
	}
	return *d.HasPermission, nil
}

// Ping calls GET /ping, which needs no credential, and checks that the
// answer is PONG.
func (c *Client) Ping(ctx context.Context) error {
	var b struct {
		Message string `json:"message"`
	}
	if err := c.do(ctx, http.MethodGet, "/ping", &b); err != nil {
		return err
	}
	if b.Message != "PONG" {
		return fmt.Errorf("auth: GET /ping: unexpected answer %q", b.Message)
	}
	return nil
}

// Health calls GET /health: nil when the process serves requests.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/health", nil)
}

// Ready calls GET /ready: nil when the service can serve (its database
// answers and its schema is current); an *APIError of 503 otherwise.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/ready", nil)
}

// CreateRole creates role (POST /api/role/{role}). It reports true, also
// when the role already existed.
func (c *Client) CreateRole(ctx context.Context, role string) (bool, error) {
	return result[bool](ctx, c, http.MethodPost, "role/{}", role)
}

// DeleteRole deletes role with its grants, memberships and inheritance
// links (DELETE /api/role/{role}). It reports false when there was no such
// role (also when a retried request had deleted it already).
func (c *Client) DeleteRole(ctx context.Context, role string) (bool, error) {
	path, err := apiPath("role/{}", role)
	if err != nil {
		return false, err
	}
	d, err := data[bare[bool]](ctx, c, http.MethodDelete, path)
	if err != nil {
		return false, err
	}
	if d.Result == nil {
		return false, shapeError(http.MethodDelete, path, "result")
	}
	return *d.Result, nil
}

// ListRoles lists the tenant's roles in creation order (GET /api/roles).
func (c *Client) ListRoles(ctx context.Context) ([]Role, error) {
	items, err := result[[]roleItem](ctx, c, http.MethodGet, "roles")
	if err != nil {
		return nil, err
	}
	out := make([]Role, 0, len(items))
	for _, it := range items {
		r := Role{Name: it.Role}
		if it.Description != nil {
			r.Description = *it.Description
		}
		out = append(out, r)
	}
	return out, nil
}

// AddPermission grants perm to role (POST /api/permission/{role}/{perm}).
// It reports false when the role does not exist.
func (c *Client) AddPermission(ctx context.Context, role, perm string) (bool, error) {
	return result[bool](ctx, c, http.MethodPost, "permission/{}/{}", role, perm)
}

// RemovePermission revokes perm from role (DELETE
// /api/permission/{role}/{perm}); it reports true whether or not the grant
// existed.
func (c *Client) RemovePermission(ctx context.Context, role, perm string) (bool, error) {
	return result[bool](ctx, c, http.MethodDelete, "permission/{}/{}", role, perm)
}

// RoleHasPermission reports whether role holds perm (GET
// /api/permission/{role}/{perm}).
func (c *Client) RoleHasPermission(ctx context.Context, role, perm string) (bool, error) {
	return result[bool](ctx, c, http.MethodGet, "permission/{}/{}", role, perm)
}

// AddMembership makes user a member of role (POST
// /api/membership/{user}/{role}). It reports false when the role does not
// exist.
func (c *Client) AddMembership(ctx context.Context, user, role string) (bool, error) {
	return result[bool](ctx, c, http.MethodPost, "membership/{}/{}", user, role)
}

// RemoveMembership removes user from role (DELETE
// /api/membership/{user}/{role}); it reports true whether or not the user
// was a member.
func (c *Client) RemoveMembership(ctx context.Context, user, role string) (bool, error) {
	return result[bool](ctx, c, http.MethodDelete, "membership/{}/{}", user, role)
}

// HasMembership reports whether user is a direct member of role (GET
// /api/membership/{user}/{role}).
func (c *Client) HasMembership(ctx context.Context, user, role string) (bool, error) {
	return c.check(ctx, "membership/{}/{}", user, role)
}

// HasPermission reports whether user holds perm through any of their roles
// (GET /api/has_permission/{user}/{perm}). A non-nil error means that no
// decision was made: fail closed, and never read it as a denial.
func (c *Client) HasPermission(ctx context.Context, user, perm string) (bool, error) {
	return c.check(ctx, "has_permission/{}/{}", user, perm)
}

// UserPermissions lists the permissions user holds (GET
// /api/user_permissions/{user}), one entry per role that grants it, so a
// permission granted by two of the user's roles appears twice.
func (c *Client) UserPermissions(ctx context.Context, user string) ([]string, error) {
	path, err := apiPath("user_permissions/{}", user)
	if err != nil {
		return nil, err
	}
	d, err := data[permissionsData](ctx, c, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if d.Permissions == nil {
		return nil, shapeError(http.MethodGet, path, "permissions")
	}
	return namesOf(*d.Permissions), nil
}

// RolePermissions lists the permissions granted to role (GET
// /api/role_permissions/{role}).
func (c *Client) RolePermissions(ctx context.Context, role string) ([]string, error) {
	path, err := apiPath("role_permissions/{}", role)
	if err != nil {
		return nil, err
	}
	items, err := data[[]nameItem](ctx, c, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	return namesOf(items), nil
}

func namesOf(items []nameItem) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

// UserRoles lists the roles user is a direct member of (GET
// /api/user_roles/{user}).
func (c *Client) UserRoles(ctx context.Context, user string) ([]string, error) {
	list, err := result[[]Membership](ctx, c, http.MethodGet, "user_roles/{}", user)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		out = append(out, m.Role)
	}
	return out, nil
}

// RoleMembers lists the direct members of role (GET /api/members/{role}).
func (c *Client) RoleMembers(ctx context.Context, role string) ([]string, error) {
	list, err := result[[]Membership](ctx, c, http.MethodGet, "members/{}", role)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		out = append(out, m.User)
	}
	return out, nil
}

// WhichRolesCan lists the roles that hold perm (GET
// /api/which_roles_can/{perm}).
func (c *Client) WhichRolesCan(ctx context.Context, perm string) ([]string, error) {
	list, err := result[[]struct {
		Role string `json:"role"`
	}](ctx, c, http.MethodGet, "which_roles_can/{}", perm)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, r := range list {
		out = append(out, r.Role)
	}
	return out, nil
}

// WhichUsersCan lists the users who hold perm, one entry per (role, member)
// pair through which they hold it (GET /api/which_users_can/{perm}).
func (c *Client) WhichUsersCan(ctx context.Context, perm string) ([]Membership, error) {
	return result[[]Membership](ctx, c, http.MethodGet, "which_users_can/{}", perm)
}

// WorkflowUsers lists the users who may run workflow, one entry per (role,
// member) pair (GET /api/workflow/users/{workflow}).
func (c *Client) WorkflowUsers(ctx context.Context, workflow string) ([]Membership, error) {
	path, err := apiPath("workflow/users/{}", workflow)
	if err != nil {
		return nil, err
	}
	d, err := data[membersData](ctx, c, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if d.Members == nil {
		return nil, shapeError(http.MethodGet, path, "members")
	}
	return *d.Members, nil
}

// CanRunWorkflow reports whether user may run workflow (GET
// /api/workflow/user/{user}/can_run/{workflow}). As with HasPermission, a
// non-nil error is not a denial.
func (c *Client) CanRunWorkflow(ctx context.Context, user, workflow string) (bool, error) {
	return c.check(ctx, "workflow/user/{}/can_run/{}", user, workflow)
}

// RoleParents lists the roles that role directly inherits from (GET
// /api/role/{role}/parents).
func (c *Client) RoleParents(ctx context.Context, role string) ([]string, error) {
	list, err := result[[]parentItem](ctx, c, http.MethodGet, "role/{}/parents", role)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, p := range list {
		out = append(out, p.Parent)
	}
	return out, nil
}

// AddRoleParent makes role inherit every permission of parent (POST
// /api/role/{role}/parents/{parent}). A cycle or a chain deeper than the
// service allows is an *APIError of 400.
func (c *Client) AddRoleParent(ctx context.Context, role, parent string) (bool, error) {
	return result[bool](ctx, c, http.MethodPost, "role/{}/parents/{}", role, parent)
}

// RemoveRoleParent ends role's inheritance from parent (DELETE
// /api/role/{role}/parents/{parent}).
func (c *Client) RemoveRoleParent(ctx context.Context, role, parent string) (bool, error) {
	return result[bool](ctx, c, http.MethodDelete, "role/{}/parents/{}", role, parent)
}

// Audit reads one page of the tenant's own audit trail, newest record
// first (GET /api/audit).
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.User != "" {
		v.Set("user", q.User)
	}
	path := "/api/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	d, err := data[auditData](ctx, c, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if d.Entries == nil {
		return nil, shapeError(http.MethodGet, path, "entries")
	}
	page := &AuditPage{Limit: d.Limit, Entries: make([]AuditEntry, 0, len(*d.Entries))}
	if d.NextCursor != nil {
		page.NextCursor = *d.NextCursor
	}
	for _, w := range *d.Entries {
		e := w.AuditEntry
		t, err := time.Parse(time.RFC3339Nano, w.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("auth: GET %s: record %d: timestamp: %w", path, e.Seq, err)
		}
		e.Timestamp = t
		if w.User != nil {
			e.User = *w.User
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}
