// Package hydra is TEST SUPPORT ONLY: it runs an unmodified Ory Hydra
// v2.3.0 (built from tools/hydra by gotool, with its in-memory SQLite) as a
// separate process on loopback ports, together with a tiny login, consent
// and logout app, so that integration tests can exercise Cloakroom against
// the provider people actually run.
//
// It is an ordinary (non-_test) package only so that tests in other packages
// can import it. Production code must never import it.
//
// Typical use from a relying-party test:
//
//	p := hydra.Start(t, hydra.Options{AccessTokenTTL: 3 * time.Second})
//	c := p.CreateClient(t, hydra.Client{RedirectURIs: []string{rp + "/callback"}})
//	// configure the relying party with p.Issuer, c.ID, c.Secret, send a
//	// browser-like client (cookie jar, no automatic redirects) to its
//	// login route, then let Follow walk Hydra and the login app:
//	cb, err := p.Follow(ctx, browser, authURL)
//
// Hydra's public port is reached through a recording reverse proxy: the
// issuer and every public endpoint in discovery are the proxy's, so tests
// can count token, refresh and revocation requests as Hydra saw them. The
// admin API is called directly on Hydra's admin port.
//
// The login app signs in one fixed user (Subject) without asking anything,
// remembers the login session (so Hydra sets its session cookie and a later
// RP-initiated logout finds it), grants every requested scope and audience at
// consent (openid and offline_access included) and puts Email, Name and
// EmailVerified into the ID token; the logout app accepts every logout.
package hydra

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidctest/gotool"
	"github.com/cloakroom/cloakroom/internal/oidctest/recorder"
)

// Timeouts of the process's life cycle.
const (
	startTimeout = 3 * time.Minute
	stopTimeout  = 10 * time.Second
	callTimeout  = 10 * time.Second
)

// maxFollowSteps bounds the redirects Follow walks.
const maxFollowSteps = 20

// maxBodyCapture bounds how much of an admin API answer is read.
const maxBodyCapture = 1 << 20

// tokenPath is the path of Hydra's token endpoint.
const tokenPath = "/oauth2/token"

// Options configure [Start]. Zero values take Hydra's defaults.
type Options struct {
	// AccessTokenTTL, RefreshTokenTTL and IDTokenTTL are Hydra's
	// ttl.access_token, ttl.refresh_token and ttl.id_token. Hydra's clock
	// is the real one: tests that cross a lifetime wait for it.
	AccessTokenTTL, RefreshTokenTTL, IDTokenTTL time.Duration
	// Env adds or overrides Hydra configuration as environment variables
	// (e.g. "OAUTH2_PKCE_ENFORCED=true").
	Env []string
}

// Provider is a running Hydra. Its fields are read-only after [Start].
type Provider struct {
	// Issuer is Hydra's issuer exactly as its discovery document prints
	// it ("http://127.0.0.1:PORT/", with Hydra's trailing slash).
	Issuer string
	// PublicURL is the base of the public endpoints, without the trailing
	// slash: the recording proxy in front of Hydra's public port.
	PublicURL string
	// AdminURL is Hydra's admin API, without the trailing slash.
	AdminURL string

	// Subject, Email, Name and EmailVerified are the fixed user the login
	// app signs in; the consent app puts the last three into ID tokens.
	Subject, Email, Name string
	EmailVerified        bool

	// Endpoints as advertised by discovery.
	AuthorizationEndpoint, TokenEndpoint, RevocationEndpoint string
	EndSessionEndpoint, UserinfoEndpoint, JWKSURI            string

	logs *recorder.Buffer
	rec  *recorder.Proxy
	app  *app
}

// Request is one request Hydra's public port received through the proxy.
type Request struct {
	Method, Path string
	// Query is the URL query; Form the parsed form body of a POST.
	Query, Form url.Values
	// ClientID is the client that authenticated with HTTP Basic, or the
	// form's client_id (the secret is never recorded).
	ClientID string
	// Time is when the proxy received the request.
	Time time.Time
	// Status is Hydra's answer.
	Status int
	// RefreshToken is the refresh_token of a successful token response,
	// Error the error code of a failed one.
	RefreshToken, Error string
}

// Start builds Hydra (once per machine, see gotool), runs `hydra serve all
// --dev` with an in-memory database, waits until its admin API reports
// ready and stops it at test cleanup. A failed build or start fails the test.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	bin := gotool.Build(t, "hydra")

	p := &Provider{
		Subject:       "user-" + randomHex(t, 4),
		Email:         "alice@example.com",
		Name:          "Alice Example",
		EmailVerified: true,
		logs:          &recorder.Buffer{},
	}
	// The proxy's address is the issuer, so it must exist before Hydra
	// starts; its handler is installed once Hydra's public port is known.
	front := httptest.NewUnstartedServer(nil)
	t.Cleanup(front.Close)
	p.PublicURL = "http://" + front.Listener.Addr().String()
	p.app = newApp(p)
	t.Cleanup(p.app.srv.Close)

	var err error
	for range 5 { // a free port is free only until someone takes it
		var ports []int
		if ports, err = freePorts(2); err != nil {
			break
		}
		var proc *gotool.Process
		if proc, err = p.run(bin, ports[0], ports[1], opts); err == nil {
			t.Cleanup(func() { proc.Stop(t, stopTimeout) })
			p.rec = recorder.New(&url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(ports[0])}, tokenPath)
			front.Config.Handler = p.rec
			break
		}
	}
	if err != nil {
		t.Fatalf("hydra: %v\n%s", err, p.logs)
	}
	front.Start()
	if err := p.discover(); err != nil {
		t.Fatalf("hydra: %v\n%s", err, p.logs)
	}
	return p
}

// run starts the process and waits for /health/ready on the admin port.
func (p *Provider) run(bin string, publicPort, adminPort int, opts Options) (*gotool.Process, error) {
	p.AdminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	env := []string{
		"DSN=memory",
		"URLS_SELF_ISSUER=" + p.PublicURL + "/",
		"URLS_SELF_PUBLIC=" + p.PublicURL + "/",
		"URLS_SELF_ADMIN=" + p.AdminURL + "/",
		"URLS_LOGIN=" + p.app.srv.URL + loginPath,
		"URLS_CONSENT=" + p.app.srv.URL + consentPath,
		"URLS_LOGOUT=" + p.app.srv.URL + logoutPath,
		"URLS_POST_LOGOUT_REDIRECT=" + p.app.srv.URL + loggedOutPath,
		"URLS_ERROR=" + p.app.srv.URL + errorPath,
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT=" + strconv.Itoa(adminPort),
		"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
		"LOG_LEVEL=warn",
	}
	for _, ttl := range []struct {
		key string
		d   time.Duration
	}{
		{"TTL_ACCESS_TOKEN", opts.AccessTokenTTL},
		{"TTL_REFRESH_TOKEN", opts.RefreshTokenTTL},
		{"TTL_ID_TOKEN", opts.IDTokenTTL},
	} {
		if ttl.d > 0 {
			env = append(env, ttl.key+"="+ttl.d.String())
		}
	}
	env = append(env, opts.Env...)

	// --sqa-opt-out: no usage statistics (and no call to the internet).
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	// Hydra's configuration comes from this environment only, never from
	// the test's.
	cmd.Env = append([]string{"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	return gotool.Start("hydra", cmd, p.AdminURL+"/health/ready", startTimeout)
}

// discover reads Hydra's discovery document through the proxy.
func (p *Provider) discover() error {
	var d struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		RevocationEndpoint    string `json:"revocation_endpoint"`
		EndSessionEndpoint    string `json:"end_session_endpoint"`
		UserinfoEndpoint      string `json:"userinfo_endpoint"`
		JWKSURI               string `json:"jwks_uri"`
	}
	if err := call(context.Background(), http.MethodGet, p.PublicURL+"/.well-known/openid-configuration", nil, &d); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	p.Issuer = d.Issuer
	p.AuthorizationEndpoint, p.TokenEndpoint, p.RevocationEndpoint = d.AuthorizationEndpoint, d.TokenEndpoint, d.RevocationEndpoint
	p.EndSessionEndpoint, p.UserinfoEndpoint, p.JWKSURI = d.EndSessionEndpoint, d.UserinfoEndpoint, d.JWKSURI
	if !strings.HasPrefix(p.TokenEndpoint, p.PublicURL+"/") {
		return fmt.Errorf("token endpoint %q is not behind the proxy %q", p.TokenEndpoint, p.PublicURL)
	}
	return nil
}

// Logs returns what Hydra has written to stdout and stderr so far.
func (p *Provider) Logs() string { return p.logs.String() }

// Requests returns a copy of every request Hydra's public port answered so
// far, in order of the answers.
func (p *Provider) Requests() []Request {
	var out []Request
	for _, x := range p.rec.Exchanges() {
		out = append(out, Request{Method: x.Method, Path: x.Path, Query: x.Query, Form: x.Form, ClientID: x.ClientID,
			Time: x.Received, Status: x.Status, RefreshToken: x.RefreshToken, Error: x.Error})
	}
	return out
}

// TokenRequests returns the token endpoint requests with the given
// grant_type ("" for all).
func (p *Provider) TokenRequests(grantType string) []Request {
	var out []Request
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost && r.Path == tokenPath && (grantType == "" || r.Form.Get("grant_type") == grantType) {
			out = append(out, r)
		}
	}
	return out
}

// RefreshGrants returns how many refresh_token grants Hydra answered,
// whatever the outcome.
func (p *Provider) RefreshGrants() int { return len(p.TokenRequests("refresh_token")) }

// Revocations returns the revocation requests Hydra answered.
func (p *Provider) Revocations() []Request {
	var out []Request
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost && r.Path == "/oauth2/revoke" {
			out = append(out, r)
		}
	}
	return out
}

// LastRefreshToken returns the refresh token of Hydra's latest successful
// token response for clientID (code or refresh grant), or "".
func (p *Provider) LastRefreshToken(clientID string) string {
	reqs := p.TokenRequests("")
	for i := len(reqs) - 1; i >= 0; i-- {
		r := reqs[i]
		if r.RefreshToken != "" && r.ClientID == clientID {
			return r.RefreshToken
		}
	}
	return ""
}

// Follow walks a browser-like client (cookie jar, no automatic redirects)
// from start through Hydra and the login, consent and logout app until a
// redirect leaves them, and returns that redirect's target (not fetched).
// It fails when a page answers without redirecting.
func (p *Provider) Follow(ctx context.Context, c *http.Client, start string) (*url.URL, error) {
	next, err := url.Parse(start)
	if err != nil {
		return nil, err
	}
	for range maxFollowSteps {
		if !p.ours(next) {
			return next, nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("%s %s answered %d without a redirect: %s", req.Method, next.Redacted(), resp.StatusCode, body)
		}
		next = loc
	}
	return nil, fmt.Errorf("more than %d redirects", maxFollowSteps)
}

// ours reports whether u is Hydra's public side or the login app.
func (p *Provider) ours(u *url.URL) bool {
	base := "http://" + u.Host
	return base == p.PublicURL || base == p.app.srv.URL
}

// Client is an OAuth 2.0 client as Hydra's admin API takes it. Empty
// fields get the defaults of [Provider.CreateClient].
type Client struct {
	ID                               string   `json:"client_id"`
	Secret                           string   `json:"client_secret,omitempty"`
	Name                             string   `json:"client_name,omitempty"`
	RedirectURIs                     []string `json:"redirect_uris"`
	PostLogoutRedirectURIs           []string `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes                       []string `json:"grant_types"`
	ResponseTypes                    []string `json:"response_types"`
	Scope                            string   `json:"scope"`
	Audience                         []string `json:"audience,omitempty"`
	TokenEndpointAuthMethod          string   `json:"token_endpoint_auth_method"`
	BackchannelLogoutURI             string   `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool     `json:"backchannel_logout_session_required"`
	SkipConsent                      bool     `json:"skip_consent"`
}

// CreateClient registers c through the admin API and returns it as
// registered. Defaults: a random ID and secret, the authorization_code,
// refresh_token and client_credentials grants, response type code, scope
// "openid offline_access profile email", client_secret_basic.
func (p *Provider) CreateClient(t testing.TB, c Client) Client {
	t.Helper()
	if c.ID == "" {
		c.ID = "client-" + randomHex(t, 6)
	}
	if c.Secret == "" {
		c.Secret = randomHex(t, 16)
	}
	if c.GrantTypes == nil {
		c.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
	}
	if c.ResponseTypes == nil {
		c.ResponseTypes = []string{"code"}
	}
	if c.Scope == "" {
		c.Scope = "openid offline_access profile email"
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "client_secret_basic"
	}
	secret := c.Secret
	if err := call(t.Context(), http.MethodPost, p.AdminURL+"/admin/clients", c, &c); err != nil {
		t.Fatalf("hydra: creating client %q: %v", c.ID, err)
	}
	c.Secret = secret
	return c
}

// Introspection is Hydra's answer to token introspection (RFC 7662).
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	TokenType string `json:"token_type"` // Hydra: access_token or refresh_token
	TokenUse  string `json:"token_use"`
	Expiry    int64  `json:"exp"`
}

// Introspect asks the admin API about token.
func (p *Provider) Introspect(ctx context.Context, token string) (Introspection, error) {
	var in Introspection
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.AdminURL+"/admin/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return in, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return in, do(req, &in)
}

// RevokeLoginSessionsBySID ends the login session sid at Hydra (admin API
// DELETE /admin/oauth2/auth/sessions/login?sid=): Hydra then sends a
// back-channel logout token to each client of that session.
func (p *Provider) RevokeLoginSessionsBySID(ctx context.Context, sid string) error {
	return call(ctx, http.MethodDelete, p.AdminURL+"/admin/oauth2/auth/sessions/login?"+url.Values{"sid": {sid}}.Encode(), nil, nil)
}

// RevokeLoginSessionsBySubject ends every login session of subject at
// Hydra (?subject=).
func (p *Provider) RevokeLoginSessionsBySubject(ctx context.Context, subject string) error {
	return call(ctx, http.MethodDelete, p.AdminURL+"/admin/oauth2/auth/sessions/login?"+url.Values{"subject": {subject}}.Encode(), nil, nil)
}

// RevokeConsentSessions revokes subject's consent for clientID, and with
// it every access and refresh token Hydra issued to that client for them.
func (p *Provider) RevokeConsentSessions(ctx context.Context, subject, clientID string) error {
	return call(ctx, http.MethodDelete, p.AdminURL+"/admin/oauth2/auth/sessions/consent?"+url.Values{"subject": {subject}, "client": {clientID}}.Encode(), nil, nil)
}

// ConsentRequests returns what the consent app was asked, in order.
func (p *Provider) ConsentRequests() []ConsentRequest { return p.app.consents() }

// LogoutRequests returns how many logout requests the logout app accepted.
func (p *Provider) LogoutRequests() int { return p.app.logouts() }

// call sends in as JSON (when not nil) and decodes a 2xx JSON answer into
// out (when not nil).
func call(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(req, out)
}

func do(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: callTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyCapture))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close() // held until all are picked, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("hydra: %v", err)
	}
	return hex.EncodeToString(b)
}
