package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Route classes. A request of class Reads, Writes or Unauthenticated that
// has no limits of its own is counted against Default, and allowed without
// counting when Default has none either; Unauthenticated is keyed by client
// IP and counts requests the authentication gate refuses.
//
// TenantCreation (keyed by client IP) and TenantCreationGlobal (one key
// for the whole service) count the writes that create a tenant. They never
// fall back to Default: without limits of their own they allow everything.
const (
	Default              = "default"
	Reads                = "reads"
	Writes               = "writes"
	Unauthenticated      = "unauthenticated"
	TenantCreation       = "tenant_creation"
	TenantCreationGlobal = "tenant_creation_global"
)

// Classes lists the route classes reported in metrics.
var Classes = []string{Reads, Writes, Unauthenticated, TenantCreation, TenantCreationGlobal}

// Shared is a store shared across replicas (Redis) that can be probed.
type Shared interface {
	Store
	Ping(ctx context.Context) error
}

// Options configures a Limiter.
type Options struct {
	// Limits maps a class to its limits; a class without limits (Default
	// included) allows everything.
	Limits map[string][]Limit
	// Shared is the store shared by the replicas (nil: memory only).
	Shared Shared
	// Replicas divides every limit for the local fallback used while the
	// shared store is unavailable (N replicas each allow 1/N of a limit);
	// 0 or 1 keeps the limits as they are.
	Replicas int
	// Timeout bounds one decision by the shared store (default 200 ms).
	Timeout time.Duration
	// ProbeInterval is how often an unavailable shared store is probed
	// (default 250 ms).
	ProbeInterval time.Duration
	// Now is the clock of the local store (nil: time.Now).
	Now func() time.Time
	// MaxKeys bounds the keys kept in memory (0: DefaultMaxKeys).
	MaxKeys int
	Logger  *slog.Logger
}

// Limiter applies the limits of each route class to keys (a tenant, an IP),
// through the shared store when there is one and it is reachable, and
// through local memory otherwise.
type Limiter struct {
	classes map[string]*class
	shared  Shared
	local   *Memory
	denied  *denyCache
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration
	probe   time.Duration

	sharedUp   atomic.Bool
	fallbacks  atomic.Uint64
	outages    atomic.Uint64
	rejections sync.Map // class → *atomic.Uint64

	down chan struct{} // markDown asks Run to probe the shared store
}

type class struct {
	name   string // the bucket: a class without limits of its own uses Default's
	limits []Limit
	local  []Limit // limits of the local fallback when a shared store is set
	policy string  // RateLimit-Policy
	// localPolicy is the policy of local while the shared store is away.
	localPolicy string
}

// New returns a Limiter. It errors if a limit is not positive.
func New(opts Options) (*Limiter, error) {
	for name, limits := range opts.Limits {
		for _, l := range limits {
			if l.Count < 1 || l.Period <= 0 {
				return nil, errors.New("ratelimit: class " + name + " has a limit that allows nothing: " + l.String())
			}
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 200 * time.Millisecond
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 250 * time.Millisecond
	}
	l := &Limiter{
		classes: map[string]*class{},
		shared:  opts.Shared,
		local:   NewMemory(opts.Now, opts.MaxKeys),
		denied:  newDenyCache(opts.MaxKeys),
		now:     opts.Now,
		log:     opts.Logger,
		timeout: opts.Timeout,
		probe:   opts.ProbeInterval,
		down:    make(chan struct{}, 1),
	}
	l.sharedUp.Store(opts.Shared != nil)
	for _, name := range []string{Default, Reads, Writes, Unauthenticated, TenantCreation, TenantCreationGlobal} {
		limits := opts.Limits[name]
		bucket := name
		if len(limits) == 0 && !ownLimitsOnly(name) {
			limits, bucket = opts.Limits[Default], Default
		}
		c := &class{name: bucket, limits: limits, local: limits, policy: policy(limits)}
		if opts.Shared != nil && opts.Replicas > 1 {
			c.local = make([]Limit, len(limits))
			for i, lim := range limits {
				c.local[i] = Limit{Count: max(1, (lim.Count+opts.Replicas-1)/opts.Replicas), Period: lim.Period}
			}
		}
		c.localPolicy = policy(c.local)
		l.classes[name] = c
	}
	for _, name := range Classes {
		l.rejections.Store(name, new(atomic.Uint64))
	}
	return l, nil
}

// ownLimitsOnly reports whether a class never falls back to Default's
// limits (the tenant-creation classes: unset, they do not limit).
func ownLimitsOnly(name string) bool { return name == TenantCreation || name == TenantCreationGlobal }

// policy renders limits in the syntax of RateLimit-Policy ("100;w=60").
func policy(limits []Limit) string {
	parts := make([]string, len(limits))
	for i, l := range limits {
		parts[i] = strconv.Itoa(l.Count) + ";w=" + strconv.FormatInt(int64((l.Period+time.Second-1)/time.Second), 10)
	}
	return strings.Join(parts, ", ")
}

func (l *Limiter) class(name string) *class {
	if c := l.classes[name]; c != nil {
		return c
	}
	return l.classes[Default]
}

// Allow decides one request of the class (Reads, Writes, Unauthenticated,
// TenantCreation, TenantCreationGlobal)
// from subject (a tenant or an IP, already namespaced by the caller). It
// never fails: when the shared store does not answer, the local store
// decides.
func (l *Limiter) Allow(ctx context.Context, className, subject string) Result {
	c := l.class(className)
	if len(c.limits) == 0 {
		return Result{Allowed: true} // a class without limits
	}
	key := c.name + ":" + subject
	if r, ok := l.denied.get(key, l.now()); ok {
		l.countRejection(className)
		return r
	}
	r, local := l.decide(ctx, c, key)
	r.Policy, r.Local = c.policy, local
	if local && l.shared != nil {
		r.Policy = c.localPolicy
	}
	if !r.Allowed {
		l.countRejection(className)
		l.denied.put(key, r, l.now())
	}
	return r
}

// Limited reports whether requests of the class are counted at all (the
// class, or Default it falls back to, has limits).
func (l *Limiter) Limited(className string) bool { return len(l.class(className).limits) > 0 }

// Describe renders the limits of the class as the settings write them
// ("100 per minute; 1000 per hour"), or "unlimited".
func (l *Limiter) Describe(className string) string {
	c := l.class(className)
	if len(c.limits) == 0 {
		return "unlimited"
	}
	parts := make([]string, len(c.limits))
	for i, lim := range c.limits {
		parts[i] = lim.String()
	}
	return strings.Join(parts, "; ")
}

// Blocked reports, without counting a request, whether subject is known to
// be over the limits of the class right now (it was refused recently and
// its wait has not passed). It asks no store: it is cheap enough to run
// before authentication.
func (l *Limiter) Blocked(className, subject string) (Result, bool) {
	c := l.class(className)
	r, ok := l.denied.get(c.name+":"+subject, l.now())
	if ok {
		l.countRejection(className)
	}
	return r, ok
}

func (l *Limiter) decide(ctx context.Context, c *class, key string) (Result, bool) {
	if l.shared != nil && l.sharedUp.Load() {
		sctx, cancel := context.WithTimeout(ctx, l.timeout)
		r, err := l.shared.Allow(sctx, key, c.limits)
		cancel()
		if err == nil {
			return r, false
		}
		if ctx.Err() == nil {
			// The store failed, not the client: go local until it is back.
			l.markDown(err)
		}
	}
	r, _ := l.local.Allow(ctx, key, c.local)
	if l.shared != nil {
		l.fallbacks.Add(1)
	}
	return r, l.shared != nil
}

// markDown switches to the local store and asks Run to probe the shared
// one.
func (l *Limiter) markDown(err error) {
	if !l.sharedUp.CompareAndSwap(true, false) {
		return
	}
	l.outages.Add(1)
	l.log.Warn("rate-limit store unavailable: local limits apply until it is back", "err", err)
	select {
	case l.down <- struct{}{}:
	default: // already asked
	}
}

// Run probes the shared store while it is unavailable, every
// ProbeInterval, and switches back to it once it answers, until ctx ends.
// Without Run, a limiter that lost its shared store keeps deciding locally.
func (l *Limiter) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.down:
		}
		if !l.probeUntilUp(ctx) {
			return nil
		}
	}
}

// probeUntilUp pings the shared store every ProbeInterval until it answers
// (true) or ctx ends (false).
func (l *Limiter) probeUntilUp(ctx context.Context) bool {
	t := time.NewTicker(l.probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, l.timeout)
		err := l.shared.Ping(pctx)
		cancel()
		if err == nil {
			l.sharedUp.Store(true)
			l.log.Info("rate-limit store is back: shared limits apply again")
			return true
		}
	}
}

func (l *Limiter) countRejection(className string) {
	if v, ok := l.rejections.Load(className); ok {
		v.(*atomic.Uint64).Add(1)
	}
}

// Rejections returns how many requests of the class were refused.
func (l *Limiter) Rejections(className string) uint64 {
	if v, ok := l.rejections.Load(className); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// Fallbacks returns how many decisions the local store took because the
// shared store was unavailable.
func (l *Limiter) Fallbacks() uint64 { return l.fallbacks.Load() }

// Outages returns how many times the shared store became unavailable.
func (l *Limiter) Outages() uint64 { return l.outages.Load() }

// SharedUp reports whether decisions go to the shared store (false when
// there is none or it is unavailable).
func (l *Limiter) SharedUp() bool { return l.sharedUp.Load() }

// HasShared reports whether a shared store is configured.
func (l *Limiter) HasShared() bool { return l.shared != nil }

// denyCache remembers, per key, until when requests are certainly refused:
// under GCRA a TAT never decreases, so a request refused with a wait of R is
// followed by refusals for every request before R has passed, on every
// replica. Answering those from memory spares the shared store a flood and
// lets the authentication gate refuse a flooding IP before any work.
type denyCache struct {
	seed     maphash.Seed
	shards   [memShards]denyShard
	perShard int
}

type denyShard struct {
	mu   sync.Mutex
	keys map[string]denied
	ops  int
}

type denied struct {
	until time.Time
	r     Result // as decided, at the time of the decision
	at    time.Time
}

func newDenyCache(maxKeys int) *denyCache {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	d := &denyCache{seed: maphash.MakeSeed(), perShard: max(1, maxKeys/memShards)}
	for i := range d.shards {
		d.shards[i].keys = make(map[string]denied)
	}
	return d
}

func (d *denyCache) put(key string, r Result, now time.Time) {
	sh := &d.shards[maphash.String(d.seed, key)%memShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.ops++
	if sh.ops%sweepEvery == 0 || len(sh.keys) >= d.perShard {
		for k, v := range sh.keys {
			if !now.Before(v.until) || len(sh.keys) >= d.perShard {
				delete(sh.keys, k)
			}
		}
	}
	sh.keys[key] = denied{until: now.Add(r.RetryAfter), r: r, at: now}
}

// get returns the refusal of key as it stands at now, if there is one.
func (d *denyCache) get(key string, now time.Time) (Result, bool) {
	sh := &d.shards[maphash.String(d.seed, key)%memShards]
	sh.mu.Lock()
	v, ok := sh.keys[key]
	if ok && !now.Before(v.until) {
		delete(sh.keys, key)
		ok = false
	}
	sh.mu.Unlock()
	if !ok {
		return Result{}, false
	}
	r := v.r
	elapsed := now.Sub(v.at)
	r.RetryAfter = v.until.Sub(now)
	r.ResetAfter = max(0, r.ResetAfter-elapsed)
	return r, true
}
