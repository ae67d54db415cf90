package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/dex"
)

// The tests in this file run the gateway against an unmodified Dex v2.45.1
// (internal/oidctest/dex): a real process with its own clock, so lifetimes
// are a few real seconds and the tests poll until Dex's state has moved on.
// Dex offers no client_credentials grant in any release, so token: client
// routes are not tested here (docs/providers/dex.md).

// dexWait bounds every poll for Dex's real clock.
const dexWait = 30 * time.Second

// dexEnv is a gateway in front of Dex with an upstream at /api/me/ that
// checks the token it receives at Dex's userinfo endpoint and answers with
// Dex's userinfo.
type dexEnv struct {
	p  *dex.Provider
	g  *gateway
	up *upstream
}

func newDexEnv(t *testing.T, opts dex.Options, mod func(*config.Config)) *dexEnv {
	t.Helper()
	ln, public := listenLocal(t)
	p := dex.Start(t, public+"/bff/callback", opts)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		status, claims, err := p.Userinfo(r.Context(), bearerOf(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if status != http.StatusOK {
			http.Error(w, "dex's userinfo refused the token", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(claims)
	})
	cfg := baseConfig(public, p.Issuer, p.ClientID, p.ClientSecret)
	cfg.APIs = []config.API{{Path: "/api/me/", Upstream: up.URL, Token: "user", Timeout: 30 * time.Second}}
	if mod != nil {
		mod(cfg)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dex's log:\n%s", p.Logs())
		}
	})
	return &dexEnv{p: p, g: startGateway(t, ln, cfg, serverOptions()), up: up}
}

// login signs b in through Dex's password form.
func (e *dexEnv) login(t *testing.T, b *browser) response {
	t.Helper()
	return signIn(t, e.g, b, func(auth *url.URL) *url.URL {
		cb, err := e.p.Login(t.Context(), b.c, auth.String())
		if err != nil {
			t.Fatalf("login at dex: %v", err)
		}
		return cb
	})
}

// api calls /api/me/ and returns the response and the userinfo claims the
// upstream got from Dex for the token it received.
func (e *dexEnv) api(t *testing.T, b *browser) (response, map[string]any) {
	t.Helper()
	r := b.get(e.g.URL+"/api/me/x", "X-CSRF", "1")
	var claims map[string]any
	if r.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(r.Body), &claims); err != nil {
			t.Fatalf("upstream answer %q: %v", r.Body, err)
		}
	}
	return r, claims
}

// lastBearer is the token the upstream received last.
func (e *dexEnv) lastBearer(t *testing.T) string {
	t.Helper()
	reqs := e.up.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream was never called")
	}
	return bearerOf(reqs[len(reqs)-1])
}

// alive reports whether Dex's userinfo endpoint still takes tok.
func (e *dexEnv) alive(t *testing.T, tok string) bool {
	t.Helper()
	status, _, err := e.p.Userinfo(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return status == http.StatusOK
}

// refreshSince returns the refresh grants Dex answered after the first n.
func (e *dexEnv) refreshSince(n int) []dex.Request {
	return e.p.TokenRequests("refresh_token")[n:]
}

// dexPoll polls cond every 100 ms until it holds, failing the test after
// dexWait.
func dexPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(dexWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dexJWTClaims decodes a JWT's payload without verifying it (Dex's
// userinfo endpoint has done that).
func dexJWTClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("a token of %d parts, want a JWT", len(parts))
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(mustB64Decode(parts[1])), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func dexClaims(t *testing.T, b *browser, base string) map[string]any {
	t.Helper()
	r := b.get(base+"/bff/user", "X-CSRF", "1")
	var claims []struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.Body), &claims) != nil {
		t.Fatalf("/bff/user: %d %s", r.StatusCode, r.Body)
	}
	got := map[string]any{}
	for _, c := range claims {
		got[c.Type] = c.Value
	}
	return got
}

func dexUserStatus(b *browser, base string) int {
	return b.get(base+"/bff/user", "X-CSRF", "1").StatusCode
}

// TestDexFlow: login, /bff/user, an API call with Dex's access token, a
// refresh after half the token's lifetime with rotation, ten concurrent
// calls at expiry sharing one refresh, and logout, which with Dex ends the
// local session only.
func TestDexFlow(t *testing.T) {
	const ttl = 6 * time.Second
	e := newDexEnv(t, dex.Options{IDTokenTTL: ttl, ReuseInterval: time.Second}, nil)
	b := newBrowser(t)

	landing := e.login(t, b)
	if landing.StatusCode != http.StatusOK {
		t.Fatalf("callback: %d %s", landing.StatusCode, landing.Body)
	}
	sessionCookie(t, landing)
	if e.p.RevocationEndpoint != "" || e.p.EndSessionEndpoint != "" {
		t.Errorf("dex advertises revocation %q and end session %q, want neither (docs/providers/dex.md)",
			e.p.RevocationEndpoint, e.p.EndSessionEndpoint)
	}

	// /bff/user shows the ID token's user claims (as strings, the way
	// Duende.BFF does), not iss, aud and the other protocol claims.
	claims := dexClaims(t, b, e.g.URL)
	for k, want := range map[string]any{
		"sub": e.p.Subject, "email": e.p.Email, "email_verified": "true",
		"name": e.p.Name, "preferred_username": e.p.Username,
	} {
		if claims[k] != want {
			t.Errorf("claim %s: got %v, want %v", k, claims[k], want)
		}
	}

	// The API gets Dex's access token: a JWT for this client that Dex's
	// userinfo endpoint accepts.
	r, info := e.api(t, b)
	if r.StatusCode != http.StatusOK || info["sub"] != e.p.Subject || info["email"] != e.p.Email {
		t.Fatalf("API: %d %s", r.StatusCode, r.Body)
	}
	tok0 := e.lastBearer(t)
	if at := dexJWTClaims(t, tok0); at["iss"] != e.p.Issuer || at["aud"] != e.p.ClientID || at["sub"] != e.p.Subject {
		t.Errorf("access token iss %v aud %v sub %v", at["iss"], at["aud"], at["sub"])
	}
	codes := e.p.TokenRequests("authorization_code")
	if len(codes) != 1 || codes[0].Status != http.StatusOK || codes[0].RefreshToken == "" {
		t.Fatalf("code exchanges %d, want 1 answered 200 with a refresh token", len(codes))
	}
	rt0 := codes[0].RefreshToken

	// Refresh after half the lifetime: call until the upstream sees a new
	// token. The refresh came before the old token's exp, and (a second
	// of reuse interval long past) Dex rotated the refresh token.
	dexPoll(t, "a refreshed access token", func() bool {
		if r, _ := e.api(t, b); r.StatusCode != http.StatusOK {
			t.Fatalf("API while waiting for the refresh: %d %s", r.StatusCode, r.Body)
		}
		return e.lastBearer(t) != tok0
	})
	tok1 := e.lastBearer(t)
	grants := e.refreshSince(0)
	if len(grants) != 1 || grants[0].Status != http.StatusOK || grants[0].Form.Get("refresh_token") != rt0 {
		t.Fatalf("refresh grants %d, want 1 with the issued refresh token, answered 200", len(grants))
	}
	if exp, _ := dexJWTClaims(t, tok0)["exp"].(float64); !grants[0].Time.Before(time.Unix(int64(exp), 0)) {
		t.Errorf("refreshed at %v, after the old token's exp %v: want a refresh at half its %v lifetime",
			grants[0].Time, time.Unix(int64(exp), 0), ttl)
	}
	rt1 := grants[0].RefreshToken
	if rt1 == "" || rt1 == rt0 {
		t.Fatal("dex did not rotate the refresh token")
	}

	// Ten concurrent calls once Dex no longer takes the access token: one
	// refresh, with the rotated refresh token, and one new token for all.
	dexPoll(t, "the access token to expire at dex", func() bool { return !e.alive(t, tok1) })
	before, calls := e.p.RefreshGrants(), len(e.up.Requests())
	if codes := burst(t, b, 10, e.g.URL+"/api/me/burst"); codes[http.StatusOK] != 10 {
		t.Fatalf("burst at expiry: %v; logs:\n%s", codes, e.g.Logs)
	}
	grants = e.refreshSince(before)
	if len(grants) != 1 {
		t.Fatalf("dex saw %d refresh grants for the burst, want 1", len(grants))
	}
	if grants[0].Form.Get("refresh_token") != rt1 || grants[0].Status != http.StatusOK {
		t.Errorf("the burst's refresh: status %d, with the rotated refresh token %v", grants[0].Status, grants[0].Form.Get("refresh_token") == rt1)
	}
	rt2 := grants[0].RefreshToken
	reqs := e.up.Requests()[calls:]
	for _, r := range reqs {
		if bearerOf(r) != bearerOf(reqs[0]) || bearerOf(r) == tok1 {
			t.Fatal("the burst did not share one new token")
		}
	}
	tok2 := bearerOf(reqs[0])

	// Logout: Dex has neither an end-session nor a revocation endpoint,
	// so the gateway ends its own session, calls nothing at Dex and sends
	// the browser to returnUrl on the gateway: "/" when the SPA passes
	// none, as with bff:logout_url as it is.
	logoutURL, _ := dexClaims(t, b, e.g.URL)["bff:logout_url"].(string)
	if logoutURL == "" {
		t.Fatal("no bff:logout_url")
	}
	atDex := len(e.p.Requests())
	out := b.get(e.g.URL + logoutURL)
	if to := location(t, out); to.String() != e.g.URL+"/" {
		t.Errorf("logout redirect %s, want %s/", to.Redacted(), e.g.URL)
	}
	cleared := false
	for _, c := range out.Cookies() {
		if c.Name == "__Host-Http-cloakroom" && c.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Error("logout did not clear the session cookie")
	}
	if n := len(e.p.Requests()) - atDex; n != 0 {
		t.Errorf("logout made %d requests to dex, want none", n)
	}
	if s := dexUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
		t.Errorf("/bff/user after logout: %d", s)
	}
	if r := b.get(e.g.URL+"/api/me/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after logout: %d", r.StatusCode)
	}
	// Without revocation the refresh token outlives the session at Dex:
	// the provider page says so.
	if tr, err := e.p.Refresh(t.Context(), rt2); err != nil || tr.Status != http.StatusOK {
		t.Errorf("the last refresh token at dex after logout: %d %v, want still valid", tr.Status, err)
	}
	// Dex keeps no sign-in session of its own: signing in again after the
	// logout shows the password form, not a redirect straight back.
	next := location(t, b.get(e.g.URL+"/bff/login"))
	page := b.get(next.String())
	for i := 0; i < 5 && page.StatusCode/100 == 3; i++ {
		if next = location(t, page); !strings.HasPrefix(next.String(), e.p.Issuer+"/") {
			t.Fatalf("signing in again: dex sent the browser to %s, want its password form", next.Redacted())
		}
		page = b.get(next.String())
	}
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, `name="password"`) {
		t.Errorf("signing in again: %d, want dex's password form", page.StatusCode)
	}
	assertNoSecrets(t, e.g.Logs.String(), e.p.ClientSecret, tok0, tok1, tok2, rt0, rt1, rt2)
}

// TestDexRefreshReuseInterval: a refresh within reuseInterval of the
// refresh token's issue hands back the same refresh token. The gateway
// keeps it, and the session goes on.
func TestDexRefreshReuseInterval(t *testing.T) {
	// Dex's expires_in is the lifetime less a moment, in whole seconds:
	// 3 here, so refreshes are 1.5 s apart and each access token differs
	// from the last (Dex's tokens have a one-second iat and no jti).
	e := newDexEnv(t, dex.Options{IDTokenTTL: 4 * time.Second, ReuseInterval: time.Minute}, nil)
	b := newBrowser(t)
	e.login(t, b)
	if r, _ := e.api(t, b); r.StatusCode != http.StatusOK {
		t.Fatalf("API: %d %s", r.StatusCode, r.Body)
	}
	rt0 := e.p.LastRefreshToken()
	for i := range 2 {
		tok := e.lastBearer(t)
		dexPoll(t, "a refreshed access token", func() bool {
			if r, _ := e.api(t, b); r.StatusCode != http.StatusOK {
				t.Fatalf("API while waiting for refresh %d: %d %s", i+1, r.StatusCode, r.Body)
			}
			return e.lastBearer(t) != tok
		})
	}
	grants := e.refreshSince(0)
	if len(grants) < 2 {
		t.Fatalf("%d refresh grants, want at least 2", len(grants))
	}
	for i, g := range grants {
		if g.Status != http.StatusOK || g.Form.Get("refresh_token") != rt0 || g.RefreshToken != rt0 {
			t.Errorf("refresh %d: status %d, presented the first refresh token %v, got it back %v",
				i+1, g.Status, g.Form.Get("refresh_token") == rt0, g.RefreshToken == rt0)
		}
	}
	if s := dexUserStatus(b, e.g.URL); s != http.StatusOK {
		t.Errorf("/bff/user after the refreshes: %d", s)
	}
}

// TestDexDeadRefreshToken: Dex answers a spent or expired refresh token
// with 400 invalid_request (not invalid_grant). The gateway ends the
// session: the API call and /bff/user answer 401.
func TestDexDeadRefreshToken(t *testing.T) {
	tests := []struct {
		name string
		opts dex.Options
		// kill waits until Dex refuses the session's refresh token rt.
		kill func(t *testing.T, e *dexEnv, rt string)
	}{
		{
			name: "spent",
			opts: dex.Options{IDTokenTTL: 30 * time.Second, ReuseInterval: time.Second},
			kill: func(t *testing.T, e *dexEnv, rt string) {
				// Another holder redeems it once the reuse interval since
				// its issue is over, so Dex rotates it away; Dex still
				// answers the old one with the new one for a reuse
				// interval after that, then refuses it.
				dexPoll(t, "dex to rotate the refresh token", func() bool {
					tr, err := e.p.Refresh(t.Context(), rt)
					if err != nil || tr.Status != http.StatusOK {
						t.Fatalf("redeeming the session's refresh token: %d %s %v", tr.Status, tr.Error, err)
					}
					return tr.RefreshToken != rt
				})
				dexPoll(t, "dex to refuse the rotated-away refresh token", func() bool {
					tr, err := e.p.Refresh(t.Context(), rt)
					if err != nil {
						t.Fatal(err)
					}
					return tr.Status != http.StatusOK
				})
			},
		},
		{
			name: "expired",
			opts: dex.Options{IDTokenTTL: 30 * time.Second, AbsoluteLifetime: 2 * time.Second},
			kill: func(t *testing.T, e *dexEnv, rt string) {
				// Any probe would be a refresh: wait out the lifetime
				// from the code exchange instead.
				issued := e.p.TokenRequests("authorization_code")[0].Time
				time.Sleep(time.Until(issued.Add(2*time.Second + 1100*time.Millisecond)))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newDexEnv(t, tt.opts, nil)
			b := newBrowser(t)
			e.login(t, b)
			if r, _ := e.api(t, b); r.StatusCode != http.StatusOK {
				t.Fatalf("API: %d %s", r.StatusCode, r.Body)
			}
			tt.kill(t, e, e.p.LastRefreshToken())

			// Dex's clock need not move: the gateway's reaching the
			// token's expiry is what forces the refresh.
			e.g.Clock.Advance(time.Minute)
			before, calls := e.p.RefreshGrants(), len(e.up.Requests())
			if r := b.get(e.g.URL+"/api/me/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
				t.Errorf("API with a dead refresh token: %d %q", r.StatusCode, r.Body)
			}
			grants := e.refreshSince(before)
			if len(grants) != 1 || grants[0].Status != http.StatusBadRequest || grants[0].Error != "invalid_request" {
				t.Errorf("refresh grants %+v, want one answered 400 invalid_request", grants)
			}
			if s := dexUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
				t.Errorf("/bff/user after the session ended: %d", s)
			}
			if n := len(e.up.Requests()) - calls; n != 0 {
				t.Errorf("upstream called %d times", n)
			}
		})
	}
}

// TestDexWrongClientSecret: Dex refuses the code exchange with 401
// invalid_client, the gateway shows its error page and creates no session.
func TestDexWrongClientSecret(t *testing.T) {
	const wrong = "not-the-secret-at-all"
	e := newDexEnv(t, dex.Options{}, func(cfg *config.Config) { cfg.OIDC.ClientSecret = wrong })
	b := newBrowser(t)
	r := e.login(t, b)
	if r.StatusCode < 400 || !strings.Contains(r.Body, "Sign-in failed") {
		t.Errorf("callback with a wrong client secret: %d %s", r.StatusCode, r.Body)
	}
	for _, c := range r.Cookies() {
		if c.Name == "__Host-Http-cloakroom" && c.MaxAge >= 0 {
			t.Error("a session cookie was set")
		}
	}
	if s := dexUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
		t.Errorf("/bff/user: %d", s)
	}
	codes := e.p.TokenRequests("authorization_code")
	if len(codes) != 1 || codes[0].Status != http.StatusUnauthorized || codes[0].Error != "invalid_client" {
		t.Errorf("code exchanges %+v, want one refused with 401 invalid_client", codes)
	}
	if strings.Contains(r.Body, wrong) {
		t.Error("the error page shows the secret")
	}
	assertNoSecrets(t, e.g.Logs.String(), wrong)
}
