package main

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo"
)

// Frontend names of the demo configuration; with demo.Options.PublicURL
// http://localhost:8080 they default to the session cookies
// __Host-Http-cloakroom-shop (Path=/) and __Secure-Http-cloakroom-admin
// (Path=/admin/).
const (
	demoShopFrontend  = "shop"
	demoAdminFrontend = "admin"
)

// demoConfig returns the gateway configuration of the demo backends b: a memory session
// store sealed with a fresh random key, and two frontends on the one origin
// PublicURL, each with its own client at the provider and so its own
// sessions:
//
//   - shop at "/": the demo API under /api/demo/ (the user's token), the
//     same API under /api/inventory/ with a token exchanged for the
//     audience demo-inventory, and the composite /bff/dashboard over both.
//   - admin at demo.AdminPath: the demo API's admin routes under /admin/api/,
//     for sessions whose role claim is demo.AdminRole only (403 for others,
//     before the API is called).
//
// Neither frontend has frontend.dir: the command serves the embedded demo.SPA()
// and AdminSPA(). Its routes are the frontends' own, so no shop route is
// served under /admin/.
func demoConfig(b *demo.Backends) *config.Config {
	key := make([]byte, 32)
	rand.Read(key)
	cfg := config.Default()
	cfg.OIDC.Issuer = b.IssuerURL
	cfg.Session.Store = "memory"
	cfg.Session.Keys = []string{"base64:" + base64.StdEncoding.EncodeToString(key)}
	cfg.Frontends = []config.FrontendSpec{
		{
			Name:      demoShopFrontend,
			PublicURL: b.PublicURL,
			OIDC:      config.OIDC{ClientID: b.ClientID, ClientSecret: b.ClientSecret},
			APIs: []config.API{
				{Path: "/api/demo/", Upstream: b.APIURL, Token: config.TokenUser},
				// The same API, reached with a token exchanged for its audience.
				{Path: "/api/inventory/", Upstream: b.APIURL, Token: config.TokenExchange, Audience: "demo-inventory", Scopes: []string{"inventory.read"}},
			},
			// One call from the SPA, two behind it; the mobile profile keeps less.
			Composites: []config.Composite{{
				Path: "/bff/dashboard",
				Parts: map[string]config.Part{
					"me":        {API: "/api/demo/", Path: "whoami", Required: true},
					"inventory": {API: "/api/inventory/", Path: "whoami"},
				},
				Profiles: map[string]config.Profile{"mobile": {Allow: []string{"me.sub", "me.message", "inventory.aud"}}},
			}},
		},
		{
			Name:      demoAdminFrontend,
			PublicURL: b.PublicURL,
			Path:      demo.AdminPath,
			OIDC:      config.OIDC{ClientID: b.AdminClientID, ClientSecret: b.AdminClientSecret},
			APIs: []config.API{{
				Path:     "/api/",
				Upstream: b.APIURL + "admin/",
				Token:    config.TokenUser,
				Require:  &config.Require{Claims: map[string][]string{"role": {demo.AdminRole}}},
			}},
		},
	}
	return cfg
}
