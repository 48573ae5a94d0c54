package policy

import (
	"errors"
	"fmt"
)

// Sentinel errors of the policy core. The HTTP layer maps them to statuses in
// one place.
var (
	// ErrInvalidName marks a user, role, permission or workflow name that
	// does not match its pattern.
	ErrInvalidName = errors.New("policy: invalid name")
	// ErrRoleCycle is returned when a role-inheritance link would close a cycle.
	ErrRoleCycle = errors.New("policy: role inheritance would form a cycle")
	// ErrRoleDepth is returned when a role-inheritance link would make a chain
	// deeper than the configured maximum.
	ErrRoleDepth = errors.New("policy: role inheritance chain too deep")
	// ErrUnavailable is matched by the error of an operation that could not
	// be served now: the store is unreachable or too slow (a circuit breaker
	// rejected the call or counted its failure, see policydb.Guard; the
	// error then carries the breaker's retry hint), or the tenant's lock
	// could not be had in time. The HTTP layer answers it with 503 and
	// Retry-After.
	ErrUnavailable = errors.New("policy: storage unavailable")
	// ErrTenantCreationRefused is returned by a write that would create a
	// tenant when Options.Admit refuses it (the admission's error is
	// wrapped too).
	ErrTenantCreationRefused = errors.New("policy: tenant creation refused")
)

// NameError says which name is invalid: the core validates every name it
// is given, and its callers word the error (the HTTP API per route).
type NameError struct {
	Kind  string // "user", "role", "permission" or (from package workflow) "workflow"
	Value string
	// Rule states the rule the name breaks, when the served model has its
	// own (a pattern model's permission names); "" for the default rules,
	// which the API words itself.
	Rule string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("policy: invalid %s name %q", e.Kind, e.Value)
}

// Unwrap lets errors.Is(err, ErrInvalidName) match.
func (e *NameError) Unwrap() error { return ErrInvalidName }

// IsDomainError reports whether err is an answer of the policy core rather
// than a failure of its store: a change the core refused (a role cycle, a
// chain too deep, an invalid name or client key), a client key's state
// (rotated, revoked, in its grace period, an ambiguous id), or a change
// given up because another process changed the tenant first (the core
// retries it). A store decorator such as a circuit breaker must never count
// it against the store.
func IsDomainError(err error) bool {
	for _, target := range domainErrors {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

var domainErrors = []error{errStale, ErrRoleCycle, ErrRoleDepth, ErrInvalidName, ErrInvalidClientKey,
	ErrKeyRotated, ErrKeyRevoked, ErrKeyInGrace, ErrKeyIDAmbiguous, ErrInvalidPolicy}
