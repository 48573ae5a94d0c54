package policy

import (
	"context"
	"fmt"
	"time"
)

// Role is a role of a tenant.
type Role struct {
	Name        string
	Description *string
}

// Snapshot is the state of one tenant read at one point in time, apart from
// its rules, which the store hands to the RuleFunc it is given.
type Snapshot struct {
	TenantID int64
	Version  int64
	Roles    []Role // in creation order
	// Expiries are the tenant's time-bound rules (names in clear); a rule
	// that is not among the loaded rules is ignored.
	Expiries []Expiry
}

// Expiry is the end of a time-bound rule: ptype "p" or "g" with the rule as
// RuleFunc receives it.
type Expiry struct {
	Ptype string
	Rule  []string
	At    time.Time
}

// DueExpiry is a time-bound rule past its end, still in the database.
type DueExpiry struct {
	TenantID int64
	// Tenant is the tenant's handle (the hash of its first client key).
	Tenant KeyHash
	Expiry
}

// ChangeBatch is a page of a tenant's change log as the store reads it.
type ChangeBatch struct {
	Records []ChangeRecord
	// Latest is the tenant's revision when the page was read (0 for a
	// tenant that does not exist); Floor is the newest revision whose
	// records were purged (a position before it cannot be served).
	Latest, Floor int64
}

// RuleFunc receives one Casbin rule of a loaded tenant: ptype "p" with
// (subject, domain, permission) or "g" with (child, parent, domain). rule
// is the caller's again once RuleFunc returns (its strings may be kept). A
// rule may come twice (stored under two keys while names are re-encrypted);
// the receiver keeps it once.
type RuleFunc func(ptype string, rule []string) error

// Store is the persistence the policy core needs. Implementations live in
// policy/policydb.
//
// A Store reports an operation it cannot serve now with an error matching
// ErrUnavailable (policydb.Guard does, for its circuit breakers). A
// decorator of another Store may also have the methods
//
//	Unwrap() Store    // the store it decorates: Ready looks past it
//	Available() bool  // false while calls fail fast (a breaker is open)
//
// and the Service uses them when present.
type Store interface {
	// FindTenant returns the id of the tenant with this key hash.
	FindTenant(ctx context.Context, key KeyHash) (id int64, found bool, err error)
	// LoadTenant finds the tenant with this key hash (found false if there
	// is none), reads its rules (the p rules and g rules of its domain, in
	// the order they were written, names in clear) into add, and returns
	// the rest of its state, consistently. An error from add ends the load
	// with that error. It is the whole of a cold load: one round trip to
	// the database for a small tenant.
	LoadTenant(ctx context.Context, key KeyHash, add RuleFunc) (snap Snapshot, found bool, err error)
	// Change runs fn in one write transaction. The transaction is carried in
	// the context given to fn, so that an audit Recorder joins it.
	Change(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Revision returns the tenant's current revision as the database has
	// it (found false, revision 0, for a tenant that does not exist).
	Revision(ctx context.Context, key KeyHash) (id, revision int64, found bool, err error)
	// ReadChanges reads, in one snapshot, up to limit records of the
	// tenant's change log after position after, in order, with the
	// tenant's latest revision and the log's floor.
	ReadChanges(ctx context.Context, tenantID int64, after Position, limit int) (ChangeBatch, error)
	// PurgeChanges deletes the change records older than before and raises
	// each tenant's floor accordingly; it returns how many it deleted.
	PurgeChanges(ctx context.Context, before time.Time) (int64, error)
	// DueExpiries returns up to limit time-bound rules that ended at or
	// before now, earliest first.
	DueExpiries(ctx context.Context, now time.Time, limit int) ([]DueExpiry, error)
}

// Tx is the write side of one transaction.
type Tx interface {
	// EnsureTenant returns the tenant's id, creating the tenant if needed.
	EnsureTenant(ctx context.Context, key KeyHash) (int64, error)
	// BumpVersion increments the tenant's policy version and returns it. On
	// PostgreSQL it also locks the tenant until commit, which serialises the
	// tenant's writers across replicas.
	BumpVersion(ctx context.Context, tenantID int64) (int64, error)
	// RoleExists reports whether the tenant has the role.
	RoleExists(ctx context.Context, tenantID int64, role string) (bool, error)
	// CreateRole adds the role; created is false if it already existed.
	CreateRole(ctx context.Context, tenantID int64, role string) (created bool, err error)
	// DeleteRole removes the role row; deleted is false if there was none.
	DeleteRole(ctx context.Context, tenantID int64, role string) (deleted bool, err error)
	// SetRoleDescription replaces the role's description (nil clears it);
	// found is false if there is no such role.
	SetRoleDescription(ctx context.Context, tenantID int64, role string, desc *string) (found bool, err error)
	// AddRules adds Casbin rules of one ptype (existing ones are kept).
	AddRules(ctx context.Context, ptype string, rules [][]string) error
	// RemoveRules removes Casbin rules of one ptype.
	RemoveRules(ctx context.Context, ptype string, rules [][]string) error
	// RemoveFilteredRules removes the rules of a ptype whose fields, from
	// fieldIndex on, equal the given values ("" matches anything).
	RemoveFilteredRules(ctx context.Context, ptype string, fieldIndex int, values ...string) error
	// SetExpiry makes the given rules of the tenant end at at, or (nil)
	// permanent.
	SetExpiry(ctx context.Context, tenantID int64, ptype string, rules [][]string, at *time.Time) error
	// ExpireRule removes the rule and its expiry if it ended at or before
	// now, and reports whether it did.
	ExpireRule(ctx context.Context, tenantID int64, ptype string, rule []string, now time.Time) (bool, error)
	// AppendChanges writes the records of one revision to the change log.
	AppendChanges(ctx context.Context, tenantID, revision int64, at time.Time, records []ChangeRecord) error
}

// unwrapper is a Store decorator that gives access to the store it wraps.
type unwrapper interface{ Unwrap() Store }

// availability is a Store that knows whether it serves calls right now.
type availability interface{ Available() bool }

// storeDown reports whether the store says it is unavailable (a circuit
// breaker is not closed): an evicted tenant could not be loaded again.
func (s *Service) storeDown() bool {
	a, ok := s.store.(availability)
	return ok && !a.Available()
}

// readinessKey is a key hash no tenant has (real ones are 64 hex digits).
const readinessKey KeyHash = "readiness-probe"

// Ready checks, past the store's decorators (its circuit breakers), that
// policies can be loaded: the model builds an enforcer and a tenant lookup
// answers.
func (s *Service) Ready(ctx context.Context) error {
	if err := (&tenant{}).empty(s.model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	base := s.store
	for {
		u, ok := base.(unwrapper)
		if !ok {
			break
		}
		base = u.Unwrap()
	}
	if _, _, err := base.FindTenant(ctx, readinessKey); err != nil {
		return fmt.Errorf("tenant lookup: %w", err)
	}
	return nil
}
