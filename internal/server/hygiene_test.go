package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
)

// hostileHeaders are the request headers no client may pass to an
// upstream, spelled as they are documented (README, "Request pipeline").
var hostileHeaders = []string{
	"Forwarded",
	"X-Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server",
	"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Client-IP",
	"X-Cluster-Client-IP", "X-Original-Forwarded-For",
	"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Host", "X-Original-Host",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
}

// headerKey folds a header name as CGI does: any case, "_" for "-".
func headerKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// hygieneGateway runs a gateway with an API route /api/ and a composite
// /bff/hyg (part "item": items/{query.x}), both to up, tokenless.
func hygieneGateway(t *testing.T, up *upstream, mod func(*config.Config)) (g *gateway, addr string) {
	t.Helper()
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/api/", Upstream: up.URL + "/v1/", Token: "none"}}
	cfg.Composites = []config.Composite{{
		Path:  "/bff/hyg",
		Parts: map[string]config.Part{"item": {Upstream: up.URL + "/v1/", Token: "none", Path: "items/{query.x}", Required: true}},
	}}
	if mod != nil {
		mod(cfg)
	}
	g = startGateway(t, ln, cfg, serverOptions())
	return g, strings.Replace(strings.TrimPrefix(g.URL, "http://"), "localhost", "127.0.0.1", 1)
}

// rawExchange writes target and extra header lines exactly as given, so no
// client library cleans the path or canonicalises a header name, and
// returns the status and Content-Type.
func rawExchange(t *testing.T, g *gateway, addr, target, extra string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	host := strings.TrimPrefix(g.URL, "http://")
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-CSRF: 1\r\nConnection: close\r\n%s\r\n", target, host, extra)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to GET %q: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

// Each hostile header, as documented, in lower case and with "_" for "-",
// is absent at the upstream of an API route and of a composite part; the
// gateway's own X-Forwarded-For/Host/Proto are there. From a trusted
// proxy, only the X-Forwarded-For chain is kept.
func TestHygieneHeadersRawTCP(t *testing.T) {
	var lines strings.Builder
	for _, name := range hostileHeaders {
		for _, v := range []string{name, strings.ToLower(name), strings.ReplaceAll(name, "-", "_")} {
			fmt.Fprintf(&lines, "%s: 6.6.6.6\r\n", v)
		}
	}
	lines.WriteString("X-Ordinary: kept\r\n")

	tests := []struct {
		name    string
		trusted bool
		target  string
		wantXFF string // "" for a composite part, which gets none
	}{
		{name: "api", target: "/api/orders", wantXFF: "127.0.0.1"},
		{name: "api from a trusted proxy", trusted: true, target: "/api/orders", wantXFF: "6.6.6.6, 6.6.6.6, 127.0.0.1"},
		{name: "composite", target: "/bff/hyg?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			g, addr := hygieneGateway(t, up, func(c *config.Config) {
				if tt.trusted {
					c.TrustedProxies = []string{"127.0.0.1"}
				}
			})
			if code, _ := rawExchange(t, g, addr, tt.target, lines.String()); code != http.StatusOK {
				t.Fatalf("status %d, want 200", code)
			}
			reqs := up.Requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(reqs))
			}
			got := reqs[0].Header
			hostile := map[string]bool{}
			for _, name := range hostileHeaders {
				hostile[headerKey(name)] = true
			}
			own := map[string]string{ // the gateway's own, on API routes
				"X-Forwarded-For":   tt.wantXFF,
				"X-Forwarded-Host":  strings.TrimPrefix(g.URL, "http://"),
				"X-Forwarded-Proto": "http",
			}
			for k, v := range got {
				if !hostile[headerKey(k)] {
					continue
				}
				if want, ok := own[k]; ok && tt.wantXFF != "" {
					if len(v) != 1 || v[0] != want {
						t.Errorf("%s = %q, want %q", k, v, want)
					}
					continue
				}
				t.Errorf("upstream got %s: %q", k, v)
			}
			if tt.wantXFF != "" {
				for k := range own {
					if got.Get(k) == "" {
						t.Errorf("upstream got no %s", k)
					}
				}
				if v := got.Get("X-Ordinary"); v != "kept" {
					t.Errorf("X-Ordinary = %q, want kept", v)
				}
			}
		})
	}
}

// Double-encoded dot segments, slashes and backslashes and paths that are
// not UTF-8 once decoded get 400 problem+json on an API route and through
// a composite's {query.x}, and the upstream sees nothing; ordinary encoded
// paths still pass.
func TestHygienePathsRawTCP(t *testing.T) {
	up := newUpstream(t, nil)
	g, addr := hygieneGateway(t, up, nil)

	const problem = "application/problem+json"
	refused := []struct {
		target string
		ctype  string // of the 400
	}{
		{"/api/%252e%252e/secret", problem},
		{"/api/%252E%252E%252Fsecret", problem},
		{"/api/a/%25%32%65%25%32%65/secret", problem},
		{"/api/%25%32%45%25%32%45%25%32%46secret", problem},
		{"/api/%252e%252e%255csecret", problem},
		{"/api/%25252e%25252e/secret", problem},
		{"/api/%25%25%33%32%25%36%35%25%25%33%32%25%36%35/secret", problem}, // %%32%65%%32%65 once decoded
		{"/api/%25u002e%25u002e/secret", problem},
		{"/api/%c0%ae%c0%ae/secret", problem},
		{"/api/%C0%AE%C0%AE%C0%AFsecret", problem},
		{"/api/%e0%80%ae%e0%80%ae/secret", problem},
		{"/api/..%c0%afsecret", problem},
		{"/api/\xc0\xae\xc0\xae/secret", problem}, // raw bytes, not escapes
		{"/api/%e9t%e9", problem},                 // Latin-1
		{"/api/%2e%2e%2fsecret", problem},
		{"/api/%2e%2e/secret", problem},
		{"/api/a%2Fb", problem},
		{"/api/a%5cb", problem},
		{"/api/a%00b", problem},
		// Not even a URL: net/http answers 400 itself.
		{"/api/%%32%65%%32%65/secret", "text/plain; charset=utf-8"},
		// Composite templates: the value is decoded once, escaped once.
		{"/bff/hyg?x=%252e%252e", problem},
		{"/bff/hyg?x=%252E%252E%252F", problem},
		{"/bff/hyg?x=%25%32%65%25%32%65", problem},
		{"/bff/hyg?x=%c0%ae%c0%ae", problem},
		{"/bff/hyg?x=%e0%80%ae", problem},
		{"/bff/hyg?x=%c0%af", problem},
		{"/bff/hyg?x=%2e%2e", problem},
	}
	for _, tt := range refused {
		code, ctype := rawExchange(t, g, addr, tt.target, "")
		if code != http.StatusBadRequest || ctype != tt.ctype {
			t.Errorf("GET %q: got %d %s, want 400 %s", tt.target, code, ctype, tt.ctype)
		}
	}
	if reqs := up.Requests(); len(reqs) != 0 {
		for _, r := range reqs {
			t.Logf("upstream saw %s", r.URL.RequestURI())
		}
		t.Fatalf("hostile paths reached the upstream: %d calls", len(reqs))
	}

	passed := []struct{ target, wantPath string }{
		{"/api/a%20b", "/v1/a b"},
		{"/api/caf%C3%A9", "/v1/café"},
		{"/api/caf%c3%a9/x", "/v1/café/x"},
		{"/api/%ef%bc%8f", "/v1/\uff0f"}, // fullwidth solidus: valid UTF-8, passed as it is
		{"/api/%2520", "/v1/%20"},        // a literal "%20"
		{"/api/file%2etxt", "/v1/file.txt"},
		{"/api/100%25", "/v1/100%"},
		{"/bff/hyg?x=caf%C3%A9", "/v1/items/café"},
		{"/bff/hyg?x=%ef%bc%8f", "/v1/items/\uff0f"},
		{"/bff/hyg?x=a%2520b", "/v1/items/a%20b"},
	}
	for _, tt := range passed {
		before := len(up.Requests())
		if code, _ := rawExchange(t, g, addr, tt.target, ""); code != http.StatusOK {
			t.Errorf("GET %q: got %d, want 200", tt.target, code)
			continue
		}
		reqs := up.Requests()[before:]
		if len(reqs) != 1 {
			t.Errorf("GET %q: upstream saw %d requests, want 1", tt.target, len(reqs))
			continue
		}
		if got := reqs[0].URL.Path; got != tt.wantPath {
			t.Errorf("GET %q: upstream path %q, want %q", tt.target, got, tt.wantPath)
		}
	}
}
