package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
)

// loopbackBrowser is a browser whose connections to any *.localhost name
// go to 127.0.0.1, as browsers resolve them (RFC 6761 §6.3).
func loopbackBrowser(t *testing.T) *browser {
	b := newBrowser(t)
	var d net.Dialer
	b.c.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}}
	return b
}

// frontendsEnv is a gateway serving several frontends, each a client of
// the demo provider.
type frontendsEnv struct {
	g   *gateway
	idp *idp.Provider
	up  *upstream
}

// newFrontendsEnv runs a gateway on 127.0.0.1 with the frontends of yaml
// (after the top level it writes: the provider, the store, the keys, a
// shared API route at /api/orders/). bases are the frontends' public URL
// and path joined ("http://shop.localhost:PORT/"): each gets a client of
// its own at the demo provider, named by its position ("c0", "c1", …).
func newFrontendsEnv(t *testing.T, entries func(port string) (yaml string, bases []string)) *frontendsEnv {
	t.Helper()
	return newFrontendsEnvWith(t, server.Options{}, nil, entries)
}

// newFrontendsEnvWith is newFrontendsEnv with o for server.Run and mod,
// when set, applied to the configuration first.
func newFrontendsEnvWith(t *testing.T, o server.Options, mod func(*config.Config), entries func(port string) (yaml string, bases []string)) *frontendsEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	list, bases := entries(port)
	p, idpSrv := demoProvider(t, "", func(o *idp.Options) {
		o.Clients = nil
		for i, base := range bases {
			o.Clients = append(o.Clients, idp.Client{
				ID: fmt.Sprintf("c%d", i), Secret: fmt.Sprintf("c%d-secret", i),
				RedirectURIs:           []string{base + "bff/callback"},
				PostLogoutRedirectURIs: []string{base},
			})
		}
	})
	up := newUpstream(t, nil)
	data := fmt.Sprintf(`oidc:
  issuer: %s
session:
  store: memory
  keys: [%q]
apis:
  - {path: /api/orders/, upstream: %q, token: user}
frontends:
%s`, idpSrv.URL, testKey, up.URL+"/v1/", list)
	cfg, err := config.Parse("cloakroom.yaml", []byte(data), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, data)
	}
	if mod != nil {
		mod(cfg)
	}
	g := runGateway(t, ln, cfg, o)
	b := loopbackBrowser(t)
	for _, base := range bases {
		waitReady(t, b, base)
	}
	return &frontendsEnv{g: g, idp: p, up: up}
}

func waitReady(t *testing.T, b *browser, base string) {
	t.Helper()
	for range 500 {
		req, _ := http.NewRequest(http.MethodGet, base+"bff/login", nil)
		resp, err := b.c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return
			}
		}
		b.c.CloseIdleConnections()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", base)
}

// signInAt signs user in at the frontend whose public URL and path are
// base and returns the landing response.
func signInAt(t *testing.T, b *browser, base, user string) response {
	t.Helper()
	auth := location(t, b.get(base+"bff/login?returnUrl="+url.QueryEscape(mustURL(base).Path+"home")))
	cb := demoLogin(t, b, auth, user, user)
	if !strings.HasPrefix(cb.String(), base+"bff/callback") {
		t.Fatalf("provider redirected to %s, want %sbff/callback", cb, base)
	}
	return b.get(cb.String())
}

// userOf is /bff/user at base: its status and claims by type.
func userOf(t *testing.T, b *browser, base string) (int, map[string]any) {
	t.Helper()
	r := b.get(base+"bff/user", "X-CSRF", "1")
	if r.StatusCode != http.StatusOK {
		return r.StatusCode, nil
	}
	var claims []struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.Body), &claims); err != nil {
		t.Fatalf("/bff/user at %s: %v", base, err)
	}
	out := map[string]any{}
	for _, c := range claims {
		out[c.Type] = c.Value
	}
	return r.StatusCode, out
}

// sessionCookieAt is the cookie called name the browser holds for base.
func sessionCookieAt(t *testing.T, b *browser, base, name string) *http.Cookie {
	t.Helper()
	for _, c := range b.jar.Cookies(mustURL(base + "bff/user")) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cookie %s for %s", name, base)
	return nil
}

// TestFrontendsByHost: two frontends on two hosts of one gateway, one
// provider, a client each, one user signed in to both.
func TestFrontendsByHost(t *testing.T) {
	var shop, admin string
	newFrontendsEnv(t, func(port string) (string, []string) {
		shop, admin = "http://shop.localhost:"+port+"/", "http://admin.localhost:"+port+"/"
		return fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: %q, oidc: {client_id: c1, client_secret: c1-secret}}
`, strings.TrimSuffix(shop, "/"), strings.TrimSuffix(admin, "/")), []string{shop, admin}
	})
	b := loopbackBrowser(t)
	for _, base := range []string{shop, admin} {
		if r := signInAt(t, b, base, "alice"); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-in at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}
	shopCookie := sessionCookieAt(t, b, shop, "__Host-Http-cloakroom-shop")
	adminCookie := sessionCookieAt(t, b, admin, "__Host-Http-cloakroom-admin")
	for _, base := range []string{shop, admin} {
		code, claims := userOf(t, b, base)
		if code != http.StatusOK || claims["sub"] != "alice-1" {
			t.Errorf("/bff/user at %s: %d %v", base, code, claims)
		}
	}

	// Each frontend's cookie, sent to the other under either name, is
	// refused there.
	for _, tc := range []struct {
		base, name string
		c          *http.Cookie
	}{
		{admin, "__Host-Http-cloakroom-admin", shopCookie},
		{admin, "__Host-Http-cloakroom-shop", shopCookie},
		{shop, "__Host-Http-cloakroom-shop", adminCookie},
		{shop, "__Host-Http-cloakroom-admin", adminCookie},
	} {
		other := loopbackBrowser(t)
		req, _ := http.NewRequest(http.MethodGet, tc.base+"bff/user", nil)
		req.Header.Set("X-CSRF", "1")
		req.AddCookie(&http.Cookie{Name: tc.name, Value: tc.c.Value})
		if r := other.do(req); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s cookie of another frontend under %s: got %d, want 401", tc.base, tc.name, r.StatusCode)
		}
	}

	// The shared API route at each frontend forwards that frontend's
	// session token.
	for _, base := range []string{shop, admin} {
		if r := b.get(base+"api/orders/recent", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
			t.Errorf("API at %s: %d %s", base, r.StatusCode, r.Body)
		}
	}

	// An unknown host is misdirected.
	if r := b.get(strings.Replace(shop, "shop.", "other.", 1)+"bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("unknown host: got %d, want 421", r.StatusCode)
	}

	// Logout of one leaves the other signed in.
	_, claims := userOf(t, b, shop)
	logoutURL, _ := claims["bff:logout_url"].(string)
	b.get(strings.TrimSuffix(shop, "/") + logoutURL)
	if code, _ := userOf(t, b, shop); code != http.StatusUnauthorized {
		t.Errorf("shop after its logout: got %d, want 401", code)
	}
	if code, _ := userOf(t, b, admin); code != http.StatusOK {
		t.Errorf("admin after shop's logout: got %d, want 200", code)
	}
}

// TestFrontendsByPath: two frontends on one origin, at "/" and "/admin/".
func TestFrontendsByPath(t *testing.T) {
	var root, admin string
	newFrontendsEnv(t, func(port string) (string, []string) {
		origin := "http://app.localhost:" + port
		root, admin = origin+"/", origin+"/admin/"
		return fmt.Sprintf(`  - {name: shop, public_url: %q, oidc: {client_id: c0, client_secret: c0-secret}}
  - {name: admin, public_url: %q, path: /admin/, oidc: {client_id: c1, client_secret: c1-secret}}
`, origin, origin), []string{root, admin}
	})
	b := loopbackBrowser(t)
	if r := signInAt(t, b, admin, "alice"); r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in at %s: %d %s", admin, r.StatusCode, r.Body)
	}
	if code, claims := userOf(t, b, admin); code != http.StatusOK || claims["sub"] != "alice-1" || !strings.HasPrefix(fmt.Sprint(claims["bff:logout_url"]), "/admin/bff/logout?") {
		t.Errorf("/admin/bff/user: %d %v", code, claims)
	}
	// The browser sends the admin cookie to /bff/user too (Path=/admin/
	// does not cover it, but a jar may hold both): the root frontend has
	// no session.
	if code, _ := userOf(t, b, root); code != http.StatusUnauthorized {
		t.Errorf("/bff/user of the root frontend: got %d, want 401", code)
	}
	c := sessionCookieAt(t, b, admin, "__Secure-Http-cloakroom-admin")
	other := loopbackBrowser(t)
	req, _ := http.NewRequest(http.MethodGet, root+"bff/user", nil)
	req.Header.Set("X-CSRF", "1")
	req.AddCookie(&http.Cookie{Name: "__Host-Http-cloakroom-shop", Value: c.Value})
	if r := other.do(req); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin's cookie at the root frontend: got %d, want 401", r.StatusCode)
	}
	if r := b.get(admin+"api/orders/recent", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("shared API under /admin/: %d %s", r.StatusCode, r.Body)
	}

	for _, tc := range []struct {
		base, ret string
		want      int
	}{
		{admin, "/admin/x", http.StatusFound},
		{admin, "/x", http.StatusBadRequest},
		{root, "/x", http.StatusFound},
		{root, "/admin/x", http.StatusBadRequest},
	} {
		r := loopbackBrowser(t).get(tc.base + "bff/login?returnUrl=" + url.QueryEscape(tc.ret))
		if r.StatusCode != tc.want {
			t.Errorf("login at %s with returnUrl %s: got %d, want %d", tc.base, tc.ret, r.StatusCode, tc.want)
		}
	}
}
