package server_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/redistest"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestSharedRateLimit runs two instances on one Redis, with the API and
// login limits kept in process (each instance its own budget) or in Redis
// (one budget across both), and sends anonymous calls, keyed by client
// IP, alternately or to one instance.
func TestSharedRateLimit(t *testing.T) {
	type call struct {
		to   string // "A" or "B"
		path string
		want bool // passes the limit
	}
	const api, login = "/api/orders/x", "/bff/login"
	tests := []struct {
		store string
		calls []call
	}{
		// api_per_second: 1 allows bursts of 2; login_per_minute: 3
		// bursts of 3.
		{config.RateLimitSession, []call{
			{"A", api, true}, {"B", api, true}, {"A", api, false}, {"B", api, false},
			{"A", login, true}, {"B", login, true}, {"A", login, true}, {"B", login, false}, {"A", login, false},
		}},
		{config.RateLimitLocal, []call{
			{"A", api, true}, {"A", api, true}, {"A", api, false},
			{"B", api, true}, {"B", api, true}, {"B", api, false},
			{"A", login, true}, {"A", login, true}, {"A", login, true}, {"A", login, false}, {"B", login, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.store, func(t *testing.T) {
			rs := redistest.Start(t)
			up := newUpstream(t, nil)
			lnA, pubA := listenLocal(t)
			lnB, pubB := listenLocal(t)
			_, idpSrv := demoProvider(t, pubA, nil)
			gw := map[string]*gateway{}
			for name, l := range map[string]struct {
				ln  net.Listener
				pub string
			}{"A": {lnA, pubA}, "B": {lnB, pubB}} {
				ln, pub := l.ln, l.pub
				cfg := baseConfig(pub, idpSrv.URL, "web", "web-secret")
				cfg.Session.Store = rs.URL
				cfg.TrustedProxies = []string{"127.0.0.1"}
				cfg.RateLimit = config.RateLimit{APIPerSecond: 1, LoginPerMinute: 3, Store: tc.store}
				cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/", Token: "user"}}
				// Not startGateway: its probes of /bff/login would spend
				// the login budget the two instances share, so a slow
				// discovery could leave the second one never ready. Each
				// probe here comes from an address of its own.
				g := runGateway(t, ln, cfg, server.Options{})
				waitReadyUnlimited(t, g)
				gw[name] = g
			}
			c := noRedirect(nil)
			get := func(u string) (*http.Response, error) {
				req, err := http.NewRequest(http.MethodGet, u, nil)
				if err != nil {
					return nil, err
				}
				req.Header.Set("X-CSRF", "1")
				// Not the address that startGateway's calls to
				// /bff/login took from the login budget.
				req.Header.Set("X-Forwarded-For", "192.0.2.7")
				return c.Do(req)
			}
			for i, call := range tc.calls {
				resp, err := get(gw[call.to].URL + call.path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				limited := resp.StatusCode == http.StatusTooManyRequests
				if limited == call.want {
					t.Fatalf("call %d, %s through %s: got %d, want limited %v", i, call.path, call.to, resp.StatusCode, !call.want)
				}
				if ra := resp.Header.Get("Retry-After"); limited && (ra == "" || ra == "0") {
					t.Errorf("call %d: got Retry-After %q, want a positive number of seconds", i, ra)
				}
			}
			if tc.store != config.RateLimitSession {
				return
			}

			// Redis down: the spent budget no longer refuses anyone, and
			// each instance warns once.
			rs.Stop()
			for i := range 3 {
				for _, name := range []string{"A", "B"} {
					resp, err := get(gw[name].URL + api)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusTooManyRequests {
						t.Fatalf("call %d through %s with Redis down: 429; want the limit to fail open", i, name)
					}
				}
			}
			for _, name := range []string{"A", "B"} {
				logs := gw[name].Logs.String()
				if got := strings.Count(logs, "rate limit check failed"); got != 1 {
					t.Errorf("%s: got %d warnings, want 1:\n%s", name, got, logs)
				}
			}
		})
	}
}

// waitReadyUnlimited polls /bff/login until it redirects to the provider, each
// probe from its own X-Forwarded-For address (the gateways trust
// 127.0.0.1), so that no rate-limit budget a test counts is spent.
func waitReadyUnlimited(t *testing.T, g *gateway) {
	t.Helper()
	c := noRedirect(nil)
	for i := 0; ; i++ {
		req, err := http.NewRequest(http.MethodGet, g.URL+"/bff/login", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%250+1))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				return
			}
		}
		if i == 500 {
			t.Fatalf("gateway never became ready: %v; logs:\n%s", err, g.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
