package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// limiter is a Limiter of s allowing burst events and then about one an
// hour, so that nothing refills while a test runs.
func limiter(t testing.TB, s *redisstore.Store, name string, burst int) *redisstore.Limiter {
	t.Helper()
	l, err := s.Limiter(name, 1.0/3600, burst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterSharedBudget(t *testing.T) {
	srv := redistest.Start(t)
	prefix := fmt.Sprintf("test%d:", prefixes.Add(1))
	a := limiter(t, newStore(t, srv.URL, redisstore.Options{Prefix: prefix}), "api", 4)
	b := limiter(t, newStore(t, srv.URL, redisstore.Options{Prefix: prefix}), "api", 4)
	otherName := limiter(t, newStore(t, srv.URL, redisstore.Options{Prefix: prefix}), "login", 4)
	otherPrefix := limiter(t, newStore(t, srv.URL, redisstore.Options{}), "api", 4)

	const key = "s\x00ticket-secret-value"
	for i, l := range []*redisstore.Limiter{a, b, a, b} {
		if ok, wait := l.Allow(key); !ok {
			t.Fatalf("call %d: refused (wait %v) within the burst", i, wait)
		}
	}
	for i, l := range []*redisstore.Limiter{a, b} {
		ok, wait := l.Allow(key)
		if ok {
			t.Fatalf("call %d past the shared burst: allowed", i)
		}
		if wait <= 0 || wait > time.Hour {
			t.Errorf("call %d: got wait %v, want within (0, 1h]", i, wait)
		}
	}
	for _, tc := range []struct {
		name string
		l    *redisstore.Limiter
		key  string
	}{
		{"other key", a, "ip\x00192.0.2.1"},
		{"other name", otherName, key},
		{"other prefix", otherPrefix, key},
	} {
		if ok, _ := tc.l.Allow(tc.key); !ok {
			t.Errorf("%s: refused; want its own budget", tc.name)
		}
	}

	// Keys are hashes of the client keys, and expire.
	ctx := context.Background()
	admin := srv.Client()
	keys, err := admin.Do(ctx, admin.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys in Redis")
	}
	for _, k := range keys {
		if strings.Contains(k, "ticket") || strings.Contains(k, "192.0.2.1") {
			t.Errorf("key %q holds a client key", k)
		}
		if !strings.Contains(k, ":r:") {
			continue
		}
		ttl, err := admin.Do(ctx, admin.B().Pttl().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %q: got PTTL %d, want an expiry", k, ttl)
		}
	}
}

func TestLimiterRefills(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL, redisstore.Options{})
	// 1,000 a second: a refused caller need wait only about a millisecond.
	l, err := s.Limiter("api", 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("first call refused")
	}
	var wait time.Duration
	for range 100 {
		var ok bool
		if ok, wait = l.Allow("k"); !ok {
			break
		}
	}
	if wait <= 0 || wait > time.Millisecond {
		t.Fatalf("got wait %v, want within (0, 1ms]", wait)
	}
	time.Sleep(wait)
	for range 100 {
		if ok, _ := l.Allow("k"); ok {
			return
		}
		time.Sleep(wait)
	}
	t.Fatal("never allowed again after waiting")
}

func TestLimiterInvalid(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL, redisstore.Options{})
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		if _, err := s.Limiter("api", tc.rate, tc.burst); err == nil {
			t.Errorf("rate %v burst %d: got no error", tc.rate, tc.burst)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLimiterFailsOpen(t *testing.T) {
	srv := redistest.Start(t)
	var logs lockedBuffer
	s := newStore(t, srv.URL, redisstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l := limiter(t, s, "api", 1)
	var errs int
	l.OnError = func() { errs++ }
	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("first call refused")
	}
	if ok, _ := l.Allow("k"); ok {
		t.Fatal("second call allowed with Redis up")
	}

	srv.Stop()
	for i := range 3 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatalf("call %d with Redis down: refused; want allowed", i)
		}
	}
	if errs != 3 {
		t.Errorf("got %d OnError calls, want 3", errs)
	}
	if got := strings.Count(logs.String(), "rate limit check failed"); got != 1 {
		t.Errorf("got %d warnings, want 1:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning in:\n%s", logs.String())
	}

	// Redis is back, empty: the budget starts afresh and limits again.
	srv.Restart()
	var allowed bool
	for range 50 {
		if allowed, _ = l.Allow("k"); allowed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !allowed {
		t.Fatal("never allowed after Redis restarted")
	}
	if ok, _ := l.Allow("k"); ok {
		t.Error("second call after the restart allowed; want the limit back")
	}
}

// BenchmarkLimiter is the cost of one rate-limit check on loopback Redis.
func BenchmarkLimiter(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, srv.URL, redisstore.Options{})
	l, err := s.Limiter("api", 1e6, 1e6)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Allow("s\x00ticket")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow("s\x00ticket")
			}
		})
	})
}
