package filestore

import (
	"hash/maphash"
	"sync"
)

// DefaultCacheBytes bounds the read cache when Options.CacheBytes is zero:
// about 17,000 sealed sessions of 2 KB, more than the 10,000 that
// session.Manager keeps decoded.
const DefaultCacheBytes = 32 << 20

const (
	// cacheShards splits the cache, each shard with its own lock, so that
	// concurrent Gets of different keys rarely meet on one lock.
	cacheShards = 16
	// cacheEntryOverhead is what the cache counts for an entry besides its
	// key and value bytes: the map slot (key header, value struct, control
	// byte at 7/8 load) and the key's allocation rounding, rounded up.
	cacheEntryOverhead = 96
	// cacheMaxEntryShare: a value larger than 1/cacheMaxEntryShare of a
	// shard's budget is not cached, so one large value cannot empty a shard.
	cacheMaxEntryShare = 8
)

// cache keeps recent values in memory so that a Get of a live key needs no
// bbolt read transaction: bbolt serialises the start and end of every read
// transaction on one mutex (its metalock) and copies the meta page, which
// under hundreds of concurrent requests shows in the mutex profile and
// costs more CPU than the lookup itself. The Store owns its file (Open holds
// bbolt's exclusive file lock), so every change to the file goes through
// this Store and the cache can be kept exact rather than merely fresh.
//
// Coherence. Every write transaction runs under Store.wmu (bbolt runs one
// writer at a time anyway, so this costs no concurrency), and for each key
// it may change:
//
//   - before its commit, begin removes the key from the cache and marks it
//     as being written: while the mark is on, a Get finds no entry and
//     reads bbolt, and no Get may fill the entry;
//   - after the commit (or the failure), end clears the mark, stores the
//     new value if the write set one, and advances the shard's generation.
//
// A Get that misses notes the shard's generation before its read
// transaction and fills the cache only if the generation is unchanged and
// the key is not marked: a write that committed after the read began has
// either ended (generation moved) or not (key marked), so a value read
// before a Delete or Set can never be cached after it. Writers serialised
// under wmu end in commit order, so the value a Set leaves cached is the
// one bbolt holds.
//
// Entries carry the record's expiry, and a hit is served only while
// expiry > now by the Store's clock, as a bbolt read would; an expired hit
// falls through to the bbolt path, which removes the entry from both.
//
// Values are immutable once cached: Get hands them out read-only, and a
// write replaces an entry rather than changing its bytes.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	m       map[string]cached
	bytes   int64 // the sizes of the entries in m
	budget  int64 // the bound on bytes
	gen     uint64
	writing map[string]int // keys a write transaction may be changing

	_ [64]byte // keeps neighbouring shards' locks off one cache line
}

// cached is a value and its expiry (Unix nanoseconds); val is never
// modified once cached.
type cached struct {
	val []byte
	exp int64
}

// newCache returns a cache of about budget bytes, or nil (no cache) if
// budget <= 0.
func newCache(budget int64) *cache {
	if budget <= 0 {
		return nil
	}
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.m = make(map[string]cached)
		sh.writing = make(map[string]int)
		sh.budget = budget / cacheShards
	}
	return c
}

// shard is key's shard; nil when the cache is off, and every cacheShard
// method is then a no-op.
func (c *cache) shard(key string) *cacheShard {
	if c == nil {
		return nil
	}
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// lookup returns key's value if it is cached and live at now (Unix nanos).
// On a miss, gen is the shard's generation, to hand to fill.
func (sh *cacheShard) lookup(key string, now int64) (val []byte, ok bool, gen uint64) {
	if sh == nil {
		return nil, false, 0
	}
	sh.mu.RLock()
	e, ok := sh.m[key]
	gen = sh.gen
	sh.mu.RUnlock()
	if !ok || e.exp <= now {
		return nil, false, gen
	}
	return e.val, true, gen
}

// fill caches val, read from bbolt after lookup returned gen, unless a
// write to the shard has ended since or one to key is under way.
func (sh *cacheShard) fill(key string, val []byte, exp int64, gen uint64) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen || sh.writing[key] > 0 {
		return
	}
	sh.putLocked(key, val, exp)
}

// begin marks key as being written and forgets its value; call it, under
// Store.wmu, before the write transaction commits.
func (sh *cacheShard) begin(key string) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	sh.writing[key]++
	sh.removeLocked(key)
	sh.mu.Unlock()
}

// end clears begin's mark once the transaction has committed or failed,
// caching val (nil: nothing) as key's value, and moves the generation on
// so that no fill begun before the commit lands.
func (sh *cacheShard) end(key string, val []byte, exp int64) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writing[key]--; sh.writing[key] <= 0 {
		delete(sh.writing, key)
	}
	sh.removeLocked(key)
	if val != nil && sh.writing[key] == 0 {
		sh.putLocked(key, val, exp)
	}
	sh.gen++
}

func (sh *cacheShard) removeLocked(key string) {
	if e, ok := sh.m[key]; ok {
		sh.bytes -= entrySize(key, e.val)
		delete(sh.m, key)
	}
}

// putLocked caches key's value, evicting arbitrary entries (Go's map order
// is randomised) until the shard is within budget. A value too large for
// the shard is not cached.
func (sh *cacheShard) putLocked(key string, val []byte, exp int64) {
	sh.removeLocked(key)
	size := entrySize(key, val)
	if size > sh.budget/cacheMaxEntryShare {
		return
	}
	for k, e := range sh.m {
		if sh.bytes+size <= sh.budget {
			break
		}
		sh.bytes -= entrySize(k, e.val)
		delete(sh.m, k)
	}
	sh.m[key] = cached{val: val, exp: exp}
	sh.bytes += size
}

// reset empties the cache; Close calls it to release the memory.
func (c *cache) reset() {
	if c == nil {
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.bytes = 0
		sh.gen++
		sh.mu.Unlock()
	}
}

// entrySize is what an entry counts against the budget: key and value
// bytes (the value's capacity, which is what it holds) and a fixed
// overhead.
func entrySize(key string, val []byte) int64 {
	return int64(len(key) + cap(val) + cacheEntryOverhead)
}
