package idp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestCodeFlowWithGoOIDC runs a relying party we did not write (go-oidc and
// x/oauth2) against the provider, for each client authentication method.
func TestCodeFlowWithGoOIDC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"client_secret_basic", oauth2.AuthStyleInHeader},
		{"client_secret_post", oauth2.AuthStyleInParams},
		{"auto-detect", oauth2.AuthStyleAutoDetect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := oidc.ClientContext(context.Background(), e.srv.Client())
			provider, err := oidc.NewProvider(ctx, e.p.Issuer())
			if err != nil {
				t.Fatalf("discovery: %v", err)
			}
			endpoint := provider.Endpoint()
			endpoint.AuthStyle = tc.style
			conf := oauth2.Config{
				ClientID:     webID,
				ClientSecret: webSecret,
				Endpoint:     endpoint,
				RedirectURL:  redirectURI,
				Scopes:       []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
			}
			verifier := oauth2.GenerateVerifier()
			state, nonce := "st-"+randomString(8), "n-"+randomString(8)
			authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

			b := e.browser()
			resp, page := e.get(b, authURL)
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, Banner) || !strings.Contains(page, `id="submit"`) {
				t.Fatalf("login page: %d\n%s", resp.StatusCode, page)
			}
			resp, _ = e.submitLogin(b, page, "alice", "alice-pw")
			q := e.callback(resp, redirectURI)
			if got := q.Get("state"); got != state {
				t.Errorf("state %q, want %q", got, state)
			}
			if got := q.Get("iss"); got != e.p.Issuer() {
				t.Errorf("iss %q, want %q", got, e.p.Issuer())
			}

			tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			idTok, err := provider.Verifier(&oidc.Config{ClientID: webID}).Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idTok.Nonce != nonce {
				t.Errorf("nonce %q, want %q", idTok.Nonce, nonce)
			}
			if err := idTok.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			var claims struct {
				Sub           string   `json:"sub"`
				Name          string   `json:"name"`
				Email         string   `json:"email"`
				EmailVerified bool     `json:"email_verified"`
				Role          string   `json:"role"`
				Groups        []string `json:"groups"`
				SID           string   `json:"sid"`
				AZP           string   `json:"azp"`
			}
			if err := idTok.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if claims.Sub != "u-alice" || claims.Name != "Alice Example" || claims.Email != "alice@example.test" ||
				!claims.EmailVerified || claims.Role != "admin" || !slices.Equal(claims.Groups, []string{"staff", "ops"}) ||
				claims.SID == "" || claims.AZP != webID {
				t.Errorf("ID token claims %+v", claims)
			}
			if tok.RefreshToken == "" || tok.TokenType != "Bearer" {
				t.Errorf("token response: refresh %t, type %q", tok.RefreshToken != "", tok.TokenType)
			}

			at, err := e.p.VerifyAccessToken(tok.AccessToken)
			if err != nil {
				t.Fatalf("VerifyAccessToken: %v", err)
			}
			for k, want := range map[string]any{
				"iss": e.p.Issuer(), "sub": "u-alice", "aud": webID, "client_id": webID,
				"scope": "openid profile email offline_access", "sid": claims.SID, "role": "admin",
			} {
				if got := at[k]; !cmp.Equal(got, want) {
					t.Errorf("access token %s = %v, want %v", k, got, want)
				}
			}

			info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			if info.Subject != "u-alice" || info.Email != "alice@example.test" {
				t.Errorf("userinfo %+v", info)
			}

			issued := e.p.IssuedTokens()
			for _, s := range []string{tok.AccessToken, tok.RefreshToken, rawID} {
				if !slices.Contains(issued, s) {
					t.Errorf("IssuedTokens misses a token")
				}
			}
			if got, want := e.p.Stats(), (Stats{Logins: 1, AuthCodeGrants: 1}); got != want {
				t.Errorf("stats %+v, want %+v", got, want)
			}

			// A refresh through x/oauth2 keeps the subject.
			ts := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
			fresh, err := ts.Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			rawID2, _ := fresh.Extra("id_token").(string)
			idTok2, err := provider.Verifier(&oidc.Config{ClientID: webID}).Verify(ctx, rawID2)
			if err != nil {
				t.Fatalf("verify refreshed ID token: %v", err)
			}
			if idTok2.Subject != "u-alice" || idTok2.Nonce != "" {
				t.Errorf("refreshed ID token sub %q nonce %q", idTok2.Subject, idTok2.Nonce)
			}
		})
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	_, page := e.get(b, e.p.Issuer()+"/authorize?"+e.authParams("openid").values.Encode())
	resp, _ := e.submitLogin(b, page, "alice", "alice-pw")
	var c *http.Cookie
	for _, rc := range resp.Cookies() {
		if rc.Name == "idp_session" {
			c = rc
		}
	}
	if c == nil {
		t.Fatalf("no idp_session cookie in %v", resp.Header["Set-Cookie"])
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.Domain != "" {
		t.Errorf("cookie %v", c)
	}
	for _, tok := range e.p.IssuedTokens() {
		if c.Value == tok {
			t.Error("cookie value is a token")
		}
	}
}

func TestLoginForm(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	ap := e.authParams("openid")
	ap.values.Set("login_hint", `<script>alert(1)</script>`)
	resp, page := e.get(b, e.p.Issuer()+"/authorize?"+ap.values.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		`<form method="post" action="/authorize">`, `id="username"`, `id="password"`, `id="submit"`,
		Banner, "alice / alice-pw", "&lt;script&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("login_hint not escaped")
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", got)
	}

	for _, tc := range []struct{ user, pass string }{
		{"alice", "wrong"}, {"nobody", "alice-pw"}, {"", ""},
	} {
		resp, again := e.submitLogin(b, page, tc.user, tc.pass)
		if resp.StatusCode != http.StatusOK || !strings.Contains(again, "Wrong username or password") {
			t.Errorf("%q/%q: got %d, want the form with an error", tc.user, tc.pass, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("%q/%q: redirected to %q", tc.user, tc.pass, loc)
		}
	}
	// The same request still works with the right password, once.
	resp, _ = e.submitLogin(b, page, "alice", "alice-pw")
	e.callback(resp, redirectURI)
	resp, again := e.submitLogin(b, page, "alice", "alice-pw")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(again, "expired") {
		t.Errorf("replayed form: %d", resp.StatusCode)
	}
	if got := e.p.Stats().Logins; got != 1 {
		t.Errorf("logins %d, want 1", got)
	}
}

func TestLoginFormCrossOrigin(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	_, page := e.get(b, e.p.Issuer()+"/authorize?"+e.authParams("openid").values.Encode())
	handle := requestHandle.FindStringSubmatch(page)[1]
	req, _ := http.NewRequest(http.MethodPost, e.p.Issuer()+"/authorize",
		strings.NewReader(url.Values{"request": {handle}, "username": {"alice"}, "password": {"alice-pw"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login post: %d, want 403", resp.StatusCode)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name      string
		mutate    func(url.Values)
		wantError string // "" means a 400 page and no redirect
	}{
		{"unregistered redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://evil.test/callback") }, ""},
		{"redirect_uri prefix", func(v url.Values) { v.Set("redirect_uri", redirectURI+"/x") }, ""},
		{"missing redirect_uri", func(v url.Values) { v.Del("redirect_uri") }, ""},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nope") }, ""},
		{"two client_ids", func(v url.Values) { v.Add("client_id", apiID) }, ""},
		{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"short challenge", func(v url.Values) { v.Set("code_challenge", "abc") }, "invalid_request"},
		{"no openid", func(v url.Values) { v.Set("scope", "profile") }, "invalid_scope"},
		{"implicit", func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		{"no nonce", func(v url.Values) { v.Del("nonce") }, "invalid_request"},
		{"no state", func(v url.Values) { v.Del("state") }, "invalid_request"},
		{"duplicate scope", func(v url.Values) { v.Add("scope", "openid") }, "invalid_request"},
		{"bad prompt", func(v url.Values) { v.Set("prompt", "none login") }, "invalid_request"},
		{"bad resource", func(v url.Values) { v.Set("resource", "not-absolute") }, "invalid_target"},
		{"form_post", func(v url.Values) { v.Set("response_mode", "form_post") }, "invalid_request"},
		{"prompt none without session", func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := e.authParams("openid")
			tc.mutate(ap.values)
			resp, body := e.get(e.browser(), e.p.Issuer()+"/authorize?"+ap.values.Encode())
			if tc.wantError == "" {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("got %d Location %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				if !strings.Contains(body, Banner) {
					t.Errorf("error page lacks the banner")
				}
				return
			}
			q := e.callback(resp, redirectURI)
			want := url.Values{"error": {tc.wantError}, "state": ap.values["state"], "iss": {e.p.Issuer()}}
			q.Del("error_description")
			if tc.name == "no state" {
				delete(want, "state")
			}
			if diff := cmp.Diff(want, q); diff != "" {
				t.Errorf("error redirect (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrompt(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	e.login(b, e.authParams("openid"))

	for _, tc := range []struct {
		name     string
		params   url.Values
		wantForm bool
	}{
		{"session reused", url.Values{}, false},
		{"prompt none", url.Values{"prompt": {"none"}}, false},
		{"prompt login", url.Values{"prompt": {"login"}}, true},
		{"max_age 0", url.Values{"max_age": {"0"}}, true},
		{"max_age large", url.Values{"max_age": {"3600"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := e.authParams("openid")
			for k, v := range tc.params {
				ap.values[k] = v
			}
			resp, page := e.get(b, e.p.Issuer()+"/authorize?"+ap.values.Encode())
			if tc.wantForm {
				if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="password"`) {
					t.Fatalf("got %d, want the login form", resp.StatusCode)
				}
				return
			}
			q := e.callback(resp, redirectURI)
			if q.Get("code") == "" || q.Get("state") != ap.values.Get("state") {
				t.Fatalf("callback %v", q)
			}
			status, body := e.token(url.Values{
				"grant_type": {"authorization_code"}, "code": {q.Get("code")},
				"redirect_uri": {redirectURI}, "code_verifier": {ap.verifier},
			})
			if status != http.StatusOK {
				t.Fatalf("code grant: %d %v", status, body)
			}
			if got := claimsOf(t, str(body["id_token"]))["nonce"]; got != ap.values.Get("nonce") {
				t.Errorf("nonce %v", got)
			}
		})
	}
	if got := e.p.Stats().Logins; got != 1 {
		t.Errorf("logins %d, want 1", got)
	}
}

func TestScopeFiltering(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		scope       string
		want, never []string
	}{
		{"openid", []string{"role", "groups", "sid", "auth_time", "nonce"}, []string{"name", "email", "email_verified", "preferred_username"}},
		{"openid profile", []string{"name", "preferred_username", "role"}, []string{"email"}},
		{"openid email", []string{"email", "email_verified", "role"}, []string{"name"}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			body := e.codeTokens(tc.scope)
			claims := claimsOf(t, str(body["id_token"]))
			for _, k := range tc.want {
				if _, ok := claims[k]; !ok {
					t.Errorf("ID token lacks %q: %v", k, claims)
				}
			}
			for _, k := range tc.never {
				if _, ok := claims[k]; ok {
					t.Errorf("ID token has %q", k)
				}
			}
			if _, ok := body["refresh_token"]; ok {
				t.Error("refresh token without offline_access")
			}
			if got := body["scope"]; got != tc.scope {
				t.Errorf("scope %v, want %q", got, tc.scope)
			}
		})
	}
}
