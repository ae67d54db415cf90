package oidc_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/hostile"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
)

// RefreshWithProof against oidc-provider with DPoP nonces required and a
// client registered with dpop_bound_access_tokens: a user signed in with
// the gateway's key; a proof made by another key (the SPA's) without the
// nonce is refused use_dpop_nonce, with the nonce, and the refresh token
// is not spent; with the nonce the access token is bound to the SPA's key
// and the refresh token rotates; the rotated one then serves the gateway's
// own refresh, bound to the gateway's key. A token bound to another key
// than the caller verified is refused.
func TestRefreshWithProofAgainstOIDCProvider(t *testing.T) {
	const (
		resource = "https://api.example.test"
		redirect = "https://app.example.test/bff/callback"
	)
	p := nodeop.Start(t, nodeop.Options{
		DPoP: true, DPoPNonce: true, Resource: resource, ResourceScope: "api",
		Clients: []nodeop.Client{{
			ClientID: "web", ClientSecret: "web-secret-0123456789-0123456789",
			RedirectURIs: []string{redirect}, DPoPBoundAccessTokens: true,
		}},
	})
	c := oidc.New(oidc.Options{
		Issuer: p.Issuer, ClientID: "web", ClientSecret: "web-secret-0123456789-0123456789",
		RedirectURL: redirect, Scopes: []string{"openid", "offline_access", "api"},
		HTTPClient: p.CA.HTTPClient(t), TokenType: oidc.DPoPScheme,
	})
	ctx := t.Context()
	if err := c.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	gateway, spa, other := newDPoPKey(t), newDPoPKey(t), newDPoPKey(t)
	gctx := oidc.WithDPoPKey(ctx, gateway)
	a := oidc.AuthRequest{State: "state-0123456789abcdef", Nonce: "nonce-0123456789", Verifier: "verifier-0123456789-0123456789-0123456789-abc", DPoPJKT: gateway.JKT()}
	authURL, err := c.AuthCodeURL(gctx, a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := p.Login(ctx, p.Browser(t), authURL)
	if err != nil {
		t.Fatal(err)
	}
	login, err := c.Exchange(gctx, cb.Query().Get("code"), a.Verifier, a.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	htu, err := c.TokenURL()
	if err != nil || htu != p.TokenEndpoint {
		t.Fatalf("TokenURL: got %q, %v, want %q", htu, err, p.TokenEndpoint)
	}
	nonce := c.DPoPNonce()
	if nonce == "" {
		t.Fatal("no provider nonce kept after the login")
	}
	params := oidc.TokenParams{Resource: resource, Scopes: []string{"api"}}

	// Without the nonce: refused, the nonce handed back, nothing spent.
	proof, err := spa.Proof(http.MethodPost, htu, "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := c.RefreshWithProof(ctx, login.RefreshToken, login.Subject, params, proof, spa.JKT())
	var g *oidc.GrantError
	if !errors.As(err, &g) || g.Code != oidc.ErrorUseDPoPNonce || !oidc.IsProofRefusal(err) || got == "" {
		t.Fatalf("without a nonce: got %v, nonce %q, want use_dpop_nonce with a nonce", err, got)
	}
	if oidc.IsDeadGrant(err) && !oidc.IsProofRefusal(err) {
		t.Fatal("a proof refusal taken for a dead grant")
	}

	// With it: a token bound to the SPA's key, the refresh token rotated.
	proof, err = spa.Proof(http.MethodPost, htu, "", got, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mediated, _, err := c.RefreshWithProof(ctx, login.RefreshToken, login.Subject, params, proof, spa.JKT())
	if err != nil {
		t.Fatalf("with the nonce: %v", err)
	}
	if jkt := tokenJKT(t, mediated.AccessToken); jkt != spa.JKT() {
		t.Errorf("mediated token cnf.jkt: got %q, want the SPA key's %q", jkt, spa.JKT())
	}
	if mediated.RefreshToken == "" || mediated.RefreshToken == login.RefreshToken {
		t.Error("the refresh token was not rotated")
	}

	// The rotated refresh token serves the gateway's own refresh.
	own, err := c.Refresh(gctx, mediated.RefreshToken, login.Subject, oidc.TokenParams{})
	if err != nil {
		t.Fatalf("the gateway's refresh after mediation: %v", err)
	}
	if jkt := tokenJKT(t, own.AccessToken); jkt != gateway.JKT() {
		t.Errorf("the gateway's token cnf.jkt: got %q, want its own key's %q", jkt, gateway.JKT())
	}

	// The jkt the caller verified must be the one the token is bound to.
	proof, err = spa.Proof(http.MethodPost, htu, "", c.DPoPNonce(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.RefreshWithProof(ctx, own.RefreshToken, login.Subject, params, proof, other.JKT())
	if !errors.Is(err, oidc.ErrUntrusted) {
		t.Errorf("a token bound to another key than the one verified: got %v, want ErrUntrusted", err)
	}

	// A client that does not expect DPoP-bound tokens mediates none.
	bearer := oidc.New(oidc.Options{Issuer: p.Issuer, ClientID: "web", ClientSecret: "x", HTTPClient: p.CA.HTTPClient(t)})
	if _, _, err := bearer.RefreshWithProof(ctx, "rt", "sub", params, proof, spa.JKT()); err == nil {
		t.Error("a bearer client refreshed with a proof")
	}
}

// With Options.UserInfo, a mediated refresh that brings a new ID token
// makes no userinfo call (its access token is bound to the SPA's key, so
// the call could only fail) and logs no warning: the answer says
// UserInfoMissed, so the session keeps its userinfo claims. The proof
// goes in the token request's DPoP header as it came.
func TestRefreshWithProofSkipsUserInfo(t *testing.T) {
	p := hostile.New(t)
	var (
		mu     sync.Mutex
		proofs []string
	)
	p.Refresh = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proofs = append(proofs, r.Header.Get(oidc.HeaderDPoP))
		mu.Unlock()
		resp := p.TokenResponse(p.Mint(t, hostile.Token{Claims: p.IDClaimsFor(r.PostForm)}))
		resp["token_type"] = oidc.DPoPScheme
		hostile.Status(http.StatusOK, resp)(w, r)
	}
	var logs lockedBuffer
	c := discovered(t, p, withUserInfo, withLog(&logs), func(o *oidc.Options) { o.TokenType = oidc.DPoPScheme })
	const proof = "the-spa-proof"
	got, _, err := c.RefreshWithProof(t.Context(), "rt-mediated", hostile.DefaultSubject, oidc.TokenParams{}, proof, "the-spa-jkt")
	if err != nil {
		t.Fatalf("RefreshWithProof: %v", err)
	}
	if got.IDToken == "" || !got.UserInfoMissed {
		t.Errorf("ID token %t, UserInfoMissed %t, want a new ID token and UserInfoMissed", got.IDToken != "", got.UserInfoMissed)
	}
	if n := p.Hits(hostile.PathUserInfo); n != 0 {
		t.Errorf("userinfo called %d times, want 0", n)
	}
	if strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("a warning was logged:\n%s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(proofs, []string{proof}) {
		t.Errorf("DPoP headers of the token requests: got %q, want %q", proofs, []string{proof})
	}
}
