package bff

import (
	"context"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
)

// Paths of the logout notifications.
const (
	BackchannelPath  = "/bff/backchannel"
	FrontchannelPath = "/bff/frontchannel"
)

// maxLogoutBody bounds a back-channel logout request.
const maxLogoutBody = 64 << 10

// backchannel implements OIDC Back-Channel Logout 1.0: a verified logout
// token ends every session it names (by IdP sid, or every session of the
// subject). Anything wrong gets 400 and ends nothing.
//
// With several frontends each has its own Handler, session manager and
// oidc client: the token's aud must name this frontend's client, and only
// this frontend's sessions are looked up (the manager's tags are scoped to
// its frontend), so a logout for one client never ends another frontend's
// session, even of the same subject with the same provider sid.
func (h *Handler) backchannel(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	bad := func(msg string, err error) error {
		return httpx.Error{Code: http.StatusBadRequest, Msg: msg, Err: err}
	}
	if h.sessions.Stateless() {
		return bad("back-channel logout is not available with the cookie session store", nil)
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return bad("content type must be application/x-www-form-urlencoded", err)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return bad("the request body is not a valid form", err)
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" || len(r.PostForm["logout_token"]) != 1 {
		return bad("logout_token is required", nil)
	}
	lt, err := h.oidc.VerifyLogoutToken(r.Context(), raw)
	if errors.Is(err, oidc.ErrNotReady) {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "the identity provider is not reachable yet", Err: err}
	}
	if err != nil {
		h.events.Logout("backchannel", "invalid_token")
		return bad("invalid logout token", err)
	}
	// A token is accepted until its Expiry plus the clock skew: its jti
	// is kept at least that long, per frontend (session.Manager.FirstUse
	// says why that suffices).
	ttl := time.Until(lt.Expiry) + h.oidc.ClockSkew()
	first, err := h.sessions.FirstUse(r.Context(), h.locker, h.replay, h.oidc.Issuer()+"\x00"+lt.JTI, max(ttl, oidc.LogoutMaxAge))
	if err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	if !first {
		return bad("this logout token was already used", nil)
	}
	n, err := h.endMatching(r.Context(), lt.Subject, lt.SID)
	if err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	h.log.InfoContext(r.Context(), "back-channel logout", "request_id", httpx.RequestID(r.Context()), "sessions_ended", n)
	h.events.Logout("backchannel", "ok")
	w.WriteHeader(http.StatusOK)
	return nil
}

// endMatching ends this frontend's sessions with IdP session id sid (of
// subject sub, when both are given), or every session of sub.
func (h *Handler) endMatching(ctx context.Context, sub, sid string) (int, error) {
	var list []*session.Session
	var err error
	if sid != "" {
		list, err = h.sessions.BySID(ctx, sid)
	} else {
		list, err = h.sessions.BySubject(ctx, sub)
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if sub != "" && s.Subject != sub {
			continue
		}
		if err := h.tokens.End(ctx, s); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// frontchannel implements OIDC Front-Channel Logout 1.0: the provider
// loads this page in a hidden iframe with iss and sid. The page may be
// framed only by the provider's origin.
func (h *Handler) frontchannel(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	iss, sid := q.Get("iss"), q.Get("sid")
	// Some providers (Entra ID) send sid without iss; when iss comes, it
	// must be ours.
	if (q.Has("iss") && subtle.ConstantTimeCompare([]byte(iss), []byte(h.oidc.Issuer())) != 1) || sid == "" {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "sid is required, and iss, when given, must name the configured issuer"}
	}
	n, err := h.endMatching(r.Context(), "", sid)
	if errors.Is(err, session.ErrStateless) {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "front-channel logout is not available with the cookie session store"}
	}
	if err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	h.log.InfoContext(r.Context(), "front-channel logout", "request_id", httpx.RequestID(r.Context()), "sessions_ended", n)
	h.events.Logout("frontchannel", "ok")
	hd := w.Header()
	hd.Del("X-Frame-Options")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors "+origin(h.oidc.Issuer()))
	hd.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte("<!doctype html><title>Signed out</title>"))
	return err
}

// origin is scheme://host of u.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "'none'"
	}
	return strings.ToLower(p.Scheme) + "://" + p.Host
}
