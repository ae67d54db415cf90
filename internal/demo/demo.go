// Package demo is what `cloakroom demo` runs behind the gateway: a
// development OpenID provider (package idp) with two confidential clients and
// three users, a small bearer-protected API, two embedded single-page apps (a
// shop at "/" and an admin console at AdminPath) and the gateway
// configuration that serves both as frontends of one process.
//
// Everything listens on 127.0.0.1 only, on random ports, and lives until its
// context is done or Close is called. None of it is meant for production: the
// users have their names as passwords.
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
)

// The clients the demo provider registers for the gateway: ClientID for
// the shop at "/", AdminClientID for the admin console at AdminPath.
const (
	ClientID      = "cloakroom-demo"
	AdminClientID = "cloakroom-demo-admin"
)

// AdminPath is the admin console's base path on the gateway's origin.
const AdminPath = "/admin/"

// Paths below a frontend's base path (Options.PublicURL for the shop,
// PublicURL+AdminPath for the admin console) that its client is registered
// with.
const (
	CallbackPath    = "/bff/callback"
	BackchannelPath = "/bff/backchannel"
	PostLogoutPath  = "/"
)

// LoginHint is shown under the provider's login form.
const LoginHint = "Demo users: alice / alice (admin), bob / bob (user), carol / carol (member of many groups: large tokens)."

// DefaultAccessTokenTTL is the provider's access-token lifetime when
// Options.AccessTokenTTL is zero.
const DefaultAccessTokenTTL = 5 * time.Minute

// Server timeouts of the demo listeners. The API's write timeout leaves room
// for its short event stream.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Options configure StartBackends.
type Options struct {
	// PublicURL is the origin the browser sees the gateway at, such as
	// "http://localhost:8080". The demo client's redirect, post-logout and
	// back-channel logout URIs are derived from it. Required.
	PublicURL string
	// AccessTokenTTL is the provider's access-token lifetime; zero means
	// DefaultAccessTokenTTL. Short values exercise the gateway's refresh.
	AccessTokenTTL time.Duration
	// Logger receives the provider's and the servers' logs; nil discards them.
	Logger *slog.Logger
	// ProviderHost names the provider in its issuer URL; default
	// "127.0.0.1", another site than a gateway at localhost, as in most
	// deployments. "localhost" puts it on the gateway's site (as with
	// auth.example.com beside app.example.com), where a silent login's
	// iframe still sees the provider's cookie in browsers that block
	// third-party cookies. It listens on 127.0.0.1 either way.
	ProviderHost string
}

// Backends are the demo's provider and API, listening on 127.0.0.1 random
// ports.
type Backends struct {
	IdP *idp.Provider
	// IssuerURL is the provider's issuer, http://127.0.0.1:PORT (no trailing
	// slash); discovery is at IssuerURL + "/.well-known/openid-configuration".
	IssuerURL string
	// PublicURL is Options.PublicURL without a trailing slash.
	PublicURL string
	// ClientID is ClientID; ClientSecret is random, made at start.
	ClientID, ClientSecret string
	// AdminClientID is AdminClientID; AdminClientSecret is random, made
	// at start.
	AdminClientID, AdminClientSecret string
	// APIURL is the demo API's base, http://127.0.0.1:PORT/ (with the slash).
	APIURL string
	// Users are Users(): alice/alice (role admin), bob/bob and carol/carol.
	Users []idp.User

	servers   []*http.Server
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// StartBackends starts the provider and the demo API on 127.0.0.1. The
// provider has two clients with random secrets: ClientID registered for
// PublicURL+CallbackPath, post-logout PublicURL+PostLogoutPath and
// back-channel logout PublicURL+BackchannelPath, and AdminClientID for the
// same paths under PublicURL+AdminPath; refresh-token rotation and reuse
// detection are on. The API accepts the provider's access tokens. Both stop
// when ctx is done or Close is called.
func StartBackends(ctx context.Context, opts Options) (*Backends, error) {
	public, err := publicOrigin(opts.PublicURL)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ttl := opts.AccessTokenTTL
	if ttl == 0 {
		ttl = DefaultAccessTokenTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("demo: access token TTL %v is negative", ttl)
	}
	secret, err := randomSecret()
	if err != nil {
		return nil, err
	}
	adminSecret, err := randomSecret()
	if err != nil {
		return nil, err
	}

	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: provider listener: %w", err)
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		idpLn.Close()
		return nil, fmt.Errorf("demo: API listener: %w", err)
	}

	b := &Backends{
		IssuerURL:         "http://" + net.JoinHostPort(cmp.Or(opts.ProviderHost, "127.0.0.1"), strconv.Itoa(idpLn.Addr().(*net.TCPAddr).Port)),
		PublicURL:         public,
		ClientID:          ClientID,
		ClientSecret:      secret,
		AdminClientID:     AdminClientID,
		AdminClientSecret: adminSecret,
		APIURL:            "http://" + apiLn.Addr().String() + "/",
		Users:             Users(),
		done:              make(chan struct{}),
	}
	provider, err := idp.New(idp.Options{
		Issuer: b.IssuerURL,
		Clients: []idp.Client{
			gatewayClient(b.ClientID, b.ClientSecret, public),
			gatewayClient(b.AdminClientID, b.AdminClientSecret, public+strings.TrimSuffix(AdminPath, "/")),
		},
		Users:               b.Users,
		AccessTokenTTL:      ttl,
		RotateRefreshTokens: true,
		CrossSiteSession:    true, // silent login from the SPA's iframe
		ReuseDetection:      true,
		LoginHint:           LoginHint,
		Now:                 time.Now,
		Logger:              log.With("component", "demo-idp"),
	})
	if err != nil {
		idpLn.Close()
		apiLn.Close()
		return nil, fmt.Errorf("demo: provider: %w", err)
	}
	b.IdP = provider

	b.servers = []*http.Server{
		newServer(provider, log.With("component", "demo-idp")),
		newServer(NewAPI(provider.VerifyAccessToken), log.With("component", "demo-api")),
	}
	for i, ln := range []net.Listener{idpLn, apiLn} {
		go func() {
			if err := b.servers[i].Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("demo server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	// This goroutine owns the backends' lifetime, so it alone watches ctx.
	go func() {
		select {
		case <-ctx.Done():
			b.Close()
		case <-b.done:
		}
	}()
	log.Info("demo backends started", "issuer", b.IssuerURL, "api", b.APIURL)
	return b, nil
}

// Close stops the provider and the API, waiting a few seconds for requests in
// flight. It is safe to call more than once; later calls return the first
// result.
func (b *Backends) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		for _, s := range b.servers {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, err, s.Close())
			}
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// Users returns the demo's users: alice (password "alice", role "admin") and
// bob (password "bob", role "user"). Each has the claims name, email,
// email_verified, role and groups. A fresh slice is returned on every call.
func Users() []idp.User {
	return []idp.User{
		{
			Subject:  "alice-0001",
			Username: "alice",
			Password: "alice",
			Claims: map[string]any{
				"name":           "Alice Anderson",
				"email":          "alice@example.com",
				"email_verified": true,
				"role":           "admin",
				"groups":         []string{"admins", "users"},
			},
		},
		{
			Subject:  "bob-0001",
			Username: "bob",
			Password: "bob",
			Claims: map[string]any{
				"name":           "Bob Brown",
				"email":          "bob@example.com",
				"email_verified": true,
				"role":           "user",
				"groups":         []string{"users"},
			},
		},
		{
			Subject:  "carol-0001",
			Username: "carol",
			Password: "carol",
			Claims: map[string]any{
				"name":           "Carol Chen",
				"email":          "carol@example.com",
				"email_verified": true,
				"role":           "user",
				"groups":         manyGroups(60),
			},
		},
	}
}

// gatewayClient is the registration of a gateway frontend whose base URL
// (origin and path, without a trailing slash) is base.
func gatewayClient(id, secret, base string) idp.Client {
	return idp.Client{
		ID:                     id,
		Secret:                 secret,
		RedirectURIs:           []string{base + CallbackPath},
		PostLogoutRedirectURIs: []string{base + PostLogoutPath},
		BackchannelLogoutURI:   base + BackchannelPath,
	}
}

func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// publicOrigin checks raw is an absolute http(s) URL with no query or
// fragment and returns it without a trailing slash.
func publicOrigin(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("demo: public URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("demo: public URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("demo: public URL %q must be an absolute http(s) URL without credentials, query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

func randomSecret() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("demo: client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// manyGroups makes n group names, enough to make tokens too large for one
// cookie (the cookie session store then chunks them).
func manyGroups(n int) []string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("department-%02d-project-team", i)
	}
	return g
}
