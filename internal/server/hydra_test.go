package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/hydra"
)

// The tests in this file run the gateway against an unmodified Ory Hydra
// v2.3.0 (internal/oidctest/hydra): a real process with its own clock, so
// lifetimes are a few real seconds and the tests poll until Hydra's state
// has moved on.

// hydraWait bounds every poll for Hydra's real clock or its asynchronous
// back-channel deliveries.
const hydraWait = 30 * time.Second

// hydraEnv is a gateway in front of Hydra with one client, an upstream at
// /api/me/ that introspects the token it receives at Hydra's admin API, and
// a recorder between Hydra and the gateway's back-channel logout endpoint.
type hydraEnv struct {
	p  *hydra.Provider
	c  hydra.Client
	g  *gateway
	up *upstream
	bc *hydraLogoutRecorder
}

func newHydraEnv(t *testing.T, opts hydra.Options, mod func(*hydra.Client, *config.Config)) *hydraEnv {
	t.Helper()
	ln, public := listenLocal(t)
	p := hydra.Start(t, opts)
	bc := newHydraLogoutRecorder(t, public+"/bff/backchannel")
	c := hydra.Client{
		RedirectURIs:                     []string{public + "/bff/callback"},
		PostLogoutRedirectURIs:           []string{public + "/"},
		Scope:                            "openid offline_access profile email orders.read",
		BackchannelLogoutURI:             bc.URL,
		BackchannelLogoutSessionRequired: true,
		SkipConsent:                      true,
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		in, err := p.Introspect(r.Context(), bearerOf(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(in)
	})
	cfg := baseConfig(public, "", "", "")
	cfg.APIs = []config.API{{Path: "/api/me/", Upstream: up.URL, Token: "user", Timeout: 30 * time.Second}}
	if mod != nil {
		mod(&c, cfg)
	}
	c = p.CreateClient(t, c)
	cfg.OIDC.Issuer, cfg.OIDC.ClientID = p.Issuer, c.ID
	if cfg.OIDC.ClientSecret == "" {
		cfg.OIDC.ClientSecret = c.Secret
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hydra's log:\n%s", p.Logs())
		}
	})
	return &hydraEnv{p: p, c: c, g: startGateway(t, ln, cfg, serverOptions()), up: up, bc: bc}
}

// login signs b in through Hydra and the login and consent app.
func (e *hydraEnv) login(t *testing.T, b *browser) response {
	t.Helper()
	return signIn(t, e.g, b, func(auth *url.URL) *url.URL {
		cb, err := e.p.Follow(t.Context(), b.c, auth.String())
		if err != nil {
			t.Fatalf("login at hydra: %v", err)
		}
		return cb
	})
}

// api calls /api/me/ and returns Hydra's introspection of the token the
// upstream received.
func (e *hydraEnv) api(t *testing.T, b *browser) (response, hydra.Introspection) {
	t.Helper()
	r := b.get(e.g.URL+"/api/me/x", "X-CSRF", "1")
	var in hydra.Introspection
	if r.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(r.Body), &in); err != nil {
			t.Fatalf("upstream answer %q: %v", r.Body, err)
		}
	}
	return r, in
}

// lastBearer is the token the upstream received last.
func (e *hydraEnv) lastBearer(t *testing.T) string {
	t.Helper()
	reqs := e.up.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream was never called")
	}
	return bearerOf(reqs[len(reqs)-1])
}

func (e *hydraEnv) introspect(t *testing.T, tok string) hydra.Introspection {
	t.Helper()
	in, err := e.p.Introspect(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// hydraPoll polls cond every 100 ms until it holds, failing the test after
// hydraWait.
func hydraPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hydraWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hydraClaims(t *testing.T, b *browser, base string) map[string]any {
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

func hydraUserStatus(b *browser, base string) int {
	return b.get(base+"/bff/user", "X-CSRF", "1").StatusCode
}

// TestHydraFlow: login, /bff/user, an API call with Hydra's access token,
// a refresh after half the access token's lifetime with rotation, ten
// concurrent calls at expiry sharing one refresh, and RP-initiated logout
// that revokes the refresh token.
func TestHydraFlow(t *testing.T) {
	const ttl = 6 * time.Second
	e := newHydraEnv(t, hydra.Options{AccessTokenTTL: ttl}, nil)
	b := newBrowser(t)

	landing := e.login(t, b)
	if landing.StatusCode != http.StatusOK {
		t.Fatalf("callback: %d %s", landing.StatusCode, landing.Body)
	}
	sessionCookie(t, landing)

	// Self-hosted v2.3.0 sends the browser to the consent app even for a
	// skip_consent client: the app sees the flag and decides.
	consents := e.p.ConsentRequests()
	if len(consents) != 1 || !consents[0].ClientSkipConsent || consents[0].Skip {
		t.Errorf("consent requests %+v, want one for a skip_consent client, skip false", consents)
	}
	if !slices.Contains(consents[0].RequestedScope, "offline_access") {
		t.Errorf("requested scopes %v, want offline_access", consents[0].RequestedScope)
	}

	claims := hydraClaims(t, b, e.g.URL)
	for k, want := range map[string]string{
		"sub": e.p.Subject, "email": e.p.Email, "name": e.p.Name,
		"email_verified": "true", "sid": consents[0].LoginSessionID,
	} {
		if got := fmt.Sprint(claims[k]); got != want {
			t.Errorf("claim %s: got %s, want %s", k, got, want)
		}
	}

	// The API gets Hydra's access token for this user and client.
	r, in := e.api(t, b)
	if r.StatusCode != http.StatusOK || !in.Active || in.Subject != e.p.Subject || in.ClientID != e.c.ID || in.TokenUse != "access_token" {
		t.Fatalf("API: %d, introspection %+v", r.StatusCode, in)
	}
	tok0, rt0 := e.lastBearer(t), e.p.LastRefreshToken(e.c.ID)
	if rt0 == "" {
		t.Fatal("hydra issued no refresh token")
	}

	// Refresh after half the lifetime: call until the upstream sees a new
	// token. The refresh must have reached Hydra before the old token's
	// exp, with the refresh token Hydra issued at login.
	exp0 := time.Unix(e.introspect(t, tok0).Expiry, 0)
	hydraPoll(t, "a refreshed access token", func() bool {
		if r, _ := e.api(t, b); r.StatusCode != http.StatusOK {
			t.Fatalf("API while waiting for the refresh: %d %s", r.StatusCode, r.Body)
		}
		return e.lastBearer(t) != tok0
	})
	tok1 := e.lastBearer(t)
	grants := e.p.TokenRequests("refresh_token")
	if len(grants) != 1 || grants[0].Status != http.StatusOK || grants[0].Form.Get("refresh_token") != rt0 {
		t.Fatalf("refresh grants %d (want 1 with the issued refresh token, answered 200)", len(grants))
	}
	if !grants[0].Time.Before(exp0) {
		t.Errorf("refreshed at %v, after the access token expired at %v", grants[0].Time, exp0)
	}
	rt1 := e.p.LastRefreshToken(e.c.ID)
	if rt1 == "" || rt1 == rt0 {
		t.Fatal("hydra did not rotate the refresh token")
	}
	// Hydra revokes the refreshed-away access token along with the old
	// refresh token (the provider page says so).
	if e.introspect(t, rt0).Active || e.introspect(t, tok0).Active {
		t.Error("after the refresh: the old refresh or access token is still active")
	}
	if !e.introspect(t, rt1).Active || !e.introspect(t, tok1).Active {
		t.Error("after the refresh: the new refresh or access token is not active")
	}

	// Ten concurrent calls once Hydra has expired the access token: one
	// refresh, one new token for all.
	hydraPoll(t, "the access token to expire at hydra", func() bool { return !e.introspect(t, tok1).Active })
	before, calls := e.p.RefreshGrants(), len(e.up.Requests())
	if codes := burst(t, b, 10, e.g.URL+"/api/me/burst"); codes[http.StatusOK] != 10 {
		t.Fatalf("burst at expiry: %v; logs:\n%s", codes, e.g.Logs)
	}
	if got := e.p.RefreshGrants() - before; got != 1 {
		t.Errorf("hydra saw %d refresh grants for the burst, want 1", got)
	}
	reqs := e.up.Requests()[calls:]
	for _, r := range reqs {
		if bearerOf(r) != bearerOf(reqs[0]) || bearerOf(r) == tok1 {
			t.Fatal("the burst did not share one new token")
		}
	}
	if !e.introspect(t, bearerOf(reqs[0])).Active {
		t.Error("the burst's token is not active at hydra")
	}

	// RP-initiated logout: the refresh token is revoked at Hydra, the
	// browser goes through Hydra's end-session endpoint and the logout
	// app, and lands on the post-logout redirect URI.
	rt2 := e.p.LastRefreshToken(e.c.ID)
	logoutURL, _ := hydraClaims(t, b, e.g.URL)["bff:logout_url"].(string)
	revocations := len(e.p.Revocations())
	to := location(t, b.get(e.g.URL+logoutURL))
	if !strings.HasPrefix(to.String(), e.p.EndSessionEndpoint) || to.Query().Get("id_token_hint") == "" ||
		to.Query().Get("post_logout_redirect_uri") != e.g.URL+"/" {
		t.Errorf("logout redirect to %s%s (query not shown), want the end-session endpoint with id_token_hint and the post-logout URI", to.Host, to.Path)
	}
	revs := e.p.Revocations()
	if len(revs) != revocations+1 || revs[len(revs)-1].Form.Get("token") != rt2 || revs[len(revs)-1].Status != http.StatusOK {
		t.Errorf("revocations: %d, want %d with the current refresh token, answered 200", len(revs), revocations+1)
	}
	if e.introspect(t, rt2).Active {
		t.Error("the refresh token is still active at hydra after logout")
	}
	back, err := e.p.Follow(t.Context(), b.c, to.String())
	if err != nil {
		t.Fatalf("logout at hydra: %v", err)
	}
	if back.String() != e.g.URL+"/" && !strings.HasPrefix(back.String(), e.g.URL+"/?") {
		t.Errorf("hydra's logout sent the browser to %s, want %s/", back.Redacted(), e.g.URL)
	}
	if n := e.p.LogoutRequests(); n != 1 {
		t.Errorf("logout app asked %d times, want 1", n)
	}
	if s := hydraUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
		t.Errorf("/bff/user after logout: %d", s)
	}

	// Hydra also tells the session's clients by back-channel: a logout
	// token with the session's sid.
	hydraPoll(t, "hydra's back-channel logout token", func() bool { return len(e.bc.Tokens()) > 0 })
	if n := len(e.bc.Tokens()); n != 1 {
		t.Errorf("%d logout tokens, want 1", n)
	}
	lt := e.bc.Tokens()[0]
	if lt.Claims["sid"] != consents[0].LoginSessionID || lt.Claims["iss"] != e.p.Issuer {
		t.Errorf("logout token sid %v iss %v, want %s %s", lt.Claims["sid"], lt.Claims["iss"], consents[0].LoginSessionID, e.p.Issuer)
	}
	assertNoSecrets(t, e.g.Logs.String(), e.c.Secret, tok0, tok1, rt0, rt1, rt2)
}

// TestHydraDeadRefreshToken: a refresh token that Hydra no longer honours
// ends the session at the next refresh, with 401 and no upstream call:
// revoked through RFC 7009, or dead because a rotated-away one was replayed
// (Hydra then revokes the whole chain).
func TestHydraDeadRefreshToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, e *hydraEnv, old, current string)
	}{
		{"revoked", func(t *testing.T, e *hydraEnv, _, current string) {
			form := url.Values{"token": {current}}
			if s, _ := hydraPost(t, e.p.RevocationEndpoint, e.c, form); s != http.StatusOK {
				t.Fatalf("revocation at hydra: %d", s)
			}
		}},
		{"old one replayed", func(t *testing.T, e *hydraEnv, old, _ string) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}
			if s, body := hydraPost(t, e.p.TokenEndpoint, e.c, form); s != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
				t.Fatalf("replayed refresh token: %d %s", s, body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHydraEnv(t, hydra.Options{AccessTokenTTL: 30 * time.Second}, nil)
			b := newBrowser(t)
			e.login(t, b)
			// Hydra's clock need not move: the gateway's reaching the
			// token's expiry is what forces each refresh.
			rt0 := e.p.LastRefreshToken(e.c.ID)
			e.g.Clock.Advance(time.Minute)
			if r, in := e.api(t, b); r.StatusCode != http.StatusOK || !in.Active {
				t.Fatalf("API: %d %+v", r.StatusCode, in)
			}
			rt1 := e.p.LastRefreshToken(e.c.ID)
			if e.p.RefreshGrants() != 1 || rt1 == rt0 {
				t.Fatalf("%d refresh grants, want 1 that rotated the refresh token", e.p.RefreshGrants())
			}

			tc.kill(t, e, rt0, rt1)
			if e.introspect(t, rt1).Active {
				t.Fatal("the current refresh token is still active at hydra")
			}
			e.g.Clock.Advance(time.Minute)
			calls := len(e.up.Requests())
			if r := b.get(e.g.URL+"/api/me/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
				t.Errorf("API with a dead refresh token: %d %q", r.StatusCode, r.Body)
			}
			var outcomes []string
			for _, g := range e.p.TokenRequests("refresh_token") {
				if g.Form.Get("refresh_token") == rt1 {
					outcomes = append(outcomes, fmt.Sprint(g.Status, " ", g.Error))
				}
			}
			if !slices.Equal(outcomes, []string{"400 invalid_grant"}) {
				t.Errorf("the gateway's refreshes with the dead token: %v, want [400 invalid_grant]", outcomes)
			}
			if s := hydraUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
				t.Errorf("/bff/user after the session ended: %d", s)
			}
			if n := len(e.up.Requests()) - calls; n != 0 {
				t.Errorf("upstream called %d times", n)
			}
		})
	}
}

// hydraPost posts form to one of Hydra's endpoints as client c
// (client_secret_basic) and returns the status and body.
func hydraPost(t *testing.T, endpoint string, c hydra.Client, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body)
}

// TestHydraBackchannelLogout: ending a login session at Hydra by sid posts
// a logout token (v2.3.0: without exp) to the clients of that session only,
// and the gateway ends exactly the sessions with that sid. Ending a
// subject's login sessions sends no logout token at all.
func TestHydraBackchannelLogout(t *testing.T) {
	// Sessions outlive Hydra's 1h access tokens, so that the last step can
	// show a refresh ending one.
	e := newHydraEnv(t, hydra.Options{}, func(_ *hydra.Client, cfg *config.Config) { cfg.Session.IdleTimeout = 3 * time.Hour })
	// A second client at Hydra with a back-channel URI that no one signs
	// in to: it must never hear of these logouts.
	other := newHydraLogoutRecorder(t, "")
	e.p.CreateClient(t, hydra.Client{
		RedirectURIs:                     []string{"http://127.0.0.1:1/callback"},
		BackchannelLogoutURI:             other.URL,
		BackchannelLogoutSessionRequired: true,
	})
	one, two := newBrowser(t), newBrowser(t)
	e.login(t, one)
	e.login(t, two)
	sid1, sid2 := hydraClaims(t, one, e.g.URL)["sid"], hydraClaims(t, two, e.g.URL)["sid"]
	if sid1 == nil || sid1 == sid2 {
		t.Fatalf("sids %v and %v, want two login sessions", sid1, sid2)
	}

	if err := e.p.RevokeLoginSessionsBySID(t.Context(), sid1.(string)); err != nil {
		t.Fatal(err)
	}
	hydraPoll(t, "the logout token for the first session", func() bool { return len(e.bc.Tokens()) > 0 })
	lt := e.bc.Tokens()[0]
	if lt.Claims["sid"] != sid1 || lt.Claims["iss"] != e.p.Issuer || !audHas(lt.Claims["aud"], e.c.ID) {
		t.Errorf("logout token sid %v iss %v aud %v, want %v %s [%s]", lt.Claims["sid"], lt.Claims["iss"], lt.Claims["aud"], sid1, e.p.Issuer, e.c.ID)
	}
	events, _ := lt.Claims["events"].(map[string]any)
	if _, ok := events["http://schemas.openid.net/event/backchannel-logout"]; !ok {
		t.Errorf("logout token events %v", lt.Claims["events"])
	}
	// docs/providers/ory-hydra.md says v2.3.0 sends no exp: keep it true.
	_, hasExp := lt.Claims["exp"]
	if hasExp {
		t.Error("hydra's logout token carries exp: update docs/providers/ory-hydra.md")
	}
	if lt.Status != http.StatusOK {
		t.Errorf("gateway answered hydra's logout token (exp present: %v) with %d, want 200", hasExp, lt.Status)
	}
	if s1, s2 := hydraUserStatus(one, e.g.URL), hydraUserStatus(two, e.g.URL); s1 != http.StatusUnauthorized || s2 != http.StatusOK {
		t.Errorf("after hydra ended the first login session: /bff/user %d %d, want 401 200", s1, s2)
	}

	// By subject: Hydra deletes the login sessions and tells no client.
	// A later logout by sid of a new session is the barrier: once its
	// token has arrived, a token of the subject revocation would have too.
	if err := e.p.RevokeLoginSessionsBySubject(t.Context(), e.p.Subject); err != nil {
		t.Fatal(err)
	}
	// Nor does it revoke tokens: the second session's refresh token lives.
	codes := e.p.TokenRequests("authorization_code")
	rt2 := codes[len(codes)-1].RefreshToken
	if rt2 == "" || !e.introspect(t, rt2).Active {
		t.Error("the second session's refresh token died with the subject's login sessions")
	}
	three := newBrowser(t)
	e.login(t, three)
	sid3 := hydraClaims(t, three, e.g.URL)["sid"]
	if err := e.p.RevokeLoginSessionsBySID(t.Context(), sid3.(string)); err != nil {
		t.Fatal(err)
	}
	hydraPoll(t, "the logout token for the third session", func() bool {
		return slices.ContainsFunc(e.bc.Tokens(), func(lt hydraLogout) bool { return lt.Claims["sid"] == sid3 })
	})
	var sids []any
	for _, lt := range e.bc.Tokens() {
		sids = append(sids, lt.Claims["sid"])
	}
	if !slices.Equal(sids, []any{sid1, sid3}) {
		t.Errorf("logout tokens for sids %v, want %v %v (none for the subject revocation)", sids, sid1, sid3)
	}
	if s2, s3 := hydraUserStatus(two, e.g.URL), hydraUserStatus(three, e.g.URL); s2 != http.StatusOK || s3 != http.StatusUnauthorized {
		t.Errorf("after revoking by subject, then the third sid: /bff/user %d %d, want 200 401", s2, s3)
	}
	if n := len(other.Tokens()); n != 0 {
		t.Errorf("a client outside the login sessions got %d logout tokens", n)
	}

	// What does end the second session: revoking the subject's consent
	// kills its tokens, and the gateway's next refresh ends it.
	if err := e.p.RevokeConsentSessions(t.Context(), e.p.Subject, e.c.ID); err != nil {
		t.Fatal(err)
	}
	if e.introspect(t, rt2).Active {
		t.Error("the second session's refresh token is active after the consent was revoked")
	}
	e.g.Clock.Advance(2 * time.Hour) // past the access token's expiry (Hydra's default 1h)
	if r := two.get(e.g.URL+"/api/me/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after the consent was revoked: %d", r.StatusCode)
	}
	if !slices.ContainsFunc(e.p.TokenRequests("refresh_token"), func(r hydra.Request) bool {
		return r.Form.Get("refresh_token") == rt2 && r.Error == "invalid_grant"
	}) {
		t.Error("the gateway did not try the revoked refresh token")
	}
	if s := hydraUserStatus(two, e.g.URL); s != http.StatusUnauthorized {
		t.Errorf("/bff/user after the consent was revoked: %d", s)
	}
}

// TestHydraClientCredentials: a token: client route gets a client
// credentials token from Hydra for the gateway's client, cached across
// calls, without a session.
func TestHydraClientCredentials(t *testing.T) {
	e := newHydraEnv(t, hydra.Options{}, func(_ *hydra.Client, cfg *config.Config) {
		cfg.APIs = append(cfg.APIs, config.API{Path: "/api/orders/", Upstream: cfg.APIs[0].Upstream, Token: "client",
			Scopes: []string{"orders.read"}, Timeout: 30 * time.Second})
	})
	anon := newBrowser(t)
	for i := range 2 {
		r := anon.get(e.g.URL+"/api/orders/recent", "X-CSRF", "1")
		var in hydra.Introspection
		if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.Body), &in) != nil {
			t.Fatalf("call %d: %d %s", i, r.StatusCode, r.Body)
		}
		if !in.Active || in.ClientID != e.c.ID || in.Subject != e.c.ID || in.Scope != "orders.read" {
			t.Errorf("call %d: introspection %+v, want the client's own token with scope orders.read", i, in)
		}
	}
	if n := len(e.p.TokenRequests("client_credentials")); n != 1 {
		t.Errorf("%d client_credentials grants, want 1 (cached)", n)
	}
}

// TestHydraWrongClientSecret: Hydra refuses the code exchange, the gateway
// shows its error page and creates no session.
func TestHydraWrongClientSecret(t *testing.T) {
	const wrong = "not-the-secret-at-all"
	e := newHydraEnv(t, hydra.Options{}, func(_ *hydra.Client, cfg *config.Config) { cfg.OIDC.ClientSecret = wrong })
	b := newBrowser(t)
	r := e.login(t, b)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, "Sign-in failed") {
		t.Errorf("callback with a wrong client secret: %d %s", r.StatusCode, r.Body)
	}
	for _, c := range r.Cookies() {
		if c.Name == "__Host-Http-cloakroom" && c.MaxAge >= 0 {
			t.Error("a session cookie was set")
		}
	}
	if s := hydraUserStatus(b, e.g.URL); s != http.StatusUnauthorized {
		t.Errorf("/bff/user: %d", s)
	}
	codes := e.p.TokenRequests("authorization_code")
	if len(codes) != 1 || codes[0].Status != http.StatusUnauthorized {
		var statuses []int
		for _, c := range codes {
			statuses = append(statuses, c.Status)
		}
		t.Errorf("code exchanges answered %v, want one refused with 401", statuses)
	}
	if strings.Contains(r.Body, wrong) {
		t.Error("the error page shows the secret")
	}
	assertNoSecrets(t, e.g.Logs.String(), wrong)
	// The operator learns why: a configuration fault, logged as an error.
	if !slices.ContainsFunc(strings.Split(e.g.Logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, "invalid_client")
	}) {
		t.Errorf("no error-level log line names invalid_client; logs:\n%s", e.g.Logs)
	}
}

// hydraLogout is one back-channel logout request Hydra sent.
type hydraLogout struct {
	// Claims are the logout token's payload (not verified: the gateway
	// does that).
	Claims map[string]any
	// Status is what the gateway answered (200 when there is no gateway).
	Status int
}

// hydraLogoutRecorder stands between Hydra and a back-channel logout endpoint:
// it records each logout token and forwards it to target, or answers 200
// itself when target is empty.
type hydraLogoutRecorder struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []hydraLogout
}

func newHydraLogoutRecorder(t *testing.T, target string) *hydraLogoutRecorder {
	t.Helper()
	rec := &hydraLogoutRecorder{}
	var fwd http.Handler
	if target != "" {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		fwd = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.URL.Path = u.Path
		}}
	}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		lo := hydraLogout{Claims: map[string]any{}, Status: http.StatusOK}
		if parts := strings.Split(form.Get("logout_token"), "."); len(parts) == 3 {
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			json.Unmarshal(payload, &lo.Claims)
		}
		if fwd != nil {
			sw := &hydraStatusWriter{ResponseWriter: w, status: http.StatusOK}
			fwd.ServeHTTP(sw, r)
			lo.Status = sw.status
		}
		rec.mu.Lock()
		rec.tokens = append(rec.tokens, lo)
		rec.mu.Unlock()
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *hydraLogoutRecorder) Tokens() []hydraLogout {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]hydraLogout(nil), rec.tokens...)
}

type hydraStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *hydraStatusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
