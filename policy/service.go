// Package policy is the authorization core: tenants, roles, grants and
// memberships over a Casbin model, with one enforcer per tenant and indexes
// that answer the hot queries without scanning every rule.
//
// Every change runs in one database transaction (rules, role rows, policy
// version and the audit record) and reaches memory only after the commit.
package policy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ourway/auth/audit"
)

// Options tune a Service. Zero values take the documented defaults.
type Options struct {
	// IdleTimeout evicts a tenant's enforcer after this long unused
	// (default 10 minutes).
	IdleTimeout time.Duration
	// MaxRoleDepth bounds role-inheritance chains (default 8, at most 9 so
	// that a user's chain stays within Casbin's limit of 10 links).
	MaxRoleDepth int
	// Recorder records every change inside its transaction (default none).
	Recorder audit.Recorder
	// Publisher, when set, tells the other replicas about each committed
	// change.
	Publisher Publisher
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
	// Timeout bounds each operation that reaches the store, waiting for a
	// tenant's lock included (0: no bound).
	Timeout time.Duration
	// Admit, when set, is asked before a write creates a tenant (the first
	// write of a key no tenant has); a write to an existing tenant is not
	// asked about. Its error refuses the write, wrapped with
	// ErrTenantCreationRefused; ctx is the write's (the HTTP layer keeps the
	// client's address in it, see audit.RequestFrom).
	Admit func(ctx context.Context) error
	// ConsistencyWait bounds how long a read that needs a newer revision
	// than the replica holds (at_least) waits for the other replicas'
	// message before it reloads the tenant from the database (default
	// 100ms; negative: reload at once).
	ConsistencyWait time.Duration
	// ChangesRetention is how long the change log keeps items (default 7
	// days).
	ChangesRetention time.Duration
	// FeedPoll is how often a change feed request that waits for a change
	// also looks in the database, for a change whose message was lost
	// (default 1s).
	FeedPoll time.Duration
	// MemoryBudget bounds the estimated memory of the tenants held in
	// memory (see TenantBaseBytes), in bytes: past it the least recently
	// used tenants are evicted (0: no bound).
	MemoryBudget int64
}

// Service answers and changes the policies of all tenants.
type Service struct {
	store Store
	model modelInfo
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	mu      sync.RWMutex
	tenants map[KeyHash]*tenant
	// ring holds the same tenants as tenants, densely (each at its
	// tenant.slot), for eviction sweeps to walk in batches; hand is where
	// the last sweep stopped (see sweep).
	ring []*tenant
	hand int
	// byID finds a loaded tenant by its id for another replica's change
	// message (see loadedByID); idMu guards it and is taken last, alone.
	idMu sync.Mutex
	byID map[int64]*tenant
	// loads counts tenant loads in progress; missed holds, while there are
	// any, the newest version of each tenant that another replica changed
	// while it was not loaded here (see loadedByID).
	loads  int
	missed map[int64]int64
	// bytes is the estimated memory of the tenants in the map (the sum of
	// their cost); overBudgetLogged notes that an eviction could not get
	// under the budget (logged once).
	bytes            int64
	overBudgetLogged bool

	// feed wakes change feed requests waiting for a tenant's change.
	feed feedHub

	evicting                       atomic.Bool // a budget sweep is under way
	idleEvictions, budgetEvictions atomic.Uint64
	longestSweepHold               atomic.Int64 // nanoseconds, the longest hold of mu by a sweep batch
}

// New builds a Service over store with the model text (a model.conf). It
// fails, with Casbin's message, on a model it cannot serve.
//
// While store fails fast with ErrUnavailable (a store guarded by circuit
// breakers, see policydb.Guard), tenants already loaded keep answering from
// memory, and are not evicted while the store says it is unavailable.
func New(store Store, modelText string, opts Options) (*Service, error) {
	info, err := ParseModel(modelText)
	if err != nil {
		return nil, err
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.MaxRoleDepth <= 0 {
		opts.MaxRoleDepth = 8
	}
	if opts.MaxRoleDepth > 9 {
		opts.MaxRoleDepth = 9
	}
	if opts.Recorder == nil {
		opts.Recorder = audit.Nop{}
	}
	if opts.ConsistencyWait == 0 {
		opts.ConsistencyWait = 100 * time.Millisecond
	}
	if opts.ChangesRetention <= 0 {
		opts.ChangesRetention = 7 * 24 * time.Hour
	}
	if opts.FeedPoll <= 0 {
		opts.FeedPoll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{
		store:   store,
		model:   info,
		opts:    opts,
		log:     opts.Logger,
		now:     time.Now,
		tenants: map[KeyHash]*tenant{},
		byID:    map[int64]*tenant{},
	}, nil
}

// FastPath reports whether decisions use the index (true) or Casbin's
// Enforce for every check (a model the index does not understand).
func (s *Service) FastPath() bool { return s.model.fast }

// PatternModel reports whether the served model compares permissions by
// pattern (its permission names follow the model's own rule).
func (s *Service) PatternModel() bool { return s.model.wildcards }

// Ping checks that the store answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }
