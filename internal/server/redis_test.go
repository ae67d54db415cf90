package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

// twoInstances runs gateways A and B on one Redis, one provider and one
// fake clock, like two replicas behind a load balancer. Cookies ignore
// ports, so one browser's session cookie reaches both.
func twoInstances(t *testing.T, rs *redistest.Server, accessTTL time.Duration) (a, b *gateway, p *idp.Provider, up *upstream) {
	t.Helper()
	clk := &clock{}
	lnA, pubA := listenLocal(t)
	lnB, pubB := listenLocal(t)
	p, srv := demoProvider(t, pubA, func(o *idp.Options) {
		o.Now = clk.Now
		o.AccessTokenTTL = accessTTL
		o.RotateRefreshTokens, o.ReuseDetection = true, true
		o.Clients[0].RedirectURIs = append(o.Clients[0].RedirectURIs, pubB+"/bff/callback")
		o.Clients[0].PostLogoutRedirectURIs = append(o.Clients[0].PostLogoutRedirectURIs, pubB+"/")
	})
	up = newUpstream(t, nil)
	mk := func(public string) *config.Config {
		cfg := baseConfig(public, srv.URL, "web", "web-secret")
		cfg.Session.Store = rs.URL
		cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/", Token: "user"}}
		return cfg
	}
	a = startGateway(t, lnA, mk(pubA), server.Options{Now: clk.Now})
	b = startGateway(t, lnB, mk(pubB), server.Options{Now: clk.Now})
	a.Clock, b.Clock = clk, clk
	return a, b, p, up
}

func TestTwoInstancesOnRedis(t *testing.T) {
	rs := redistest.Start(t)
	a, b, p, up := twoInstances(t, rs, 10*time.Second)
	br := newBrowser(t)
	(&env{g: a, idp: p}).login(t, br, "alice")
	if r := br.get(b.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("API through B after login through A: %d", r.StatusCode)
	}

	// A refresh burst split across A and B: one refresh grant.
	for round := range 5 {
		before := p.Stats().RefreshGrants
		a.Clock.Advance(9 * time.Second)
		if codes := burst(t, br, 30, a.URL+"/api/orders/x", b.URL+"/api/orders/x"); codes[200] != 30 {
			t.Fatalf("round %d: %v; A logs:\n%s\nB logs:\n%s", round, codes, a.Logs, b.Logs)
		}
		if got := p.Stats().RefreshGrants - before; got != 1 {
			t.Fatalf("round %d: %d refresh grants across two instances, want 1", round, got)
		}
	}
	reqs := up.Requests()
	if _, err := p.VerifyAccessToken(bearerOf(reqs[len(reqs)-1])); err != nil {
		t.Errorf("token after the bursts: %v", err)
	}

	// Logout through B: A refuses the cookie at once.
	if r := br.get(a.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("A before logout: %d", r.StatusCode)
	}
	location(t, br.get(b.URL+claim(t, br, b.URL, "bff:logout_url")))
	seesEnd(t, br, a, "A after logout through B")

	// Back-channel logout arriving at A ends the session used through B.
	(&env{g: a, idp: p}).login(t, br, "alice")
	if r := br.get(b.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("B before back-channel logout: %d", r.StatusCode)
	}
	tok, _ := p.SignLogoutToken("web", "alice-1", "")
	if r := sendLogoutToken(t, &env{g: a}, tok); r.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout at A: %d", r.StatusCode)
	}
	seesEnd(t, br, b, "B after back-channel logout at A")
	// The same logout token replayed at B: refused (jti remembered in Redis).
	if r := sendLogoutToken(t, &env{g: b}, tok); r.StatusCode != http.StatusBadRequest {
		t.Errorf("replay at B: %d", r.StatusCode)
	}
}

func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	a, _, p, _ := twoInstances(t, rs, time.Hour)
	br := newBrowser(t)
	(&env{g: a, idp: p}).login(t, br, "alice")
	rs.Stop()
	for _, path := range []string{"/bff/user", "/api/orders/x"} {
		r := br.get(a.URL+path, "X-CSRF", "1")
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s with Redis down: %d %s", path, r.StatusCode, r.Body)
		}
	}
	rs.Restart()
	// Redis came back empty (no persistence in the test server): the
	// session is gone, which is a clean 401, and new logins work.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := br.get(a.URL+"/bff/user", "X-CSRF", "1")
		if r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis returned: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	(&env{g: a, idp: p}).login(t, br, "alice")
	if r := br.get(a.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("after recovery: %d", r.StatusCode)
	}
}

// seesEnd waits until g answers 401 for br's session. Another instance's
// client-side cache learns of a change by Redis's invalidation push, which
// arrives within milliseconds, not in the same instant; this allows a
// bounded lag and fails beyond it.
func seesEnd(t *testing.T, br *browser, g *gateway, what string) {
	t.Helper()
	start := time.Now()
	for {
		r := br.get(g.URL+"/bff/user", "X-CSRF", "1")
		if r.StatusCode == http.StatusUnauthorized {
			if lag := time.Since(start); lag > 50*time.Millisecond {
				t.Logf("%s: took %v", what, lag)
			}
			return
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s: still %d after 1s", what, r.StatusCode)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
