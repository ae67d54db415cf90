package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
)

const parSecret = "a-long-enough-client-secret-for-par-tests"

// queryKeys are the sorted parameter names of u.
func queryKeys(u *url.URL) []string {
	var keys []string
	for k := range u.Query() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestPARLogin signs in through the gateway at oidc-provider with each
// oidc.par mode: with PAR the browser is sent to the authorization
// endpoint with client_id and request_uri only; off sends the classic
// request. Each login ends with /bff/user answering the provider's user.
func TestPARLogin(t *testing.T) {
	ln, public := listenLocal(t)
	p := nodeop.Start(t, nodeop.Options{
		PAR: true,
		Clients: []nodeop.Client{{
			ClientID: "web", ClientSecret: parSecret, RedirectURIs: []string{public + "/bff/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
	})
	// One gateway listener, one configuration per mode: each gateway
	// is stopped before the next takes the port.
	addr := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		mode   string
		pushed bool
	}{
		{config.PARAuto, true},
		{config.PARRequired, true},
		{config.PAROff, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(public, p.Issuer, "web", parSecret)
			cfg.OIDC.PAR = tc.mode
			g := startGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
			defer g.Stop()

			b := newBrowser(t)
			auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/app/home"))
			want := []string{"client_id", "code_challenge", "code_challenge_method", "nonce", "redirect_uri", "response_type", "scope", "state"}
			if tc.pushed {
				want = []string{"client_id", "request_uri"}
			}
			if got := queryKeys(auth); !slices.Equal(got, want) {
				t.Errorf("authorization URL parameters %q, want %q", got, want)
			}
			cb, err := p.Login(t.Context(), p.Browser(t), auth.String())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cb.String(), g.URL+"/bff/callback") {
				t.Fatalf("provider redirected to %s, want the callback", cb)
			}
			if land := b.get(cb.String()); land.StatusCode != http.StatusOK {
				t.Fatalf("callback: %d %s", land.StatusCode, land.Body)
			}
			user := b.get(g.URL+"/bff/user", "X-CSRF", "1")
			if user.StatusCode != http.StatusOK || !strings.Contains(user.Body, `"value":"`+p.Username+`"`) {
				t.Errorf("/bff/user: %d %s, want the claims of %s", user.StatusCode, user.Body, p.Username)
			}
		})
	}
}

// TestPARFailure: when the provider refuses the pushed request (here: a
// client secret it does not know), /bff/login answers 502 with a problem
// document that quotes nothing of the provider's answer, sets no
// login-attempt cookie, and the refusal is logged as a client
// authentication failure.
func TestPARFailure(t *testing.T) {
	ln, public := listenLocal(t)
	p := nodeop.Start(t, nodeop.Options{
		PAR: true,
		Clients: []nodeop.Client{{
			ClientID: "web", ClientSecret: parSecret, RedirectURIs: []string{public + "/bff/callback"},
		}},
	})
	cfg := baseConfig(public, p.Issuer, "web", "not-the-registered-secret")
	g := runGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
	b := newBrowser(t)
	var r response
	for deadline := time.Now().Add(15 * time.Second); ; {
		r = b.get(g.URL + "/bff/login")
		if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.StatusCode != http.StatusBadGateway || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("/bff/login: %d %s %s, want a 502 problem", r.StatusCode, r.Header.Get("Content-Type"), r.Body)
	}
	if strings.Contains(r.Body, "invalid_client") || strings.Contains(r.Body, parSecret) {
		t.Errorf("the answer quotes the provider: %s", r.Body)
	}
	if c := r.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("cookies set by a failed login: %q", c)
	}
	if logs := g.Logs.String(); !strings.Contains(logs, "pushed_authorization_request") || strings.Contains(logs, "not-the-registered-secret") {
		t.Errorf("logs lack the refused push, or hold the secret:\n%s", logs)
	}
}

// TestPARRequiredWithoutPAR: with oidc.par required and a provider without
// a PAR endpoint (the demo provider), serve stops at once when the first
// discovery reaches the provider; when the provider is down at start, the
// gateway keeps retrying and, once the provider is up without PAR, stays
// not ready (/readyz and /bff/login 503) with an error naming oidc.par.
func TestPARRequiredWithoutPAR(t *testing.T) {
	t.Run("provider up at start", func(t *testing.T) {
		ln, public := listenLocal(t)
		_, srv := demoProvider(t, public, nil)
		cfg := baseConfig(public, srv.URL, "web", "web-secret")
		cfg.OIDC.PAR = config.PARRequired
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err := server.Run(ctx, cfg, server.Options{Listener: ln})
		if !errors.Is(err, oidc.ErrUnfit) || !strings.Contains(err.Error(), "oidc.par") {
			t.Fatalf("server.Run: %v, want an ErrUnfit error naming oidc.par", err)
		}
		if _, err := http.Get("http://" + ln.Addr().String() + "/bff/login"); err == nil {
			t.Error("the listener still serves after server.Run returned")
		}
	})

	t.Run("provider down at start", func(t *testing.T) {
		aln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, public := listenLocal(t)
		p, srv := demoProvider(t, public, nil)
		p.SetDown(true)
		cfg := baseConfig(public, srv.URL, "web", "web-secret")
		cfg.OIDC.PAR = config.PARRequired
		g := runGateway(t, ln, cfg, server.Options{AdminListener: aln})
		// Down: the first discovery fails, Run keeps going.
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(g.Logs.String(), "discovery failed"); {
			if time.Now().After(deadline) {
				t.Fatalf("no failed discovery logged:\n%s", g.Logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.SetDown(false)
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(g.Logs.String(), `"level":"ERROR"`); {
			if time.Now().After(deadline) {
				t.Fatalf("no error logged once the provider was up:\n%s", g.Logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		logs := g.Logs.String()
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "oidc.par") {
				t.Errorf("error line does not name oidc.par: %s", line)
			}
		}
		ready := newBrowser(t).get("http://" + aln.Addr().String() + "/readyz")
		if ready.StatusCode != http.StatusServiceUnavailable || !strings.Contains(ready.Body, "identity_provider") {
			t.Errorf("/readyz: %d %s, want 503 naming identity_provider", ready.StatusCode, ready.Body)
		}
		if login := newBrowser(t).get(g.URL + "/bff/login"); login.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/bff/login: %d %s, want 503", login.StatusCode, login.Body)
		}
		g.Stop() // Run returns nil: it did not give up
	})
}
