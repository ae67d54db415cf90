package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/oidctest/zitadelop"
)

// userClaims reads /bff/user as a map of claim type to value.
func userClaims(t *testing.T, g *gateway, b *browser) map[string]any {
	t.Helper()
	r := b.get(g.URL+"/bff/user", "X-CSRF", "1")
	var claims []struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	if err := json.Unmarshal([]byte(r.Body), &claims); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("/bff/user: %d %s", r.StatusCode, r.Body)
	}
	got := map[string]any{}
	for _, c := range claims {
		got[c.Type] = c.Value
	}
	return got
}

// TestUserInfoZitadel: zitadel's op puts the email and profile claims only
// in userinfo, as OIDC Core §5.4 prescribes when an access token is issued.
// With oidc.userinfo they reach /bff/user and route policies; without,
// they do not.
func TestUserInfoZitadel(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "userinfo on", false: "userinfo off"}[on], func(t *testing.T) {
			ln, public := listenLocal(t)
			p := zitadelop.Start(t, public+"/bff/callback", public+"/")
			up := newUpstream(t, nil)
			cfg := baseConfig(public, p.Issuer, p.ClientID, p.ClientSecret)
			cfg.OIDC.UserInfo = on
			cfg.APIs = []config.API{{
				Path: "/api/mail/", Upstream: up.URL + "/", Token: "user", Timeout: 10 * time.Second,
				Require: &config.Require{Claims: map[string][]string{"email": {p.Email}}},
			}}
			g := startGateway(t, ln, cfg, serverOptions())
			b := newBrowser(t)
			landing := signIn(t, g, b, func(auth *url.URL) *url.URL {
				cb, err := p.Login(t.Context(), b.c, auth.String())
				if err != nil {
					t.Fatalf("login at the provider: %v", err)
				}
				return cb
			})
			if landing.StatusCode != http.StatusOK {
				t.Fatalf("callback: %d %s", landing.StatusCode, landing.Body)
			}
			claims := userClaims(t, g, b)
			if claims["sub"] != p.Subject {
				t.Errorf("sub %v, want %s", claims["sub"], p.Subject)
			}
			wantEmail, wantName, wantCode := any(nil), any(nil), http.StatusForbidden
			if on {
				wantEmail, wantName, wantCode = p.Email, p.Name, http.StatusOK
			}
			if claims["email"] != wantEmail || claims["name"] != wantName {
				t.Errorf("email %v name %v, want %v %v", claims["email"], claims["name"], wantEmail, wantName)
			}
			if r := b.get(g.URL+"/api/mail/inbox", "X-CSRF", "1"); r.StatusCode != wantCode {
				t.Errorf("route requiring the email claim: %d, want %d", r.StatusCode, wantCode)
			}
			if on && len(up.Requests()) != 1 {
				t.Errorf("upstream got %d requests, want 1", len(up.Requests()))
			}
		})
	}
}

// wrappedDemo runs the demo provider for a gateway at public behind wrap,
// which may answer a request itself or pass it to the provider.
func wrappedDemo(t *testing.T, public string, mod func(*idp.Options), wrap func(w http.ResponseWriter, r *http.Request, next http.Handler)) (*idp.Provider, *httptest.Server) {
	t.Helper()
	var next http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrap(w, r, next) }))
	t.Cleanup(srv.Close)
	opts := idp.Options{
		Issuer: srv.URL,
		Clients: []idp.Client{{
			ID: "web", Secret: "web-secret",
			RedirectURIs:           []string{public + "/bff/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
		Users: []idp.User{
			{Subject: "alice-1", Username: "alice", Password: "alice", Claims: map[string]any{"name": "Alice", "email": "alice@example.com"}},
		},
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := idp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	next = p
	return p, srv
}

// TestUserInfoFailsLogin: a userinfo endpoint that fails, or answers for
// another user, fails the login with the callback's 400 page and creates no
// session.
func TestUserInfoFailsLogin(t *testing.T) {
	tests := map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusInternalServerError)
		},
		"another sub": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"sub":"mallory","email":"mallory@example.com"}`))
		},
	}
	for name, userinfo := range tests {
		t.Run(name, func(t *testing.T) {
			ln, public := listenLocal(t)
			_, srv := wrappedDemo(t, public, nil, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if r.URL.Path == "/userinfo" {
					userinfo(w, r)
					return
				}
				next.ServeHTTP(w, r)
			})
			cfg := baseConfig(public, srv.URL, "web", "web-secret")
			cfg.OIDC.UserInfo = true
			g := startGateway(t, ln, cfg, serverOptions())
			b := newBrowser(t)
			r := signIn(t, g, b, func(auth *url.URL) *url.URL { return demoLogin(t, b, auth, "alice", "alice") })
			if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, "the sign-in could not be completed") {
				t.Fatalf("callback: %d %s, want the 400 page", r.StatusCode, r.Body)
			}
			for _, c := range r.Cookies() {
				if c.Name == "__Host-Http-cloakroom" && c.MaxAge >= 0 {
					t.Errorf("a session cookie was set: %s", c.Name)
				}
			}
			if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/bff/user after the failed login: %d, want 401", r.StatusCode)
			}
			if logs := g.Logs.String(); !strings.Contains(logs, "userinfo") || strings.Contains(logs, "mallory@example.com") {
				t.Errorf("logs do not say userinfo failed, or quote the answer:\n%s", logs)
			}
		})
	}
}

// TestUserInfoWithoutEndpoint: oidc.userinfo with a provider whose
// discovery has no userinfo_endpoint keeps the gateway from becoming
// ready, and the log says why.
func TestUserInfoWithoutEndpoint(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := wrappedDemo(t, public, nil, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Errorf("demo discovery: %v", err)
		}
		delete(doc, "userinfo_endpoint")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.OIDC.UserInfo = true
	g := runGateway(t, ln, cfg, serverOptions())
	const want = "metadata has no userinfo_endpoint, which oidc.userinfo: true needs"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.Logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying %q:\n%s", want, g.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := newBrowser(t).get(g.URL + "/bff/login"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/bff/login: %d, want 503 while discovery is refused", r.StatusCode)
	}
}
