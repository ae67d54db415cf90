package session

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
)

// Cookie mode keeps no server state: the sealed session travels in the
// browser, split across cookies NAME.0, NAME.1, ... (each value at most
// chunkSize bytes, at most maxChunks of them, so the Cookie header stays
// well under every browser's and server's limits). What cookie mode cannot
// do: back-channel logout and operator revocation (there is nothing on the
// server to delete), and a refresh cannot be shared by requests that reach
// different processes at the same moment.
//
// Handlers never see cookies: Save, Create and Delete record the change in
// a per-request holder put in the context by Middleware, which writes the
// Set-Cookie headers just before the response's headers go out.
const (
	chunkSize = 3800
	maxChunks = 12
)

// ErrTooLarge is returned when a session does not fit in cookie mode.
var ErrTooLarge = errors.New("session too large for cookie mode")

type holderKey struct{}

type holder struct {
	r       *http.Request
	s       *Session // to write, when dirty
	dirty   bool
	deleted bool
}

// cookieSession is what the cookies carry, sealed: the ticket id, the
// frontend's name unless it is the implicit one, and the session.
type cookieSession struct {
	ID       string `json:"id"`
	Frontend string `json:"frontend,omitempty"`
	*Session
}

// Stateless reports whether the manager runs in cookie mode.
func (m *Manager) Stateless() bool { return m.cookieMode }

// Middleware puts the per-request holder cookie mode needs in the request
// context and writes the session cookies before the response headers. In
// store mode it returns next unchanged.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	if !m.cookieMode {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := &holder{r: r}
		r = r.WithContext(context.WithValue(r.Context(), holderKey{}, h))
		next.ServeHTTP(&cookieWriter{ResponseWriter: w, m: m, h: h}, r)
	})
}

func holderOf(ctx context.Context) *holder {
	h, _ := ctx.Value(holderKey{}).(*holder)
	return h
}

// chunkNames lists the chunk cookies r carries, in order.
func (m *Manager) chunks(r *http.Request) []*http.Cookie {
	var out []*http.Cookie
	for i := range maxChunks {
		c, err := r.Cookie(m.cookie + "." + strconv.Itoa(i))
		if err != nil {
			break
		}
		out = append(out, c)
	}
	return out
}

func (m *Manager) loadCookie(r *http.Request) (*Session, error) {
	if h := holderOf(r.Context()); h != nil && h.dirty {
		if h.deleted {
			return nil, ErrNotFound
		}
		c := *h.s
		return &c, nil
	}
	cs := m.chunks(r)
	if len(cs) == 0 {
		return nil, ErrNotFound
	}
	var enc []byte
	for _, c := range cs {
		enc = append(enc, c.Value...)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(string(enc))
	if err != nil {
		return nil, ErrNotFound
	}
	// The additional data is the cookie name and the frontend (Manager.aad):
	// chunks renamed to another frontend's cookie fail to open there.
	plain, err := m.seal.openAny(sealed, m.aad(m.cookie))
	if err != nil {
		return nil, ErrNotFound
	}
	cs2 := cookieSession{Session: new(Session)}
	if err := json.Unmarshal(plain, &cs2); err != nil || !validID(cs2.ID) || cs2.Frontend != m.frontend {
		return nil, ErrNotFound
	}
	s := cs2.Session
	s.ID = cs2.ID
	if !m.live(s) {
		if m.onExpire != nil {
			m.onExpire(s)
		}
		return nil, ErrNotFound
	}
	return s, nil
}

func (m *Manager) saveCookie(ctx context.Context, s *Session) error {
	h := holderOf(ctx)
	if h == nil {
		return errors.New("session: cookie mode needs Manager.Middleware")
	}
	enc, err := m.encodeCookie(s)
	if err != nil {
		return err
	}
	if len(enc) > chunkSize*maxChunks {
		return ErrTooLarge
	}
	c := *s
	h.s, h.dirty, h.deleted = &c, true, false
	return nil
}

func (m *Manager) encodeCookie(s *Session) (string, error) {
	plain, err := json.Marshal(cookieSession{ID: s.ID, Frontend: m.frontend, Session: s})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(m.seal.seal(plain, m.aad(m.cookie))), nil
}

func (m *Manager) deleteCookie(ctx context.Context) error {
	h := holderOf(ctx)
	if h == nil {
		return errors.New("session: cookie mode needs Manager.Middleware")
	}
	h.s, h.dirty, h.deleted = nil, true, true
	return nil
}

// cookieWriter writes the holder's cookies before the first header write.
type cookieWriter struct {
	http.ResponseWriter
	m       *Manager
	h       *holder
	written bool
}

func (w *cookieWriter) flushCookies() {
	if w.written {
		return
	}
	w.written = true
	if !w.h.dirty {
		return
	}
	present := len(w.m.chunks(w.h.r))
	n := 0
	if !w.h.deleted {
		enc, err := w.m.encodeCookie(w.h.s)
		if err != nil {
			return
		}
		for ; len(enc) > 0; n++ {
			part := enc[:min(chunkSize, len(enc))]
			enc = enc[len(part):]
			http.SetCookie(w.ResponseWriter, w.m.sessionCookie(w.m.cookie+"."+strconv.Itoa(n), part))
		}
	}
	for i := n; i < present; i++ { // stale chunks of a larger or deleted session
		c := w.m.sessionCookie(w.m.cookie+"."+strconv.Itoa(i), "")
		c.MaxAge = -1
		http.SetCookie(w.ResponseWriter, c)
	}
}

func (w *cookieWriter) WriteHeader(code int) {
	w.flushCookies()
	w.ResponseWriter.WriteHeader(code)
}

func (w *cookieWriter) Write(b []byte) (int, error) {
	w.flushCookies()
	return w.ResponseWriter.Write(b)
}

func (w *cookieWriter) Flush() {
	w.flushCookies()
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *cookieWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *cookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
