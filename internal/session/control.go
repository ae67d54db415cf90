package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sessions tagged with a subject or an IdP session id, for back-channel
// logout and operators. Tags are looked up under every configured key, so
// sessions written before a key rotation are found too. Tags are scoped to
// the manager's frontend (SubjectTag): BySubject and BySID find only its
// sessions, even when another frontend over the same store has sessions of
// the same subject or IdP session id.

// BySubject returns the live sessions of subject sub.
func (m *Manager) BySubject(ctx context.Context, sub string) ([]*Session, error) {
	return m.tagged(ctx, "sub:", sub)
}

// BySID returns the live sessions created under IdP session id sid.
func (m *Manager) BySID(ctx context.Context, sid string) ([]*Session, error) {
	return m.tagged(ctx, "sid:", sid)
}

func (m *Manager) tagged(ctx context.Context, prefix, v string) ([]*Session, error) {
	if m.cookieMode {
		return nil, ErrStateless
	}
	seen := map[string]bool{}
	var out []*Session
	for i := range m.seal.keys {
		keys, err := m.store.Tagged(ctx, m.lookup(i, prefix, v))
		if err != nil {
			return nil, fmt.Errorf("session store: %w", err)
		}
		for _, k := range keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			s, err := m.ByHandle(ctx, k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// ErrStateless is returned for operations cookie mode cannot do.
var ErrStateless = errors.New("not possible with the cookie session store: sessions live only in browsers")

// ByHandle loads a live session by its Handle. The result has no ID (the
// ticket cannot be recovered) and can be ended with DeleteHandle. The
// handle of another frontend's session is not found: its seal is bound to
// that frontend (Manager.aad).
func (m *Manager) ByHandle(ctx context.Context, handle string) (*Session, error) {
	if m.cookieMode {
		return nil, ErrStateless
	}
	b, err := m.store.Get(ctx, handle)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	plain, err := m.seal.openAny(b, m.aad(handle))
	if err != nil {
		return nil, ErrNotFound
	}
	s, ok := m.decode(plain)
	if !ok || !m.live(s) {
		return nil, ErrNotFound
	}
	s.Handle = handle
	return s, nil
}

// DeleteHandle ends the session with that handle. It deletes whatever the
// store holds there: callers pass the Handle of a session this manager
// loaded (ByHandle, BySubject, BySID), which is its own frontend's.
func (m *Manager) DeleteHandle(ctx context.Context, handle string) error {
	if m.cookieMode {
		return ErrStateless
	}
	m.forget(handle)
	if err := m.store.Delete(ctx, handle); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	return nil
}

// FirstUse reports whether v (a logout token's jti, say) has not been seen
// in the last ttl, and remembers it. With a store shared by several
// instances and locker a cross-instance Locker, a value is accepted once
// across all of them.
//
// The memory is per frontend, like every key the manager derives: v seen
// by one frontend is still new to another. A provider gives each client
// its own logout token with its own jti, so this refuses no honest
// delivery; a single token whose aud names two clients may rightly end
// sessions at both endpoints, and is still accepted only once by each. A
// token replayed to another frontend gains nothing: that frontend checks
// aud against its own client_id, and its sessions are its own.
func (m *Manager) FirstUse(ctx context.Context, locker Locker, store Store, v string, ttl time.Duration) (bool, error) {
	key := m.lookup(0, "once:", v)
	// The lock guards only the marker, which is Lossy (below): taking it
	// need not wait for replicas either.
	unlock, err := locker.Lock(context.WithValue(ctx, lossyKey{}, true), key, 10*time.Second)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := store.Get(ctx, key); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("session store: %w", err)
	}
	// A marker lost in a failover reopens the window it closes for no
	// longer than ttl, as before replicas were waited for: it is Lossy, so
	// a DPoP proof does not wait for a replica on every call.
	if err := store.Set(context.WithValue(ctx, lossyKey{}, true), key, []byte{1}, ttl); err != nil {
		return false, fmt.Errorf("session store: %w", err)
	}
	return true, nil
}
