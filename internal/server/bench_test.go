package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/proxy"
	"github.com/cloakroom/cloakroom/internal/server"
)

// BenchmarkProxy compares one authenticated API call through the whole
// chain (host guard, security headers, CSRF check, session load and unseal,
// token, ReverseProxy) with a bare httputil.ReverseProxy that adds a fixed
// bearer, both against the same real upstream over loopback, measured in
// the same run. The ratio metrics are cloakroom/bare. "dpop" is the
// cloakroom call with oidc.dpop: a DPoP-bound token and a fresh proof
// signed with the session's key on every call (its ratios are to
// "cloakroom"; it needs Node.js for oidc-provider, see package nodeop).
func BenchmarkProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)

	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer fixed-token")
		},
		Transport: proxy.NewTransport(0),
	}

	public, handler, cookie := benchGateway(b, up.URL, server.Options{}, nil)

	// Each sub-benchmark records its own cost; "cloakroom" runs second and
	// reports its ratios to "bare".
	type cost struct{ ns, allocs float64 }
	var bareCost, bearerCost cost
	measure := func(b *testing.B, h http.Handler, req func() *http.Request) cost {
		b.ReportAllocs()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req())
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
		runtime.ReadMemStats(&after)
		return cost{float64(b.Elapsed().Nanoseconds()) / float64(b.N), float64(after.Mallocs-before.Mallocs) / float64(b.N)}
	}
	b.Run("bare", func(b *testing.B) {
		bareCost = measure(b, bare, func() *http.Request {
			return httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
		})
	})
	b.Run("cloakroom", func(b *testing.B) {
		c := measure(b, handler, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
			r.Header.Set("X-CSRF", "1")
			r.AddCookie(cookie)
			return r
		})
		if bareCost.ns > 0 {
			b.ReportMetric(c.ns/bareCost.ns, "x-bare-ns")
			b.ReportMetric(c.allocs/max(bareCost.allocs, 1), "x-bare-allocs")
		}
		bearerCost = c
	})
	b.Run("dpop", func(b *testing.B) {
		public, handler, cookie := benchDPoPGateway(b, up.URL)
		c := measure(b, handler, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
			r.Header.Set("X-CSRF", "1")
			r.AddCookie(cookie)
			return r
		})
		if bearerCost.ns > 0 {
			b.ReportMetric(c.ns/bearerCost.ns, "x-bearer-ns")
			b.ReportMetric(c.allocs/max(bearerCost.allocs, 1), "x-bearer-allocs")
		}
	})
}

// benchUpstream is a real upstream over loopback that answers every
// request with a small JSON body.
func benchUpstream(b *testing.B) *httptest.Server {
	payload := `{"orders":[{"id":1,"total":12.5},{"id":2,"total":99.0}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, payload)
	}))
	b.Cleanup(up.Close)
	return up
}

// benchGateway builds the gateway with one API route, /api/orders/ to
// upstream with the user's token, and a session made by a real login
// against the demo provider. It returns the gateway's public URL, its
// handler (to be called directly) and the session cookie. mod, if not nil,
// changes the config (the session store, say) before the gateway is built.
// The rate limiter stays in the chain, set high enough never to refuse.
func benchGateway(b *testing.B, upstream string, opts server.Options, mod func(*config.Config)) (public string, h http.Handler, cookie *http.Cookie) {
	b.Helper()
	ln, public := listenLocal(b)
	_, idpSrv := demoProvider(b, public, nil)
	cfg := baseConfig(public, idpSrv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: upstream + "/", Token: "user"}}
	cfg.RateLimit = config.RateLimit{APIPerSecond: 1 << 30, LoginPerMinute: 1 << 30}
	if mod != nil {
		mod(cfg)
	}
	srv, err := server.New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.OIDC.Discover(b.Context()); err != nil {
		b.Fatal(err)
	}
	// Serve the gateway for the one login, then call its handler directly.
	hs := &http.Server{Handler: srv.Handler}
	go hs.Serve(ln)
	br := newBrowser(b)
	signIn(b, &gateway{URL: public}, br, func(auth *url.URL) *url.URL { return demoLogin(b, br, auth, "alice", "alice") })
	hs.Close()
	for _, c := range br.jar.Cookies(mustURL(public)) {
		if c.Name == "__Host-Http-cloakroom" {
			cookie = c
		}
	}
	if cookie == nil {
		b.Fatal("no session after login")
	}
	return public, srv.Handler, cookie
}
