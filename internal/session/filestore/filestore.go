// Package filestore is a session.Store and session.Locker kept in one file on
// local disk: an embedded bbolt database. It is the default store of
// `cloakroom serve` (session.store: file:./cloakroom-sessions.db).
//
// Every write is one bbolt transaction, synced to disk before it returns, so
// sessions survive restarts and crashes without torn writes. One process at a
// time owns the file: Open takes an exclusive lock on it and fails after
// about a second if another Cloakroom process (or another Store in this
// process) holds it. Because the file is owned by one process, the Locker is
// in-process.
//
// Layout (format version 1):
//
//   - bucket "entries": key → 8-byte big-endian expiry (Unix nanoseconds),
//     uvarint tag count, each tag as uvarint length + bytes, then the value;
//   - bucket "tags": tag + "\x00" + key → empty, so Tagged is a prefix scan;
//   - bucket "meta": "version" → "1".
//
// Expired entries are invisible at once, removed when a Get meets them and
// by a background sweep (every minute by default).
//
// Reads are served from an in-memory cache of values when it holds them, so
// that the common Get needs no bbolt read transaction (see cache for why
// and how it stays exact). It is filled by Set and by a Get that reads
// bbolt, and every write path (Set, Delete, DeleteTagged, the removal of
// expired entries by Get and by the sweep) updates it before returning; a
// cached value is served only until its expiry, by the same clock. Its
// memory is bounded by Options.CacheBytes (DefaultCacheBytes, 32 MiB, by
// default): it counts each entry's key and value bytes plus 96 bytes of
// overhead, evicts arbitrary entries to stay within the bound, and skips
// values larger than a 128th of the bound (256 KiB by default). Sealed
// sessions are about 2 KB, so the default holds about 17,000 of them.
// Results "not found" are not cached.
package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/cloakroom/cloakroom/internal/session"
)

var (
	_ session.Store  = (*Store)(nil)
	_ session.Locker = (*Store)(nil)
)

// ErrInUse is returned by Open when another process, or another Store in
// this process, holds the file.
var ErrInUse = errors.New("file is in use by another Cloakroom process")

// ErrClosed is returned by every operation on a Store after Close.
var ErrClosed = errors.New("closed")

const (
	// DefaultSweepInterval is how often expired entries are removed when
	// Options.SweepInterval is zero.
	DefaultSweepInterval = time.Minute

	// fileMode keeps the file private to the gateway's user; values are
	// sealed, but nothing else needs to read them.
	fileMode = 0o600
	// lockTimeout bounds the wait for the file lock, so a second process
	// fails with ErrInUse instead of hanging.
	lockTimeout = time.Second
	// sweepBatch bounds how many entries one sweep transaction deletes, so
	// a large sweep does not hold the writer lock for long.
	sweepBatch = 1000

	formatVersion = "1"
)

var (
	bucketEntries = []byte("entries")
	bucketTags    = []byte("tags")
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
)

// Options configure Open.
type Options struct {
	// Path is the database file, without session.store's "file:" prefix.
	// It is created (mode 0600) if missing; its directory must exist.
	Path string
	// Now is the clock for expiry and locks; nil means time.Now.
	Now func() time.Time
	// SweepInterval is how often a background job removes expired entries;
	// zero means DefaultSweepInterval (1m), negative disables the job.
	SweepInterval time.Duration
	// Logger receives sweep failures and file warnings; nil discards them.
	Logger *slog.Logger
	// CacheBytes bounds the in-memory read cache (see the package doc);
	// zero means DefaultCacheBytes (32 MiB), negative disables the cache.
	CacheBytes int64
}

// Store is a session.Store and session.Locker backed by a bbolt file. Its
// methods are safe for concurrent use. Set copies the value in; the slice
// Get returns may be shared with the read cache, so callers must not modify
// it (see Get).
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time
	log  *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the sweeper has returned

	locks session.LocalLocker

	// cache holds recent values; nil when Options.CacheBytes < 0. wmu
	// serialises write transactions with their cache updates, so that the
	// cache sees writes in commit order (see cache).
	cache *cache
	wmu   sync.Mutex

	// Test hooks: afterRead runs in Get between its bbolt read and its
	// cache fill, afterCommit in update between the commit and the cache
	// update.
	afterRead   func(key string)
	afterCommit func()
}

// Open opens or creates the store at o.Path and starts its sweeper. It fails
// with ErrInUse if the file stays locked by another owner for about a
// second, and with a clear error if the directory is missing or the file is
// not a session store. Close releases the file.
func Open(o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("session store: empty path")
	}
	dir := filepath.Dir(o.Path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("session store %q: directory %q does not exist; create it first", o.Path, dir)
	case err != nil:
		return nil, fmt.Errorf("session store %q: %w", o.Path, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("session store %q: %q is not a directory", o.Path, dir)
	}

	s := &Store{
		path: o.Path,
		now:  o.Now,
		log:  o.Logger,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.locks.Now = s.now
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.CacheBytes == 0:
		s.cache = newCache(DefaultCacheBytes)
	case o.CacheBytes > 0:
		s.cache = newCache(o.CacheBytes)
	}

	db, err := bolt.Open(o.Path, fileMode, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("session store %q: %w (still locked after %s); stop the other process or set a different session.store path", o.Path, ErrInUse, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("session store %q: not a readable session database: %w", o.Path, err)
	case err != nil:
		return nil, fmt.Errorf("session store %q: open: %w", o.Path, err)
	}
	s.db = db

	if fi, err := os.Stat(o.Path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("session store file is readable by other users", "path", o.Path, "mode", fi.Mode().Perm().String())
	}

	if err := db.Update(initBuckets); err != nil {
		db.Close()
		return nil, fmt.Errorf("session store %q: %w", o.Path, err)
	}

	interval := o.SweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval > 0 {
		go s.sweeper(interval)
	} else {
		close(s.done)
	}
	return s, nil
}

func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if tx.Bucket(bucketEntries) != nil {
			return errors.New("not a session database: no format version")
		}
		if err := meta.Put(keyVersion, []byte(formatVersion)); err != nil {
			return err
		}
	case string(v) != formatVersion:
		return fmt.Errorf("unsupported format version %q, want %q", v, formatVersion)
	}
	if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
		return err
	}
	_, err = tx.CreateBucketIfNotExists(bucketTags)
	return err
}

// Get implements session.Store. It returns session.ErrNotFound for a
// missing or expired key, and removes an expired one.
//
// The value is read-only: it may be the cache's own slice, shared with
// every other Get of the key, as memstore's values are. Copying it on each
// hit would cost an allocation and a memmove of the whole sealed session
// (about 2 KB) per request, more than the lookup itself, and
// session.Manager only reads it (it compares it with bytes.Equal, opens it
// into a new buffer, and clones what it keeps). Its capacity is its length,
// so an append copies rather than writing into the shared array.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	now := s.now().UnixNano()
	sh := s.cache.shard(key)
	cv, hit, gen := sh.lookup(key, now)
	if hit {
		return cv, nil // never nil: see clone
	}
	var out []byte
	var exp int64
	var expired bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _, err := buckets(tx)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return session.ErrNotFound
		}
		e, ok := decode(raw)
		if !ok {
			return errCorrupt
		}
		if e.exp <= now {
			expired = true
			return session.ErrNotFound
		}
		// bbolt's memory is valid only inside the transaction.
		out = clone(e.val)
		exp = e.exp
		return nil
	})
	if s.afterRead != nil {
		s.afterRead(key)
	}
	if expired {
		err := s.update(func(tx *bolt.Tx, w *write) error {
			deleted, err := deleteIfExpired(tx, []byte(key), now)
			if deleted {
				w.change(key)
			}
			return err
		})
		if err != nil && !s.closed.Load() {
			s.log.Warn("session store: removing an expired entry", "path", s.path, "err", err)
		}
	}
	if err != nil {
		return nil, s.wrap("get", err)
	}
	sh.fill(key, out, exp, gen)
	return out, nil
}

// Set implements session.Store. It replaces the key's value, expiry and
// tags; a ttl <= 0 deletes the key. Tags must not contain a NUL byte.
func (s *Store) Set(ctx context.Context, key string, v []byte, ttl time.Duration, tags ...string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	for _, t := range tags {
		if strings.IndexByte(t, 0) >= 0 {
			return fmt.Errorf("session store %q: set: tag contains a NUL byte", s.path)
		}
	}
	now := s.now().UnixNano()
	var rec, cv []byte
	var exp int64
	if ttl > 0 {
		exp = expiry(now, ttl)
		rec = encode(exp, tags, v)
		if s.cache != nil {
			cv = clone(v)
		}
	}
	k := []byte(key)
	err := s.update(func(tx *bolt.Tx, w *write) error {
		w.change(key)
		if err := deleteKey(tx, k); err != nil {
			return err
		}
		if rec == nil {
			return nil
		}
		b, tb, err := buckets(tx)
		if err != nil {
			return err
		}
		if err := b.Put(k, rec); err != nil {
			return err
		}
		for _, t := range tags {
			if err := tb.Put(tagKey(t, k), nil); err != nil {
				return err
			}
		}
		w.val, w.exp = cv, exp
		return nil
	})
	return s.wrap("set", err)
}

// Delete implements session.Store; deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := s.update(func(tx *bolt.Tx, w *write) error {
		w.change(key)
		return deleteKey(tx, []byte(key))
	})
	return s.wrap("delete", err)
}

// Tagged implements session.Store: the keys of the live entries set with
// tag, in key order. It reads only that tag's index rows.
func (s *Store) Tagged(ctx context.Context, tag string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	now := s.now().UnixNano()
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b, tb, err := buckets(tx)
		if err != nil {
			return err
		}
		prefix := tagKey(tag, nil)
		c := tb.Cursor()
		for tk, _ := c.Seek(prefix); tk != nil && bytes.HasPrefix(tk, prefix); tk, _ = c.Next() {
			k := tk[len(prefix):]
			if e, ok := decode(b.Get(k)); ok && e.exp > now {
				keys = append(keys, string(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("tagged", err)
	}
	return keys, nil
}

// DeleteTagged implements session.Store: it deletes every entry set with
// tag, expired or not, in one transaction.
func (s *Store) DeleteTagged(ctx context.Context, tag string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := s.update(func(tx *bolt.Tx, w *write) error {
		_, tb, err := buckets(tx)
		if err != nil {
			return err
		}
		// Collect first: deleting an entry deletes its index rows, which
		// the cursor is walking.
		prefix := tagKey(tag, nil)
		var keys [][]byte
		c := tb.Cursor()
		for tk, _ := c.Seek(prefix); tk != nil && bytes.HasPrefix(tk, prefix); tk, _ = c.Next() {
			keys = append(keys, bytes.Clone(tk[len(prefix):]))
		}
		for _, k := range keys {
			w.change(string(k))
			if err := deleteKey(tx, k); err != nil {
				return err
			}
			// An index row without its entry (there should be none) would
			// otherwise survive.
			if err := tb.Delete(tagKey(tag, k)); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap("delete tagged", err)
}

// Close stops the sweeper and closes the file. Later calls return nil; every
// other method then returns ErrClosed. Locks still held are forgotten.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("session store %q: close: %w", s.path, err)
		}
		// Under wmu, so that no write still ending refills it.
		s.wmu.Lock()
		s.cache.reset()
		s.wmu.Unlock()
	})
	return s.closeErr
}

// Lock implements session.Locker within this process, which owns the file
// (see session.LocalLocker).
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("session store %q: lock: %w", s.path, ErrClosed)
	}
	return s.locks.Lock(ctx, key, ttl)
}

// sweeper removes expired entries every interval until Close.
func (s *Store) sweeper(interval time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		n, err := s.sweep()
		if err != nil {
			if !s.closed.Load() {
				s.log.Warn("session store sweep failed", "path", s.path, "err", err)
			}
			continue
		}
		if n > 0 {
			s.log.Debug("session store swept expired entries", "path", s.path, "removed", n)
		}
	}
}

// sweep deletes the entries expired at s.now() and reports how many. It
// finds them in a read transaction, so writers are blocked only while
// deleting, in batches of sweepBatch.
func (s *Store) sweep() (int, error) {
	now := s.now().UnixNano()
	var expired [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _, err := buckets(tx)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if e, ok := decode(v); !ok || e.exp <= now {
				expired = append(expired, bytes.Clone(k))
			}
		}
		return nil
	})
	if err != nil {
		return 0, s.wrap("sweep", err)
	}
	removed := 0
	for len(expired) > 0 {
		batch := expired[:min(sweepBatch, len(expired))]
		expired = expired[len(batch):]
		err := s.update(func(tx *bolt.Tx, w *write) error {
			for _, k := range batch {
				// Re-checked: a Set may have renewed it since the scan.
				deleted, err := deleteIfExpired(tx, k, now)
				if deleted {
					w.change(string(k))
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return removed, s.wrap("sweep", err)
		}
		removed += len(batch)
	}
	return removed, nil
}

// update runs fn in a bbolt write transaction and keeps the cache exact
// (see cache): fn calls w.change for every key it changes, and a Set puts
// the key's new value in w.val. Each key is marked in the cache when fn
// calls w.change, before the commit, and the marks are ended after the
// commit (or its failure), in commit order under wmu; only a committed
// w.val is cached.
func (s *Store) update(fn func(tx *bolt.Tx, w *write) error) error {
	w := write{c: s.cache}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Deferred, so that a panic in fn leaves no key marked for good.
	committed := false
	defer func() { w.end(committed) }()
	err := s.db.Update(func(tx *bolt.Tx) error { return fn(tx, &w) })
	committed = err == nil
	if s.afterCommit != nil {
		s.afterCommit()
	}
	return err
}

// write is a write transaction's effect on the cache.
type write struct {
	c    *cache
	keys []string // the keys changed, each marked in the cache
	// val, if not nil, is the value keys[0] holds once the transaction
	// commits (a Set), with its expiry.
	val []byte
	exp int64
}

// change marks key as changed by the transaction; it must be called before
// the commit, that is inside the transaction function.
func (w *write) change(key string) {
	w.c.shard(key).begin(key)
	w.keys = append(w.keys, key)
}

// end ends the marks; committed says whether the transaction committed.
func (w *write) end(committed bool) {
	for i, k := range w.keys {
		var v []byte
		if committed && i == 0 {
			v = w.val
		}
		w.c.shard(k).end(k, v, w.exp)
	}
}

// clone copies v for Get's result and the cache: never nil (an empty value
// is found, unlike a nil one), and with no spare capacity (see Get).
func clone(v []byte) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	return slices.Clip(bytes.Clone(v))
}

var errCorrupt = errors.New("corrupt entry")

// check refuses work after Close or once ctx has ended.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("session store %q: %w", s.path, ErrClosed)
	}
	return ctx.Err()
}

// wrap names the store and operation; it keeps session.ErrNotFound bare so
// callers may compare it directly.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil, err == session.ErrNotFound:
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("session store %q: %s: %w", s.path, op, ErrClosed)
	}
	return fmt.Errorf("session store %q: %s: %w", s.path, op, err)
}

func buckets(tx *bolt.Tx) (entries, tags *bolt.Bucket, err error) {
	entries, tags = tx.Bucket(bucketEntries), tx.Bucket(bucketTags)
	if entries == nil || tags == nil {
		return nil, nil, errors.New("missing bucket")
	}
	return entries, tags, nil
}

// deleteKey removes key's entry and its tag index rows.
func deleteKey(tx *bolt.Tx, key []byte) error {
	b, tb, err := buckets(tx)
	if err != nil {
		return err
	}
	raw := b.Get(key)
	if raw == nil {
		return nil
	}
	if e, ok := decode(raw); ok {
		// Copied: the rows below are deleted while raw is still in use.
		for t := range tagList(bytes.Clone(e.tags)).all() {
			if err := tb.Delete(tagKey(string(t), key)); err != nil {
				return err
			}
		}
	}
	return b.Delete(key)
}

// deleteIfExpired removes key if its entry expired at now (Unix nanos); it
// reports whether it deleted (or began to delete) the entry.
func deleteIfExpired(tx *bolt.Tx, key []byte, now int64) (bool, error) {
	b, _, err := buckets(tx)
	if err != nil {
		return false, err
	}
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if e, ok := decode(raw); ok && e.exp > now {
		return false, nil
	}
	return true, deleteKey(tx, key)
}

// tagKey is the index row of key under tag: tag + "\x00" + key. Tags hold no
// NUL, so the first NUL ends the tag.
func tagKey(tag string, key []byte) []byte {
	b := make([]byte, 0, len(tag)+1+len(key))
	b = append(b, tag...)
	b = append(b, 0)
	return append(b, key...)
}

// expiry is now+ttl in Unix nanos, saturating rather than wrapping.
func expiry(now int64, ttl time.Duration) int64 {
	if int64(ttl) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + int64(ttl)
}

// entry is a decoded record; its slices alias the record.
type entry struct {
	exp  int64
	tags tagList
	val  []byte
}

// tagList is the encoded tags of a record: each a uvarint length and bytes.
type tagList []byte

// all yields each tag; it stops at the first malformed one.
func (l tagList) all() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(l) > 0 {
			n, w := binary.Uvarint(l)
			if w <= 0 || n > uint64(len(l)-w) {
				return
			}
			if !yield(l[w : w+int(n)]) {
				return
			}
			l = l[w+int(n):]
		}
	}
}

// encode builds a record: expiry, tag count, tags, value.
func encode(exp int64, tags []string, v []byte) []byte {
	n := 8 + binary.MaxVarintLen64 + len(v)
	for _, t := range tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	b := make([]byte, 8, n)
	binary.BigEndian.PutUint64(b, uint64(exp))
	b = binary.AppendUvarint(b, uint64(len(tags)))
	for _, t := range tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return append(b, v...)
}

// decode parses a record without copying; ok is false if it is malformed
// (or nil).
func decode(b []byte) (e entry, ok bool) {
	if len(b) < 9 {
		return entry{}, false
	}
	e.exp = int64(binary.BigEndian.Uint64(b))
	rest := b[8:]
	count, w := binary.Uvarint(rest)
	if w <= 0 {
		return entry{}, false
	}
	rest = rest[w:]
	start := rest
	for range count {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return entry{}, false
		}
		rest = rest[w+int(n):]
	}
	e.tags = tagList(start[:len(start)-len(rest)])
	e.val = rest
	return e, true
}
