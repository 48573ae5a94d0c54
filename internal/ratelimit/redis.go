package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is decide and combine of gcra.go in Lua, over every limit of a
// request at once. KEYS: one key per limit. ARGV[1]: the time in
// microseconds since 2017-01-01 ("" takes Redis TIME, so that the clocks of
// the replicas do not matter; tests pass their own clock); then the count and
// the period in microseconds of each limit. It returns 1 or 0 (allowed),
// then for each limit: allowed (1/0), requests remaining, µs to retry, µs to
// reset. Keys are written only when every limit allows the request.
// Numbers travel as "%.17g" strings, which read back exactly.
var gcraScript = redis.NewScript(`
local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = (tonumber(t[1]) - 1483228800) * 1000000 + tonumber(t[2])
end
local n = #KEYS
local out = {1}
local newtats = {}
local all = true
for i = 1, n do
  local count = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local e = period / count
  local burst = e * count
  local tat = tonumber(redis.call("GET", KEYS[i]))
  if not tat or tat < now then
    tat = now
  end
  local newtat = tat + e
  local allowat = newtat - burst
  local diff = now - allowat
  if diff < 0 then
    all = false
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, string.format("%.17g", -diff))
    table.insert(out, string.format("%.17g", tat - now))
  else
    newtats[i] = newtat
    table.insert(out, 1)
    table.insert(out, math.floor(diff / e))
    table.insert(out, "0")
    table.insert(out, string.format("%.17g", newtat - now))
  end
end
if all then
  for i = 1, n do
    local ttl = math.ceil((newtats[i] - now) / 1000)
    if ttl < 1 then
      ttl = 1
    end
    redis.call("SET", KEYS[i], string.format("%.17g", newtats[i]), "PX", ttl)
  end
else
  out[1] = 0
end
return out
`)

// Redis is a Store shared by every replica through Redis.
type Redis struct {
	client *redis.Client
	prefix string
	// now, when set, replaces Redis TIME (tests only).
	now func() time.Time
}

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Prefix starts every key (default "auth:rl:").
	Prefix string
	// Timeout bounds dialling and each read and write (default 150 ms):
	// an unreachable Redis must cost little before the fallback takes over.
	Timeout time.Duration
	// Now replaces Redis TIME as the clock (tests only).
	Now func() time.Time
}

// NewRedis connects (lazily) to the Redis of a redis:// or rediss:// URL.
func NewRedis(rawURL string, opts RedisOptions) (*Redis, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		// The URL may hold a password: never repeat it.
		return nil, errors.New("rate-limit storage URL is not a valid redis:// URL")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 150 * time.Millisecond
	}
	if opts.Prefix == "" {
		opts.Prefix = "auth:rl:"
	}
	o.DialTimeout = opts.Timeout
	o.ReadTimeout = opts.Timeout
	o.WriteTimeout = opts.Timeout
	o.PoolTimeout = opts.Timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1 // a failure goes to the fallback, not to a retry
	o.DialerRetries = 1
	o.DialerRetryTimeout = 10 * time.Millisecond
	o.DisableIdentity = true
	return &Redis{client: redis.NewClient(o), prefix: opts.Prefix, now: opts.Now}, nil
}

// Allow implements Store.
func (r *Redis) Allow(ctx context.Context, key string, limits []Limit) (Result, error) {
	if len(limits) == 0 {
		return Result{Allowed: true}, nil
	}
	keys := make([]string, len(limits))
	args := make([]any, 0, 1+2*len(limits))
	if r.now != nil {
		args = append(args, strconv.FormatFloat(micros(r.now()), 'g', -1, 64))
	} else {
		args = append(args, "")
	}
	// The hash tag keeps a request's keys in one slot of a Redis Cluster.
	base := r.prefix + "{" + key + "}:"
	for i, l := range limits {
		keys[i] = base + strconv.Itoa(l.Count) + "/" + strconv.FormatInt(int64(l.Period/time.Microsecond), 10)
		args = append(args, l.Count, int64(l.Period/time.Microsecond))
	}
	v, err := gcraScript.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) != 1+4*len(limits) {
		return Result{}, fmt.Errorf("rate-limit script returned %d values, want %d", len(v), 1+4*len(limits))
	}
	steps := make([]step, len(limits))
	for i := range limits {
		f := v[1+4*i : 5+4*i]
		ok, err1 := asInt(f[0])
		rem, err2 := asInt(f[1])
		retry, err3 := asFloat(f[2])
		reset, err4 := asFloat(f[3])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return Result{}, fmt.Errorf("rate-limit script: %w", err)
		}
		steps[i] = step{allowed: ok == 1, remaining: float64(rem), retry: retry, reset: reset}
	}
	return combine(steps, limits), nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// Clear deletes every key under the store's prefix (tests only).
func (r *Redis) Clear(ctx context.Context) error {
	iter := r.client.Scan(ctx, 0, r.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := r.client.Del(ctx, iter.Val()).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

func asInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %T", v)
	}
	return n, nil
}

func asFloat(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("want a number as text, got %T", v)
	}
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}

// LogRedisTo sends go-redis's own messages (a failed dial, say: one per
// attempt) to log at debug level instead of unstructured lines on stderr;
// the Limiter reports outages itself, once each. It affects every go-redis
// client of the process.
func LogRedisTo(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "log", "go-redis")
	}
}
