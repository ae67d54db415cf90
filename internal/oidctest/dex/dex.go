// Package dex is TEST SUPPORT ONLY: it runs an unmodified Dex v2.45.1
// (built from tools/dex by gotool) as a separate process on a loopback port,
// with in-memory storage, the local password database and one static
// client, so that integration tests can exercise Cloakroom against the
// provider people actually run.
//
// It is an ordinary (non-_test) package only so that tests in other packages
// can import it. Production code must never import it.
//
// Typical use from a relying-party test:
//
//	p := dex.Start(t, rp+"/callback", dex.Options{IDTokenTTL: 4 * time.Second})
//	// configure the relying party with p.Issuer, p.ClientID, p.ClientSecret,
//	// send a browser-like client (cookie jar, no automatic redirects) to
//	// its login route, then let Login fill in Dex's password form:
//	cb, err := p.Login(ctx, browser, authURL)
//
// Dex is reached through a recording reverse proxy: the issuer
// ("http://127.0.0.1:PORT/dex") and every endpoint in discovery are the
// proxy's, so tests can see each token request as Dex answered it (grant,
// status, OAuth error, the refresh token it handed back). Dex itself listens
// on another loopback port.
//
// Dex's clock is the real one: a test that crosses a token lifetime waits
// for it. Expiry settings accept Go durations down to a second.
package dex

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidctest/gotool"
	"github.com/cloakroom/cloakroom/internal/oidctest/recorder"
)

// Version is the Dex release tools/dex pins.
const Version = "v2.45.1"

// Timeouts of the process's life cycle.
const (
	startTimeout = 3 * time.Minute
	stopTimeout  = 10 * time.Second
	callTimeout  = 10 * time.Second
)

// maxBodyCapture bounds how much of a response body is read.
const maxBodyCapture = 1 << 20

// The test user in Dex's staticPasswords. PasswordHash is the bcrypt hash
// (cost 10) of Password: golang.org/x/crypto is not in Cloakroom's module
// graph, so the hash is precomputed (htpasswd -nbB -C 10 x password gives
// an equivalent one).
const (
	Email        = "alice@example.com"
	Password     = "password"
	PasswordHash = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
	UserID       = "08a8684b-db88-4b73-90a9-3cd1661f5466"
	Username     = "alice"
	Name         = "Alice Example"
)

// issuerPath is the path of Dex's issuer, and tokenPath that of its token
// endpoint.
const (
	issuerPath = "/dex"
	tokenPath  = issuerPath + "/token"
)

// connectorID is the id of Dex's built-in password connector.
const connectorID = "local"

// ClientID is the id of the static client [Start] registers.
const ClientID = "cloakroom"

// Options configure [Start]. Zero values take Dex's defaults.
type Options struct {
	// IDTokenTTL is expiry.idTokens: the lifetime of ID tokens and of
	// access tokens alike (Dex's default: 24h).
	IDTokenTTL time.Duration

	// The refresh token policy (expiry.refreshTokens), Dex's defaults when
	// zero. ReuseInterval: for this long after a refresh token was issued
	// or last rotated, a refresh answers with the current refresh token
	// (the one presented, or the one that replaced it) instead of rotating
	// (default: no reuse). ValidIfNotUsedFor and AbsoluteLifetime end a
	// refresh token that sat unused, or that was issued too long ago
	// (default: never).
	ReuseInterval, ValidIfNotUsedFor, AbsoluteLifetime time.Duration
	// DisableRotation makes a refresh answer with the same refresh token.
	DisableRotation bool

	// ClientSecret is the static client's secret; empty for a random one.
	ClientSecret string

	// LogLevel is logger.level: debug, info, warn or error ("" is info).
	LogLevel string
}

// Provider is a running Dex. Its fields are read-only after [Start].
type Provider struct {
	// Issuer is Dex's issuer exactly as discovery prints it:
	// "http://127.0.0.1:PORT/dex", the recording proxy's address.
	Issuer string

	// ClientID and ClientSecret identify the static client, whose only
	// redirect URI is RedirectURI.
	ClientID, ClientSecret, RedirectURI string

	// Email (the login name at Dex's password form), Password, Name,
	// Username (preferred_username) and Subject (the ID tokens' sub) are
	// the test user's.
	Email, Password, Name, Username, Subject string

	// Endpoints as advertised by discovery. Dex advertises no revocation
	// and no end-session endpoint: those two are empty.
	AuthorizationEndpoint, TokenEndpoint, UserinfoEndpoint, JWKSURI string
	RevocationEndpoint, EndSessionEndpoint                          string

	logs *recorder.Buffer
	rec  *recorder.Proxy
}

// Request is one request Dex answered through the proxy.
type Request struct {
	Method, Path string
	// Query is the URL query; Form the parsed form body of a POST, without
	// client_secret.
	Query, Form url.Values
	// Status is Dex's answer, and Error the "error" of an OAuth error
	// answer (e.g. invalid_request).
	Status int
	Error  string
	// Time is when the proxy had Dex's answer.
	Time time.Time
	// RefreshToken is the refresh_token of a successful token response.
	RefreshToken string
}

// Start builds Dex (once per machine, see gotool), runs `dex serve` with a
// configuration for one static client whose redirect URI is redirectURI,
// waits for its discovery document and stops it at test cleanup. A failed
// build or start fails the test: the Dex tests are integration tests, and
// CI must never pass them by skipping.
func Start(t testing.TB, redirectURI string, opts Options) *Provider {
	t.Helper()
	bin := gotool.Build(t, "dex")

	p := &Provider{
		ClientID:     ClientID,
		ClientSecret: opts.ClientSecret,
		RedirectURI:  redirectURI,
		Email:        Email,
		Password:     Password,
		Name:         Name,
		Username:     Username,
		Subject:      subject(UserID, connectorID),
		logs:         &recorder.Buffer{},
	}
	if p.ClientSecret == "" {
		p.ClientSecret = randomHex(t, 16)
	}
	// The proxy's address is in the issuer, so it must exist before Dex
	// starts; its handler is installed once Dex's port is known.
	front := httptest.NewUnstartedServer(nil)
	p.Issuer = "http://" + front.Listener.Addr().String() + issuerPath
	dir := t.TempDir()

	var err error
	for range 5 { // a free port is free only until someone takes it
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		var proc *gotool.Process
		if proc, err = p.run(bin, dir, port, opts); err == nil {
			t.Cleanup(func() { proc.Stop(t, stopTimeout) })
			p.rec = recorder.New(&url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}, tokenPath, "client_secret", "password")
			front.Config.Handler = p.rec
			break
		}
	}
	if err != nil {
		front.Close()
		t.Fatalf("dex: %v\n%s", err, p.logs)
	}
	front.Start()
	t.Cleanup(front.Close)
	if err := p.discover(); err != nil {
		t.Fatalf("dex: %v\n%s", err, p.logs)
	}
	return p
}

// config is the part of Dex's configuration file that Start writes. Dex
// reads YAML, and JSON is YAML.
type config struct {
	Issuer  string `json:"issuer"`
	Storage struct {
		Type string `json:"type"`
	} `json:"storage"`
	Web struct {
		HTTP string `json:"http"`
	} `json:"web"`
	Logger struct {
		Level string `json:"level"`
	} `json:"logger"`
	OAuth2 struct {
		SkipApprovalScreen bool     `json:"skipApprovalScreen"`
		ResponseTypes      []string `json:"responseTypes"`
	} `json:"oauth2"`
	Expiry struct {
		IDTokens      string `json:"idTokens,omitempty"`
		RefreshTokens struct {
			DisableRotation   bool   `json:"disableRotation"`
			ReuseInterval     string `json:"reuseInterval,omitempty"`
			ValidIfNotUsedFor string `json:"validIfNotUsedFor,omitempty"`
			AbsoluteLifetime  string `json:"absoluteLifetime,omitempty"`
		} `json:"refreshTokens"`
	} `json:"expiry"`
	StaticClients    []staticClient   `json:"staticClients"`
	EnablePasswordDB bool             `json:"enablePasswordDB"`
	StaticPasswords  []staticPassword `json:"staticPasswords"`
}

type staticClient struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectURIs"`
}

type staticPassword struct {
	Email             string `json:"email"`
	Hash              string `json:"hash"`
	Username          string `json:"username"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferredUsername"`
	EmailVerified     bool   `json:"emailVerified"`
	UserID            string `json:"userID"`
}

// writeConfig writes Dex's configuration for a process on port into dir.
func (p *Provider) writeConfig(dir string, port int, opts Options) (string, error) {
	var c config
	c.Issuer = p.Issuer
	c.Storage.Type = "memory"
	c.Web.HTTP = "127.0.0.1:" + strconv.Itoa(port)
	c.Logger.Level = opts.LogLevel
	if c.Logger.Level == "" {
		c.Logger.Level = "info"
	}
	c.OAuth2.SkipApprovalScreen = true
	c.OAuth2.ResponseTypes = []string{"code"}
	c.Expiry.IDTokens = duration(opts.IDTokenTTL)
	rt := &c.Expiry.RefreshTokens
	rt.DisableRotation = opts.DisableRotation
	rt.ReuseInterval = duration(opts.ReuseInterval)
	rt.ValidIfNotUsedFor = duration(opts.ValidIfNotUsedFor)
	rt.AbsoluteLifetime = duration(opts.AbsoluteLifetime)
	c.StaticClients = []staticClient{{ID: p.ClientID, Secret: p.ClientSecret, Name: "Cloakroom", RedirectURIs: []string{p.RedirectURI}}}
	c.EnablePasswordDB = true
	c.StaticPasswords = []staticPassword{{
		Email: Email, Hash: PasswordHash, Username: Username, Name: Name,
		PreferredUsername: Username, EmailVerified: true, UserID: UserID,
	}}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.yaml")
	return path, os.WriteFile(path, b, 0o600)
}

func duration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// run starts Dex listening on port and waits for its discovery document.
func (p *Provider) run(bin, dir string, port int, opts Options) (*gotool.Process, error) {
	path, err := p.writeConfig(dir, port, opts)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", path)
	cmd.Dir = dir
	// Dex's configuration comes from the file only, never from the test's
	// environment (DEX_* variables switch features).
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	ready := "http://127.0.0.1:" + strconv.Itoa(port) + issuerPath + "/.well-known/openid-configuration"
	return gotool.Start("dex", cmd, ready, startTimeout)
}

// discover reads Dex's discovery document through the proxy.
func (p *Provider) discover() error {
	var d struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		UserinfoEndpoint      string `json:"userinfo_endpoint"`
		JWKSURI               string `json:"jwks_uri"`
		RevocationEndpoint    string `json:"revocation_endpoint"`
		EndSessionEndpoint    string `json:"end_session_endpoint"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyCapture)).Decode(&d); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if d.Issuer != p.Issuer {
		return fmt.Errorf("discovery: issuer %q, want %q", d.Issuer, p.Issuer)
	}
	p.AuthorizationEndpoint, p.TokenEndpoint, p.UserinfoEndpoint, p.JWKSURI = d.AuthorizationEndpoint, d.TokenEndpoint, d.UserinfoEndpoint, d.JWKSURI
	p.RevocationEndpoint, p.EndSessionEndpoint = d.RevocationEndpoint, d.EndSessionEndpoint
	if !strings.HasPrefix(p.TokenEndpoint, p.Issuer+"/") {
		return fmt.Errorf("token endpoint %q is not behind the proxy %q", p.TokenEndpoint, p.Issuer)
	}
	return nil
}

// Logs returns what Dex has written to stdout and stderr so far.
func (p *Provider) Logs() string { return p.logs.String() }

// Requests returns a copy of every request Dex answered so far, in order
// of the answers.
func (p *Provider) Requests() []Request {
	var out []Request
	for _, x := range p.rec.Exchanges() {
		out = append(out, Request{Method: x.Method, Path: x.Path, Query: x.Query, Form: x.Form,
			Status: x.Status, Error: x.Error, Time: x.Answered, RefreshToken: x.RefreshToken})
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

// RefreshGrants returns how many refresh_token grants Dex answered,
// whatever the outcome.
func (p *Provider) RefreshGrants() int { return len(p.TokenRequests("refresh_token")) }

// LastRefreshToken returns the refresh token of Dex's latest successful
// token response (code or refresh grant), or "".
func (p *Provider) LastRefreshToken() string {
	reqs := p.TokenRequests("")
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].RefreshToken != "" {
			return reqs[i].RefreshToken
		}
	}
	return ""
}

// subject is Dex's "sub" for a user of a connector: the unpadded base64url
// of a protobuf message {1: user id, 2: connector id}.
func subject(userID, connID string) string {
	var b []byte
	for i, s := range []string{userID, connID} {
		b = append(b, byte(i+1)<<3|2, byte(len(s))) // both shorter than 128 bytes
		b = append(b, s...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TokenResponse is Dex's answer to a token request made by
// [Provider.Refresh].
type TokenResponse struct {
	Status       int
	Error        string `json:"error"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// Refresh redeems refreshToken at Dex's token endpoint as the static
// client (client_secret_basic), as another holder of the token would.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (TokenResponse, error) {
	var tr TokenResponse
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tr, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
	resp, err := (&http.Client{Timeout: callTimeout}).Do(req)
	if err != nil {
		return tr, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyCapture)).Decode(&tr); err != nil {
		return tr, fmt.Errorf("token response (%s): %w", resp.Status, err)
	}
	tr.Status = resp.StatusCode
	return tr, nil
}

// Userinfo calls Dex's userinfo endpoint with accessToken and returns the
// status and, on 200, the claims.
func (p *Provider) Userinfo(ctx context.Context, accessToken string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.UserinfoEndpoint, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := (&http.Client{Timeout: callTimeout}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	var claims map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBodyCapture)).Decode(&claims); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("userinfo: %w", err)
	}
	return resp.StatusCode, claims, nil
}
