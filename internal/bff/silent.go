package bff

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"

	"github.com/cloakroom/cloakroom/internal/session"
)

// SilentCallbackPath is the page that reports a silent login's outcome;
// SilentLoginPath starts one (Duende.BFF's name for /bff/login?prompt=none).
const (
	SilentCallbackPath = "/bff/silent-login-callback"
	SilentLoginPath    = "/bff/silent-login"
)

// silentLogin is /bff/login?prompt=none under Duende.BFF's older name.
func (h *Handler) silentLogin(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	q.Set("prompt", "none")
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	return h.login(w, r2)
}

// silentErrors are the provider answers to prompt=none that mean "not
// signed in there", not a failure.
var silentErrors = map[string]bool{
	"login_required": true, "interaction_required": true,
	"consent_required": true, "account_selection_required": true,
}

var silentPage = template.Must(template.New("silent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Silent login</title></head><body>
<script nonce="{{.Nonce}}">window.parent.postMessage({source: "bff-silent-login", isLoggedIn: {{.LoggedIn}}}, {{.Origin}});</script>
</body></html>
`))

// silentCallback answers a direct request for the page with whether this
// browser has a session.
func (h *Handler) silentCallback(w http.ResponseWriter, r *http.Request) error {
	_, err := h.sessions.Load(r)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return err
	}
	return h.silentResult(w, err == nil)
}

// silentResult renders the page that tells the parent window (our own SPA,
// by its exact origin) the outcome of a prompt=none login, Duende.BFF's
// {source: "bff-silent-login", isLoggedIn} message. It may be framed only
// by our own origin.
func (h *Handler) silentResult(w http.ResponseWriter, loggedIn bool) error {
	nb := make([]byte, 18)
	rand.Read(nb)
	nonce := base64.RawStdEncoding.EncodeToString(nb)
	var b bytes.Buffer
	if err := silentPage.Execute(&b, struct {
		Nonce    string
		LoggedIn bool
		Origin   string
	}{nonce, loggedIn, h.origin}); err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; base-uri 'none'; frame-ancestors 'self'")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.Bytes())
	return err
}
