// Package replica keeps the replicas of auth-server in sync through Redis.
//
// Each committed change is published with github.com/casbin/redis-watcher
// as the standard watcher messages of its operations (UpdateForAddPolicies,
// UpdateForRemovePolicies, UpdateForRemoveFilteredPolicy), plus messages of
// our own for role rows and a final version marker. The other replicas
// apply them to memory only — never to the database — through the policy
// core, which uses Casbin's DistributedEnforcer *Self methods with no
// persist function. Pub/sub loses messages during outages, so an
// anti-entropy job compares every loaded tenant's policy version with the
// database every few seconds, and after Redis comes back, and reloads
// stale tenants.
package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rediswatcher "github.com/casbin/redis-watcher/v2"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/go-co-op/gocron/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ourway/auth/policy"
)

// Sections of our own messages (Casbin's are "p" and "g").
const (
	secRole    = "role"
	secVersion = "version"
)

// Applier is what the sync needs from the policy core.
type Applier interface {
	ApplyRemote(ctx context.Context, c policy.Change) (string, error)
	Resync(ctx context.Context, vr policy.VersionReader) (int, error)
}

// Options configure a Sync.
type Options struct {
	// RedisURL is redis://host:port[/db]; empty disables pub/sub (the
	// anti-entropy job still runs).
	RedisURL string
	// Channel is the pub/sub channel (default "/auth/policy").
	Channel string
	// Interval is how often versions are compared (default 5s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Sync is the replica synchroniser.
type Sync struct {
	opts     Options
	apply    Applier
	versions policy.VersionReader
	log      *slog.Logger
	id       string

	mu      sync.Mutex
	watcher *rediswatcher.Watcher
	clients []*redis.Client
	pending map[string]*policy.Change // sender|domain -> change being received
	brk     *breaker.Breaker
	sched   gocron.Scheduler
	resync  chan struct{}

	published, publishFailures, applied, reloads atomic.Int64
}

// New builds a Sync. Call Start to connect and schedule.
func New(versions policy.VersionReader, opts Options) *Sync {
	if opts.Channel == "" {
		opts.Channel = "/auth/policy"
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Sync{
		opts: opts, versions: versions, log: opts.Logger,
		id:      newID(),
		pending: map[string]*policy.Change{},
		brk:     breaker.New(3, 1, 2*time.Second),
		resync:  make(chan struct{}, 1),
	}
}

func newID() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
}

// Start schedules the anti-entropy job over apply and connects to Redis
// (retrying in the background while Redis is down). It returns at once.
func (s *Sync) Start(ctx context.Context, apply Applier) error {
	s.apply = apply
	sched, err := gocron.NewScheduler()
	if err != nil {
		return err
	}
	if _, err := sched.NewJob(gocron.DurationJob(s.opts.Interval), gocron.NewTask(func() { s.Resync(ctx) }),
		gocron.WithSingletonMode(gocron.LimitModeReschedule)); err != nil {
		return err
	}
	sched.Start()
	s.sched = sched
	go s.resyncOnSignal(ctx)
	if s.opts.RedisURL != "" {
		go s.connect(ctx)
	}
	return nil
}

// Stop stops the job and closes the watcher.
func (s *Sync) Stop() {
	if s.sched != nil {
		_ = s.sched.Shutdown()
	}
	s.mu.Lock()
	s.watcher = nil
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	// Closing our own clients ends the subscription; the watcher's Close
	// would also broadcast a "Close" message that every other replica logs
	// as unreadable.
	for _, c := range clients {
		_ = c.Close()
	}
}

// Resync runs one anti-entropy pass now.
func (s *Sync) Resync(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := s.apply.Resync(rctx, s.versions)
	if err != nil {
		s.log.Warn("anti-entropy pass failed", "err", err)
		return
	}
	if n > 0 {
		s.reloads.Add(int64(n))
		s.log.Info("anti-entropy reloaded stale tenants", "tenants", n)
	}
}

func (s *Sync) resyncOnSignal(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.resync:
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

// redisOptions turns redis://host:port/db into client options with short
// timeouts, so that a dead Redis never holds up a write for long.
func redisOptions(raw string) (redis.Options, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return redis.Options{}, fmt.Errorf("replica redis URL: %w", err)
	}
	o.DialTimeout = 200 * time.Millisecond
	o.ReadTimeout = 200 * time.Millisecond
	o.WriteTimeout = 200 * time.Millisecond
	o.MaxRetries = 1
	return *o, nil
}

// connect creates the watcher, retrying until Redis answers.
func (s *Sync) connect(ctx context.Context) {
	opts, err := redisOptions(s.opts.RedisURL)
	if err != nil {
		s.log.Error("replica sync disabled", "err", err)
		return
	}
	var connects atomic.Int64
	opts.OnConnect = func(ctx context.Context, _ *redis.Conn) error {
		// A connection (re)opened: whatever was published while Redis was
		// away is lost, so compare versions now (not for the first two: the
		// subscriber's and the publisher's initial connections).
		if connects.Add(1) > 2 {
			s.triggerResync()
		}
		return nil
	}
	backoff := 200 * time.Millisecond
	for {
		sub, pub := redis.NewClient(&opts), redis.NewClient(&opts)
		w, err := rediswatcher.NewWatcher(opts.Addr, rediswatcher.WatcherOptions{
			Options: opts, SubClient: sub, PubClient: pub, Channel: s.opts.Channel, IgnoreSelf: true, LocalID: s.id,
			OptionalUpdateCallback: s.receive,
		})
		if err != nil {
			_ = sub.Close()
			_ = pub.Close()
		}
		if err == nil {
			s.mu.Lock()
			s.watcher = w.(*rediswatcher.Watcher)
			s.clients = []*redis.Client{sub, pub}
			s.mu.Unlock()
			s.log.Info("replica sync connected to Redis", "channel", s.opts.Channel)
			s.triggerResync()
			return
		}
		s.log.Warn("replica sync: Redis unreachable, retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// Publish implements policy.Publisher: it sends the change's operations
// and its version marker. Failures are counted and logged; Resync repairs.
func (s *Sync) Publish(ctx context.Context, c policy.Change) error {
	s.mu.Lock()
	w := s.watcher
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	dom := c.Domain()
	err := s.brk.Run(func() error {
		for _, op := range c.Ops {
			var err error
			switch op.Kind {
			case policy.OpAddRules:
				err = w.UpdateForAddPolicies(op.Ptype[:1], op.Ptype, op.Rules...)
			case policy.OpRemoveRules:
				err = w.UpdateForRemovePolicies(op.Ptype[:1], op.Ptype, op.Rules...)
			case policy.OpRemoveFiltered:
				err = w.UpdateForRemoveFilteredPolicy(op.Ptype[:1], op.Ptype, op.FieldIndex, op.Values...)
			case policy.OpAddRole:
				err = w.UpdateForAddPolicy(secRole, secRole, dom, op.Role)
			case policy.OpRemoveRole:
				err = w.UpdateForRemovePolicy(secRole, secRole, dom, op.Role)
			}
			if err != nil {
				return err
			}
		}
		return w.UpdateForAddPolicy(secVersion, secVersion, dom, strconv.FormatInt(c.Version, 10))
	})
	if err != nil {
		s.publishFailures.Add(1)
		s.log.Warn("publish policy change failed; other replicas catch up by anti-entropy", "tenant", c.TenantID, "err", err)
		return err
	}
	s.published.Add(1)
	return nil
}

// receive is the watcher callback: it collects a sender's operations for a
// tenant until the version marker, then applies them to memory.
func (s *Sync) receive(data string) {
	var m rediswatcher.MSG
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		s.log.Warn("replica sync: unreadable message", "err", err)
		return
	}
	dom, op, ok := decode(m)
	if !ok {
		s.log.Warn("replica sync: unexpected message; resyncing", "method", m.Method, "sec", m.Sec)
		s.triggerResync()
		return
	}
	id, err := policy.ParseDomain(dom)
	if err != nil {
		s.triggerResync()
		return
	}
	key := m.ID + "|" + dom
	s.mu.Lock()
	c := s.pending[key]
	if c == nil {
		c = &policy.Change{TenantID: id}
		s.pending[key] = c
	}
	if m.Sec != secVersion {
		c.Ops = append(c.Ops, op)
		s.mu.Unlock()
		return
	}
	delete(s.pending, key)
	s.mu.Unlock()
	v, err := strconv.ParseInt(m.NewRule[1], 10, 64)
	if err != nil {
		s.triggerResync()
		return
	}
	c.Version = v
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	what, err := s.apply.ApplyRemote(ctx, *c)
	if err != nil {
		s.log.Warn("apply remote change failed", "tenant", id, "err", err)
		return
	}
	s.applied.Add(1)
	if what == "reloaded" {
		s.reloads.Add(1)
	}
}

// decode reads the tenant and operation of one watcher message.
func decode(m rediswatcher.MSG) (string, policy.Op, bool) {
	dom := func(sec string, rule []string) (string, bool) {
		i := 1
		if sec == "g" {
			i = 2
		}
		if len(rule) <= i {
			return "", false
		}
		return rule[i], true
	}
	switch {
	case m.Sec == secVersion || m.Sec == secRole:
		if len(m.NewRule) != 2 {
			return "", policy.Op{}, false
		}
		kind := policy.OpAddRole
		if m.Method == rediswatcher.UpdateForRemovePolicy {
			kind = policy.OpRemoveRole
		}
		return m.NewRule[0], policy.Op{Kind: kind, Role: m.NewRule[1]}, true
	case m.Method == rediswatcher.UpdateForAddPolicies || m.Method == rediswatcher.UpdateForRemovePolicies:
		if len(m.NewRules) == 0 {
			return "", policy.Op{}, false
		}
		d, ok := dom(m.Sec, m.NewRules[0])
		kind := policy.OpAddRules
		if m.Method == rediswatcher.UpdateForRemovePolicies {
			kind = policy.OpRemoveRules
		}
		return d, policy.Op{Kind: kind, Ptype: m.Ptype, Rules: m.NewRules}, ok
	case m.Method == rediswatcher.UpdateForRemoveFilteredPolicy:
		rule := make([]string, m.FieldIndex+len(m.FieldValues))
		copy(rule[m.FieldIndex:], m.FieldValues)
		d, ok := dom(m.Sec, rule)
		return d, policy.Op{Kind: policy.OpRemoveFiltered, Ptype: m.Ptype, FieldIndex: m.FieldIndex, Values: m.FieldValues}, ok && d != ""
	}
	return "", policy.Op{}, false
}

// Stats are counters for metrics.
type Stats struct {
	Published, PublishFailures, Applied, Reloads int64
	Connected                                    bool
}

// Stats returns the counters.
func (s *Sync) Stats() Stats {
	s.mu.Lock()
	connected := s.watcher != nil
	s.mu.Unlock()
	return Stats{Published: s.published.Load(), PublishFailures: s.publishFailures.Load(),
		Applied: s.applied.Load(), Reloads: s.reloads.Load(), Connected: connected}
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
