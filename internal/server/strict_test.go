package server_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
	"github.com/cloakroom/cloakroom/internal/server"
)

// hostileEnv is a gateway in front of hostile.Provider, both on one fake
// clock, with one user-token route at /api/orders/ and the admin listener
// for /metrics. The provider signs in at once and records every token
// response it writes.
type hostileEnv struct {
	g     *gateway
	p     *hostile.Provider
	up    *upstream
	admin string

	mu    sync.Mutex
	sent  []map[string]any // token responses, in order
	idSID []string         // the sid of each response's ID token
}

func newHostileEnv(t *testing.T, mod func(*config.Config)) *hostileEnv {
	t.Helper()
	clk := &clock{}
	ln, public := listenLocal(t)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := hostile.New(t)
	p.Now = clk.Now
	e := &hostileEnv{p: p, up: newUpstream(t, nil), admin: "http://" + aln.Addr().String()}
	p.TokenJSON = func(form url.Values) map[string]any {
		c := p.IDClaimsFor(form)
		return e.record(p.TokenResponse(p.Mint(t, hostile.Token{Claims: c})), c)
	}
	cfg := baseConfig(public, p.Issuer, p.ClientID, p.ClientSecret)
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: e.up.URL + "/v1/", Token: "user", Timeout: 30 * time.Second}}
	if mod != nil {
		mod(cfg)
	}
	e.g = startGateway(t, ln, cfg, server.Options{Now: clk.Now, AdminListener: aln})
	e.g.Clock = clk
	return e
}

// record remembers a token response the provider is about to send.
func (e *hostileEnv) record(resp, idClaims map[string]any) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = append(e.sent, resp)
	sid, _ := idClaims["sid"].(string)
	e.idSID = append(e.idSID, sid)
	return resp
}

// last is the last token response sent and the sid of its ID token.
func (e *hostileEnv) last(t *testing.T) (map[string]any, string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sent) == 0 {
		t.Fatal("the provider sent no token response")
	}
	return e.sent[len(e.sent)-1], e.idSID[len(e.sent)-1]
}

// login signs b in; it returns the callback's response.
func (e *hostileEnv) login(t *testing.T, b *browser) response {
	t.Helper()
	return signIn(t, e.g, b, func(auth *url.URL) *url.URL { return location(t, b.get(auth.String())) })
}

func (e *hostileEnv) metrics(t *testing.T) string {
	t.Helper()
	r := newBrowser(t).get(e.admin + "/metrics")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", r.StatusCode)
	}
	return r.Body
}

// expire moves the clock past the access token's life (300s), so the next
// API call refreshes.
func (e *hostileEnv) expire() { e.g.Clock.Advance(10 * time.Minute) }

func (e *hostileEnv) api(b *browser) response {
	return b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1")
}

func (e *hostileEnv) user(b *browser) int {
	return b.get(e.g.URL+"/bff/user", "X-CSRF", "1").StatusCode
}

// noSecretsLogged fails when the gateway's logs quote any of secrets.
func noSecretsLogged(t *testing.T, g *gateway, secrets ...string) {
	t.Helper()
	logs := g.Logs.String()
	for _, s := range append(secrets, hostile.DefaultClientSecret, hostile.Canary) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the logs quote a secret or a provider body (%.12q…)", s)
		}
	}
}

// A refresh the provider answers with 400, whatever the error code, is a
// dead refresh token: the session ends.
func TestDeadRefreshAnyBadRequest(t *testing.T) {
	for _, code := range []string{"invalid_request", "invalid_grant", ""} {
		t.Run("400 "+code, func(t *testing.T) {
			e := newHostileEnv(t, nil)
			b := newBrowser(t)
			if r := e.login(t, b); r.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", r.StatusCode, r.Body)
			}
			login, _ := e.last(t)
			m := map[string]any{"error_description": "refresh token expired " + hostile.Canary}
			if code != "" {
				m["error"] = code
			}
			e.p.Edit(func(p *hostile.Provider) { p.Refresh = hostile.Status(http.StatusBadRequest, m) })
			e.expire()
			if r := e.api(b); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
				t.Errorf("API with a dead refresh token: %d %q, want 401 and no body", r.StatusCode, r.Body)
			}
			if got := e.user(b); got != http.StatusUnauthorized {
				t.Errorf("/bff/user after the session ended: %d, want 401", got)
			}
			if n := len(e.up.Requests()); n != 0 {
				t.Errorf("upstream called %d times", n)
			}
			if got := metricValue(t, e.metrics(t), "cloakroom_token_refreshes_total", `outcome="dead_token"`); got != 1 {
				t.Errorf("dead_token refreshes %v, want 1", got)
			}
			noSecretsLogged(t, e.g, login["refresh_token"].(string), login["access_token"].(string))
		})
	}
}

// 401 invalid_client is the operator's to fix: logged at error level with
// the fix and counted; the session stays and the API answers 503 until the
// provider accepts the client again.
func TestRefreshClientAuthFailure(t *testing.T) {
	e := newHostileEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b)
	login, _ := e.last(t)
	e.p.Edit(func(p *hostile.Provider) {
		p.Refresh = hostile.Status(http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
	})
	e.expire()
	r := e.api(b)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("API while the client is refused: %d %s, want 503 problem+json", r.StatusCode, r.Header.Get("Content-Type"))
	}
	refreshes := e.p.TokenRequests()
	for range 3 {
		if r := e.api(b); r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("API during the backoff: %d, want 503", r.StatusCode)
		}
	}
	if got := e.p.TokenRequests(); got != refreshes {
		t.Errorf("%d more token requests during the backoff, want 0", got-refreshes)
	}
	if got := e.user(b); got != http.StatusOK {
		t.Errorf("/bff/user: %d, want 200 (the session stays)", got)
	}
	var line string
	for l := range strings.SplitSeq(e.g.Logs.String(), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, "oidc.client_id") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, `"grant":"refresh_token"`) {
		t.Errorf("no error line naming the fix and the grant; logs:\n%s", e.g.Logs)
	}
	m := e.metrics(t)
	if got := metricValue(t, m, "cloakroom_client_auth_failures_total", `grant="refresh_token"`); got != 1 {
		t.Errorf("client auth failures %v, want 1", got)
	}
	if got := metricValue(t, m, "cloakroom_token_refreshes_total", `outcome="client_auth"`); got < 1 {
		t.Errorf("client_auth refreshes %v, want at least 1", got)
	}
	noSecretsLogged(t, e.g, login["refresh_token"].(string), login["access_token"].(string))

	// Fixed at the provider: the next refresh after the backoff works.
	e.p.Edit(func(p *hostile.Provider) { p.Refresh = nil })
	e.g.Clock.Advance(31 * time.Second)
	if r := e.api(b); r.StatusCode != http.StatusOK {
		t.Fatalf("API after the fix: %d %s", r.StatusCode, r.Body)
	}
}

// A refresh refused for its DPoP proof (use_dpop_nonce after the one
// retry, invalid_dpop_proof) says nothing about the refresh token: the
// session stays, the API answers 503 and the refreshes back off.
func TestRefreshProofRefusalKeepsSession(t *testing.T) {
	for _, code := range []string{"use_dpop_nonce", "invalid_dpop_proof"} {
		t.Run(code, func(t *testing.T) {
			e := newHostileEnv(t, nil)
			b := newBrowser(t)
			if r := e.login(t, b); r.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", r.StatusCode, r.Body)
			}
			login, _ := e.last(t)
			e.p.Edit(func(p *hostile.Provider) {
				p.Refresh = hostile.Status(http.StatusBadRequest, map[string]any{"error": code})
			})
			e.expire()
			if r := e.api(b); r.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("API: got %d, want 503", r.StatusCode)
			}
			if got := e.user(b); got != http.StatusOK {
				t.Errorf("/bff/user: got %d, want 200 (the session stays)", got)
			}
			if e.p.Revoked(login["refresh_token"].(string)) {
				t.Error("the session's refresh token was revoked")
			}
			if got := metricValue(t, e.metrics(t), "cloakroom_token_refreshes_total", `outcome="idp_error"`); got != 1 {
				t.Errorf("idp_error refreshes: got %v, want 1", got)
			}

			// Accepted again after the backoff: the same session refreshes.
			e.p.Edit(func(p *hostile.Provider) { p.Refresh = nil })
			e.g.Clock.Advance(2 * time.Second)
			if r := e.api(b); r.StatusCode != http.StatusOK {
				t.Errorf("API after the backoff: got %d, want 200", r.StatusCode)
			}
		})
	}
}

// A refresh answer that fails validation ends the session, and the old
// refresh token and the tokens of that answer are revoked.
func TestUntrustedRefreshEndsSession(t *testing.T) {
	type edit func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any)
	cases := map[string]struct {
		idToken bool // the answer carries an ID token
		edit    edit
	}{
		"ID token of another sub":       {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { c["sub"] = "mallory" }},
		"ID token of another iss":       {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { c["iss"] = p.Attacker.URL }},
		"ID token for another aud":      {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { c["aud"] = "another-client" }},
		"ID token with another azp":     {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { c["azp"] = "another-client" }},
		"ID token without iat":          {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { delete(c, "iat") }},
		"ID token with a bad signature": {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { tk.BadSignature = true }},
		"token_type mac":                {true, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { resp["token_type"] = "mac" }},
		"no token_type":                 {false, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { delete(resp, "token_type") }},
		"token_type DPoP":               {false, func(p *hostile.Provider, tk *hostile.Token, resp, c map[string]any) { resp["token_type"] = "DPoP" }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newHostileEnv(t, nil)
			b := newBrowser(t)
			e.login(t, b)
			login, _ := e.last(t)
			var refreshed map[string]any
			e.p.Edit(func(p *hostile.Provider) {
				p.Refresh = func(w http.ResponseWriter, r *http.Request) {
					c := p.IDClaimsFor(r.PostForm)
					tk := hostile.Token{Claims: c}
					resp := p.TokenResponse("")
					tc.edit(p, &tk, resp, c)
					if tc.idToken {
						resp["id_token"] = p.Mint(t, tk)
					}
					refreshed = e.record(resp, c)
					hostile.Status(http.StatusOK, resp)(w, r)
				}
			})
			e.expire()
			if r := e.api(b); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
				t.Errorf("API: %d %q, want 401 and no body", r.StatusCode, r.Body)
			}
			if got := e.user(b); got != http.StatusUnauthorized {
				t.Errorf("/bff/user: %d, want 401", got)
			}
			if n := len(e.up.Requests()); n != 0 {
				t.Errorf("upstream called %d times", n)
			}
			for what, tok := range map[string]any{
				"the session's refresh token": login["refresh_token"],
				"the answer's refresh token":  refreshed["refresh_token"],
				"the answer's access token":   refreshed["access_token"],
			} {
				if !e.p.Revoked(tok.(string)) {
					t.Errorf("%s was not revoked", what)
				}
			}
			if got := metricValue(t, e.metrics(t), "cloakroom_token_refreshes_total", `outcome="untrusted"`); got != 1 {
				t.Errorf("untrusted refreshes %v, want 1", got)
			}
			noSecretsLogged(t, e.g, login["refresh_token"].(string), refreshed["refresh_token"].(string), refreshed["access_token"].(string))
		})
	}
}

// At login, a token_type other than Bearer (any case) fails the sign-in
// and creates no session.
func TestLoginTokenType(t *testing.T) {
	cases := []struct {
		tokenType any // nil: no member
		ok        bool
	}{
		{"Bearer", true}, {"bearer", true}, {"BEARER", true},
		{nil, false}, {"mac", false}, {"DPoP", false},
	}
	for _, tc := range cases {
		t.Run(fmtTokenType(tc.tokenType), func(t *testing.T) {
			e := newHostileEnv(t, nil)
			e.p.Edit(func(p *hostile.Provider) {
				p.TokenJSON = func(form url.Values) map[string]any {
					c := p.IDClaimsFor(form)
					resp := e.record(p.TokenResponse(p.Mint(t, hostile.Token{Claims: c})), c)
					if tc.tokenType == nil {
						delete(resp, "token_type")
					} else {
						resp["token_type"] = tc.tokenType
					}
					return resp
				}
			})
			b := newBrowser(t)
			r := e.login(t, b)
			want, wantUser := http.StatusBadRequest, http.StatusUnauthorized
			if tc.ok {
				want, wantUser = http.StatusOK, http.StatusOK
			}
			if r.StatusCode != want {
				t.Errorf("callback: %d, want %d", r.StatusCode, want)
			}
			if got := e.user(b); got != wantUser {
				t.Errorf("/bff/user: %d, want %d", got, wantUser)
			}
			if !tc.ok {
				for _, c := range b.jar.Cookies(mustParse(t, e.g.URL)) {
					if strings.HasPrefix(c.Name, "__Host-") && !strings.Contains(c.Name, "login") {
						t.Errorf("a session cookie %q was set", c.Name)
					}
				}
			}
			resp, _ := e.last(t)
			for _, name := range []string{"access_token", "refresh_token"} {
				if got := e.p.Revoked(resp[name].(string)); got != !tc.ok {
					t.Errorf("the answer's %s revoked: got %v, want %v", name, got, !tc.ok)
				}
			}
			noSecretsLogged(t, e.g, resp["access_token"].(string), resp["refresh_token"].(string))
		})
	}
}

func fmtTokenType(v any) string {
	if v == nil {
		return "missing"
	}
	return v.(string)
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// oidc.clock_skew applies to the ID token at login.
func TestLoginClockSkew(t *testing.T) {
	cases := []struct {
		name string
		exp  time.Duration // from now
		ok   bool
	}{
		{"exp 5s ago", -5 * time.Second, true},
		{"exp 40s ago", -40 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostileEnv(t, func(c *config.Config) { c.OIDC.ClockSkew = 20 * time.Second })
			e.p.Edit(func(p *hostile.Provider) {
				p.TokenJSON = func(form url.Values) map[string]any {
					c := p.IDClaimsFor(form)
					c["iat"], c["exp"] = p.Now().Add(-time.Minute).Unix(), p.Now().Add(tc.exp).Unix()
					return e.record(p.TokenResponse(p.Mint(t, hostile.Token{Claims: c})), c)
				}
			})
			b := newBrowser(t)
			want := http.StatusBadRequest
			if tc.ok {
				want = http.StatusOK
			}
			if r := e.login(t, b); r.StatusCode != want {
				t.Errorf("callback: %d, want %d", r.StatusCode, want)
			}
			resp, _ := e.last(t)
			for _, name := range []string{"access_token", "refresh_token"} {
				if got := e.p.Revoked(resp[name].(string)); got != !tc.ok {
					t.Errorf("the answer's %s revoked: got %v, want %v", name, got, !tc.ok)
				}
			}
		})
	}
}

// Ory Hydra v2.3.0's logout tokens have no exp: accepted once, their jti
// kept against replays; a logout token whose exp has passed is refused.
func TestBackchannelLogoutWithoutExp(t *testing.T) {
	e := newHostileEnv(t, nil)
	one, two := newBrowser(t), newBrowser(t)
	e.login(t, one)
	_, sid1 := e.last(t)
	e.login(t, two)
	_, sid2 := e.last(t)
	post := func(tok string) response {
		return newBrowser(t).postForm(e.g.URL+"/bff/backchannel", url.Values{"logout_token": {tok}})
	}

	tok := e.p.Mint(t, hostile.Token{Claims: e.p.HydraLogoutClaims(sid1)})
	if r := post(tok); r.StatusCode != http.StatusOK {
		t.Fatalf("logout token without exp: %d %s", r.StatusCode, r.Body)
	}
	if got := e.user(one); got != http.StatusUnauthorized {
		t.Errorf("/bff/user of the ended session: %d, want 401", got)
	}
	if got := e.user(two); got != http.StatusOK {
		t.Errorf("/bff/user of another session: %d, want 200", got)
	}
	if !strings.Contains(e.g.Logs.String(), "no exp") {
		t.Errorf("no debug line about the missing exp")
	}

	// The same token again, within its life: a replay.
	e.g.Clock.Advance(5 * time.Minute)
	if r := post(tok); r.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed logout token: %d, want 400", r.StatusCode)
	}

	// An exp in the past, beyond the clock skew (60s): refused.
	c := e.p.HydraLogoutClaims(sid2)
	c["exp"] = e.p.Now().Add(-2 * time.Minute).Unix()
	if r := post(e.p.Mint(t, hostile.Token{Claims: c})); r.StatusCode != http.StatusBadRequest {
		t.Errorf("expired logout token: %d, want 400", r.StatusCode)
	}
	if got := e.user(two); got != http.StatusOK {
		t.Errorf("/bff/user after the refused token: %d, want 200", got)
	}
}

// In cookie mode the session lives in the browser: the response that
// refuses the refresh also expires it.
func TestUntrustedRefreshCookieMode(t *testing.T) {
	e := newHostileEnv(t, func(c *config.Config) { c.Session.Store = "cookie" })
	b := newBrowser(t)
	if r := e.login(t, b); r.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", r.StatusCode)
	}
	login, _ := e.last(t)
	e.p.Edit(func(p *hostile.Provider) {
		p.Refresh = func(w http.ResponseWriter, r *http.Request) {
			c := p.IDClaimsFor(r.PostForm)
			c["sub"] = "mallory"
			hostile.Status(http.StatusOK, p.TokenResponse(p.Mint(t, hostile.Token{Claims: c})))(w, r)
		}
	})
	e.expire()
	if r := e.api(b); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API: %d, want 401", r.StatusCode)
	}
	if got := e.user(b); got != http.StatusUnauthorized {
		t.Errorf("/bff/user: %d, want 401", got)
	}
	if !e.p.Revoked(login["refresh_token"].(string)) {
		t.Error("the session's refresh token was not revoked")
	}
}

// TestLoginSessionNotSavedRevokesTokens: a login whose session cannot be
// kept (here, claims too large for cookie mode) answers an error and
// revokes the tokens it was issued, which nobody holds.
func TestLoginSessionNotSavedRevokesTokens(t *testing.T) {
	e := newHostileEnv(t, func(c *config.Config) { c.Session.Store = "cookie" })
	e.p.TokenJSON = func(form url.Values) map[string]any {
		c := e.p.IDClaimsFor(form)
		c["padding"] = strings.Repeat("x", 20_000)
		return e.record(e.p.TokenResponse(e.p.Mint(t, hostile.Token{Claims: c})), c)
	}
	b := newBrowser(t)
	if r := e.login(t, b); r.StatusCode != http.StatusInternalServerError {
		t.Fatalf("login: %d, want 500", r.StatusCode)
	}
	login, _ := e.last(t)
	for _, name := range []string{"refresh_token", "access_token"} {
		if !e.p.Revoked(login[name].(string)) {
			t.Errorf("the login's %s was not revoked", name)
		}
	}
	if got := e.user(b); got != http.StatusUnauthorized {
		t.Errorf("/bff/user: %d, want 401", got)
	}
	noSecretsLogged(t, e.g, login["refresh_token"].(string), login["access_token"].(string))
}
