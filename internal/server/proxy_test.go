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

func TestProxyUserToken(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)

	// No CSRF header: 401, empty, upstream never called.
	if r := b.get(e.g.URL + "/api/orders/recent"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
		t.Errorf("no CSRF: %d %q", r.StatusCode, r.Body)
	}
	// No session: 401.
	if r := b.get(e.g.URL+"/api/orders/recent", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized || r.Body != "" {
		t.Errorf("no session: %d %q", r.StatusCode, r.Body)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Fatalf("upstream called %d times before sign-in", n)
	}

	e.login(t, b, "alice")
	if r := b.get(e.g.URL + "/api/orders/recent"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed in, no CSRF: %d", r.StatusCode)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Fatalf("upstream called without the CSRF header")
	}

	req, _ := http.NewRequest(http.MethodGet, e.g.URL+"/api/orders/recent?limit=5", nil)
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Authorization", "Bearer forged")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop")
	r := b.do(req)
	if r.StatusCode != http.StatusOK || r.Body != `{"ok":true}` {
		t.Fatalf("proxied call: %d %s", r.StatusCode, r.Body)
	}
	if v := r.Header.Values("X-Content-Type-Options"); len(v) != 1 || v[0] != "nosniff" {
		t.Errorf("X-Content-Type-Options on the API response: %q, want nosniff once", v)
	}
	reqs := e.up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	got := reqs[0]
	if got.URL.Path != "/v1/recent" || got.URL.RawQuery != "limit=5" {
		t.Errorf("upstream path %s?%s, want /v1/recent?limit=5", got.URL.Path, got.URL.RawQuery)
	}
	tok, ok := strings.CutPrefix(got.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("no bearer: %q", got.Header.Get("Authorization"))
	}
	claims, err := e.idp.VerifyAccessToken(tok)
	if err != nil {
		t.Fatalf("upstream got an invalid token: %v", err)
	}
	if claims["sub"] != "alice-1" {
		t.Errorf("token sub %v", claims["sub"])
	}
	for _, h := range []string{"Cookie", "X-Csrf", "Forwarded", "X-Secret"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	if xff := got.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want only the client", xff)
	}
	if h := got.Header.Get("X-Forwarded-Host"); h != strings.TrimPrefix(e.g.URL, "http://") {
		t.Errorf("X-Forwarded-Host %q", h)
	}
	if p := got.Header.Get("X-Forwarded-Proto"); p != "http" {
		t.Errorf("X-Forwarded-Proto %q", p)
	}
	if id := got.Header.Get("X-Request-Id"); id == "" || id != r.Header.Get("X-Request-Id") {
		t.Errorf("upstream X-Request-Id %q, browser's %q: want the same id", id, r.Header.Get("X-Request-Id"))
	}
}

// Behind a trusted proxy, the client address it recorded is kept and ours
// (the proxy's) appended; the browser's own claims never reach the
// upstream when the peer is not trusted (TestProxyUserToken).
func TestProxyKeepsTrustedForwardedFor(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	b := newBrowser(t)
	e.login(t, b, "alice")
	req, _ := http.NewRequest(http.MethodGet, e.g.URL+"/api/orders/recent", nil)
	req.Header.Set("X-CSRF", "1")
	req.Header.Add("X-Forwarded-For", "203.0.113.7")
	req.Header.Add("X-Forwarded-For", "198.51.100.2")
	if r := b.do(req); r.StatusCode != http.StatusOK {
		t.Fatalf("proxied call: %d %s", r.StatusCode, r.Body)
	}
	reqs := e.up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	if xff := reqs[0].Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "203.0.113.7, 198.51.100.2, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the trusted chain then the peer", xff)
	}
}

func TestProxyStripsUpstreamHeaders(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "__Host-Http-cloakroom=stolen; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		io.WriteString(w, "ok")
	})
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/pub/", Upstream: up.URL, Token: "none"}}
	g := startGateway(t, ln, cfg, serverOptions())
	r := newBrowser(t).get(g.URL+"/pub/x", "X-CSRF", "1")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	cookies := strings.Join(r.Header["Set-Cookie"], "|")
	if strings.Contains(cookies, "cloakroom") || !strings.Contains(cookies, "theme=dark") {
		t.Errorf("Set-Cookie passed: %q", cookies)
	}
	if r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("upstream CORS headers passed")
	}
	if a := up.Requests()[0].Header.Get("Authorization"); a != "" {
		t.Errorf("token none sent Authorization %q", a)
	}
}

func TestProxyLongestPrefixAndTraversal(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	outer := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "outer "+r.URL.Path) })
	inner := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inner "+r.URL.Path) })
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{
		{Path: "/api/", Upstream: outer.URL + "/base/", Token: "none"},
		{Path: "/api/inner/", Upstream: inner.URL + "/in/", Token: "none"},
	}
	g := startGateway(t, ln, cfg, serverOptions())
	b := newBrowser(t)
	for path, want := range map[string]string{
		"/api/x":        "outer /base/x",
		"/api/inner/y":  "inner /in/y",
		"/api/innerx/z": "outer /base/innerx/z",
	} {
		if r := b.get(g.URL+path, "X-CSRF", "1"); r.Body != want {
			t.Errorf("%s: got %d %q, want %q", path, r.StatusCode, r.Body, want)
		}
	}
	before := len(outer.Requests()) + len(inner.Requests())
	for _, path := range []string{
		"/api/inner/%2e%2e/secret", "/api/inner/..%2fsecret", "/api/inner/%2e%2e%2fsecret",
		"/api/inner/a%2fb", "/api/inner/a%5cb", "/api/inner/..%5csecret",
	} {
		r := rawGet(t, g.URL, path)
		if r == http.StatusOK {
			t.Errorf("%s: got 200", path)
		}
	}
	if after := len(outer.Requests()) + len(inner.Requests()); after != before {
		for _, r := range append(outer.Requests(), inner.Requests()...) {
			t.Logf("upstream saw %s", r.URL.RequestURI())
		}
		t.Errorf("traversal attempts reached upstreams: %d calls", after-before)
	}
}

// rawGet sends path exactly as written, without client-side cleaning.
func rawGet(t *testing.T, base, path string) int {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", strings.Replace(host, "localhost", "127.0.0.1", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxyUpstreamFailures(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{
		{Path: "/slow/", Upstream: slow.URL, Token: "none", Timeout: 200 * time.Millisecond},
		{Path: "/dead/", Upstream: deadURL, Token: "none"},
	}
	g := startGateway(t, ln, cfg, serverOptions())
	b := newBrowser(t)
	for path, want := range map[string]int{"/slow/x": http.StatusGatewayTimeout, "/dead/x": http.StatusBadGateway} {
		r := b.get(g.URL+path, "X-CSRF", "1")
		if r.StatusCode != want || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: got %d %s, want %d problem+json", path, r.StatusCode, r.Header.Get("Content-Type"), want)
		}
		if strings.Contains(r.Body, "127.0.0.1") {
			t.Errorf("%s: internal detail leaked: %s", path, r.Body)
		}
	}
}

func TestProxyStreamsSSE(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/events/", Upstream: up.URL, Token: "none"}}
	g := startGateway(t, ln, cfg, serverOptions())
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/events/", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first event arrives while the upstream is still holding the stream open.
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("second event missing: %q", rest)
	}
}

func TestProxyWebSocket(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, "echo "+line)
		brw.Flush()
	})
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.APIs = []config.API{{Path: "/ws/", Upstream: up.URL, Token: "none", AllowHeaderless: true}}
	g := startGateway(t, ln, cfg, serverOptions())
	host := strings.TrimPrefix(g.URL, "http://")

	handshake := func(origin string) (int, *bufio.Reader, net.Conn) {
		c, err := net.Dial("tcp", strings.Replace(host, "localhost", "127.0.0.1", 1))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /ws/ HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: %s\r\n\r\n", host, origin)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, br, c
	}
	if code, _, c := handshake("https://evil.example"); code != http.StatusUnauthorized {
		t.Errorf("cross-origin upgrade: got %d", code)
		c.Close()
	} else {
		c.Close()
	}
	code, br, c := handshake(g.URL)
	defer c.Close()
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("same-origin upgrade: got %d", code)
	}
	fmt.Fprint(c, "hello\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "echo hello\n" {
		t.Errorf("through the upgraded connection: %q %v", line, err)
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the same-origin one)", n)
	}
}

func TestHostGuard(t *testing.T) {
	e := newEnv(t, nil)
	host := strings.TrimPrefix(e.g.URL, "http://")
	c, err := net.Dial("tcp", strings.Replace(host, "localhost", "127.0.0.1", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /bff/login HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: got %d", resp.StatusCode)
	}
}

// rawRequest writes req as is and returns the status line's code.
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxyRawAttacks(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	var ticket string
	for _, c := range b.jar.Cookies(mustURL(e.g.URL)) {
		if c.Name == "__Host-Http-cloakroom" {
			ticket = c.Value
		}
	}
	host := strings.TrimPrefix(e.g.URL, "http://")
	addr := strings.Replace(host, "localhost", "127.0.0.1", 1)
	base := "Host: " + host + "\r\nX-CSRF: 1\r\nCookie: __Host-Http-cloakroom=" + ticket + "\r\n"

	// Naming headers in Connection cannot strip what the gateway adds.
	for _, hop := range []string{"Authorization", "X-Forwarded-For", "X-Forwarded-Host"} {
		n := len(e.up.Requests())
		code := rawRequest(t, addr, "GET /api/orders/x HTTP/1.1\r\n"+base+"Connection: close, "+hop+"\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
		if code != http.StatusOK || len(e.up.Requests()) != n+1 {
			t.Fatalf("Connection: %s: %d", hop, code)
		}
		got := e.up.Requests()[n]
		if !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ") || got.Header.Get("X-Forwarded-For") != "127.0.0.1" || got.Header.Get("X-Forwarded-Host") != host {
			t.Errorf("Connection: %s: upstream got Authorization %q, XFF %q, XFH %q", hop,
				got.Header.Get("Authorization")[:min(7, len(got.Header.Get("Authorization")))], got.Header.Get("X-Forwarded-For"), got.Header.Get("X-Forwarded-Host"))
		}
	}
	// Ambiguous framing is refused; CL with TE is read by TE alone (RFC
	// 9112 section 6.3) and forwarded with one framing of the gateway's
	// own, so nothing can be smuggled behind it.
	n := len(e.up.Requests())
	for name, req := range map[string]string{
		"two CLs": "POST /api/orders/x HTTP/1.1\r\n" + base + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"bad TE":  "POST /api/orders/x HTTP/1.1\r\n" + base + "Transfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n",
	} {
		if code := rawRequest(t, addr, req); code < 400 {
			t.Errorf("%s: got %d, want a refusal", name, code)
		}
	}
	if got := len(e.up.Requests()); got != n {
		t.Errorf("ambiguous framing reached the upstream %d times", got-n)
	}
	smuggle := "POST /api/orders/x HTTP/1.1\r\n" + base + "Content-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\nGET /api/orders/smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	rawRequest(t, addr, smuggle)
	for _, r := range e.up.Requests() {
		if strings.Contains(r.URL.Path, "smuggled") {
			t.Error("a smuggled request reached the upstream")
		}
		if r.Header.Get("Content-Length") != "" && len(r.TransferEncoding) > 0 {
			t.Error("the upstream got both Content-Length and Transfer-Encoding")
		}
	}
	if code := rawRequest(t, addr, "GET /api/orders/x HTTP/1.1\r\n"+base+"X-Big: "+strings.Repeat("a", 70<<10)+"\r\n\r\n"); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversize headers: %d, want 431", code)
	}
}
