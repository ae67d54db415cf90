package server_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/server"
)

func TestCORSAndCrossOrigin(t *testing.T) {
	up := newUpstream(t, nil)
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.CORS.AllowedOrigins = []string{"https://admin.example.com"}
	cfg.APIs = []config.API{{Path: "/pub/", Upstream: up.URL, Token: "none"}}
	g := startGateway(t, ln, cfg, server.Options{})
	b := newBrowser(t)
	req := func(method, origin string, hdr ...string) response {
		r, _ := http.NewRequest(method, g.URL+"/pub/x", strings.NewReader(""))
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return b.do(r)
	}
	// Preflights are answered here, never passed on.
	pre := req("OPTIONS", "https://admin.example.com", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "x-csrf")
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://admin.example.com" ||
		pre.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "X-Csrf") {
		t.Errorf("allowed preflight: %d %v", pre.StatusCode, pre.Header)
	}
	for _, o := range []string{"https://evil.example", "null", "https://admin.example.com.evil.example"} {
		r := req("OPTIONS", o, "Access-Control-Request-Method", "GET")
		if r.StatusCode != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d ACAO %q", o, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if n := len(up.Requests()); n != 0 {
		t.Fatalf("preflights reached the upstream: %d", n)
	}
	// Responses carry CORS headers only for listed origins, never *.
	if r := req("GET", "https://admin.example.com", "X-CSRF", "1"); r.Header.Get("Access-Control-Allow-Origin") != "https://admin.example.com" {
		t.Errorf("allowed origin GET: ACAO %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	if r := req("GET", "https://evil.example", "X-CSRF", "1"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin GET: ACAO %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	// Unsafe cross-site requests are refused before anything else.
	before := len(up.Requests())
	for _, tc := range []struct{ origin, site string }{
		{"https://evil.example", "cross-site"},
		{"https://evil.example", ""},
		{"", "cross-site"},
	} {
		hdr := []string{"X-CSRF", "1", "Content-Type", "text/plain"}
		if tc.site != "" {
			hdr = append(hdr, "Sec-Fetch-Site", tc.site)
		}
		if r := req("POST", tc.origin, hdr...); r.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST (origin %q, site %q): %d", tc.origin, tc.site, r.StatusCode)
		}
	}
	if len(up.Requests()) != before {
		t.Error("a cross-site POST reached the upstream")
	}
	// Same-origin and trusted-origin POSTs pass.
	if r := req("POST", g.URL, "X-CSRF", "1", "Sec-Fetch-Site", "same-origin"); r.StatusCode != http.StatusOK {
		t.Errorf("same-origin POST: %d", r.StatusCode)
	}
	if r := req("POST", "https://admin.example.com", "X-CSRF", "1", "Sec-Fetch-Site", "cross-site"); r.StatusCode != http.StatusOK {
		t.Errorf("trusted-origin POST: %d", r.StatusCode)
	}
}

func TestRouteLimits(t *testing.T) {
	up := newUpstream(t, nil)
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/pub/", Upstream: up.URL, Token: "none", Methods: []string{"GET", "POST"}, MaxBodyBytes: 1024}}
	cfg.RateLimit = config.RateLimit{APIPerSecond: 1, LoginPerMinute: 3}
	g := startGateway(t, ln, cfg, server.Options{})
	b := newBrowser(t)
	send := func(method, body string, chunked bool) response {
		var r *http.Request
		if chunked {
			r, _ = http.NewRequest(method, g.URL+"/pub/x", struct{ *strings.Reader }{strings.NewReader(body)})
		} else {
			r, _ = http.NewRequest(method, g.URL+"/pub/x", strings.NewReader(body))
		}
		r.Header.Set("X-CSRF", "1")
		return b.do(r)
	}
	if r := send("DELETE", "", false); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE: %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	big := strings.Repeat("x", 2048)
	if r := send("POST", big, false); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: %d", r.StatusCode)
	}
	if n := len(up.Requests()); n != 0 {
		t.Errorf("refused requests reached the upstream: %d", n)
	}
	// A body of unknown length is cut off at the limit while streaming.
	g.Clock.Advance(10 * 1e9)
	if r := send("POST", big, true); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize chunked body: %d", r.StatusCode)
	}
	// Rate limit: 1/s with a burst of 2 per client.
	g.Clock.Advance(10 * 1e9)
	codes := []int{}
	for range 4 {
		codes = append(codes, send("GET", "", false).StatusCode)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || codes[3] != 429 {
		t.Errorf("API statuses %v, want 200 200 429 429", codes)
	}
	if r := send("GET", "", false); r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// A login storm from one address (after a minute's refill).
	g.Clock.Advance(time.Minute)
	codes = codes[:0]
	for range 5 {
		codes = append(codes, b.get(g.URL+"/bff/login").StatusCode)
	}
	if codes[2] != http.StatusFound || codes[3] != http.StatusTooManyRequests {
		t.Errorf("login statuses %v, want three 302 then 429", codes)
	}
	// API answers are sandboxed data.
	g.Clock.Advance(10 * 1e9)
	if r := send("GET", "", false); !strings.Contains(r.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("API CSP %q", r.Header.Get("Content-Security-Policy"))
	}
}

func TestConfiguredCSP(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.Frontend.CSP = "default-src 'self'; script-src 'nonce-{nonce}' https://cdn.example.com"
	g := startGateway(t, ln, cfg, server.Options{Frontend: fstest.MapFS{"index.html": {Data: []byte(`<script src="/a.js"></script>`)}}})
	r := newBrowser(t).get(g.URL + "/")
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'self'; script-src 'nonce-") || !strings.HasSuffix(csp, "https://cdn.example.com") {
		t.Errorf("CSP %q", csp)
	}
	nonce := strings.TrimSuffix(strings.TrimPrefix(csp, "default-src 'self'; script-src 'nonce-"), "' https://cdn.example.com")
	if !strings.Contains(r.Body, `<script nonce="`+nonce+`"`) {
		t.Errorf("body %q lacks nonce %q", r.Body, nonce)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

func TestHeaderlessOptIn(t *testing.T) {
	up := newUpstream(t, nil)
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{
		{Path: "/files/", Upstream: up.URL, Token: "none", AllowHeaderless: true},
		{Path: "/strict/", Upstream: up.URL, Token: "none"},
	}
	g := startGateway(t, ln, cfg, server.Options{})
	b := newBrowser(t)
	for _, tc := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/files/report.pdf", []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate"}, 200},
		{"/files/report.pdf", []string{"Origin", g.URL}, 200},
		{"/files/report.pdf", []string{"Sec-Fetch-Site", "cross-site"}, 401},
		{"/files/report.pdf", []string{"Sec-Fetch-Site", "same-site"}, 401},
		{"/files/report.pdf", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "same-origin"}, 401},
		{"/files/report.pdf", nil, 401},
		{"/strict/report.pdf", []string{"Sec-Fetch-Site", "same-origin"}, 401},
		{"/strict/report.pdf", []string{"Origin", g.URL}, 401},
	} {
		if r := b.get(g.URL+tc.path, tc.hdr...); r.StatusCode != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.path, tc.hdr, r.StatusCode, tc.want)
		}
	}
	if n := len(up.Requests()); n != 2 {
		t.Errorf("upstream saw %d requests, want the 2 admitted ones", n)
	}
}
