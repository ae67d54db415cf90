package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/zitadelop"
)

// TestAgainstZitadelProvider runs the core flow against an OpenID provider
// this project did not write: zitadel/oidc's op package with its example
// storage. The upstream checks the bearer it receives at the provider's
// userinfo endpoint.
func TestAgainstZitadelProvider(t *testing.T) {
	ln, public := listenLocal(t)
	p := zitadelop.Start(t, public+"/bff/callback", public+"/")

	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, p.UserinfoEndpoint, nil)
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	cfg := baseConfig(public, p.Issuer, p.ClientID, p.ClientSecret)
	cfg.APIs = []config.API{{Path: "/api/me/", Upstream: up.URL, Token: "user"}}
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
	sessionCookie(t, landing)

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
	if got["sub"] != p.Subject {
		t.Errorf("sub %v, want %s", got["sub"], p.Subject)
	}
	logoutURL, _ := got["bff:logout_url"].(string)

	api := b.get(g.URL+"/api/me/userinfo", "X-CSRF", "1")
	if api.StatusCode != http.StatusOK || !strings.Contains(api.Body, p.Subject) {
		t.Fatalf("API through the gateway: %d %s", api.StatusCode, api.Body)
	}

	before := p.Revocations()
	to := location(t, b.get(g.URL+logoutURL))
	if !strings.HasPrefix(to.String(), p.EndSessionEndpoint) || to.Query().Get("id_token_hint") == "" {
		t.Errorf("logout redirect %s", to)
	}
	if p.Revocations() != before+1 {
		t.Errorf("revocations %d, want %d", p.Revocations(), before+1)
	}
	back := location(t, b.get(to.String()))
	if !strings.HasPrefix(back.String(), public+"/") {
		t.Errorf("provider's logout sent the browser to %s", back)
	}
	if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("/bff/user after logout: %d", r.StatusCode)
	}
}
