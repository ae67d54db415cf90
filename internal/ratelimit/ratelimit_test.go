package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiter(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := New(1, 3, clk.now)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("burst call %d refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another key shares the bucket")
	}
	clk.add(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("no refill after a second")
	}
	// Idle buckets go away.
	clk.add(time.Hour)
	l.sweep(clk.now())
	if n := l.len(); n != 0 {
		t.Errorf("%d idle buckets kept", n)
	}
}

// sweep sweeps every shard.
func (l *Limiter) sweep(now time.Time) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.sweepLocked(now)
		sh.mu.Unlock()
	}
}

// len is the number of buckets kept.
func (l *Limiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func TestMiddleware(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := New(0.5, 1, clk.now)
	calls := 0
	h := l.Middleware(func(r *http.Request) string { return r.Header.Get("K") }, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls++ }))
	do := func(k string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("K", k)
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := do("x"); rec.Code != 200 {
		t.Fatalf("first: %d", rec.Code)
	}
	rec := do("x")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("second: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if calls != 1 {
		t.Errorf("handler called %d times", calls)
	}
	for range 5 {
		if rec := do(""); rec.Code != 200 {
			t.Errorf("keyless request limited")
		}
	}
}

func TestBounded(t *testing.T) {
	l := New(1, 1, nil)
	for i := range MaxKeys + 10 {
		l.Allow(string(rune(i)) + "k")
	}
	if n := l.len(); n > MaxKeys {
		t.Errorf("%d buckets, bound %d", n, MaxKeys)
	}
}

// TestShardedLimits calls Allow for many keys, spread over every shard,
// from many goroutines at once: each key still gets exactly its burst.
// Each key has one caller: concurrent refused calls on one key can lose a
// token in rate.Reservation.CancelAt, with or without shards.
func TestShardedLimits(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)} // stopped: no refill
	const keys, burst, goroutines = 2000, 5, 8
	l := New(1, burst, clk.now)
	var allowed [keys]int
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range 2 * burst {
				for k := g; k < keys; k += goroutines {
					ok, wait := l.Allow("key-" + strconv.Itoa(k))
					if ok {
						allowed[k]++
					} else if wait <= 0 || wait > time.Second {
						t.Errorf("key %d refused with wait %v", k, wait)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for k, n := range allowed {
		if n != burst {
			t.Fatalf("key %d: %d calls allowed, want %d", k, n, burst)
		}
	}
	for i := range l.shards {
		if n := len(l.shards[i].m); n == 0 || n > shardKeys {
			t.Errorf("shard %d holds %d of %d keys", i, n, keys)
		}
	}
	// A second's refill gives each key one more call.
	clk.add(time.Second)
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		if ok, _ := l.Allow(key); !ok {
			t.Fatalf("key %d: no refill", k)
		}
		if ok, _ := l.Allow(key); ok {
			t.Fatalf("key %d: more than one call refilled", k)
		}
	}
}

// TestShardBound fills the table past MaxKeys: no shard ever holds more
// than its share; a full shard first drops its idle buckets, keeping the
// active ones, and starts afresh only when full of active keys.
func TestShardBound(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := New(0.001, 1, clk.now)
	for i := range MaxKeys {
		l.Allow("old-" + strconv.Itoa(i))
	}
	checkBound(t, l)
	// Active keys, with their one call spent, once the old ones are idle;
	// then half a table more: full shards sweep the idle keys and have
	// room to spare.
	clk.add(idle + time.Second)
	const active = 1000
	for i := range active {
		l.Allow("new-" + strconv.Itoa(i))
	}
	for i := range MaxKeys / 2 {
		l.Allow("more-" + strconv.Itoa(i))
	}
	checkBound(t, l)
	if n := limited(l, active); n != active {
		t.Errorf("%d of %d active buckets survived the sweep of idle ones", n, active)
	}
	// A table's worth of active keys more: shards fill with active keys
	// and start afresh.
	for i := range MaxKeys {
		l.Allow("flood-" + strconv.Itoa(i))
		if i%10_000 == 0 {
			checkBound(t, l)
		}
	}
	checkBound(t, l)
	if n := limited(l, active); n == active {
		t.Errorf("all %d active buckets survived a flood of active keys", active)
	}
}

// limited counts the keys new-0 ... new-(n-1) that are still refused, so
// whose buckets were kept.
func limited(l *Limiter, n int) int {
	kept := 0
	for i := range n {
		if ok, _ := l.Allow("new-" + strconv.Itoa(i)); !ok {
			kept++
		}
	}
	return kept
}

func checkBound(t *testing.T, l *Limiter) {
	t.Helper()
	total := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n := len(sh.m)
		sh.mu.Unlock()
		if n > shardKeys {
			t.Fatalf("shard %d holds %d buckets, bound %d", i, n, shardKeys)
		}
		total += n
	}
	if total > MaxKeys {
		t.Fatalf("%d buckets, bound %d", total, MaxKeys)
	}
}

// BenchmarkAllow is Allow from every P at once: with many keys (one per
// client, as in production) and with one key (a single busy client, whose
// bucket no sharding can split).
func BenchmarkAllow(b *testing.B) {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "s:" + strconv.Itoa(i*7919)
	}
	b.Run("many-keys", func(b *testing.B) {
		l := New(1e9, 1e9, nil)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 1_000
			for pb.Next() {
				l.Allow(keys[i%len(keys)])
				i++
			}
		})
	})
	b.Run("one-key", func(b *testing.B) {
		l := New(1e9, 1e9, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow("s:one")
			}
		})
	})
}
