package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// mediateResource is the API's resource indicator (RFC 8707): nodeop
// issues its access tokens as JWTs for it, with cnf.jkt when bound.
const mediateResource = "https://orders.example.test"

// mediatedAPI is an upstream that accepts only DPoP-bound access tokens of
// the provider and checks their proofs completely: the token's signature
// (the provider's JWKS), iss, aud and exp; the proof's signature, typ,
// htm, htu, iat, ath and jti (no replay); and that the token's cnf.jkt is
// the proof key's thumbprint. It answers CORS for one page origin, which
// calls it directly in the token-mediating mode.
type mediatedAPI struct {
	*httptest.Server
	issuer string
	keys   jose.JSONWebKeySet
	origin string // the page origin CORS admits; "" none

	mu      sync.Mutex
	jtis    map[string]bool
	accepts []acceptedToken // each token accepted, in order
}

// acceptedToken is a token the API accepted: the key it is bound to, its jti.
type acceptedToken struct{ JKT, JTI string }

func newMediatedAPI(t *testing.T, p *nodeop.Provider, pageOrigin string) *mediatedAPI {
	t.Helper()
	resp, err := p.CA.HTTPClient(t).Get(p.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := &mediatedAPI{issuer: p.Issuer, origin: pageOrigin, jtis: map[string]bool{}}
	if err := json.NewDecoder(resp.Body).Decode(&a.keys); err != nil {
		t.Fatal(err)
	}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *mediatedAPI) serve(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && o == a.origin {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Vary", "Origin")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET")
			w.Header().Set("Access-Control-Allow-Headers", "authorization, dpop")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	sub, jkt, reason := a.check(r)
	if reason != "" {
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
		http.Error(w, reason, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"sub": sub, "jkt": jkt})
}

// check returns the token's subject and key thumbprint, or why it refuses.
func (a *mediatedAPI) check(r *http.Request) (sub, jkt, reason string) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, oidc.DPoPScheme) || tok == "" {
		return "", "", "not a DPoP token"
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil || len(parsed.Headers) != 1 {
		return "", "", "token is not a JWT"
	}
	keys := a.keys.Key(parsed.Headers[0].KeyID)
	if len(keys) == 0 {
		return "", "", "unknown key"
	}
	var std jwt.Claims // ID is the token's jti
	var extra struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := parsed.Claims(keys[0].Key, &std, &extra); err != nil {
		return "", "", "bad token signature"
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: a.issuer, AnyAudience: jwt.Audience{mediateResource}, Time: time.Now()}, 5*time.Second); err != nil {
		return "", "", "token claims: " + err.Error()
	}
	proof, err := oidc.VerifyDPoPProof(r.Header.Get(oidc.HeaderDPoP), r.Method, "http://"+r.Host+r.URL.Path, oidc.DPoPCheck{AccessToken: tok})
	if err != nil {
		return "", "", "proof: " + err.Error()
	}
	if extra.Cnf.JKT == "" || extra.Cnf.JKT != proof.JKT {
		return "", "", "the proof's key is not the token's"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jtis[proof.JKT+" "+proof.ID] {
		return "", "", "proof replayed"
	}
	a.jtis[proof.JKT+" "+proof.ID] = true
	a.accepts = append(a.accepts, acceptedToken{JKT: proof.JKT, JTI: std.ID})
	return std.Subject, proof.JKT, ""
}

func (a *mediatedAPI) accepted() []acceptedToken {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.accepts)
}

// mediateEnv is a gateway with oidc.dpop in front of nodeop (DPoP with
// nonces required, the client registered with dpop_bound_access_tokens,
// short-lived access tokens), a mediated route /api/orders/ to a mediatedAPI
// and a plain route /api/plain/ to the same API. frontendDir, when not
// empty, is served as the SPA.
type mediateEnv struct {
	p   *nodeop.Provider
	g   *gateway
	api *mediatedAPI
}

func newMediateEnv(t *testing.T, frontendDir string) *mediateEnv {
	t.Helper()
	ln, public := listenLocal(t)
	const secret = "mediate-secret-0123456789-0123456789"
	p := nodeop.Start(t, nodeop.Options{
		DPoP: true, DPoPNonce: true, Resource: mediateResource, ResourceScope: "orders",
		AccessTokenTTL: 4 * time.Second,
		Clients: []nodeop.Client{{
			ClientID: "web", ClientSecret: secret, DPoPBoundAccessTokens: true,
			RedirectURIs: []string{public + "/bff/callback"}, PostLogoutRedirectURIs: []string{public + "/"},
		}},
	})
	api := newMediatedAPI(t, p, public)
	cfg := baseConfig(public, p.Issuer, "web", secret)
	cfg.OIDC.DPoP = true
	cfg.OIDC.Scopes = []string{"openid", "offline_access", "profile", "orders"}
	cfg.Frontend.Dir = frontendDir
	cfg.APIs = []config.API{
		{Path: "/api/orders/", Upstream: api.URL + "/", Token: config.TokenUser, Mediate: true, Resource: mediateResource, Scopes: []string{"orders"}, Timeout: 10 * time.Second},
		{Path: "/api/plain/", Upstream: api.URL + "/", Token: config.TokenUser, Timeout: 10 * time.Second},
	}
	if probs := cfg.Validate(); len(probs) != 0 {
		t.Fatalf("config: %v", probs)
	}
	g := startGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
	return &mediateEnv{p: p, g: g, api: api}
}

// TestMediatedToken: POST /bff/token hands a signed-in SPA an access token
// bound to its own key, which the API accepts with that key's proofs and
// refuses with another's; the session keeps working (its own DPoP-bound
// token, refreshed with the refresh token the mediation rotated).
func TestMediatedToken(t *testing.T) {
	e := newMediateEnv(t, "")
	b := newBrowser(t)
	login := func(auth *url.URL) *url.URL {
		cb, err := e.p.Login(t.Context(), e.p.Browser(t), auth.String())
		if err != nil {
			t.Fatal(err)
		}
		return cb
	}
	target := e.g.URL + "/bff/token?api=" + url.QueryEscape("/api/orders/")

	// Before signing in: 401, empty.
	if r := b.get(target, "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
		t.Errorf("signed out: got %d %q, want 401 empty", r.StatusCode, r.Body)
	}
	signIn(t, e.g, b, login)
	if r := b.get(e.g.URL+"/api/plain/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("proxied call after sign-in: %d %s", r.StatusCode, r.Body)
	}
	first := e.api.accepted()[0]

	for _, tt := range []struct {
		name, url string
		hdr       []string
		want      int
	}{
		{"no CSRF header", target, nil, http.StatusUnauthorized},
		{"no api", e.g.URL + "/bff/token", []string{"X-CSRF", "1"}, http.StatusBadRequest},
		{"two apis", target + "&api=/api/plain/", []string{"X-CSRF", "1"}, http.StatusBadRequest},
		{"unknown api", e.g.URL + "/bff/token?api=/api/nothing/", []string{"X-CSRF", "1"}, http.StatusNotFound},
		{"route without mediate", e.g.URL + "/bff/token?api=/api/plain/", []string{"X-CSRF", "1"}, http.StatusForbidden},
	} {
		r := b.get(tt.url, tt.hdr...)
		if r.StatusCode != tt.want {
			t.Errorf("GET %s: got %d %s, want %d", tt.name, r.StatusCode, r.Body, tt.want)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", tt.name, cc)
		}
	}

	var what struct{ HTU, HTM, Nonce string }
	r := b.get(target, "X-CSRF", "1")
	if r.StatusCode != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /bff/token: %d %v %s", r.StatusCode, r.Header, r.Body)
	}
	if err := json.Unmarshal([]byte(r.Body), &what); err != nil {
		t.Fatal(err)
	}
	if what.HTU != e.p.TokenEndpoint || what.HTM != http.MethodPost || what.Nonce == "" {
		t.Fatalf("GET /bff/token: got %+v, want htu %q, POST and the provider's nonce", what, e.p.TokenEndpoint)
	}

	spa, other := newKey(t), newKey(t)
	post := func(proofs ...string) response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-CSRF", "1")
		for _, p := range proofs {
			req.Header.Add(oidc.HeaderDPoP, p)
		}
		return b.do(req)
	}
	proof := func(k *oidc.DPoPKey, htu, nonce string) string {
		t.Helper()
		p, err := k.Proof(http.MethodPost, htu, "", nonce, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	errorCode := func(r response) string {
		var p struct{ Error string }
		_ = json.Unmarshal([]byte(r.Body), &p)
		return p.Error
	}

	// Refused before the provider: no proof, two, a proof for another URL.
	for name, proofs := range map[string][]string{
		"no proof":    nil,
		"two proofs":  {proof(spa, what.HTU, what.Nonce), proof(spa, what.HTU, what.Nonce)},
		"other htu":   {proof(spa, e.g.URL+"/bff/token", what.Nonce)},
		"not a proof": {"not-a-proof"},
	} {
		r := post(proofs...)
		if r.StatusCode != http.StatusBadRequest || errorCode(r) != oidc.ErrorInvalidDPoPProof || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST with %s: got %d %s, want 400 invalid_dpop_proof problem", name, r.StatusCode, r.Body)
		}
	}

	// The provider's nonce is relayed when the proof lacks it.
	r = post(proof(spa, what.HTU, ""))
	nonce := r.Header.Get(oidc.HeaderDPoPNonce)
	if r.StatusCode != http.StatusBadRequest || errorCode(r) != oidc.ErrorUseDPoPNonce || nonce == "" {
		t.Fatalf("POST without the nonce: got %d %v %s, want 400 use_dpop_nonce with DPoP-Nonce", r.StatusCode, r.Header, r.Body)
	}

	mediate := func() (token string, body map[string]any) {
		t.Helper()
		p := proof(spa, what.HTU, nonce)
		r := post(p)
		if r.StatusCode != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("POST /bff/token: %d %s", r.StatusCode, r.Body)
		}
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range body {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"access_token", "api", "expires_in", "token_type"}) {
			t.Errorf("POST /bff/token answered members %v, want access_token, api, expires_in, token_type only", keys)
		}
		if body["token_type"] != "DPoP" || body["api"] != "/api/orders/" || body["expires_in"].(float64) <= 0 {
			t.Errorf("POST /bff/token: %v", body)
		}
		// The same proof again is refused here.
		if r := post(p); r.StatusCode != http.StatusBadRequest || errorCode(r) != oidc.ErrorInvalidDPoPProof {
			t.Errorf("a replayed proof: got %d %s, want 400 invalid_dpop_proof", r.StatusCode, r.Body)
		}
		return body["access_token"].(string), body
	}
	token, _ := mediate()

	// The SPA calls the API itself: with its key's proof, 200; with
	// another key's, 401.
	call := func(k *oidc.DPoPKey, token string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.api.URL+"/orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := k.Proof(http.MethodGet, req.URL.String(), token, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set(oidc.HeaderDPoP, p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(spa, token); got != http.StatusOK {
		t.Errorf("the API with the SPA's proof: got %d, want 200", got)
	}
	if got := call(other, token); got != http.StatusUnauthorized {
		t.Errorf("the API with another key's proof: got %d, want 401", got)
	}
	if got := e.api.accepted(); got[len(got)-1].JKT != spa.JKT() || got[len(got)-1].JKT == first.JKT {
		t.Errorf("the API accepted a token bound to %q, want the SPA's key %q", got[len(got)-1].JKT, spa.JKT())
	}

	// A second mediation spends the refresh token the first one rotated
	// (a spent one would end the session at the provider).
	if second, _ := mediate(); second == token {
		t.Error("the second mediation answered the first token")
	}

	// The session keeps working: its own token, bound to the gateway's
	// key, is refreshed (the access tokens live 4 s) with the rotated
	// refresh token.
	deadline := time.Now().Add(20 * time.Second)
	refreshed := false
	for !refreshed && time.Now().Before(deadline) {
		n := len(e.api.accepted())
		if r := b.get(e.g.URL+"/api/plain/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
			t.Fatalf("proxied call after mediation: %d %s", r.StatusCode, r.Body)
		}
		got := e.api.accepted()
		if len(got) != n+1 || got[n].JKT != first.JKT {
			t.Fatalf("the proxied call presented %v, want a token bound to the gateway's key %q", got[n:], first.JKT)
		}
		refreshed = got[n].JTI != first.JTI
		if !refreshed {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if !refreshed {
		t.Fatal("the session's token was never refreshed after the mediation")
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("/bff/user after mediation: %d", r.StatusCode)
	}
}

func newKey(t *testing.T) *oidc.DPoPKey {
	t.Helper()
	k, err := oidc.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
