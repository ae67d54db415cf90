package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/oidctest/zitadelop"
	"github.com/cloakroom/cloakroom/internal/server"
)

// countedProvider is the demo provider behind a server that counts the
// fetches of its discovery document and of its JWKS.
type countedProvider struct {
	*idp.Provider
	srv             *httptest.Server
	discovery, jwks atomic.Int32
}

// newCountedProvider starts the demo provider with clients (their
// redirect URIs are under their base URLs) and the users alice and bob.
func newCountedProvider(t *testing.T, clients []idp.Client, mod func(*idp.Options)) *countedProvider {
	t.Helper()
	cp := &countedProvider{}
	var h http.Handler
	cp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			cp.discovery.Add(1)
		case "/jwks":
			cp.jwks.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(cp.srv.Close)
	opts := idp.Options{
		Issuer:  cp.srv.URL,
		Clients: clients,
		Users: []idp.User{
			{Subject: "alice-1", Username: "alice", Password: "alice", Claims: map[string]any{"name": "Alice"}},
			{Subject: "bob-1", Username: "bob", Password: "bob", Claims: map[string]any{"name": "Bob"}},
		},
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := idp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h = p
	cp.Provider = p
	return cp
}

// demoClient is a client of the demo provider that signs users in at base.
func demoClient(id, base string) idp.Client {
	return idp.Client{ID: id, Secret: id + "-secret", RedirectURIs: []string{base + "bff/callback"}, PostLogoutRedirectURIs: []string{base}}
}

// runFrontends runs a gateway on ln with the frontends of entries (after
// a top level naming issuer) and a shared API route.
func runFrontends(t *testing.T, ln net.Listener, issuer, entries string) *gateway {
	t.Helper()
	up := newUpstream(t, nil)
	data := fmt.Sprintf(`oidc:
  issuer: %s
session:
  store: memory
  keys: [%q]
apis:
  - {path: /api/orders/, upstream: %q, token: user}
frontends:
%s`, issuer, testKey, up.URL+"/v1/", entries)
	cfg, err := config.Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, data)
	}
	return runGateway(t, ln, cfg, server.Options{})
}

func listenPort(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return ln, port
}

// TestFrontendsShareProvider: two frontends, two clients of one provider,
// and a third frontend of another provider (zitadel's op) on one gateway.
// The two of one provider fetch its discovery document once and its JWKS
// once between them; a user signs in to all three, and each frontend
// answers its own session.
func TestFrontendsShareProvider(t *testing.T) {
	ln, port := listenPort(t)
	shop := "http://shop.localhost:" + port + "/"
	admin := "http://admin.localhost:" + port + "/"
	zit := "http://zitadel.localhost:" + port + "/"
	demo := newCountedProvider(t, []idp.Client{demoClient("c0", shop), demoClient("c1", admin)}, nil)
	op := zitadelop.Start(t, zit+"bff/callback", zit)
	runFrontends(t, ln, demo.srv.URL, fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: %q, oidc: {client_id: c1, client_secret: c1-secret}}
  - {name: zitadel, public_url: %q, oidc: {issuer: %q, client_id: %q, client_secret: %q}}
`, strings.TrimSuffix(shop, "/"), strings.TrimSuffix(admin, "/"), strings.TrimSuffix(zit, "/"), op.Issuer, op.ClientID, op.ClientSecret))

	b := loopbackBrowser(t)
	for _, base := range []string{shop, admin, zit} {
		waitReady(t, b, base)
	}
	for _, base := range []string{shop, admin} {
		if r := signInAt(t, b, base, "alice"); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-in at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}
	auth := location(t, b.get(zit+"bff/login?returnUrl=%2Fhome"))
	cb, err := op.Login(t.Context(), b.c, auth.String())
	if err != nil {
		t.Fatalf("login at zitadel's op: %v", err)
	}
	if r := b.get(cb.String()); r.StatusCode != http.StatusOK {
		t.Fatalf("callback at %s: %d %s", zit, r.StatusCode, r.Body)
	}

	for _, tc := range []struct{ base, sub string }{{shop, "alice-1"}, {admin, "alice-1"}, {zit, op.Subject}} {
		code, claims := userOf(t, b, tc.base)
		if code != http.StatusOK || claims["sub"] != tc.sub {
			t.Errorf("/bff/user at %s: got %d %v, want 200 with sub %s", tc.base, code, claims, tc.sub)
		}
	}
	if got := demo.discovery.Load(); got != 1 {
		t.Errorf("discovery documents fetched from the shared provider: got %d, want 1", got)
	}
	if got := demo.jwks.Load(); got != 1 {
		t.Errorf("JWKS fetched from the shared provider: got %d, want 1", got)
	}
}

// recorder is a back-channel HTTP client that reaches *.localhost on
// loopback and keeps each logout token it posts.
type recorder struct {
	mu     sync.Mutex
	tokens []string
}

func (rc *recorder) client() *http.Client {
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		if v, err := url.ParseQuery(string(body)); err == nil {
			rc.mu.Lock()
			rc.tokens = append(rc.tokens, v.Get("logout_token"))
			rc.mu.Unlock()
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		return tr.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFrontendsBackchannelOneClient: two frontends, two clients of one
// provider, and one user signed in to both in one provider session, so
// that both sessions share the sub and the provider's sid. The
// provider's back-channel logout for client A (aud A), delivered to A's
// endpoint, ends A's session only; the same token, and a fresh one for
// A, posted to B's endpoint are refused (400) and end nothing.
func TestFrontendsBackchannelOneClient(t *testing.T) {
	ln, port := listenPort(t)
	shop := "http://shop.localhost:" + port + "/"
	admin := "http://app.localhost:" + port + "/admin/"
	rec := &recorder{}
	a := demoClient("c0", shop)
	a.BackchannelLogoutURI = shop + "bff/backchannel"
	demo := newCountedProvider(t, []idp.Client{a, demoClient("c1", admin)}, func(o *idp.Options) {
		o.BackchannelHTTPClient = rec.client()
	})
	runFrontends(t, ln, demo.srv.URL, fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: %q, path: /admin/, oidc: {client_id: c1, client_secret: c1-secret}}
`, strings.TrimSuffix(shop, "/"), strings.TrimSuffix(strings.TrimSuffix(admin, "/admin/"), "/")))

	b := loopbackBrowser(t)
	for _, base := range []string{shop, admin} {
		waitReady(t, b, base)
		if r := signInAt(t, b, base, "alice"); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-in at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}
	if got := demo.Stats().Logins; got != 1 {
		t.Fatalf("password logins at the provider: got %d, want 1 (one provider session, one sid, for both clients)", got)
	}

	demo.LogoutSubject("alice-1")
	demo.WaitBackchannel()
	ds := demo.BackchannelDeliveries()
	if len(ds) != 1 || ds[0].ClientID != "c0" || ds[0].Status != http.StatusOK || ds[0].SID == "" {
		t.Fatalf("back-channel deliveries: got %+v, want one to c0 answered 200", ds)
	}
	if code, _ := userOf(t, b, shop); code != http.StatusUnauthorized {
		t.Errorf("shop after its client's back-channel logout: got %d, want 401", code)
	}
	if code, _ := userOf(t, b, admin); code != http.StatusOK {
		t.Errorf("admin after the other client's back-channel logout: got %d, want 200", code)
	}

	rec.mu.Lock()
	delivered := rec.tokens[len(rec.tokens)-1]
	rec.mu.Unlock()
	fresh, err := demo.SignLogoutToken("c0", "alice-1", ds[0].SID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token string }{{"the token delivered to A", delivered}, {"a fresh token for A", fresh}} {
		resp, err := b.c.PostForm(admin+"bff/backchannel", url.Values{"logout_token": {tc.token}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s at B's endpoint: got %d, want 400", tc.name, resp.StatusCode)
		}
		if code, _ := userOf(t, b, admin); code != http.StatusOK {
			t.Errorf("admin after %s at its endpoint: got %d, want 200", tc.name, code)
		}
	}
}
