package session

import (
	"bytes"
	"context"
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
	// Frontend names the frontend whose sessions this manager keeps:
	// [a-z0-9-]+, so it holds no NUL (see sealer.lookup). Empty is the
	// single implicit frontend of a configuration without frontends,
	// whose store keys, tags, sealing and cookie are exactly what they
	// were before frontends existed. See "Frontends" in the package doc.
	Frontend string
	// CookieName defaults to DefaultCookieNameFor(Frontend, CookiePath).
	CookieName string
	// CookiePath is the session cookie's Path, the frontend's base path
	// ("/admin/"); default "/". A name with the __Host- prefix requires
	// "/": browsers refuse a __Host- cookie with any other Path.
	CookiePath string
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

// DefaultCookieNameFor is the session cookie's name when none is
// configured: DefaultCookieName for the implicit frontend; for a named
// frontend at path "/", "__Host-Http-cloakroom-<name>"; at another path,
// "__Secure-Http-cloakroom-<name>", since __Host- requires Path=/ and
// __Secure- still requires Secure and keeps the cookie from being set
// over plain HTTP. Each frontend's default differs from every other's, so
// frontends sharing an origin never share a cookie.
func DefaultCookieNameFor(frontend, path string) string {
	switch {
	case frontend == "":
		return DefaultCookieName
	case path == "" || path == "/":
		return DefaultCookieName + "-" + frontend
	default:
		return "__Secure-Http-cloakroom-" + frontend
	}
}

// Manager turns cookies into sessions and back.
type Manager struct {
	store    Store
	seal     *sealer
	frontend string
	cookie   string
	path     string
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

// storedSession is what the store held, sealed, before the binary record
// (codec.go): the session as JSON, and the name of its frontend unless it
// is the implicit one (then the JSON is exactly a Session's, as before
// frontends existed). decodeRecord still reads it.
type storedSession struct {
	Frontend string `json:"frontend,omitempty"`
	*Session
}

// decode decodes an unsealed record of either encoding; ok is false when
// it is malformed or belongs to another frontend.
func (m *Manager) decode(plain []byte) (*Session, bool) {
	s, frontend, err := decodeRecord(plain)
	if err != nil || frontend != m.frontend {
		return nil, false
	}
	return s, true
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
	if !validFrontend(opts.Frontend) {
		return nil, fmt.Errorf("session: frontend name %q must be lowercase letters, digits and dashes", opts.Frontend)
	}
	path := opts.CookiePath
	if path == "" {
		path = "/"
	}
	if !validCookiePath(path) {
		return nil, fmt.Errorf("session: cookie path %q must start with / and hold no spaces, semicolons or control characters", path)
	}
	m := &Manager{
		store:    opts.Store,
		seal:     s,
		frontend: opts.Frontend,
		cookie:   opts.CookieName,
		path:     path,
		sameSite: opts.SameSite,
		idle:     opts.IdleTimeout,
		absolute: opts.AbsoluteTimeout,
		now:      opts.Now,
		onExpire: opts.OnExpire,

		cookieMode: opts.CookieMode,
		decoded:    make(map[string]decodedSession),
	}
	if m.cookie == "" {
		m.cookie = DefaultCookieNameFor(m.frontend, path)
	}
	if strings.HasPrefix(m.cookie, "__Host-") && path != "/" {
		return nil, fmt.Errorf("session: cookie %q has the __Host- prefix, which requires Path=/, not %q", m.cookie, path)
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

// validFrontend reports whether name is empty or [a-z0-9-]+.
func validFrontend(name string) bool {
	for i := range len(name) {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validCookiePath reports whether p can be a cookie's Path attribute.
func validCookiePath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := range len(p) {
		if c := p[i]; c <= ' ' || c == ';' || c == 0x7f {
			return false
		}
	}
	return true
}

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string { return m.cookie }

// CookiePath is the session cookie's Path.
func (m *Manager) CookiePath() string { return m.path }

// Frontend is the name of the frontend whose sessions m keeps; empty for
// the implicit one.
func (m *Manager) Frontend() string { return m.frontend }

// aad is the AEAD additional data of a value bound to bind (its store
// key, the cookie name, a Seal purpose): bind itself for the implicit
// frontend, as before frontends existed, else bind 0x00 frontend. A value
// sealed for one frontend therefore fails to open for another, whatever
// key, handle or cookie name it is presented under. One allocation, as
// the []byte(bind) it replaces.
func (m *Manager) aad(bind string) []byte {
	if m.frontend == "" {
		return []byte(bind)
	}
	b := make([]byte, 0, len(bind)+1+len(m.frontend))
	return append(append(append(b, bind...), 0), m.frontend...)
}

// lookup is the store key or tag of v under key i, in m's frontend.
func (m *Manager) lookup(i int, prefix, v string) string {
	return m.seal.lookup(i, prefix, m.frontend, v)
}

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
		key := m.lookup(i, "s:", id)
		b, err := m.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("session store: %w", err)
		}
		s, ok := m.cached(key, b)
		if !ok {
			plain, err := m.seal.open(i, b, m.aad(key))
			if err != nil {
				// Tampered, sealed under a removed key or for another
				// frontend: treat as absent.
				return nil, ErrNotFound
			}
			s, ok = m.decode(plain)
			if !ok {
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
	// Losing a touch only ends the session a little early: a store need
	// not wait for replicas (Lossy).
	return m.Save(context.WithValue(ctx, lossyKey{}, true), s)
}

// Save writes s under its ticket id.
func (m *Manager) Save(ctx context.Context, s *Session) error {
	if s.ID == "" {
		return errors.New("session: save without id")
	}
	if m.cookieMode {
		return m.saveCookie(ctx, s)
	}
	plain, err := encodeRecord(m.frontend, s)
	if err != nil {
		return err
	}
	key := m.lookup(0, "s:", s.ID)
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
	sealed := m.seal.seal(plain, m.aad(key))
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
// log and show to operators. It depends on the frontend too.
func (m *Manager) HandleOf(id string) string { return m.lookup(0, "s:", id) }

// LockKey is the Locker key that serialises token work on session id.
func (m *Manager) LockKey(id string) string { return m.lookup(0, "lock:", id) }

// SubjectTag is the store tag of every session of subject sub in m's
// frontend: the same subject has another tag in every other frontend, so
// DeleteTagged(SubjectTag(sub)) ends this frontend's sessions only.
func (m *Manager) SubjectTag(sub string) string { return m.lookup(0, "sub:", sub) }

// SIDTag is the store tag of every session with IdP session id sid in m's
// frontend: like SubjectTag, scoped to the frontend, so a provider sid
// shared by two clients' sessions names a different tag in each.
func (m *Manager) SIDTag(sid string) string { return m.lookup(0, "sid:", sid) }

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
// the browser drops the ticket. Its Path is the frontend's (CookiePath):
// a cookie is cleared only by a Set-Cookie with the same name and Path.
func (m *Manager) sessionCookie(name, value string) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: m.path, Secure: true, HttpOnly: true, SameSite: m.sameSite}
}

// Delete removes s from the store.
func (m *Manager) Delete(ctx context.Context, s *Session) error {
	if m.cookieMode {
		return m.deleteCookie(ctx)
	}
	for i := range m.seal.keys {
		key := m.lookup(i, "s:", s.ID)
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
// (the login-attempt cookie), bound to purpose and to m's frontend: what
// one frontend sealed, another cannot open.
func (m *Manager) Seal(purpose string, plain []byte) []byte {
	return m.seal.seal(plain, m.aad(purpose))
}

// Open reverses Seal with any configured key.
func (m *Manager) Open(purpose string, sealed []byte) ([]byte, error) {
	return m.seal.openAny(sealed, m.aad(purpose))
}
