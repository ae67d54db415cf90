package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
)

// newSharedClockEnv is newEnv with the provider and the gateway on one
// fake clock, so token lifetimes can be crossed without sleeping.
func newSharedClockEnv(t *testing.T, idpMod func(*idp.Options), cfgMod func(*config.Config)) *env {
	t.Helper()
	clk := &clock{}
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, func(o *idp.Options) {
		o.Now = clk.Now
		o.RotateRefreshTokens = true
		o.ReuseDetection = true
		if idpMod != nil {
			idpMod(o)
		}
	})
	up := newUpstream(t, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/v1/", Token: "user", Timeout: 30 * time.Second}}
	if cfgMod != nil {
		cfgMod(cfg)
	}
	g := startGateway(t, ln, cfg, server.Options{Now: clk.Now})
	g.Clock = clk
	return &env{g: g, idp: p, up: up}
}

func bearerOf(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// TestRefreshBurst: 50 concurrent calls of one session right at expiry,
// against a provider that rotates refresh tokens and revokes the whole
// family when one is reused. Every call succeeds and the provider sees
// exactly one refresh grant per expiry, twenty times over.
func TestRefreshBurst(t *testing.T) {
	e := newSharedClockEnv(t, func(o *idp.Options) { o.AccessTokenTTL = 10 * time.Second }, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	const n, rounds = 50, 20
	for round := range rounds {
		before := e.idp.Stats().RefreshGrants
		e.g.Clock.Advance(9 * time.Second) // within refresh_before (capped at half the 10s lifetime)
		if codes := burst(t, b, n, e.g.URL+"/api/orders/recent"); codes[http.StatusOK] != n {
			t.Fatalf("round %d: statuses %v; logs:\n%s", round, codes, e.g.Logs)
		}
		if got := e.idp.Stats().RefreshGrants - before; got != 1 {
			t.Fatalf("round %d: provider saw %d refresh grants, want 1", round, got)
		}
		reqs := e.up.Requests()
		last := reqs[len(reqs)-n:]
		for _, r := range last {
			if _, err := e.idp.VerifyAccessToken(bearerOf(r)); err != nil {
				t.Fatalf("round %d: upstream got a bad token: %v", round, err)
			}
			if bearerOf(r) != bearerOf(last[0]) {
				t.Fatalf("round %d: the burst used different tokens", round)
			}
		}
	}
	if f := e.idp.Stats().FailedGrants; f != 0 {
		t.Errorf("provider saw %d failed grants", f)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("/bff/user after the bursts: %d", r.StatusCode)
	}
}

func TestDeadRefreshTokenEndsSession(t *testing.T) {
	e := newSharedClockEnv(t, func(o *idp.Options) {
		o.AccessTokenTTL = 5 * time.Minute
		o.RefreshTokenTTL = time.Hour
	}, func(c *config.Config) { c.Session.IdleTimeout = 3 * time.Hour })
	b := newBrowser(t)
	e.login(t, b, "alice")
	e.g.Clock.Advance(2 * time.Hour)
	if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
		t.Errorf("API with a dead refresh token: %d %q", r.StatusCode, r.Body)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("/bff/user after the session ended: %d", r.StatusCode)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Errorf("upstream called %d times", n)
	}
}

func TestProviderDownDuringRefresh(t *testing.T) {
	e := newSharedClockEnv(t, func(o *idp.Options) { o.AccessTokenTTL = time.Minute }, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	e.idp.SetDown(true)
	e.g.Clock.Advance(2 * time.Minute) // the access token has expired
	before := e.idp.Stats().RefreshGrants
	r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1")
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("provider down: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// Backoff: the calls right after do not hammer the provider.
	for range 5 {
		b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1")
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("session lost while the provider was down: %d", r.StatusCode)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Errorf("upstream called with an expired token")
	}
	e.idp.SetDown(false)
	e.g.Clock.Advance(31 * time.Second) // past the longest backoff
	if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("after the provider came back: %d %s", r.StatusCode, r.Body)
	}
	if got := e.idp.Stats().RefreshGrants - before; got != 1 {
		t.Errorf("refresh grants %d, want 1", got)
	}
}

func TestTokenModes(t *testing.T) {
	var ups []*upstream
	e := newSharedClockEnv(t, nil, func(c *config.Config) {
		add := func(path, mode string, mod func(*config.API)) {
			u := newUpstream(t, nil)
			ups = append(ups, u)
			a := config.API{Path: path, Upstream: u.URL + "/", Token: mode, Timeout: 10 * time.Second}
			if mod != nil {
				mod(&a)
			}
			c.APIs = append(c.APIs, a)
		}
		add("/user/", "user", nil)
		add("/client/", "client", func(a *config.API) {
			a.Scopes = []string{"orders.read"}
			a.Resource = "https://orders.example"
		})
		add("/uoc/", "user_or_client", func(a *config.API) { a.Audience = "https://orders.example" })
		add("/uon/", "user_or_none", nil)
		add("/none/", "none", nil)
		add("/exch/", "exchange", func(a *config.API) {
			a.Audience = "https://inventory.example"
			a.Scopes = []string{"inventory"}
		})
	})
	byPath := map[string]*upstream{"/user/": ups[0], "/client/": ups[1], "/uoc/": ups[2], "/uon/": ups[3], "/none/": ups[4], "/exch/": ups[5]}

	type want struct {
		code  int
		sub   string // "" means no Authorization header
		aud   string
		scope string
		act   bool
	}
	check := func(t *testing.T, b *browser, cases map[string]want) {
		t.Helper()
		for path, w := range cases {
			up := byPath[path]
			n := len(up.Requests())
			r := b.get(e.g.URL+path+"x", "X-CSRF", "1")
			if r.StatusCode != w.code {
				t.Errorf("%s: status %d, want %d", path, r.StatusCode, w.code)
				continue
			}
			reqs := up.Requests()
			if w.code != http.StatusOK {
				if len(reqs) != n {
					t.Errorf("%s: upstream called on %d", path, w.code)
				}
				continue
			}
			tok := bearerOf(reqs[len(reqs)-1])
			if w.sub == "" {
				if tok != "" || reqs[len(reqs)-1].Header.Get("Authorization") != "" {
					t.Errorf("%s: got a token, want none", path)
				}
				continue
			}
			claims, err := e.idp.VerifyAccessToken(tok)
			if err != nil {
				t.Errorf("%s: invalid token: %v", path, err)
				continue
			}
			if claims["sub"] != w.sub {
				t.Errorf("%s: sub %v, want %s", path, claims["sub"], w.sub)
			}
			if w.aud != "" && !audHas(claims["aud"], w.aud) {
				t.Errorf("%s: aud %v, want %s", path, claims["aud"], w.aud)
			}
			if w.scope != "" && !slices.Contains(strings.Fields(fmt.Sprint(claims["scope"])), w.scope) {
				t.Errorf("%s: scope %v, want %s", path, claims["scope"], w.scope)
			}
			if _, ok := claims["act"]; ok != w.act {
				t.Errorf("%s: act claim present %v, want %v", path, ok, w.act)
			}
		}
	}

	b := newBrowser(t)
	t.Run("anonymous", func(t *testing.T) {
		check(t, b, map[string]want{
			"/user/":   {code: 401},
			"/client/": {code: 200, sub: "web", aud: "https://orders.example", scope: "orders.read"},
			"/uoc/":    {code: 200, sub: "web", aud: "https://orders.example"},
			"/uon/":    {code: 200},
			"/none/":   {code: 200},
			"/exch/":   {code: 401},
		})
	})
	e.login(t, b, "alice")
	t.Run("signed in", func(t *testing.T) {
		check(t, b, map[string]want{
			"/user/":   {code: 200, sub: "alice-1", aud: "web"},
			"/client/": {code: 200, sub: "web", aud: "https://orders.example"},
			"/uoc/":    {code: 200, sub: "alice-1"},
			"/uon/":    {code: 200, sub: "alice-1"},
			"/none/":   {code: 200},
			"/exch/":   {code: 200, sub: "alice-1", aud: "https://inventory.example", scope: "inventory", act: true},
		})
	})
	t.Run("cached", func(t *testing.T) {
		st := e.idp.Stats()
		for range 3 {
			b.get(e.g.URL+"/client/x", "X-CSRF", "1")
			b.get(e.g.URL+"/exch/x", "X-CSRF", "1")
		}
		after := e.idp.Stats()
		if after.ClientCredentialsGrants != st.ClientCredentialsGrants || after.TokenExchangeGrants != st.TokenExchangeGrants {
			t.Errorf("cached tokens re-fetched: %+v -> %+v", st, after)
		}
		// An expired client token is fetched again.
		e.g.Clock.Advance(6 * time.Minute)
		b.get(e.g.URL+"/client/x", "X-CSRF", "1")
		if got := e.idp.Stats().ClientCredentialsGrants - after.ClientCredentialsGrants; got != 1 {
			t.Errorf("client credentials grants after expiry: %d, want 1", got)
		}
	})
}

func audHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, v := range a {
			if v == want {
				return true
			}
		}
	}
	return false
}

// TestRevokeOnIdleExpiry: a session that ends by idling out has its
// refresh token revoked when it is next seen.
func TestRevokeOnIdleExpiry(t *testing.T) {
	e := newSharedClockEnv(t, nil, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	before := e.idp.Stats().Revocations
	e.g.Clock.Advance(31 * time.Minute)
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/bff/user after idling: %d", r.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.idp.Stats().Revocations == before {
		if time.Now().After(deadline) {
			t.Fatal("refresh token not revoked after the session expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoutePolicy(t *testing.T) {
	admin := newUpstream(t, nil)
	write := newUpstream(t, nil)
	e := newSharedClockEnv(t, nil, func(c *config.Config) {
		c.APIs = append(c.APIs,
			config.API{Path: "/admin/", Upstream: admin.URL, Token: "user", Require: &config.Require{Claims: map[string][]string{"groups": {"admins"}}, Scopes: []string{"openid"}}},
			config.API{Path: "/write/", Upstream: write.URL, Token: "user_or_none", Require: &config.Require{Scopes: []string{"orders.write"}}},
		)
	})
	alice, bob, anon := newBrowser(t), newBrowser(t), newBrowser(t)
	e.login(t, alice, "alice")
	e.login(t, bob, "bob")
	for _, tc := range []struct {
		b    *browser
		path string
		code int
	}{
		{alice, "/admin/x", 200},
		{bob, "/admin/x", 403},
		{anon, "/admin/x", 401},
		{alice, "/write/x", 403},
		{anon, "/write/x", 403},
	} {
		r := tc.b.get(e.g.URL+tc.path, "X-CSRF", "1")
		if r.StatusCode != tc.code {
			t.Errorf("%s: got %d, want %d", tc.path, r.StatusCode, tc.code)
		}
		if tc.code == 403 && r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: 403 is not problem+json", tc.path)
		}
	}
	if len(admin.Requests()) != 1 || len(write.Requests()) != 0 {
		t.Errorf("upstreams called %d and %d times, want 1 and 0", len(admin.Requests()), len(write.Requests()))
	}
}

// TestObjectLevelAuthorization: an API route's path parameter bound to a
// claim (OWASP API1, BOLA) is enforced before the request leaves.
func TestObjectLevelAuthorization(t *testing.T) {
	users := newUpstream(t, nil)
	e := newSharedClockEnv(t, nil, func(c *config.Config) {
		c.APIs = append(c.APIs, config.API{
			Path: "/api/users/{id}/", Upstream: users.URL + "/v1/", Token: "user",
			Require: &config.Require{Path: map[string]string{"id": "{claims.sub}"}},
		})
	})
	b := newBrowser(t)
	e.login(t, b, "alice")
	if r := b.get(e.g.URL+"/api/users/alice-1/orders?x=1", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("own object: %d", r.StatusCode)
	}
	if got := users.Requests()[0].URL; got.Path != "/v1/orders" || got.RawQuery != "x=1" {
		t.Errorf("upstream got %s", got)
	}
	for path, want := range map[string]int{
		"/api/users/bob-1/orders":                http.StatusForbidden,
		"/api/users/ALICE-1/orders":              http.StatusForbidden,
		"/api/users/%61lice-1x/orders":           http.StatusForbidden,
		"/api/users/alice-1%2F..%2Fbob-1/orders": http.StatusBadRequest, // encoded slashes are refused
		"/api/users/alice-1/..%2Fbob-1/orders":   http.StatusBadRequest,
		"/api/users/alice-1/../bob-1/orders":     http.StatusTemporaryRedirect, // the router cleans it to bob-1, which is then refused
	} {
		if r := b.get(e.g.URL+path, "X-CSRF", "1"); r.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, r.StatusCode, want)
		}
	}
	if n := len(users.Requests()); n != 1 {
		t.Errorf("upstream called %d times, want once (the own object)", n)
	}
}
