package tlsserve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirect(t *testing.T) {
	s := &Server{redirect: newRedirect([]string{"https://app.example.com", "https://Other.example.com:8443/"}), src: &static{}}
	s.log = discard()
	ts := httptest.NewServer(s.RedirectServer().Handler)
	defer ts.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name, method, host, target string
		code                       int
		location                   string
	}{
		{"path and query kept", "GET", "app.example.com", "/a/b%2Fc?x=1&y=%20", 301, "https://app.example.com/a/b%2Fc?x=1&y=%20"},
		{"head", "HEAD", "app.example.com", "/", 301, "https://app.example.com/"},
		{"post keeps its method", "POST", "app.example.com", "/bff/logout", 308, "https://app.example.com/bff/logout"},
		{"port of the request dropped", "GET", "APP.example.com:80", "/x", 301, "https://app.example.com/x"},
		{"second origin, its port", "GET", "other.example.com", "/p", 301, "https://Other.example.com:8443/p"},
		{"trailing dot", "GET", "other.example.com.", "/", 301, "https://Other.example.com:8443/"},
		{"foreign host", "GET", "evil.example", "/p?q=1", 301, "https://app.example.com/p?q=1"},
		{"foreign host with port", "PUT", "evil.example:8080", "/", 308, "https://app.example.com/"},
		{"ip address", "GET", "127.0.0.1", "/", 301, "https://app.example.com/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tc.target // sent as the request target as is
			req.Host = tc.host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Location"); resp.StatusCode != tc.code || got != tc.location {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, got, tc.code, tc.location)
			}
			if !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
				t.Errorf("Location %q is not https", resp.Header.Get("Location"))
			}
		})
	}

	// A path that looks like a scheme-relative URL stays a path.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET //evil.example/x HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "https://app.example.com//evil.example/x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// A reload that changes the origins.
	s.SetOrigins([]string{"https://new.example.com"})
	req, _ := http.NewRequest("GET", ts.URL+"/z", nil)
	req.Host = "app.example.com"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "https://new.example.com/z"; got != want {
		t.Errorf("after SetOrigins: got %q, want %q", got, want)
	}
}
