package zitadelop_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/cloakroom/cloakroom/internal/oidctest/zitadelop"
)

var scopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}

// discovery holds the discovery fields go-oidc does not expose directly.
type discovery struct {
	Issuer                     string   `json:"issuer"`
	RevocationEndpoint         string   `json:"revocation_endpoint"`
	EndSessionEndpoint         string   `json:"end_session_endpoint"`
	UserinfoEndpoint           string   `json:"userinfo_endpoint"`
	CodeChallengeMethods       []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	GrantTypes                 []string `json:"grant_types_supported"`
	ScopesSupported            []string `json:"scopes_supported"`
	AuthorizationResponseIssID bool     `json:"authorization_response_iss_parameter_supported"`
}

type rp struct {
	p        *zitadelop.Provider
	provider *oidc.Provider
	disc     discovery
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newRP(t *testing.T, opts ...zitadelop.Option) *rp {
	t.Helper()
	// The relying party listens first; its URL decides the redirect URIs.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("relying party unexpectedly received %s %s", r.Method, r.URL)
	}))
	t.Cleanup(srv.Close)

	p := zitadelop.Start(t, srv.URL+"/callback", srv.URL+"/logged-out", opts...)
	if !strings.HasPrefix(p.Issuer, "http://127.0.0.1:") || strings.HasSuffix(p.Issuer, "/") {
		t.Fatalf("Issuer = %q, want http://127.0.0.1:PORT", p.Issuer)
	}

	// go-oidc rejects a discovery document whose issuer differs from the
	// one requested, so this also checks the exact issuer.
	provider, err := oidc.NewProvider(t.Context(), p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	r := &rp{p: p, provider: provider}
	if err := provider.Claims(&r.disc); err != nil {
		t.Fatalf("discovery claims: %v", err)
	}
	ep := provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic
	r.cfg = oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Endpoint:     ep,
		RedirectURL:  p.RedirectURI,
		Scopes:       scopes,
	}
	r.verifier = provider.Verifier(&oidc.Config{ClientID: p.ClientID})
	return r
}

func randString(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

type loginResult struct {
	callback *url.URL
	token    *oauth2.Token
	rawID    string
	idToken  *oidc.IDToken
}

// login runs a full authorization code flow with PKCE, state and nonce.
func (r *rp) login(t *testing.T) loginResult {
	t.Helper()
	ctx := t.Context()
	state, nonce, verifier := randString(t), randString(t), oauth2.GenerateVerifier()
	authURL := r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	cb, err := r.p.Login(ctx, browser(t), authURL)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != r.p.RedirectURI {
		t.Fatalf("callback = %s, want redirect URI %s", cb, r.p.RedirectURI)
	}
	q := cb.Query()
	if q.Get("code") == "" {
		t.Fatalf("callback without code: %s", cb)
	}
	if q.Get("state") != state {
		t.Fatalf("callback state = %q, want %q", q.Get("state"), state)
	}
	if iss := q.Get("iss"); iss != "" && iss != r.p.Issuer {
		t.Fatalf("callback iss = %q, want %q", iss, r.p.Issuer)
	}

	tok, err := r.cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		t.Fatal("token response without id_token")
	}
	idt, err := r.verifier.Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("verifying ID token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("ID token nonce = %q, want %q", idt.Nonce, nonce)
	}
	if idt.Subject != r.p.Subject {
		t.Fatalf("ID token sub = %q, want %q", idt.Subject, r.p.Subject)
	}
	if idt.Issuer != r.p.Issuer {
		t.Fatalf("ID token iss = %q, want %q", idt.Issuer, r.p.Issuer)
	}
	return loginResult{callback: cb, token: tok, rawID: rawID, idToken: idt}
}

func (r *rp) revoke(t *testing.T, token, hint string) *http.Response {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.disc.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(r.p.ClientID), url.QueryEscape(r.p.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("revocation request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func noRedirect() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	r := newRP(t)
	d := r.disc
	if d.Issuer != r.p.Issuer {
		t.Errorf("issuer = %q, want %q", d.Issuer, r.p.Issuer)
	}
	for name, got := range map[string][2]string{
		"end_session_endpoint": {d.EndSessionEndpoint, r.p.EndSessionEndpoint},
		"revocation_endpoint":  {d.RevocationEndpoint, r.p.RevocationEndpoint},
		"userinfo_endpoint":    {d.UserinfoEndpoint, r.p.UserinfoEndpoint},
	} {
		if got[0] == "" || got[0] != got[1] {
			t.Errorf("%s = %q, Provider says %q", name, got[0], got[1])
		}
	}
	if ep := r.provider.Endpoint(); ep.AuthURL != r.p.AuthorizationEndpoint || ep.TokenURL != r.p.TokenEndpoint {
		t.Errorf("endpoints = %+v, Provider says %q, %q", ep, r.p.AuthorizationEndpoint, r.p.TokenEndpoint)
	}
	if !slices.Contains(d.CodeChallengeMethods, "S256") {
		t.Errorf("code_challenge_methods_supported = %v, want S256", d.CodeChallengeMethods)
	}
	if !slices.Contains(d.TokenEndpointAuthMethods, "client_secret_basic") {
		t.Errorf("token_endpoint_auth_methods_supported = %v", d.TokenEndpointAuthMethods)
	}
	if !slices.Contains(d.GrantTypes, "refresh_token") {
		t.Errorf("grant_types_supported = %v", d.GrantTypes)
	}
	for _, s := range scopes {
		if !slices.Contains(d.ScopesSupported, s) {
			t.Errorf("scopes_supported = %v, missing %s", d.ScopesSupported, s)
		}
	}
	t.Logf("authorization_response_iss_parameter_supported = %v", d.AuthorizationResponseIssID)
}

func TestCodeFlowRefreshRevoke(t *testing.T) {
	t.Parallel()
	r := newRP(t)
	ctx := t.Context()

	res := r.login(t)
	t.Logf("callback query keys: %v", slices.Sorted(func(yield func(string) bool) {
		for k := range res.callback.Query() {
			if !yield(k) {
				return
			}
		}
	}))
	var claims map[string]any
	if err := res.idToken.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	t.Logf("ID token claims: %v", claims)
	if _, ok := claims["email"]; ok {
		t.Errorf("email unexpectedly in ID token without WithUserinfoClaimsInIDToken")
	}

	ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(res.token))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != r.p.Subject || ui.Email != r.p.Email || !ui.EmailVerified {
		t.Errorf("userinfo = %+v, want sub %q email %q", ui, r.p.Subject, r.p.Email)
	}
	var uiClaims struct {
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := ui.Claims(&uiClaims); err != nil {
		t.Fatal(err)
	}
	if uiClaims.Name != r.p.Name || uiClaims.PreferredUsername != r.p.PreferredUsername {
		t.Errorf("userinfo claims = %+v, want name %q preferred_username %q", uiClaims, r.p.Name, r.p.PreferredUsername)
	}

	if res.token.RefreshToken == "" {
		t.Fatal("no refresh token despite offline_access")
	}
	if got := r.p.TokenRequests(); got != 1 {
		t.Errorf("TokenRequests = %d after code exchange, want 1", got)
	}

	// Refresh (the provider rotates refresh tokens).
	refreshed, err := r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: res.token.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if refreshed.AccessToken == "" || refreshed.AccessToken == res.token.AccessToken {
		t.Errorf("refresh returned access token %q (old %q)", refreshed.AccessToken, res.token.AccessToken)
	}
	if refreshed.RefreshToken == "" || refreshed.RefreshToken == res.token.RefreshToken {
		t.Errorf("refresh token not rotated: %q", refreshed.RefreshToken)
	}
	if rawID, _ := refreshed.Extra("id_token").(string); rawID != "" {
		idt, err := r.verifier.Verify(ctx, rawID)
		if err != nil {
			t.Errorf("verifying refreshed ID token: %v", err)
		} else if idt.Subject != r.p.Subject {
			t.Errorf("refreshed ID token sub = %q", idt.Subject)
		}
		t.Logf("refresh response has an id_token (nonce %q)", idt.Nonce)
	} else {
		t.Logf("refresh response has no id_token")
	}
	if got := r.p.RefreshRequests(); got != 1 {
		t.Errorf("RefreshRequests = %d, want 1", got)
	}
	// The rotated-out token is dead.
	if _, err := r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: res.token.RefreshToken}).Token(); err == nil {
		t.Error("old refresh token still usable after rotation")
	}

	// Revoke the current refresh token.
	before := r.p.Revocations()
	if resp := r.revoke(t, refreshed.RefreshToken, "refresh_token"); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation status = %s", resp.Status)
	}
	if got := r.p.Revocations(); got != before+1 {
		t.Errorf("Revocations = %d, want %d", got, before+1)
	}
	if got := r.p.RevokedTokens(); len(got) != 1 || got[0] != refreshed.RefreshToken {
		t.Errorf("RevokedTokens = %q", got)
	}
	_, err = r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after revocation: err = %v, want invalid_grant", err)
	}
	// Revoking an unknown token is not an error (RFC 7009).
	if resp := r.revoke(t, "no-such-token", "refresh_token"); resp.StatusCode != http.StatusOK {
		t.Errorf("revoking unknown token: %s", resp.Status)
	}
	if got := r.p.Revocations(); got != before+2 {
		t.Errorf("Revocations = %d, want %d", got, before+2)
	}
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	r := newRP(t)
	res := r.login(t)

	endSession := func(params url.Values) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.disc.EndSessionEndpoint+"?"+params.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}

	// Unregistered post_logout_redirect_uri is rejected.
	resp := endSession(url.Values{
		"id_token_hint":            {res.rawID},
		"post_logout_redirect_uri": {"http://127.0.0.1:1/elsewhere"},
	})
	if resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), "http://127.0.0.1:1/") {
		t.Fatalf("end_session redirected to an unregistered URI")
	}
	t.Logf("unregistered post_logout_redirect_uri: %s", resp.Status)

	resp = endSession(url.Values{
		"id_token_hint":            {res.rawID},
		"post_logout_redirect_uri": {r.p.PostLogoutRedirectURI},
		"state":                    {"st"},
	})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("end_session status = %s", resp.Status)
	}
	if got, want := resp.Header.Get("Location"), r.p.PostLogoutRedirectURI+"?state=st"; got != want {
		t.Errorf("end_session Location = %q, want %q", got, want)
	}
	if got := r.p.EndSessions(); got != 2 {
		t.Errorf("EndSessions = %d, want 2", got)
	}
	// The example storage drops the user's tokens for this client on logout.
	if _, err := r.cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: res.token.RefreshToken}).Token(); err == nil {
		t.Error("refresh token still usable after end_session")
	}

	// Without post_logout_redirect_uri the provider's own page is used.
	resp = endSession(url.Values{"id_token_hint": {res.rawID}})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/logged-out" {
		t.Errorf("end_session without redirect: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	r := newRP(t)
	ctx := t.Context()
	authURL := func(opts ...oauth2.AuthCodeOption) string {
		return r.cfg.AuthCodeURL("s", append(opts, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))...)
	}

	_, err := r.p.LoginAs(ctx, browser(t), authURL(), r.p.Username, "wrong")
	if err == nil || !strings.Contains(err.Error(), "login rejected") {
		t.Errorf("wrong password: err = %v", err)
	}

	// The provider keeps no login session, so prompt=none always fails.
	cb, err := r.p.Login(ctx, browser(t), authURL(oauth2.SetAuthURLParam("prompt", "none")))
	var ae *zitadelop.AuthError
	if !errors.As(err, &ae) || ae.Code != "login_required" || cb == nil || cb.Query().Get("state") != "s" {
		t.Errorf("prompt=none: cb = %v, err = %v", cb, err)
	}

	// An unregistered redirect URI is refused by the provider itself.
	bad := r.cfg
	bad.RedirectURL = r.p.RedirectURI + "/other"
	if _, err := r.p.Login(ctx, browser(t), bad.AuthCodeURL("s")); err == nil {
		t.Error("unregistered redirect_uri: no error")
	}
}

func TestUserinfoClaimsInIDToken(t *testing.T) {
	t.Parallel()
	r := newRP(t, zitadelop.WithUserinfoClaimsInIDToken())
	res := r.login(t)
	var claims struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := res.idToken.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.Email != r.p.Email || !claims.EmailVerified || claims.Name != r.p.Name {
		t.Errorf("ID token claims = %+v, want email %q name %q", claims, r.p.Email, r.p.Name)
	}
}
