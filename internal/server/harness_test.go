package server_test

import (
	"bytes"
	"context"
	"encoding/base64"

	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/demo/idp"
	"github.com/cloakroom/cloakroom/internal/demo/idp/loginform"
	"github.com/cloakroom/cloakroom/internal/server"
)

// clock is a settable time source shared by the gateway under test.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// upstream is a real HTTP server that records what reached it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) Requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

// gateway is a running Cloakroom on 127.0.0.1:0, addressed as localhost.
type gateway struct {
	URL   string // http://localhost:PORT
	Clock *clock
	Logs  *syncBuffer
	cfg   *config.Config
	// Stop shuts the gateway down and waits for server.Run to return.
	Stop func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listenLocal reserves the gateway's port first: the provider must know the
// redirect URI before the gateway's config can name the provider.
func listenLocal(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
}

var testKey = "base64:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// baseConfig is a valid config for public with defaults filled in.
func baseConfig(public, issuer, clientID, secret string) *config.Config {
	cfg := config.Default()
	cfg.PublicURL = public
	cfg.OIDC.Issuer = issuer
	cfg.OIDC.ClientID = clientID
	cfg.OIDC.ClientSecret = secret
	cfg.Session.Store = "memory"
	cfg.Session.Keys = []string{testKey}
	return cfg
}

// runGateway runs server.Run with cfg on ln until the test ends.
func runGateway(t *testing.T, ln net.Listener, cfg *config.Config, opts server.Options) *gateway {
	t.Helper()
	g := &gateway{URL: cfg.PublicURL, Clock: &clock{}, Logs: &syncBuffer{}, cfg: cfg}
	if opts.Now == nil {
		opts.Now = g.Clock.Now
	}
	opts.Listener = ln
	opts.Logger = slog.New(slog.NewJSONHandler(g.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, opts) }()
	var once sync.Once
	g.Stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server.Run: %v", err)
			}
		})
	}
	t.Cleanup(g.Stop)
	return g
}

// startGateway runs the gateway and waits until discovery succeeded, so
// tests start from a ready gateway.
func startGateway(t *testing.T, ln net.Listener, cfg *config.Config, opts server.Options) *gateway {
	t.Helper()
	g := runGateway(t, ln, cfg, opts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := noRedirect(nil).Get(g.URL + "/bff/login")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never became ready: %v; logs:\n%s", err, g.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return g
}

// secureJar treats http://localhost and 127.0.0.1 as secure origins, as
// browsers do, so the gateway's Secure cookies come back in tests.
type secureJar struct{ *cookiejar.Jar }

func newJar() *secureJar {
	j, _ := cookiejar.New(nil)
	return &secureJar{j}
}

func asHTTPS(u *url.URL) *url.URL {
	if u.Scheme != "http" {
		return u
	}
	c := *u
	c.Scheme = "https"
	return &c
}

func (j *secureJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.Jar.SetCookies(asHTTPS(u), cs) }
func (j *secureJar) Cookies(u *url.URL) []*http.Cookie        { return j.Jar.Cookies(asHTTPS(u)) }

// browser is an HTTP client with a cookie jar that stops at every redirect
// so tests can look at each hop.
type browser struct {
	t   testing.TB
	c   *http.Client
	jar *secureJar
}

func newBrowser(t testing.TB) *browser {
	jar := newJar()
	return &browser{t: t, jar: jar, c: noRedirect(jar)}
}

func noRedirect(jar http.CookieJar) *http.Client {
	c := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	if jar != nil {
		c.Jar = jar
	}
	return c
}

type response struct {
	*http.Response
	Body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp, string(body)}
}

func (b *browser) get(u string, hdr ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

func (b *browser) postForm(u string, v url.Values) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func location(t testing.TB, r response) *url.URL {
	t.Helper()
	if r.StatusCode != http.StatusFound && r.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d, want a redirect; body: %s", r.StatusCode, r.Body)
	}
	u, err := r.Location()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// demoLogin signs in at the demo provider's login form and returns the
// callback URL the provider redirected to (not yet followed).
func demoLogin(t testing.TB, b *browser, authURL *url.URL, user, pass string) *url.URL {
	t.Helper()
	page := b.get(authURL.String())
	if page.StatusCode != http.StatusOK {
		// Already signed in at the provider: straight back.
		return location(t, page)
	}
	action, v, err := loginform.Fill(authURL, page.Body, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return location(t, b.postForm(action.String(), v))
}

// signIn runs the whole login: /bff/login → provider → callback → landing.
// It returns the landing response.
func signIn(t testing.TB, g *gateway, b *browser, login func(*url.URL) *url.URL) response {
	t.Helper()
	auth := location(t, b.get(g.URL+"/bff/login?returnUrl=/app/home"))
	cb := login(auth)
	if !strings.HasPrefix(cb.String(), g.URL+"/bff/callback") {
		t.Fatalf("provider redirected to %s, want the callback", cb)
	}
	return b.get(cb.String())
}

// demoProvider runs the demo IdP on 127.0.0.1 for a gateway at public.
func demoProvider(t testing.TB, public string, mod func(*idp.Options)) (*idp.Provider, *httptest.Server) {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	opts := idp.Options{
		Issuer: srv.URL,
		Clients: []idp.Client{{
			ID: "web", Secret: "web-secret",
			RedirectURIs:           []string{public + "/bff/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
		Users: []idp.User{
			{Subject: "alice-1", Username: "alice", Password: "alice", Claims: map[string]any{"name": "Alice", "email": "alice@example.com", "groups": []string{"admins", "users"}}},
			{Subject: "bob-1", Username: "bob", Password: "bob", Claims: map[string]any{"name": "Bob"}},
		},
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := idp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h = p
	return p, srv
}

// env is a gateway in front of the demo provider and one upstream at
// /api/orders/.
type env struct {
	g   *gateway
	idp *idp.Provider
	up  *upstream
}

func newEnv(t *testing.T, mod func(*config.Config)) *env {
	t.Helper()
	ln, public := listenLocal(t)
	p, srv := demoProvider(t, public, nil)
	up := newUpstream(t, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/v1/", Token: "user", Timeout: 30 * time.Second}}
	if mod != nil {
		mod(cfg)
	}
	return &env{g: startGateway(t, ln, cfg, server.Options{}), idp: p, up: up}
}

func (e *env) login(t *testing.T, b *browser, user string) response {
	t.Helper()
	return signIn(t, e.g, b, func(auth *url.URL) *url.URL { return demoLogin(t, b, auth, user, user) })
}

func serverOptions() server.Options { return server.Options{} }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustB64Decode(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// burst sends GET url with the CSRF header n times at once from b, each
// to urls[i%len(urls)], and counts the statuses.
func burst(t *testing.T, b *browser, n int, urls ...string) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, urls[i%len(urls)], nil)
			req.Header.Set("X-CSRF", "1")
			resp, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}
