package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
)

// benchDPoPGateway is benchGateway with oidc.dpop, signed in at
// oidc-provider (DPoP-bound tokens, no nonces: the upstream asks for
// none), so every call through the route signs a proof with the session's
// key. It needs Node.js (see package nodeop).
func benchDPoPGateway(b *testing.B, upstream string) (public string, h http.Handler, cookie *http.Cookie) {
	b.Helper()
	ln, public := listenLocal(b)
	p := nodeop.Start(b, nodeop.Options{DPoP: true, Clients: []nodeop.Client{{
		ClientID: "bff", ClientSecret: "bff-secret", TokenEndpointAuthMethod: "client_secret_basic",
		DPoPBoundAccessTokens: true, RedirectURIs: []string{public + "/bff/callback"},
	}}})
	cfg := baseConfig(public, p.Issuer, "bff", "bff-secret")
	cfg.OIDC.DPoP = true
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: upstream + "/", Token: "user"}}
	cfg.RateLimit = config.RateLimit{APIPerSecond: 1 << 30, LoginPerMinute: 1 << 30}
	srv, err := server.New(cfg, server.Options{HTTPClient: p.CA.HTTPClient(b)})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.OIDC.Discover(b.Context()); err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler}
	go hs.Serve(ln)
	br := newBrowser(b)
	auth := location(b, br.get(public+"/bff/login?returnUrl=/"))
	cb, err := p.Login(b.Context(), p.Browser(b), auth.String())
	if err != nil || !strings.HasPrefix(cb.String(), public+"/bff/callback") {
		b.Fatalf("provider login: %v %v", cb, err)
	}
	br.get(cb.String())
	hs.Close()
	for _, c := range br.jar.Cookies(mustURL(public)) {
		if c.Name == "__Host-Http-cloakroom" {
			cookie = c
		}
	}
	if cookie == nil {
		b.Fatal("no session after login")
	}
	return public, srv.Handler, cookie
}
