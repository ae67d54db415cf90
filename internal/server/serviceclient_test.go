package server_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/server"
)

// grantLog records which client asked for which grant at the token
// endpoint.
type grantLog struct {
	mu   sync.Mutex
	seen []string // "client_id grant_type"
}

func (l *grantLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, s)
}

func (l *grantLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.seen {
		if x == s {
			n++
		}
	}
	return n
}

// refusingProvider is the demo provider with a second client, api-caller,
// in front of which the token endpoint refuses the client-credentials and
// token-exchange grants to the main client "web", as providers do that
// keep one client from signing users in and holding client_credentials
// (Authelia's configuration check).
func refusingProvider(t *testing.T, public string) (*idp.Provider, string, *grantLog) {
	t.Helper()
	log := &grantLog{}
	p, srv := wrappedDemo(t, public, func(o *idp.Options) {
		o.Clients = append(o.Clients, idp.Client{ID: "api-caller", Secret: "api-caller-secret"})
	}, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodPost && r.URL.Path == "/token" {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			id, _, ok := r.BasicAuth()
			if !ok {
				id = r.PostForm.Get("client_id")
			}
			grant := r.PostForm.Get("grant_type")
			log.add(id + " " + grant)
			if id == "web" && (grant == "client_credentials" || grant == "urn:ietf:params:oauth:grant-type:token-exchange") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"unauthorized_client"}`))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	return p, srv.URL, log
}

// TestServiceClient: with oidc.service_client, client, user_or_client
// (anonymous) and exchange routes and composite parts get their tokens as
// the second client, while logins and refreshes stay with the main one.
// Without it, the same provider refuses those routes' tokens.
func TestServiceClient(t *testing.T) {
	for _, withService := range []bool{true, false} {
		t.Run(map[bool]string{true: "service client", false: "main client only"}[withService], func(t *testing.T) {
			ln, public := listenLocal(t)
			p, issuer, grants := refusingProvider(t, public)
			ups := map[string]*upstream{}
			cfg := baseConfig(public, issuer, "web", "web-secret")
			// The user's token is issued for api-caller too, which the
			// demo provider needs to let api-caller exchange it.
			cfg.OIDC.AuthParams = map[string]string{"audience": "api-caller"}
			if withService {
				cfg.OIDC.ServiceClient = &config.ServiceClient{ClientID: "api-caller", ClientSecret: "api-caller-secret"}
			}
			for _, r := range []struct{ path, mode, audience string }{
				{"/client/", "client", ""}, {"/uoc/", "user_or_client", ""}, {"/exch/", "exchange", "https://inventory.example"},
			} {
				ups[r.path] = newUpstream(t, nil)
				cfg.APIs = append(cfg.APIs, config.API{Path: r.path, Upstream: ups[r.path].URL + "/", Token: r.mode, Audience: r.audience, Timeout: 10 * time.Second})
			}
			part := newUpstream(t, nil)
			cfg.Composites = []config.Composite{{
				Path:  "/bff/dash",
				Parts: map[string]config.Part{"stock": {Upstream: part.URL + "/", Path: "stock", Token: "client", Required: true}},
			}}
			g := startGateway(t, ln, cfg, server.Options{})
			b := newBrowser(t)

			// tokenOf calls path and returns the claims of the token the
			// upstream got, or nil when the call failed.
			tokenOf := func(path string, up *upstream) map[string]any {
				t.Helper()
				n := len(up.Requests())
				r := b.get(g.URL+path, "X-CSRF", "1")
				if !withService {
					if r.StatusCode != http.StatusUnauthorized || len(up.Requests()) != n {
						t.Errorf("%s without a service client: %d, want 401 and no upstream call", path, r.StatusCode)
					}
					return nil
				}
				if r.StatusCode != http.StatusOK {
					t.Errorf("%s: %d %s", path, r.StatusCode, r.Body)
					return nil
				}
				reqs := up.Requests()
				claims, err := p.VerifyAccessToken(bearerOf(reqs[len(reqs)-1]))
				if err != nil {
					t.Errorf("%s: upstream got a bad token: %v", path, err)
				}
				return claims
			}
			check := func(path string, claims map[string]any, sub, clientID string) {
				t.Helper()
				if claims != nil && (claims["sub"] != sub || claims["client_id"] != clientID) {
					t.Errorf("%s: token sub %v client_id %v, want %s %s", path, claims["sub"], claims["client_id"], sub, clientID)
				}
			}

			check("/client/", tokenOf("/client/x", ups["/client/"]), "api-caller", "api-caller")
			check("/uoc/ anonymous", tokenOf("/uoc/x", ups["/uoc/"]), "api-caller", "api-caller")
			r := b.get(g.URL+"/bff/dash", "X-CSRF", "1")
			switch {
			case withService && r.StatusCode != http.StatusOK:
				t.Errorf("composite: %d %s", r.StatusCode, r.Body)
			case withService:
				reqs := part.Requests()
				if len(reqs) != 1 {
					t.Fatalf("composite part called %d times", len(reqs))
				}
				claims, err := p.VerifyAccessToken(bearerOf(reqs[0]))
				if err != nil {
					t.Fatalf("composite part got a bad token: %v", err)
				}
				check("composite part", claims, "api-caller", "api-caller")
			case len(part.Requests()) != 0:
				t.Errorf("composite part called without a token")
			}

			landing := signIn(t, g, b, func(auth *url.URL) *url.URL { return demoLogin(t, b, auth, "alice", "alice") })
			if landing.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", landing.StatusCode, landing.Body)
			}
			if withService {
				// Signed in: user_or_client forwards the user's token.
				uoc := tokenOf("/uoc/x", ups["/uoc/"])
				check("/uoc/ signed in", uoc, "alice-1", "web")
				exch := tokenOf("/exch/x", ups["/exch/"])
				check("/exch/", exch, "alice-1", "api-caller")
				if exch != nil && !audHas(exch["aud"], "https://inventory.example") {
					t.Errorf("/exch/: aud %v", exch["aud"])
				}
			} else {
				tokenOf("/exch/x", ups["/exch/"])
			}

			if n := grants.count("web authorization_code"); n != 1 {
				t.Errorf("logins by web: %d, want 1 (%q)", n, grants.seen)
			}
			if withService {
				for _, refused := range []string{"web client_credentials", "web urn:ietf:params:oauth:grant-type:token-exchange"} {
					if n := grants.count(refused); n != 0 {
						t.Errorf("%q asked %d times with a service client configured", refused, n)
					}
				}
				if grants.count("api-caller client_credentials") == 0 || grants.count("api-caller urn:ietf:params:oauth:grant-type:token-exchange") != 1 {
					t.Errorf("grants %q, want client_credentials and one token exchange by api-caller", grants.seen)
				}
				if n := grants.count("api-caller authorization_code") + grants.count("api-caller refresh_token"); n != 0 {
					t.Errorf("the service client signed a user in or refreshed: %q", grants.seen)
				}
			}
		})
	}
}
