// Package sessiontest is the conformance suite every session.Store (and
// session.Locker, where a store is one) must pass, including, through
// session.Managers over the store, that sessions of different frontends
// never see each other and that sessions stored before frontends existed
// keep loading. It is test support: only _test.go files import it.
package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
)

// Clock is a settable time source. Stores that take a now function get
// Clock.Now; stores that keep real time (Redis) ignore it and the suite
// waits in real time instead.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Options describe the store under test.
type Options struct {
	// New returns an empty store using clock (or real time, see RealTime).
	New func(t *testing.T, clock *Clock) session.Store
	// RealTime: the store expires entries by the wall clock; expiry tests
	// use short TTLs and sleep.
	RealTime bool
}

// Run runs the suite.
func Run(t *testing.T, o Options) {
	ctx := context.Background()
	type env struct {
		s   session.Store
		clk *Clock
	}
	newEnv := func(t *testing.T) env {
		clk := NewClock()
		s := o.New(t, clk)
		t.Cleanup(func() { s.Close() })
		return env{s, clk}
	}
	// pass lets ttl elapse for the store.
	pass := func(e env, ttl time.Duration) {
		if o.RealTime {
			time.Sleep(ttl + 50*time.Millisecond)
			return
		}
		e.clk.Advance(ttl + time.Millisecond)
	}
	ttl := time.Hour
	short := time.Hour
	if o.RealTime {
		short = 300 * time.Millisecond
	}
	key := func(t *testing.T, s string) string { return t.Name() + "/" + s }

	t.Run("missing", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.s.Get(ctx, key(t, "nope")); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Get missing: got %v, want ErrNotFound", err)
		}
		if err := e.s.Delete(ctx, key(t, "nope")); err != nil {
			t.Errorf("Delete missing: %v", err)
		}
		if keys, err := e.s.Tagged(ctx, key(t, "no-tag")); err != nil || len(keys) != 0 {
			t.Errorf("Tagged unknown: %v %v", keys, err)
		}
		if err := e.s.DeleteTagged(ctx, key(t, "no-tag")); err != nil {
			t.Errorf("DeleteTagged unknown: %v", err)
		}
	})

	t.Run("set get overwrite delete", func(t *testing.T) {
		e := newEnv(t)
		k := key(t, "a")
		v := []byte("value-1")
		if err := e.s.Set(ctx, k, v, ttl); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X' // the store must have copied it
		got, err := e.s.Get(ctx, k)
		if err != nil || string(got) != "value-1" {
			t.Fatalf("Get: %q %v", got, err)
		}
		if err := e.s.Set(ctx, k, []byte("value-2"), ttl); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.s.Get(ctx, k); string(got) != "value-2" {
			t.Errorf("after overwrite: %q", got)
		}
		if err := e.s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("after Delete: %v", err)
		}
	})

	t.Run("binary and large values", func(t *testing.T) {
		e := newEnv(t)
		for _, n := range []int{0, 1, 4096, 1 << 20} {
			v := make([]byte, n)
			for i := range v {
				v[i] = byte(i * 7)
			}
			k := key(t, fmt.Sprint(n))
			if err := e.s.Set(ctx, k, v, ttl); err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			got, err := e.s.Get(ctx, k)
			if err != nil || !bytes.Equal(got, v) {
				t.Errorf("%d bytes: got %d bytes, %v", n, len(got), err)
			}
		}
	})

	t.Run("expiry", func(t *testing.T) {
		e := newEnv(t)
		k, tag := key(t, "x"), key(t, "tag")
		if err := e.s.Set(ctx, k, []byte("v"), short, tag); err != nil {
			t.Fatal(err)
		}
		keep := key(t, "keep")
		if err := e.s.Set(ctx, keep, []byte("v"), 100*short, tag); err != nil {
			t.Fatal(err)
		}
		pass(e, short)
		if _, err := e.s.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("expired entry: %v", err)
		}
		keys, err := e.s.Tagged(ctx, tag)
		if err != nil || !slices.Equal(keys, []string{keep}) {
			t.Errorf("Tagged after expiry: %v %v, want only %s", keys, err, keep)
		}
		if _, err := e.s.Get(ctx, keep); err != nil {
			t.Errorf("live entry: %v", err)
		}
		// A rewrite extends the TTL.
		if err := e.s.Set(ctx, keep, []byte("v2"), 100*short, tag); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("tags", func(t *testing.T) {
		e := newEnv(t)
		sub, sidA, sidB := key(t, "sub:alice"), key(t, "sid:a"), key(t, "sid:b")
		k1, k2, k3 := key(t, "1"), key(t, "2"), key(t, "3")
		must(t, e.s.Set(ctx, k1, []byte("1"), ttl, sub, sidA))
		must(t, e.s.Set(ctx, k2, []byte("2"), ttl, sub, sidB))
		must(t, e.s.Set(ctx, k3, []byte("3"), ttl, key(t, "sub:bob")))
		keys, err := e.s.Tagged(ctx, sub)
		slices.Sort(keys)
		if err != nil || !slices.Equal(keys, []string{k1, k2}) {
			t.Errorf("Tagged(sub): %v %v", keys, err)
		}
		must(t, e.s.DeleteTagged(ctx, sidA))
		if _, err := e.s.Get(ctx, k1); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("k1 after DeleteTagged(sidA): %v", err)
		}
		for _, k := range []string{k2, k3} {
			if _, err := e.s.Get(ctx, k); err != nil {
				t.Errorf("%s deleted by another tag: %v", k, err)
			}
		}
		if keys, _ := e.s.Tagged(ctx, sub); !slices.Equal(keys, []string{k2}) {
			t.Errorf("Tagged(sub) after delete: %v", keys)
		}
		// Overwriting without a tag drops the key from that tag.
		must(t, e.s.Set(ctx, k2, []byte("2"), ttl))
		if keys, _ := e.s.Tagged(ctx, sub); len(keys) != 0 {
			t.Errorf("Tagged(sub) after untagged overwrite: %v", keys)
		}
		must(t, e.s.Delete(ctx, k3))
		if keys, _ := e.s.Tagged(ctx, key(t, "sub:bob")); len(keys) != 0 {
			t.Errorf("Tagged after Delete: %v", keys)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		e := newEnv(t)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 16 {
			wg.Go(func() {
				for i := range 50 {
					k := key(t, fmt.Sprintf("%d-%d", g, i%5))
					v := []byte(k)
					if err := e.s.Set(ctx, k, v, ttl, key(t, "all")); err != nil {
						errs <- err
						return
					}
					got, err := e.s.Get(ctx, k)
					if err != nil && !errors.Is(err, session.ErrNotFound) {
						errs <- err
						return
					}
					if err == nil && !bytes.Equal(got, v) {
						errs <- fmt.Errorf("got %q for %s", got, k)
						return
					}
					if i%7 == 0 {
						if err := e.s.Delete(ctx, k); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("locker", func(t *testing.T) {
		e := newEnv(t)
		l, ok := e.s.(session.Locker)
		if !ok {
			t.Skip("store is not a Locker")
		}
		k := key(t, "lock")
		unlock, err := l.Lock(ctx, k, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// A second Lock waits; a caller whose context ends gives up.
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := l.Lock(cctx, k, time.Minute); err == nil {
			t.Fatal("second Lock acquired a held lock")
		}
		got := make(chan func(), 1)
		go func() {
			u, err := l.Lock(ctx, k, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			got <- u
		}()
		select {
		case <-got:
			t.Fatal("acquired before unlock")
		case <-time.After(100 * time.Millisecond):
		}
		unlock()
		select {
		case u := <-got:
			u()
		case <-time.After(5 * time.Second):
			t.Fatal("waiter never acquired the released lock")
		}
		// Other keys are independent.
		u1, err := l.Lock(ctx, key(t, "a"), time.Minute)
		must(t, err)
		u2, err := l.Lock(ctx, key(t, "b"), time.Minute)
		must(t, err)
		u1()
		u2()
	})

	t.Run("frontends", func(t *testing.T) { frontends(t, o) })

	t.Run("lock expires and stays owned", func(t *testing.T) {
		e := newEnv(t)
		l, ok := e.s.(session.Locker)
		if !ok {
			t.Skip("store is not a Locker")
		}
		k := key(t, "lock")
		lockTTL := 300 * time.Millisecond
		stale, err := l.Lock(ctx, k, lockTTL)
		must(t, err)
		if !o.RealTime {
			e.clk.Advance(lockTTL + time.Millisecond)
		}
		// The holder outlived its TTL: a new caller gets the lock.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		fresh, err := l.Lock(cctx, k, time.Minute)
		if err != nil {
			t.Fatalf("lock never expired: %v", err)
		}
		// The stale holder's unlock must not release the new owner's lock.
		stale()
		cctx2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel2()
		if _, err := l.Lock(cctx2, k, time.Minute); err == nil {
			t.Error("a stale unlock released the new owner's lock")
		}
		fresh()
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
