// Package bff serves the browser-facing endpoints under /bff/: login, the
// OpenID callback, user, and logout. Their names, shapes and status codes
// follow Duende.BFF, so SPAs written for it work unchanged.
package bff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/csrf"
	"github.com/cloakroom/cloakroom/internal/httpx"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/tokens"
	"golang.org/x/oauth2"
)

// Paths of the endpoints; the callback's is configurable.
const (
	LoginPath  = "/bff/login"
	UserPath   = "/bff/user"
	LogoutPath = "/bff/logout"
)

// loginCookiePrefix names the login-attempt cookies. One per attempt, keyed
// by a prefix of its state, so logins in parallel tabs do not clobber each
// other.
const loginCookiePrefix = "__Host-cloakroom-login-"

// loginTTL bounds a login attempt: the cookie's Max-Age and the sealed
// expiry inside it.
const loginTTL = 10 * time.Minute

// Options configure a Handler.
type Options struct {
	Sessions     *session.Manager
	OIDC         *oidc.Client
	Tokens       *tokens.Source
	CSRF         *csrf.Checker
	CallbackPath string
	// PublicOrigin is the origin the browser sees (silent login's
	// postMessage target).
	PublicOrigin string
	// Locker and Replay remember logout-token ids across instances.
	Locker session.Locker
	Replay session.Store
	// Events, when set, is told of logins and logouts.
	Events Events
	// Mediation configures /bff/token (token.go).
	Mediation Mediation
	// DPoP makes each login a DPoP key for its session (dpop.go).
	DPoP bool
	// BasePath is the frontend's base path, "/" (the default) or e.g.
	// "/admin/": the endpoints are served under it ("/admin/bff/login"),
	// a returnUrl must lie under it, and it is where a login or logout
	// without one returns.
	BasePath string
	// ReturnAllowed, when set, also decides whether a returnUrl under
	// BasePath may be used: the server refuses one under a longer path of
	// another frontend on the same host.
	ReturnAllowed func(path string) bool
	Logger        *slog.Logger
}

// Handler serves /bff/*.
type Handler struct {
	sessions *session.Manager
	oidc     *oidc.Client
	tokens   *tokens.Source
	csrf     *csrf.Checker
	callback string
	origin   string
	locker   session.Locker
	replay   session.Store
	events   Events
	mediator mediation
	dpop     bool
	base     string // "/" or "/admin/"
	prefix   string // base without its final slash: "" or "/admin"
	allow    func(string) bool
	log      *slog.Logger
}

// New returns the handler.
func New(o Options) *Handler {
	if o.CallbackPath == "" {
		o.CallbackPath = "/bff/callback"
	}
	h := &Handler{
		sessions: o.Sessions, oidc: o.OIDC, tokens: o.Tokens, csrf: o.CSRF, callback: o.CallbackPath,
		origin: o.PublicOrigin, locker: o.Locker, replay: o.Replay, events: o.Events, log: o.Logger,
		dpop: o.DPoP, base: o.BasePath, allow: o.ReturnAllowed,
	}
	if h.base == "" {
		h.base = "/"
	}
	h.prefix = strings.TrimSuffix(h.base, "/")
	if h.events == nil {
		h.events = noEvents{}
	}
	h.mediator = newMediation(o.Mediation)
	return h
}

// Register adds the endpoints to mux; wrap, when not nil, wraps each handler with its route name (for
// metrics and access logs).
func (h *Handler) Register(mux *http.ServeMux, wrap func(name string, h http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(_ string, h http.Handler) http.Handler { return h }
	}
	for _, e := range []struct {
		pattern, name string
		fn            httpx.HandlerFunc
	}{
		{"GET " + LoginPath, "bff_login", h.login},
		{"GET " + SilentLoginPath, "bff_silent_login", h.silentLogin},
		{"GET " + h.callback, "bff_callback", h.callbackHandler},
		{"GET " + UserPath, "bff_user", h.user},
		{"GET " + LogoutPath, "bff_logout", h.logout},
		{"POST " + BackchannelPath, "bff_backchannel", h.backchannel},
		{"GET " + FrontchannelPath, "bff_frontchannel", h.frontchannel},
		{"GET " + SilentCallbackPath, "bff_silent_login_callback", h.silentCallback},
		{"GET " + TokenPath, "bff_token", h.tokenTarget},
		{"POST " + TokenPath, "bff_token", h.mediate},
	} {
		pattern := e.pattern
		if h.prefix != "" && pattern != "GET "+h.callback { // the callback path is absolute
			method, path, _ := strings.Cut(pattern, " ")
			pattern = method + " " + h.prefix + path
		}
		mux.Handle(pattern, wrap(e.name, httpx.Handle(h.log, e.fn)))
	}
}

// Events receives what metrics count; every method must be cheap.
type Events interface {
	Login(stage, reason string)
	Logout(kind, result string)
}

type noEvents struct{}

func (noEvents) Login(string, string)  {}
func (noEvents) Logout(string, string) {}

// attempt is what the login-attempt cookie carries, sealed.
type attempt struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Return   string    `json:"r"`
	Prompt   string    `json:"p,omitempty"`
	Expires  time.Time `json:"e"`
	// DPoPKey is the session-to-be's DPoP key (dpop.go).
	DPoPKey []byte `json:"k,omitempty"`
}

var prompts = []string{"none", "login", "consent", "select_account", "create"}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ret, ok := h.returnPath(q.Get("returnUrl"))
	if !ok {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "returnUrl must be a local path"}
	}
	prompt := q.Get("prompt")
	if prompt != "" && !slices.Contains(prompts, prompt) {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "prompt must be one of none, login, consent, select_account, create"}
	}
	a := attempt{
		State:    random(32),
		Nonce:    random(32),
		Verifier: oauth2.GenerateVerifier(),
		Return:   ret,
		Prompt:   prompt,
		Expires:  h.sessions.Now().Add(loginTTL),
	}
	// With PAR this is a call to the provider; no attempt cookie is set
	// unless it succeeds.
	key, err := h.newLoginKey(&a)
	if err != nil {
		return err
	}
	to, err := h.oidc.AuthCodeURL(oidc.WithDPoPKey(r.Context(), key), oidc.AuthRequest{State: a.State, Nonce: a.Nonce, Verifier: a.Verifier, Prompt: prompt, DPoPJKT: jktOf(key)})
	if err != nil {
		return h.authRequestFailed(r, err)
	}
	plain, err := json.Marshal(a)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     loginCookieName(a.State),
		Value:    base64.RawURLEncoding.EncodeToString(h.sessions.Seal(loginPurpose(a.State), plain)),
		Path:     "/",
		MaxAge:   int(loginTTL / time.Second),
		Secure:   true,
		HttpOnly: true,
		// Lax: the cookie must come back on the provider's top-level
		// cross-site redirect to the callback. A silent login runs in an
		// iframe, where only SameSite=None cookies come back from a
		// cross-site redirect; the cookie is sealed and bound to its state,
		// so sending it cross-site discloses nothing.
		SameSite: loginSameSite(prompt),
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
	h.events.Login("started", "")
	return nil
}

// authRequestFailed answers a login whose authorization request could not
// be made: 503 before discovery, else (a pushed authorization request, RFC
// 9126, that failed) 504 when the provider did not answer in time and 502
// when it refused or failed. The provider's answer is logged, never shown.
func (h *Handler) authRequestFailed(r *http.Request, err error) error {
	if errors.Is(err, oidc.ErrNotReady) {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "the identity provider is not reachable yet; try again shortly", Err: err}
	}
	h.events.Login("failed", "par")
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return httpx.Error{Code: http.StatusGatewayTimeout, Msg: "the identity provider did not answer the sign-in request in time; try again shortly", Err: err}
	}
	return httpx.Error{Code: http.StatusBadGateway, Msg: "the identity provider did not accept the sign-in request; try again shortly", Err: err}
}

func loginSameSite(prompt string) http.SameSite {
	if prompt == "none" {
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

func loginCookieName(state string) string {
	return loginCookiePrefix + state[:16]
}

func loginPurpose(state string) string { return "login:" + state }

// callbackHandler finishes a login. Every failure renders a plain 400 page
// and creates no session; the attempt's cookie is spent either way.
func (h *Handler) callbackHandler(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	if len(state) < 16 || len(state) > 128 {
		return h.failPage(w, r, "state", "the sign-in response has no valid state", nil)
	}
	c, err := r.Cookie(loginCookieName(state))
	if err != nil {
		return h.failPage(w, r, "unknown_attempt", "this sign-in attempt is unknown or has expired; start again", nil)
	}
	clearCookie(w, c.Name, http.SameSiteLaxMode) // attributes need not match to expire it
	var a attempt
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err == nil {
		var plain []byte
		if plain, err = h.sessions.Open(loginPurpose(state), sealed); err == nil {
			err = json.Unmarshal(plain, &a)
		}
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) != 1 {
		return h.failPage(w, r, "unknown_attempt", "this sign-in attempt is unknown or has expired; start again", err)
	}
	if !h.sessions.Now().Before(a.Expires) {
		return h.failPage(w, r, "expired_attempt", "this sign-in attempt has expired; start again", nil)
	}
	if err := h.oidc.CheckIss(q.Get("iss")); err != nil {
		return h.failPage(w, r, "iss", "the sign-in response did not come from the configured identity provider", err)
	}
	if e := q.Get("error"); e != "" {
		if a.Prompt == "none" && silentErrors[e] {
			return h.silentResult(w, false)
		}
		return h.failPage(w, r, "idp_error", "the identity provider refused the sign-in ("+safeCode(e)+")", nil)
	}
	code := q.Get("code")
	if code == "" {
		return h.failPage(w, r, "no_code", "the sign-in response has no authorization code", nil)
	}
	key, err := loginKey(&a)
	if err != nil {
		return h.failPage(w, r, "unknown_attempt", "this sign-in attempt is unknown or has expired; start again", err)
	}
	t, err := h.oidc.Exchange(oidc.WithDPoPKey(r.Context(), key), code, a.Verifier, a.Nonce)
	if err != nil {
		return h.failPage(w, r, "exchange", "the sign-in could not be completed", err)
	}
	if old, err := h.sessions.Load(r); err == nil {
		// A new login always gets a new ticket; the old session ends.
		_ = h.sessions.Delete(r.Context(), old)
	}
	s := &session.Session{
		Subject:      t.Subject,
		Issuer:       h.oidc.Issuer(),
		IdPSessionID: t.SID,
		SessionState: q.Get("session_state"),
		LogoutID:     random(16),
		ClientIP:     clientIP(r),
		UserAgent:    shorten(r.UserAgent(), 120),
		DPoPKey:      a.DPoPKey,
	}
	tokens.Apply(s, t, h.sessions.Now())
	if err := h.sessions.Create(r.Context(), w, s); err != nil {
		h.oidc.Discard(r.Context(), t) // no session holds them
		if errors.Is(err, session.ErrTooLarge) {
			return httpx.Error{Code: http.StatusInternalServerError, Msg: "the session is too large to keep in cookies; the operator should use a server-side session store", Err: err}
		}
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	h.log.InfoContext(r.Context(), "login completed", "request_id", httpx.RequestID(r.Context()))
	h.events.Login("completed", "")
	if a.Prompt == "none" {
		return h.silentResult(w, true)
	}
	return landingPage(w, a.Return)
}

func (h *Handler) failPage(w http.ResponseWriter, r *http.Request, reason, msg string, err error) error {
	h.events.Login("failed", reason)
	h.log.InfoContext(r.Context(), "login failed", "request_id", httpx.RequestID(r.Context()), "reason", msg, "error", errString(err))
	return errorPage(w, http.StatusBadRequest, msg)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// safeCode keeps an OAuth error code printable: letters, digits and _ only.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// user answers Duende.BFF's /bff/user: 401 with an empty body unless the
// request carries the CSRF header and a live session.
func (h *Handler) user(w http.ResponseWriter, r *http.Request) error {
	unauth := httpx.Error{Code: http.StatusUnauthorized, Empty: true, Msg: "not signed in"}
	if !h.csrf.OK(r) {
		return unauth
	}
	s, err := h.sessions.Load(r)
	if errors.Is(err, session.ErrNotFound) {
		return unauth
	}
	if err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	if r.URL.Query().Get("slide") != "false" {
		if err := h.sessions.Touch(r.Context(), s); err != nil {
			return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
		}
	}
	claims := UserClaims(s, h.sessions.ExpiresAt(s).Sub(h.sessions.Now()))
	if h.prefix != "" {
		for i, c := range claims {
			if c.Type == "bff:logout_url" {
				claims[i].Value = h.prefix + c.Value.(string)
			}
		}
	}
	return httpx.JSON(w, http.StatusOK, claims)
}

// Claim is one entry of /bff/user.
type Claim struct {
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// protocolClaims are ID token claims that describe the token, not the user;
// /bff/user leaves them out as ASP.NET's OpenID handler does.
var protocolClaims = map[string]bool{
	"iss": true, "aud": true, "exp": true, "iat": true, "nbf": true, "nonce": true,
	"at_hash": true, "c_hash": true, "s_hash": true, "azp": true, "jti": true,
}

// UserClaims is /bff/user's body: the user's claims sorted by type (array
// claims become one entry per value), then bff:logout_url,
// bff:session_expires_in and bff:session_state.
func UserClaims(s *session.Session, expiresIn time.Duration) []Claim {
	keys := make([]string, 0, len(s.Claims))
	for k := range s.Claims {
		if !protocolClaims[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]Claim, 0, len(keys)+3)
	for _, k := range keys {
		if arr, ok := s.Claims[k].([]any); ok {
			for _, v := range arr {
				out = append(out, Claim{k, claimString(v)})
			}
			continue
		}
		out = append(out, Claim{k, claimString(s.Claims[k])})
	}
	out = append(out,
		Claim{"bff:logout_url", LogoutPath + "?sid=" + s.LogoutID},
		Claim{"bff:session_expires_in", int64(max(expiresIn, 0) / time.Second)})
	if s.SessionState != "" {
		out = append(out, Claim{"bff:session_state", s.SessionState})
	}
	return out
}

// claimString renders a claim value as Duende.BFF does (ASP.NET claims are
// strings): text as is, booleans and numbers in their JSON spelling,
// objects as JSON text.
func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return ""
		}
		return string(b)
	}
}

// logout ends the session, revokes its refresh token and sends the browser
// to the provider's end-session endpoint. The sid parameter must match the
// session's logout id, so a cross-site link cannot sign anyone out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ret, ok := h.returnPath(q.Get("returnUrl"))
	if !ok {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "returnUrl must be a local path"}
	}
	s, err := h.sessions.Load(r)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	w.Header().Set("Cache-Control", "no-store")
	if s == nil {
		h.sessions.ClearCookie(w)
		http.Redirect(w, r, ret, http.StatusFound)
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("sid")), []byte(s.LogoutID)) != 1 {
		return httpx.Error{Code: http.StatusBadRequest, Msg: "sid is missing or does not match the session"}
	}
	if err := h.sessions.Delete(r.Context(), s); err != nil {
		return httpx.Error{Code: http.StatusServiceUnavailable, Msg: "session store unavailable", Err: err}
	}
	h.sessions.ClearCookie(w)
	h.revoke(r.Context(), s)
	h.events.Logout("user", "ok")
	to := h.oidc.EndSessionURL(s.IDToken)
	if to == "" {
		to = ret
	}
	http.Redirect(w, r, to, http.StatusFound)
	return nil
}

// revoke revokes s's refresh token, bounded in time; a failure is logged
// and never keeps the user signed in.
func (h *Handler) revoke(ctx context.Context, s *session.Session) {
	if s.RefreshToken == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.oidc.Revoke(ctx, s.RefreshToken, "refresh_token"); err != nil {
		h.log.WarnContext(ctx, "refresh token revocation failed", "request_id", httpx.RequestID(ctx), "error", err)
	}
}

func clearCookie(w http.ResponseWriter, name string, ss http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: ss})
}

// returnPath is v as a place to return to after login or logout: a local
// path (LocalPath) under the base path; "" is the base path.
func (h *Handler) returnPath(v string) (string, bool) {
	if v == "" {
		return h.base, true
	}
	p, ok := LocalPath(v)
	if !ok || h.base != "/" && !strings.HasPrefix(p, h.base) && p != h.prefix {
		return "", false
	}
	if h.allow != nil && !h.allow(p) {
		return "", false
	}
	return p, true
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
