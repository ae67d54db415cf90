// Package ratelimit keeps one token bucket per client key (a session, an
// IP address) and answers 429 with Retry-After when a bucket is empty.
// Buckets idle for a while are dropped; the table is bounded, and when it
// is full of active keys it starts afresh rather than grow without limit.
package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"golang.org/x/time/rate"
)

// MaxKeys bounds the number of buckets kept.
const MaxKeys = 100_000

// idle is how long an unused bucket is kept.
const idle = 10 * time.Minute

// Limiter limits events per key.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu    sync.Mutex
	m     map[string]*bucket
	calls int
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
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, now: now, m: make(map[string]*bucket)}
}

// Allow takes one event for key; when none is left it says how long to
// wait.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= MaxKeys {
			l.sweepLocked(now)
			if len(l.m) >= MaxKeys {
				clear(l.m)
			}
		}
		b = &bucket{l: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = b
	}
	b.seen = now
	if l.calls++; l.calls%4096 == 0 {
		l.sweepLocked(now)
	}
	l.mu.Unlock()
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

func (l *Limiter) sweepLocked(now time.Time) {
	for k, b := range l.m {
		if now.Sub(b.seen) > idle {
			delete(l.m, k)
		}
	}
}

// Middleware limits requests by key(r); a request whose key is "" passes.
func (l *Limiter) Middleware(key func(*http.Request) string, next http.Handler) http.Handler {
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
