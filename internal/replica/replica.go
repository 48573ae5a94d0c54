// Package replica keeps the replicas of auth-server in sync through Redis.
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
package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	ApplyRemote(ctx context.Context, c policy.Change) (string, error)
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
	sched   gocron.Scheduler
	cancel  context.CancelFunc
	done    sync.WaitGroup

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

// New builds a Sync. Call Start to connect and schedule.
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
		brk:     breaker.New(3, 1, time.Second),
		resync:  make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		echo:    make(chan struct{}, 1),
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start schedules the anti-entropy job over apply and connects to Redis
// (retrying in the background while Redis is down). It returns at once.
func (s *Sync) Start(ctx context.Context, apply Applier) error {
	s.apply = apply
	ctx, s.cancel = context.WithCancel(ctx)
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
	s.goRun(func() { s.resyncOnSignal(ctx) })
	if s.opts.RedisURL != "" {
		s.goRun(func() {
			if s.connect(ctx) {
				s.watch(ctx)
			}
		})
	}
	return nil
}

func (s *Sync) goRun(f func()) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		f()
	}()
}

// Stop stops the job and closes the watcher.
func (s *Sync) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.sched != nil {
		_ = s.sched.Shutdown()
	}
	s.done.Wait()
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

// redisOptions turns redis://host:port/db into client options with short
// timeouts and no dial retries, so that a dead Redis never holds up a
// write for long (go-redis otherwise retries a failed dial 5 times, 100 ms
// apart, for each command).
func redisOptions(raw string) (redis.Options, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return redis.Options{}, errors.New("replica redis URL: must be redis://host:port[/db]")
	}
	o.DialTimeout = 200 * time.Millisecond
	o.ReadTimeout = 200 * time.Millisecond
	o.WriteTimeout = 200 * time.Millisecond
	o.PoolTimeout = 200 * time.Millisecond
	o.DialerRetries = 1
	o.MaxRetries = 1
	return *o, nil
}

// connect reads the replica scope and creates the watcher, retrying until
// the database and Redis answer. It reports whether it connected.
func (s *Sync) connect(ctx context.Context) bool {
	opts, err := redisOptions(s.opts.RedisURL)
	if err != nil {
		s.log.Error("replica sync disabled", "err", err)
		return false
	}
	backoff := 200 * time.Millisecond
	retry := func(what string, err error) bool {
		s.log.Warn("replica sync: "+what+", retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		return true
	}
	var scope string
	for scope == "" {
		if scope, err = s.store.ReplicaScope(ctx); err != nil {
			scope = ""
			if !retry("cannot read the replica scope", err) {
				return false
			}
		}
	}
	s.mu.Lock()
	s.scope, s.localID = scope, scope+"/"+randomID()
	s.mu.Unlock()
	subOpts, pubOpts := opts, opts
	subOpts.OnConnect = func(context.Context, *redis.Conn) error {
		// The subscription (re)connects: until a probe sent from now on
		// comes back, this replica may miss messages.
		s.minProbe.Store(s.probeSent.Load() + 1)
		s.setLive(false)
		s.wakeProbe()
		return nil
	}
	for {
		sub, pub := redis.NewClient(&subOpts), redis.NewClient(&pubOpts)
		w, err := rediswatcher.NewWatcher(opts.Addr, rediswatcher.WatcherOptions{
			Options: opts, SubClient: sub, PubClient: pub, Channel: s.opts.Channel, IgnoreSelf: true,
			LocalID: s.localID, OptionalUpdateCallback: s.receive,
		})
		if err == nil {
			s.mu.Lock()
			s.watcher, s.pub = w.(*rediswatcher.Watcher), pub
			s.clients = []*redis.Client{sub, pub}
			s.mu.Unlock()
			s.log.Info("replica sync connected to Redis", "channel", s.opts.Channel)
			return true
		}
		_ = sub.Close()
		_ = pub.Close()
		if !retry("Redis unreachable", err) {
			return false
		}
	}
}

// watch publishes a probe every heartbeat (every 200 ms while the
// subscription is not confirmed) and notes when one does not come back.
func (s *Sync) watch(ctx context.Context) {
	for {
		// receive sets live when the probe comes back.
		if n := s.probe(ctx); (n == 0 || !s.awaitEcho(ctx, n)) && ctx.Err() == nil {
			s.setLive(false)
		} else if s.hasHints() {
			s.flushHints()
		}
		wait := s.opts.Heartbeat
		if !s.live.Load() {
			wait = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(wait):
		}
	}
}

// probe publishes a probe and returns its nonce (0: not published).
func (s *Sync) probe(ctx context.Context) int64 {
	s.mu.Lock()
	pub, id := s.pub, s.localID
	s.mu.Unlock()
	if pub == nil {
		return 0
	}
	n := s.probeSent.Add(1)
	msg := &rediswatcher.MSG{Method: rediswatcher.UpdateForAddPolicy, ID: id + probeSuffix,
		Sec: secProbe, Ptype: secProbe, NewRule: []string{strconv.FormatInt(n, 10)}}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := pub.Publish(pctx, s.opts.Channel, msg).Err(); err != nil {
		return 0
	}
	return n
}

// awaitEcho waits up to 2 s for probe n to come back.
func (s *Sync) awaitEcho(ctx context.Context, n int64) bool {
	timeout := time.NewTimer(2 * time.Second)
	defer timeout.Stop()
	for s.probeSeen.Load() < n {
		select {
		case <-ctx.Done():
			return false
		case <-timeout.C:
			return false
		case <-s.echo:
		}
	}
	return true
}

// sawProbe records that probe n came back: the subscription is live.
func (s *Sync) sawProbe(n int64) {
	for {
		cur := s.probeSeen.Load()
		if n <= cur || s.probeSeen.CompareAndSwap(cur, n) {
			break
		}
	}
	s.setLive(true)
}

func (s *Sync) wakeProbe() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// setLive records whether the subscription is confirmed. When it becomes
// confirmed, whatever was published while it was not is only in the
// database: an anti-entropy pass runs at once.
func (s *Sync) setLive(live bool) {
	if s.live.Swap(live) == live {
		return
	}
	if live {
		s.log.Info("replica sync: subscription live; comparing versions with the database")
		s.triggerResync()
	} else {
		s.log.Warn("replica sync: subscription not confirmed; changes of other replicas wait for the next anti-entropy pass")
	}
}

// Publish implements policy.Publisher: it sends the change's operations
// and its version marker (or a reload hint when the operations are not
// known). Failures are counted and logged; the change's tenant is hinted
// again once Redis answers, and Resync repairs in any case.
func (s *Sync) Publish(ctx context.Context, c policy.Change) error {
	if s.opts.RedisURL == "" {
		return nil
	}
	s.mu.Lock()
	w := s.watcher
	s.mu.Unlock()
	err := errors.New("not connected to Redis yet")
	if w != nil {
		err = s.brk.Run(func() error { return send(w, c) })
	}
	if err != nil {
		s.publishFailures.Add(1)
		s.mu.Lock()
		s.dirty[c.TenantID] = max(s.dirty[c.TenantID], c.Version)
		s.mu.Unlock()
		if !s.failing.Swap(true) {
			s.log.Warn("publish policy change failed; other replicas catch up when Redis answers, or by anti-entropy",
				"tenant", c.TenantID, "err", err)
		}
		return err
	}
	s.published.Add(1)
	if s.failing.Swap(false) {
		s.log.Info("publishing policy changes again")
		s.triggerResync() // sends the hints
	}
	return nil
}

// send publishes one change.
func send(w *rediswatcher.Watcher, c policy.Change) error {
	dom, v := c.Domain(), strconv.FormatInt(c.Version, 10)
	if c.Reload {
		return w.UpdateForAddPolicy(secReload, secReload, dom, v)
	}
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
		default:
			err = fmt.Errorf("unknown operation %q", op.Kind)
		}
		if err != nil {
			return err
		}
	}
	return w.UpdateForAddPolicy(secVersion, secVersion, dom, v)
}

func (s *Sync) hasHints() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty) > 0
}

// flushHints tells the other replicas to reload the tenants whose changes
// could not be published.
func (s *Sync) flushHints() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	w := s.watcher
	hints := make(map[int64]int64, len(s.dirty))
	for id, v := range s.dirty {
		hints[id] = v
	}
	s.mu.Unlock()
	if w == nil || len(hints) == 0 {
		return
	}
	sent := 0
	for id, v := range hints {
		if err := s.brk.Run(func() error { return send(w, policy.Change{TenantID: id, Version: v, Reload: true}) }); err != nil {
			return // the next pass tries again
		}
		s.mu.Lock()
		if s.dirty[id] == v {
			delete(s.dirty, id)
		}
		s.mu.Unlock()
		sent++
	}
	s.log.Info("replica sync: told the other replicas about changes published late", "tenants", sent)
}

// receive is the watcher callback: it collects a sender's operations for a
// tenant until the version marker, then applies them to memory.
func (s *Sync) receive(data string) {
	var m rediswatcher.MSG
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		s.log.Warn("replica sync: unreadable message", "err", err)
		return
	}
	s.mu.Lock()
	scope, self := s.scope, s.localID
	s.mu.Unlock()
	if !strings.HasPrefix(m.ID, scope+"/") {
		if !s.foreign.Swap(true) {
			s.log.Info("replica sync: ignoring messages of another database on the channel", "channel", s.opts.Channel)
		}
		return
	}
	if m.Sec == secProbe {
		if m.ID == self+probeSuffix && len(m.NewRule) == 1 {
			if n, err := strconv.ParseInt(m.NewRule[0], 10, 64); err == nil && n >= s.minProbe.Load() {
				s.sawProbe(n)
				select {
				case s.echo <- struct{}{}:
				default:
				}
			}
		}
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
	if m.Sec != secVersion && m.Sec != secReload {
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
	if m.Sec == secReload {
		// Operations collected before a reload hint belong to a change
		// whose marker was lost: the reload covers them.
		c.Ops, c.Reload = nil, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	what, err := s.apply.ApplyRemote(ctx, *c)
	if err != nil {
		s.log.Warn("apply remote change failed", "tenant", id, "err", err)
		return
	}
	switch what {
	case "applied":
		s.applied.Add(1)
	case "reloaded":
		s.applied.Add(1)
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
	case m.Sec == secVersion || m.Sec == secReload || m.Sec == secRole:
		if len(m.NewRule) != 2 {
			return "", policy.Op{}, false
		}
		kind := policy.OpAddRole
		if m.Method == rediswatcher.UpdateForRemovePolicy {
			kind = policy.OpRemoveRole
		}
		return m.NewRule[0], policy.Op{Kind: kind, Role: m.NewRule[1]}, true
	case m.Sec != "p" && m.Sec != "g":
		return "", policy.Op{}, false
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
