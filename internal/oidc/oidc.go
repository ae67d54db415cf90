// Package oidc is Cloakroom's OpenID Connect confidential client:
// discovery (retried with backoff until it succeeds), the authorization code
// flow with PKCE, ID token verification, refresh, revocation (RFC 7009) and
// RP-initiated logout. It never touches sessions or HTTP handlers.
//
// Every call to the provider goes through one http.Client that follows no
// redirects, has explicit timeouts and reads at most MaxBodyBytes of any
// response body. ID and logout tokens are verified against the provider's
// JWKS only, with an allow-listed algorithm; the JWKS is fetched again for
// an unknown key id at most once per KeyRefetchInterval. Errors name what
// failed; they never quote a token, a code, the client secret or a body the
// provider sent.
package oidc

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/httpx"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// MaxBodyBytes bounds every response body read from the provider.
const MaxBodyBytes = 1 << 20

// DefaultClockSkew is the leeway on exp, iat and nbf of ID and logout
// tokens when Options.ClockSkew is negative.
const DefaultClockSkew = 60 * time.Second

// DefaultTokenType is the token_type token responses must carry when
// Options.TokenType is empty.
const DefaultTokenType = "Bearer"

// ErrNotReady is returned while discovery has not yet succeeded.
var ErrNotReady = errors.New("identity provider discovery has not succeeded yet")

// ErrUntrusted marks a provider answer that failed validation: a refreshed
// ID token naming another issuer, subject or audience, an azp that is not
// ours, a userinfo answer for another sub, a token type that was not asked
// for. Such an answer cannot be trusted, so the session it was meant for
// must end rather than retry. Errors wrap it with %w.
var ErrUntrusted = errors.New("the provider's answer failed validation")

// allowedAlgs are the only ID token signature algorithms accepted, whatever
// the provider advertises: never "none", never HMAC (whose key would be the
// client secret, shared by construction).
var allowedAlgs = []string{
	gooidc.RS256, gooidc.RS384, gooidc.RS512,
	gooidc.ES256, gooidc.ES384, gooidc.ES512,
	gooidc.PS256, gooidc.PS384, gooidc.PS512,
	gooidc.EdDSA,
}

// Options configure a Client.
type Options struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// ClientAuth is client_secret_basic (default), client_secret_post,
	// private_key_jwt (with SigningKeys), tls_client_auth or
	// self_signed_tls_client_auth (with ClientCertificate); see
	// clientauth.go.
	ClientAuth string
	// SigningKeys sign the client assertions of private_key_jwt.
	SigningKeys *SigningKeys
	// AssertionAudience is the aud of client assertions: AudienceIssuer
	// (default when empty) or AudienceEndpoint. A WithCredentials client
	// uses the same.
	AssertionAudience string
	// ClientCertificate, when set, is presented on every connection to the
	// provider that asks for one, and the endpoints of
	// mtls_endpoint_aliases are used (RFC 8705, see mtls.go): for
	// tls_client_auth and self_signed_tls_client_auth, and for
	// certificate-bound tokens with any method. HTTPClient's Transport
	// must then be an *http.Transport (or nil); it is cloned, its TLS
	// configuration kept.
	ClientCertificate     *tls.Certificate
	RedirectURL           string
	PostLogoutRedirectURL string
	Scopes                []string
	// AuthParams are added to every authorization request.
	AuthParams map[string]string
	// UserInfo makes Exchange, and Refresh when the provider sends a new ID
	// token, fetch the userinfo endpoint and merge its claims (see
	// userinfo.go). Discovery then fails without a userinfo_endpoint.
	UserInfo bool
	// HTTPClient defaults to one built by NewHTTPClient. Whatever client is
	// given, the Client uses a copy that follows no redirects, reads at most
	// MaxBodyBytes of a body and times out (after 15s when it has no
	// Timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock of token checks and of the JWKS refetch limit;
	// default time.Now.
	Now func() time.Time
	// ClockSkew is the leeway for a provider whose clock differs from
	// ours: ID and logout tokens are accepted up to ClockSkew past exp,
	// with iat and nbf up to ClockSkew in the future. Zero allows none;
	// negative means DefaultClockSkew.
	ClockSkew time.Duration
	// TokenType is the token_type every token response must carry,
	// compared without regard to case (RFC 6749 §5.1, §7.1): a response
	// with another type, or none, is refused with ErrUntrusted. Default
	// DefaultTokenType.
	TokenType string
	// OnClientAuthFailure, when set, is told each token request the
	// provider refused because it did not accept the client's credentials
	// (see IsClientAuthFailure), by grant: authorization_code,
	// refresh_token, client_credentials or token_exchange. Each such
	// refusal is also logged at error level.
	OnClientAuthFailure func(grant string)
	// PAR is PARAuto (default when empty), PARRequired or PAROff: see
	// par.go.
	PAR string
	// Profile is "" or ProfileFAPI2, which makes discovery refuse a
	// provider that does not meet the FAPI 2.0 Security Profile (see
	// fapi2.go) and implies PARRequired.
	Profile string
	// Provider, when set, is shared with the other clients of the issuer
	// (see provider.go): they fetch its discovery document once and
	// share its JWKS. Its issuer must be Issuer.
	Provider *Provider
}

// Client talks to one provider.
type Client struct {
	opts Options
	hc   *http.Client
	auth clientAuth // see clientauth.go
	log  *slog.Logger
	now  func() time.Time

	mu sync.RWMutex
	d  *discovered // nil until discovery succeeded

	// base, set by WithCredentials, is the client whose discovery this one
	// reads; d is then unused.
	base *Client
}

type discovered struct {
	verifier      *gooidc.IDTokenVerifier
	keys          *keySet // the verifier's, for signed userinfo answers
	userInfo      string  // userinfo_endpoint; set when Options.UserInfo
	oauth         *oauth2.Config
	endSession    string
	revocation    string
	issParam      bool
	authEndpoint  string
	tokenEndpoint string
	par           string // pushed_authorization_request_endpoint when PAR is used
}

// New returns a client; call Discover or Run before use.
func New(opts Options) *Client {
	c := &Client{opts: opts, hc: guardClient(opts.HTTPClient), auth: newClientAuth(opts), log: opts.Logger, now: opts.Now}
	if opts.ClientCertificate != nil {
		c.hc = withClientCertificate(c.hc, opts.ClientCertificate)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.hc = withDPoP(c.hc, c.now) // see dpop_client.go
	return c
}

// ClockSkew is the leeway the client grants token times: Options.ClockSkew
// with its default applied.
func (c *Client) ClockSkew() time.Duration {
	if c.opts.ClockSkew < 0 {
		return DefaultClockSkew
	}
	return c.opts.ClockSkew
}

// tokenType is the token_type token responses must carry.
func (c *Client) tokenType() string {
	if c.opts.TokenType == "" {
		return DefaultTokenType
	}
	return c.opts.TokenType
}

// Credentials identify a client at the provider's token endpoint.
type Credentials struct {
	ClientID     string
	ClientSecret string
	// ClientAuth is as Options.ClientAuth. The mutual TLS methods use the
	// certificate of the client WithCredentials is called on.
	ClientAuth string
	// SigningKeys sign the client assertions of private_key_jwt.
	SigningKeys *SigningKeys
}

// WithCredentials returns a client of the same provider that authenticates
// as cr, for the grants a client makes for itself: ClientCredentials,
// ExchangeToken and Revoke. It reads c's discovery (one discovery document,
// one JWKS: it is ready when c is, and its Discover and Run discover for c)
// and uses c's HTTP client, logger and clock. It signs no user in:
// AuthCodeURL, Exchange and Refresh refuse.
func (c *Client) WithCredentials(cr Credentials) *Client {
	o := c.opts
	o.ClientID, o.ClientSecret, o.ClientAuth, o.SigningKeys = cr.ClientID, cr.ClientSecret, cr.ClientAuth, cr.SigningKeys
	o.RedirectURL, o.PostLogoutRedirectURL, o.Scopes, o.AuthParams, o.UserInfo = "", "", nil, nil, false
	return &Client{opts: o, hc: c.hc, auth: newClientAuth(o), log: c.log, now: c.now, base: c}
}

// errNoLogin is the answer of a WithCredentials client asked to sign a user
// in: its discovery holds the other client's login configuration.
var errNoLogin = errors.New("this client was made for client credentials and token exchange; it signs no user in")

// login is get for the calls that sign a user in or keep a user's tokens.
func (c *Client) login() (*discovered, error) {
	if c.base != nil {
		return nil, errNoLogin
	}
	return c.get()
}

// defaultTimeout bounds a call to the provider when Options.HTTPClient does
// not say otherwise.
const defaultTimeout = 15 * time.Second

// NewHTTPClient returns a client that follows no redirects, bounds every
// phase of a call by timeout and every response body by MaxBodyBytes.
func NewHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport:     limitBody{newTransport(timeout)},
		Timeout:       timeout,
		CheckRedirect: noRedirect,
	}
}

// providerIdleTimeout is how long an idle connection to the provider is
// kept. Calls to the provider are few (logins, refreshes), so reuse gains
// little, while a server that closes idle connections sooner than we drop
// them makes a POST sent on one just as it closes fail with EOF, which
// net/http does not retry: a refresh would fail for nothing. Node.js
// servers (panva's oidc-provider, v9) close after 5 s by default.
const providerIdleTimeout = 4 * time.Second

func newTransport(timeout time.Duration) *http.Transport {
	t := httpx.NewTransport(timeout, 16)
	t.IdleConnTimeout = providerIdleTimeout
	return t
}

// guardClient returns hc, or a new default client, with the rules every
// call to the provider obeys whatever client the caller passed: no
// redirects (a redirected token request would carry the client secret and
// the code elsewhere), bodies bounded by MaxBodyBytes, and a timeout
// (defaultTimeout when hc has none). hc itself is not modified.
func guardClient(hc *http.Client) *http.Client {
	if hc == nil {
		return NewHTTPClient(defaultTimeout)
	}
	g := *hc
	g.CheckRedirect = noRedirect
	if g.Timeout <= 0 {
		g.Timeout = defaultTimeout
	}
	switch rt := g.Transport.(type) {
	case limitBody:
	case nil:
		g.Transport = limitBody{newTransport(g.Timeout)}
	default:
		g.Transport = limitBody{rt}
	}
	return &g
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// errBodyTooLarge ends reading a provider response longer than MaxBodyBytes.
var errBodyTooLarge = fmt.Errorf("provider response larger than %d bytes", MaxBodyBytes)

type limitBody struct{ rt http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedReader{rc: resp.Body, n: MaxBodyBytes}
	return resp, nil
}

// limitedReader fails, rather than ends quietly, past n bytes, so a
// truncated body is never taken for a whole one (http.MaxBytesReader's
// approach).
type limitedReader struct {
	rc io.ReadCloser
	n  int64 // bytes left; -1 once the limit was crossed
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) <= l.n {
		l.n -= int64(n)
		return n, err
	}
	n = int(l.n)
	l.n = -1
	return n, errBodyTooLarge
}

func (l *limitedReader) Close() error { return l.rc.Close() }

// ctx makes x/oauth2 use our client.
func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.hc)
}

// Ready reports whether discovery has succeeded.
func (c *Client) Ready() bool {
	if c.base != nil {
		return c.base.Ready()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.d != nil
}

func (c *Client) get() (*discovered, error) {
	if c.base != nil {
		return c.base.get()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.d == nil {
		return nil, ErrNotReady
	}
	return c.d, nil
}

// Discover fetches the provider's metadata once. The discovered issuer must
// equal Options.Issuer exactly; authorization_endpoint, token_endpoint and
// jwks_uri must be absolute URLs, and every endpoint must use https when the
// issuer does. A failed discovery keeps the previous metadata, if any. A
// client made by WithCredentials discovers for the client it came from.
func (c *Client) Discover(ctx context.Context) error {
	if c.base != nil {
		return c.base.Discover(ctx)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	meta, err := c.fetchMetadata(dctx)
	if err != nil {
		return fmt.Errorf("discovery at %q: %w", c.opts.Issuer, err)
	}
	if err := c.checkProfile(meta); err != nil {
		return fmt.Errorf("discovery at %q: %w", c.opts.Issuer, err)
	}
	par, err := c.parEndpoint(meta)
	if err != nil {
		return fmt.Errorf("discovery at %q: %w", c.opts.Issuer, err)
	}
	algs := c.signingAlgs()
	if len(meta.Algs) > 0 {
		algs = nil
		for _, a := range meta.Algs {
			if slices.Contains(c.signingAlgs(), a) {
				algs = append(algs, a)
			}
		}
		if len(algs) == 0 {
			return fmt.Errorf("discovery at %q: no acceptable id_token signing algorithm in %q", c.opts.Issuer, clipAll(meta.Algs))
		}
	}
	if len(meta.PKCE) > 0 && !slices.Contains(meta.PKCE, "S256") {
		return fmt.Errorf("discovery at %q: provider does not support PKCE S256", c.opts.Issuer)
	}
	userInfo, err := c.userInfoEndpoint(meta)
	if err != nil {
		return fmt.Errorf("discovery at %q: %w", c.opts.Issuer, err)
	}
	ep := oauth2.Endpoint{AuthURL: meta.AuthURL, TokenURL: meta.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	if c.opts.ClientAuth == "client_secret_post" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	// Our own key set, not go-oidc's remote one: see keySet. The
	// provider's clients share one.
	var keys *keySet
	if p := c.opts.Provider; p != nil {
		keys = p.keySet(meta.JWKSURL, c.hc, c.now)
	} else {
		keys = newKeySet(meta.JWKSURL, c.hc, c.now)
	}
	d := &discovered{
		verifier: gooidc.NewVerifier(c.opts.Issuer, keys, &gooidc.Config{
			ClientID:             c.opts.ClientID,
			SupportedSigningAlgs: algs,
			// go-oidc has no leeway: checkTimes does exp and nbf, with
			// the configured skew.
			SkipExpiryCheck: true,
			Now:             c.now,
		}),
		keys:     keys,
		userInfo: userInfo,
		oauth: &oauth2.Config{
			ClientID:     c.opts.ClientID,
			ClientSecret: c.opts.ClientSecret,
			Endpoint:     ep,
			RedirectURL:  c.opts.RedirectURL,
			Scopes:       c.opts.Scopes,
		},
		endSession:    meta.EndSession,
		revocation:    meta.Revocation,
		issParam:      meta.IssParam,
		authEndpoint:  ep.AuthURL,
		tokenEndpoint: ep.TokenURL,
		par:           par,
	}
	c.mu.Lock()
	c.d = d
	c.mu.Unlock()
	return nil
}

// Run retries discovery with exponential backoff (1s doubling to 1m) until
// it succeeds or ctx ends. It never gives up: a provider that is down at
// start must not keep the gateway from starting.
// A discovery that fails with ErrUnfit is logged at error level (see
// Start).
func (c *Client) Run(ctx context.Context) { c.run(ctx, nil) }

// AuthRequest is one login attempt's secrets.
type AuthRequest struct {
	State, Nonce, Verifier string
	Prompt                 string
	// DPoPJKT, when set, is sent as dpop_jkt (RFC 9449 §10): the
	// thumbprint of the DPoP key the code must be redeemed with.
	DPoPJKT string
}

// AuthCodeURL is where the browser goes to sign in. When PAR is in use
// (see par.go) it first pushes the request to the provider, bounded by
// ctx and at most 10 seconds: it then fails with ErrNotReady, a
// *PARError (the provider refused or failed), or a transport error or
// timeout.
func (c *Client) AuthCodeURL(ctx context.Context, a AuthRequest) (string, error) {
	d, err := c.login()
	if err != nil {
		return "", err
	}
	v := c.authParams(a)
	if d.par != "" {
		return c.pushAuthorization(ctx, d, v)
	}
	return withQuery(d.authEndpoint, v), nil
}

// CheckIss applies RFC 9207: when the provider advertises the iss response
// parameter it must be present and equal the issuer; when it does not but
// one was sent anyway, it must still match.
func (c *Client) CheckIss(iss string) error {
	d, err := c.get()
	if err != nil {
		return err
	}
	if iss == "" {
		if d.issParam || c.opts.Profile == ProfileFAPI2 {
			return errors.New("missing iss parameter")
		}
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(iss), []byte(c.opts.Issuer)) != 1 {
		return fmt.Errorf("iss parameter %q does not match the issuer", iss)
	}
	return nil
}

// Tokens is the result of a code exchange or a refresh.
type Tokens struct {
	IDToken      string
	AccessToken  string
	RefreshToken string
	TokenType    string
	// Expiry of the access token: from expires_in, else from the token's
	// own exp when it is a JWT, else zero.
	Expiry time.Time
	Scopes []string
	// From the verified ID token, with the userinfo answer's claims merged
	// in when Options.UserInfo is set.
	Subject string
	SID     string
	Claims  map[string]any
	// UserInfoMissed is set by a Refresh whose userinfo call failed for a
	// reason that puts neither the tokens nor the user in doubt (provider
	// down, timeout): Claims then hold the new ID token's claims only, and
	// the session should keep the userinfo claims it had (tokens.Apply
	// does).
	UserInfoMissed bool
}

// GrantError is an OAuth error answer from the token endpoint.
type GrantError struct {
	Code string // e.g. "invalid_grant"
	HTTP int
}

func (e *GrantError) Error() string {
	return fmt.Sprintf("token endpoint answered %d %s", e.HTTP, e.Code)
}

// Exchange trades an authorization code for tokens and verifies the ID
// token, including its nonce, which must not be empty.
//
// An answer that fails validation (its token_type, a missing or bad ID
// token, the userinfo answer for it) fails the login, and the tokens it
// carried are revoked, best effort (discard), before Exchange returns: no
// login, so its tokens must not outlive it.
//
// Exchange cannot tell a replayed nonce: the same nonce is accepted as often
// as it is passed. Single use is the caller's job: keep the nonce with the
// state of one login attempt and forget both at the callback.
func (c *Client) Exchange(ctx context.Context, code, verifier, nonce string) (_ *Tokens, err error) {
	d, err := c.login()
	if err != nil {
		return nil, err
	}
	if nonce == "" {
		// An empty expected nonce would turn the check off.
		return nil, errors.New("code exchange: no nonce to check the id token against")
	}
	// The package's own token request, not x/oauth2's: every grant
	// authenticates the client the same way (see clientauth.go).
	tok, err := c.postToken(ctx, d, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.opts.RedirectURL},
		"code_verifier": {verifier},
	})
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", c.refused(grantAuthorizationCode, err))
	}
	defer func() {
		if err != nil {
			c.discard(ctx, tok)
		}
	}()
	if err := c.checkTokenType(tok); err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("code exchange: no id_token in the token response")
	}
	t, err := c.verifyIDToken(ctx, d, raw, nonce, "")
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	fill(t, tok)
	if err := c.addUserInfo(ctx, d, t, false); err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	return t, nil
}

// Refresh uses a refresh token. A response without a new refresh token
// keeps the old one; a new ID token must name subject (and is refused when
// subject is empty).
//
// An answer that fails validation (its token_type, its ID token, the
// userinfo answer for it) is
// refused with an error wrapping ErrUntrusted, and the tokens it carried
// are revoked, best effort, before Refresh returns: the rotated refresh
// token must not outlive an answer nobody will use. The refresh token
// that was passed in is the caller's to revoke.
func (c *Client) Refresh(ctx context.Context, refreshToken, subject string, p TokenParams) (_ *Tokens, err error) {
	d, err := c.login()
	if err != nil {
		return nil, err
	}
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	p.set(v)
	tok, err := c.postToken(ctx, d, v)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", c.refused(grantRefreshToken, err))
	}
	defer func() {
		if errors.Is(err, ErrUntrusted) {
			c.discard(ctx, tok)
		}
	}()
	if err := c.checkTokenType(tok); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	t := &Tokens{Subject: subject}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if subject == "" {
			return nil, fmt.Errorf("refresh: no subject to compare the new id token with: %w", ErrUntrusted)
		}
		t, err = c.verifyIDToken(ctx, d, raw, "", subject)
		if err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	fill(t, tok)
	if err := c.addUserInfo(ctx, d, t, true); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

func fill(t *Tokens, tok *oauth2.Token) {
	t.AccessToken = tok.AccessToken
	t.RefreshToken = tok.RefreshToken
	t.TokenType = tok.TokenType
	t.Expiry = tok.Expiry
	if t.Expiry.IsZero() {
		t.Expiry = jwtExpiry(tok.AccessToken)
	}
	if s, _ := tok.Extra("scope").(string); s != "" {
		t.Scopes = strings.Fields(s)
	}
}

// Revoke revokes token at the provider's revocation endpoint (RFC 7009).
// Providers without one make this a no-op.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	d, err := c.get()
	if err != nil {
		return err
	}
	if d.revocation == "" || token == "" {
		return nil
	}
	v := url.Values{"token": {token}}
	if hint != "" {
		v.Set("token_type_hint", hint)
	}
	resp, err := c.post(ctx, d.revocation, v)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke: provider answered %d", resp.StatusCode)
	}
	return nil
}

// HasRevocation reports whether the provider has a revocation endpoint.
func (c *Client) HasRevocation() bool {
	d, err := c.get()
	return err == nil && d.revocation != ""
}

// EndSessionURL is the provider's RP-initiated logout URL with
// id_token_hint and post_logout_redirect_uri, or "" when the provider has
// no end_session_endpoint.
func (c *Client) EndSessionURL(idTokenHint string) string {
	d, err := c.get()
	if err != nil || d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	q.Set("client_id", c.opts.ClientID)
	if c.opts.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", c.opts.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Issuer is the configured issuer.
func (c *Client) Issuer() string { return c.opts.Issuer }

// TokenParams narrow a token to an API: RFC 8707 resource, an audience
// (RFC 8693 and providers such as Auth0) and scopes.
type TokenParams struct {
	Scopes   []string
	Resource string
	Audience string
}

func (p TokenParams) set(v url.Values) {
	if len(p.Scopes) > 0 {
		v.Set("scope", strings.Join(p.Scopes, " "))
	}
	if p.Resource != "" {
		v.Set("resource", p.Resource)
	}
	if p.Audience != "" {
		v.Set("audience", p.Audience)
	}
}

// ClientCredentials gets a token for Cloakroom itself (RFC 6749 §4.4).
func (c *Client) ClientCredentials(ctx context.Context, p TokenParams) (*Tokens, error) {
	d, err := c.get()
	if err != nil {
		return nil, err
	}
	v := url.Values{"grant_type": {"client_credentials"}}
	p.set(v)
	tok, err := c.postToken(ctx, d, v)
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", c.refused(grantClientCredentials, err))
	}
	if err := c.checkTokenType(tok); err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	t := &Tokens{}
	fill(t, tok)
	return t, nil
}

// Token types and grant of RFC 8693.
const (
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	tokenExchangeParamType = "subject_token_type"
)

// ExchangeToken trades subjectToken (a user's access token) for one scoped
// to another API (RFC 8693).
func (c *Client) ExchangeToken(ctx context.Context, subjectToken string, p TokenParams) (*Tokens, error) {
	d, err := c.get()
	if err != nil {
		return nil, err
	}
	v := url.Values{
		"grant_type":           {GrantTokenExchange},
		"subject_token":        {subjectToken},
		tokenExchangeParamType: {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
	}
	p.set(v)
	tok, err := c.postToken(ctx, d, v)
	if err != nil {
		return nil, fmt.Errorf("token exchange: %w", c.refused(grantTokenExchange, err))
	}
	if err := c.checkTokenType(tok); err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	t := &Tokens{}
	fill(t, tok)
	return t, nil
}

// jwtExpiry reads exp from an access token that is a JWT, without trusting
// it: the value only schedules our refresh; the API verifies the token.
func jwtExpiry(tok string) time.Time {
	if strings.Count(tok, ".") != 2 {
		return time.Time{}
	}
	parsed, err := jwt.ParseSigned(tok, allAlgs)
	if err != nil {
		return time.Time{}
	}
	var claims jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil || claims.Expiry == nil {
		return time.Time{}
	}
	return claims.Expiry.Time()
}

var allAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}
