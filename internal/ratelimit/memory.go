package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Memory is a Store in process memory, for one replica (memory://) or as
// the local fallback when Redis is unavailable. Its decisions are those of
// the Redis store for the same sequence of requests.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [memShards]memShard
	// perShard bounds the keys of a shard; a full shard forgets a key to
	// make room (that key starts again with a full burst).
	perShard int
}

const (
	memShards = 64
	// sweepEvery is how many decisions a shard takes between two sweeps of
	// its expired keys.
	sweepEvery = 1024
	// DefaultMaxKeys bounds the keys a Memory store holds.
	DefaultMaxKeys = 1 << 20
)

type memShard struct {
	mu   sync.Mutex
	keys map[string]*memEntry
	ops  int
}

type memEntry struct {
	tats []float64
	// until is the largest TAT: past it the key is as good as new.
	until float64
}

// NewMemory returns an empty Memory store. now is its clock (nil:
// time.Now); maxKeys bounds the keys it holds (0: DefaultMaxKeys).
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	m := &Memory{now: now, seed: maphash.MakeSeed(), perShard: max(1, maxKeys/memShards)}
	for i := range m.shards {
		m.shards[i].keys = make(map[string]*memEntry)
	}
	return m
}

// Allow implements Store; it never fails.
func (m *Memory) Allow(_ context.Context, key string, limits []Limit) (Result, error) {
	if len(limits) == 0 {
		return Result{Allowed: true}, nil
	}
	now := micros(m.now())
	sh := &m.shards[maphash.String(m.seed, key)%memShards]
	var buf [4]step
	steps := buf[:0]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.ops++
	if sh.ops%sweepEvery == 0 {
		sh.sweep(now)
	}
	e := sh.keys[key]
	if e != nil && len(e.tats) != len(limits) {
		e = nil
	}
	for i, l := range limits {
		var tat float64
		if e != nil {
			tat = e.tats[i]
		}
		steps = append(steps, decide(tat, e != nil, now, l))
	}
	r := combine(steps, limits)
	if !r.Allowed {
		return r, nil
	}
	if e == nil {
		if len(sh.keys) >= m.perShard {
			sh.sweep(now)
			for k := range sh.keys {
				if len(sh.keys) < m.perShard {
					break
				}
				delete(sh.keys, k)
			}
		}
		e = &memEntry{tats: make([]float64, len(limits))}
		sh.keys[key] = e
	}
	e.until = 0
	for i, s := range steps {
		e.tats[i] = s.newTAT
		e.until = max(e.until, s.newTAT)
	}
	return r, nil
}

// sweep forgets the keys whose every TAT has passed.
func (sh *memShard) sweep(now float64) {
	for k, e := range sh.keys {
		if e.until <= now {
			delete(sh.keys, k)
		}
	}
}

// Len returns the number of keys held (for tests and metrics).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.keys)
		sh.mu.Unlock()
	}
	return n
}
