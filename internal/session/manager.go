package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Options configure a Manager.
type Options struct {
	// Store keeps sessions; nil with CookieMode.
	Store Store
	// CookieMode keeps sessions in the browser, sealed (see Middleware).
	CookieMode bool
	// Keys: the first seals, all open (rotation). Each at least MinKeyLen bytes.
	Keys [][]byte
	// CookieName defaults to "__Host-Http-cloakroom".
	CookieName string
	// SameSite defaults to Strict.
	SameSite http.SameSite
	// IdleTimeout (sliding) defaults to 30m, AbsoluteTimeout to 12h.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// OnExpire, when set, is called with each session found past its idle
	// or absolute timeout, before it is deleted (to revoke its tokens).
	// Sessions a store expires by itself, unread, are not reported.
	OnExpire func(*Session)
}

// expiredGrace is how long a store keeps a session past its end.
const expiredGrace = time.Hour

// DefaultCookieName carries the prefix RFC 10017 recommends: browsers that
// know it insist the cookie was set over HTTP (not by script); older
// browsers apply the __Host- rules (Secure, Path=/, no Domain).
const DefaultCookieName = "__Host-Http-cloakroom"

// Manager turns cookies into sessions and back.
type Manager struct {
	store    Store
	seal     *sealer
	cookie   string
	sameSite http.SameSite
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
	onExpire func(*Session)

	cookieMode bool

	// decoded caches unsealed sessions by store key, next to the sealed
	// bytes they came from: a load whose bytes are unchanged skips the
	// decryption and the JSON decoding, the bulk of a request's session
	// cost. Whatever the store returns is still checked byte for byte, so
	// a change made by another instance is never missed.
	mu      sync.RWMutex
	decoded map[string]decodedSession
}

type decodedSession struct {
	sealed []byte
	s      Session
}

// maxDecoded bounds the decoded-session cache.
const maxDecoded = 10_000

// NewManager checks opts and derives the keys once.
func NewManager(opts Options) (*Manager, error) {
	if opts.Store == nil && !opts.CookieMode {
		return nil, errors.New("session: no store")
	}
	s, err := newSealer(opts.Keys)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		store:    opts.Store,
		seal:     s,
		cookie:   opts.CookieName,
		sameSite: opts.SameSite,
		idle:     opts.IdleTimeout,
		absolute: opts.AbsoluteTimeout,
		now:      opts.Now,
		onExpire: opts.OnExpire,

		cookieMode: opts.CookieMode,
		decoded:    make(map[string]decodedSession),
	}
	if m.cookie == "" {
		m.cookie = DefaultCookieName
	}
	if m.sameSite == 0 || m.sameSite == http.SameSiteDefaultMode {
		m.sameSite = http.SameSiteStrictMode
	}
	if m.idle <= 0 {
		m.idle = 30 * time.Minute
	}
	if m.absolute <= 0 {
		m.absolute = 12 * time.Hour
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string { return m.cookie }

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.now() }

// Ticket returns the request's session id, or "" when it carries none that
// could be one.
func (m *Manager) Ticket(r *http.Request) string {
	v := cookieValue(r, m.cookie)
	if !validID(v) {
		return ""
	}
	return v
}

// cookieValue is the value of r's first cookie called name, read the way
// http.Request.Cookie reads it but without allocating: this runs on every
// API call. The value is not unquoted or checked here; a ticket must pass
// validID, whose alphabet has no quotes.
func cookieValue(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(textproto.TrimString(part), "=")
			if ok && k == name {
				return v
			}
		}
	}
	return ""
}

// Load returns the request's live session, or ErrNotFound. It does not
// slide the idle timeout; call Touch for that.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	if m.cookieMode {
		return m.loadCookie(r)
	}
	id := m.Ticket(r)
	if id == "" {
		return nil, ErrNotFound
	}
	return m.Get(r.Context(), id)
}

// Get returns the live session with ticket id, or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	if m.cookieMode {
		return nil, ErrNotFound // nothing on the server to look up
	}
	for i := range m.seal.keys {
		key := m.seal.lookup(i, "s:", id)
		b, err := m.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("session store: %w", err)
		}
		s, ok := m.cached(key, b)
		if !ok {
			plain, err := m.seal.open(i, b, []byte(key))
			if err != nil {
				// Tampered or sealed under a removed key: treat as absent.
				return nil, ErrNotFound
			}
			s = new(Session)
			if err := json.Unmarshal(plain, s); err != nil {
				return nil, ErrNotFound
			}
			m.remember(key, b, s)
		}
		s.ID, s.Handle = id, key
		if !m.live(s) {
			if m.onExpire != nil {
				m.onExpire(s)
			}
			_ = m.store.Delete(ctx, key)
			return nil, ErrNotFound
		}
		if i != 0 {
			// Sealed under an older key: re-seal under the current one.
			if err := m.Save(ctx, s); err == nil {
				_ = m.store.Delete(ctx, key)
			}
		}
		return s, nil
	}
	return nil, ErrNotFound
}

func (m *Manager) live(s *Session) bool {
	now := m.now()
	return now.Before(s.Expires) && now.Before(s.LastSeen.Add(m.idle))
}

// ExpiresAt is when s ends if it sees no more use.
func (m *Manager) ExpiresAt(s *Session) time.Time {
	idle := s.LastSeen.Add(m.idle)
	if idle.Before(s.Expires) {
		return idle
	}
	return s.Expires
}

// Touch slides the idle timeout. To keep the store out of most requests'
// path it writes only when a twentieth of the idle timeout has passed since
// the last write; the session can therefore end up to that much early.
func (m *Manager) Touch(ctx context.Context, s *Session) error {
	now := m.now()
	if now.Sub(s.LastSeen) < m.idle/20 {
		return nil
	}
	s.LastSeen = now
	return m.Save(ctx, s)
}

// Save writes s under its ticket id.
func (m *Manager) Save(ctx context.Context, s *Session) error {
	if s.ID == "" {
		return errors.New("session: save without id")
	}
	if m.cookieMode {
		return m.saveCookie(ctx, s)
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	key := m.seal.lookup(0, "s:", s.ID)
	ttl := m.ExpiresAt(s).Sub(m.now())
	if ttl <= 0 {
		return ErrNotFound
	}
	// The store keeps an ended session a little longer, so the next request
	// that presents it finds it ended (and OnExpire can revoke its tokens)
	// instead of finding nothing. It is never served once ended.
	ttl += expiredGrace
	var tags []string
	if s.Subject != "" {
		tags = append(tags, m.SubjectTag(s.Subject))
	}
	if s.IdPSessionID != "" {
		tags = append(tags, m.SIDTag(s.IdPSessionID))
	}
	sealed := m.seal.seal(plain, []byte(key))
	if err := m.store.Set(ctx, key, sealed, ttl, tags...); err != nil {
		m.forget(key)
		return fmt.Errorf("session store: %w", err)
	}
	m.remember(key, sealed, s)
	return nil
}

// cached returns a copy of the session decoded from exactly sealed.
func (m *Manager) cached(key string, sealed []byte) (*Session, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, ok := m.decoded[key]
	if !ok || !bytes.Equal(d.sealed, sealed) {
		return nil, false
	}
	s := d.s
	return &s, true
}

func (m *Manager) remember(key string, sealed []byte, s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.decoded[key]; !ok && len(m.decoded) >= maxDecoded {
		for k := range m.decoded { // evict one at random
			delete(m.decoded, k)
			break
		}
	}
	m.decoded[key] = decodedSession{sealed: bytes.Clone(sealed), s: *s}
}

func (m *Manager) forget(key string) {
	m.mu.Lock()
	delete(m.decoded, key)
	m.mu.Unlock()
}

// HandleOf is the handle (store key) of ticket id: a keyed hash, safe to
// log and show to operators.
func (m *Manager) HandleOf(id string) string { return m.seal.lookup(0, "s:", id) }

// LockKey is the Locker key that serialises token work on session id.
func (m *Manager) LockKey(id string) string { return m.seal.lookup(0, "lock:", id) }

// SubjectTag is the store tag of every session of subject sub.
func (m *Manager) SubjectTag(sub string) string { return m.seal.lookup(0, "sub:", sub) }

// SIDTag is the store tag of every session with IdP session id sid.
func (m *Manager) SIDTag(sid string) string { return m.seal.lookup(0, "sid:", sid) }

// Create stores s under a fresh ticket id (a new id on every login, never
// reused, so a planted ticket cannot be fixated) and sets the cookie.
func (m *Manager) Create(ctx context.Context, w http.ResponseWriter, s *Session) error {
	now := m.now()
	s.ID = newID()
	s.Created, s.LastSeen = now, now
	s.Expires = now.Add(m.absolute)
	if err := m.Save(ctx, s); err != nil {
		return err
	}
	if !m.cookieMode {
		http.SetCookie(w, m.sessionCookie(m.cookie, s.ID))
	}
	return nil
}

// sessionCookie is a session cookie with every attribute the session
// cookie has. It has no Max-Age: the server's timeouts rule, and closing
// the browser drops the ticket.
func (m *Manager) sessionCookie(name, value string) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: m.sameSite}
}

// Delete removes s from the store.
func (m *Manager) Delete(ctx context.Context, s *Session) error {
	if m.cookieMode {
		return m.deleteCookie(ctx)
	}
	for i := range m.seal.keys {
		key := m.seal.lookup(i, "s:", s.ID)
		m.forget(key)
		if err := m.store.Delete(ctx, key); err != nil {
			return fmt.Errorf("session store: %w", err)
		}
	}
	return nil
}

// ClearCookie expires the session cookie in the browser.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	if m.cookieMode {
		return // the middleware expires the chunks Delete marked
	}
	c := m.sessionCookie(m.cookie, "")
	c.MaxAge = -1
	http.SetCookie(w, c)
}

// Seal and Open protect small values the browser carries for the server
// (the login-attempt cookie), bound to purpose.
func (m *Manager) Seal(purpose string, plain []byte) []byte {
	return m.seal.seal(plain, []byte(purpose))
}

// Open reverses Seal with any configured key.
func (m *Manager) Open(purpose string, sealed []byte) ([]byte, error) {
	return m.seal.openAny(sealed, []byte(purpose))
}
