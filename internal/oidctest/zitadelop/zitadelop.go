// Package zitadelop is TEST SUPPORT ONLY: it runs a real, third-party OpenID
// Provider (the op package of github.com/zitadel/oidc/v3 backed by that
// project's in-memory example storage) on a loopback port so that integration
// tests can exercise Cloakroom against an OP implementation that is not part
// of this repository.
//
// It is an ordinary (non-_test) package only so that tests in other packages
// can import it. Production code must never import it.
//
// Typical use from a relying-party test:
//
//	rp := httptest.NewServer(...)                         // start the relying party first
//	p := zitadelop.Start(t, rp.URL+"/callback", rp.URL+"/")
//	// configure the relying party with p.Issuer, p.ClientID, p.ClientSecret,
//	// send a browser-like client (with a cookie jar) to the login route,
//	// then let p.Login finish the provider's login pages:
//	cb, err := p.Login(ctx, browser, authURL)
//
// The provider is a confidential "web" client setup: authorization code flow,
// PKCE (S256) allowed, client_secret_basic (client_secret_post is also
// accepted), refresh tokens issued when offline_access is requested,
// token revocation, and RP-initiated logout (end_session_endpoint) accepting
// id_token_hint and the registered post_logout_redirect_uri.
package zitadelop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// DefaultClientID is the client_id registered by [Start].
const DefaultClientID = "cloakroom-test"

// loggedOutPath serves the provider's default post-logout page, used when
// end_session is called without a (valid) post_logout_redirect_uri.
const loggedOutPath = "/logged-out"

// maxBodyCapture bounds how much of a request body is buffered for the
// request log.
const maxBodyCapture = 1 << 20

// Provider is a running zitadel/oidc OpenID Provider. All fields are
// read-only after [Start] returns.
type Provider struct {
	// Issuer is the OP's issuer, "http://127.0.0.1:PORT" (no trailing
	// slash). It is exactly the "issuer" of the discovery document and the
	// "iss" of issued ID tokens.
	Issuer string

	// ClientID and ClientSecret identify the confidential web client that
	// Start registered (client_secret_basic).
	ClientID, ClientSecret string

	// RedirectURI and PostLogoutRedirectURI are the URIs registered for the
	// client (exact match is required by the OP).
	RedirectURI, PostLogoutRedirectURI string

	// Username and Password log in the test user on the provider's login
	// page (see [Provider.Login]).
	Username, Password string

	// Subject is the test user's "sub" as it appears in ID tokens and
	// userinfo responses.
	Subject string

	// Email, EmailVerified, Name, GivenName, FamilyName and
	// PreferredUsername are the test user's profile claims as served by the
	// userinfo endpoint (scopes email/profile). They are only put into ID
	// tokens when [WithUserinfoClaimsInIDToken] is used.
	Email                       string
	EmailVerified               bool
	Name, GivenName, FamilyName string
	PreferredUsername           string

	// Absolute endpoint URLs, as advertised by discovery.
	AuthorizationEndpoint string
	TokenEndpoint         string
	UserinfoEndpoint      string
	RevocationEndpoint    string
	EndSessionEndpoint    string
	IntrospectionEndpoint string
	JWKSURI               string

	tokenPath, revokePath, endSessionPath string

	// serve serialises all requests: the example storage is not safe for
	// fully concurrent use (a few of its methods read maps without locking).
	serve sync.Mutex

	mu       sync.Mutex
	requests []Request
}

// Request is one request received by the provider, as recorded for tests.
type Request struct {
	Method string
	Path   string
	// Query is the parsed URL query.
	Query url.Values
	// Form is the parsed application/x-www-form-urlencoded body (POST only).
	Form url.Values
	// BasicAuthUser is the (still URL-encoded) user name of an HTTP Basic
	// Authorization header, if any; the password is not recorded.
	BasicAuthUser string
}

// Option customises [Start].
type Option func(*config)

type config struct {
	idTokenUserinfoClaims bool
}

// WithUserinfoClaimsInIDToken makes the OP put the profile/email claims of
// the granted scopes into ID tokens as well (by default, like the example
// storage and as OIDC Core 5.4 prescribes when an access token is issued,
// they are only available from the userinfo endpoint).
func WithUserinfoClaimsInIDToken() Option {
	return func(c *config) { c.idTokenUserinfoClaims = true }
}

// Start runs the provider on 127.0.0.1:0 with a confidential web client
// registered for redirectURI and postLogoutRedirectURI (code flow, PKCE
// allowed, client_secret_basic, refresh tokens with offline_access,
// revocation enabled) and stops it at test cleanup.
//
// postLogoutRedirectURI may be empty if the test does not exercise logout.
// The provider keeps no login session: every authorization request shows the
// login page again (prompt=none always yields error=login_required).
func Start(t testing.TB, redirectURI, postLogoutRedirectURI string, opts ...Option) *Provider {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}

	p := &Provider{
		ClientID:              DefaultClientID,
		ClientSecret:          randomHex(t, 16),
		RedirectURI:           redirectURI,
		PostLogoutRedirectURI: postLogoutRedirectURI,
	}

	// The issuer must be known before the OP is built, so reserve the
	// listener first and install the handler afterwards.
	srv := httptest.NewUnstartedServer(nil)
	p.Issuer = "http://" + srv.Listener.Addr().String()

	users := storage.NewUserStore(p.Issuer)
	user := users.GetUserByID("id1")
	if user == nil {
		t.Fatal("zitadelop: example user store has no user id1")
	}
	p.Username, p.Password, p.Subject = user.Username, user.Password, user.ID
	p.Email, p.EmailVerified = user.Email, user.EmailVerified
	p.GivenName, p.FamilyName = user.FirstName, user.LastName
	p.Name = user.FirstName + " " + user.LastName
	p.PreferredUsername = user.Username

	// A per-provider client map keeps parallel tests independent of the
	// example's package-global client registry (storage.RegisterClients).
	clients := map[string]*storage.Client{
		p.ClientID: storage.WebClient(p.ClientID, p.ClientSecret, redirectURI),
	}
	var postLogout []string
	if postLogoutRedirectURI != "" {
		postLogout = []string{postLogoutRedirectURI}
	}
	store := &opStorage{
		Storage:               storage.NewStorageWithClients(users, clients),
		clientID:              p.ClientID,
		postLogoutRedirectURI: postLogout,
		idTokenUserinfoClaims: cfg.idTokenUserinfoClaims,
	}

	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatalf("zitadelop: %v", err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                key,
		CryptoKeyId:              "key1",
		DefaultLogoutRedirectURI: loggedOutPath,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
	}, store, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("zitadelop: creating OP: %v", err)
	}

	p.AuthorizationEndpoint = provider.AuthorizationEndpoint().Absolute(p.Issuer)
	p.TokenEndpoint = provider.TokenEndpoint().Absolute(p.Issuer)
	p.UserinfoEndpoint = provider.UserinfoEndpoint().Absolute(p.Issuer)
	p.RevocationEndpoint = provider.RevocationEndpoint().Absolute(p.Issuer)
	p.EndSessionEndpoint = provider.EndSessionEndpoint().Absolute(p.Issuer)
	p.IntrospectionEndpoint = provider.IntrospectionEndpoint().Absolute(p.Issuer)
	p.JWKSURI = provider.KeysEndpoint().Absolute(p.Issuer)
	p.tokenPath = provider.TokenEndpoint().Relative()
	p.revokePath = provider.RevocationEndpoint().Relative()
	p.endSessionPath = provider.EndSessionEndpoint().Relative()

	mux := http.NewServeMux()
	mux.Handle(loginPath, newLoginHandler(store.Storage, op.AuthCallbackURL(provider),
		op.NewIssuerInterceptor(provider.IssuerFromRequest)))
	mux.HandleFunc(loggedOutPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "signed out successfully")
	})
	mux.Handle("/", provider)

	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.record(r)
		p.serve.Lock()
		defer p.serve.Unlock()
		mux.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// record stores a copy of the request's interesting parts, restoring the
// body for the real handler.
func (p *Provider) record(r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	if u, _, ok := r.BasicAuth(); ok {
		rec.BasicAuthUser = u
	}
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyCapture))
		rest := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), rest), rest}
		if err == nil {
			if form, err := url.ParseQuery(string(body)); err == nil {
				rec.Form = form
			}
		}
	}
	p.mu.Lock()
	p.requests = append(p.requests, rec)
	p.mu.Unlock()
}

// Requests returns a copy of all requests the provider has received so far,
// in arrival order.
func (p *Provider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

func (p *Provider) count(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.requests {
		if r.Path == path && (method == "" || r.Method == method) {
			n++
		}
	}
	return n
}

// Revocations returns how many requests (POST) the revocation endpoint
// received, whatever their outcome.
func (p *Provider) Revocations() int { return p.count(http.MethodPost, p.revokePath) }

// RevokedTokens returns the "token" parameter of every revocation request
// received so far, in order.
func (p *Provider) RevokedTokens() []string {
	var out []string
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost && r.Path == p.revokePath {
			out = append(out, r.Form.Get("token"))
		}
	}
	return out
}

// TokenRequests returns how many requests (POST) the token endpoint received
// (code exchanges and refreshes), whatever their outcome.
func (p *Provider) TokenRequests() int { return p.count(http.MethodPost, p.tokenPath) }

// RefreshRequests returns how many token requests used
// grant_type=refresh_token.
func (p *Provider) RefreshRequests() int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == http.MethodPost && r.Path == p.tokenPath && r.Form.Get("grant_type") == "refresh_token" {
			n++
		}
	}
	return n
}

// EndSessions returns how many requests (any method) the end_session
// endpoint received.
func (p *Provider) EndSessions() int { return p.count("", p.endSessionPath) }

// opStorage adapts the example storage: the example's client type cannot be
// given post-logout redirect URIs (its fields are unexported and it always
// reports none), so the registered client is wrapped here.
type opStorage struct {
	*storage.Storage
	clientID              string
	postLogoutRedirectURI []string
	idTokenUserinfoClaims bool
}

func (s *opStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, clientID)
	if err != nil || clientID != s.clientID {
		return c, err
	}
	return &client{Client: c, postLogout: s.postLogoutRedirectURI, idTokenUserinfo: s.idTokenUserinfoClaims}, nil
}

type client struct {
	op.Client
	postLogout      []string
	idTokenUserinfo bool
}

func (c *client) PostLogoutRedirectURIs() []string { return c.postLogout }

func (c *client) IDTokenUserinfoClaimsAssertion() bool { return c.idTokenUserinfo }

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("zitadelop: %v", err)
	}
	return hex.EncodeToString(b)
}
