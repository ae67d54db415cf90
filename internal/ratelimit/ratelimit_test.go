package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"sync"
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
	l.mu.Lock()
	l.sweepLocked(clk.now())
	n := len(l.m)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d idle buckets kept", n)
	}
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
	if n := len(l.m); n > MaxKeys {
		t.Errorf("%d buckets, bound %d", n, MaxKeys)
	}
}
