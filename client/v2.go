package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// Reasons of API v2 errors (APIError.Reason), as the service sends them in
// details.reason. Branch on these, never on messages.
const (
	ReasonBadRequest           = "bad_request"
	ReasonInvalidName          = "invalid_name"
	ReasonInvalidParameter     = "invalid_parameter"
	ReasonInvalidCursor        = "invalid_cursor"
	ReasonInvalidBody          = "invalid_body"
	ReasonBatchTooLarge        = "batch_too_large"
	ReasonInvalidPolicy        = "invalid_policy"
	ReasonUnauthenticated      = "unauthenticated"
	ReasonForbidden            = "forbidden"
	ReasonNotFound             = "not_found"
	ReasonRoleNotFound         = "role_not_found"
	ReasonMethodNotAllowed     = "method_not_allowed"
	ReasonRoleExists           = "role_exists"
	ReasonRoleCycle            = "role_cycle"
	ReasonRoleDepth            = "role_depth"
	ReasonKeyRotated           = "key_rotated"
	ReasonConflict             = "conflict"
	ReasonBodyTooLarge         = "body_too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonRateLimited          = "rate_limited"
	ReasonAuditChainMissing    = "audit_chain_missing"
	ReasonInternal             = "internal"
	ReasonUnavailable          = "unavailable"
)

// MaxBatch is the most pairs the service checks in one POST /api/v2/check;
// CheckBatch sends a longer batch as several requests of at most MaxBatch
// pairs.
const MaxBatch = 1000

// V2 calls API v2 (/api/v2) of the service. It shares its Client's
// connections, retries and circuit breaker; get one with Client.V2.
//
// Lists are iterators that fetch one page at a time: the first page when
// the iteration starts, the next one only when the iteration goes past the
// last item of the current page. An error ends the iteration: it is yielded
// once, with a zero item.
//
// A V2 is a view: WithPageSize, WithConsistency and WithSessionConsistency
// return a changed copy, cheap enough to make for a single call.
type V2 struct {
	c           *Client
	limit       int
	consistency Consistency
	session     bool
}

// V2 returns the API v2 client of c.
func (c *Client) V2() *V2 { return &V2{c: c} }

// WithPageSize returns a copy of v whose lists fetch n items per request
// (1–1000; 0, the default, lets the service choose: 100).
func (v *V2) WithPageSize(n int) *V2 {
	cp := *v
	cp.limit = n
	return &cp
}

// RoleSummary is a role of a list: its name and description.
type RoleSummary struct {
	// Name is the role's name.
	Name string `json:"name"`
	// Description is the role's description ("" when it has none).
	Description string `json:"-"`
}

// RoleDetail is one role with its counts (GET /api/v2/roles/{role}).
type RoleDetail struct {
	// Name is the role's name.
	Name string
	// Description is the role's description ("" when it has none).
	Description string
	// Permissions and Members count its direct grants and members.
	Permissions, Members int
	// Parents are the roles it inherits from directly.
	Parents []string
	// Revision is the revision of the tenant's policy the answer was
	// computed at (0 when the service does not say).
	Revision int64
}

// UserRole is a role of a user.
type UserRole struct {
	// Name is the role's name.
	Name string `json:"name"`
	// Inherited is true for a role the user holds through another role.
	Inherited bool `json:"inherited"`
	// Via is, for an inherited role, the direct role of the user it is
	// inherited through ("" for a direct role).
	Via string `json:"via"`
}

// UserPermission is an effective permission of a user.
type UserPermission struct {
	// Name is the permission.
	Name string `json:"name"`
	// Roles are the user's roles (direct or inherited) that hold it.
	Roles []string `json:"roles"`
}

// PermissionRole is a role that grants a permission.
type PermissionRole struct {
	// Name is the role's name.
	Name string `json:"name"`
	// Inherited is true when the role holds it through a parent.
	Inherited bool `json:"inherited"`
}

// PermissionUser is a user who holds a permission.
type PermissionUser struct {
	// User is the user's name.
	User string `json:"user"`
	// Roles are the user's direct memberships through which they hold it.
	Roles []string `json:"roles"`
}

// Pair is one question of a batch check.
type Pair struct {
	// User and Permission are what is asked.
	User       string `json:"user"`
	Permission string `json:"permission"`
}

// Result is the answer to one Pair.
type Result struct {
	// User and Permission repeat the question.
	User       string `json:"user"`
	Permission string `json:"permission"`
	// Allowed is the decision.
	Allowed bool `json:"allowed"`
}

// Step is one step of an explanation's path.
type Step struct {
	// Type is "user", "role" or "permission".
	Type string `json:"type"`
	// Name is the user's, role's or permission's name.
	Name string `json:"name"`
}

// Explanation is a decision with the reason for it.
type Explanation struct {
	// Allowed is the decision.
	Allowed bool
	// Path goes from the user through the direct role and each inherited
	// role to the permission as granted; nil when denied.
	Path []Step
	// Rule is the matched Casbin policy rule (its p fields); nil when
	// denied.
	Rule []string
	// Revision is the revision of the tenant's policy the decision was
	// computed at (0 when the service does not say).
	Revision int64
}

// PolicyExport is the tenant's policy as Casbin CSV.
type PolicyExport struct {
	// Format is "casbin-csv".
	Format string `json:"format"`
	// Policy is the CSV text.
	Policy string `json:"policy"`
	// Roles and Rules count the roles and the policy lines.
	Roles int `json:"roles"`
	Rules int `json:"rules"`
	// Version is the tenant's policy version.
	Version int64 `json:"version"`
	// Revision is the revision the export was taken at (0 when the service
	// does not say): a change-feed consumer resynchronising from the export
	// follows on from it (V2.FollowChanges).
	Revision int64 `json:"revision"`
}

// ImportOptions say how ImportPolicy applies a policy.
type ImportOptions struct {
	// Merge adds the file's rules to the policy instead of replacing it.
	Merge bool
	// DryRun only reports what the import would change.
	DryRun bool
}

// ImportResult is what an import changed (or would change, for a dry run).
type ImportResult struct {
	// Mode is "replace" or "merge".
	Mode string `json:"mode"`
	// DryRun is true when nothing was changed.
	DryRun bool `json:"dry_run"`
	// The counts of what was created, deleted, added and removed.
	RolesCreated int `json:"roles_created"`
	RolesDeleted int `json:"roles_deleted"`
	RulesAdded   int `json:"rules_added"`
	RulesRemoved int `json:"rules_removed"`
	// Version is the policy version after the import.
	Version int64 `json:"version"`
	// Revision is the revision the import committed (0 for a dry run, or
	// when the service does not say).
	Revision int64 `json:"revision"`
}

// v2Path fills the {} of route (a path under /api/v2) with the escaped
// values; empty values are refused.
func v2Path(route string, values ...string) (string, error) {
	return apiPath("v2/"+route, values...)
}

// v2Call sends r and decodes data of the envelope into a T; a 2xx answer
// without data is an error.
func v2Call[T any](ctx context.Context, v *V2, r request) (T, error) {
	var zero T
	var e envelope[T]
	if err := v.c.send(ctx, r, &e); err != nil {
		return zero, err
	}
	if e.Data == nil {
		return zero, shapeError(r.method, r.path, "data")
	}
	return *e.Data, nil
}

// req is a v2 request: GET, PUT and DELETE are retried, POST is not (the
// batch check builds its own request, which is).
func (v *V2) req(method, path string, body []byte) request {
	return request{method: method, path: path, body: body, retry: idempotent(method)}
}

// flag calls a PUT or DELETE route and reads the bool field name of data.
func (v *V2) flag(ctx context.Context, method, field, route string, values ...string) (bool, error) {
	path, err := v2Path(route, values...)
	if err != nil {
		return false, err
	}
	d, err := v2Call[map[string]json.RawMessage](ctx, v, v.req(method, path, nil))
	if err != nil {
		return false, err
	}
	var b bool
	if raw, ok := d[field]; !ok || json.Unmarshal(raw, &b) != nil {
		return false, shapeError(method, path, field)
	}
	return b, nil
}

// list iterates over a paginated route, fetching a page only when the
// iteration reaches it. It sends no consistency: see readList.
func list[T any](ctx context.Context, v *V2, route string, values ...string) iter.Seq2[T, error] {
	return pages[T](ctx, v, false, route, values...)
}

// readList is list for a route that accepts a consistency (those under
// roles, users and permissions): it sends v's.
func readList[T any](ctx context.Context, v *V2, route string, values ...string) iter.Seq2[T, error] {
	return pages[T](ctx, v, true, route, values...)
}

// pages iterates over a paginated route; with consistent it sends v's
// consistency with each page.
func pages[T any](ctx context.Context, v *V2, consistent bool, route string, values ...string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		path, err := v2Path(route, values...)
		if err != nil {
			yield(zero, err)
			return
		}
		cursor := ""
		for {
			q := url.Values{}
			if v.limit != 0 {
				q.Set("limit", strconv.Itoa(v.limit))
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if consistent {
				v.setConsistency(q)
			}
			p := path
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			page, err := v2Call[struct {
				Items      *[]T    `json:"items"`
				NextCursor *string `json:"next_cursor"`
			}](ctx, v, v.req(http.MethodGet, p, nil))
			if err == nil && page.Items == nil {
				err = shapeError(http.MethodGet, p, "items")
			}
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range *page.Items {
				if !yield(it, nil) {
					return
				}
			}
			if page.NextCursor == nil || *page.NextCursor == "" {
				return
			}
			if *page.NextCursor == cursor {
				yield(zero, fmt.Errorf("auth: GET %s: next_cursor repeats the cursor", p))
				return
			}
			cursor = *page.NextCursor
		}
	}
}

// names maps an iterator of {"name"} items to the names.
func names(seq iter.Seq2[nameItem, error]) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for it, err := range seq {
			if !yield(it.Name, err) {
				return
			}
		}
	}
}

// Check reports whether user holds perm (GET /api/v2/check). A non-nil
// error means that no decision was made: fail closed, and never read it as
// a denial.
func (v *V2) Check(ctx context.Context, user, perm string) (bool, error) {
	d, err := v.check(ctx, user, perm, false)
	return d.Allowed, err
}

// Explain reports whether user holds perm and, when they do, the path that
// grants it (GET /api/v2/check?explain=true).
func (v *V2) Explain(ctx context.Context, user, perm string) (Explanation, error) {
	return v.check(ctx, user, perm, true)
}

func (v *V2) check(ctx context.Context, user, perm string, explain bool) (Explanation, error) {
	if user == "" || perm == "" {
		return Explanation{}, errEmptyName
	}
	q := url.Values{"user": {user}, "permission": {perm}}
	if explain {
		q.Set("explain", "true")
	}
	v.setConsistency(q)
	path := "/api/v2/check?" + q.Encode()
	var meta answerMeta
	r := v.req(http.MethodGet, path, nil)
	r.meta = &meta
	d, err := v2Call[struct {
		Allowed     *bool `json:"allowed"`
		Explanation *struct {
			Path []Step   `json:"path"`
			Rule []string `json:"rule"`
		} `json:"explanation"`
		Revision *int64 `json:"revision"`
	}](ctx, v, r)
	if err != nil {
		return Explanation{}, err
	}
	if d.Allowed == nil {
		return Explanation{}, shapeError(http.MethodGet, path, "allowed")
	}
	out := Explanation{Allowed: *d.Allowed, Revision: revisionOf(d.Revision, meta)}
	if explain {
		if d.Explanation == nil {
			return Explanation{}, shapeError(http.MethodGet, path, "explanation")
		}
		out.Path, out.Rule = d.Explanation.Path, d.Explanation.Rule
	}
	return out, nil
}

// CheckBatch checks every pair (POST /api/v2/check) and returns the results
// in the order of pairs. More than MaxBatch pairs are sent as several
// requests, one after the other, of MaxBatch pairs at most: each request is
// decided on its own, so a policy change between two of them shows in the
// later ones only. Any failure fails the whole call (no partial results).
//
// The batch check only reads, so it is retried like a GET, although it is
// sent as POST (each attempt that reaches the service is recorded in the
// audit trail, as for a retried GET /api/v2/check). No pairs: no request.
func (v *V2) CheckBatch(ctx context.Context, pairs []Pair) ([]Result, error) {
	b, err := v.CheckBatchRevision(ctx, pairs)
	return b.Results, err
}

// CheckBatchRevision is CheckBatch that also says the revision the results
// were computed at: the lowest of its requests' (every result was computed
// at a state at or after it); 0 for no pairs, or when the service does not
// say.
func (v *V2) CheckBatchRevision(ctx context.Context, pairs []Pair) (BatchResult, error) {
	for _, p := range pairs {
		if p.User == "" || p.Permission == "" {
			return BatchResult{}, errEmptyName
		}
	}
	out := make([]Result, 0, len(pairs))
	var rev int64
	path := "/api/v2/check"
	if q := v.consistencyQuery(); q != "" {
		path += "?" + q
	}
	for start := 0; start < len(pairs); start += MaxBatch {
		chunk := pairs[start:min(start+MaxBatch, len(pairs))]
		body, err := json.Marshal(struct {
			Checks []Pair `json:"checks"`
		}{chunk})
		if err != nil {
			return BatchResult{}, err
		}
		var meta answerMeta
		r := request{method: http.MethodPost, path: path, body: body, retry: true, read: true, meta: &meta}
		d, err := v2Call[struct {
			Results  *[]Result `json:"results"`
			Revision *int64    `json:"revision"`
		}](ctx, v, r)
		if err != nil {
			return BatchResult{}, err
		}
		if d.Results == nil {
			return BatchResult{}, shapeError(r.method, r.path, "results")
		}
		if len(*d.Results) != len(chunk) {
			return BatchResult{}, fmt.Errorf("auth: POST %s: %d results for %d checks", r.path, len(*d.Results), len(chunk))
		}
		for i, res := range *d.Results {
			if res.User != chunk[i].User || res.Permission != chunk[i].Permission {
				return BatchResult{}, fmt.Errorf("auth: POST %s: result %d is for (%q, %q), not (%q, %q)",
					r.path, start+i, res.User, res.Permission, chunk[i].User, chunk[i].Permission)
			}
		}
		out = append(out, *d.Results...)
		if n := revisionOf(d.Revision, meta); start == 0 || n < rev {
			rev = n
		}
	}
	return BatchResult{Results: out, Revision: rev}, nil
}

// roleWire is a role as v2 sends it.
type roleWire struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

func (w roleWire) summary() RoleSummary {
	r := RoleSummary{Name: w.Name}
	if w.Description != nil {
		r.Description = *w.Description
	}
	return r
}

// Roles iterates over the tenant's roles, sorted by name (GET
// /api/v2/roles).
func (v *V2) Roles(ctx context.Context) iter.Seq2[RoleSummary, error] {
	return func(yield func(RoleSummary, error) bool) {
		for w, err := range readList[roleWire](ctx, v, "roles") {
			if !yield(w.summary(), err) {
				return
			}
		}
	}
}

// CreateRole creates role with description ("" for none) (POST
// /api/v2/roles). A role that exists already is an *APIError of 409 with
// Reason ReasonRoleExists; PutRole is the idempotent form. It is never
// retried.
func (v *V2) CreateRole(ctx context.Context, role, description string) (RoleSummary, error) {
	if role == "" {
		return RoleSummary{}, errEmptyName
	}
	b := struct {
		Name        string  `json:"name"`
		Description *string `json:"description,omitempty"`
	}{Name: role}
	if description != "" {
		b.Description = &description
	}
	body, err := json.Marshal(b)
	if err != nil {
		return RoleSummary{}, err
	}
	w, err := v2Call[roleWire](ctx, v, v.req(http.MethodPost, "/api/v2/roles", body))
	if err != nil {
		return RoleSummary{}, err
	}
	return w.summary(), nil
}

// PutRole creates role, or keeps it when it exists (PUT
// /api/v2/roles/{role}), and reports whether it was created. A nil
// description leaves the description as it is; a non-nil one replaces it,
// and a pointer to "" clears it (sent as null).
func (v *V2) PutRole(ctx context.Context, role string, description *string) (bool, error) {
	path, err := v2Path("roles/{}", role)
	if err != nil {
		return false, err
	}
	var body []byte
	if description != nil {
		var d *string
		if *description != "" {
			d = description
		}
		if body, err = json.Marshal(struct {
			Description *string `json:"description"`
		}{d}); err != nil {
			return false, err
		}
	}
	d, err := v2Call[struct {
		Created *bool `json:"created"`
	}](ctx, v, v.req(http.MethodPut, path, body))
	if err != nil {
		return false, err
	}
	if d.Created == nil {
		return false, shapeError(http.MethodPut, path, "created")
	}
	return *d.Created, nil
}

// GetRole describes role (GET /api/v2/roles/{role}). A missing role is an
// *APIError of 404 with Reason ReasonRoleNotFound.
func (v *V2) GetRole(ctx context.Context, role string) (RoleDetail, error) {
	path, err := v2Path("roles/{}", role)
	if err != nil {
		return RoleDetail{}, err
	}
	if q := v.consistencyQuery(); q != "" {
		path += "?" + q
	}
	var meta answerMeta
	r := v.req(http.MethodGet, path, nil)
	r.meta = &meta
	d, err := v2Call[struct {
		roleWire
		Permissions int      `json:"permissions"`
		Members     int      `json:"members"`
		Parents     []string `json:"parents"`
		Revision    *int64   `json:"revision"`
	}](ctx, v, r)
	if err != nil {
		return RoleDetail{}, err
	}
	s := d.summary()
	return RoleDetail{
		Name: s.Name, Description: s.Description, Permissions: d.Permissions,
		Members: d.Members, Parents: append([]string{}, d.Parents...), Revision: revisionOf(d.Revision, meta),
	}, nil
}

// DeleteRole deletes role with its grants, memberships and inheritance
// links (DELETE /api/v2/roles/{role}), and reports whether it existed.
func (v *V2) DeleteRole(ctx context.Context, role string) (bool, error) {
	return v.flag(ctx, http.MethodDelete, "deleted", "roles/{}", role)
}

// Permissions iterates over role's direct grants, sorted (GET
// /api/v2/roles/{role}/permissions).
func (v *V2) Permissions(ctx context.Context, role string) iter.Seq2[string, error] {
	return names(readList[nameItem](ctx, v, "roles/{}/permissions", role))
}

// PutPermission grants perm to role (PUT
// /api/v2/roles/{role}/permissions/{perm}) and reports whether the grant is
// new.
func (v *V2) PutPermission(ctx context.Context, role, perm string) (bool, error) {
	return v.flag(ctx, http.MethodPut, "created", "roles/{}/permissions/{}", role, perm)
}

// DeletePermission revokes perm from role (DELETE
// /api/v2/roles/{role}/permissions/{perm}) and reports whether it was
// granted.
func (v *V2) DeletePermission(ctx context.Context, role, perm string) (bool, error) {
	return v.flag(ctx, http.MethodDelete, "deleted", "roles/{}/permissions/{}", role, perm)
}

// Members iterates over role's direct members, sorted (GET
// /api/v2/roles/{role}/members).
func (v *V2) Members(ctx context.Context, role string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for it, err := range readList[struct {
			User string `json:"user"`
		}](ctx, v, "roles/{}/members", role) {
			if !yield(it.User, err) {
				return
			}
		}
	}
}

// PutMember makes user a member of role (PUT
// /api/v2/roles/{role}/members/{user}) and reports whether the membership
// is new.
func (v *V2) PutMember(ctx context.Context, role, user string) (bool, error) {
	return v.flag(ctx, http.MethodPut, "created", "roles/{}/members/{}", role, user)
}

// DeleteMember removes user from role (DELETE
// /api/v2/roles/{role}/members/{user}) and reports whether they were a
// member.
func (v *V2) DeleteMember(ctx context.Context, role, user string) (bool, error) {
	return v.flag(ctx, http.MethodDelete, "deleted", "roles/{}/members/{}", role, user)
}

// Parents iterates over the roles role inherits from directly, sorted (GET
// /api/v2/roles/{role}/parents).
func (v *V2) Parents(ctx context.Context, role string) iter.Seq2[string, error] {
	return names(readList[nameItem](ctx, v, "roles/{}/parents", role))
}

// PutParent makes role inherit from parent (PUT
// /api/v2/roles/{role}/parents/{parent}) and reports whether the link is
// new. A cycle is an *APIError of 409 with Reason ReasonRoleCycle, a chain
// too deep one with ReasonRoleDepth.
func (v *V2) PutParent(ctx context.Context, role, parent string) (bool, error) {
	return v.flag(ctx, http.MethodPut, "created", "roles/{}/parents/{}", role, parent)
}

// DeleteParent ends role's inheritance from parent (DELETE
// /api/v2/roles/{role}/parents/{parent}) and reports whether it existed.
func (v *V2) DeleteParent(ctx context.Context, role, parent string) (bool, error) {
	return v.flag(ctx, http.MethodDelete, "deleted", "roles/{}/parents/{}", role, parent)
}

// UserRoles iterates over user's roles, direct and inherited, sorted by
// name (GET /api/v2/users/{user}/roles).
func (v *V2) UserRoles(ctx context.Context, user string) iter.Seq2[UserRole, error] {
	return readList[UserRole](ctx, v, "users/{}/roles", user)
}

// UserPermissions iterates over user's effective permissions, each once
// with the roles that hold it, sorted (GET /api/v2/users/{user}/permissions).
func (v *V2) UserPermissions(ctx context.Context, user string) iter.Seq2[UserPermission, error] {
	return readList[UserPermission](ctx, v, "users/{}/permissions", user)
}

// DeleteUser removes user from every role in one change (DELETE
// /api/v2/users/{user}) and reports how many memberships were removed.
func (v *V2) DeleteUser(ctx context.Context, user string) (int, error) {
	path, err := v2Path("users/{}", user)
	if err != nil {
		return 0, err
	}
	d, err := v2Call[struct {
		Removed *int `json:"memberships_removed"`
	}](ctx, v, v.req(http.MethodDelete, path, nil))
	if err != nil {
		return 0, err
	}
	if d.Removed == nil {
		return 0, shapeError(http.MethodDelete, path, "memberships_removed")
	}
	return *d.Removed, nil
}

// PermissionRoles iterates over the roles that grant perm, directly or
// through a parent, sorted (GET /api/v2/permissions/{perm}/roles).
func (v *V2) PermissionRoles(ctx context.Context, perm string) iter.Seq2[PermissionRole, error] {
	return readList[PermissionRole](ctx, v, "permissions/{}/roles", perm)
}

// PermissionUsers iterates over the users who hold perm, each once with
// the roles through which, sorted (GET /api/v2/permissions/{perm}/users).
func (v *V2) PermissionUsers(ctx context.Context, perm string) iter.Seq2[PermissionUser, error] {
	return readList[PermissionUser](ctx, v, "permissions/{}/users", perm)
}

// ExportPolicy returns the tenant's policy as Casbin CSV (GET
// /api/v2/policy/export).
func (v *V2) ExportPolicy(ctx context.Context) (PolicyExport, error) {
	path := "/api/v2/policy/export"
	if q := v.consistencyQuery(); q != "" {
		path += "?" + q
	}
	var meta answerMeta
	r := v.req(http.MethodGet, path, nil)
	r.meta = &meta
	d, err := v2Call[PolicyExport](ctx, v, r)
	if err == nil && d.Format == "" {
		err = shapeError(http.MethodGet, path, "format")
	}
	if err == nil && d.Revision == 0 {
		d.Revision = meta.revision
	}
	return d, err
}

// ImportPolicy applies a Casbin CSV policy (POST /api/v2/policy/import):
// it replaces the tenant's policy, or with opts.Merge adds to it; with
// opts.DryRun it changes nothing and reports what it would do. A file that
// does not validate is an *APIError of 400 with Reason ReasonInvalidPolicy
// and Details["errors"]. It is never retried.
func (v *V2) ImportPolicy(ctx context.Context, csv string, opts ImportOptions) (ImportResult, error) {
	q := url.Values{}
	if opts.DryRun {
		q.Set("dry_run", "true")
	}
	if opts.Merge {
		q.Set("mode", "merge")
	}
	path := "/api/v2/policy/import"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := json.Marshal(struct {
		Policy string `json:"policy"`
	}{csv})
	if err != nil {
		return ImportResult{}, err
	}
	d, err := v2Call[ImportResult](ctx, v, v.req(http.MethodPost, path, body))
	if err == nil && d.Mode == "" {
		err = shapeError(http.MethodPost, path, "mode")
	}
	return d, err
}
