// Package ratelimit keeps one token bucket per client key (a session, an
// IP address) and answers 429 with Retry-After when a bucket is empty.
// Buckets idle for a while are dropped; the table is bounded, and when it
// is full of active keys it starts afresh rather than grow without limit.
//
// Allow runs on every API call, so the table is split into shards, each
// with its own lock, map, call count and sweep: concurrent calls for
// different keys rarely wait on one another, and a sweep holds one shard's
// lock while it visits at most MaxKeys/shards buckets, instead of stopping
// every call while it visits them all. A key's shard is chosen by a hash
// seeded per Limiter, so clients cannot aim their keys at one shard.
package ratelimit

import (
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"golang.org/x/time/rate"
)

// MaxKeys bounds the number of buckets kept. Each shard keeps at most
// MaxKeys/shards of them, so a shard may start afresh a little before the
// whole table holds MaxKeys keys (keys hash evenly, but not exactly).
const MaxKeys = 100_000

// idle is how long an unused bucket is kept.
const idle = 10 * time.Minute

const (
	// shards splits the table; a power of two well above the core count,
	// so that even 256 concurrent calls seldom meet on a shard.
	shards = 32
	// shardKeys is each shard's share of MaxKeys.
	shardKeys = MaxKeys / shards
	// sweepEvery is how many of its calls a shard takes between sweeps:
	// as often, in calls to the whole Limiter, as one sweep every 4,096
	// calls, and each sweep visits a shard's share of the buckets.
	sweepEvery = 4096 / shards
)

// Limiter limits events per key.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	seed   maphash.Seed
	shards [shards]shard
}

// shard is one part of the table, under its own lock.
type shard struct {
	mu    sync.Mutex
	m     map[string]*bucket
	calls int

	_ [64]byte // keeps neighbouring shards' locks off one cache line
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// New allows perSecond events per key with bursts of burst; now may be nil.
func New(perSecond float64, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{limit: rate.Limit(perSecond), burst: burst, now: now, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*bucket)
	}
	return l
}

// Allow takes one event for key; when none is left it says how long to
// wait.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	sh := l.shard(key)
	sh.mu.Lock()
	b := sh.m[key]
	if b == nil {
		if len(sh.m) >= shardKeys {
			sh.sweepLocked(now)
			if len(sh.m) >= shardKeys {
				clear(sh.m)
			}
		}
		b = &bucket{l: rate.NewLimiter(l.limit, l.burst)}
		sh.m[key] = b
	}
	b.seen = now
	if sh.calls++; sh.calls%sweepEvery == 0 {
		sh.sweepLocked(now)
	}
	sh.mu.Unlock()
	r := b.l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// shard is key's shard.
func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%shards]
}

// sweepLocked drops the shard's buckets idle at now.
func (sh *shard) sweepLocked(now time.Time) {
	for k, b := range sh.m {
		if now.Sub(b.seen) > idle {
			delete(sh.m, k)
		}
	}
}

// Middleware limits requests by key(r); a request whose key is "" passes.
func (l *Limiter) Middleware(key func(*http.Request) string, next http.Handler) http.Handler {
	return Middleware(l, key, next)
}

// Allower takes one event for a key, as Limiter does; other stores of
// counters (redisstore.Limiter, shared by instances) implement it too.
type Allower interface {
	Allow(key string) (bool, time.Duration)
}

// Middleware limits requests by key(r) with l, answering 429 with
// Retry-After when l refuses; a request whose key is "" passes.
func Middleware(l Allower, key func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := key(r)
		if k != "" {
			if ok, wait := l.Allow(k); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				httpx.Problem(w, http.StatusTooManyRequests, "too many requests; retry later")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
