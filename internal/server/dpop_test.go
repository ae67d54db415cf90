package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

// dpopResource is the API the provider issues JWT access tokens for.
const dpopResource = "https://api.example.test"

// dpopAPI is an upstream that accepts only DPoP-bound tokens and checks
// every proof completely (RFC 9449 §4.3, §7.1): Authorization: DPoP, one
// DPoP header, a proof whose signature, typ, htm, htu (the URL it was
// sent to), iat, ath and nonce verify (oidc.VerifyDPoPProof), a jti never
// seen before, and a JWT access token signed by the provider (its JWKS),
// for dpopResource, not expired, whose cnf.jkt is the proof key's
// thumbprint. It issues nonces of its own and demands the current one:
// a proof without it gets 401 use_dpop_nonce with the nonce.
type dpopAPI struct {
	t    *testing.T
	keys jose.JSONWebKeySet

	mu       sync.Mutex
	nonce    string
	jtis     map[string]bool
	accepted []dpopCall // requests answered 200
	refused  []string   // why other requests were refused
	nonceAsk int        // use_dpop_nonce answers
}

type dpopCall struct {
	Method, Path, Body string
	JKT, Subject       string
}

func newDPoPAPI(t *testing.T, p *nodeop.Provider) (*dpopAPI, *upstream) {
	t.Helper()
	a := &dpopAPI{t: t, nonce: "nonce-1", jtis: map[string]bool{}}
	resp, err := p.CA.HTTPClient(t).Get(p.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&a.keys); err != nil {
		t.Fatal(err)
	}
	return a, newUpstream(t, a.serve)
}

// rotate makes the upstream demand a new nonce.
func (a *dpopAPI) rotate(nonce string) {
	a.mu.Lock()
	a.nonce = nonce
	a.mu.Unlock()
}

func (a *dpopAPI) stats() (accepted []dpopCall, refused []string, nonceAsk int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]dpopCall(nil), a.accepted...), append([]string(nil), a.refused...), a.nonceAsk
}

func (a *dpopAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	refuse := func(format string, args ...any) {
		a.refused = append(a.refused, fmt.Sprintf(format, args...))
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token", algs="ES256"`)
		w.WriteHeader(http.StatusUnauthorized)
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "DPoP" || token == "" {
		refuse("Authorization scheme %q, want DPoP", scheme)
		return
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		refuse("%d DPoP headers, want 1", len(proofs))
		return
	}
	htu := "http://" + r.Host + r.URL.EscapedPath()
	proof, err := oidc.VerifyDPoPProof(proofs[0], r.Method, htu, oidc.DPoPCheck{Nonce: a.nonce, AccessToken: token})
	if errors.Is(err, oidc.ErrUseDPoPNonce) {
		a.nonceAsk++
		w.Header().Set("DPoP-Nonce", a.nonce)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err != nil {
		refuse("proof: %v", err)
		return
	}
	if a.jtis[proof.JKT+" "+proof.ID] {
		refuse("proof jti replayed")
		return
	}
	a.jtis[proof.JKT+" "+proof.ID] = true
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		refuse("access token is not a JWT: %v", err)
		return
	}
	var std jwt.Claims
	var cnf struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := parsed.Claims(&a.keys, &std, &cnf); err != nil {
		refuse("access token signature: %v", err)
		return
	}
	if err := std.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{dpopResource}, Time: time.Now()}, 5*time.Second); err != nil {
		refuse("access token claims: %v", err)
		return
	}
	if cnf.Cnf.JKT == "" || cnf.Cnf.JKT != proof.JKT {
		refuse("access token cnf.jkt %q is not the proof key's %q", cnf.Cnf.JKT, proof.JKT)
		return
	}
	a.accepted = append(a.accepted, dpopCall{Method: r.Method, Path: r.URL.Path, Body: string(body), JKT: proof.JKT, Subject: std.Subject})
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"sub":%q,"path":%q}`, std.Subject, r.URL.Path)
}

// dpopProvider starts oidc-provider (with dpop: demanding DPoP nonces;
// with par: offering pushed authorization requests, which the gateway then
// uses) with client "bff" (client_secret_basic, with dpop DPoP-bound
// tokens) for the gateways at publics.
func dpopProvider(t *testing.T, dpop, par bool, publics ...string) *nodeop.Provider {
	t.Helper()
	c := nodeop.Client{
		ClientID: "bff", ClientSecret: "bff-secret", TokenEndpointAuthMethod: "client_secret_basic",
		DPoPBoundAccessTokens: dpop,
		GrantTypes:            []string{"authorization_code", "refresh_token", "client_credentials"},
	}
	for _, p := range publics {
		c.RedirectURIs = append(c.RedirectURIs, p+"/bff/callback")
		c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, p+"/")
	}
	return nodeop.Start(t, nodeop.Options{
		DPoP: dpop, DPoPNonce: dpop, PAR: par, ClientCredentials: true, Revocation: true,
		Resource: dpopResource, ResourceScope: "api",
		AccessTokenTTL: 20 * time.Second,
		Clients:        []nodeop.Client{c},
	})
}

func dpopConfig(public string, p *nodeop.Provider, up *upstream) *config.Config {
	cfg := baseConfig(public, p.Issuer, "bff", "bff-secret")
	cfg.OIDC.DPoP = true
	cfg.OIDC.Scopes = []string{"openid", "profile", "email", "offline_access", "api"}
	cfg.APIs = []config.API{
		{Path: "/api/user/", Upstream: up.URL + "/user/", Token: "user"},
		{Path: "/api/svc/", Upstream: up.URL + "/svc/", Token: "client", Scopes: []string{"api"}, Resource: dpopResource},
	}
	cfg.Composites = []config.Composite{{
		Path:  "/bff/dash",
		Parts: map[string]config.Part{"me": {API: "/api/user/", Path: "me", Required: true}},
	}}
	return cfg
}

// dpopSignIn signs b in at g through the provider's login pages.
func dpopSignIn(t *testing.T, g *gateway, p *nodeop.Provider, b *browser) response {
	t.Helper()
	auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/"))
	// The code is bound to the session's key: by the pushed request's
	// proof, else by dpop_jkt in the browser's URL.
	if q := auth.Query(); p.PAREndpoint != "" && (q.Get("request_uri") == "" || q.Has("dpop_jkt")) ||
		p.PAREndpoint == "" && len(q.Get("dpop_jkt")) != 43 {
		t.Errorf("authorization URL query %v: want request_uri with PAR, else dpop_jkt", q)
	}
	cb, err := p.Login(t.Context(), p.Browser(t), auth.String())
	if err != nil {
		t.Fatalf("provider login: %v", err)
	}
	if !strings.HasPrefix(cb.String(), g.URL+"/bff/callback") {
		t.Fatalf("provider redirected to %s, want the callback", cb)
	}
	return b.get(cb.String())
}

func (b *browser) send(method, u, body string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

// The gateway with oidc.dpop against oidc-provider demanding DPoP nonces
// (client_secret_basic, PAR): the login's pushed request and code
// exchange (each first refused with use_dpop_nonce), the API calls, a
// refresh with rotation, a composite part and a client-credentials route,
// all with DPoP-bound tokens that an upstream checking every proof accepts;
// the nonce dance on both sides, and a streamed body that is not retried.
func TestDPoPEndToEnd(t *testing.T) {
	ln, public := listenLocal(t)
	p := dpopProvider(t, true, true, public)
	api, up := newDPoPAPI(t, p)
	g := startGateway(t, ln, dpopConfig(public, p, up), server.Options{HTTPClient: p.CA.HTTPClient(t)})
	b := newBrowser(t)

	// Login: the provider's use_dpop_nonce at the pushed request and at
	// the code exchange is answered by the gateway (else no session).
	if r := dpopSignIn(t, g, p, b); r.StatusCode != http.StatusOK && r.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d %s; logs:\n%s", r.StatusCode, r.Body, g.Logs)
	}

	// The first call meets the upstream's nonce demand and is retried once;
	// the next carries the kept nonce at once.
	for i, wantAsks := range []int{1, 1} {
		if r := b.get(g.URL+"/api/user/me", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
			_, refused, _ := api.stats()
			t.Fatalf("call %d: %d %s; refused %v; logs:\n%s", i+1, r.StatusCode, r.Body, refused, g.Logs)
		}
		if _, _, asks := api.stats(); asks != wantAsks {
			t.Errorf("call %d: %d use_dpop_nonce answers so far, want %d", i+1, asks, wantAsks)
		}
	}
	accepted, _, _ := api.stats()
	sessionJKT := accepted[0].JKT
	if accepted[0].Subject != nodeop.DefaultUsername || accepted[1].JKT != sessionJKT {
		t.Errorf("accepted calls %+v: want %s's, with one key", accepted, nodeop.DefaultUsername)
	}

	// A POST whose body was streamed is not sent twice: the upstream's
	// 401 reaches the browser; the nonce is kept, so the next POST passes.
	api.rotate("nonce-2")
	r := b.send(http.MethodPost, g.URL+"/api/user/orders", `{"item":1}`)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		t.Errorf("POST after the nonce changed: %d %q, want the upstream's 401 use_dpop_nonce", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := b.send(http.MethodPost, g.URL+"/api/user/orders", `{"item":2}`); r.StatusCode != http.StatusOK {
		t.Errorf("POST again: %d, want 200", r.StatusCode)
	}
	accepted, _, _ = api.stats()
	if last := accepted[len(accepted)-1]; last.Method != http.MethodPost || last.Body != `{"item":2}` {
		t.Errorf("last accepted call %+v, want the second POST with its body", last)
	}

	// A GET after another nonce change is retried by the gateway.
	api.rotate("nonce-3")
	if r := b.get(g.URL+"/api/user/me?x=1", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("GET after the nonce changed: %d, want 200 after one retry", r.StatusCode)
	}

	// A composite part carries the session's DPoP token too.
	if r := b.get(g.URL+"/bff/dash", "X-CSRF", "1"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"/user/me"`) {
		t.Errorf("composite: %d %s, want 200 with the part", r.StatusCode, r.Body)
	}

	// The client-credentials route: a token bound to the process's key.
	if r := b.get(g.URL+"/api/svc/status", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		_, refused, _ := api.stats()
		t.Fatalf("client route: %d %s; refused %v; logs:\n%s", r.StatusCode, r.Body, refused, g.Logs)
	}
	accepted, _, _ = api.stats()
	if last := accepted[len(accepted)-1]; last.Path != "/svc/status" || last.JKT == sessionJKT {
		t.Errorf("client route call %+v: want /svc/status with the gateway's key, not the session's", last)
	}

	// Past half the token's life the gateway refreshes with a proof by the
	// session's key; the provider rotates the refresh token, and the new
	// access token is bound to the same key. Then once more, with the
	// rotated refresh token.
	for i := range 2 {
		g.Clock.Advance(11 * time.Second)
		before := len(accepted)
		if r := b.get(g.URL+"/api/user/me", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
			_, refused, _ := api.stats()
			t.Fatalf("after refresh %d: %d %s; refused %v; logs:\n%s", i+1, r.StatusCode, r.Body, refused, g.Logs)
		}
		accepted, _, _ = api.stats()
		if len(accepted) != before+1 || accepted[len(accepted)-1].JKT != sessionJKT {
			t.Errorf("after refresh %d: accepted %+v, want one more call with the session's key", i+1, accepted[before:])
		}
	}
	_, refused, _ := api.stats()
	if len(refused) != 0 {
		t.Errorf("the upstream refused proofs: %v", refused)
	}
	if strings.Contains(g.Logs.String(), "bff-secret") {
		t.Error("the logs hold the client secret")
	}
}

// Two gateways on one Redis (no PAR: the authorization URL carries
// dpop_jkt): a session signed in through A is used
// through B, and B's proofs are made by the same session key, which the
// token is bound to.
func TestDPoPTwoInstancesOnRedis(t *testing.T) {
	rs := redistest.Start(t)
	lnA, pubA := listenLocal(t)
	lnB, pubB := listenLocal(t)
	p := dpopProvider(t, true, false, pubA, pubB)
	api, up := newDPoPAPI(t, p)
	mk := func(public string) *config.Config {
		cfg := dpopConfig(public, p, up)
		cfg.Session.Store = rs.URL
		return cfg
	}
	a := startGateway(t, lnA, mk(pubA), server.Options{HTTPClient: p.CA.HTTPClient(t)})
	bg := startGateway(t, lnB, mk(pubB), server.Options{HTTPClient: p.CA.HTTPClient(t)})
	br := newBrowser(t)
	if r := dpopSignIn(t, a, p, br); r.StatusCode >= 400 {
		t.Fatalf("callback: %d %s", r.StatusCode, r.Body)
	}
	for _, g := range []*gateway{a, bg, a} {
		if r := br.get(g.URL+"/api/user/me", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
			_, refused, _ := api.stats()
			t.Fatalf("through %s: %d; refused %v", g.URL, r.StatusCode, refused)
		}
	}
	accepted, refused, _ := api.stats()
	if len(accepted) != 3 || accepted[0].JKT != accepted[1].JKT || accepted[1].JKT != accepted[2].JKT {
		t.Errorf("accepted %+v (refused %v), want three calls with one key", accepted, refused)
	}
}

// A provider that answers token_type Bearer when DPoP was asked for (here:
// one without DPoP, which ignores the proof) ends the login with an error:
// no session, and the API refuses the browser.
func TestDPoPBearerAnswerEndsLogin(t *testing.T) {
	ln, public := listenLocal(t)
	p := dpopProvider(t, false, false, public)
	up := newUpstream(t, nil)
	g := startGateway(t, ln, dpopConfig(public, p, up), server.Options{HTTPClient: p.CA.HTTPClient(t)})
	b := newBrowser(t)
	r := dpopSignIn(t, g, p, b)
	if r.StatusCode < 400 {
		t.Errorf("callback with a Bearer answer: %d, want an error page", r.StatusCode)
	}
	if !strings.Contains(g.Logs.String(), `token_type \"Bearer\", want \"DPoP\"`) {
		t.Errorf("logs do not say why the login failed:\n%s", g.Logs)
	}
	if r := b.get(g.URL+"/api/user/me", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after the failed login: %d, want 401", r.StatusCode)
	}
	if n := len(up.Requests()); n != 0 {
		t.Errorf("the upstream got %d requests, want none", n)
	}
}
