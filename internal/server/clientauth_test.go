package server_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidctest/nodeop"
	"github.com/cloakroom/cloakroom/internal/server"
	"github.com/go-jose/go-jose/v4"
)

// introspector is the resource server's client at the provider: upstreams
// introspect the gateway's tokens with it (RFC 7662).
const introspector, introspectorSecret = "orders-api", "orders-api-secret"

// boundUpstream is an https API that accepts a bearer token only when the
// provider's introspection says it is active and, for a certificate-bound
// token (cnf.x5t#S256, RFC 8705 §3.2), only over a connection presenting
// that certificate. It records what it saw.
type boundUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenToken
}

type seenToken struct {
	token, cnf, peer string // cnf.x5t#S256 and the presented certificate's thumbprint
}

func newBoundUpstream(t *testing.T, p *nodeop.Provider) *boundUpstream {
	t.Helper()
	u := &boundUpstream{}
	hc := p.CA.HTTPClient(t)
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no bearer token", http.StatusUnauthorized)
			return
		}
		active, cnf, err := introspect(hc, p, tok)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var peer string
		if len(r.TLS.PeerCertificates) > 0 {
			peer = thumbprint(r.TLS.PeerCertificates[0].Raw)
		}
		u.mu.Lock()
		u.seen = append(u.seen, seenToken{tok, cnf, peer})
		u.mu.Unlock()
		switch {
		case !active:
			http.Error(w, "inactive token", http.StatusUnauthorized)
		case cnf != "" && cnf != peer:
			http.Error(w, "the token is bound to another certificate", http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"orders":[]}`)
		}
	}))
	u.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.CA.ServerCert(t).TLS},
		ClientAuth:   tls.RequestClientCert, // the handler decides
	}
	u.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *boundUpstream) last(t *testing.T) seenToken {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return u.seen[len(u.seen)-1]
}

// introspect asks the provider about tok as the resource server.
func introspect(hc *http.Client, p *nodeop.Provider, tok string) (active bool, cnf string, err error) {
	req, err := http.NewRequest(http.MethodPost, p.IntrospectionEndpoint, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(introspector, introspectorSecret)
	resp, err := hc.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	var ir struct {
		Active bool `json:"active"`
		Cnf    struct {
			X5t string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ir); err != nil {
		return false, "", err
	}
	return ir.Active, ir.Cnf.X5t, nil
}

func thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// listen127 reserves a port for a gateway whose public URL is
// http://127.0.0.1:PORT: the provider (Node.js) posts logout tokens to it
// and fetches /bff/jwks from it, and 127.0.0.1 is what it listens on.
func listen127(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

// clientAuthCase is one gateway client of the shared provider.
type clientAuthCase struct {
	name   string
	client nodeop.Client
	mod    func(*config.Config) // client_auth and its files
	bound  bool                 // tokens bound to the gateway's certificate
	ln     net.Listener
	public string
}

// TestClientAuth: against panva's oidc-provider (a certified provider,
// over HTTPS with a test CA), the gateway signs in, calls an API, refreshes,
// logs out (revoking the refresh token) and ends its session on a
// back-channel logout with each client authentication method:
// private_key_jwt with an RSA key as PEM (registered inline) and with a
// JWKS of two EC keys (registered by jwks_uri: the provider fetches the
// gateway's /bff/jwks), tls_client_auth with a CA-issued certificate and
// self_signed_tls_client_auth, both with certificate-bound tokens that the
// API accepts only over a connection presenting the gateway's certificate.
// The provider's mutual TLS endpoints are on another port, published as
// mtls_endpoint_aliases: a gateway that did not use them would present its
// certificate to nobody.
func TestClientAuth(t *testing.T) {
	ca := nodeop.NewCA(t)
	rsaKey := nodeop.NewRSAKey(t)
	ecNew, ecOld := nodeop.NewECKey(t), nodeop.NewECKey(t)
	caCert := ca.ClientCert(t, "cloakroom-gateway")
	selfSigned := nodeop.SelfSignedCert(t, "cloakroom-self-signed")

	cases := []*clientAuthCase{
		{name: "private_key_jwt RSA PEM", client: nodeop.Client{TokenEndpointAuthMethod: "private_key_jwt", JWKS: nodeop.PublicJWKS(rsaKey)},
			mod: func(c *config.Config) {
				c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", rsaKey.WritePEM(t)
			}},
		{name: "private_key_jwt EC JWKS by jwks_uri", client: nodeop.Client{TokenEndpointAuthMethod: "private_key_jwt"},
			mod: func(c *config.Config) {
				c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", nodeop.WriteJWKS(t, ecNew, ecOld)
			}},
		{name: "tls_client_auth", client: nodeop.Client{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSubjectDN: caCert.SubjectDN(), TLSClientCertificateBoundAccessTokens: true},
			mod: func(c *config.Config) {
				c.OIDC.ClientAuth, c.OIDC.ClientCertificateFile, c.OIDC.ClientCertificateKeyFile = "tls_client_auth", caCert.CertFile, caCert.KeyFile
			}, bound: true},
		{name: "self_signed_tls_client_auth", client: nodeop.Client{TokenEndpointAuthMethod: "self_signed_tls_client_auth", JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{selfSigned.JWK()}}, TLSClientCertificateBoundAccessTokens: true},
			mod: func(c *config.Config) {
				c.OIDC.ClientAuth, c.OIDC.ClientCertificateFile, c.OIDC.ClientCertificateKeyFile = "self_signed_tls_client_auth", selfSigned.CertFile, selfSigned.KeyFile
			}, bound: true},
	}
	opts := nodeop.Options{
		CA: ca, MTLS: true, Revocation: true, Introspection: true, BackchannelLogout: true,
		AccessTokenTTL: 120 * time.Second,
		Clients: []nodeop.Client{{
			ClientID: introspector, ClientSecret: introspectorSecret,
			RedirectURIs: []string{"https://orders-api.example.test/unused"},
		}},
	}
	// The wrong-key gateway's client is registered with rsaKey.
	wrongLn, wrongPublic := listen127(t)
	opts.Clients = append(opts.Clients, nodeop.Client{
		ClientID: "bff-wrong-key", TokenEndpointAuthMethod: "private_key_jwt", JWKS: nodeop.PublicJWKS(rsaKey),
		RedirectURIs: []string{wrongPublic + "/bff/callback"},
	})
	for i, c := range cases {
		c.ln, c.public = listen127(t)
		c.client.ClientID = "bff-" + string(rune('a'+i))
		c.client.RedirectURIs = []string{c.public + "/bff/callback"}
		c.client.PostLogoutRedirectURIs = []string{c.public + "/"}
		c.client.BackchannelLogoutURI = c.public + "/bff/backchannel"
		if c.client.TokenEndpointAuthMethod == "private_key_jwt" && c.client.JWKS == nil {
			c.client.JWKSURI = c.public + "/bff/jwks"
		}
		opts.Clients = append(opts.Clients, c.client)
	}
	p := nodeop.Start(t, opts)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := newBoundUpstream(t, p)
			cfg := baseConfig(c.public, p.Issuer, c.client.ClientID, "")
			cfg.RateLimit = config.RateLimit{}
			cfg.APIs = []config.API{{
				Path: "/api/orders/", Upstream: up.URL + "/v1/", Token: "user", Timeout: 10 * time.Second,
				TLS: &config.UpstreamTLS{CAFile: ca.File}, // the gateway's certificate comes from oidc
			}}
			c.mod(cfg)
			if probs := cfg.Validate(); probs != nil {
				t.Fatalf("config: %v", probs)
			}
			if probs := server.CheckClientAuth(cfg); probs != nil {
				t.Fatalf("check: %v", probs)
			}
			g := startGateway(t, c.ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
			b := newBrowser(t)
			pb := p.Browser(t)
			login := func() {
				t.Helper()
				auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/app/home"))
				cb, err := p.Login(t.Context(), pb, auth.String())
				if err != nil {
					t.Fatalf("login at the provider: %v", err)
				}
				// A SameSite=Strict session answers the cross-site callback
				// with a page that goes on to returnUrl.
				if r := b.get(cb.String()); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "url=/app/home") {
					t.Fatalf("callback: %d %s, want the page going on to /app/home; logs:\n%s", r.StatusCode, r.Body, g.Logs)
				}
			}
			login()

			var user []struct {
				Type  string `json:"type"`
				Value any    `json:"value"`
			}
			r := b.get(g.URL+"/bff/user", "X-CSRF", "1")
			if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.Body), &user) != nil {
				t.Fatalf("/bff/user: %d %s", r.StatusCode, r.Body)
			}
			claims := map[string]any{}
			for _, c := range user {
				claims[c.Type] = c.Value
			}
			if claims["sub"] != nodeop.DefaultUsername {
				t.Errorf("sub: got %v, want %q", claims["sub"], nodeop.DefaultUsername)
			}

			call := func() seenToken {
				t.Helper()
				r := b.get(g.URL+"/api/orders/x", "X-CSRF", "1")
				if r.StatusCode != http.StatusOK {
					t.Fatalf("API call: got %d %s, want 200; logs:\n%s", r.StatusCode, r.Body, g.Logs)
				}
				return up.last(t)
			}
			first := call()
			if c.bound {
				if first.cnf == "" || first.cnf != first.peer {
					t.Errorf("access token cnf.x5t#S256 %q, presented certificate %q: want a token bound to the gateway's certificate", first.cnf, first.peer)
				}
			} else if first.cnf != "" {
				t.Errorf("access token bound to %q, want an unbound token", first.cnf)
			}

			// The access token lives 120 s; refresh_before is 60 s.
			g.Clock.Advance(70 * time.Second)
			second := call()
			if second.token == first.token {
				t.Error("the access token was not refreshed")
			}
			if c.bound && second.cnf != second.peer {
				t.Errorf("refreshed token cnf %q, presented %q", second.cnf, second.peer)
			}

			// RP-initiated logout: the refresh token is revoked, and with it
			// (oidc-provider revokes the grant) the access token.
			var logoutURL string
			r = b.get(g.URL+"/bff/user", "X-CSRF", "1")
			_ = json.Unmarshal([]byte(r.Body), &user)
			for _, c := range user {
				if c.Type == "bff:logout_url" {
					logoutURL, _ = c.Value.(string)
				}
			}
			end := location(t, b.get(g.URL+logoutURL))
			if !strings.HasPrefix(end.String(), p.EndSessionEndpoint) {
				t.Fatalf("logout went to %s, want the end-session endpoint", end)
			}
			if active, _, err := introspect(p.CA.HTTPClient(t), p, second.token); err != nil || active {
				t.Errorf("the access token after logout: active %v (%v), want revoked with the refresh token", active, err)
			}
			if strings.Contains(g.Logs.String(), "refresh token revocation failed") {
				t.Errorf("revocation failed; logs:\n%s", g.Logs)
			}
			if _, err := p.Logout(t.Context(), pb, end.String()); err != nil {
				t.Fatalf("logout at the provider: %v", err)
			}
			if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/bff/user after logout: %d, want 401", r.StatusCode)
			}

			// Back-channel logout: signed in again, signed out at the
			// provider alone; its logout token ends the gateway's session.
			login()
			if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
				t.Fatalf("/bff/user after the second login: %d", r.StatusCode)
			}
			if _, err := p.Logout(t.Context(), pb, p.EndSessionEndpoint); err != nil {
				t.Fatalf("logout at the provider: %v", err)
			}
			if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/bff/user after back-channel logout: %d, want 401; logs:\n%s", r.StatusCode, g.Logs)
			}
		})
	}

	// A key the provider does not know: the code exchange is refused, the
	// browser sees the error page, and neither the page nor the logs hold
	// the code, the assertion or the key.
	t.Run("wrong key", func(t *testing.T) {
		keyFile := nodeop.NewRSAKey(t).WritePEM(t)
		cfg := baseConfig(wrongPublic, p.Issuer, "bff-wrong-key", "")
		cfg.OIDC.ClientAuth, cfg.OIDC.PrivateKeyFile = "private_key_jwt", keyFile
		g := startGateway(t, wrongLn, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
		b := newBrowser(t)
		auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/app/home"))
		cb, err := p.Login(t.Context(), p.Browser(t), auth.String())
		if err != nil {
			t.Fatalf("login at the provider: %v", err)
		}
		r := b.get(cb.String())
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("callback: got %d, want the error page (400); body %s", r.StatusCode, r.Body)
		}
		key, _ := os.ReadFile(keyFile)
		code := cb.Query().Get("code")
		for where, text := range map[string]string{"page": r.Body, "logs": g.Logs.String()} {
			for _, leak := range []string{code, "eyJ", string(key[40:80])} {
				if strings.Contains(text, leak) {
					t.Errorf("the %s holds %q", where, leak)
				}
			}
		}
		if !strings.Contains(g.Logs.String(), "invalid_client") {
			t.Errorf("the refusal is not logged as invalid_client; logs:\n%s", g.Logs)
		}
		if r := b.get(g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("/bff/user: %d, want 401", r.StatusCode)
		}
	})
}

// TestJWKS: /bff/jwks serves the public halves of every key of
// private_key_file, and of the service client's own key file, each once,
// with use, alg and kid, and nothing private; 404 without such a key.
func TestJWKS(t *testing.T) {
	rsaKey, ecA, ecB, svc := nodeop.NewRSAKey(t), nodeop.NewECKey(t), nodeop.NewECKey(t), nodeop.NewECKey(t)
	jwksFile := nodeop.WriteJWKS(t, ecA, ecB)
	tests := []struct {
		name string
		mod  func(*config.Config)
		want []*nodeop.Key // nil: 404
	}{
		{"no key", nil, nil},
		{"PEM key", func(c *config.Config) {
			c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", rsaKey.WritePEM(t)
		}, []*nodeop.Key{rsaKey}},
		{"JWKS for rotation", func(c *config.Config) { c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", jwksFile }, []*nodeop.Key{ecA, ecB}},
		{"service client's key too", func(c *config.Config) {
			c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", jwksFile
			c.OIDC.ServiceClient = &config.ServiceClient{ClientID: "svc", ClientAuth: "private_key_jwt", PrivateKeyFile: svc.WritePEM(t)}
		}, []*nodeop.Key{ecA, ecB, svc}},
		{"service client sharing the key file", func(c *config.Config) {
			c.OIDC.ClientAuth, c.OIDC.PrivateKeyFile = "private_key_jwt", jwksFile
			c.OIDC.ServiceClient = &config.ServiceClient{ClientID: "svc", ClientAuth: "private_key_jwt", PrivateKeyFile: jwksFile}
		}, []*nodeop.Key{ecA, ecB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.Config) {
				if tt.mod != nil {
					c.OIDC.ClientSecret = ""
					tt.mod(c)
				}
			})
			r := newBrowser(t).get(e.g.URL + "/bff/jwks")
			if tt.want == nil {
				if r.StatusCode != http.StatusNotFound {
					t.Fatalf("got %d, want 404", r.StatusCode)
				}
				return
			}
			if r.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", r.StatusCode, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
				t.Errorf("Content-Type: got %q, want application/jwk-set+json", ct)
			}
			if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
				t.Errorf("Cache-Control: got %q, want max-age=300", cc)
			}
			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.Body), &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw.Keys) != len(tt.want) {
				t.Fatalf("got %d keys, want %d: %s", len(raw.Keys), len(tt.want), r.Body)
			}
			for i, k := range raw.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
					if _, ok := k[private]; ok {
						t.Errorf("key %d has the private member %q", i, private)
					}
				}
				want := tt.want[i]
				if k["kid"] != want.KeyID || k["alg"] != string(want.Alg) || k["use"] != "sig" {
					t.Errorf("key %d: kid %v alg %v use %v, want %s %s sig", i, k["kid"], k["alg"], k["use"], want.KeyID, want.Alg)
				}
			}
		})
	}
}

// TestClientAuthCheckMatchesServe: a key file that config.Validate lets
// through but the key loader refuses is refused by `check`
// (server.CheckClientAuth) and by serve (server.New) alike, with the same
// reason.
func TestClientAuthCheckMatchesServe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec := nodeop.NewECKey(t)
	pub, err := json.Marshal(ec.PublicJWK())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, why string
	}{
		{"not a key", write("garbage.pem", "not a key at all"), "is neither PEM nor JSON"},
		{"public key only", write("public.jwk", string(pub)), "is a public key"},
		{"wrong PEM block", write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), `PEM block of type "CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig("http://localhost:8080", "http://127.0.0.1:9", "web", "")
			cfg.OIDC.ClientAuth, cfg.OIDC.PrivateKeyFile = "private_key_jwt", tt.file
			for _, p := range cfg.Validate() {
				if !p.Warning {
					t.Fatalf("config.Validate: %v, want the file to pass the config checks", p)
				}
			}
			probs := server.CheckClientAuth(cfg)
			if len(probs) != 1 || probs[0].Key != "oidc.private_key_file" || !strings.Contains(probs[0].Msg, tt.why) {
				t.Errorf("check: got %v, want one problem at oidc.private_key_file about %q", probs, tt.why)
			}
			_, err := server.New(cfg, server.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("serve: got %v, want a refusal about %q", err, tt.why)
			}
			if err != nil && strings.Contains(err.Error(), "not a key at all") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
	if probs := server.CheckClientAuth(baseConfig("http://localhost:8080", "http://127.0.0.1:9", "web", "secret")); probs != nil {
		t.Errorf("a client secret: got %v, want no problem", probs)
	}
}

// TestServiceClientPrivateKeyJWT: the service client signs its client
// credentials grants with its own key (its public half published at
// /bff/jwks with the main client's, where the provider fetches it), while
// the main client keeps its secret.
func TestServiceClientPrivateKeyJWT(t *testing.T) {
	ln, public := listen127(t)
	key := nodeop.NewECKey(t)
	p := nodeop.Start(t, nodeop.Options{
		ClientCredentials: true, Introspection: true,
		Clients: []nodeop.Client{
			{ClientID: "web", ClientSecret: "web-secret", RedirectURIs: []string{public + "/bff/callback"}},
			{ClientID: "api-caller", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: public + "/bff/jwks",
				GrantTypes: []string{"client_credentials"}, Extra: map[string]any{"response_types": []string{}}},
		},
	})
	up := newUpstream(t, nil)
	cfg := baseConfig(public, p.Issuer, "web", "web-secret")
	cfg.OIDC.ServiceClient = &config.ServiceClient{ClientID: "api-caller", ClientAuth: "private_key_jwt", PrivateKeyFile: key.WritePEM(t)}
	cfg.APIs = []config.API{{Path: "/api/jobs/", Upstream: up.URL + "/", Token: "client", Timeout: 10 * time.Second}}
	if probs := cfg.Validate(); probs != nil {
		t.Fatalf("config: %v", probs)
	}
	g := startGateway(t, ln, cfg, server.Options{HTTPClient: p.CA.HTTPClient(t)})
	r := newBrowser(t).get(g.URL+"/api/jobs/x", "X-CSRF", "1")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("API call: got %d %s, want 200; logs:\n%s", r.StatusCode, r.Body, g.Logs)
	}
	reqs := up.Requests()
	tok, ok := strings.CutPrefix(reqs[len(reqs)-1].Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatal("no bearer token upstream")
	}
	req, _ := http.NewRequest(http.MethodPost, p.IntrospectionEndpoint, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "web-secret")
	resp, err := p.CA.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ir struct {
		Active   bool   `json:"active"`
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ir); err != nil {
		t.Fatal(err)
	}
	if !ir.Active || ir.ClientID != "api-caller" {
		t.Errorf("the upstream's token: active %v, client %q; want an active token of api-caller", ir.Active, ir.ClientID)
	}
}
