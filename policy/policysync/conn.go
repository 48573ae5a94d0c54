package policysync

import (
	"context"
	"errors"
	"strconv"
	"time"

	rediswatcher "github.com/casbin/redis-watcher/v2"
	"github.com/redis/go-redis/v9"
)

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
