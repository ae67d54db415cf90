package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/sessiontest"
)

// peek returns key's cache entry, without the Store.
func peek(s *Store, key string) (cached, bool) {
	sh := s.cache.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e, ok := sh.m[key]
	return e, ok
}

// putRaw writes key straight into bbolt, behind the cache's back, as no
// code of the Store does: a later Get that answers otherwise was a hit.
func putRaw(t *testing.T, s *Store, key string, v []byte, exp time.Time) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).Put([]byte(key), encode(exp.UnixNano(), nil, v))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkCache verifies the cache's invariants once no operation is under
// way: each shard's byte count is the sum of its entries and within its
// budget, no key is left marked, and every entry is exactly what bbolt
// holds, expiry included.
func checkCache(t *testing.T, s *Store) {
	t.Helper()
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		sh.mu.RLock()
		var sum int64
		for k, e := range sh.m {
			sum += entrySize(k, e.val)
			err := s.db.View(func(tx *bolt.Tx) error {
				d, ok := decode(tx.Bucket(bucketEntries).Get([]byte(k)))
				switch {
				case !ok:
					return fmt.Errorf("cached %q is not in the file", k)
				case d.exp != e.exp || !bytes.Equal(d.val, e.val):
					return fmt.Errorf("cached %q is %q until %d, the file holds %q until %d", k, e.val, e.exp, d.val, d.exp)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		if sum != sh.bytes || sh.bytes > sh.budget {
			t.Errorf("shard %d: counts %d bytes, entries sum to %d, budget %d", i, sh.bytes, sum, sh.budget)
		}
		if len(sh.writing) != 0 {
			t.Errorf("shard %d: keys left marked: %v", i, sh.writing)
		}
		sh.mu.RUnlock()
	}
}

func TestCacheHit(t *testing.T) {
	ctx := t.Context()
	clk := sessiontest.NewClock()
	s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: -1})

	// Set fills the cache: a Get after a write behind its back still
	// answers from memory.
	if err := s.Set(ctx, "k", []byte("v1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, "k", []byte("behind"), clk.Now().Add(time.Hour))
	got, err := s.Get(ctx, "k")
	if err != nil || string(got) != "v1" {
		t.Fatalf("Get after Set: got %q, %v, want the cached %q", got, err, "v1")
	}
	// The value is read-only, but an append copies it rather than writing
	// into the shared array.
	if cap(got) != len(got) {
		t.Errorf("Get's value has spare capacity: len %d, cap %d", len(got), cap(got))
	}
	_ = append(got, "-appended"...)
	if got, _ := s.Get(ctx, "k"); string(got) != "v1" {
		t.Errorf("Get after an append to a result: %q", got)
	}

	// A Get that reads the file fills the cache.
	putRaw(t, s, "r", []byte("raw"), clk.Now().Add(time.Hour))
	if got, err := s.Get(ctx, "r"); err != nil || string(got) != "raw" {
		t.Fatalf("Get of a raw entry: %q, %v", got, err)
	}
	if e, ok := peek(s, "r"); !ok || string(e.val) != "raw" {
		t.Errorf("Get did not fill the cache: %q, %v", e.val, ok)
	}

	// Empty values stay non-nil.
	if err := s.Set(ctx, "empty", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "empty"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty value: %#v, %v", got, err)
	}

	// Not found is not cached.
	if _, err := s.Get(ctx, "none"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	if _, ok := peek(s, "none"); ok {
		t.Error("a missing key was cached")
	}
}

func TestCacheInvalidation(t *testing.T) {
	ctx := t.Context()
	clk := sessiontest.NewClock()
	s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: -1})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	gone := func(step, key string) {
		t.Helper()
		if got, err := s.Get(ctx, key); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("%s: Get %s: got %q, %v, want ErrNotFound", step, key, got, err)
		}
		if _, ok := peek(s, key); ok {
			t.Errorf("%s: %s still cached", step, key)
		}
	}

	must(s.Set(ctx, "k", []byte("v1"), time.Hour))
	must(s.Set(ctx, "k", []byte("v2"), time.Hour))
	if got, _ := s.Get(ctx, "k"); string(got) != "v2" {
		t.Errorf("overwrite: got %q", got)
	}
	must(s.Delete(ctx, "k"))
	gone("Delete", "k")

	must(s.Set(ctx, "k", []byte("v"), time.Hour))
	must(s.Set(ctx, "k", []byte("v"), 0))
	gone("Set with ttl 0", "k")

	must(s.Set(ctx, "a", []byte("v"), time.Hour, "sub:x"))
	must(s.Set(ctx, "b", []byte("v"), time.Hour, "sub:x", "sid:y"))
	must(s.Set(ctx, "c", []byte("v"), time.Hour, "sub:z"))
	must(s.DeleteTagged(ctx, "sub:x"))
	gone("DeleteTagged", "a")
	gone("DeleteTagged", "b")
	if _, ok := peek(s, "c"); !ok {
		t.Error("DeleteTagged dropped another tag's entry from the cache")
	}

	// A hit honours the expiry to the nanosecond, and the Get that finds
	// it expired removes the entry from the file as well.
	must(s.Set(ctx, "short", []byte("v"), time.Minute, "t"))
	clk.Advance(time.Minute - 1)
	if _, err := s.Get(ctx, "short"); err != nil {
		t.Errorf("Get before expiry: %v", err)
	}
	clk.Advance(1)
	gone("expiry", "short")
	if n, _ := count(t, s); n != 1 {
		t.Errorf("expired Get left %d entries, want 1 (c)", n)
	}

	// So does the sweep.
	must(s.Set(ctx, "swept", []byte("v"), time.Minute))
	clk.Advance(time.Minute)
	if n, err := s.sweep(); err != nil || n != 1 {
		t.Errorf("sweep: %d, %v", n, err)
	}
	if _, ok := peek(s, "swept"); ok {
		t.Error("sweep left the entry cached")
	}

	// A write that fails caches nothing, and leaves no key marked.
	must(s.Set(ctx, "f", []byte("v1"), time.Hour))
	failed := errors.New("failed")
	err := s.update(func(tx *bolt.Tx, w *write) error {
		w.change("f")
		if err := tx.Bucket(bucketEntries).Put([]byte("f"), encode(math.MaxInt64, nil, []byte("v2"))); err != nil {
			return err
		}
		w.val, w.exp = []byte("v2"), math.MaxInt64
		return failed
	})
	if err != failed {
		t.Fatalf("failing update: %v", err)
	}
	if _, ok := peek(s, "f"); ok {
		t.Error("failed write left its key cached")
	}
	if got, _ := s.Get(ctx, "f"); string(got) != "v1" {
		t.Errorf("after a failed write: %q, want v1", got)
	}
	checkCache(t, s)
}

// TestCacheGetRacingWrite makes a Get read the file just before a write
// (afterRead runs the write between the Get's read and its cache fill):
// the Get may return the old value, being concurrent with the write, but
// must not cache it.
func TestCacheGetRacingWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*Store, *sessiontest.Clock) error
		want  string // the value after the write; "" for none
	}{
		{"Delete", func(s *Store, _ *sessiontest.Clock) error { return s.Delete(t.Context(), "k") }, ""},
		{"Set", func(s *Store, _ *sessiontest.Clock) error { return s.Set(t.Context(), "k", []byte("new"), time.Hour) }, "new"},
		{"DeleteTagged", func(s *Store, _ *sessiontest.Clock) error { return s.DeleteTagged(t.Context(), "sub:a") }, ""},
		{"sweep", func(s *Store, clk *sessiontest.Clock) error {
			clk.Advance(2 * time.Hour)
			_, err := s.sweep()
			return err
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			clk := sessiontest.NewClock()
			s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: -1})
			if err := s.Set(ctx, "k", []byte("old"), time.Hour, "sub:a"); err != nil {
				t.Fatal(err)
			}
			s.cache.reset() // so that the next Get reads the file
			var once sync.Once
			s.afterRead = func(string) {
				once.Do(func() {
					if err := tc.write(s, clk); err != nil {
						t.Error(err)
					}
				})
			}
			if got, err := s.Get(ctx, "k"); err != nil || string(got) != "old" {
				t.Fatalf("racing Get: %q, %v, want the old value", got, err)
			}
			got, err := s.Get(ctx, "k")
			switch {
			case tc.want == "" && !errors.Is(err, session.ErrNotFound):
				t.Errorf("Get after the write: %q, %v, want ErrNotFound", got, err)
			case tc.want != "" && string(got) != tc.want:
				t.Errorf("Get after the write: %q, %v, want %q", got, err, tc.want)
			}
			checkCache(t, s)
		})
	}
}

// TestCacheHitDuringWrite: once a write has committed, a Get no longer
// finds the old value in the cache, even before the write updates it.
func TestCacheHitDuringWrite(t *testing.T) {
	ctx := t.Context()
	s := open(t, Options{Path: dbPath(t), SweepInterval: -1})
	for _, write := range []func() error{
		func() error { return s.Set(ctx, "k", []byte("new"), time.Hour) },
		func() error { return s.Delete(ctx, "k") },
	} {
		if err := s.Set(ctx, "k", []byte("old"), time.Hour); err != nil {
			t.Fatal(err)
		}
		s.afterCommit = func() {
			if got, err := s.Get(ctx, "k"); err == nil && string(got) == "old" {
				t.Errorf("Get between commit and cache update: %q", got)
			}
		}
		if err := write(); err != nil {
			t.Fatal(err)
		}
		s.afterCommit = nil
		checkCache(t, s)
	}
}

// TestCacheFillDuringWrite makes a Get that read the old value try to fill
// the cache after a Delete has committed but before it has updated the
// cache; a third Get in that window must not see the old value either.
func TestCacheFillDuringWrite(t *testing.T) {
	ctx := t.Context()
	s := open(t, Options{Path: dbPath(t), SweepInterval: -1})
	if err := s.Set(ctx, "k", []byte("old"), time.Hour); err != nil {
		t.Fatal(err)
	}
	s.cache.reset()

	read, proceed := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	s.afterRead = func(string) {
		if first.CompareAndSwap(true, false) {
			close(read)
			<-proceed
		}
	}
	racer := make(chan error, 1)
	go func() {
		got, err := s.Get(ctx, "k")
		if err == nil && string(got) != "old" {
			err = fmt.Errorf("racing Get: %q", got)
		}
		racer <- err
	}()
	<-read
	s.afterCommit = func() {
		close(proceed)
		if err := <-racer; err != nil { // the racer has tried to fill
			t.Error(err)
		}
		if got, err := s.Get(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Get between commit and cache update: %q, %v, want ErrNotFound", got, err)
		}
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	s.afterCommit = nil
	if got, err := s.Get(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after Delete: %q, %v", got, err)
	}
	checkCache(t, s)
}

// TestCacheRace runs Gets against Sets, Deletes and DeleteTagged on a few
// keys, with a cache small enough to evict all the time, so that Gets keep
// reading the file and filling the cache while the keys change. Each key's
// writer numbers its values; once a write has returned, no Get may return
// an older value, nor the value it deleted. Run it with -race.
func TestCacheRace(t *testing.T) {
	ctx := t.Context()
	s := open(t, Options{Path: dbPath(t), SweepInterval: -1, CacheBytes: 16 * 2 * (cacheMaxEntryShare * 200)})
	const keys, readers = 4, 4
	writes := 60
	if testing.Short() {
		writes = 20
	}
	// Widen the window between a Get's read of the file and its fill, so
	// that writes land in it.
	s.afterRead = func(string) {
		if rand.IntN(4) == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	pad := bytes.Repeat([]byte{'.'}, 64)
	var wg sync.WaitGroup
	var stop atomic.Bool // once every writer is done
	var writing atomic.Int32
	writing.Store(keys)
	for k := range keys {
		key, tag := fmt.Sprint("k", k), fmt.Sprint("sid:", k)
		// floor is 2n once value n is set and 2n+1 once it is deleted: a
		// Get that starts later may return only a value n' with 2n' >= floor.
		var floor atomic.Int64
		wg.Go(func() {
			defer func() {
				if writing.Add(-1) == 0 {
					stop.Store(true)
				}
			}()
			for n := int64(1); n <= int64(writes); n++ {
				v := append(strconv.AppendInt(nil, n, 10), pad...)
				if err := s.Set(ctx, key, v, time.Hour, tag); err != nil {
					t.Error(err)
					return
				}
				floor.Store(2 * n)
				var err error
				switch n % 4 {
				case 1:
					err = s.Delete(ctx, key)
				case 3:
					err = s.DeleteTagged(ctx, tag)
				default:
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				floor.Store(2*n + 1)
			}
		})
		for range readers {
			wg.Go(func() {
				// Yielding, so that spinning readers do not starve the
				// writers of the two Ps.
				for ; !stop.Load(); runtime.Gosched() {
					f := floor.Load()
					got, err := s.Get(ctx, key)
					if errors.Is(err, session.ErrNotFound) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					n, err := strconv.ParseInt(string(bytes.TrimRight(got, ".")), 10, 64)
					if err != nil || 2*n < f {
						t.Errorf("%s: Get returned value %q after floor %d", key, got, f)
						return
					}
				}
			})
		}
		// Other keys in the same shards, to evict and to move generations.
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				other := fmt.Sprint("other", k, "-", i%50)
				if err := s.Set(ctx, other, pad, time.Hour); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Get(ctx, fmt.Sprint("other", k, "-", (i*7)%50)); err != nil && !errors.Is(err, session.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkCache(t, s)
}

// TestCacheBound fills a small cache far past its budget.
func TestCacheBound(t *testing.T) {
	ctx := t.Context()
	const budget = 64 * 1024
	s := open(t, Options{Path: dbPath(t), SweepInterval: -1, CacheBytes: budget})
	v := bytes.Repeat([]byte{'v'}, 300)
	const n = 1000
	for i := range n {
		key := fmt.Sprint("k", i)
		if err := s.Set(ctx, key, v, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, fmt.Sprint("k", i/2)); err != nil {
			t.Fatal(err)
		}
	}
	var entries int
	var total int64
	for i := range s.cache.shards {
		entries += len(s.cache.shards[i].m)
		total += s.cache.shards[i].bytes
	}
	if total > budget || entries == 0 || entries >= n {
		t.Errorf("cache holds %d entries, %d bytes, for %d sets within %d bytes", entries, total, n, budget)
	}
	// At least half the budget is in use: eviction makes room, it does
	// not empty shards.
	if total < budget/2 {
		t.Errorf("cache holds only %d bytes of %d", total, budget)
	}
	checkCache(t, s)
	// Every value is still there, from the cache or the file.
	for i := range n {
		if got, err := s.Get(ctx, fmt.Sprint("k", i)); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("k%d: %d bytes, %v", i, len(got), err)
		}
	}
	// A value too large for a shard is not cached, and evicts nothing.
	big := make([]byte, budget/cacheShards/cacheMaxEntryShare)
	if err := s.Set(ctx, "big", big, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok := peek(s, "big"); ok {
		t.Error("a value over the entry limit was cached")
	}
	if got, err := s.Get(ctx, "big"); err != nil || len(got) != len(big) {
		t.Errorf("big: %d bytes, %v", len(got), err)
	}
	checkCache(t, s)

	// Close releases the cache.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range s.cache.shards {
		if n := len(s.cache.shards[i].m); n != 0 {
			t.Errorf("shard %d holds %d entries after Close", i, n)
		}
	}
}
