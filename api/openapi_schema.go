package api

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/ourway/auth/audit"
)

// This file describes every route of the service as data; openapi.go turns
// the description into the OpenAPI 3.1 document served at /openapi.json and
// /docs. A route added to routes() or v2Routes() must be added here too
// (TestOpenAPICoversRoutes fails otherwise).

// schema is a JSON Schema (2020-12, the dialect of OpenAPI 3.1).
type schema = map[string]any

// field is a property of an object schema.
type field struct {
	name     string
	s        schema
	optional bool
}

func need(name string, s schema) field  { return field{name: name, s: s} }
func maybe(name string, s schema) field { return field{name: name, s: s, optional: true} }

// object is a closed object: the listed properties, the required ones
// required, nothing else.
func object(fields ...field) schema {
	props := schema{}
	required := []string{}
	for _, f := range fields {
		props[f.name] = f.s
		if !f.optional {
			required = append(required, f.name)
		}
	}
	return schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

func ref(name string) schema      { return schema{"$ref": "#/components/schemas/" + name} }
func arrayOf(items schema) schema { return schema{"type": "array", "items": items} }
func describe(s schema, d string) schema {
	out := schema{"description": d}
	for k, v := range s {
		out[k] = v
	}
	return out
}

var (
	tString  = schema{"type": "string"}
	tBool    = schema{"type": "boolean"}
	tCount   = schema{"type": "integer", "minimum": 0}
	tNString = schema{"type": []string{"string", "null"}}
)

// Name rules of the served model's default form (names_test.go checks the
// policy core against the same rules).
const (
	patUser = `^[A-Za-z0-9_.@+-]{1,64}$`
	patRole = `^[A-Za-z0-9_-]{1,64}$`
)

// route is one documented operation.
type route struct {
	method  string
	path    string // OpenAPI form: /roles/{role}
	id      string // operationId
	tag     string
	summary string
	query   []queryParam
	body    schema // request body (nil: none)
	// bodyOptional: the body may be left out.
	bodyOptional bool
	// ok maps success statuses to the schema of the answer's body.
	ok map[int]schema
	// errors are the error statuses beyond the common ones.
	errors []int
	// public routes need no credential (no security, no 401/403).
	public bool
	// media is the media type of the success answer ("": application/json).
	media string
}

// queryParam is a query parameter.
type queryParam struct {
	name, description string
	s                 schema
	required          bool
}

// v1Envelope is the v1 envelope with data d.
func v1Envelope(d schema) schema {
	return object(
		need("code", schema{"const": http.StatusOK}),
		need("data", d),
		need("message", tString),
		need("success", schema{"const": true}),
		need("timestamp", ref("Timestamp")),
	)
}

// bareResult is the v1 answer {"result": r}.
func bareResult(r schema) schema { return object(need("result", r)) }

// v2Envelope is the v2 success envelope with status code and data d.
func v2Envelope(code int, d schema) schema {
	return object(
		need("code", schema{"const": code}),
		need("data", d),
		need("message", tString),
		need("success", schema{"const": true}),
		need("timestamp", ref("Timestamp")),
	)
}

func v2OK(d schema) map[int]schema {
	return map[int]schema{http.StatusOK: v2Envelope(http.StatusOK, d)}
}

// v2Upsert is the answer of an idempotent PUT: 201 when created, 200 when
// it existed.
func v2Upsert(d schema) map[int]schema {
	return map[int]schema{http.StatusCreated: v2Envelope(http.StatusCreated, d), http.StatusOK: v2Envelope(http.StatusOK, d)}
}

func pageOf(item schema) schema {
	return object(need("items", arrayOf(item)), need("next_cursor", describe(tNString,
		"The cursor of the next page (pass it as cursor), null on the last page.")))
}

// revisionField is the tenant revision an answer states.
var revisionField = describe(tCount, "The tenant's revision the answer was computed at, or that the change committed.")

// policyPageOf is a page of a list of the policy: it states its revision.
func policyPageOf(item schema) schema {
	return object(need("items", arrayOf(item)), need("next_cursor", describe(tNString,
		"The cursor of the next page (pass it as cursor), null on the last page.")), need("revision", revisionField))
}

var pageParams = []queryParam{
	{name: "limit", description: "Items per page, 1 to " + strconv.Itoa(MaxPageLimit) + " (default " + strconv.Itoa(DefaultPageLimit) + ").",
		s: schema{"type": "integer", "minimum": 1, "maximum": MaxPageLimit, "default": DefaultPageLimit}},
	{name: "cursor", description: "next_cursor of the previous page, unchanged.", s: tString},
}

// consistencyParam is the consistency a read asks for.
var consistencyParam = queryParam{name: "consistency",
	description: "minimize_latency (default): the replica's state; at_least:<revision>: a state at or after that revision " +
		"(waits briefly, then reloads from the database; 400 revision_ahead, 503 consistency_unavailable); full: the database's latest.",
	s: schema{"type": "string", "pattern": `^(minimize_latency|full|at_least:(0|[1-9][0-9]*))$`, "default": "minimize_latency"}}

// policyPageParams are the parameters of a list of the policy.
var policyPageParams = append(append([]queryParam{}, pageParams...), consistencyParam)

// expiryBody is the optional body of a PUT of a membership or grant.
var expiryBody = schema{"type": "object", "additionalProperties": false, "maxProperties": 1, "properties": schema{
	"expires_at": describe(tString, "RFC 3339: the membership or grant ends then."),
	"ttl":        describe(tString, "A duration (90m, 4h): the membership or grant ends that long from now."),
}}

// tExpiry is the end of a time-bound membership or grant (null: permanent).
var tExpiry = describe(schema{"oneOf": []schema{{"type": "null"}, ref("Timestamp")}}, "When it ends; null when permanent.")

// components are the shared schemas.
func components() schema {
	actions := make([]string, 0, len(audit.Actions))
	for _, a := range audit.Actions {
		actions = append(actions, string(a))
	}
	return schema{
		"Timestamp": schema{"type": "string", "pattern": `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`,
			"description": "UTC, RFC 3339 with microseconds."},
		"Error": describe(object(
			need("code", schema{"type": "integer", "minimum": 400, "maximum": 599}),
			need("details", schema{"type": "object", "maxProperties": 0}),
			need("message", tString),
			need("success", schema{"const": false}),
			need("timestamp", ref("Timestamp")),
		), "The v1 error envelope: details is always empty."),
		"ErrorV2": describe(object(
			need("code", schema{"type": "integer", "minimum": 400, "maximum": 599}),
			need("details", schema{
				"type": "object", "required": []string{"reason"},
				"properties": schema{
					"reason":      schema{"enum": Reasons, "description": "The stable, machine-readable cause."},
					"kind":        schema{"enum": []string{"user", "role", "permission", "workflow"}},
					"role":        tString,
					"workflow":    tString,
					"schedule":    tString,
					"webhook_url": tString,
					"parameter":   tString,
					"field":       tString,
					"max":         schema{"type": "integer"},
					"errors":      arrayOf(tString),
				},
			}),
			need("message", tString),
			need("success", schema{"const": false}),
			need("timestamp", ref("Timestamp")),
		), "The v2 error envelope: details.reason is one of a closed list; some reasons add fields."),
		"AuditEntry": object(
			need("action", schema{"enum": actions}),
			need("details", schema{"type": "object"}),
			need("ip_address", tString),
			need("request_id", tString),
			need("resource", tString),
			need("seq", schema{"type": "integer", "minimum": 1}),
			need("success", tBool),
			need("timestamp", ref("Timestamp")),
			need("user", describe(tNString, "The user's fingerprint (u_…), null when the record names none.")),
			need("user_agent", tString),
		),
		"Workflow": object(
			need("catch_up", tBool), need("created_at", ref("Timestamp")), need("description", tNString),
			need("enabled", tBool), need("name", tString), need("next_run_at", describe(schema{"oneOf": []schema{{"type": "null"}, ref("Timestamp")}},
				"When it runs next; null when disabled.")),
			need("notify", schema{"enum": []string{"changes", "always"}}), need("permission", tString),
			need("schedule", tString), need("updated_at", ref("Timestamp")), need("webhook_url", tNString),
		),
		"WorkflowRun": object(
			need("added", arrayOf(tString)), need("attempt", schema{"type": "integer", "minimum": 1}), need("count", tCount),
			need("duration_ms", tCount), need("error", tNString),
			need("finished_at", schema{"oneOf": []schema{{"type": "null"}, ref("Timestamp")}}), need("id", tString),
			need("outcome", schema{"enum": []string{"running", "ok", "failed", "interrupted"}}),
			need("removed", arrayOf(tString)), need("scheduled_at", ref("Timestamp")), need("started_at", ref("Timestamp")),
			need("trigger", schema{"enum": []string{"schedule", "manual", "catch_up"}}), need("users", arrayOf(tString)),
			need("webhook", schema{"oneOf": []schema{{"type": "null"}, object(
				need("attempts", tCount), need("error", tNString),
				need("outcome", schema{"enum": []string{"pending", "delivered", "failed", "skipped", "refused"}}),
				need("status", schema{"type": []string{"integer", "null"}}),
			)}}),
		),
		"Change": describe(schema{"type": "object", "additionalProperties": false,
			"required": []string{"at", "op", "revision"},
			"properties": schema{
				"at": ref("Timestamp"),
				"op": schema{"enum": []string{"create_role", "delete_role", "set_description", "grant", "revoke", "add_member",
					"remove_member", "add_parent", "remove_parent", "delete_user", "expire", "external"}},
				"revision":    tCount,
				"role":        tString,
				"permission":  tString,
				"user":        tString,
				"parent":      tString,
				"description": tNString,
				"expires_at":  ref("Timestamp"),
			}}, "One committed change, in API terms (docs/consistency.md states each op's fields)."),
		"Membership":    object(need("role", tString), need("user", tString)),
		"NameItem":      object(need("name", tString)),
		"HasPermission": object(need("has_permission", tBool)),
		"Role":          object(need("name", tString), need("description", tNString)),
		"CheckPair":     object(need("user", tString), need("permission", tString)),
		"CheckResult":   object(need("user", tString), need("permission", tString), need("allowed", tBool)),
		"Explanation": object(
			need("path", schema{"oneOf": []schema{
				{"type": "null"},
				arrayOf(object(need("type", schema{"enum": []string{"user", "role", "permission"}}), need("name", tString))),
			}, "description": "user → direct role → each inherited role → the permission as granted; null when denied."}),
			need("rule", schema{"oneOf": []schema{{"type": "null"}, arrayOf(tString)},
				"description": "The matched Casbin policy rule (p fields); null when denied."}),
		),
	}
}

// v1Routes are the compatible routes, served under /api and /api/v1.
func v1Routes() []route {
	membership := "Memberships"
	perm := "Permissions"
	roles := "Roles"
	wf := "Workflows"
	keys := "Tokens and keys"
	membershipList := bareResult(arrayOf(ref("Membership")))
	return []route{
		{method: "GET", path: "/membership/{user}/{group}", id: "checkMembership", tag: membership,
			summary: "Is the user a direct member of the role (group)?", ok: ok200(v1Envelope(ref("HasPermission")))},
		{method: "POST", path: "/membership/{user}/{group}", id: "addMembership", tag: membership,
			summary: "Add the user to the role; result false if the role does not exist.", ok: ok200(bareResult(tBool))},
		{method: "DELETE", path: "/membership/{user}/{group}", id: "removeMembership", tag: membership,
			summary: "Remove the user from the role (idempotent).", ok: ok200(bareResult(tBool))},
		{method: "GET", path: "/permission/{group}/{name}", id: "checkRolePermission", tag: perm,
			summary: "Does the role hold the permission?", ok: ok200(bareResult(tBool))},
		{method: "POST", path: "/permission/{group}/{name}", id: "addPermission", tag: perm,
			summary: "Grant the permission to the role; result false if the role does not exist.", ok: ok200(bareResult(tBool))},
		{method: "DELETE", path: "/permission/{group}/{name}", id: "removePermission", tag: perm,
			summary: "Revoke the permission from the role (idempotent).", ok: ok200(bareResult(tBool))},
		{method: "GET", path: "/has_permission/{user}/{name}", id: "hasPermission", tag: perm,
			summary: "Does the user hold the permission (through any role)?", ok: ok200(v1Envelope(ref("HasPermission")))},
		{method: "GET", path: "/user_permissions/{user}", id: "userPermissions", tag: perm,
			summary: "The user's permissions, one entry per granting role.",
			ok:      ok200(v1Envelope(object(need("count", tCount), need("permissions", arrayOf(ref("NameItem"))))))},
		{method: "GET", path: "/role_permissions/{role}", id: "rolePermissions", tag: perm,
			summary: "The role's permissions.", ok: ok200(v1Envelope(arrayOf(ref("NameItem"))))},
		{method: "GET", path: "/user_roles/{user}", id: "userRoles", tag: membership,
			summary: "The user's roles.", ok: ok200(membershipList)},
		{method: "GET", path: "/members/{role}", id: "members", tag: membership,
			summary: "The role's members.", ok: ok200(membershipList)},
		{method: "GET", path: "/roles", id: "listRoles", tag: roles,
			summary: "Every role, in creation order.",
			ok:      ok200(bareResult(arrayOf(object(need("description", tNString), need("role", tString)))))},
		{method: "GET", path: "/which_roles_can/{name}", id: "whichRolesCan", tag: perm,
			summary: "The roles that hold the permission.", ok: ok200(bareResult(arrayOf(object(need("role", tString)))))},
		{method: "GET", path: "/which_users_can/{name}", id: "whichUsersCan", tag: perm,
			summary: "The users who hold the permission: one entry per (role, member).", ok: ok200(membershipList)},
		{method: "POST", path: "/role/{role}", id: "createRole", tag: roles,
			summary: "Create the role (result true also when it exists).", ok: ok200(bareResult(tBool))},
		{method: "DELETE", path: "/role/{role}", id: "deleteRole", tag: roles,
			summary: "Delete the role; data.result false if there was no such role.", ok: ok200(v1Envelope(bareResult(tBool)))},
		{method: "GET", path: "/role/{role}/parents", id: "roleParents", tag: roles,
			summary: "The roles the role inherits from directly.",
			ok:      ok200(bareResult(arrayOf(object(need("parent", tString), need("role", tString)))))},
		{method: "POST", path: "/role/{role}/parents/{parent}", id: "addRoleParent", tag: roles,
			summary: "Make the role inherit from parent.", ok: ok200(bareResult(tBool))},
		{method: "DELETE", path: "/role/{role}/parents/{parent}", id: "removeRoleParent", tag: roles,
			summary: "Remove an inheritance link.", ok: ok200(bareResult(tBool))},
		{method: "GET", path: "/workflow/users/{workflow_name}", id: "workflowUsers", tag: wf,
			summary: "The users who can run the workflow.",
			ok:      ok200(v1Envelope(object(need("count", tCount), need("members", arrayOf(ref("Membership"))))))},
		{method: "GET", path: "/workflow/user/{user}/can_run/{workflow_name}", id: "workflowCanRun", tag: wf,
			summary: "Can the user run the workflow?", ok: ok200(v1Envelope(ref("HasPermission")))},
		{method: "GET", path: "/audit", id: "auditTrail", tag: "Audit",
			summary: "The tenant's own audit records, newest first.",
			query: []queryParam{
				{name: "limit", description: "Records per page, 1 to 500 (default 50).", s: schema{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
				{name: "cursor", description: "next_cursor of the previous page.", s: tString},
				{name: "action", description: "Only records of this action (case-insensitive).", s: tString},
				{name: "since", description: "Only records at or after this RFC 3339 time.", s: schema{"type": "string", "format": "date-time"}},
				{name: "until", description: "Only records at or before this RFC 3339 time.", s: schema{"type": "string", "format": "date-time"}},
				{name: "user", description: "Only records of this user (by name, matched through its fingerprint).", s: schema{"type": "string", "pattern": patUser}},
			},
			ok: ok200(v1Envelope(object(
				need("entries", arrayOf(ref("AuditEntry"))),
				need("limit", schema{"type": "integer", "minimum": 1, "maximum": 500}),
				need("next_cursor", tNString),
			))), errors: []int{http.StatusNotFound}},
		{method: "POST", path: "/token", id: "issueToken", tag: keys,
			summary: "Issue a token for the calling tenant (needs the client key itself).",
			body:    object(maybe("scope", schema{"enum": []string{scopeFull, scopeCheck}})), bodyOptional: true,
			ok:     ok200(object(need("access_token", tString), need("expires_in", tCount), need("token_type", schema{"const": "bearer"}))),
			errors: []int{http.StatusNotFound}},
		{method: "POST", path: "/keys/rotate", id: "rotateKey", tag: keys,
			summary: "A new client key for the calling tenant; the old one keeps working for the grace period.",
			ok:      ok200(v1Envelope(object(need("new_key", schema{"type": "string", "format": "uuid"}), need("old_key_expires_at", ref("Timestamp"))))),
			errors:  []int{http.StatusNotFound, http.StatusConflict}},
		{method: "POST", path: "/keys/revoke_others", id: "revokeOtherKeys", tag: keys,
			summary: "Revoke every other live key of the calling tenant.",
			ok:      ok200(v1Envelope(object(need("revoked", tCount)))), errors: []int{http.StatusNotFound}},
	}
}

func ok200(s schema) map[int]schema { return map[int]schema{http.StatusOK: s} }

// v2RouteList is API v2 (docs/api-v2.md), relative to V2Prefix.
func v2RouteList() []route {
	roles, users, perms, checks, pol := "v2 roles", "v2 users", "v2 permissions", "v2 checks", "v2 policy"
	notFound := []int{http.StatusNotFound}
	roleName := schema{"type": "string", "pattern": patRole}
	return append([]route{
		{method: "GET", path: "/roles", id: "v2ListRoles", tag: roles, summary: "Every role, by name.",
			query: policyPageParams, ok: v2OK(policyPageOf(ref("Role")))},
		{method: "POST", path: "/roles", id: "v2CreateRole", tag: roles, summary: "Create a role (409 role_exists if it exists).",
			body: object(need("name", roleName), maybe("description", tNString)),
			ok: map[int]schema{http.StatusCreated: v2Envelope(http.StatusCreated,
				object(need("name", tString), need("description", tNString), need("revision", revisionField)))},
			errors: []int{http.StatusConflict}},
		{method: "GET", path: "/roles/{role}", id: "v2GetRole", tag: roles, summary: "A role, with its counts of direct grants and members and its direct parents.",
			query: []queryParam{consistencyParam},
			ok: v2OK(object(need("name", tString), need("description", tNString), need("permissions", tCount),
				need("members", tCount), need("parents", arrayOf(tString)), need("revision", revisionField))), errors: notFound},
		{method: "PUT", path: "/roles/{role}", id: "v2PutRole", tag: roles,
			summary: "Create the role, or set its description (null clears it); idempotent.",
			body:    object(need("description", tNString)), bodyOptional: true,
			ok: v2Upsert(object(need("name", tString), need("description", tNString), need("created", tBool), need("revision", revisionField)))},
		{method: "DELETE", path: "/roles/{role}", id: "v2DeleteRole", tag: roles,
			summary: "Delete the role with its grants, memberships and inheritance links; idempotent.",
			ok:      v2OK(object(need("role", tString), need("deleted", tBool), need("revision", revisionField)))},
		{method: "GET", path: "/roles/{role}/permissions", id: "v2RolePermissions", tag: roles, summary: "The role's direct grants.",
			query: policyPageParams, ok: v2OK(policyPageOf(object(need("name", tString), need("expires_at", tExpiry)))), errors: notFound},
		{method: "PUT", path: "/roles/{role}/permissions/{permission}", id: "v2Grant", tag: roles,
			summary: "Grant a permission, for good or (expires_at or ttl) until an instant; idempotent, a new end replaces the old.",
			body:    expiryBody, bodyOptional: true,
			ok: v2Upsert(object(need("role", tString), need("permission", tString), need("created", tBool),
				need("expires_at", tExpiry), need("revision", revisionField))), errors: notFound},
		{method: "DELETE", path: "/roles/{role}/permissions/{permission}", id: "v2Revoke", tag: roles, summary: "Revoke a permission; idempotent.",
			ok: v2OK(object(need("role", tString), need("permission", tString), need("deleted", tBool), need("revision", revisionField))), errors: notFound},
		{method: "GET", path: "/roles/{role}/members", id: "v2RoleMembers", tag: roles, summary: "The role's direct members.",
			query: policyPageParams, ok: v2OK(policyPageOf(object(need("user", tString), need("expires_at", tExpiry)))), errors: notFound},
		{method: "PUT", path: "/roles/{role}/members/{user}", id: "v2AddMember", tag: roles,
			summary: "Add a member, for good or (expires_at or ttl) until an instant; idempotent, a new end replaces the old.",
			body:    expiryBody, bodyOptional: true,
			ok: v2Upsert(object(need("role", tString), need("user", tString), need("created", tBool),
				need("expires_at", tExpiry), need("revision", revisionField))), errors: notFound},
		{method: "DELETE", path: "/roles/{role}/members/{user}", id: "v2RemoveMember", tag: roles, summary: "Remove a member; idempotent.",
			ok: v2OK(object(need("role", tString), need("user", tString), need("deleted", tBool), need("revision", revisionField))), errors: notFound},
		{method: "GET", path: "/roles/{role}/parents", id: "v2RoleParents", tag: roles, summary: "The roles it inherits from directly.",
			query: policyPageParams, ok: v2OK(policyPageOf(ref("NameItem"))), errors: notFound},
		{method: "PUT", path: "/roles/{role}/parents/{parent}", id: "v2AddParent", tag: roles,
			summary: "Make the role inherit from parent; idempotent (409 role_cycle or role_depth).",
			ok:      v2Upsert(object(need("role", tString), need("parent", tString), need("created", tBool), need("revision", revisionField))), errors: []int{http.StatusNotFound, http.StatusConflict}},
		{method: "DELETE", path: "/roles/{role}/parents/{parent}", id: "v2RemoveParent", tag: roles, summary: "Remove an inheritance link; idempotent.",
			ok: v2OK(object(need("role", tString), need("parent", tString), need("deleted", tBool), need("revision", revisionField))), errors: notFound},
		{method: "GET", path: "/users/{user}/roles", id: "v2UserRoles", tag: users,
			summary: "The user's roles, direct and inherited (via: the direct role it is inherited through).",
			query:   policyPageParams, ok: v2OK(policyPageOf(object(need("name", tString), need("inherited", tBool), maybe("via", tString))))},
		{method: "GET", path: "/users/{user}/permissions", id: "v2UserPermissions", tag: users,
			summary: "The user's effective permissions, each once, with every role of the user that holds it.",
			query:   policyPageParams, ok: v2OK(policyPageOf(object(need("name", tString), need("roles", arrayOf(tString)))))},
		{method: "DELETE", path: "/users/{user}", id: "v2DeleteUser", tag: users,
			summary: "Remove the user from every role, in one transaction.",
			ok:      v2OK(object(need("user", tString), need("memberships_removed", tCount), need("revision", revisionField)))},
		{method: "GET", path: "/permissions/{permission}/roles", id: "v2PermissionRoles", tag: perms,
			summary: "The roles that grant the permission, directly or through a parent.",
			query:   policyPageParams, ok: v2OK(policyPageOf(object(need("name", tString), need("inherited", tBool))))},
		{method: "GET", path: "/permissions/{permission}/users", id: "v2PermissionUsers", tag: perms,
			summary: "The users who hold the permission, each once, with the roles (direct memberships) through which.",
			query:   policyPageParams, ok: v2OK(policyPageOf(object(need("user", tString), need("roles", arrayOf(tString)))))},
		{method: "GET", path: "/check", id: "v2Check", tag: checks, summary: "Does the user hold the permission? With explain=true, why.",
			query: []queryParam{
				{name: "user", description: "The user.", s: schema{"type": "string", "pattern": patUser}, required: true},
				{name: "permission", description: "The permission.", s: tString, required: true},
				{name: "explain", description: "Also answer the path that grants the permission.", s: schema{"type": "boolean", "default": false}},
				consistencyParam,
			},
			ok: v2OK(object(need("user", tString), need("permission", tString), need("allowed", tBool), maybe("explanation", ref("Explanation")),
				need("revision", revisionField)))},
		{method: "POST", path: "/check", id: "v2CheckBatch", tag: checks, summary: "Check up to 1000 (user, permission) pairs; results in request order.",
			query: []queryParam{consistencyParam},
			body:  object(need("checks", schema{"type": "array", "items": ref("CheckPair"), "minItems": 1, "maxItems": 1000})),
			ok:    v2OK(object(need("results", arrayOf(ref("CheckResult"))), need("revision", revisionField)))},
		{method: "GET", path: "/policy/export", id: "v2ExportPolicy", tag: pol, summary: "The tenant's policy as a Casbin CSV file.",
			query: []queryParam{consistencyParam},
			ok: v2OK(object(need("format", schema{"const": "casbin-csv"}), need("policy", tString), need("roles", tCount),
				need("rules", tCount), need("version", tCount),
				need("revision", describe(tCount, "The revision exported: follow the change feed from it (since=<revision>).")))),
		},
		{method: "GET", path: "/changes", id: "v2Changes", tag: pol,
			summary: "The tenant's committed changes after a revision, in order; wait holds the request until one commits.",
			query: []queryParam{
				{name: "since", description: "Changes after this revision (default 0).", s: schema{"type": "integer", "minimum": 0, "default": 0}},
				{name: "cursor", description: "next_cursor of the previous page, unchanged (since is then ignored).", s: tString},
				{name: "limit", description: "Items per page, 1 to " + strconv.Itoa(MaxChangesLimit) + " (default " + strconv.Itoa(DefaultPageLimit) + ").",
					s: schema{"type": "integer", "minimum": 1, "maximum": MaxChangesLimit, "default": DefaultPageLimit}},
				{name: "wait", description: "With nothing to answer, wait this long (0s to 60s) for a change to commit.", s: schema{"type": "string", "default": "0s"}},
			},
			ok: v2OK(object(need("items", arrayOf(ref("Change"))),
				need("next_cursor", describe(tNString, "The cursor of the next page when more changes exist now; null when caught up.")),
				need("revision", describe(tCount, "Caught up (next_cursor null): the tenant's latest revision, to pass as since; otherwise the last item's.")))),
			errors: []int{http.StatusGone}},
		{method: "POST", path: "/policy/import", id: "v2ImportPolicy", tag: pol,
			summary: "Replace (or with mode=merge, extend) the tenant's policy with a Casbin CSV file; dry_run=true only reports.",
			query: []queryParam{
				{name: "dry_run", description: "Validate and report, change nothing.", s: schema{"type": "boolean", "default": false}},
				{name: "mode", description: "replace (default): roles and rules not in the file are removed; merge: they are kept.",
					s: schema{"enum": []string{"replace", "merge"}, "default": "replace"}},
			},
			body: object(need("policy", tString)),
			ok: v2OK(object(need("mode", schema{"enum": []string{"replace", "merge"}}), need("dry_run", tBool),
				need("roles_created", tCount), need("roles_deleted", tCount), need("rules_added", tCount),
				need("rules_removed", tCount), need("version", tCount), maybe("revision", revisionField)))},
	}, v2WorkflowRoutes()...)
}

// v2WorkflowRoutes are the workflow routes of API v2.
func v2WorkflowRoutes() []route {
	wf := "v2 workflows"
	notFound := []int{http.StatusNotFound}
	workflowPut := object(need("catch_up", tBool), need("created", tBool), need("created_at", ref("Timestamp")),
		need("description", tNString), need("enabled", tBool), need("name", tString),
		need("next_run_at", schema{"oneOf": []schema{{"type": "null"}, ref("Timestamp")}}),
		need("notify", schema{"enum": []string{"changes", "always"}}), need("permission", tString),
		maybe("secret", describe(tString, "The webhook signing secret: only in the answer that created the workflow.")),
		need("schedule", tString), need("updated_at", ref("Timestamp")), need("webhook_url", tNString))
	return []route{
		{method: "GET", path: "/workflows", id: "v2ListWorkflows", tag: wf, summary: "Every registered workflow, by name.",
			query: pageParams, ok: v2OK(pageOf(ref("Workflow")))},
		{method: "PUT", path: "/workflows/{workflow}", id: "v2PutWorkflow", tag: wf,
			summary: "Register the workflow, or replace its definition (omitted fields take their defaults); the answer that creates it carries its signing secret.",
			body: object(need("schedule", describe(tString, "A cron expression (5 fields, or 6 with seconds first) or an interval such as 5m.")),
				maybe("permission", tNString), maybe("webhook_url", tNString), maybe("description", tNString),
				maybe("enabled", tBool), maybe("notify", schema{"enum": []any{"changes", "always", nil}}), maybe("catch_up", tBool)),
			ok: v2Upsert(workflowPut)},
		{method: "GET", path: "/workflows/{workflow}", id: "v2GetWorkflow", tag: wf, summary: "A registered workflow.",
			ok: v2OK(ref("Workflow")), errors: notFound},
		{method: "DELETE", path: "/workflows/{workflow}", id: "v2DeleteWorkflow", tag: wf,
			summary: "Delete the workflow and its runs; idempotent.", ok: v2OK(object(need("name", tString), need("deleted", tBool)))},
		{method: "POST", path: "/workflows/{workflow}/secret", id: "v2RotateWorkflowSecret", tag: wf,
			summary: "Give the workflow a new signing secret; the previous one keeps signing too for grace (default 24h).",
			body:    object(maybe("grace", describe(tString, "A duration from 0s to 168h."))), bodyOptional: true,
			ok: v2OK(object(need("name", tString), need("secret", tString),
				need("previous_valid_until", schema{"oneOf": []schema{{"type": "null"}, ref("Timestamp")}}))), errors: notFound},
		{method: "POST", path: "/workflows/{workflow}/run", id: "v2RunWorkflow", tag: wf,
			summary: "Run the workflow now (webhook included) and answer the run.", ok: v2OK(ref("WorkflowRun")), errors: notFound},
		{method: "GET", path: "/workflows/{workflow}/runs", id: "v2WorkflowRuns", tag: wf, summary: "The workflow's runs, newest first.",
			query: pageParams, ok: v2OK(pageOf(ref("WorkflowRun"))), errors: notFound},
	}
}

// opsRouteList are the routes outside /api.
func opsRouteList() []route {
	ops := "Operations"
	return []route{
		{method: "GET", path: "/ping", id: "ping", tag: ops, summary: "Liveness, as the original service answered it.", public: true,
			ok: ok200(object(need("message", schema{"const": "PONG"})))},
		{method: "GET", path: "/health", id: "health", tag: ops, summary: "Liveness.", public: true,
			ok: ok200(object(need("status", schema{"const": "healthy"})))},
		{method: "GET", path: "/ready", id: "ready", tag: ops, summary: "Readiness: database reachable, schema current, policies loaded.", public: true,
			ok: map[int]schema{
				http.StatusOK: object(need("status", schema{"const": "ready"})),
				http.StatusServiceUnavailable: object(need("check", schema{"enum": []string{"database", "migrations", "schema", "policies"}}),
					need("status", schema{"const": "unavailable"})),
			}},
		{method: "GET", path: "/metrics", id: "metrics", tag: ops, public: true, media: "text/plain",
			summary: "Prometheus metrics (behind AUTH_METRICS_TOKEN when it is set; 401 without it). " +
				"With AUTH_OPS_ADDR it is served on that listener only (404 here).",
			ok: ok200(tString), errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound}},
		{method: "GET", path: "/openapi.json", id: "openapi", tag: ops, public: true,
			summary: "This document.", ok: ok200(schema{"type": "object", "required": []string{"openapi", "info", "paths"}})},
		{method: "GET", path: "/docs", id: "docs", tag: ops, public: true, media: "text/html",
			summary: "This document as a page.", ok: ok200(tString)},
		{method: "GET", path: "/docs/style.css", id: "docsStyle", tag: ops, public: true, media: "text/css",
			summary: "The style sheet of the page.", ok: ok200(tString)},
	}
}

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// pathParamDoc describes a path parameter by its name.
func pathParamDoc(name string) (string, schema) {
	switch name {
	case "user":
		return "A user name.", schema{"type": "string", "pattern": patUser}
	case "role", "parent":
		return "A role name.", schema{"type": "string", "pattern": patRole}
	case "group":
		return "A role name (the /permission routes call a role a group).", schema{"type": "string", "pattern": patRole}
	case "workflow_name":
		return "A workflow name (a permission).", tString
	case "workflow":
		return "A registered workflow's name.", schema{"type": "string", "pattern": patRole}
	default:
		return "A permission name (under a pattern model, a pattern; percent-encode / and *).", tString
	}
}

// lower is an HTTP method as an OpenAPI operation key.
func lower(m string) string { return strings.ToLower(m) }
