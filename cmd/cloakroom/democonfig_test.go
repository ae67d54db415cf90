package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo"
)

// The demo's configuration passes every rule `cloakroom check` applies,
// warnings included, and resolves to the two frontends the provider's
// clients are registered for.
func TestDemoConfig(t *testing.T) {
	const public = "http://localhost:8080"
	b, err := demo.StartBackends(t.Context(), demo.Options{PublicURL: public + "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := demoConfig(b)
	for _, p := range cfg.Validate() {
		t.Errorf("check: %s: %s (warning %v)", p.Key, p.Msg, p.Warning)
	}
	if other := demoConfig(b); slices.Equal(other.Session.Keys, cfg.Session.Keys) {
		t.Error("two configurations share a session key")
	}

	type want struct {
		name, path, cookie, clientID, callback, postLogout string
		routes                                             []string
	}
	wants := []want{
		{
			name: "shop", path: "/", cookie: "__Host-Http-cloakroom-shop", clientID: demo.ClientID,
			callback: "/bff/callback", postLogout: "/",
			routes: []string{"/api/demo/", "/api/inventory/"},
		},
		{
			name: "admin", path: "/admin/", cookie: "__Secure-Http-cloakroom-admin", clientID: demo.AdminClientID,
			callback: "/admin/bff/callback", postLogout: "/admin/",
			routes: []string{"/admin/api/"},
		},
	}
	apps := cfg.Apps()
	if len(apps) != len(wants) {
		t.Fatalf("Apps: got %d frontends, want %d", len(apps), len(wants))
	}
	for i, w := range wants {
		a := apps[i]
		if a.Name != w.name || a.Path != w.path || a.PublicURL != public {
			t.Errorf("frontend %d: got %q at %s%s, want %q at %s%s", i, a.Name, a.PublicURL, a.Path, w.name, public, w.path)
		}
		if a.Session.CookieName != w.cookie || a.CookiePath != w.path {
			t.Errorf("%s cookie: got %s with Path=%s, want %s with Path=%s", w.name, a.Session.CookieName, a.CookiePath, w.cookie, w.path)
		}
		if a.OIDC.ClientID != w.clientID || a.OIDC.ClientSecret == "" || a.OIDC.Issuer != b.IssuerURL {
			t.Errorf("%s client: got %q at %q, want %q at %q with a secret", w.name, a.OIDC.ClientID, a.OIDC.Issuer, w.clientID, b.IssuerURL)
		}
		if a.OIDC.CallbackPath != w.callback || a.OIDC.PostLogoutPath != w.postLogout {
			t.Errorf("%s: callback %s, post-logout %s; want %s and %s, as the provider registers", w.name, a.OIDC.CallbackPath, a.OIDC.PostLogoutPath, w.callback, w.postLogout)
		}
		var routes []string
		for _, api := range a.APIs {
			routes = append(routes, api.Path)
		}
		if !slices.Equal(routes, w.routes) {
			t.Errorf("%s routes: got %v, want %v", w.name, routes, w.routes)
		}
	}

	admin := apps[1].APIs[0]
	if admin.Require == nil || !slices.Equal(admin.Require.Claims["role"], []string{demo.AdminRole}) || len(admin.Require.Claims) != 1 {
		t.Errorf("admin route policy: got %+v, want role admin only", admin.Require)
	}
	if admin.Token != config.TokenUser || admin.Upstream != b.APIURL+"admin/" {
		t.Errorf("admin route: got token %q to %q, want the user's token to %sadmin/", admin.Token, admin.Upstream, b.APIURL)
	}
	for _, c := range apps[0].Composites {
		if strings.HasPrefix(c.Path, demo.AdminPath) {
			t.Errorf("shop composite %s lies under the admin console", c.Path)
		}
	}
}
