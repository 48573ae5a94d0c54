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
	// ErrUnavailable is returned when the store cannot be reached.
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
}

func (e *NameError) Error() string {
	return fmt.Sprintf("policy: invalid %s name %q", e.Kind, e.Value)
}

// Unwrap lets errors.Is(err, ErrInvalidName) match.
func (e *NameError) Unwrap() error { return ErrInvalidName }
