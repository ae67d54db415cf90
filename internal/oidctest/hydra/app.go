package hydra

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
)

// Paths of the login, consent and logout app.
const (
	loginPath     = "/login"
	consentPath   = "/consent"
	logoutPath    = "/logout"
	loggedOutPath = "/logged-out"
	errorPath     = "/error"
)

// ConsentRequest is what Hydra told the consent app.
type ConsentRequest struct {
	Subject        string
	ClientID       string
	RequestedScope []string
	// Skip is Hydra's "skip": the user granted these scopes to this client
	// before and the grant was remembered.
	Skip bool
	// ClientSkipConsent is the client's skip_consent as Hydra reported it
	// to the app: the app, not Hydra, decides what it means.
	ClientSkipConsent bool
	// LoginSessionID is the login session, the ID tokens' sid.
	LoginSessionID string
}

// app is the login, consent and logout app Hydra sends the browser to. It
// never shows a page: it accepts at the admin API and redirects to where
// Hydra says.
type app struct {
	p   *Provider
	srv *httptest.Server

	mu        sync.Mutex
	consented []ConsentRequest
	loggedOut int
}

func newApp(p *Provider) *app {
	a := &app{p: p}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, a.login)
	mux.HandleFunc("GET "+consentPath, a.consent)
	mux.HandleFunc("GET "+logoutPath, a.logout)
	mux.HandleFunc("GET "+loggedOutPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "signed out")
	})
	mux.HandleFunc("GET "+errorPath, func(w http.ResponseWriter, r *http.Request) {
		// Hydra's own error page: error and error_description only.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		q := r.URL.Query()
		fmt.Fprintf(w, "hydra error: %s: %s", q.Get("error"), q.Get("error_description"))
	})
	a.srv = httptest.NewServer(mux)
	return a
}

// redirect is Hydra's answer to an accept call.
type redirect struct {
	RedirectTo string `json:"redirect_to"`
}

// login accepts every login request as the fixed user and remembers the
// login session, so Hydra sets its session cookie.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if err := a.admin(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/login", "login_challenge", ch, nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if req.Skip && req.Subject != a.p.Subject {
		// Hydra remembers someone else: it would refuse another subject.
		http.Error(w, "hydra remembers another subject", http.StatusConflict)
		return
	}
	var to redirect
	accept := map[string]any{"subject": a.p.Subject, "remember": true, "remember_for": 0}
	if err := a.admin(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/login/accept", "login_challenge", ch, accept, &to); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// consent grants every requested scope and audience and puts the user's
// profile into the ID token. It never remembers the grant, so it is asked
// at every login.
func (a *app) consent(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("consent_challenge")
	var req struct {
		Skip              bool     `json:"skip"`
		Subject           string   `json:"subject"`
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
		LoginSessionID    string   `json:"login_session_id"`
		Client            struct {
			ID          string `json:"client_id"`
			SkipConsent bool   `json:"skip_consent"`
		} `json:"client"`
	}
	if err := a.admin(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", ch, nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	a.consented = append(a.consented, ConsentRequest{
		Subject: req.Subject, ClientID: req.Client.ID, RequestedScope: req.RequestedScope,
		Skip: req.Skip, ClientSkipConsent: req.Client.SkipConsent, LoginSessionID: req.LoginSessionID,
	})
	a.mu.Unlock()
	accept := map[string]any{
		"grant_scope":                 req.RequestedScope,
		"grant_access_token_audience": req.RequestedAudience,
		"remember":                    false,
		"session": map[string]any{
			"id_token": map[string]any{
				"email":          a.p.Email,
				"email_verified": a.p.EmailVerified,
				"name":           a.p.Name,
			},
		},
	}
	var to redirect
	if err := a.admin(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", "consent_challenge", ch, accept, &to); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// logout accepts every logout request.
func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("logout_challenge")
	var to redirect
	if err := a.admin(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/logout/accept", "logout_challenge", ch, nil, &to); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	a.loggedOut++
	a.mu.Unlock()
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

func (a *app) admin(ctx context.Context, method, path, param, challenge string, in, out any) error {
	if challenge == "" {
		return fmt.Errorf("no %s", param)
	}
	return call(ctx, method, a.p.AdminURL+path+"?"+url.Values{param: {challenge}}.Encode(), in, out)
}

func (a *app) consents() []ConsentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ConsentRequest(nil), a.consented...)
}

func (a *app) logouts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loggedOut
}
