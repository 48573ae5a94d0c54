// Package policysync keeps the replicas of auth-server in sync through Redis.
//
// Each committed change is published with github.com/casbin/redis-watcher
// as the standard watcher messages of its operations (UpdateForAddPolicies,
// UpdateForRemovePolicies, UpdateForRemoveFilteredPolicy), plus messages of
// our own for role rows and a final version marker. The other replicas
// apply them to memory only — never to the database — through the policy
// core, which uses Casbin's DistributedEnforcer *Self methods with no
// persist function.
//
// Only replicas of the same database exchange changes: every message
// carries the database's replica scope (a random name kept in its settings
// table), and messages of other scopes are ignored, so that deployments
// sharing a Redis (and a channel) never mix their tenants.
//
// Pub/sub loses messages during outages, so an anti-entropy job compares
// every loaded tenant's policy version with the database every few seconds
// and reloads stale tenants. The subscription is checked with a message of
// our own every second: the replica counts as connected only while that
// message comes back, and every time it comes back after a break (at start
// too) the replica runs an anti-entropy pass at once, which covers whatever
// was published while it was not listening.
package policysync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rediswatcher "github.com/casbin/redis-watcher/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ourway/auth/internal/breaker"
	"github.com/ourway/auth/internal/schedule"
	"github.com/ourway/auth/policy"
)

// Sections of our own messages (Casbin's are "p" and "g").
const (
	secRole    = "role"    // NewRule [domain, role]: a role row added or removed
	secVersion = "version" // NewRule [domain, version]: end of a change
	secReload  = "reload"  // NewRule [domain, version]: a change whose operations are unknown
	secProbe   = "probe"   // NewRule [nonce]: a replica checking its own subscription
)

// probeSuffix ends the sender id of probes: the watcher drops messages
// whose id is its own (IgnoreSelf), and a probe must come back.
const probeSuffix = "#probe"

// DefaultChannel is the pub/sub channel unless AUTH_WATCHER_CHANNEL says
// otherwise.
const DefaultChannel = "/auth/policy"

// Applier is what the sync needs from the policy core.
type Applier interface {
	ApplyRemote(ctx context.Context, c policy.Change) (policy.Outcome, error)
	Resync(ctx context.Context, vr policy.VersionReader) (int, error)
}

// Store is what the sync needs from the database.
type Store interface {
	policy.VersionReader
	// ReplicaScope names the database (the same for every replica of it).
	ReplicaScope(ctx context.Context) (string, error)
}

// Options configure a Sync.
type Options struct {
	// RedisURL is redis://host:port[/db]; empty disables pub/sub (the
	// anti-entropy job still runs).
	RedisURL string
	// Channel is the pub/sub channel (default DefaultChannel).
	Channel string
	// Interval is how often versions are compared (default 5s).
	Interval time.Duration
	// Heartbeat is how often the subscription is checked (default 1s).
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// Sync is the replica synchroniser.
type Sync struct {
	opts  Options
	store Store
	apply Applier
	log   *slog.Logger

	flushMu sync.Mutex // one flushHints at a time

	mu      sync.Mutex
	scope   string // set once before the watcher exists
	localID string
	watcher *rediswatcher.Watcher
	pub     *redis.Client
	clients []*redis.Client
	pending map[string]*policy.Change // sender|domain -> change being received
	dirty   map[int64]int64           // tenant -> newest version not published
	brk     *breaker.Breaker

	resync chan struct{} // asks for an anti-entropy pass
	wake   chan struct{} // asks for a probe now
	echo   chan struct{} // a probe of ours came back

	live      atomic.Bool  // our probes come back
	probeSent atomic.Int64 // nonce of the last probe published
	probeSeen atomic.Int64 // highest nonce of ours received
	minProbe  atomic.Int64 // probes below this were sent before the subscription reconnected
	failing   atomic.Bool  // the last publish failed (log once per outage)
	foreign   atomic.Bool  // a message of another scope was seen (logged once)

	published, publishFailures, applied, reloads atomic.Int64
}

// New builds a Sync. Give it the policy core with SetApplier, its
// anti-entropy job (Job) to the process's scheduler, and run it with Run.
func New(store Store, opts Options) *Sync {
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Sync{
		opts: opts, store: store, log: opts.Logger,
		pending: map[string]*policy.Change{},
		dirty:   map[int64]int64{},
		// Publishing fails fast for a second after three failures in a
		// row (the hints and anti-entropy catch up).
		brk:    breaker.New(breaker.Options{Name: "replica_publish", Errors: 3, Successes: 1, Timeout: time.Second}),
		resync: make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		echo:   make(chan struct{}, 1),
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SetApplier sets the policy core that the other replicas' changes are
// applied to and whose tenants the anti-entropy pass checks. Call it once,
// before Run and before the scheduler runs Job.
func (s *Sync) SetApplier(apply Applier) { s.apply = apply }

// Job is the anti-entropy pass, every Options.Interval, for the process's
// scheduler.
func (s *Sync) Job() schedule.Job {
	return schedule.Job{Name: "replica anti-entropy", Every: s.opts.Interval, Run: s.Resync}
}

// Run connects to Redis (retrying while it is away), applies the other
// replicas' changes, checks the subscription and runs the passes asked for
// after a reconnection, until ctx ends; then it closes its Redis clients.
func (s *Sync) Run(ctx context.Context) error {
	if s.apply == nil {
		return errors.New("policysync: Run before SetApplier")
	}
	var wg sync.WaitGroup
	if s.opts.RedisURL != "" {
		wg.Go(func() {
			if s.connect(ctx) {
				s.watch(ctx)
			}
		})
	}
	s.resyncOnSignal(ctx)
	wg.Wait()
	s.mu.Lock()
	s.watcher, s.pub = nil, nil
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	s.live.Store(false)
	// Closing our own clients ends the subscription; the watcher's Close
	// would also broadcast a "Close" message that every other replica logs
	// as unreadable.
	for _, c := range clients {
		_ = c.Close()
	}
	return nil
}

// Resync runs one anti-entropy pass now.
func (s *Sync) Resync(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := s.apply.Resync(rctx, s.store)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("anti-entropy pass failed", "err", err)
		}
		return
	}
	if n > 0 {
		s.reloads.Add(int64(n))
		s.log.Info("anti-entropy reloaded stale tenants", "tenants", n)
	}
}

// resyncOnSignal runs the passes asked for by triggerResync, after telling
// the others about changes that could not be published.
func (s *Sync) resyncOnSignal(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.resync:
			s.flushHints()
			s.Resync(ctx)
		}
	}
}

// triggerResync asks for a pass soon (coalesced).
func (s *Sync) triggerResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// Stats are counters for metrics.
type Stats struct {
	Published, PublishFailures, Applied, Reloads int64
	// Connected is true while the replica's own probes come back through
	// Redis.
	Connected bool
}

// Stats returns the counters.
func (s *Sync) Stats() Stats {
	return Stats{Published: s.published.Load(), PublishFailures: s.publishFailures.Load(),
		Applied: s.applied.Load(), Reloads: s.reloads.Load(), Connected: s.live.Load()}
}

// RedisURLFor picks the replica-sync Redis: AUTH_WATCHER_REDIS_URL, else
// RATELIMIT_STORAGE_URL when that is Redis, else none.
func RedisURLFor(watcherURL, rateLimitURL string) string {
	if watcherURL != "" {
		return watcherURL
	}
	if u, err := url.Parse(rateLimitURL); err == nil && strings.HasPrefix(u.Scheme, "redis") {
		return rateLimitURL
	}
	return ""
}
