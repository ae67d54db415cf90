package tlsserve

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// errStorageClosed is what a lock asked for after Close gets.
var errStorageClosed = errors.New("tls.acme: closed")

// closingStorage is tls.acme.storage with an end: once closed it refuses
// new locks and writes, and close waits for the locks taken before to be
// released and the writes begun before to end.
// certmagic's background work (an order, a renewal) may still be running
// when the gateway stops; this way it writes no lock file after Close
// returns, so a stopped gateway leaves storage as other instances expect
// to find it.
type closingStorage struct {
	*certmagic.FileStorage

	mu     sync.Mutex
	closed bool
	held   int // locks taken and not yet released, writes not yet done
}

func (s *closingStorage) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStorageClosed
	}
	s.held++
	return nil
}

func (s *closingStorage) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held--
}

// Lock takes the lock name unless s is closed.
func (s *closingStorage) Lock(ctx context.Context, name string) error {
	if err := s.begin(); err != nil {
		return err
	}
	if err := s.FileStorage.Lock(ctx, name); err != nil {
		s.end()
		return err
	}
	return nil
}

// TryLock is Lock without waiting for another holder.
func (s *closingStorage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := s.begin(); err != nil {
		return false, err
	}
	ok, err := s.FileStorage.TryLock(ctx, name)
	if !ok {
		s.end()
	}
	return ok, err
}

// Unlock releases the lock name.
func (s *closingStorage) Unlock(ctx context.Context, name string) error {
	defer s.end()
	return s.FileStorage.Unlock(ctx, name)
}

// Store writes value at key unless s is closed.
func (s *closingStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.FileStorage.Store(ctx, key, value)
}

// Delete removes key unless s is closed.
func (s *closingStorage) Delete(ctx context.Context, key string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.FileStorage.Delete(ctx, key)
}

// close refuses new locks and writes and waits, at most limit, until the
// locks already taken are released and the writes are done; it reports
// whether they were.
func (s *closingStorage) close(limit time.Duration) bool {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		if held <= 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
