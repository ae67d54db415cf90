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
// ticket; tokens never appear in any answer.
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
	Sessions *session.Manager
	Tokens   *tokens.Source
	// Token is the bearer token of the session API; empty turns it off.
	Token  string
	Checks map[string]Check
	Logger *slog.Logger
	// Extra handlers (e.g. /metrics) mounted as they are.
	Extra map[string]http.Handler
}

type handler struct {
	o   Options
	log *slog.Logger
}

// New returns the admin handler.
func New(o Options) http.Handler {
	h := &handler{o: o, log: o.Logger}
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
	return httpx.JSON(w, code, map[string]any{"ready": ok, "checks": status})
}

// Info is what operators see of a session.
type Info struct {
	Handle    string    `json:"handle"`
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

func storeErr(err error) error {
	if errors.Is(err, session.ErrStateless) {
		return httpx.Error{Code: http.StatusNotImplemented, Msg: err.Error()}
	}
	return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	sub, err := h.subject(r)
	if err != nil {
		return err
	}
	list, err := h.o.Sessions.BySubject(r.Context(), sub)
	if err != nil {
		return storeErr(err)
	}
	out := make([]Info, 0, len(list))
	for _, s := range list {
		out = append(out, Info{
			Handle: s.Handle, Subject: s.Subject, IdPSID: s.IdPSessionID,
			Created: s.Created, LastSeen: s.LastSeen, Expires: h.o.Sessions.ExpiresAt(s),
			ClientIP: s.ClientIP, UserAgent: s.UserAgent,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return httpx.JSON(w, http.StatusOK, out)
}

func (h *handler) revokeSubject(w http.ResponseWriter, r *http.Request) error {
	sub, err := h.subject(r)
	if err != nil {
		return err
	}
	list, err := h.o.Sessions.BySubject(r.Context(), sub)
	if err != nil {
		return storeErr(err)
	}
	for _, s := range list {
		if err := h.o.Tokens.End(r.Context(), s); err != nil {
			return storeErr(err)
		}
	}
	h.log.InfoContext(r.Context(), "sessions revoked by an operator", "count", len(list))
	return httpx.JSON(w, http.StatusOK, map[string]int{"revoked": len(list)})
}

func (h *handler) revokeOne(w http.ResponseWriter, r *http.Request) error {
	handle := r.PathValue("handle")
	if !strings.HasPrefix(handle, "s:") {
		return httpx.Error{Code: http.StatusNotFound, Msg: "no such session"}
	}
	s, err := h.o.Sessions.ByHandle(r.Context(), handle)
	if errors.Is(err, session.ErrNotFound) {
		return httpx.Error{Code: http.StatusNotFound, Msg: "no such session"}
	}
	if err != nil {
		return storeErr(err)
	}
	if err := h.o.Tokens.End(r.Context(), s); err != nil {
		return storeErr(err)
	}
	h.log.InfoContext(r.Context(), "session revoked by an operator")
	return httpx.JSON(w, http.StatusOK, map[string]int{"revoked": 1})
}
