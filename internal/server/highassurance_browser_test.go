package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
)

// haIntrospector is the API's own client at the provider: it introspects
// the gateway's access tokens (RFC 7662) with tls_client_auth, which the
// FAPI 2.0 provider accepts too (it allows no client secrets).
const haIntrospector = "orders-api"

// haAccessTTL is the provider's access token lifetime; the browser script
// has the test advance the gateway's clock by haAdvance, past half of it,
// so that the next API call refreshes first (tokens.Source refreshes at
// half the lifetime when that comes before refresh_before).
const haAccessTTL, haAdvance = 20 * time.Second, 11 * time.Second

// haPage is the SPA: a login link and window.app.get, a same-origin fetch
// with the CSRF header answering exactly what the page's JavaScript sees.
const haPage = `<!doctype html><html><head><meta charset="utf-8"><title>orders</title></head><body>
<a id="login" href="/bff/login?returnUrl=/">Sign in</a>
<script>
window.app = {
  async get(path) {
    const r = await fetch(path, { headers: { 'X-CSRF': '1' } });
    return { status: r.status, headers: [...r.headers], body: await r.text() };
  },
};
</script>
</body></html>`

// haAPI is the upstream of the high-assurance browser test. It accepts an
// access token only when the provider's introspection says it is active,
// issued to the gateway's client, and sender-constrained as the mode
// demands:
//   - DPoP (RFC 9449): Authorization: DPoP, exactly one DPoP header whose
//     proof verifies (oidc.VerifyDPoPProof: signature, typ, htm, htu = the URL
//     it was sent to, iat, ath, and this API's current nonce: without it the
//     answer is 401 use_dpop_nonce with the nonce), a jti never seen before,
//     and the token's cnf.jkt is the proof key's thumbprint;
//   - certificate-bound (RFC 8705): Authorization: Bearer over a TLS
//     connection on which the client presented a certificate of the test CA
//     (the server requires one), and the token's cnf.x5t#S256 is that
//     certificate's thumbprint.
//
// Introspection, not local JWT validation: oidc-provider introspects opaque
// tokens only, and it is what shows a revoked grant (the logout step).
type haAPI struct {
	*httptest.Server
	dpop     bool
	clientID string
	hc       *http.Client // presents the introspector's certificate
	endpoint string       // the provider's mTLS introspection endpoint

	mu       sync.Mutex
	nonce    string
	jtis     map[string]bool
	accepted []haCall
	refused  []string
	nonceAsk int
}

// haCall is a request the API accepted.
type haCall struct {
	Path, Token, Subject string
	Binding              string // cnf.jkt or cnf.x5t#S256
}

func newHAAPI(t *testing.T, p *nodeop.Provider, introspector *nodeop.Cert, clientID string, dpop bool) *haAPI {
	t.Helper()
	a := &haAPI{
		dpop: dpop, clientID: clientID, nonce: "api-nonce-1", jtis: map[string]bool{},
		hc:       p.CA.HTTPClientWithCert(t, introspector),
		endpoint: p.MTLSAliases["introspection_endpoint"],
	}
	if a.endpoint == "" {
		t.Fatal("the provider lists no mTLS introspection endpoint")
	}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.Config.ErrorLog = log.New(io.Discard, "", 0)
	if dpop {
		a.Start()
	} else {
		a.TLS = &tls.Config{
			Certificates: []tls.Certificate{p.CA.ServerCert(t).TLS},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    p.CA.Pool,
		}
		a.StartTLS()
	}
	t.Cleanup(a.Close)
	return a
}

func (a *haAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	refuse := func(format string, args ...any) {
		a.refused = append(a.refused, r.URL.Path+": "+fmt.Sprintf(format, args...))
		http.Error(w, "refused", http.StatusUnauthorized)
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var binding string
	if a.dpop {
		if scheme != "DPoP" || token == "" {
			refuse("Authorization scheme %q, want DPoP", scheme)
			return
		}
		proofs := r.Header.Values("DPoP")
		if len(proofs) != 1 {
			refuse("%d DPoP headers, want 1", len(proofs))
			return
		}
		proof, err := oidc.VerifyDPoPProof(proofs[0], r.Method, "http://"+r.Host+r.URL.EscapedPath(), oidc.DPoPCheck{Nonce: a.nonce, AccessToken: token})
		if errors.Is(err, oidc.ErrUseDPoPNonce) {
			a.nonceAsk++
			w.Header().Set("DPoP-Nonce", a.nonce)
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err != nil {
			refuse("proof: %v", err)
			return
		}
		if a.jtis[proof.ID] {
			refuse("proof jti replayed")
			return
		}
		a.jtis[proof.ID] = true
		binding = proof.JKT
	} else {
		if scheme != "Bearer" || token == "" || r.Header.Get("DPoP") != "" {
			refuse("Authorization scheme %q, want Bearer without DPoP", scheme)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			refuse("no client certificate")
			return
		}
		binding = haThumbprint(r.TLS.PeerCertificates[0].Raw)
	}
	ir, err := a.introspect(token)
	if err != nil {
		refuse("introspection: %v", err)
		return
	}
	cnf, wantType := ir.Cnf.X5t, "Bearer"
	if a.dpop {
		cnf, wantType = ir.Cnf.JKT, "DPoP"
	}
	switch {
	case !ir.Active:
		refuse("inactive token")
		return
	case ir.ClientID != a.clientID || ir.TokenType != wantType:
		refuse("token of %q, type %q, want %q's %s token", ir.ClientID, ir.TokenType, a.clientID, wantType)
		return
	case cnf == "" || cnf != binding:
		refuse("token bound to %q, the request's key or certificate is %q", cnf, binding)
		return
	}
	a.accepted = append(a.accepted, haCall{Path: r.URL.Path, Token: token, Subject: ir.Sub, Binding: binding})
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"sub":%q,"path":%q}`, ir.Sub, r.URL.Path)
}

type haIntrospection struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub"`
	ClientID  string `json:"client_id"`
	TokenType string `json:"token_type"`
	Cnf       struct {
		JKT string `json:"jkt"`
		X5t string `json:"x5t#S256"`
	} `json:"cnf"`
}

// introspect asks the provider about token as haIntrospector.
func (a *haAPI) introspect(token string) (haIntrospection, error) {
	var ir haIntrospection
	form := url.Values{"token": {token}, "client_id": {haIntrospector}}
	resp, err := a.hc.PostForm(a.endpoint, form)
	if err != nil {
		return ir, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ir, fmt.Errorf("introspection endpoint: %s", resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ir)
	return ir, err
}

func (a *haAPI) calls() (accepted []haCall, refused []string, nonceAsk int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.accepted), slices.Clone(a.refused), a.nonceAsk
}

func haThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// haSPKI is the base64 SHA-256 of the public key of the certificate the
// server at origin presents (verified against ca): what Chromium's
// --ignore-certificate-errors-spki-list takes.
func haSPKI(t *testing.T, origin string, ca *nodeop.CA) string {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: ca.Pool, ServerName: u.Hostname()})
	if err != nil {
		t.Fatalf("the provider's certificate: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// haMode is one high-assurance client configuration, from the provider's
// registration to the gateway's keys.
type haMode struct {
	name string
	// dpop: DPoP-bound tokens; otherwise certificate-bound ones.
	dpop bool
	// par: the browser's authorization URL must carry only client_id and
	// request_uri.
	par      bool
	provider func(*nodeop.Options)
	client   func(c *nodeop.Client, public string)
	config   func(*config.Config)
}

// haClaim is an entry of /bff/user.
type haClaim struct {
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// haEvidence is what e2e/browser/highassurance.mjs writes.
type haEvidence struct {
	OK    bool
	Error string
	Steps []struct {
		Name, Path string
		Status     int
		Headers    [][2]string
		Body       string
	}
	Introspections map[string]bool
	Navigations    []string
	AppResponses   []struct {
		URL    string
		Status int
		Body   *string
	}
	Browser []struct {
		Name           string
		DocumentCookie string
		LocalStorage   map[string]string
		SessionStorage map[string]string
		Cookies        []struct {
			Name     string
			HTTPOnly bool
			Secure   bool
			SameSite string
		}
	}
	PostLogoutURL string
}

func (ev *haEvidence) step(t *testing.T, name string) (status int, body string) {
	t.Helper()
	for _, s := range ev.Steps {
		if s.Name == name {
			return s.Status, s.Body
		}
	}
	t.Fatalf("the browser script has no step %q", name)
	return 0, ""
}

// TestHighAssuranceInChromium signs in through the gateway in real
// Chromium at panva's oidc-provider (a certified provider, over HTTPS with
// a test CA) in each high-assurance mode: private_key_jwt + PAR + DPoP
// (the provider fetching the gateway's /bff/jwks), tls_client_auth with
// certificate-bound tokens, and oidc.profile fapi2 against the provider's
// FAPI 2.0 profile (private_key_jwt + DPoP, PAR required). In each: the
// page reads /bff/user and calls an API that accepts only tokens bound to
// the session's DPoP key or the gateway's certificate; a refresh keeps the
// binding; signing out at the provider alone ends the gateway's session by
// back-channel logout; after signing in again, /bff/logout revokes the
// refresh token (the provider's grant is gone before the provider's own
// logout is confirmed) and lands on the post-logout page. No token reaches
// the page: not in a response of the app's origin, document.cookie or
// storage, and every cookie is HttpOnly.
//
// Chromium trusts exactly the provider's certificate, by the hash of its
// public key (--ignore-certificate-errors-spki-list, see
// e2e/browser/highassurance.mjs), rather than ignoring every certificate
// error; the gateway is on http://127.0.0.1, a secure context (its
// __Host- cookie works), where the provider can post its logout tokens.
func TestHighAssuranceInChromium(t *testing.T) {
	chromium, dir := requireBrowser(t)
	ca := nodeop.NewCA(t)
	gatewayCert := ca.ClientCert(t, "cloakroom-gateway")
	introspector := ca.ClientCert(t, haIntrospector)
	rsaKey, ecKey := nodeop.NewRSAKey(t), nodeop.NewECKey(t)
	frontend := t.TempDir()
	if err := os.WriteFile(filepath.Join(frontend, "index.html"), []byte(haPage), 0o644); err != nil {
		t.Fatal(err)
	}

	modes := []haMode{
		{
			name: "private_key_jwt PAR DPoP", dpop: true, par: true,
			provider: func(o *nodeop.Options) { o.PAR, o.DPoP, o.DPoPNonce = true, true, true },
			client: func(c *nodeop.Client, public string) {
				c.TokenEndpointAuthMethod, c.JWKSURI, c.DPoPBoundAccessTokens = "private_key_jwt", public+"/bff/jwks", true
			},
			config: func(c *config.Config) {
				c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = config.PrivateKeyJWT, rsaKey.WritePEM(t)
				c.OIDC.PAR, c.OIDC.DPoP = config.PARRequired, true
			},
		},
		{
			name: "tls_client_auth certificate-bound",
			client: func(c *nodeop.Client, _ string) {
				c.TokenEndpointAuthMethod, c.TLSClientAuthSubjectDN = "tls_client_auth", gatewayCert.SubjectDN()
				c.TLSClientCertificateBoundAccessTokens = true
			},
			config: func(c *config.Config) {
				c.OIDC.ClientAuth = config.TLSClientAuth
				c.OIDC.ClientCertificateFile, c.OIDC.ClientCertificateKeyFile = gatewayCert.CertFile, gatewayCert.KeyFile
				// The API trusts the test CA; the gateway presents its
				// oidc client certificate to it.
				c.APIs[0].TLS = &config.UpstreamTLS{CAFile: ca.File}
			},
		},
		{
			name: "profile fapi2", dpop: true, par: true,
			provider: func(o *nodeop.Options) {
				o.FAPI2, o.PAR, o.RequirePAR, o.DPoP, o.DPoPNonce = true, true, true, true, true
			},
			client: func(c *nodeop.Client, _ string) {
				c.TokenEndpointAuthMethod, c.JWKS, c.DPoPBoundAccessTokens = "private_key_jwt", nodeop.PublicJWKS(ecKey), true
			},
			config: func(c *config.Config) {
				c.OIDC.Profile = config.ProfileFAPI2
				c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = config.PrivateKeyJWT, nodeop.WriteJWKS(t, ecKey)
				c.OIDC.DPoP = true
			},
		},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			runHighAssurance(t, m, chromium, dir, frontend, ca, gatewayCert, introspector)
		})
	}
}

func runHighAssurance(t *testing.T, m haMode, chromium, driverDir, frontend string, ca *nodeop.CA, gatewayCert, introspector *nodeop.Cert) {
	ln, public := listen127(t)
	const clientID = "orders-spa"
	client := nodeop.Client{
		ClientID:               clientID,
		RedirectURIs:           []string{public + "/bff/callback"},
		PostLogoutRedirectURIs: []string{public + "/"},
		BackchannelLogoutURI:   public + "/bff/backchannel",
	}
	m.client(&client, public)
	opts := nodeop.Options{
		CA: ca, MTLS: true, BackchannelLogout: true, Revocation: true, Introspection: true,
		AccessTokenTTL: haAccessTTL,
		Clients: []nodeop.Client{client, {
			ClientID: haIntrospector, TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN: introspector.SubjectDN(),
			// The FAPI 2.0 provider wants every client sender-constrained.
			TLSClientCertificateBoundAccessTokens: true,
			RedirectURIs:                          []string{"https://orders-api.example.test/unused"},
		}},
	}
	if m.provider != nil {
		m.provider(&opts)
	}
	p := nodeop.Start(t, opts)
	api := newHAAPI(t, p, introspector, clientID, m.dpop)

	cfg := baseConfig(public, p.Issuer, clientID, "")
	cfg.RateLimit = config.RateLimit{}
	cfg.Frontend.Dir = frontend
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: api.URL + "/v1/", Token: config.TokenUser, Timeout: 10 * time.Second}}
	m.config(cfg)
	for _, pr := range cfg.Validate() {
		if !pr.Warning {
			t.Errorf("config: %v", pr)
		}
	}
	if probs := server.CheckClientAuth(cfg); probs != nil {
		t.Errorf("check: %v", probs)
	}
	if t.Failed() {
		t.FailNow()
	}
	g := startGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})

	// The script's hooks into the test: the gateway's clock, and whether
	// the last access token the API accepted is still active.
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /advance":
			g.Clock.Advance(haAdvance)
			w.WriteHeader(http.StatusNoContent)
		case "GET /introspect":
			accepted, _, _ := api.calls()
			if len(accepted) == 0 {
				http.Error(w, "the API accepted no call yet", http.StatusConflict)
				return
			}
			ir, err := api.introspect(accepted[len(accepted)-1].Token)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"active":%t}`, ir.Active)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ctl.Close)

	out := filepath.Join(t.TempDir(), "highassurance.json")
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(driverDir, "highassurance.mjs"),
		"--app", g.URL, "--provider", p.Issuer, "--end-session", p.EndSessionEndpoint,
		"--control", ctl.URL, "--spki", haSPKI(t, p.Issuer, ca), "--out", out)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	logs, runErr := cmd.CombinedOutput()
	raw, _ := os.ReadFile(out)
	var ev haEvidence
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("browser run: %v (%v)\n%s", runErr, err, logs)
	}
	accepted, refused, nonceAsks := api.calls()
	if runErr != nil || !ev.OK {
		t.Fatalf("browser run: %v: %s\n%s\nAPI refused: %q\ngateway logs:\n%s", runErr, ev.Error, logs, refused, g.Logs)
	}

	// Signed in: /bff/user has the provider's user.
	status, body := ev.step(t, "user")
	var claims []haClaim
	if err := json.Unmarshal([]byte(body), &claims); status != http.StatusOK || err != nil ||
		!slices.Contains(claims, haClaim{"sub", nodeop.DefaultUsername}) {
		t.Errorf("/bff/user: %d %s, want the claims of %s", status, body, nodeop.DefaultUsername)
	}
	// The authorization request the browser carried.
	var auth *url.URL
	for _, n := range ev.Navigations {
		if u, err := url.Parse(n); err == nil && strings.HasPrefix(n, p.AuthorizationEndpoint+"?") {
			auth = u
			break
		}
	}
	switch {
	case auth == nil:
		t.Errorf("the browser never went to the authorization endpoint; navigations: %d", len(ev.Navigations))
	case m.par:
		if keys := queryKeys(auth); !slices.Equal(keys, []string{"client_id", "request_uri"}) {
			t.Errorf("authorization URL parameters %q, want only client_id and request_uri (PAR)", keys)
		}
	default:
		if keys := queryKeys(auth); !slices.Contains(keys, "code_challenge") || slices.Contains(keys, "request_uri") {
			t.Errorf("authorization URL parameters %q, want the classic request", keys)
		}
	}

	// Every API call the page made went through with a bound token, and
	// a refresh happened between the first two.
	for _, name := range []string{"api", "api after refresh", "api again"} {
		if status, body := ev.step(t, name); status != http.StatusOK {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	byPath := map[string]haCall{}
	for _, c := range accepted {
		byPath[c.Path] = c
	}
	first, refreshed, again := byPath["/v1/first"], byPath["/v1/refreshed"], byPath["/v1/again"]
	if first.Token == "" || refreshed.Token == "" || again.Token == "" {
		t.Fatalf("the API accepted %d calls, not each of the page's; refused: %q", len(accepted), refused)
	}
	if len(refused) != 0 {
		t.Errorf("the API refused: %q", refused)
	}
	if first.Subject != nodeop.DefaultUsername {
		t.Errorf("the API's subject: got %q, want %q", first.Subject, nodeop.DefaultUsername)
	}
	if refreshed.Token == first.Token {
		t.Error("the access token was not refreshed")
	}
	if refreshed.Binding != first.Binding {
		t.Errorf("the refreshed token is bound to %q, the first to %q: want the same key or certificate", refreshed.Binding, first.Binding)
	}
	if m.dpop {
		if again.Binding == first.Binding {
			t.Error("two sessions' tokens are bound to one DPoP key, want a key per session")
		}
		if nonceAsks == 0 {
			t.Error("the API never asked for its nonce: the nonce dance was not tested")
		}
	} else if want := gatewayCert.Thumbprint(); first.Binding != want || again.Binding != want {
		t.Errorf("tokens bound to %q and %q, want the gateway's certificate %q", first.Binding, again.Binding, want)
	}

	// Back-channel logout: the provider's logout token ended the session.
	for _, name := range []string{"user after back-channel logout", "api after back-channel logout"} {
		if status, _ := ev.step(t, name); status != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, status)
		}
	}
	if _, ok := byPath["/v1/after-back-channel"]; ok {
		t.Error("the API was called after the back-channel logout")
	}
	if !strings.Contains(g.Logs.String(), `"msg":"back-channel logout"`) || !strings.Contains(g.Logs.String(), `"sessions_ended":1`) {
		t.Errorf("no back-channel logout ended a session; logs:\n%s", g.Logs)
	}

	// RP-initiated logout: the refresh token was revoked (and with it the
	// provider's grant: the access token is no longer active) before the
	// user confirmed at the provider; then the post-logout page.
	if status, _ := ev.step(t, "user again"); status != http.StatusOK {
		t.Errorf("/bff/user after signing in again: %d", status)
	}
	if !ev.Introspections["before logout"] || ev.Introspections["at the provider"] {
		t.Errorf("access token active before /bff/logout %v, at the provider's confirmation %v: want true, then false (refresh token revoked)",
			ev.Introspections["before logout"], ev.Introspections["at the provider"])
	}
	if strings.Contains(g.Logs.String(), "revocation failed") {
		t.Errorf("revocation failed; logs:\n%s", g.Logs)
	}
	if u, err := url.Parse(ev.PostLogoutURL); err != nil || u.Scheme+"://"+u.Host+u.Path != public+"/" {
		t.Errorf("landed on %q after logout, want %s/", ev.PostLogoutURL, public)
	}
	if status, _ := ev.step(t, "user after logout"); status != http.StatusUnauthorized {
		t.Errorf("/bff/user after logout: %d, want 401", status)
	}

	// No token reaches the page's JavaScript, and the logs hold none.
	var visible []string
	for _, s := range ev.Steps {
		visible = append(visible, s.Body)
		for _, h := range s.Headers {
			visible = append(visible, h[0]+": "+h[1])
		}
	}
	for _, r := range ev.AppResponses {
		if r.Body != nil {
			visible = append(visible, *r.Body)
		}
	}
	for _, b := range ev.Browser {
		visible = append(visible, b.DocumentCookie)
		for k, v := range b.LocalStorage {
			visible = append(visible, k+"="+v)
		}
		for k, v := range b.SessionStorage {
			visible = append(visible, k+"="+v)
		}
		if b.DocumentCookie != "" {
			t.Errorf("%s: document.cookie holds %d bytes, want none", b.Name, len(b.DocumentCookie))
		}
		for _, c := range b.Cookies {
			if !c.HTTPOnly || !c.Secure {
				t.Errorf("%s: cookie %q HttpOnly %v Secure %v, want both", b.Name, c.Name, c.HTTPOnly, c.Secure)
			}
		}
	}
	// (The provider's cookies are there too: cookies do not tell ports
	// apart, and both listen on 127.0.0.1.)
	if len(ev.Browser) == 0 {
		t.Fatal("the browser script took no snapshot of the page's state")
	}
	sessionCookie := false
	for _, c := range ev.Browser[0].Cookies {
		if c.Name == cfg.Session.CookieName {
			sessionCookie = true
			if c.SameSite != "Strict" {
				t.Errorf("the session cookie is SameSite %q, want Strict", c.SameSite)
			}
		}
	}
	if !sessionCookie {
		t.Errorf("no %s cookie in the signed-in browser: the cookie checks prove nothing", cfg.Session.CookieName)
	}
	page := strings.Join(visible, "\n")
	for _, leak := range []string{"eyJ", "access_token", "refresh_token", "id_token"} {
		if strings.Contains(page, leak) {
			t.Errorf("the page can see %q", leak)
		}
	}
	for _, c := range accepted {
		if strings.Contains(page, c.Token) {
			t.Errorf("the page can see the access token of %s", c.Path)
		}
		if strings.Contains(g.Logs.String(), c.Token) {
			t.Errorf("the gateway's logs hold the access token of %s", c.Path)
		}
	}
}
