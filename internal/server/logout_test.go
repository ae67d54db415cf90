package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/go-jose/go-jose/v4"
)

// sidOf returns the IdP session id of b's session.
func sidOf(t *testing.T, e *env, b *browser) string {
	t.Helper()
	return claim(t, b, e.g.URL, "sid")
}

func postLogout(t *testing.T, e *env, contentType, body string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.g.URL+"/bff/backchannel", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return newBrowser(t).do(req)
}

func sendLogoutToken(t *testing.T, e *env, tok string) response {
	t.Helper()
	return postLogout(t, e, "application/x-www-form-urlencoded", url.Values{"logout_token": {tok}}.Encode())
}

func TestBackchannelLogout(t *testing.T) {
	e := newEnv(t, nil)
	one, two, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	e.login(t, one, "alice")
	e.login(t, two, "alice")
	e.login(t, bob, "bob")
	sid1 := sidOf(t, e, one)
	if sid1 == sidOf(t, e, two) {
		t.Fatal("two browsers share an IdP sid")
	}
	status := func(b *browser) int { return b.get(e.g.URL+"/bff/user", "X-CSRF", "1").StatusCode }

	// By sid: only that session ends.
	tok, err := e.idp.SignLogoutToken("web", "", sid1)
	if err != nil {
		t.Fatal(err)
	}
	before := e.idp.Stats().Revocations
	r := sendLogoutToken(t, e, tok)
	if r.StatusCode != http.StatusOK || r.Body != "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("logout by sid: %d %q %q", r.StatusCode, r.Body, r.Header.Get("Cache-Control"))
	}
	if status(one) != 401 || status(two) != 200 || status(bob) != 200 {
		t.Errorf("after sid logout: one %d two %d bob %d, want 401 200 200", status(one), status(two), status(bob))
	}
	if e.idp.Stats().Revocations != before+1 {
		t.Errorf("refresh token of the ended session not revoked")
	}
	// Replay of the same token: 400.
	if r := sendLogoutToken(t, e, tok); r.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed token: %d", r.StatusCode)
	}
	// By sub: every session of alice ends, bob's stays.
	e.login(t, one, "alice")
	tok, _ = e.idp.SignLogoutToken("web", "alice-1", "")
	if r := sendLogoutToken(t, e, tok); r.StatusCode != http.StatusOK {
		t.Fatalf("logout by sub: %d", r.StatusCode)
	}
	if status(one) != 401 || status(two) != 401 || status(bob) != 200 {
		t.Errorf("after sub logout: one %d two %d bob %d, want 401 401 200", status(one), status(two), status(bob))
	}
}

func TestBackchannelLogoutRejects(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	sid := sidOf(t, e, b)
	iss := e.g.cfg.OIDC.Issuer
	now := time.Now()
	n := 0
	valid := func() map[string]any {
		n++
		return map[string]any{
			"iss": iss, "aud": "web", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
			"jti": fmt.Sprint("jti-", n), "sid": sid, "sub": "alice-1",
			"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
		}
	}
	signed := func(mod func(map[string]any)) string {
		c := valid()
		mod(c)
		tok, err := e.idp.SignClaims(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// A token signed with a key the provider never published.
	foreignKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	foreign := func() string {
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: foreignKey}, (&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", "foreign"))
		payload, _ := json.Marshal(valid())
		jws, _ := sig.Sign(payload)
		s, _ := jws.CompactSerialize()
		return s
	}()
	unsigned := func() string {
		payload, _ := json.Marshal(valid())
		return b64(`{"alg":"none","typ":"logout+jwt"}`) + "." + b64(string(payload)) + "."
	}()
	good := signed(func(map[string]any) {})
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(strings.Replace(mustB64Decode(parts[1]), `"sub":"alice-1"`, `"sub":"bob-1"`, 1)) + "." + parts[2]
	var idToken string
	for _, tok := range e.idp.IssuedTokens() {
		if h, _, _ := strings.Cut(tok, "."); strings.Count(tok, ".") == 2 && !strings.Contains(mustB64Decode(h), "at+jwt") {
			idToken = tok
		}
	}
	if idToken == "" {
		t.Fatal("no ID token issued")
	}

	cases := []struct {
		name, contentType, body string
	}{
		{"bad signature", "", tampered},
		{"foreign key", "", foreign},
		{"alg none", "", unsigned},
		{"wrong iss", "", signed(func(c map[string]any) { c["iss"] = "https://evil.example" })},
		{"wrong aud", "", signed(func(c map[string]any) { c["aud"] = "other-client" })},
		{"no events", "", signed(func(c map[string]any) { delete(c, "events") })},
		{"events without the logout member", "", signed(func(c map[string]any) { c["events"] = map[string]any{"x": map[string]any{}} })},
		{"events member not an object", "", signed(func(c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": "yes"}
		})},
		{"with nonce", "", signed(func(c map[string]any) { c["nonce"] = "n" })},
		{"neither sub nor sid", "", signed(func(c map[string]any) { delete(c, "sub"); delete(c, "sid") })},
		{"expired", "", signed(func(c map[string]any) {
			c["exp"] = now.Add(-time.Hour).Unix()
			c["iat"] = now.Add(-2 * time.Hour).Unix()
		})},
		{"issued in the future", "", signed(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })},
		{"no iat", "", signed(func(c map[string]any) { delete(c, "iat") })},
		{"no jti", "", signed(func(c map[string]any) { delete(c, "jti") })},
		{"an ID token", "", idToken},
		{"garbage", "", "not.a.jwt"},
		{"wrong content type", "application/json", `{"logout_token":"` + good + `"}`},
		{"no token", "application/x-www-form-urlencoded", "x=1"},
		{"oversize body", "application/x-www-form-urlencoded", "logout_token=" + good + "&pad=" + strings.Repeat("a", 70<<10)},
	}
	for _, tc := range cases {
		var r response
		if tc.contentType == "" {
			r = sendLogoutToken(t, e, tc.body)
		} else {
			r = postLogout(t, e, tc.contentType, tc.body)
		}
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", tc.name, r.StatusCode)
		}
		if s := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); s.StatusCode != http.StatusOK {
			t.Fatalf("%s: the session ended", tc.name)
		}
	}
	// And the valid one still works afterwards.
	if r := sendLogoutToken(t, e, good); r.StatusCode != http.StatusOK {
		t.Errorf("valid token: %d", r.StatusCode)
	}
	if s := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); s.StatusCode != http.StatusUnauthorized {
		t.Errorf("valid token did not end the session: %d", s.StatusCode)
	}
	assertNoSecrets(t, e.g.Logs.String(), good, foreign, tampered, idToken)
}

func TestFrontchannelLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	sid := sidOf(t, e, b)
	iss := e.g.cfg.OIDC.Issuer
	if r := b.get(e.g.URL + "/bff/frontchannel?" + url.Values{"iss": {"https://evil.example"}, "sid": {sid}}.Encode()); r.StatusCode != http.StatusBadRequest {
		t.Errorf("wrong iss: %d", r.StatusCode)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatal("wrong iss ended the session")
	}
	r := b.get(e.g.URL + "/bff/frontchannel?" + url.Values{"iss": {iss}, "sid": {sid}}.Encode())
	if r.StatusCode != http.StatusOK {
		t.Fatalf("front-channel logout: %d", r.StatusCode)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors "+iss) {
		t.Errorf("CSP %q does not let the provider frame the page", csp)
	}
	if r.Header.Get("X-Frame-Options") != "" {
		t.Errorf("X-Frame-Options %q forbids the provider's frame", r.Header.Get("X-Frame-Options"))
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("session survived front-channel logout: %d", r.StatusCode)
	}
}

func TestSilentLogin(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	origin := e.g.URL
	silent := func() response {
		auth := location(t, b.get(e.g.URL+"/bff/login?prompt=none"))
		if auth.Query().Get("prompt") != "none" {
			t.Fatalf("prompt not passed on: %s", auth)
		}
		if raw := b.get(e.g.URL + "/bff/login?prompt=none").Header.Get("Set-Cookie"); !strings.Contains(raw, "SameSite=None") || !strings.Contains(raw, "Secure") {
			t.Errorf("silent login-attempt cookie: %s", raw)
		}
		cb := location(t, b.get(auth.String())) // the provider answers at once, no form
		return b.get(cb.String())
	}
	want := func(r response, loggedIn bool) {
		t.Helper()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("silent callback: %d %s", r.StatusCode, r.Body)
		}
		msg := regexp.MustCompile(fmt.Sprintf(`window\.parent\.postMessage\(\{source: "bff-silent-login", isLoggedIn:\s*%v\s*\}, "%s"\)`, loggedIn, regexp.QuoteMeta(origin)))
		if !msg.MatchString(r.Body) {
			t.Errorf("page does not post isLoggedIn %v to %s: %s", loggedIn, origin, r.Body)
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "frame-ancestors 'self'") {
			t.Errorf("CSP %q", csp)
		}
		if r.Header.Get("X-Frame-Options") != "SAMEORIGIN" {
			t.Errorf("X-Frame-Options %q", r.Header.Get("X-Frame-Options"))
		}
	}
	// Not signed in at the provider: login_required is a normal "false".
	want(silent(), false)
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session after a failed silent login: %d", r.StatusCode)
	}
	// Signed in at the provider (and here), then the session here ends:
	// silent login brings it back without a form.
	e.login(t, b, "alice")
	location(t, b.get(e.g.URL+claim(t, b, e.g.URL, "bff:logout_url")))
	want(silent(), true)
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("no session after a silent login: %d", r.StatusCode)
	}
	want(b.get(e.g.URL+"/bff/silent-login-callback"), true)
}

// TestBackchannelFromProvider: the provider itself posts logout tokens over
// HTTP when its sessions end: one sid, then every session of a subject.
func TestBackchannelFromProvider(t *testing.T) {
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, func(o *idp.Options) {
		o.Clients[0].BackchannelLogoutURI = public + "/bff/backchannel"
	})
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	e := &env{g: startGateway(t, ln, cfg, server.Options{}), idp: p}
	one, two, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	e.login(t, one, "alice")
	e.login(t, two, "alice")
	e.login(t, bob, "bob")
	status := func(b *browser) int { return b.get(e.g.URL+"/bff/user", "X-CSRF", "1").StatusCode }

	p.LogoutSID(sidOf(t, e, one))
	p.WaitBackchannel()
	if status(one) != 401 || status(two) != 200 || status(bob) != 200 {
		t.Errorf("after the provider ended one sid: %d %d %d, want 401 200 200", status(one), status(two), status(bob))
	}
	p.LogoutSubject("alice-1")
	p.WaitBackchannel()
	if status(two) != 401 || status(bob) != 200 {
		t.Errorf("after the provider ended alice everywhere: %d %d, want 401 200", status(two), status(bob))
	}
	for _, d := range p.BackchannelDeliveries() {
		if d.Status != http.StatusOK {
			t.Errorf("delivery %+v", d)
		}
	}
	if n := len(p.BackchannelDeliveries()); n < 2 {
		t.Errorf("%d deliveries, want at least 2", n)
	}
}
