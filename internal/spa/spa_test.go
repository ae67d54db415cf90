package spa

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func TestFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"index.html":             {Data: []byte(`<!doctype html><script src="/app.js" defer></script><SCRIPT type="module" src="/m.js"></SCRIPT>`)},
		"app.js":                 {Data: []byte("console.log(1)")},
		"style.css":              {Data: []byte("body{}")},
		"assets/app-3f9a1c2b.js": {Data: []byte("x")},
		"logo.svg":               {Data: []byte("<svg/>")},
	}
	h := NewFiles(fsys, "/api/")
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, cache string
		index        bool
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "no-store", true},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "no-store", true},
		{"GET", "/orders/42", 200, "text/html; charset=utf-8", "no-store", true}, // client-side route
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8", "no-cache", false},
		{"GET", "/style.css", 200, "text/css; charset=utf-8", "no-cache", false},
		{"GET", "/logo.svg", 200, "image/svg+xml", "no-cache", false},
		{"GET", "/assets/app-3f9a1c2b.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", false},
		{"GET", "/missing.js", 404, "", "", false},
		{"GET", "/bff/whatever", 404, "", "", false},
		{"GET", "/api/orders", 404, "", "", false},
		{"GET", "/api", 404, "", "", false},
		{"POST", "/", 405, "", "", false},
		{"HEAD", "/app.js", 200, "text/javascript; charset=utf-8", "no-cache", false},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, rec.Code, tc.code)
			continue
		}
		if tc.code != 200 {
			if strings.Contains(rec.Body.String(), "<script") {
				t.Errorf("%s %s: index.html served for a non-route", tc.method, tc.path)
			}
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: content type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := rec.Header().Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: cache %q, want %q", tc.path, got, tc.cache)
		}
		if tc.index {
			csp := rec.Header().Get("Content-Security-Policy")
			m := regexp.MustCompile(`'nonce-([A-Za-z0-9+/]+)'`).FindStringSubmatch(csp)
			if m == nil {
				t.Fatalf("%s: no nonce in CSP %q", tc.path, csp)
			}
			if n := strings.Count(rec.Body.String(), `nonce="`+m[1]+`"`); n != 2 {
				t.Errorf("%s: %d script tags carry the CSP nonce, want 2: %s", tc.path, n, rec.Body)
			}
		}
	}
}

func TestNonceChangesPerResponse(t *testing.T) {
	h := NewFiles(fstest.MapFS{"index.html": {Data: []byte(`<script src="/a.js"></script>`)}})
	seen := map[string]bool{}
	for range 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		csp := rec.Header().Get("Content-Security-Policy")
		if seen[csp] {
			t.Fatal("nonce repeated")
		}
		seen[csp] = true
	}
}

func TestDevServer(t *testing.T) {
	var got *http.Request
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Write([]byte("vite"))
	}))
	defer dev.Close()
	u, _ := http.NewRequest("GET", dev.URL, nil)
	h := DevServer(u.URL)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/src/main.tsx", nil)
	req.Header.Set("Cookie", "__Host-Http-cloakroom=secret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got == nil || got.URL.Path != "/src/main.tsx" || got.Header.Get("Cookie") != "" {
		t.Errorf("dev server got %v cookie %q", got.URL, got.Header.Get("Cookie"))
	}
}
