package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/proxy"
	"github.com/cloakroom/cloakroom/internal/server"
)

// BenchmarkProxy compares one authenticated API call through the whole
// chain (host guard, security headers, CSRF check, session load and unseal,
// token, ReverseProxy) with a bare httputil.ReverseProxy that adds a fixed
// bearer, both against the same real upstream over loopback, measured in
// the same run. The ratio metrics are cloakroom/bare.
func BenchmarkProxy(b *testing.B) {
	payload := `{"orders":[{"id":1,"total":12.5},{"id":2,"total":99.0}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, payload)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)

	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer fixed-token")
		},
		Transport: proxy.NewTransport(0),
	}

	// A real session, made by a real login against the demo provider.
	ln, public := listenLocal(b)
	_, idpSrv := demoProvider(b, public, nil)
	cfg := baseConfig(public, idpSrv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/orders/", Upstream: up.URL + "/", Token: "user"}}
	srv, err := server.New(cfg, server.Options{})
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
	var cookie *http.Cookie
	for _, c := range br.jar.Cookies(mustURL(public)) {
		if c.Name == "__Host-Http-cloakroom" {
			cookie = c
		}
	}
	if cookie == nil {
		b.Fatal("no session after login")
	}

	run := func(h http.Handler, req func() *http.Request) testing.BenchmarkResult {
		return testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req())
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
	bareRes := run(bare, func() *http.Request {
		return httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
	})
	fullRes := run(srv.Handler, func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, public+"/api/orders/recent", nil)
		r.Header.Set("X-CSRF", "1")
		r.AddCookie(cookie)
		return r
	})
	b.ReportMetric(float64(bareRes.NsPerOp()), "bare-ns/op")
	b.ReportMetric(float64(fullRes.NsPerOp()), "cloakroom-ns/op")
	b.ReportMetric(float64(fullRes.NsPerOp())/float64(max(bareRes.NsPerOp(), 1)), "ns-ratio")
	b.ReportMetric(float64(bareRes.AllocsPerOp()), "bare-allocs/op")
	b.ReportMetric(float64(fullRes.AllocsPerOp()), "cloakroom-allocs/op")
	b.ReportMetric(float64(fullRes.AllocsPerOp())/float64(max(bareRes.AllocsPerOp(), 1)), "allocs-ratio")
}
