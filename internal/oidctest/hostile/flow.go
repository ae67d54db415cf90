package hostile

import (
	"net/http"
	"net/url"
	"sync"
)

// flow is the provider's memory of login attempts (code → nonce) and of
// the revocation requests it received.
type flow struct {
	mu      sync.Mutex
	nonces  map[string]string
	revokes []url.Values
}

// maxCodes bounds the remembered login attempts.
const maxCodes = 1000

func (f *flow) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nonces, f.revokes = nil, nil
}

func (f *flow) remember(code, nonce string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nonces == nil || len(f.nonces) >= maxCodes {
		f.nonces = map[string]string{}
	}
	f.nonces[code] = nonce
}

func (f *flow) nonce(code string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nonces[code]
	return n, ok
}

func (f *flow) revoked(r *http.Request) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokes = append(f.revokes, r.PostForm)
}

// authorize signs the user in at once: it redirects to the request's
// redirect_uri with a fresh code, the state and the iss parameter, and
// remembers the nonce for the ID token of that code (see IDClaimsFor). It
// checks nothing else: the client under test is what is being tested.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	to, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || to.Scheme == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "x_canary": Canary})
		return
	}
	code := "code-" + randomHex(12)
	p.flow.remember(code, q.Get("nonce"))
	v := to.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	v.Set("iss", p.Issuer)
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// IDClaimsFor are IDClaims for the token request form: for a code that
// the authorization endpoint handed out, the nonce of its login attempt;
// for a refresh, no nonce.
func (p *Provider) IDClaimsFor(form url.Values) map[string]any {
	c := p.IDClaims()
	switch form.Get("grant_type") {
	case "authorization_code":
		if n, ok := p.flow.nonce(form.Get("code")); ok {
			c["nonce"] = n
		}
	case "refresh_token":
		delete(c, "nonce")
	}
	return c
}

// RevocationForms are the forms of all revocation requests so far.
func (p *Provider) RevocationForms() []url.Values {
	p.flow.mu.Lock()
	defer p.flow.mu.Unlock()
	return append([]url.Values(nil), p.flow.revokes...)
}

// Revoked reports whether token was sent to the revocation endpoint.
func (p *Provider) Revoked(token string) bool {
	for _, f := range p.RevocationForms() {
		if f.Get("token") == token {
			return true
		}
	}
	return false
}

// HydraLogoutClaims are logout token claims as Ory Hydra v2.3.0 sends
// them: aud, events, iat, iss, jti and sid, and no exp (Back-Channel
// Logout 1.0 §2.4 requires one) and no sub.
func (p *Provider) HydraLogoutClaims(sid string) map[string]any {
	c := p.LogoutClaims()
	delete(c, "exp")
	delete(c, "sub")
	c["sid"] = sid
	c["aud"] = []string{p.ClientID}
	return c
}
