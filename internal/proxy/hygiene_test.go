package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		raw string // request target as sent
		ok  bool
	}{
		{"/api/orders/recent", true},
		{"/api/a%20b", true},
		{"/api/caf%C3%A9", true},
		{"/api/file%2etxt", true},
		{"/api/...", true},
		{"/api/%ef%bc%8f", true}, // fullwidth solidus, valid UTF-8
		{"/api/%2520", true},

		{"/api/../x", false},
		{"/api/%2e%2e/x", false},
		{"/api/%2e%2e%2fx", false},
		{"/api/a%2fb", false},
		{"/api/a%2Fb", false},
		{"/api/a%5cb", false},
		{"/api/a%5Cb", false},
		{"/api/a%00b", false},
		{"/api/a\\b", false},
		{"/api/%252e%252e/x", false},
		{"/api/%252E%252E%252F", false},
		{"/api/%25%32%65%25%32%65/x", false},
		{"/api/%255c", false},
		{"/api/%c0%ae%c0%ae/x", false},
		{"/api/%e0%80%ae", false},
		{"/api/%c0%af", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.raw)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := checkPath(u); (err == nil) != tt.ok {
				t.Errorf("checkPath(%q) = %v, want ok %v", tt.raw, err, tt.ok)
			}
		})
	}
}

func TestCheckPathAllocs(t *testing.T) {
	for _, raw := range []string{"/api/orders/recent", "/api/caf%C3%A9/a%20b"} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = checkPath(u) }); n != 0 {
			t.Errorf("checkPath(%q): got %v allocations, want 0", raw, n)
		}
	}
}

// The hostile request headers, as commonly spelled, independent of the
// constants in headers.go; each
// must be stripped in that spelling, canonical, lower case and with "_".
var hostileHeaders = []string{
	"Forwarded",
	"X-Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl",
	"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Client-IP",
	"X-Cluster-Client-IP", "X-Original-Forwarded-For",
	"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Host", "X-Original-Host",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
}

func TestIsSpoofable(t *testing.T) {
	for _, name := range hostileHeaders {
		for _, v := range []string{name, http.CanonicalHeaderKey(name), strings.ToLower(name), strings.ToUpper(name), strings.ReplaceAll(name, "-", "_")} {
			if !isSpoofable(v) {
				t.Errorf("isSpoofable(%q) = false, want true", v)
			}
		}
	}
	for _, name := range []string{
		"Accept", "Authorization", "Content-Type", "X-Request-Id", "X-Csrf", "Traceparent",
		"X-Real", "X-Real-IPs", "X-Forwardedfor", "X-Forward-For", "X-Host-Name", "Host", "X-Http-Methods",
	} {
		if isSpoofable(name) {
			t.Errorf("isSpoofable(%q) = true, want false", name)
		}
	}
	// StrippedHeaders documents every exact name once.
	got := StrippedHeaders()
	for _, s := range spoofable {
		if !slices.Contains(got, s) {
			t.Errorf("StrippedHeaders() lacks %q", s)
		}
	}
	if !slices.Contains(got, "X-Forwarded-*") {
		t.Errorf("StrippedHeaders() = %q, want X-Forwarded-* in it", got)
	}
}

// recorder is a real upstream that keeps the headers it received.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Header.Clone())
		rec.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) requests() []http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

type noToken struct{}

func (noToken) Token(*http.Request) (string, error) { return "", nil }

// Every hostile header, in several spellings, is absent upstream, also
// from a trusted proxy, whose X-Forwarded-For chain alone is kept. The
// headers are written on the wire as they are, since Header.Set would
// canonicalise them.
func TestStripsSpoofableHeaders(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			up := newRecorder(t)
			o := Options{
				PublicURL: &url.URL{Scheme: "https", Host: "app.example"},
				Logger:    slog.New(slog.DiscardHandler),
			}
			if trusted {
				o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
			gw := httptest.NewServer(New(Route{Prefix: "/api/", Upstream: mustParse(t, up.URL+"/v1/"), Bearer: noToken{}}, o))
			defer gw.Close()

			var req strings.Builder
			req.WriteString("GET /api/x HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Keep: yes\r\n")
			for _, name := range hostileHeaders {
				for _, v := range []string{name, strings.ToLower(name), strings.ReplaceAll(name, "-", "_")} {
					fmt.Fprintf(&req, "%s: 6.6.6.6\r\n", v)
				}
			}
			req.WriteString("\r\n")
			c, err := net.Dial("tcp", gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, req.String())
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			seen := up.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(seen))
			}
			got := seen[0]
			for k, v := range got {
				if !isSpoofable(k) {
					continue
				}
				switch k {
				case "X-Forwarded-For":
					want := "127.0.0.1"
					if trusted {
						// Only the exact X-Forwarded-For lines (canonical and
						// lower case) form the trusted chain.
						want = "6.6.6.6, 6.6.6.6, 127.0.0.1"
					}
					if len(v) != 1 || v[0] != want {
						t.Errorf("X-Forwarded-For = %q, want %q", v, want)
					}
				case "X-Forwarded-Host":
					if len(v) != 1 || v[0] != "app.example" {
						t.Errorf("X-Forwarded-Host = %q, want app.example", v)
					}
				case "X-Forwarded-Proto":
					if len(v) != 1 || v[0] != "https" {
						t.Errorf("X-Forwarded-Proto = %q, want https", v)
					}
				default:
					t.Errorf("upstream got %s: %q", k, v)
				}
			}
			if got.Get("X-Keep") != "yes" {
				t.Errorf("X-Keep = %q, want yes: an ordinary header was lost", got.Get("X-Keep"))
			}
		})
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func BenchmarkStripSpoofable(b *testing.B) {
	base := http.Header{
		"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}, "Accept-Language": {"en"},
		"User-Agent": {"bench"}, "X-Csrf": {"1"}, "Sec-Fetch-Site": {"same-origin"},
		"Sec-Fetch-Mode": {"cors"}, "Referer": {"https://app.example/"}, "Content-Type": {"application/json"},
	}
	b.ReportAllocs()
	for b.Loop() {
		stripSpoofable(base)
	}
}
