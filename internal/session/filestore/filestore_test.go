package filestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/session/sessiontest"
)

// The conformance suite with the default read cache, without one, and
// with one so small that it evicts all the time.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"cache", 0}, {"nocache", -1}, {"tinycache", 16 * 1024}} {
		t.Run(c.name, func(t *testing.T) {
			sessiontest.Run(t, sessiontest.Options{
				New: func(t *testing.T, clk *sessiontest.Clock) session.Store {
					return open(t, Options{Path: dbPath(t), Now: clk.Now, CacheBytes: c.bytes})
				},
			})
		})
	}
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "sessions.db") }

func open(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// count reports the rows in the entries and tags buckets.
func count(t *testing.T, s *Store) (entries, tags int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketEntries).Stats().KeyN
		tags = tx.Bucket(bucketTags).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, tags
}

func TestSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := dbPath(t)
	clk := sessiontest.NewClock()
	s, err := Open(Options{Path: path, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", []byte("v"), time.Hour, "sub:a", "sid:b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Path: path, Now: clk.Now})
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Errorf("Get after reopen: got %q, %v, want %q", got, err, "v")
	}
	if keys, err := s.Tagged(ctx, "sid:b"); err != nil || !slices.Equal(keys, []string{"k"}) {
		t.Errorf("Tagged after reopen: got %v, %v, want [k]", keys, err)
	}
	// Expiry is absolute, so it survives the restart too.
	clk.Advance(time.Hour)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get after expiry: got %v, want ErrNotFound", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := dbPath(t)
	first := open(t, Options{Path: path})

	start := time.Now()
	second, err := Open(Options{Path: path})
	if err == nil {
		second.Close()
		t.Fatal("second Open on a held file succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("got %v, want ErrInUse", err)
	}
	for _, want := range []string{fmt.Sprintf("%q", path), "in use by another Cloakroom process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, Options{Path: path}) // released by Close
}

func TestMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	path := filepath.Join(dir, "sessions.db")
	_, err := Open(Options{Path: path})
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	for _, want := range []string{fmt.Sprintf("%q", path), "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the directory: %v", err)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bbolt file of some other program: no format version.
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucketEntries)
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ path, want string }{
		{garbage, "not a readable session database"},
		{other, "not a session database"},
		{dir, "open"},
		{"", "empty path"},
	} {
		_, err := Open(Options{Path: tc.path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): got %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
}

func TestFileMode(t *testing.T) {
	path := dbPath(t)
	open(t, Options{Path: path})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode: got %v, want %v", got, os.FileMode(0o600))
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	s, err := Open(Options{Path: dbPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, errGet := s.Get(ctx, "k")
	_, errTagged := s.Tagged(ctx, "t")
	_, errLock := s.Lock(ctx, "k", time.Second)
	for name, err := range map[string]error{
		"Get":          errGet,
		"Set":          s.Set(ctx, "k", []byte("v"), time.Hour),
		"Delete":       s.Delete(ctx, "k"),
		"Tagged":       errTagged,
		"DeleteTagged": s.DeleteTagged(ctx, "t"),
		"Lock":         errLock,
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestIndex(t *testing.T) {
	ctx := t.Context()
	clk := sessiontest.NewClock()
	s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: -1})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, wantEntries, wantTags int) {
		t.Helper()
		if e, tg := count(t, s); e != wantEntries || tg != wantTags {
			t.Errorf("%s: got %d entries, %d tag rows, want %d, %d", step, e, tg, wantEntries, wantTags)
		}
	}

	must(s.Set(ctx, "k", []byte("v"), time.Hour, "a", "b"))
	check("set", 1, 2)
	must(s.Set(ctx, "k", []byte("v"), time.Hour, "c"))
	check("overwrite", 1, 1)
	if keys, _ := s.Tagged(ctx, "a"); len(keys) != 0 {
		t.Errorf("old tag after overwrite: %v", keys)
	}
	must(s.Delete(ctx, "k"))
	check("delete", 0, 0)

	// A tag that is a prefix of another does not match it.
	must(s.Set(ctx, "k1", []byte("v"), time.Hour, "sub:a"))
	must(s.Set(ctx, "k2", []byte("v"), time.Hour, "sub:ab"))
	if keys, _ := s.Tagged(ctx, "sub:a"); !slices.Equal(keys, []string{"k1"}) {
		t.Errorf("Tagged(sub:a): got %v, want [k1]", keys)
	}
	must(s.DeleteTagged(ctx, "sub:a"))
	check("delete tagged", 1, 1)

	// A Get that meets an expired entry removes it.
	must(s.Set(ctx, "short", []byte("v"), time.Minute, "t"))
	clk.Advance(time.Minute)
	if _, err := s.Get(ctx, "short"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("expired Get: got %v, want ErrNotFound", err)
	}
	check("lazy removal", 1, 1)

	must(s.Set(ctx, "gone", []byte("v"), 0, "t"))
	check("ttl 0", 1, 1)

	if err := s.Set(ctx, "k", []byte("v"), time.Hour, "bad\x00tag"); err == nil {
		t.Error("Set accepted a tag with a NUL byte")
	}

	// The longest TTL saturates instead of wrapping into the past.
	must(s.Set(ctx, "forever", []byte("v"), math.MaxInt64))
	if _, err := s.Get(ctx, "forever"); err != nil {
		t.Errorf("Get with the longest TTL: %v", err)
	}
}

func TestSweep(t *testing.T) {
	ctx := t.Context()
	clk := sessiontest.NewClock()
	s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: -1})
	for i := range 2*sweepBatch + 10 {
		if err := s.Set(ctx, fmt.Sprint("short", i), []byte("v"), time.Minute, "t", fmt.Sprint("u", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "long", []byte("v"), time.Hour, "t"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.sweep(); err != nil || n != 0 {
		t.Errorf("sweep before expiry: got %d, %v, want 0", n, err)
	}
	clk.Advance(time.Minute)
	if n, err := s.sweep(); err != nil || n != 2*sweepBatch+10 {
		t.Errorf("sweep: got %d, %v, want %d", n, err, 2*sweepBatch+10)
	}
	if e, tg := count(t, s); e != 1 || tg != 1 {
		t.Errorf("after sweep: got %d entries, %d tag rows, want 1, 1", e, tg)
	}
}

func TestSweeperRuns(t *testing.T) {
	ctx := t.Context()
	clk := sessiontest.NewClock()
	s := open(t, Options{Path: dbPath(t), Now: clk.Now, SweepInterval: 10 * time.Millisecond})
	if err := s.Set(ctx, "k", []byte("v"), time.Minute, "t"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, tg := count(t, s)
		if e == 0 && tg == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d entries, %d tag rows", e, tg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCodec(t *testing.T) {
	for _, tc := range []struct {
		exp  int64
		tags []string
		val  []byte
	}{
		{0, nil, nil},
		{1, []string{""}, []byte{}},
		{math.MaxInt64, []string{"sub:a", "sid:b"}, []byte("value")},
		{-1, []string{strings.Repeat("t", 300)}, bytes.Repeat([]byte{0, 1}, 2048)},
	} {
		e, ok := decode(encode(tc.exp, tc.tags, tc.val))
		if !ok {
			t.Errorf("decode(encode(%d, %q)) failed", tc.exp, tc.tags)
			continue
		}
		var tags []string
		for tag := range e.tags.all() {
			tags = append(tags, string(tag))
		}
		if e.exp != tc.exp || !slices.Equal(tags, tc.tags) || !bytes.Equal(e.val, tc.val) {
			t.Errorf("round trip: got %d %q %d bytes, want %d %q %d bytes", e.exp, tags, len(e.val), tc.exp, tc.tags, len(tc.val))
		}
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 2, 5, 'a'}, {0, 0, 0, 0, 0, 0, 0, 0, 0xff}} {
		if _, ok := decode(b); ok {
			t.Errorf("decode(%x) accepted a malformed record", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(5, []string{"a", "bc"}, []byte("v")))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, ok := decode(b); ok {
			for range e.tags.all() {
			}
		}
	})
}

// TestCrash kills a process in the middle of writing and checks that the
// file opens, is consistent, and holds only whole values.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	path := dbPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "FILESTORE_CRASH_CHILD="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()

	s := open(t, Options{Path: path, SweepInterval: -1})
	err = s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		entries, tags := tx.Bucket(bucketEntries), tx.Bucket(bucketTags)
		n := 0
		err := entries.ForEach(func(k, v []byte) error {
			n++
			e, ok := decode(v)
			if !ok {
				return fmt.Errorf("entry %q does not decode", k)
			}
			if !bytes.HasPrefix(e.val, k) || len(e.val) != 4096 {
				return fmt.Errorf("entry %q holds a torn value", k)
			}
			for tag := range e.tags.all() {
				if tags.Get(tagKey(string(tag), k)) == nil {
					return fmt.Errorf("entry %q lacks index row for %q", k, tag)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("no entries survived")
		}
		return tags.ForEach(func(tk, _ []byte) error {
			tag, k, _ := bytes.Cut(tk, []byte{0})
			e, ok := decode(entries.Get(k))
			if !ok {
				return fmt.Errorf("index row %q has no entry", tk)
			}
			for t := range e.tags.all() {
				if bytes.Equal(t, tag) {
					return nil
				}
			}
			return fmt.Errorf("index row %q: entry is not tagged so", tk)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrashChild is TestCrash's subprocess: it writes until killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("FILESTORE_CRASH_CHILD")
	if path == "" {
		t.Skip("run by TestCrash")
	}
	ctx := t.Context()
	s, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		k := fmt.Sprint("k", i%64)
		v := bytes.Repeat([]byte(fmt.Sprintf("%s/%08d/", k, i)), 4096)[:4096]
		tags := []string{fmt.Sprint("sub:", i%7), fmt.Sprint("sid:", i%3)}
		if err := s.Set(ctx, k, v, time.Hour, tags[:i%3]...); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := s.DeleteTagged(ctx, fmt.Sprint("sid:", i%3)); err != nil {
				t.Fatal(err)
			}
		}
		if i == 200 {
			fmt.Println("ready")
		}
	}
}

// BenchmarkGet is one Get of a 2 KB value with the read cache warm, and
// with it off (a bbolt read transaction each, as before the cache).
func BenchmarkGet(b *testing.B) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := b.Context()
			s := open(b, Options{Path: dbPath(b), SweepInterval: -1, CacheBytes: c.bytes})
			v := bytes.Repeat([]byte{0xa5}, 2048)
			if err := s.Set(ctx, "key", v, time.Hour, "sub:a", "sid:b"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, "key"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSet(b *testing.B) {
	ctx := b.Context()
	s := open(b, Options{Path: dbPath(b), SweepInterval: -1})
	v := bytes.Repeat([]byte{0xa5}, 2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Set(ctx, fmt.Sprint("key", i%1000), v, time.Hour, "sub:a", "sid:b"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetParallel is Get from 256 goroutines at once (128 per P), as
// under the proxy's 256 concurrent requests, over 1,000 sessions of 3 KB:
// with the cache warm (as after each session's first load) and with it
// off.
func BenchmarkGetParallel(b *testing.B) {
	for _, tc := range []struct {
		name       string
		cacheBytes int64
	}{
		{"256-goroutines", 0},
		{"256-goroutines-nocache", -1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := b.Context()
			s := open(b, Options{Path: dbPath(b), SweepInterval: -1, CacheBytes: tc.cacheBytes})
			v := bytes.Repeat([]byte{0xa5}, 3072)
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprint("s:", i)
				if err := s.Set(ctx, keys[i], v, time.Hour, "sub:a", "sid:b"); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(128)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 7
				for pb.Next() {
					if _, err := s.Get(ctx, keys[i%len(keys)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
