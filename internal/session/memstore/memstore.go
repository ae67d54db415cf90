// Package memstore is a session.Store and session.Locker in process memory:
// for tests and single-process development. Entries vanish on restart.
package memstore

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/session"
)

var (
	_ session.Store  = (*Store)(nil)
	_ session.Locker = (*Store)(nil)
)

// Store keeps entries in a map; expired entries are dropped when read and
// swept every sweepEvery writes. With a maximum, the least recently written
// entry is evicted to make room.
type Store struct {
	now func() time.Time
	max int

	mu     sync.Mutex
	items  map[string]item
	order  *list.List // keys, least recently written first
	tags   map[string]map[string]struct{}
	writes int
	locks  session.LocalLocker
}

type item struct {
	v       []byte
	expires time.Time
	tags    []string
	elem    *list.Element
}

const sweepEvery = 1024

// Options configure a Store.
type Options struct {
	// Now defaults to time.Now.
	Now func() time.Time
	// MaxEntries bounds the store; 0 means unbounded.
	MaxEntries int
}

// New returns an unbounded empty store; now may be nil for time.Now.
func New(now func() time.Time) *Store { return NewStore(Options{Now: now}) }

// NewStore returns an empty store.
func NewStore(o Options) *Store {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:   now,
		max:   o.MaxEntries,
		order: list.New(),
		items: make(map[string]item),
		tags:  make(map[string]map[string]struct{}),
		locks: session.LocalLocker{Now: now},
	}
}

// Get implements session.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		return nil, session.ErrNotFound
	}
	if !s.now().Before(it.expires) {
		s.deleteLocked(key)
		return nil, session.ErrNotFound
	}
	return it.v, nil
}

// Set implements session.Store.
func (s *Store) Set(_ context.Context, key string, v []byte, ttl time.Duration, tags ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(key)
	if s.max > 0 && len(s.items) >= s.max {
		s.sweepLocked()
		for len(s.items) >= s.max {
			s.deleteLocked(s.order.Front().Value.(string))
		}
	}
	s.items[key] = item{v: append([]byte(nil), v...), expires: s.now().Add(ttl), tags: tags, elem: s.order.PushBack(key)}
	for _, t := range tags {
		m := s.tags[t]
		if m == nil {
			m = make(map[string]struct{})
			s.tags[t] = m
		}
		m[key] = struct{}{}
	}
	if s.writes++; s.writes%sweepEvery == 0 {
		s.sweepLocked()
	}
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(key)
	return nil
}

// Tagged implements session.Store.
func (s *Store) Tagged(_ context.Context, tag string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	now := s.now()
	for k := range s.tags[tag] {
		if now.Before(s.items[k].expires) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// DeleteTagged implements session.Store.
func (s *Store) DeleteTagged(_ context.Context, tag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.tags[tag] {
		s.deleteLocked(k)
	}
	return nil
}

// Close implements session.Store.
func (s *Store) Close() error { return nil }

// Len reports how many entries the store holds, expired or not.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *Store) deleteLocked(key string) {
	it, ok := s.items[key]
	if !ok {
		return
	}
	delete(s.items, key)
	s.order.Remove(it.elem)
	for _, t := range it.tags {
		if m := s.tags[t]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(s.tags, t)
			}
		}
	}
}

func (s *Store) sweepLocked() {
	now := s.now()
	for k, it := range s.items {
		if !now.Before(it.expires) {
			s.deleteLocked(k)
		}
	}
}

// Lock implements session.Locker within this process (see
// session.LocalLocker).
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	return s.locks.Lock(ctx, key, ttl)
}
