package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
	"github.com/cloakroom/cloakroom/internal/session/sessiontest"
)

var prefixes atomic.Int64

// newStore connects to url with a prefix of its own, so each store starts
// empty, and closes it when t ends.
func newStore(t testing.TB, url string, o redisstore.Options) *redisstore.Store {
	t.Helper()
	o.URL = url
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("test%d:", prefixes.Add(1))
	}
	s, err := redisstore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", !disable), func(t *testing.T) {
			sessiontest.Run(t, sessiontest.Options{
				RealTime: true,
				New: func(t *testing.T, _ *sessiontest.Clock) session.Store {
					return newStore(t, srv.URL, redisstore.Options{DisableCache: disable})
				},
			})
		})
	}
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := redistest.StartCluster(t, 3)
	sessiontest.Run(t, sessiontest.Options{
		RealTime: true,
		New: func(t *testing.T, _ *sessiontest.Clock) session.Store {
			return newStore(t, c.URL, redisstore.Options{})
		},
	})
	t.Run("invalidation", func(t *testing.T) {
		testInvalidation(t, c.URL)
	})
	t.Run("read your writes", func(t *testing.T) {
		testReadYourWrites(t, c.URL)
	})
}

func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	sen := redistest.StartSentinel(t, master, "mymaster")
	ctx := context.Background()
	for _, url := range []string{
		"redis-sentinel://" + sen.Addr + "/0?master_set=mymaster",
		"redis-sentinel://" + sen.Addr + ",127.0.0.1:1/0#mymaster",
	} {
		s := newStore(t, url, redisstore.Options{Prefix: "sentinel:"})
		if err := s.Set(ctx, "k", []byte("v"), time.Minute, "tag"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
			t.Errorf("Get through sentinel: got %q %v, want v", got, err)
		}
	}
	// The data went to the master, under the documented key layout.
	admin := master.Client()
	for _, k := range []string{"{sentinel}:v:k", "{sentinel}:i:tag"} {
		n, err := admin.Do(ctx, admin.B().Exists().Key(k).Build()).AsInt64()
		if err != nil || n != 1 {
			t.Errorf("EXISTS %s on the master: got %d %v, want 1", k, n, err)
		}
	}
}

// testInvalidation: a Get cached by one instance never outlives a change
// made through another, once the reader has had any reply from Redis since
// the change (here a Ping, or the Lock that orders token refreshes).
func testInvalidation(t *testing.T, url string) {
	ctx := context.Background()
	prefix := fmt.Sprintf("inv%d:", prefixes.Add(1))
	a := newStore(t, url, redisstore.Options{Prefix: prefix})
	b := newStore(t, url, redisstore.Options{Prefix: prefix})
	sync := func() {
		t.Helper()
		if err := a.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cache := func(k string) {
		t.Helper()
		for range 2 { // the second Get is certainly served from the cache
			if _, err := a.Get(ctx, k); err != nil && !errors.Is(err, session.ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
	for i := range 300 {
		k := "k" + strconv.Itoa(i%10)
		want := fmt.Sprintf("v%d", i)
		cache(k)
		must(t, b.Set(ctx, k, []byte(want), time.Minute))
		sync()
		if got, err := a.Get(ctx, k); err != nil || string(got) != want {
			t.Fatalf("A after B's Set: got %q %v, want %q", got, err, want)
		}
		switch i % 3 {
		case 1:
			cache(k)
			must(t, b.Delete(ctx, k))
			sync()
			if got, err := a.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("A after B's Delete: got %q %v, want ErrNotFound", got, err)
			}
		case 2:
			must(t, b.Set(ctx, k, []byte(want), time.Minute, "t"))
			cache(k)
			must(t, b.DeleteTagged(ctx, "t"))
			sync()
			if got, err := a.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("A after B's DeleteTagged: got %q %v, want ErrNotFound", got, err)
			}
		}
	}

	// The refresh pattern: B saves under the lock; A takes the lock next
	// and must read what B saved, with nothing else in between.
	for i := range 300 {
		want := fmt.Sprintf("r%d", i)
		cache("refresh")
		unlock, err := b.Lock(ctx, "refresh", time.Minute)
		must(t, err)
		must(t, b.Set(ctx, "refresh", []byte(want), time.Minute))
		unlock()
		unlock, err = a.Lock(ctx, "refresh", time.Minute)
		must(t, err)
		got, err := a.Get(ctx, "refresh")
		unlock()
		if err != nil || string(got) != want {
			t.Fatalf("A under the lock after B's save: got %q %v, want %q", got, err, want)
		}
	}

	// With no round trip in between, the invalidation still arrives on its
	// own, promptly.
	var worst time.Duration
	for i := range 50 {
		want := fmt.Sprintf("w%d", i)
		cache("plain")
		must(t, b.Set(ctx, "plain", []byte(want), time.Minute))
		start := time.Now()
		for {
			got, err := a.Get(ctx, "plain")
			if err == nil && string(got) == want {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("A still reads %q %v a second after B's Set", got, err)
			}
			time.Sleep(50 * time.Microsecond)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("without a round trip, the slowest invalidation arrived after %v", worst)
}

func TestInvalidation(t *testing.T) {
	srv := redistest.Start(t)
	testInvalidation(t, srv.URL)
}

func TestReadYourWrites(t *testing.T) {
	srv := redistest.Start(t)
	testReadYourWrites(t, srv.URL)
}

// testReadYourWrites: a Get right after this store's own Set or Delete
// never serves the entry it had cached before.
func testReadYourWrites(t *testing.T, url string) {
	ctx := context.Background()
	for i := range 50 {
		s := newStore(t, url, redisstore.Options{})
		for j := range 20 {
			want := fmt.Sprintf("v%d", j)
			s.Get(ctx, "k") // cache the previous value, or the miss
			must(t, s.Set(ctx, "k", []byte(want), time.Minute, "tag"))
			if got, err := s.Get(ctx, "k"); err != nil || string(got) != want {
				t.Fatalf("store %d: Get after Set: got %q %v, want %q", i, got, err, want)
			}
			if j%4 == 3 {
				must(t, s.Delete(ctx, "k"))
			} else if j%4 == 1 {
				must(t, s.DeleteTagged(ctx, "tag"))
			} else {
				continue
			}
			if got, err := s.Get(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("store %d: Get after delete: got %q %v, want ErrNotFound", i, got, err)
			}
		}
		s.Close()
	}
}

// TestCacheServesHotReads checks that repeated Gets stay local: Redis sees
// one GET however often the entry is read, and a change made directly on
// the server (not through a Store) still reaches the cache at once.
func TestCacheServesHotReads(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	s := newStore(t, srv.URL, redisstore.Options{Prefix: "hot:"})
	if err := s.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	gets := func() int64 {
		info, err := admin.Do(ctx, admin.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_get:calls="); ok {
				n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
				return n
			}
		}
		return 0
	}
	before := gets()
	for range 100 {
		got, err := s.Get(ctx, "k")
		if err != nil || string(got) != "v1" {
			t.Fatalf("Get: got %q %v, want v1", got, err)
		}
		got[0] = 'X' // must not reach the cache
	}
	if n := gets() - before; n != 1 {
		t.Errorf("Redis served %d GETs for 100 Gets of one entry, want 1", n)
	}
	if err := admin.Do(ctx, admin.B().Set().Key("{hot}:v:k").Value("\x00v2").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got, err := eventually(func() ([]byte, error) { return s.Get(ctx, "k") }, "v2"); err != nil || string(got) != "v2" {
		t.Errorf("after a direct SET: got %q %v, want v2", got, err)
	}
}

// eventually retries get for up to 100ms until it returns want: the
// invalidation of a change made by another connection arrives
// asynchronously, normally within microseconds.
func eventually(get func() ([]byte, error), want string) ([]byte, error) {
	deadline := time.Now().Add(100 * time.Millisecond)
	for {
		got, err := get()
		if (err == nil && string(got) == want) || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLockAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newStore(t, srv.URL, redisstore.Options{Prefix: "lock:"})
	b := newStore(t, srv.URL, redisstore.Options{Prefix: "lock:"})

	t.Run("exclusive", func(t *testing.T) {
		var holders, maxHolders, total atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			l := a
			if i%2 == 1 {
				l = b
			}
			wg.Go(func() {
				for range 10 {
					unlock, err := l.Lock(ctx, "counter", 5*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					n := holders.Add(1)
					if n > maxHolders.Load() {
						maxHolders.Store(n)
					}
					time.Sleep(time.Millisecond)
					total.Add(1)
					holders.Add(-1)
					unlock()
				}
			})
		}
		wg.Wait()
		if got := maxHolders.Load(); got != 1 {
			t.Errorf("at most %d holders at once, want 1", got)
		}
		if got := total.Load(); got != 80 {
			t.Errorf("%d critical sections ran, want 80", got)
		}
	})

	t.Run("held elsewhere", func(t *testing.T) {
		unlock, err := a.Lock(ctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := b.Lock(cctx, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("B locked a lock A holds: %v", err)
		}
		unlock()
		unlock() // a second call is harmless
		cctx2, cancel2 := context.WithTimeout(ctx, time.Second)
		defer cancel2()
		u, err := b.Lock(cctx2, "k", time.Minute)
		if err != nil {
			t.Fatalf("B after A's unlock: %v", err)
		}
		u()
	})

	t.Run("stale unlock", func(t *testing.T) {
		stale, err := a.Lock(ctx, "s", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		fresh, err := b.Lock(ctx, "s", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		stale()
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := a.Lock(cctx, "s", time.Minute); err == nil {
			t.Fatal("a stale unlock released B's lock")
		}
		fresh()
	})

	t.Run("cancelled waiters leave no lock behind", func(t *testing.T) {
		admin := srv.Client()
		unlock, err := a.Lock(ctx, "c", time.Minute)
		must(t, err)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					if g == 0 && i == 100 {
						unlock()
					}
					cctx, cancel := context.WithTimeout(ctx, time.Duration(i%20)*100*time.Microsecond)
					if u, err := b.Lock(cctx, "c", time.Minute); err == nil {
						u()
					}
					cancel()
				}
			})
		}
		wg.Wait()
		// A waiter whose SET landed after it gave up releases it soon.
		deadline := time.Now().Add(3 * time.Second)
		for {
			n, err := admin.Do(ctx, admin.B().Exists().Key("{lock}:l:c").Build()).AsInt64()
			must(t, err)
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a cancelled Lock left the lock held")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("bad ttl", func(t *testing.T) {
		if _, err := a.Lock(ctx, "z", 0); err == nil {
			t.Error("Lock with ttl 0: no error")
		}
	})
}

func TestOutage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, srv.URL, redisstore.Options{Prefix: "outage:"})
	if err := s.Set(ctx, "cached", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "cached"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ops := []struct {
		name string
		do   func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "other"); return err }},
		{"Set", func(ctx context.Context) error { return s.Set(ctx, "k", []byte("v"), time.Minute, "t") }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, "k") }},
		{"Tagged", func(ctx context.Context) error { _, err := s.Tagged(ctx, "t"); return err }},
		{"DeleteTagged", func(ctx context.Context) error { return s.DeleteTagged(ctx, "t") }},
		{"Lock", func(ctx context.Context) error { _, err := s.Lock(ctx, "l", time.Second); return err }},
		{"Ping", s.Ping},
	}
	for _, op := range ops {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		start := time.Now()
		err := op.do(cctx)
		took := time.Since(start)
		cancel()
		if err == nil || errors.Is(err, session.ErrNotFound) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s during outage: got %v, want a connection error", op.name, err)
		}
		if took > time.Second {
			t.Errorf("%s during outage took %v, want under 1s", op.name, took)
		}
		t.Logf("%s during outage: %v after %v", op.name, err, took.Round(time.Millisecond))
	}
	// The connection is gone, and so is what was cached on it.
	if got, err := s.Get(ctx, "cached"); err == nil {
		t.Errorf("Get of a cached entry during outage: got %q, want an error", got)
	}

	srv.Restart()
	start := time.Now()
	// Redis came back empty: no stale read from the old connection's
	// cache, and the same Store works again.
	if got, err := s.Get(ctx, "cached"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after restart: got %q %v, want ErrNotFound", got, err)
	}
	if err := s.Set(ctx, "k", []byte("back"), time.Minute, "t"); err != nil {
		t.Fatalf("Set after restart: %v", err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "back" {
		t.Fatalf("Get after restart: got %q %v, want back", got, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	unlock, err := s.Lock(ctx, "l", time.Second)
	if err != nil {
		t.Fatalf("Lock after restart: %v", err)
	}
	unlock()
	t.Logf("recovered in %v", time.Since(start).Round(time.Millisecond))
}

func TestLargeValue(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, srv.URL, redisstore.Options{})
	v := make([]byte, 1<<20)
	for i := range v {
		v[i] = byte(i * 31)
	}
	if err := s.Set(ctx, "big", v, time.Minute, "sub:x"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // from Redis, then from the cache
		got, err := s.Get(ctx, "big")
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("got %d bytes %v, want the same %d bytes", len(got), err, len(v))
		}
	}
}

func TestTTL(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	s := newStore(t, srv.URL, redisstore.Options{Prefix: "ttl:"})
	pttl := func(k string) time.Duration {
		ms, err := admin.Do(ctx, admin.B().Pttl().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms) * time.Millisecond
	}
	must(t, s.Set(ctx, "long", []byte("v"), time.Hour, "tag"))
	must(t, s.Set(ctx, "short", []byte("v"), time.Minute, "tag"))
	for _, tc := range []struct {
		key      string
		min, max time.Duration
	}{
		{"{ttl}:v:long", 59 * time.Minute, time.Hour},
		{"{ttl}:v:short", 59 * time.Second, time.Minute},
		// A shorter entry never shortens the index.
		{"{ttl}:i:tag", 59 * time.Minute, time.Hour},
	} {
		if got := pttl(tc.key); got < tc.min || got > tc.max {
			t.Errorf("PTTL %s: got %v, want %v..%v", tc.key, got, tc.min, tc.max)
		}
	}
	// A ttl of zero or less deletes.
	must(t, s.Set(ctx, "long", []byte("v"), 0, "tag"))
	if _, err := s.Get(ctx, "long"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("after Set with ttl 0: %v, want ErrNotFound", err)
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.Do(ctx, admin.B().ConfigSet().ParameterValue().ParameterValue("requirepass", "right-"+pw).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	closed := "127.0.0.1:1"
	for _, tc := range []struct {
		name, url, host string
	}{
		{"unreachable", "redis://user:" + pw + "@" + closed + "/0", "127.0.0.1"},
		{"wrong password", "redis://:" + pw + "@" + srv.Addr + "/0", "127.0.0.1"},
		{"bad escape in password", "redis://u:" + pw + "%zz@" + srv.Addr + "/0", ""},
		{"space in password", "redis://u:" + pw + " x@" + srv.Addr + "/0", ""},
		{"bad port", "redis://u:" + pw + "@host:port/0", ""},
		{"bad scheme", "http://u:" + pw + "@host/0", ""},
		{"sentinel without master", "redis-sentinel://u:" + pw + "@" + srv.Addr, ""},
		{"bad db", "redis://u:" + pw + "@" + srv.Addr + "/x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := redisstore.New(redisstore.Options{URL: tc.url})
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), pw[:6]) {
				t.Errorf("error %q contains the password", err)
			}
			if !strings.Contains(err.Error(), tc.host) {
				t.Errorf("error %q does not name host %q", err, tc.host)
			}
			t.Log(err)
		})
	}
	s := newStore(t, "redis://:right-"+pw+"@"+srv.Addr+"/0", redisstore.Options{})
	if err := s.Ping(ctx); err != nil {
		t.Errorf("with the right password: %v", err)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []redisstore.Options{
		{URL: "redis://127.0.0.1:1", Prefix: "a{b}:"},
		{URL: "redis://127.0.0.1:1", CacheTTL: -time.Second},
		{URL: ""},
	} {
		if s, err := redisstore.New(o); err == nil {
			s.Close()
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestURLForms(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, url := range []string{
		srv.URL,
		"redis://" + srv.Addr,
		"valkey://" + srv.Addr + "/1",
		srv.URL + "?dial_timeout=1s&write_timeout=2s&client_name=test",
		srv.URL + "?protocol=2", // no RESP3: no client-side cache
		srv.URL + "?client_cache=0",
	} {
		t.Run(url, func(t *testing.T) {
			s := newStore(t, url, redisstore.Options{})
			must(t, s.Set(ctx, "k", []byte("v"), time.Minute))
			if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
				t.Errorf("got %q %v, want v", got, err)
			}
		})
	}
}
