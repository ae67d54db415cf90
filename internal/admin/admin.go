// Package admin serves the operator endpoints on admin_listen, never on
// the public listener: /healthz (the process is alive), /readyz (every
// dependency is usable, with a JSON body naming what is not) and, when an
// admin token is configured, the session API:
//
//	GET    /admin/sessions?sub=SUBJECT    the subject's live sessions
//	DELETE /admin/sessions?sub=SUBJECT    end all of them (refresh tokens revoked)
//	DELETE /admin/sessions/{handle}       end one session
//
// Sessions are named by their handle, a keyed hash of the browser's
// ticket; tokens never appear in any answer. With several frontends each
// answer covers every frontend, and each listed session names its
// frontend; &frontend=NAME (?frontend=NAME for one handle) narrows any
// request to one frontend, and an unknown name gets 404. A subject's
// sessions are found through each frontend's own tags, and a handle opens
// only for the frontend it belongs to (see package session).
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// Check is one readiness check; a nil error means ready.
type Check func(ctx context.Context) error

// Options configure the handler.
type Options struct {
	// Sessions and Tokens are the sessions of a gateway with one frontend.
	Sessions *session.Manager
	Tokens   *tokens.Source
	// Frontends, when set, are the sessions of every frontend of a
	// gateway serving several; Sessions and Tokens are then unused.
	Frontends []Frontend
	// Token is the bearer token of the session API; empty turns it off.
	Token  string
	Checks map[string]Check
	// Warnings, when set, are shown by /readyz under "warnings" (omitted
	// when empty) without making it fail: what an operator should fix.
	Warnings func() map[string]string
	Logger   *slog.Logger
	// Extra handlers (e.g. /metrics) mounted as they are.
	Extra map[string]http.Handler
}

// Frontend is one frontend's sessions; its name is Sessions.Frontend().
type Frontend struct {
	Sessions *session.Manager
	// Tokens ends the frontend's sessions (revoking refresh tokens with
	// the frontend's client).
	Tokens *tokens.Source
}

type handler struct {
	o         Options
	frontends []Frontend
	log       *slog.Logger
}

// New returns the admin handler.
func New(o Options) http.Handler {
	h := &handler{o: o, log: o.Logger, frontends: o.Frontends}
	if len(h.frontends) == 0 && o.Sessions != nil {
		h.frontends = []Frontend{{Sessions: o.Sessions, Tokens: o.Tokens}}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", httpx.Handle(h.log, h.ready))
	mux.Handle("GET /admin/sessions", h.auth(httpx.Handle(h.log, h.list)))
	mux.Handle("DELETE /admin/sessions", h.auth(httpx.Handle(h.log, h.revokeSubject)))
	mux.Handle("DELETE /admin/sessions/{handle}", h.auth(httpx.Handle(h.log, h.revokeOne)))
	for p, x := range o.Extra {
		mux.Handle(p, x)
	}
	return mux
}

// auth requires the admin bearer token, compared in constant time.
func (h *handler) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + h.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.o.Token == "" {
			httpx.Problem(w, http.StatusNotFound, "the session admin API is off: configure admin_token")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cloakroom-admin"`)
			httpx.Problem(w, http.StatusUnauthorized, "admin token required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	ok := true
	for name, c := range h.o.Checks {
		if err := c(ctx); err != nil {
			status[name] = err.Error()
			ok = false
		} else {
			status[name] = "ok"
		}
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	body := map[string]any{"ready": ok, "checks": status}
	if h.o.Warnings != nil {
		if ws := h.o.Warnings(); len(ws) > 0 {
			body["warnings"] = ws
		}
	}
	return httpx.JSON(w, code, body)
}

// Info is what operators see of a session.
type Info struct {
	Handle string `json:"handle"`
	// Frontend is the name of the session's frontend; absent for the
	// implicit frontend of a configuration without frontends.
	Frontend  string    `json:"frontend,omitempty"`
	Subject   string    `json:"sub"`
	IdPSID    string    `json:"idp_sid,omitempty"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Expires   time.Time `json:"expires"`
	ClientIP  string    `json:"client_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

func (h *handler) subject(r *http.Request) (string, error) {
	sub := r.URL.Query().Get("sub")
	if sub == "" {
		return "", httpx.Error{Code: http.StatusBadRequest, Msg: "sub is required"}
	}
	return sub, nil
}

// selected is the frontends a request names: all of them without a
// frontend parameter, else the one of that name.
func (h *handler) selected(r *http.Request) ([]Frontend, error) {
	q := r.URL.Query()
	if !q.Has("frontend") {
		return h.frontends, nil
	}
	name := q.Get("frontend")
	for _, f := range h.frontends {
		if f.Sessions.Frontend() == name {
			return []Frontend{f}, nil
		}
	}
	return nil, httpx.Error{Code: http.StatusNotFound, Msg: "no such frontend"}
}

func storeErr(err error) error {
	if errors.Is(err, session.ErrStateless) {
		return httpx.Error{Code: http.StatusNotImplemented, Msg: err.Error()}
	}
	return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
}

// subjectSessions is the live sessions of the request's subject in the
// frontends it selects, with the frontend of each.
func (h *handler) subjectSessions(r *http.Request) ([]Frontend, [][]*session.Session, error) {
	sub, err := h.subject(r)
	if err != nil {
		return nil, nil, err
	}
	fs, err := h.selected(r)
	if err != nil {
		return nil, nil, err
	}
	lists := make([][]*session.Session, len(fs))
	for i, f := range fs {
		if lists[i], err = f.Sessions.BySubject(r.Context(), sub); err != nil {
			return nil, nil, storeErr(err)
		}
	}
	return fs, lists, nil
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	fs, lists, err := h.subjectSessions(r)
	if err != nil {
		return err
	}
	out := []Info{}
	for i, f := range fs {
		for _, s := range lists[i] {
			out = append(out, Info{
				Handle: s.Handle, Frontend: f.Sessions.Frontend(), Subject: s.Subject, IdPSID: s.IdPSessionID,
				Created: s.Created, LastSeen: s.LastSeen, Expires: f.Sessions.ExpiresAt(s),
				ClientIP: s.ClientIP, UserAgent: s.UserAgent,
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return httpx.JSON(w, http.StatusOK, out)
}

func (h *handler) revokeSubject(w http.ResponseWriter, r *http.Request) error {
	fs, lists, err := h.subjectSessions(r)
	if err != nil {
		return err
	}
	n := 0
	for i, f := range fs {
		for _, s := range lists[i] {
			if err := f.Tokens.End(r.Context(), s); err != nil {
				return storeErr(err)
			}
			n++
		}
	}
	h.log.InfoContext(r.Context(), "sessions revoked by an operator", "count", n)
	return httpx.JSON(w, http.StatusOK, map[string]int{"revoked": n})
}

func (h *handler) revokeOne(w http.ResponseWriter, r *http.Request) error {
	handle := r.PathValue("handle")
	if !strings.HasPrefix(handle, "s:") {
		return httpx.Error{Code: http.StatusNotFound, Msg: "no such session"}
	}
	fs, err := h.selected(r)
	if err != nil {
		return err
	}
	// A handle opens only for its own frontend.
	for _, f := range fs {
		s, err := f.Sessions.ByHandle(r.Context(), handle)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeErr(err)
		}
		if err := f.Tokens.End(r.Context(), s); err != nil {
			return storeErr(err)
		}
		h.log.InfoContext(r.Context(), "session revoked by an operator", "frontend", f.Sessions.Frontend())
		return httpx.JSON(w, http.StatusOK, map[string]int{"revoked": 1})
	}
	return httpx.Error{Code: http.StatusNotFound, Msg: "no such session"}
}
