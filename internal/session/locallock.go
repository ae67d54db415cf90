package session

import (
	"context"
	"sync"
	"time"
)

// LocalLocker is a Locker within one process, for stores that one process
// owns (memory, an embedded file). A holder that outlives its ttl loses the
// lock to the next caller, and its late unlock does not release the new
// owner's lock; a waiter gives up with ctx.Err() when ctx ends.
type LocalLocker struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	locks map[string]*localLock
}

var _ Locker = (*LocalLocker)(nil)

type localLock struct {
	ch      chan struct{} // closed on unlock
	expires time.Time
}

// Lock implements Locker.
func (l *LocalLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	now := l.Now
	if now == nil {
		now = time.Now
	}
	for {
		l.mu.Lock()
		if l.locks == nil {
			l.locks = make(map[string]*localLock)
		}
		t0 := now()
		held := l.locks[key]
		if held == nil || !t0.Before(held.expires) {
			mine := &localLock{ch: make(chan struct{}), expires: t0.Add(ttl)}
			l.locks[key] = mine
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					if l.locks[key] == mine {
						delete(l.locks, key)
					}
					l.mu.Unlock()
					close(mine.ch)
				})
			}, nil
		}
		wait := held.expires.Sub(t0)
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-held.ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}
