package idp

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestConstants(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{SessionCookieName, "idp_session"},
		{GrantTypeTokenExchange, "urn:ietf:params:oauth:grant-type:token-exchange"},
		{TokenTypeAccessToken, "urn:ietf:params:oauth:token-type:access_token"},
		{BackchannelLogoutEvent, "http://schemas.openid.net/event/backchannel-logout"},
		{Banner, "Development OpenID provider — not for production use"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.get(e.srv.Client(), e.p.Issuer()+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	iss := e.p.Issuer()
	want := map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"jwks_uri":                                       iss + "/jwks",
		"userinfo_endpoint":                              iss + "/userinfo",
		"revocation_endpoint":                            iss + "/revoke",
		"end_session_endpoint":                           iss + "/end_session",
		"response_types_supported":                       []any{"code"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token", "client_credentials", GrantTypeTokenExchange},
		"subject_types_supported":                        []any{"public"},
		"id_token_signing_alg_values_supported":          []any{"RS256"},
		"code_challenge_methods_supported":               []any{"S256"},
		"token_endpoint_auth_methods_supported":          []any{"client_secret_basic", "client_secret_post"},
		"authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"request_uri_parameter_supported":                false,
	}
	got := make(map[string]any)
	for k := range want {
		got[k] = doc[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}
	if scopes, _ := doc["scopes_supported"].([]any); len(scopes) == 0 {
		t.Error("no scopes_supported")
	}
}

func TestJWKS(t *testing.T) {
	e := newEnv(t, nil)
	_, body := e.get(e.srv.Client(), e.p.Issuer()+"/jwks")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	pub, ok := k.Key.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 || k.KeyID == "" || k.Use != "sig" || k.Algorithm != "RS256" || !k.IsPublic() {
		t.Errorf("key %+v", k)
	}
	if got := e.p.KeySet().Keys[0]; got.KeyID != k.KeyID || !got.IsPublic() {
		t.Errorf("KeySet key %q public %t", got.KeyID, got.IsPublic())
	}
	if strings.Contains(body, `"d"`) {
		t.Error("JWKS leaks the private key")
	}
}

func TestSetDown(t *testing.T) {
	e := newEnv(t, nil)
	paths := []string{"/.well-known/openid-configuration", "/jwks", "/authorize", "/userinfo", "/end_session"}
	e.p.SetDown(true)
	for _, path := range paths {
		resp, _ := e.get(e.srv.Client(), e.p.Issuer()+path)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s while down: %d", path, resp.StatusCode)
		}
	}
	status, body := e.post("/token", url.Values{"grant_type": {"client_credentials"}}, apiID, apiSecret)
	wantError(t, status, body, http.StatusServiceUnavailable, "temporarily_unavailable")

	e.p.SetDown(false)
	resp, _ := e.get(e.srv.Client(), e.p.Issuer()+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("discovery after recovery: %d", resp.StatusCode)
	}
}

func TestEndSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	ap := e.authParams("openid")
	q := e.login(b, ap)
	_, tokens := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
	})
	hint := str(tokens["id_token"])

	for _, tc := range []struct {
		name   string
		params url.Values
	}{
		{"unregistered post_logout_redirect_uri", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://evil.test/"}}},
		{"redirect_uri is not a logout URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {redirectURI}}},
		{"no client", url.Values{"post_logout_redirect_uri": {postLogoutURI}}},
		{"bad hint", url.Values{"id_token_hint": {hint + "x"}}},
		{"access token as hint", url.Values{"id_token_hint": {str(tokens["access_token"])}}},
		{"client mismatch", url.Values{"id_token_hint": {hint}, "client_id": {apiID}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.get(b, e.p.Issuer()+"/end_session?"+tc.params.Encode())
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, Banner) {
				t.Errorf("got %d Location %q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	// The session survived the refused requests.
	silent := e.authParams("openid")
	silent.values.Set("prompt", "none")
	resp, _ := e.get(b, e.p.Issuer()+"/authorize?"+silent.values.Encode())
	if e.callback(resp, redirectURI).Get("code") == "" {
		t.Fatal("session ended by a refused logout")
	}

	// An expired hint still identifies the client.
	e.clock.Advance(time.Hour)
	resp, _ = e.get(b, e.p.Issuer()+"/end_session?"+url.Values{
		"id_token_hint": {hint}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"s1"},
	}.Encode())
	if got := e.callback(resp, postLogoutURI); !cmp.Equal(got, url.Values{"state": {"s1"}}) {
		t.Errorf("post-logout query %v", got)
	}
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || (c.Name == SessionCookieName && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("session cookie not cleared")
	}
	e.p.mu.Lock()
	n := len(e.p.sessions) + len(e.p.sids)
	e.p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d session entries left", n)
	}

	silent = e.authParams("openid")
	silent.values.Set("prompt", "none")
	resp, _ = e.get(b, e.p.Issuer()+"/authorize?"+silent.values.Encode())
	if got := e.callback(resp, redirectURI).Get("error"); got != "login_required" {
		t.Errorf("prompt=none after logout: error %q", got)
	}

	// Without parameters: a signed-out page.
	resp, body := e.get(b, e.p.Issuer()+"/end_session")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "signed out") {
		t.Errorf("plain logout: %d", resp.StatusCode)
	}
	if got := e.p.Stats().EndSessions; got != 2 {
		t.Errorf("EndSessions %d, want 2", got)
	}
}

func TestEndSessionByHint(t *testing.T) {
	e := newEnv(t, nil)
	tokens := e.codeTokens("openid")
	hint := str(tokens["id_token"])
	// Another browser, without the provider cookie, ends the hinted session.
	resp, _ := e.get(e.browser(), e.p.Issuer()+"/end_session?"+url.Values{"id_token_hint": {hint}}.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.p.mu.Lock()
	_, live := e.p.sids[str(claimsOf(t, hint)["sid"])]
	e.p.mu.Unlock()
	if live {
		t.Error("hinted session still live")
	}
}

func TestSignLogoutToken(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.p.SignLogoutToken(webID, "u-alice", "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Errorf("typ %v", typ)
	}
	keys := e.p.KeySet()
	payload, err := jws.Verify(keys.Keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"iss": e.p.Issuer(), "aud": webID, "sub": "u-alice", "sid": "sid-1",
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	} {
		if !cmp.Equal(claims[k], want) {
			t.Errorf("%s = %v, want %v", k, claims[k], want)
		}
	}
	for _, k := range []string{"iat", "exp", "jti"} {
		if claims[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	if _, ok := claims["nonce"]; ok {
		t.Error("logout token has a nonce")
	}

	for _, tc := range []struct{ client, sub, sid string }{
		{"nope", "u-alice", ""}, {webID, "", ""},
	} {
		if _, err := e.p.SignLogoutToken(tc.client, tc.sub, tc.sid); err == nil {
			t.Errorf("SignLogoutToken(%q, %q, %q): no error", tc.client, tc.sub, tc.sid)
		}
	}
}

func TestNewValidation(t *testing.T) {
	ok := Options{
		Issuer:  "http://127.0.0.1:9999",
		Clients: []Client{{ID: "web", Secret: "s", RedirectURIs: []string{"http://127.0.0.1:8080/cb"}}},
		Users:   []User{{Subject: "1", Username: "a", Password: "a"}},
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"trailing slash", func(o *Options) { o.Issuer += "/" }, "trailing slash"},
		{"relative issuer", func(o *Options) { o.Issuer = "/idp" }, "absolute"},
		{"duplicate client", func(o *Options) { o.Clients = append(o.Clients, o.Clients[0]) }, "duplicate ID"},
		{"no secret", func(o *Options) { o.Clients[0].Secret = "" }, "empty secret"},
		{"redirect fragment", func(o *Options) { o.Clients[0].RedirectURIs = []string{"http://x.test/cb#f"} }, "fragment"},
		{"duplicate user", func(o *Options) { o.Users = append(o.Users, User{Subject: "2", Username: "a"}) }, "duplicate username"},
		{"reserved claim", func(o *Options) { o.Users[0].Claims = map[string]any{"sub": "x"} }, `claim "sub"`},
		{"negative TTL", func(o *Options) { o.AccessTokenTTL = -time.Second }, "AccessTokenTTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			o.Clients = append([]Client(nil), ok.Clients...)
			o.Users = append([]User(nil), ok.Users...)
			tc.mutate(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestIssuerWithPath(t *testing.T) {
	p, err := New(Options{
		Issuer:  "http://127.0.0.1:9999/idp",
		Clients: []Client{{ID: "web", Secret: "s", RedirectURIs: []string{redirectURI}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/idp/.well-known/openid-configuration", 200},
		{"/idp/jwks", 200},
		{"/.well-known/openid-configuration", 404},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9999"+tc.path, nil)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, rec.Code, tc.want)
		}
	}
}
